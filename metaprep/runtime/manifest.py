"""manifest.json of a model directory as typed records, and the one reader that validates it.

Every section is a frozen dataclass built by ``from_dict``, which checks types, ranges and key
names (unknown keys are refused), so a reader never indexes into untrusted JSON. Each problem is a
``ModelError`` naming the manifest file and the dotted key. ``to_dict`` writes the same JSON
format (docs/model-dir.md). Standard library only: the runtime imports it through modeldir.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaprep.errors import ModelError

__all__ = [
    "AccuracyRecord",
    "Checks",
    "ExportInfo",
    "FileRecord",
    "GraphInfo",
    "Keys",
    "ParityRecord",
    "TaskInfo",
    "is_plain_name",
]

_HINT = "the model directory is damaged or not written by metaprep; re-export it"


def is_plain_name(name: object) -> bool:
    """A file name inside the directory itself: no separator, no '..', not absolute, no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\\" not in name and "\0" not in name and ":" not in name)


class Keys:
    """One JSON object of the manifest, read key by key. ``where`` is its dotted key."""

    def __init__(self, data: Any, where: str, path: Path, required: Iterable[str],
                 optional: Iterable[str] | None = ()) -> None:
        """``optional=None``: any key is accepted (a map of names)."""
        self.where, self.path = where, path
        if not isinstance(data, dict):
            raise self._error(None, f"must be an object, not {type(data).__name__}")
        self.data = data
        required = list(required)
        unknown = [] if optional is None else sorted(set(data) - set(required) - set(optional))
        if unknown:
            raise self._error(None, f"has unknown key(s) {', '.join(map(str, unknown))}")
        missing = [k for k in required if k not in data]
        if missing:
            raise self._error(None, f"lacks key(s) {', '.join(missing)}")

    def _error(self, key: str | None, what: str) -> ModelError:
        name = self.where if key is None else f"{self.where}.{key}" if self.where else key
        return ModelError(f"manifest key {name or '(top level)'} {what}", path=self.path,
                          hint=_HINT)

    def get(self, key: str, ok: Callable[[Any], bool], what: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        if key in self.data and not ok(value):
            raise self._error(key, f"must be {what}, not {_show(value)}")
        return value

    def integer(self, key: str, minimum: int = 0, maximum: int | None = None) -> int:
        if maximum is None:
            v: int = self.get(key, lambda v: _is_int(v) and v >= minimum,
                              f"an integer >= {minimum}")
            return v
        v = self.get(key, lambda v: _is_int(v) and minimum <= v <= maximum,
                     f"an integer from {minimum} to {maximum}")
        return v

    def boolean(self, key: str) -> bool:
        v: bool = self.get(key, lambda v: isinstance(v, bool), "true or false")
        return v

    def string(self, key: str, choices: Iterable[str | None] | None = None) -> Any:
        if choices is None:
            return self.get(key, lambda v: isinstance(v, str) and v != "", "a non-empty string")
        allowed = tuple(choices)
        return self.get(key, lambda v: v in allowed,
                        "one of " + ", ".join("null" if c is None else c for c in allowed))

    def number(self, key: str, lo: float = -math.inf, hi: float = math.inf,
               default: Any = None) -> Any:
        return self.get(key, lambda v: _is_number(v) and lo <= v <= hi,
                        f"a number in [{lo}, {hi}]", default)

    def strs(self, key: str, *, nonempty: bool = False, unique: bool = False,
             names: bool = False) -> tuple[str, ...]:
        def ok(v: Any) -> bool:
            return (isinstance(v, list) and all(isinstance(x, str) for x in v)
                    and (not nonempty or len(v) > 0) and (not unique or len(set(v)) == len(v))
                    and (not names or all(is_plain_name(x) for x in v)))
        what = ("a " + ("non-empty " if nonempty else "") + "list of " + ("unique " if unique
                else "") + ("plain file names" if names else "strings"))
        return tuple(self.get(key, ok, what))

    def mapping(self, key: str, ok: Callable[[Any], bool], what: str) -> dict[str, Any]:
        def check(v: Any) -> bool:
            return isinstance(v, dict) and all(ok(x) for x in v.values())
        return dict(self.get(key, check, f"an object of {what}", {}))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_figure(v: Any) -> bool:  # parity figures may be inf (a non-finite difference)
    return _is_number(v) and not math.isnan(v)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# --- sections ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskInfo:
    """What the model does: ``labels`` in class-id order, the width of its sentence vectors."""

    pair: bool
    labels: tuple[str, ...]
    method: str
    encoder: str
    sources: tuple[str, ...]
    meta_dim: int  # D, the meta-embedding width
    sentence_dim: int  # E, the encoder's output (what `embed` returns)
    vocab_size: int
    # multi-label models (the keys are absent otherwise): a sigmoid per label, and a label is
    # predicted when its probability reaches its threshold (tuned on dev, in ``labels`` order)
    multilabel: bool = False
    thresholds: tuple[float, ...] | None = None
    global_threshold: float | None = None  # the single best threshold on dev (the fallback)
    # an ensemble's members (learn/ensemble.py; absent: 1): the graph averages their
    # probabilities, and meta_dim and sentence_dim are their widths side by side
    members: int = 1

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> TaskInfo:
        k = Keys(data, "task", path, ["pair", "labels", "method", "encoder", "sources",
                                      "meta_dim", "sentence_dim", "vocab_size"],
                 ["multilabel", "thresholds", "members"])
        members = int(k.get("members", lambda v: isinstance(v, int) and not isinstance(v, bool)
                            and 2 <= v <= 64, "a whole number from 2 to 64", 1))
        labels = k.strs("labels", nonempty=True, unique=True)
        multilabel = bool(k.get("multilabel", lambda v: isinstance(v, bool), "true or false",
                                False))
        per: tuple[float, ...] | None = None
        glob: float | None = None
        if multilabel or "thresholds" in k.data:
            if not multilabel:
                raise k._error("thresholds", "belongs to multi-label models only")
            if "thresholds" not in k.data:
                raise k._error(None, "lacks key(s) thresholds (a multi-label model needs them)")
            t = Keys(k.data["thresholds"], "task.thresholds", path, ["global", "per_label"])
            glob = float(t.number("global", 0, 1))
            per = tuple(float(x) for x in t.get(
                "per_label", lambda v: isinstance(v, list) and len(v) == len(labels)
                and all(_is_number(x) and 0 <= x <= 1 for x in v),
                f"a list of {len(labels)} numbers in [0, 1] (one per label)"))
        return cls(pair=k.boolean("pair"), labels=labels,
                   method=k.string("method"), encoder=k.string("encoder"),
                   sources=k.strs("sources", nonempty=True), meta_dim=k.integer("meta_dim", 1),
                   sentence_dim=k.integer("sentence_dim", 1), vocab_size=k.integer("vocab_size"),
                   multilabel=multilabel, thresholds=per, global_threshold=glob,
                   members=members)

    def to_dict(self) -> dict[str, Any]:
        out = {"pair": self.pair, "labels": list(self.labels), "method": self.method,
               "encoder": self.encoder, "sources": list(self.sources),
               "meta_dim": self.meta_dim, "sentence_dim": self.sentence_dim,
               "vocab_size": self.vocab_size}
        if self.members > 1:
            out["members"] = self.members
        if self.multilabel:
            out["multilabel"] = True
            out["thresholds"] = {"global": self.global_threshold,
                                 "per_label": list(self.thresholds or ())}
        return out


@dataclass(frozen=True)
class GraphInfo:
    """One ONNX graph: its file, the external data files it reads, its inputs, outputs, ops."""

    file: str
    data_files: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ops: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Any, path: Path, where: str) -> GraphInfo:
        k = Keys(data, where, path, ["file", "data_files", "inputs", "outputs", "ops"])
        if not is_plain_name(k.data["file"]):
            raise k._error("file", f"must be a plain file name, not {_show(k.data['file'])}")
        return cls(file=k.data["file"], data_files=k.strs("data_files", unique=True, names=True),
                   inputs=k.strs("inputs", nonempty=True, unique=True),
                   outputs=k.strs("outputs", nonempty=True, unique=True), ops=k.strs("ops"))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "data_files": list(self.data_files),
                "inputs": list(self.inputs), "outputs": list(self.outputs), "ops": list(self.ops)}


@dataclass(frozen=True)
class ExportInfo:
    """The export's options, as they shaped the graphs."""

    fold: bool
    table_dtype: str  # float32 | float16
    quantize: str | None  # None | int8
    quantized_ops: tuple[str, ...]  # op types the int8 quantizer really rewrote
    opset: int
    front_end: bool

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> ExportInfo:
        k = Keys(data, "export", path, ["fold", "table_dtype", "quantize", "quantized_ops",
                                        "opset", "front_end"])
        return cls(fold=k.boolean("fold"),
                   table_dtype=k.string("table_dtype", ("float32", "float16")),
                   quantize=k.string("quantize", (None, "int8")),
                   quantized_ops=k.strs("quantized_ops", unique=True), opset=k.integer("opset", 1),
                   front_end=k.boolean("front_end"))

    def to_dict(self) -> dict[str, Any]:
        return {"fold": self.fold, "table_dtype": self.table_dtype, "quantize": self.quantize,
                "quantized_ops": list(self.quantized_ops), "opset": self.opset,
                "front_end": self.front_end}


@dataclass(frozen=True)
class ParityRecord:
    """Torch vs onnxruntime on the check batches: the largest difference per output."""

    cases: int
    max_abs_diff: Mapping[str, float]
    worst_case: Mapping[str, str]  # output -> the batch where the difference was largest
    max_abs_value: Mapping[str, float]  # output -> its largest magnitude (the scale)

    @classmethod
    def from_dict(cls, data: Any, path: Path, where: str) -> ParityRecord:
        k = Keys(data, where, path, ["cases", "max_abs_diff", "worst_case", "max_abs_value"])
        return cls(cases=k.integer("cases"),
                   max_abs_diff=k.mapping("max_abs_diff", _is_figure, "numbers"),
                   worst_case=k.mapping("worst_case", lambda v: isinstance(v, str), "strings"),
                   max_abs_value=k.mapping("max_abs_value", _is_figure, "numbers"))

    def to_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "max_abs_diff": dict(self.max_abs_diff),
                "worst_case": dict(self.worst_case), "max_abs_value": dict(self.max_abs_value)}


@dataclass(frozen=True)
class AccuracyRecord:
    """Dev accuracy of the torch model and of the shipped graph."""

    data: str
    examples: int
    torch_accuracy: float
    onnx_accuracy: float
    change: float
    agreement: float
    metric: str = "accuracy"  # multi-label models: micro_f1 (the *_accuracy keys hold it)

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> AccuracyRecord:
        k = Keys(data, "checks.accuracy", path, ["data", "examples", "torch_accuracy",
                                                 "onnx_accuracy", "change", "agreement"],
                 ["metric"])
        return cls(data=k.get("data", lambda v: isinstance(v, str), "a string"),
                   examples=k.integer("examples"), torch_accuracy=k.number("torch_accuracy", 0, 1),
                   onnx_accuracy=k.number("onnx_accuracy", 0, 1), change=k.number("change", -1, 1),
                   agreement=k.number("agreement", 0, 1),
                   metric=k.string("metric", ("accuracy", "micro_f1")) or "accuracy")

    def to_dict(self) -> dict[str, Any]:
        out = {"data": self.data, "examples": self.examples,
               "torch_accuracy": self.torch_accuracy, "onnx_accuracy": self.onnx_accuracy,
               "change": self.change, "agreement": self.agreement}
        if self.metric != "accuracy":
            out["metric"] = self.metric
        return out


@dataclass(frozen=True)
class Checks:
    """The export's check figures: parity per graph, and with dev data the accuracy change."""

    parity: Mapping[str, ParityRecord] = field(default_factory=dict)
    tolerance: float | None = None  # the gate's atol
    rtol: float | None = None  # the gate's relative part (|onnx - torch| <= atol + rtol |torch|)
    accuracy: AccuracyRecord | None = None
    variant_logits: ParityRecord | None = None  # float16 / int8: the shipped graph vs torch

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> Checks:
        k = Keys(data, "checks", path, [],
                 ["parity", "tolerance", "rtol", "accuracy", "variant_logits"])
        parity = Keys(k.data.get("parity", {}), "checks.parity", path, [], ["model", "front_end"])
        variant = k.data.get("variant_logits")
        return cls(
            parity={g: ParityRecord.from_dict(v, path, f"checks.parity.{g}")
                    for g, v in parity.data.items()},
            tolerance=k.get("tolerance", lambda v: _is_number(v) and v >= 0,
                            "a number >= 0"),
            rtol=k.get("rtol", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
            accuracy=None if k.data.get("accuracy") is None
            else AccuracyRecord.from_dict(k.data["accuracy"], path),
            variant_logits=None if variant is None
            else ParityRecord.from_dict(variant, path, "checks.variant_logits"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.parity:
            out["parity"] = {g: p.to_dict() for g, p in self.parity.items()}
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance
        if self.rtol is not None:
            out["rtol"] = self.rtol
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy.to_dict()
        if self.variant_logits is not None:
            out["variant_logits"] = self.variant_logits.to_dict()
        return out


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    bytes: int

    @classmethod
    def from_dict(cls, data: Any, path: Path, where: str) -> FileRecord:
        k = Keys(data, where, path, ["sha256", "bytes"])
        sha = k.get("sha256", lambda v: isinstance(v, str) and len(v) == 64
                    and all(c in "0123456789abcdef" for c in v), "64 lowercase hex digits")
        return cls(sha256=sha, bytes=k.integer("bytes"))

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}
