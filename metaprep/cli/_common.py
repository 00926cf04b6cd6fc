"""Options every command spells the same way: ``-o/--output`` and ``-q/--quiet``, the task data's
column names, and NAME=VALUE lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from metaprep.errors import ConfigError

__all__ = ["assignments", "column_options", "output_option", "quiet_option"]


def output_option(help: str, *, required: bool = False, file_okay: bool = True,
                  dir_okay: bool = True) -> Callable[[Any], Any]:
    """``-o/--output PATH``; the callback gets ``output``."""
    kind = click.Path(file_okay=file_okay, dir_okay=dir_okay)
    return click.option("-o", "--output", "output", type=kind, required=required, help=help)


def quiet_option(help: str = "No progress bars.") -> Callable[[Any], Any]:
    """``-q/--quiet``; the callback gets ``quiet``."""
    return click.option("-q", "--quiet", "quiet", is_flag=True, help=help)


def assignments(values: Iterable[str], option: str, *, allow_all: bool = False) -> dict[str, str]:
    """``NAME=VALUE`` items of a repeated option as a dict; with ``allow_all`` a bare VALUE is
    stored under "*" (every source)."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            if not allow_all:
                raise ConfigError(f"{option} expects NAME=VALUE, got {item!r}")
            name, value = "*", item
        out[name] = value
    return out


def column_options(*, default_from_run: bool = False) -> Callable[[Any], Any]:
    """``--text-column``, ``--label-column``, ``--text-a-column``, ``--text-b-column``: task data
    whose columns (TSV/CSV) or keys (JSONL) have other names. With ``default_from_run`` an
    unset name means the one the run was trained with."""
    names = [("text", "the text"), ("label", "the label"), ("text_a", "a pair's first text"),
             ("text_b", "a pair's second text")]

    def decorate(f: Any) -> Any:
        for key, what in reversed(names):
            flag = f"--{key.replace('_', '-')}-column"
            default = None if default_from_run else key
            shown = "the run's" if default_from_run else key
            f = click.option(flag, f"{key}_column", default=default, metavar="NAME",
                             help=f"The column or JSON key of {what} [default: {shown}].")(f)
        return f
    return decorate
