"""The align stage: embedding files -> one HDF5 store over one vocabulary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metaprep.outputs import claim_outputs
from metaprep.stages._common import PathLike, TaskColumns, input_field, output_field, required

__all__ = ["AlignOptions", "AlignResult", "align"]


@dataclass(frozen=True)
class AlignOptions(TaskColumns):
    sources: dict[str, str] = input_field({}, named=True)  # name -> embedding file, in store order
    output: PathLike | None = output_field()  # the HDF5 store to write
    vocab: tuple[str, ...] = input_field(("union",))  # union, intersection, or word/task files
    format: dict[str, str] = field(default_factory=dict)  # name -> format, instead of detection
    tensor: dict[str, str] = field(default_factory=dict)  # name -> tensor in a .safetensors file
    vocab_file: dict[str, str] = input_field({})  # name -> vocabulary of a matrix source
    oov: dict[str, str] = field(default_factory=dict)  # name -> zero|random|mean|subword|map[:X]
    oov_default: str = "zero"  # the OOV strategy of sources not in ``oov``
    normalize: dict[str, str] = field(default_factory=dict)  # name (or "*") -> none|l2|center
    case: str = "exact"  # exact | lower | fallback: how vocabulary words find source rows
    dtype: str = "float32"  # float16 halves the store
    data_encoding: str = "utf-8"  # of word lists and task data
    lowercase: bool = False  # tokenizer: lowercase task data (stored for train and runtime)
    token_pattern: str | None = None  # tokenizer regex; None: words, numbers, punctuation marks
    whitespace: bool = False  # tokenizer: split on whitespace instead of the regex
    min_count: int = 1  # task-data words seen fewer times are left out
    max_vocab: int | None = None  # keep the first N words (task data: the N most frequent)
    limit: int | None = None  # read at most N rows of each source
    on_bad_line: str = "error"  # error | skip (and count) a malformed row
    encoding_errors: str = "strict"  # strict | replace invalid UTF-8 in a source
    seed: int = 0  # random OOV rows and the map's held-out split
    quiet: bool = False  # no progress bars


@dataclass(frozen=True)
class AlignResult:
    store: Path
    summary: dict[str, Any]  # what `metaprep inspect` shows


def align(options: AlignOptions) -> AlignResult:
    """Embedding files -> one HDF5 store over one vocabulary (see docs/store.md)."""
    from metaprep.prep.align import align as align_store
    from metaprep.prep.align import plan_from_options
    from metaprep.prep.inspect import inspect_store
    from metaprep.prep.store import only_replace_a_store

    out = Path(required(options.output, "output", "align"))
    specs, settings = plan_from_options(options)
    record = {"command": "align", "params": _jsonable(asdict(options))}
    with claim_outputs("align", options, {"output": out}):
        only_replace_a_store(out)
        store = align_store(specs, out, settings, command=record)
    return AlignResult(store, inspect_store(store))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
