"""The one check for a name a user gives that becomes a single path component: a pipeline's
name (its folder under the artifacts folder), a Triton model's name (its folder in the
repository, and its request URL), an embedding source's name (its HDF5 group, and a staging
file beside the store).

Such a name is one folder or file name and nothing else: ASCII letters, digits and
``_ . + -``, starting with a letter, digit or ``_`` (so no ``..``, no hidden name that the
temporary files beside an output could be taken for, no leading ``-`` that other tools read as
an option), at most ``MAX_NAME`` characters (room for the ``.NAME.PID.tmp`` and ``.NAME.lock``
files beside it). So no ``/``, ``\\``, NUL, space, quote or line break reaches a path, a config
file or a URL.

Standard library only: the runtime's side may use it too.
"""

from __future__ import annotations

import re
from pathlib import Path

from metaprep.errors import ConfigError

__all__ = ["MAX_NAME", "check_name", "is_name"]

MAX_NAME = 100
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
RULE = (f"one folder name: letters, digits and _ . + -, starting with a letter, digit or _, "
        f"at most {MAX_NAME} characters")


def is_name(value: object) -> bool:
    """``value`` is usable as one path component (see the module docstring)."""
    return (isinstance(value, str) and len(value) <= MAX_NAME
            and _NAME.fullmatch(value) is not None)


def check_name(value: object, option: str, *, path: str | Path | None = None,
               hint: str = "give a name such as my-model") -> str:
    """``value`` if it is a usable name, else a one-line ConfigError naming ``option``."""
    if is_name(value):
        return str(value)
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ConfigError(f"{option} {shown} must be {RULE}", path=path, hint=hint)
