"""The run directory: the only module that knows its files (docs/model.md, "The run directory").

    Run(...).write_description()      train describes a new run once its inputs check out (on
    Run.create(path, ...)             rank 0), then writes checkpoints, best weights and metrics
    Run.open(path, store=..., ...)    everyone else: the small files read and validated once, the
                                      store opened lazily and verified once, .encoder() and
                                      .load_model() built from them

Every write is a temporary file renamed into place. A missing, garbled or hand-edited file is a
one-line ModelError naming it. Checkpoints are loaded with ``weights_only=True``, never unpickled.
No torch at import: the pipeline reads metrics through this module.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from metaprep.errors import ModelError, StoreError
from metaprep.learn.config import RunConfig
from metaprep.learn.runfiles import (
    SHA256_HEX,
    SPLITS,
    Checkpoint,
    DataRecord,
    FileRef,
    StoreRef,
    check_run_file,
    checked_fields,
    one_line,
    read_config,
    read_json,
    read_labels,
    read_tokenizer,
    write_json,
)
from metaprep.learn.weights import load_checkpoint, load_weights, save_checkpoint, save_weights
from metaprep.tokenize import TokenizerConfig

if TYPE_CHECKING:
    import torch

    from metaprep.learn.data import TextEncoder
    from metaprep.learn.model import MetaEmbeddingClassifier
    from metaprep.learn.multilabel import Thresholds
    from metaprep.prep.store import Store

__all__ = [  # the layout's file names, then the API
    "ANALYSIS", "ATTENTION_PLOT", "BEST", "CHECKPOINT", "CONFIG", "DATA", "ENSEMBLE", "LABELS",
    "LEARNING_CURVES", "MEMBERS", "METRICS", "SPLITS", "STORE", "TEACHER", "THRESHOLDS",
    "TOKENIZER", "TEACHER_RECORD", "Checkpoint", "DataRecord", "FileRef", "Run", "StoreRef",
    "partly_described", "run_state", "scratch_folder", "write_json",
]

# --- the layout ---------------------------------------------------------------------------------
CONFIG = "config.json"  # RunConfig; written last of the description, so it marks a whole one
LABELS = "labels.json"
TOKENIZER = "tokenizer.json"
STORE = "store.json"
DATA = "data.json"
METRICS = "metrics.json"
ANALYSIS = "analysis.json"
BEST = "best.safetensors"
CHECKPOINT = "checkpoint.pt"
LEARNING_CURVES = "learning_curves.png"
ATTENTION_PLOT = "attention_by_source.png"
THRESHOLDS = "thresholds.json"  # multi-label runs: per-label thresholds tuned on dev
ENSEMBLE = "ensemble.json"  # marks a directory of member runs instead (learn/ensemble.py)
MEMBERS = "members"  # an ensemble's folder of member runs, members/0 ... members/K-1
TEACHER = "teacher"  # the folder of a run that trains its own teacher (teacher_members)
TEACHER_RECORD = "teacher.json"  # a taught run: which teacher, by content (learn/teacher.py)
_WRITTEN = (CONFIG, LABELS, TOKENIZER, STORE, DATA, METRICS, ANALYSIS, BEST, CHECKPOINT,
            LEARNING_CURVES, ATTENTION_PLOT, THRESHOLDS, TEACHER_RECORD)



def scratch_folder(path: str | Path, pid: int) -> tuple[str, Path]:
    """(name prefix, parent) of process ``pid``'s scratch folder beside the run directory
    ``path``: files mapped then unlinked at once (learn/scratch.py), none left behind."""
    run = Path(path).absolute()
    return f".{run.name}.scratch-{pid}-", run.parent


RunState = Literal["empty", "started", "checkpointed", "weights-only"]


def run_state(path: str | Path) -> RunState:
    """What a directory holds: ``empty`` (no run), ``started`` (described, but stopped before
    its first checkpoint: safe to start over), ``checkpointed`` (resumable), or ``weights-only``
    (best weights and metrics without a checkpoint: finished, its checkpoint deleted).

    A checkpoint holds the best weights so far; best.safetensors is written once, after the
    final metrics.json (learn/train.py): best weights with metrics and no checkpoint are a
    finished run. Older runs wrote best weights before each checkpoint; one killed between the
    two writes of its first epoch has best weights without metrics: it counts as started."""
    run = Path(path)
    if not (run / CONFIG).exists():
        return "empty"
    if (run / CHECKPOINT).exists():
        return "checkpointed"
    return "weights-only" if (run / BEST).exists() and (run / METRICS).exists() else "started"


def partly_described(path: str | Path) -> bool:
    """Whether ``path`` holds nothing but description files written before config.json (and
    temporary files of ours): a run killed, or out of disk, while describing itself, which a
    new run may start over (there is nothing to resume)."""
    run = Path(path)
    names = [p.name for p in run.iterdir()] if run.is_dir() else []
    early = (LABELS, TOKENIZER, STORE, DATA)
    return bool(names) and not (run / CONFIG).exists() and all(
        n in early or any(n.startswith(f".{w}.") and n.endswith(".tmp") for w in _WRITTEN)
        for n in names)


# --- the run ------------------------------------------------------------------------------------
class Run:
    """One run directory: its description (config, labels, tokenizer, store and data records),
    one store handle, and the files training writes. ``Run.open`` reads an existing run; train
    builds one in memory and writes it with ``write_description`` once its inputs check out."""

    def __init__(self, path: str | Path, *, config: RunConfig, labels: list[str],
                 tokenizer: TokenizerConfig, store_ref: StoreRef, data: DataRecord,
                 store: str | Path | None = None, verify_store: bool = True,
                 opened: Store | None = None) -> None:
        self.path = Path(path)
        self.config = config
        self.labels = list(labels)
        # texts are cut at the config's max_tokens: one value for training, evaluation, export
        self.tokenizer = replace(tokenizer, max_tokens=config.max_tokens)
        self.store_ref = store_ref
        self.data = data
        self.store_given = store is not None
        self.store_path = Path(store) if store is not None else Path(store_ref.path)
        self.verify_store = verify_store
        self._store = opened  # an open handle the caller vouches for (train's own)
        self._encoder: TextEncoder | None = None

    @classmethod
    def open(cls, path: str | Path, *, store: str | Path | None = None,
             verify_store: bool = True) -> Run:
        """Read and validate the description files. The store (``store``, else the recorded
        one) is opened on first use and checked against the record: its size always, its sha256
        unless ``verify_store`` is False (hashing a multi-GB store you trust takes a while)."""
        run = Path(path)
        if not run.is_dir():
            raise ModelError("no such run directory", path=run)
        if (run / ENSEMBLE).is_file() and not (run / CONFIG).exists():
            raise ModelError("is an ensemble of runs, not one run", path=run,
                             hint=f"give one of its members ({run / MEMBERS / '0'}), or "
                             "export the whole: metaprep export-onnx")
        config = read_config(run / CONFIG)
        ref = StoreRef.from_dict(read_json(run / STORE), path=run / STORE)
        if ref.vocab_size != config.vocab_size:
            raise ModelError(f"records a store of {ref.vocab_size} words, config.json "
                             f"{config.vocab_size}", path=run / STORE,
                             hint="the run was edited by hand")
        tokenizer = read_tokenizer(run / TOKENIZER)
        if tokenizer.max_tokens != config.max_tokens:
            raise ModelError(f"cuts texts at {tokenizer.max_tokens} tokens, config.json at "
                             f"{config.max_tokens}", path=run / TOKENIZER,
                             hint="the run was edited by hand, or written by an older metaprep: "
                                  "train it again")
        return cls(run, config=config, labels=read_labels(run / LABELS, config.num_labels),
                   tokenizer=tokenizer, store_ref=ref,
                   data=DataRecord.from_dict(read_json(run / DATA), path=run / DATA),
                   store=store, verify_store=verify_store)

    @classmethod
    def create(cls, path: str | Path, **description: Any) -> Run:
        """A new run directory, written at once (``description``: the keywords of Run())."""
        run = cls(path, **description)
        run.write_description()
        return run

    def write_description(self) -> None:
        """Write the five description files (train, rank 0). config.json goes last: a directory
        with it holds a whole description. Stale temporary files of ours are removed first."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in _WRITTEN:
            for stale in self.path.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        write_json(self.path / LABELS, self.labels)
        write_json(self.path / TOKENIZER, self.tokenizer.to_dict())
        write_json(self.path / STORE, self.store_ref.to_dict())
        write_json(self.path / DATA, self.data.to_dict())
        write_json(self.path / CONFIG, self.config.to_dict())

    # --- the store, the encoder, the model
    def store(self) -> Store:
        """The run's store, opened on first use and checked once against store.json."""
        if self._store is None:
            from metaprep.prep.store import Store

            if not self.store_given and not self.store_path.exists():
                raise StoreError("the run's store is gone", path=self.store_path,
                                 hint="pass --store with its new location")
            store = Store(self.store_path)
            try:
                self._check_store(store)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def _check_store(self, store: Store) -> None:
        ref = self.store_ref
        why = ""
        if store.vocab_size != ref.vocab_size:
            why = (f"vocabulary of {store.vocab_size} words does not match the run's "
                   f"{ref.vocab_size}")
        elif self.verify_store and store.sha256() != ref.sha256:
            why = (f"sha256 {store.sha256()[:12]}... differs from the run's store "
                   f"({ref.sha256[:12]}...)")
        if why:
            raise StoreError(f"not the store the run was started with: {why}", path=store.path,
                             hint=f"use the store the run was trained on ({ref.path})")

    def close(self) -> None:
        """Close the store handle (the Run stays usable; the store reopens on demand)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def case_policy(self) -> str:
        return self.store_ref.case_policy

    def encoder(self) -> TextEncoder:
        """Text -> model ids exactly as in training: the run's tokenizer, the store's vocabulary
        and the recorded case policy."""
        if self._encoder is None:
            from metaprep.learn.data import TextEncoder

            self._encoder = TextEncoder(self.store().vocab, case_policy=self.case_policy,
                                        tokenizer=self.tokenizer)
        return self._encoder

    def build_model(self, *, progress: bool = False,
                    tables: tuple[list[torch.Tensor], torch.Tensor] | None = None
                    ) -> MetaEmbeddingClassifier:
        """A new model of the run's config, its tables from the store (or ``tables``, the
        frozen tables and presence another run of the same store and sources already read: an
        ensemble's members share them); once the run has weights, the config's shapes are
        checked against them before anything is allocated."""
        from metaprep.learn.model import MetaEmbeddingClassifier, load_tables, store_words
        from metaprep.learn.scratch import Scratch

        if tables is None:  # mapped from files beside the run (learn/scratch.py)
            with Scratch.beside(*scratch_folder(self.path, os.getpid())) as scratch:
                tables = load_tables(self.store(), self.config, progress=progress,
                                     scratch=scratch)
        frozen, present = tables
        words = store_words(self.store(), self.config)
        self._check_fits_best(frozen, present, words)
        try:  # an edited config.json can ask for a model too large to allocate
            return MetaEmbeddingClassifier(self.config, frozen, present, words,
                                           progress=progress)
        except (RuntimeError, MemoryError) as exc:
            raise ModelError(f"cannot build the model config.json describes: {one_line(exc)}",
                             path=self.path / CONFIG,
                             hint="the sizes are too large, or config.json was edited") from exc

    def _check_fits_best(self, tables: list[torch.Tensor], present: torch.Tensor,
                         words: list[str] | None) -> None:
        """Refuse a config whose parameter shapes differ from best.safetensors (a hand-edited
        ``hidden = 100000`` would otherwise allocate gigabytes before the weights are compared):
        the model is built on torch's meta device, which allocates nothing."""
        import torch
        from safetensors import safe_open

        from metaprep.learn.model import MetaEmbeddingClassifier

        path = self.path / BEST
        check_run_file(path)
        try:
            with safe_open(str(path), "pt") as f:
                have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            with torch.device("meta"):
                shell = MetaEmbeddingClassifier(
                    self.config, [torch.empty_like(t, device="meta") for t in tables],
                    torch.empty_like(present, device="meta"), words)
        except Exception:  # no weights yet, or unreadable ones: load_best says so
            return
        for key, value in shell.state_dict().items():
            want = tuple(value.shape)
            if key in have and have[key] != want:
                raise ModelError(f"weights do not fit the config: {key} has shape "
                                 f"{list(have[key])} in {BEST}, config.json makes it "
                                 f"{list(want)}", path=self.path / CONFIG,
                                 hint="config.json was edited; restore it or train again")

    def load_model(self, *, progress: bool = False,
                   tables: tuple[list[torch.Tensor], torch.Tensor] | None = None
                   ) -> MetaEmbeddingClassifier:
        """The trained model: tables from the store (or ``tables``, see build_model), the best
        weights, in eval mode."""
        state = self.load_best()
        model = self.build_model(progress=progress, tables=tables)
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"weights do not fit the config: {one_line(exc)}",
                             path=self.path / BEST) from exc
        return model.eval()

    # --- what training writes (the tensors' files: weights.py)
    def save_best(self, state: dict[str, torch.Tensor]) -> None:
        save_weights(self.path / BEST, state)

    def load_best(self) -> dict[str, torch.Tensor]:
        return load_weights(self.path / BEST)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        save_checkpoint(self.path / CHECKPOINT, checkpoint)

    def drop_checkpoint(self) -> None:
        """A finished run: the optimizer state and the last weights go (the best stay); a
        resume then says the run is finished."""
        (self.path / CHECKPOINT).unlink(missing_ok=True)

    def load_checkpoint(self, *, map_location: Any = "cpu") -> Checkpoint:
        """The resume state; only plain tensors and containers are accepted (nothing unpickled)."""
        return load_checkpoint(self.path / CHECKPOINT, map_location=map_location)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / METRICS, metrics)

    def write_thresholds(self, thresholds: Thresholds) -> None:
        write_json(self.path / THRESHOLDS, thresholds.to_dict(self.labels))

    def thresholds(self) -> Thresholds | None:
        """A multi-label run's tuned thresholds (None before training finished them, and for
        single-label runs), checked against labels.json."""
        from metaprep.learn.multilabel import Thresholds

        path = self.path / THRESHOLDS
        if self.config.task != "multilabel" or not path.exists():
            return None
        data = read_json(path)

        def ok(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1

        per = data.get("per_label") if isinstance(data, dict) else None
        if (not isinstance(per, dict) or list(per) != self.labels
                or not all(ok(v) for v in per.values()) or not ok(data.get("global"))):
            raise ModelError("expected {\"global\": t, \"per_label\": {label: t}} with every "
                             "label of labels.json in order and each t in [0, 1]", path=path,
                             hint="the file was edited by hand; train the run again")
        return Thresholds(float(data["global"]), tuple(float(per[k]) for k in self.labels))

    def write_teacher(self, record: dict[str, str]) -> None:
        """A taught run's teacher as it was when the run started: {"path", "sha256"}."""
        write_json(self.path / TEACHER_RECORD, record)

    def teacher_record(self) -> dict[str, str] | None:
        """teacher.json (None when absent), checked."""
        path = self.path / TEACHER_RECORD
        check_run_file(path)
        if not path.exists():
            return None
        record = checked_fields(read_json(path), {"path": str, "sha256": str}, path)
        if not SHA256_HEX.fullmatch(record["sha256"]):
            raise ModelError("sha256 is not 64 lowercase hex digits", path=path)
        return record

    def write_analysis(self, report: dict[str, Any]) -> None:
        write_json(self.path / ANALYSIS, report)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """metrics.json, read now (it grows while training runs); None before the first epoch."""
        path = self.path / METRICS
        if not path.exists():
            return None
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("epochs", []), list):
            raise ModelError("expected an object with a list of epochs", path=path)
        return data
