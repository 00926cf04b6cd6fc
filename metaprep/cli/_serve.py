"""Shared by `metaprep predict` and `metaprep embed`: their common options and warnings.

Imports nothing heavier than metaprep.runtime (numpy + onnxruntime): these commands never load
torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from metaprep.cli._common import quiet_option

__all__ = ["Warner", "serve_options"]

_MAX_SHOWN = 10  # warnings printed one by one; the rest are counted


def serve_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options predict and embed share."""
    for option in reversed([
        click.option("--format", "fmt", type=click.Choice(["auto", "lines", "tsv", "jsonl"]),
                     default="auto", show_default=True,
                     help="lines: one text per line (pairs: text_a<TAB>text_b); tsv: a header "
                          "row naming the text column; jsonl: one object per line. auto: by "
                          "extension (.tsv, .jsonl), else lines."),
        click.option("--column", "--text-column", "columns", multiple=True,
                     help="Text column (tsv) or key (jsonl) [default: text; pairs: text_a and "
                          "text_b, give --column twice]."),
        click.option("--batch-size", type=int, default=64, show_default=True,
                     help="Texts per onnxruntime call (texts are bucketed by length)."),
        click.option("--threads", type=int, default=None,
                     help="Batches run at once, one onnxruntime thread each [default: all "
                     "cores]."),
        click.option("--verify", type=click.Choice(["fast", "full", "none"]), default="fast",
                     show_default=True,
                     help="Check the model directory against its manifest: fast = sizes, and "
                          "sha256 of files up to 64 MiB; full = sha256 of everything."),
        quiet_option("No notes on stderr (warnings still shown)."),
    ]):
        f = option(f)
    return f


class Warner:
    """Prints the first warnings with their line numbers, counts the rest."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        if self.count <= _MAX_SHOWN:
            click.echo(f"warning: {message}", err=True)

    def finish(self) -> None:
        if self.count > _MAX_SHOWN:
            click.echo(f"warning: {self.count - _MAX_SHOWN} more warning(s) not shown", err=True)
