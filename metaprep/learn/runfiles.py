"""The small files of a run directory as typed records, each read strictly: a missing, garbled
or hand-edited file is a one-line ModelError naming it. ``learn/rundir.py`` (the one owner of the
layout) reads and writes them through these."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaprep.atomic import atomic_path, write_failure
from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError, DataError, ModelError
from metaprep.ids import CASE_POLICIES
from metaprep.learn.config import RunConfig
from metaprep.taskdata import Columns
from metaprep.tokenize import TokenizerConfig

if TYPE_CHECKING:
    import torch

    from metaprep.prep.store import Store

__all__ = [
    "Checkpoint",
    "DataRecord",
    "FileRef",
    "SHA256_HEX",
    "SPLITS",
    "StoreRef",
    "check_run_file",
    "checked_fields",
    "one_line",
    "read_config",
    "read_json",
    "read_labels",
    "read_tokenizer",
    "write_json",
]

SPLITS = ("train", "dev", "test")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


# --- JSON ---------------------------------------------------------------------------------------
def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:  # a full disk: name the file
            raise write_failure(path, exc) from exc


def check_run_file(path: Path) -> None:
    """A file of a run directory (which may come from someone else) must be a regular file
    inside the directory: a pipe would block the read forever, a link out would read elsewhere."""
    try:
        target, root = path.resolve(), path.parent.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ModelError(f"{path.name} cannot be resolved ({exc})", path=path) from exc
    if target.parent != root and root not in target.parents:
        raise ModelError(f"{path.name} points outside the run directory (to {target})",
                         path=path, hint="refusing to read outside the directory")
    if target.exists() and not target.is_file():
        raise ModelError(f"{path.name} is not a regular file (a folder, pipe or device)",
                         path=path, hint="the run directory was damaged")


def read_json(path: Path) -> Any:
    check_run_file(path)
    if not path.exists():
        raise ModelError(f"missing {path.name}", path=path.parent, hint="is this a run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"not readable JSON ({exc})", path=path,
                         hint="the file was damaged or edited by hand") from exc


def checked_fields(data: Any, want: dict[str, type | tuple[type, ...]], path: Path,
                   optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` as an object with exactly these keys (``optional`` ones may be absent), each of its
    type (a bool is not an int)."""
    if not isinstance(data, dict):
        raise ModelError(f"expected a JSON object, found {type(data).__name__}", path=path)
    unknown = sorted(set(data) - set(want))
    missing = sorted(set(want) - set(data) - set(optional))
    if unknown or missing:
        what = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        what += [f"missing key(s) {', '.join(missing)}"] if missing else []
        raise ModelError("; ".join(what), path=path, hint="the file was edited by hand, or "
                         "written by another metaprep version")
    for key, value in data.items():
        if not isinstance(value, want[key]) or (isinstance(value, bool) and want[key] is int):
            raise ModelError(f"key {key!r} has the wrong type: {value!r}", path=path)
    return data


# --- the records --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreRef:
    """Which store a run was trained on (store.json)."""

    path: str  # resolved when written
    sha256: str
    vocab_size: int
    case_policy: str  # the store's, recorded so the run maps tokens the way training did

    @classmethod
    def of(cls, store: Store) -> StoreRef:
        return cls(str(store.path.resolve()), store.sha256(), store.vocab_size, store.case_policy)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, *, path: Path) -> StoreRef:
        d = checked_fields(data, {"path": str, "sha256": str, "vocab_size": int,
                                  "case_policy": str}, path)
        if not SHA256_HEX.fullmatch(d["sha256"]):
            raise ModelError("sha256 is not 64 lowercase hex digits", path=path)
        if d["case_policy"] not in CASE_POLICIES:
            raise ModelError(f"unknown case policy {d['case_policy']!r}", path=path)
        return cls(**d)


@dataclass(frozen=True)
class FileRef:
    """A task data file the run used: resolved path and sha256."""

    path: str
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> FileRef:
        p = Path(path)
        if not p.is_file():
            raise DataError("no such task data file", path=p)
        return cls(str(p.resolve()), file_sha256(p))


@dataclass(frozen=True)
class DataRecord:
    """The train / dev / test files of a run (data.json); None: not given."""

    train: FileRef | None = None
    dev: FileRef | None = None
    test: FileRef | None = None
    columns: Columns = Columns()  # the column names the files were read with

    def get(self, split: str) -> FileRef | None:
        return getattr(self, split)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            s: None if (r := self.get(s)) is None else {"path": r.path, "sha256": r.sha256}
            for s in SPLITS}
        if self.columns != Columns():
            out["columns"] = asdict(self.columns)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, path: Path) -> DataRecord:
        d = checked_fields(data, {**{s: (dict, type(None)) for s in SPLITS}, "columns": dict}, path,
                           optional=(*SPLITS, "columns"))
        refs: dict[str, Any] = {}
        if "columns" in d:
            names = checked_fields(d.pop("columns"), {k: str for k in ("text", "label", "text_a",
                                                                 "text_b")}, path)
            try:
                refs["columns"] = Columns(**names)
            except ConfigError as exc:
                raise ModelError(f"columns: {exc.message}", path=path) from exc
        for split, entry in d.items():
            if entry is not None:
                e = checked_fields(entry, {"path": str, "sha256": str}, path)
                if not SHA256_HEX.fullmatch(e["sha256"]):
                    raise ModelError(f"{split}: sha256 is not 64 lowercase hex digits", path=path)
                refs[split] = FileRef(**e)
        return cls(**refs)


@dataclass
class Checkpoint:
    """The resume state train saves (checkpoint.pt): plain tensors, numbers, lists and dicts."""

    model: dict[str, torch.Tensor]  # weights, no frozen tables
    optimizer: dict[str, Any]
    progress: dict[str, Any]  # the loop's counters (learn/train.py)
    history: list[dict[str, Any]]  # one record per finished epoch
    best: dict[str, torch.Tensor] | None = None  # the best epoch's weights (older files: none)


def read_config(path: Path) -> RunConfig:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ModelError(f"expected a JSON object, found {type(data).__name__}", path=path)
    try:
        return RunConfig.from_dict(data, path=path)
    except ConfigError as exc:  # a hand-edited run: the run, not an option, is at fault
        raise ModelError(exc.message, path=path, hint=exc.hint) from exc


def read_labels(path: Path, count: int) -> list[str]:
    labels = read_json(path)
    if (not isinstance(labels, list) or len(labels) != count
            or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels)):
        raise ModelError(f"expected a list of {count} distinct label strings (config.json "
                         "num_labels)", path=path)
    return labels


def read_tokenizer(path: Path) -> TokenizerConfig:
    data = read_json(path)
    try:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, found {type(data).__name__}")
        return TokenizerConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"bad tokenizer config: {exc}", path=path) from exc


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
