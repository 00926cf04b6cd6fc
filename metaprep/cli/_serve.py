"""Shared by `metaprep predict` and `metaprep embed`: options, input opening, warnings, output.

Imports nothing heavier than metaprep.runtime (numpy + onnxruntime): these commands never load
torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

import click

from metaprep.atomic import atomic_path

__all__ = ["Warner", "atomic_output", "open_input", "serve_options"]

_MAX_SHOWN = 10  # warnings printed one by one; the rest are counted


def serve_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options predict and embed share."""
    for option in reversed([
        click.option("--format", "fmt", type=click.Choice(["auto", "lines", "tsv", "jsonl"]),
                     default="auto", show_default=True,
                     help="lines: one text per line (pairs: text_a<TAB>text_b); tsv: a header "
                          "row naming the text column; jsonl: one object per line. auto: by "
                          "extension (.tsv, .jsonl), else lines."),
        click.option("--column", "columns", multiple=True,
                     help="Text column (tsv) or key (jsonl) [default: text; pairs: text_a and "
                          "text_b, give --column twice]."),
        click.option("--batch-size", type=int, default=64, show_default=True,
                     help="Texts per onnxruntime call (texts are bucketed by length)."),
        click.option("--threads", type=int, default=None,
                     help="onnxruntime intra-op threads [default: all cores]."),
        click.option("--verify", type=click.Choice(["fast", "full", "none"]), default="fast",
                     show_default=True,
                     help="Check the model directory against its manifest: fast = sizes, and "
                          "sha256 of files up to 64 MiB; full = sha256 of everything."),
        click.option("--quiet", is_flag=True, help="No notes on stderr (warnings still shown)."),
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


@contextmanager
def open_input(path: str) -> Iterator[tuple[BinaryIO, str]]:
    if path == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    from metaprep.errors import DataError

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read input: {exc.strerror or exc}", path=path) from exc
    with f:
        yield f, path


@contextmanager
def atomic_output(path: str | None, mode: str = "w") -> Iterator[IO[Any]]:
    """stdout, or a temporary file beside ``path`` renamed over it when the block succeeds."""
    if path is None or path == "-":
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
        yield f
