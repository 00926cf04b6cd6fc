"""The model directory written by ``metaprep export-onnx`` (documented in docs/model-dir.md).

The only module that knows the directory's layout: file names, the manifest, tokenizer.json,
labels.json and the memory-mapped vocabulary. ``Manifest`` is here because it ties the graphs
and the file records to those names; its sections are typed records in manifest.py, the
vocabulary's format is vocabfile.py, and dirfiles.py checks files whatever their names.
Export writes through ``Manifest``, ``write_vocab`` and ``write_model_files``; everybody else
reads through ``ModelDir.open``, which trusts nothing it was given: every file the manifest
names and every external-data location inside the graphs must resolve inside the directory, the
labels, vocabulary index and tokenizer pattern are checked, each graph is bounded (graphcheck)
and each problem is a ``ModelError`` naming the file. Standard library and numpy only, because
the runtime imports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaprep.atomic import atomic_path
from metaprep.checksum import file_sha256
from metaprep.errors import ModelError
from metaprep.ids import CASE_POLICIES
from metaprep.patterncheck import pattern_problem
from metaprep.runtime import onnx_scan, vocabfile
from metaprep.runtime.dirfiles import check_inside, read_json, verify_files, verify_hashes
from metaprep.runtime.graphcheck import check_graph, check_output_shapes
from metaprep.runtime.graphjoin import check_join
from metaprep.runtime.manifest import (
    AccuracyRecord,
    Checks,
    ExportInfo,
    FileRecord,
    GraphInfo,
    Keys,
    ParityRecord,
    TaskInfo,
    is_plain_name,
)
from metaprep.runtime.onnx_read import Graph, read_model
from metaprep.runtime.vocabfile import MappedVocab, VocabFiles, word_hash
from metaprep.tokenize import MAX_TOKENS_LIMIT, TokenizerConfig

__all__ = [
    "DATA_FILE",
    "DEFERRABLE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GRAPH_FILES",
    "LABELS",
    "MANIFEST",
    "TOKENIZER",
    "VOCAB_INDEX",
    "VOCAB_OFFSETS",
    "VOCAB_TXT",
    "AccuracyRecord",
    "Checks",
    "ExportInfo",
    "FileRecord",
    "GraphInfo",
    "Manifest",
    "MappedVocab",
    "ModelDir",
    "ParityRecord",
    "TaskInfo",
    "file_sha256",
    "graph_bytes",
    "is_model_dir",
    "open_vocab",
    "read_manifest",
    "verify_files",
    "word_hash",
    "write_model_files",
    "write_vocab",
]

FORMAT_NAME = "metaprep-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
LABELS = "labels.json"
DATA_FILE = "model.data"  # the external tensors of every graph
VOCAB_TXT = "vocab.txt"  # one word per line: row i is id i + 2
VOCAB_OFFSETS = "vocab.offsets.npy"  # the byte offset of every line
VOCAB_INDEX = "vocab.index.npy"  # the hash table of the words (vocabfile.py)
GRAPH_FILES = {"model": "model.onnx", "front_end": "front_end.onnx", "text": "text.onnx",
               "serve": "serve.onnx"}
DEFERRABLE = ("text", "serve")  # graphs a model may check and load after it opened (model.py)
REQUIRED_FILES = (VOCAB_TXT, VOCAB_OFFSETS, VOCAB_INDEX, TOKENIZER, LABELS)
_TOP = ["format", "format_version", "metaprep_version", "task", "graphs", "case_policy",
        "max_tokens", "export", "source_run", "checks", "files"]


# --- manifest ------------------------------------------------------------------------------------
@dataclass
class Manifest:
    """What manifest.json holds, typed. ``files`` maps a file name to its size and sha256."""

    task: TaskInfo
    # "model" (always), "front_end" (with --front-end), "text" (texts -> ids; textgraph.py),
    # "serve" (texts -> the model's outputs in one graph, when the text graph's map is complete)
    graphs: dict[str, GraphInfo]
    case_policy: str
    max_tokens: int
    export: ExportInfo
    source_run: dict[str, str | None]  # path, config/weights/store sha256, store_path
    checks: Checks = field(default_factory=Checks)
    files: dict[str, FileRecord] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    metaprep_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "metaprep_version": self.metaprep_version,
            "task": self.task.to_dict(),
            "graphs": {n: g.to_dict() for n, g in self.graphs.items()},
            "case_policy": self.case_policy,
            "max_tokens": self.max_tokens,
            "export": self.export.to_dict(),
            "source_run": dict(self.source_run),
            "checks": self.checks.to_dict(),
            "files": {n: f.to_dict() for n, f in self.files.items()},
        }

    def write(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / MANIFEST
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    def record_files(self, model_dir: str | Path, names: Iterable[str]) -> None:
        for name in names:
            p = Path(model_dir) / name
            self.files[name] = FileRecord(sha256=file_sha256(p), bytes=p.stat().st_size)

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> Manifest:
        """The typed manifest; a ``ModelError`` naming ``path`` and the key for anything off."""
        k = Keys(data, "", path, _TOP)
        k.get("format", lambda v: v == FORMAT_NAME, repr(FORMAT_NAME))
        if data["format_version"] != FORMAT_VERSION:
            raise ModelError(
                f"model directory format version {_short(data['format_version'])} is not "
                f"supported (this metaprep reads {FORMAT_VERSION})",
                path=path, hint="re-export the run with this version of metaprep")
        graphs = Keys(data["graphs"], "graphs", path, ["model"], ["front_end", "text", "serve"])
        files = Keys(data["files"], "files", path, [], None)
        for name in files.data:
            if not is_plain_name(name):
                raise files._error(name, "is not a plain file name inside the directory")
        manifest = cls(
            task=TaskInfo.from_dict(data["task"], path),
            graphs={n: GraphInfo.from_dict(g, path, f"graphs.{n}") for n, g in graphs.data.items()},
            case_policy=k.string("case_policy", CASE_POLICIES),
            max_tokens=k.integer("max_tokens", 1, MAX_TOKENS_LIMIT),
            export=ExportInfo.from_dict(data["export"], path),
            source_run=k.mapping("source_run", lambda v: v is None or isinstance(v, str),
                                 "strings or null"),
            checks=Checks.from_dict(data["checks"], path),
            files={n: FileRecord.from_dict(r, path, f"files.{n}") for n, r in files.data.items()},
            metaprep_version=k.get("metaprep_version", lambda v: isinstance(v, str), "a string"),
        )
        manifest._check_listed(path)
        return manifest

    def _check_listed(self, path: Path) -> None:
        """Every file a reader opens is listed in ``files``, so it is size- and hash-checked."""
        needed = [*REQUIRED_FILES]
        for name, g in self.graphs.items():
            needed += [g.file, *g.data_files]
            if g.file != GRAPH_FILES[name]:
                raise ModelError(f"manifest key graphs.{name}.file must be {GRAPH_FILES[name]}, "
                                 f"not {_short(g.file)}", path=path)
        missing = sorted(set(needed) - set(self.files))
        if missing:
            raise ModelError(f"manifest key files lacks {', '.join(missing)}", path=path,
                             hint="the model directory is damaged; re-export it")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def is_model_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a manifest of this format (export-onnx --force replaces nothing
    else); no other check."""
    try:
        data = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


def graph_bytes(model_dir: str | Path, name: str) -> int:
    """The size of a graph's file (0 if there is none), before anything is checked: a model
    decides by it whether to load the graph on a thread."""
    try:
        return (Path(model_dir) / GRAPH_FILES[name]).stat().st_size
    except OSError:
        return 0


def read_manifest(model_dir: str | Path) -> Manifest:
    path = Path(model_dir) / MANIFEST
    if not Path(model_dir).is_dir():
        raise ModelError("no such model directory", path=model_dir,
                         hint="create one with `metaprep export-onnx RUN_DIR -o MODEL_DIR`")
    if path.exists() or path.is_symlink():
        check_inside(model_dir, [MANIFEST])  # before anything is read from it
    if not path.exists() and not path.is_symlink():
        raise ModelError("no manifest.json: not a model directory", path=model_dir,
                         hint="create one with `metaprep export-onnx`")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ModelError(f"not a {FORMAT_NAME} manifest", path=path)
    return Manifest.from_dict(data, path)


# --- what export writes beside the graphs --------------------------------------------------------
def _vocab_files(model_dir: str | Path) -> VocabFiles:
    d = Path(model_dir)
    return VocabFiles(d / VOCAB_TXT, d / VOCAB_OFFSETS, d / VOCAB_INDEX)


def write_vocab(model_dir: str | Path, words: Sequence[str]) -> list[str]:
    """The vocabulary's files (vocabfile.py); returns the file names written."""
    vocabfile.write_vocab(_vocab_files(model_dir), words)
    return [VOCAB_TXT, VOCAB_OFFSETS, VOCAB_INDEX]


def open_vocab(model_dir: str | Path, *, case_policy: str) -> MappedVocab:
    """The memory-mapped vocabulary of a model directory, its files checked."""
    return MappedVocab(_vocab_files(model_dir), case_policy=case_policy)


def write_model_files(model_dir: str | Path, *, tokenizer: TokenizerConfig,
                      labels: Sequence[str]) -> list[str]:
    """tokenizer.json and labels.json; returns the file names written."""
    d = Path(model_dir)
    (d / TOKENIZER).write_text(json.dumps(tokenizer.to_dict(), indent=2) + "\n")
    (d / LABELS).write_text(json.dumps(list(labels), indent=2, ensure_ascii=False) + "\n")
    return [TOKENIZER, LABELS]


def _read_tokenizer(path: Path) -> TokenizerConfig:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ModelError("tokenizer.json must hold an object", path=path)
    try:  # truncation is the manifest's max_tokens, applied by the runtime
        config = TokenizerConfig.from_dict({**data, "max_tokens": None})
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:  # re's, on a pattern
        raise ModelError(f"bad tokenizer.json: {' '.join(str(exc).split())[:300]}",
                         path=path) from exc
    if not isinstance(config.lowercase, bool):
        raise ModelError("bad tokenizer.json: lowercase must be true or false", path=path)
    problem = pattern_problem(config.pattern) if config.mode == "regex" else None
    if problem:
        raise ModelError(f"tokenizer pattern refused: {problem}", path=path,
                         hint="use a pattern without groups or nested repetition")
    return config


# --- the directory, opened once ------------------------------------------------------------------
@dataclass(frozen=True)
class ModelDir:
    """A checked model directory: the typed manifest, the tokenizer config and the labels.
    ``deferred``: the graphs whose checks ``check_deferred`` runs (none unless asked)."""

    path: Path
    manifest: Manifest
    tokenizer: TokenizerConfig
    labels: tuple[str, ...]
    verify: str = "fast"
    deferred: tuple[str, ...] = ()
    _parsed: dict[str, Graph] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, model_dir: str | Path, *, verify: str = "fast",
             defer: Iterable[str] = ()) -> ModelDir:
        """``verify``: "fast" (sizes, sha256 up to 64 MiB), "full" or "none" (the checks that
        keep a stranger's directory from reading outside itself run always). ``defer``: text
        or serve, graphs whose sha256 and graph checks wait for ``check_deferred`` (a 3M-word
        text graph took 0.3 s to hash and check, and each is read only after that call)."""
        if verify not in ("fast", "full", "none"):
            raise ValueError("verify must be fast, full or none")
        path = Path(model_dir)
        manifest = read_manifest(path)
        check_inside(path, manifest.files)
        deferred = tuple(n for n in manifest.graphs if n in set(defer) and n in DEFERRABLE)
        later = {f for n in deferred for f in (manifest.graphs[n].file,
                                               *manifest.graphs[n].data_files)}
        later -= {f for n, g in manifest.graphs.items() if n not in deferred
                  for f in g.data_files}  # a data file read now is hashed now
        if verify != "none":
            verify_files(path, manifest, full=verify == "full", later=later)
        parsed = {name: _check_graph(path, name, graph, manifest)
                  for name, graph in manifest.graphs.items() if name not in deferred}
        labels = read_json(path / LABELS)
        if labels != list(manifest.task.labels):
            raise ModelError("labels.json does not match the manifest's task.labels",
                             path=path / LABELS, hint="re-export the model directory")
        opened = cls(path, manifest, _read_tokenizer(path / TOKENIZER), manifest.task.labels,
                     verify, deferred, parsed)
        if not deferred:
            opened._check_serve()
        return opened

    def check_deferred(self) -> None:
        """The deferred graphs' sha256 (per ``verify``) and graph checks, and the serve graph's
        join: what ``open`` does for the others. Call it before reading any of them."""
        if self.verify != "none":
            m = self.manifest
            names = {f for n in self.deferred for f in (m.graphs[n].file, *m.graphs[n].data_files)}
            verify_hashes(self.path, m, sorted(names), full=self.verify == "full")
        for name in self.deferred:
            self._parsed[name] = _check_graph(self.path, name, self.manifest.graphs[name],
                                              self.manifest)
        self._check_serve()

    def _check_serve(self) -> None:
        parsed, path = self._parsed, self.path
        if "serve" in parsed:
            if "text" not in parsed or self.manifest.task.pair:
                raise ModelError("a serve graph without a text graph, or for sentence pairs",
                                 path=path / GRAPH_FILES["serve"],
                                 hint="re-export the model directory")
            check_join(parsed["serve"], parsed["text"], parsed["model"], self.manifest.max_tokens,
                       path / GRAPH_FILES["serve"], GRAPH_FILES)
        for name in ("text", "serve"):  # their parse holds the whole file: no longer needed
            parsed.pop(name, None)

    def graph_path(self, name: str) -> Path:
        graph = self.manifest.graphs.get(name)
        if graph is None:
            raise ModelError(f"this model directory has no {name} graph", path=self.path,
                             hint="re-export with --front-end")
        return self.path / graph.file

    def vocab(self) -> MappedVocab:
        vocab = open_vocab(self.path, case_policy=self.manifest.case_policy)
        if len(vocab) != self.manifest.task.vocab_size:
            raise ModelError(f"vocab.txt has {len(vocab)} words, the manifest says "
                             f"{self.manifest.task.vocab_size}", path=self.path / VOCAB_TXT)
        return vocab

    def check_outputs(self, name: str, shapes: Mapping[str, Sequence[Any]]) -> None:
        """The graph's output widths agree with the manifest (class count = number of labels)."""
        task = self.manifest.task
        want = {"logits": len(task.labels), "probabilities": len(task.labels),
                "sentence_embedding": task.sentence_dim}
        graph = self.manifest.graphs[name]
        if sorted(shapes) != sorted(graph.outputs):
            raise ModelError(f"{graph.file} has outputs {sorted(shapes)}, the manifest says "
                             f"{sorted(graph.outputs)}", path=self.path / graph.file)
        for out, width in want.items():
            got = shapes.get(out)
            if got is not None and (len(got) != 2 or got[1] != width):
                raise ModelError(f"{graph.file} output {out} has shape {list(got)}, expected "
                                 f"[batch, {width}] ({len(task.labels)} labels)",
                                 path=self.path / graph.file, hint="re-export the model")


def _check_graph(model_dir: Path, name: str, graph: GraphInfo, manifest: Manifest) -> Graph:
    """The graph's external-data locations are plain names inside the directory, all recorded in
    the manifest's data_files (which verify_files covers), and what it may allocate is bounded
    (graphcheck), all read from the graph's protobuf before onnxruntime sees it."""
    path = model_dir / graph.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the graph: {exc.strerror or exc}", path=path) from exc
    try:
        locations = onnx_scan.external_locations(data)
        parsed = read_model(data)
    except ValueError as exc:
        raise ModelError(f"not a readable ONNX graph: {exc}", path=path) from exc
    for loc in sorted(set(locations)):
        if loc not in graph.data_files:
            raise ModelError(f"the graph reads external data from {loc!r}, which the manifest "
                             f"does not list for it", path=path,
                             hint="refusing to load it; re-export the model directory")
    check_inside(model_dir, set(locations))
    sizes = {f: (model_dir / f).stat().st_size for f in graph.data_files
             if (model_dir / f).is_file()}
    _, shapes = check_graph(parsed, kind=name, max_tokens=manifest.max_tokens,
                            pair=manifest.task.pair, data_sizes=sizes, path=path)
    check_output_shapes(path, name, shapes, set(manifest.graphs[name].outputs), manifest.task,
                        manifest.max_tokens)
    return parsed
