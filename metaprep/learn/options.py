"""How a training option is declared: one ``option(...)`` field of ``RunConfig`` holds its type,
default, bounds, choices, help and help group. The CLI (`metaprep train`, its ``--set``), the
pipeline's ``[train]`` keys, the presets and the checks all read that one declaration. No torch,
no click: the CLI builds its flags from ``Spec`` objects.
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field
from typing import Any

__all__ = ["GROUPS", "Spec", "kind_of", "option", "parse_value", "value_problem"]

# the help groups of `metaprep train --help`, in order
GROUPS = ("data", "model", "training", "teacher", "output")


@dataclass(frozen=True)
class Spec:
    """What the CLI, the pipeline and the checks know of one option besides its default."""

    help: str
    group: str  # one of GROUPS
    flag: bool = False  # its own flag on `metaprep train`; the rest are reached with --set
    low: float | None = None  # bounds, both included unless open_low / open_high
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    filled: bool = False  # filled from the store and the data: recorded, not an option


def option(default: Any, help: str, *, group: str, flag: bool = False,
           low: float | None = None, high: float | None = None, open_low: bool = False,
           open_high: bool = False, choices: tuple[str, ...] = (), filled: bool = False) -> Any:
    """A RunConfig field declared once (see the module docstring)."""
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    spec = Spec(help, group, flag, low, high, open_low, open_high, choices, filled)
    if isinstance(default, list):  # a fresh list for every config
        return field(default_factory=lambda: list(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def kind_of(f: Field[Any]) -> str:
    """A field's type as written in the dataclass: str, int, float, bool, list[int] or
    list[str] (``from __future__ import annotations`` keeps them as strings)."""
    return str(f.type)


def value_problem(f: Field[Any], value: Any) -> str | None:
    """Why ``value`` does not fit option ``f`` (type, choices, bounds, finite), or None."""
    kind, spec = kind_of(f), f.metadata["spec"]
    if kind.startswith("list["):
        item = int if kind == "list[int]" else str
        if not isinstance(value, list) or any(
                isinstance(v, bool) or not isinstance(v, item) for v in value):
            return f"must be a list of {'whole numbers' if item is int else 'names'}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "str":
        if not isinstance(value, str):
            return f"must be a string, not {value!r}"
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}, not {value!r}"
        return None
    whole = kind == "int"
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return f"must be a {'whole number' if whole else 'number'}, not {value!r}"
    if not math.isfinite(value):  # a NaN passes no comparison; an infinite lr trains on NaN
        return f"must be a finite number, not {value!r}"
    low, high = spec.low, spec.high
    below = low is not None and (value <= low if spec.open_low else value < low)
    above = high is not None and (value >= high if spec.open_high else value > high)
    if below or above:
        return f"must be {_span(spec, whole)}, not {value:,}"
    return None


def _span(spec: Spec, whole: bool) -> str:
    if spec.high is None:
        low = spec.low
        if spec.open_low:
            return f"above {low:g}"
        return f"{low:,.0f} or more" if whole else f"at least {low:g}"
    if whole and not spec.open_low and not spec.open_high:
        return f"from {spec.low:,.0f} to {spec.high:,.0f}"
    left, right = "(" if spec.open_low else "[", ")" if spec.open_high else "]"
    return f"a number in {left}{spec.low:g}, {spec.high:g}{right}"


def parse_value(f: Field[Any], text: str) -> Any:
    """The value a command line gives as text (``--set lr=1e-3``, ``--cnn-widths 1,2``);
    ValueError saying what was expected."""
    kind = kind_of(f)
    if kind == "bool":
        word = text.strip().lower()
        if word in ("true", "on", "yes", "1"):
            return True
        if word in ("false", "off", "no", "0"):
            return False
        raise ValueError(f"{text!r} is not true or false")
    if kind.startswith("list["):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if kind == "list[str]":
            return items
        try:
            return [int(t) for t in items]
        except ValueError:
            raise ValueError(f"{text!r} is not comma-separated whole numbers, e.g. 1,2,3") \
                from None
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    return text
