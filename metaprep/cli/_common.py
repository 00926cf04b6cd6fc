"""Options every command spells the same way: ``-o/--output`` and ``-q/--quiet`` (today's older
spellings ``--out`` and ``--no-progress`` stay as hidden aliases), and NAME=VALUE lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from metaprep.errors import ConfigError

__all__ = ["assignments", "column_options", "output_option", "quiet_option"]


def output_option(help: str, *, required: bool = False, file_okay: bool = True,
                  dir_okay: bool = True) -> Callable[[Any], Any]:
    """``-o/--output PATH`` plus the hidden alias ``--out``; the callback gets ``output``."""
    kind = click.Path(file_okay=file_okay, dir_okay=dir_okay)

    def decorate(f: Any) -> Any:
        f = click.option("--out", "output_alias", type=kind, hidden=True)(f)
        f = click.option("-o", "--output", "output", type=kind, help=help)(f)
        return _merge(f, "output", "output_alias", required, "-o/--output")
    return decorate


def quiet_option(help: str = "No progress bars.") -> Callable[[Any], Any]:
    """``-q/--quiet`` plus the hidden alias ``--no-progress``; the callback gets ``quiet``."""
    def decorate(f: Any) -> Any:
        f = click.option("--no-progress", "quiet_alias", is_flag=True, hidden=True)(f)
        f = click.option("-q", "--quiet", "quiet", is_flag=True, help=help)(f)
        return _merge(f, "quiet", "quiet_alias", False, "")
    return decorate


def _merge(f: Any, name: str, alias: str, required: bool, flag: str) -> Any:
    # click has no hidden second spelling of one option: a hidden option feeds the same value
    callback = f

    def wrapper(*args: Any, **kw: Any) -> Any:
        extra = kw.pop(alias)
        kw[name] = kw[name] or extra
        if required and not kw[name]:
            raise click.UsageError(f"Missing option '{flag}'.")
        return callback(*args, **kw)

    wrapper.__name__ = getattr(callback, "__name__", "command")
    wrapper.__doc__ = callback.__doc__
    wrapper.__click_params__ = getattr(callback, "__click_params__", [])  # type: ignore[attr-defined]
    return wrapper


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
