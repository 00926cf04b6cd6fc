"""`metaprep train`'s flags, made from the training options' one declaration (RunConfig in
learn/config.py): an option declared with ``flag`` gets its own flag, every other one is set with
the repeatable ``--set KEY=VALUE``; ``--help`` shows the flags in their groups and lists what
``--set`` takes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import MISSING, Field
from typing import Any

import click

from metaprep.learn.config import OPTIONS
from metaprep.learn.options import GROUPS, kind_of, parse_value

__all__ = ["GroupedCommand", "in_group", "set_option", "training_options"]

# keys of the train stage's own options that --set takes too (the task data's columns, encoding)
_SETTINGS = {"data_encoding": "Text encoding of the data files [default: utf-8].",
             "text_column": "The column or JSON key of the text [default: text].",
             "label_column": "The column or JSON key of the label [default: label].",
             "text_a_column": "A pair's first text [default: text_a].",
             "text_b_column": "A pair's second text [default: text_b]."}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc,operator]


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return str(value)


def _help(f: Field[Any]) -> str:
    text = f.metadata["spec"].help
    return text if "[default:" in text else f"{text} [default: {_shown(_default(f))}]"


class GroupedCommand(click.Command):
    """A command whose options are listed in named groups (an option's ``group`` attribute)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                rows.setdefault(getattr(param, "group", "other"), []).append(record)
        for group in (*GROUPS, "other"):
            if rows.get(group):
                with formatter.section(f"{group.capitalize()} options"):
                    formatter.write_dl(rows[group])

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        rows = [(k, h) for k, h in _SETTINGS.items()]
        rows += [(name, _help(f)) for name, f in OPTIONS.items() if not f.metadata["spec"].flag]
        with formatter.section("More options (--set KEY=VALUE, repeatable)"):
            formatter.write_dl(rows)


def in_group(group: str, decorator: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply a click option decorator and file the option under ``group`` in the help."""
    def apply(f: Any) -> Any:
        f = decorator(f)
        f.__click_params__[-1].group = group
        return f
    return apply


def _option_for(name: str, f: Field[Any]) -> click.Option:
    spec, kind = f.metadata["spec"], kind_of(f)
    if kind == "bool":
        opt = click.Option([f"{_flag(name)}/--no-{name.replace('_', '-')}"], default=None,
                           help=_help(f))
    elif kind.startswith("list[") or (kind == "str" and not spec.choices) or name == "method":
        def convert(ctx: click.Context, param: click.Parameter, value: str | None,
                    f: Field[Any] = f) -> Any:
            try:
                return None if value is None else parse_value(f, value)
            except ValueError as exc:
                raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
        opt = click.Option([_flag(name)], default=None, callback=convert, help=_help(f))
    else:
        kinds: dict[str, Any] = {"int": int, "float": float}
        kind_type = click.Choice(spec.choices) if spec.choices else kinds[kind]
        opt = click.Option([_flag(name)], type=kind_type, default=None, help=_help(f))
    opt.group = spec.group  # type: ignore[attr-defined]
    opt.name = f"opt__{name}"
    return opt


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """A flag for every training option declared with ``flag``; the callback gets them in one
    ``config`` dict (only those given)."""
    made = [_option_for(name, f) for name, f in OPTIONS.items() if f.metadata["spec"].flag]

    @functools.wraps(command)
    def wrapper(*args: Any, **kw: Any) -> Any:
        config = {k[len("opt__"):]: kw.pop(k) for k in list(kw) if k.startswith("opt__")}
        return command(*args, config={k: v for k, v in config.items() if v is not None}, **kw)

    params = getattr(command, "__click_params__", [])
    # click lists params in the reverse order of their decorators: keep declaration order
    wrapper.__click_params__ = params + made[::-1]  # type: ignore[attr-defined]
    return wrapper


def set_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--set KEY=VALUE`` (repeatable): any training option, or one of the stage's own settings
    (_SETTINGS); each value read as its declared type. The callback's ``config`` gains the
    options, and a ``settings`` dict holds the rest."""
    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
              ) -> list[tuple[str, Any]]:
        out = []
        for item in values:
            key, sep, text = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep:
                raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
            if key in _SETTINGS:
                out.append((key, text))
                continue
            f = OPTIONS.get(key)
            if f is None:
                raise click.BadParameter(f"{key!r} is no training option (the list is under "
                                         "'More options' in --help)", ctx=ctx, param=param)
            if f.metadata["spec"].flag:
                raise click.BadParameter(f"{key!r} has its own flag: {_flag(key)}", ctx=ctx,
                                         param=param)
            try:
                out.append((key, parse_value(f, text)))
            except ValueError as exc:
                raise click.BadParameter(f"{key}: {exc}", ctx=ctx, param=param) from None
        return out

    opt = click.Option(["--set", "set_values"], multiple=True, metavar="KEY=VALUE",
                       callback=parse, help="Any other option (listed below), as its type "
                       "reads: --set hidden=128 --set cnn_widths=1,2 --set mask_missing=off.")
    opt.group = "other"  # type: ignore[attr-defined]

    @functools.wraps(command)
    def wrapper(*args: Any, set_values: list[tuple[str, Any]], config: dict[str, Any],
                **kw: Any) -> Any:
        settings = {k: v for k, v in set_values if k in _SETTINGS}
        config = {**config, **{k: v for k, v in set_values if k not in _SETTINGS}}
        return command(*args, config=config, settings=settings, **kw)

    params = getattr(command, "__click_params__", [])
    wrapper.__click_params__ = params + [opt]  # type: ignore[attr-defined]
    return wrapper
