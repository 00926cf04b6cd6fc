"""The inspect stage: an aligned store -> what each source brought to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaprep.stages._common import PathLike, input_field, required

__all__ = ["InspectOptions", "InspectResult", "inspect"]


@dataclass(frozen=True)
class InspectOptions:
    store: PathLike | None = input_field()  # the store `align` wrote


@dataclass(frozen=True)
class InspectResult:
    store: Path
    # per source: rows read, dim, dtype, format, coverage, OOV rows by filling strategy,
    # duplicates, case-step counts and map fit; then the words each pair of sources shares
    summary: dict[str, Any]


def inspect(options: InspectOptions) -> InspectResult:
    """Coverage, OOV filling and overlap of an aligned store (prep/inspect.py)."""
    from metaprep.prep.inspect import inspect_store

    store = Path(required(options.store, "store", "inspect"))
    return InspectResult(store, inspect_store(store))
