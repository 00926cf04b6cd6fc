"""metaprep's stages as library functions: the documented Python API.

Each stage takes one typed options dataclass and returns a typed result. ``metaprep <command>``
and ``metaprep run PIPELINE.toml`` are two thin faces over these same functions.

    stage     options          result           implementation
    split     SplitOptions     SplitResult      metaprep.prep.split
    align     AlignOptions     AlignResult      metaprep.prep.align
    train     TrainOptions     TrainResult      metaprep.learn.train
    evaluate  EvaluateOptions  EvaluateResult   metaprep.learn.evaluate
    export    ExportOptions    ExportResult     metaprep.serve.export
    predict   PredictOptions   PredictResult    metaprep.serve.predict
    embed     EmbedOptions     EmbedResult      metaprep.serve.predict

A field that names a file says so in its metadata: ``{"path": "in"}`` for what a stage reads,
``{"path": "out"}`` for what it writes. The pipeline hashes the first and fills the second.
Importing this module is cheap: each stage imports its heavy libraries when it runs.

    import metaprep as mp
    mp.align(mp.AlignOptions(sources={"glove": "glove.txt"}, vocab=("train.tsv",),
                             output="store.h5"))
    run = mp.train(mp.TrainOptions(store="store.h5", train="train.tsv", dev="dev.tsv",
                                   output="run"))
    mp.export(mp.ExportOptions(run="run", output="model"))
    mp.Model("model").predict(["a fine film"])
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from metaprep.errors import ConfigError
from metaprep.learn.config import LIMITS as RUN_LIMITS
from metaprep.outputs import claim_outputs, is_model_dir, only_replace_a_store, path_fields
from metaprep.taskdata import task_columns

__all__ = [
    "AlignOptions",
    "AlignResult",
    "DistillOptions",
    "DistillResult",
    "EvaluateOptions",
    "EvaluateResult",
    "ExportOptions",
    "ExportResult",
    "SplitOptions",
    "SplitResult",
    "TaskColumns",
    "TrainOptions",
    "TrainResult",
    "align",
    "distill",
    "evaluate",
    "export",
    "path_fields",
    "split",
    "train",
]

PathLike = str | Path


def _in(default: Any = None) -> Any:
    """A field naming input file(s): hashed by the pipeline, never an output's target."""
    meta = {"path": "in"}
    if isinstance(default, (dict, tuple)):  # a fresh copy for every options object
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _out(default: Any = None) -> Any:
    """A field naming what the stage writes: filled with the stage directory by the pipeline."""
    return field(default=default, metadata={"path": "out"})


def _req(value: Any, name: str, stage: str) -> Any:
    if value is None or value == "" or value == {}:
        raise ConfigError(f"metaprep {stage}: {name} is required")
    return value


@dataclass(frozen=True)
class TaskColumns:
    """The column names of task data, for the stages that read it (``--text-column``...)."""

    text_column: str = "text"  # task data's text column (TSV/CSV) or key (JSONL)
    label_column: str = "label"  # its label column
    text_a_column: str = "text_a"  # a pair's first text
    text_b_column: str = "text_b"  # a pair's second text


# --- split --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitOptions(TaskColumns):
    data: PathLike | None = _in()  # one labelled file: TSV/CSV/JSONL/fastText __label__ lines
    output: PathLike | None = _out()  # directory for train.tsv, dev.tsv, test.tsv
    dev: float = 0.15  # share of each label for dev
    test: float = 0.15  # share of each label for test (0: no test.tsv)
    seed: int = 0  # shuffle seed: the same seed gives the same files
    encoding: str = "utf-8"  # of the data file (e.g. latin-1)
    task: str | None = None  # single | multilabel [detected from the data]
    label_sep: str = ","  # multi-label TSV/CSV: the separator inside the label column


@dataclass(frozen=True)
class SplitResult:
    output: Path
    counts: dict[str, int]  # examples per split
    notes: list[str] = field(default_factory=list)  # what a user should hear (multi-label)


def split(options: SplitOptions) -> SplitResult:
    """One labelled file -> stratified, seeded train/dev/test TSV files."""
    from metaprep.prep.split import split_file, split_multilabel

    o = options
    out = Path(_req(o.output, "output", "split"))
    files = {f"output/{n}.tsv": out / f"{n}.tsv" for n in ("train", "dev", "test")}
    data = _req(o.data, "data", "split")
    task, why = _resolve_task(o.task, data, label_sep=o.label_sep, encoding=o.encoding,
                             columns=task_columns(o))
    with claim_outputs("split", o, files):
        if task == "multilabel":
            counts, notes = split_multilabel(data, out, dev=o.dev, test=o.test, seed=o.seed,
                                             encoding=o.encoding, columns=task_columns(o),
                                             label_sep=o.label_sep)
            return SplitResult(out, counts, ([why] if why else []) + notes)
        counts = split_file(data, out, dev=o.dev, test=o.test,
                            seed=o.seed, encoding=o.encoding, columns=task_columns(o))
    return SplitResult(out, counts)


def _resolve_task(task: str | None, data: PathLike, *, label_sep: str, encoding: str,
                 columns: Any) -> tuple[str, str]:
    """(task, note): the given task, or the one the data shows (the note says why)."""
    from metaprep.labelsets import TASKS, check_label_sep, detect_task

    check_label_sep(label_sep)
    if task is not None:
        if task not in TASKS:
            raise ConfigError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
        return task, ""
    found, why = detect_task(data, label_sep=label_sep, encoding=encoding, columns=columns)
    if found == "multilabel":
        return found, (f"multi-label task detected ({why}); pass --task single to read each "
                       "label whole")
    return found, ""


# --- align --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlignOptions(TaskColumns):
    sources: dict[str, str] = _in({})  # name -> embedding file, in store order
    output: PathLike | None = _out()  # the HDF5 store to write
    vocab: tuple[str, ...] = _in(("union",))  # union, intersection, or word/task files
    format: dict[str, str] = field(default_factory=dict)  # name -> format, instead of detection
    tensor: dict[str, str] = field(default_factory=dict)  # name -> tensor in a .safetensors file
    vocab_file: dict[str, str] = _in({})  # name -> vocabulary of a matrix source
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

    out = Path(_req(options.output, "output", "align"))
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


# --- distill ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistillOptions:
    model: PathLike | None = _in()  # a BERT folder (config.json + model.safetensors) or .onnx
    output: PathLike | None = _out()  # the word2vec binary file to write (+ OUTPUT.json)
    words: PathLike | None = _in()  # a word list to distil instead of the tokenizer's vocabulary
    vocab_file: PathLike | None = _in()  # the WordPiece vocab.txt [the model folder's]
    pca_dims: int | None = 256  # PCA to this many dimensions (None: keep all)
    zipf: bool = True  # scale rows by log(2 + rank): frequent entries count less
    batch_size: int = 256  # entries per forward pass
    threads: int | None = None  # torch CPU threads [torch's choice]
    quiet: bool = False  # no progress bar


@dataclass(frozen=True)
class DistillResult:
    output: Path
    provenance: dict[str, Any]  # what OUTPUT.json holds: model, sha256, dims, PCA, date


def distill(options: DistillOptions) -> DistillResult:
    """A sentence-transformer -> a static embedding file `align` reads (model2vec's recipe)."""
    import torch

    from metaprep.learn.distill import distill_model

    o = options
    out = Path(_req(o.output, "output", "distill"))
    if o.threads:
        torch.set_num_threads(o.threads)
    with claim_outputs("distill", o, {"output": out,
                                      "provenance": out.with_name(out.name + ".json")}):
        record = distill_model(_req(o.model, "model", "distill"), out, words=o.words,
                               vocab_file=o.vocab_file, pca_dims=o.pca_dims, zipf=o.zipf,
                               batch_size=o.batch_size, progress=not o.quiet)
    return DistillResult(out, record)


# --- train --------------------------------------------------------------------------------------
# Hyper-parameters left at None take the run config's defaults (metaprep.learn.config.RunConfig);
# on --resume, the run's saved config, and a value given that differs from it is an error.
HYPER = ("proj_dim", "gating", "context_hidden", "mask_missing", "use_derived", "mix_relu",
         "mix_dropout", "source_norm", "word_features", "source_dropout", "mix_entropy",
         "encoder", "hidden", "mlp_hidden", "lr", "lr_decay", "min_lr", "patience",
         "epochs", "batch_size", "grad_clip", "seed", "checkpoint_steps", "pos_weight",
         "select_metric", "learned_dim", "learned_buckets", "learned_init", "learned_dropout",
         "learned_weight_decay", "learned_lr_scale")


@dataclass(frozen=True)
class TrainOptions(TaskColumns):
    # upper bounds of the sizes (RunConfig's), checked by a pipeline when its file is loaded
    BOUNDS: ClassVar[dict[str, int]] = RUN_LIMITS
    store: PathLike | None = _in()  # the aligned store (on resume: the run's, by default)
    train: PathLike | None = _in()  # training data (on resume: the run's)
    dev: PathLike | None = _in()  # dev data: lr decay, early stopping, best epoch
    test: PathLike | None = _in()  # scored with the best weights at the end
    output: PathLike | None = _out()  # the run directory [artifacts/runs/<time>-<method>]
    method: str | None = None  # dme | cdme | concat | sum | single:NAME [dme]
    sources: tuple[str, ...] = ()  # store sources to use [all]
    proj_dim: int | None = None  # size d' of the projected embeddings [256]
    gating: str | None = None  # softmax over sources, or a sigmoid gate per source [softmax]
    context_hidden: int | None = None  # CDME scorer BiLSTM units per direction [2]
    mask_missing: bool | None = None  # sources without a word get weight 0 [true]
    use_derived: bool | None = None  # subword/map OOV rows count as present [true]
    mix_relu: bool | None = None  # ReLU after the mix [false]
    mix_dropout: float | None = None  # dropout on the meta-embeddings [0]
    source_norm: str | None = None  # none | center | scale | layernorm per source [layernorm]
    word_features: bool | None = None  # word features into the dme/cdme scorer [false]
    source_dropout: float | None = None  # drop whole sources per token in training [0]
    mix_entropy: float | None = None  # loss weight of the mixing weights' entropy [0]
    encoder: str | None = None  # bilstm (BiLSTM-max) | pool (max+mean) [bilstm]
    hidden: int | None = None  # encoder BiLSTM units per direction [512]
    mlp_hidden: int | None = None  # classifier hidden units [512]
    learned_dim: int | None = None  # the learned source's size; 0: no learned source [0]
    learned_buckets: int | None = None  # hashed word-bigram rows of the learned source [0]
    learned_init: str | None = None  # store source whose rows start the learned ones [random]
    learned_dropout: float | None = None  # dropout on the learned vectors [0]
    learned_weight_decay: float | None = None  # AdamW decay of the learned tables [0]
    learned_lr_scale: float | None = None  # the learned tables' lr is lr x this [1.0]
    preset: str | None = None  # fast | accurate: a measured recipe; options given here win
    lr: float | None = None  # Adam learning rate [4e-4]
    lr_decay: float | None = None  # lr factor when dev accuracy does not improve [0.2]
    min_lr: float | None = None  # stop once the lr falls below this [1e-5]
    patience: int | None = None  # epochs without dev improvement before stopping [3]
    epochs: int | None = None  # [10]
    batch_size: int | None = None  # [64]
    grad_clip: float | None = None  # max gradient norm [5.0]
    seed: int | None = None  # weights, batch order and dropout: reruns are bit-identical [0]
    checkpoint_steps: int | None = None  # also checkpoint every N steps (0: epoch ends) [0]
    pos_weight: float | None = None  # multilabel: cap of the rare labels' positive weight [0: off]
    select_metric: str | None = None  # multilabel: micro_f1 | macro_f1 | mean_auc [micro_f1]
    task: str | None = None  # single | multilabel [detected from the train file]
    label_sep: str | None = None  # multilabel TSV/CSV: the separator inside the label column [,]
    resume: bool = False  # continue the run in ``output`` from its last checkpoint
    data_encoding: str = "utf-8"  # of the data files
    threads: int | None = None  # torch CPU threads [torch's choice]
    quiet: bool = False  # no progress bars

    def given(self) -> dict[str, Any]:
        """The hyper-parameters set explicitly (not None)."""
        return {k: getattr(self, k) for k in HYPER if getattr(self, k) is not None}


@dataclass(frozen=True)
class TrainResult:
    run: Path
    metrics: dict[str, Any]  # what metrics.json holds: epochs, best epoch, dev and test scores
    notes: list[str] = field(default_factory=list)  # e.g. the task detected from the data

    @property
    def dev_accuracy(self) -> float:
        return float(self.metrics["dev"]["accuracy"])

    @property
    def test_accuracy(self) -> float | None:
        test = self.metrics.get("test")
        return None if not test else float(test["accuracy"])


def _method(method: str | None, sources: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """``single:NAME`` -> ("single", [NAME]), checked against ``sources``."""
    chosen = [s.strip() for s in sources if s.strip()]
    if method is None:
        return None, chosen
    name, _, single = method.partition(":")
    if name == "single":
        if single and chosen and chosen != [single]:
            raise ConfigError(f"method {method} and sources {','.join(chosen)} disagree")
        chosen = [single] if single else chosen
        if len(chosen) != 1:
            raise ConfigError("method single needs one source: --method single:NAME")
    elif single:
        raise ConfigError(f"--method {method}: only single takes a :NAME")
    return name, chosen


def train(options: TrainOptions) -> TrainResult:
    """An aligned store + labelled data -> a trained run directory (see docs/model.md)."""
    import torch

    from metaprep.learn.config import RunConfig, preset_values
    from metaprep.learn.rundir import run_state
    from metaprep.learn.train import train as train_run

    o = options
    if o.threads is not None:
        if o.threads < 1:
            raise ConfigError("--threads must be at least 1")
        torch.set_num_threads(o.threads)
    preset = preset_values(o.preset)
    preset_method = preset.pop("method", None)
    method, chosen = _method(o.method or preset_method, o.sources)
    if not o.resume:
        for name in ("store", "train", "dev"):
            _req(getattr(o, name), name, "train")
    given = {**preset, **o.given()}  # explicit options win; a resume checks these
    given.update({k: v for k in ("task", "label_sep") if (v := getattr(o, k)) is not None})
    notes = []
    if not o.resume:
        task, why = _resolve_task(o.task, _req(o.train, "train", "train"),
                                 label_sep=o.label_sep or ",", encoding=o.data_encoding,
                                 columns=task_columns(o))
        given["task"] = task
        if why:
            notes.append(why)
            if not o.quiet:
                print(f"note: {why}", file=sys.stderr)
    cfg = RunConfig(method=method or RunConfig.method, sources=chosen,
                    source_dims=[0] * len(chosen), **given)
    if method is not None:
        given["method"] = method
    if chosen:
        given["sources"] = chosen
    out = Path(o.output) if o.output is not None else None
    if out is not None and out.is_dir() and any(out.iterdir()) and run_state(out) == "empty":
        raise ConfigError("is a folder that holds other files, not a run: train writes a run "
                          "only into a new or empty folder, or its own run", path=out,
                          hint="choose another -o")
    with claim_outputs("train", o, {"output": out}, folders=True):
        metrics = train_run(cfg, store=o.store, train=o.train, dev=o.dev, test=o.test,
                            out=out, resume=o.resume, progress=not o.quiet,
                            encoding=o.data_encoding, overrides=given,
                            columns=task_columns(o))
    return TrainResult(Path(metrics["run_dir"]), metrics, notes)


# --- evaluate -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluateOptions:
    run: PathLike | None = _in()  # the run directory to score
    data: PathLike | None = _in()  # labelled data (its labels must be among the run's)
    output: PathLike | None = _out()  # also write the metrics as JSON (a dir: evaluation.json)
    store: PathLike | None = _in()  # the run's store, if it moved [the recorded path]
    batch_size: int = 256
    verify_store: bool = True  # re-hash the store against the run's record
    data_encoding: str = "utf-8"  # of the data file
    quiet: bool = False  # no progress bars
    text_column: str | None = None  # the data's text column [the one the run was trained with]
    label_column: str | None = None  # its label column [the run's]
    text_a_column: str | None = None  # a pair's first text [the run's]
    text_b_column: str | None = None  # a pair's second text [the run's]


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]  # accuracy, macro_f1, per_label, confusion
    output: Path | None  # where the JSON went, if anywhere


def evaluate(options: EvaluateOptions) -> EvaluateResult:
    """Accuracy, macro-F1, per-label scores and confusions of a run on labelled data."""
    from metaprep.learn.evaluate import evaluate_run
    from metaprep.learn.rundir import write_json

    o = options
    metrics = evaluate_run(_req(o.run, "run", "evaluate"), _req(o.data, "data", "evaluate"),
                           store_path=o.store, batch_size=o.batch_size,
                           verify_store=o.verify_store, encoding=o.data_encoding,
                           progress=not o.quiet, columns=_given_columns(o))
    target = None
    if o.output is not None:
        target = Path(o.output)
        if target.is_dir() or target.suffix != ".json":
            target = target / "evaluation.json"
        with claim_outputs("evaluate", o, {"output": target}):
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json(target, metrics)
    return EvaluateResult(metrics, target)


def _given_columns(o: EvaluateOptions) -> Any:
    """Columns when any name was given (the rest standard), else None: the run's own."""
    from metaprep.taskdata import Columns

    names = {"text": o.text_column, "label": o.label_column, "text_a": o.text_a_column,
             "text_b": o.text_b_column}
    given = {k: v for k, v in names.items() if v is not None}
    return Columns(**given) if given else None


# --- export -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportOptions:
    run: PathLike | None = _in()  # the run directory to export
    output: PathLike | None = _out()  # the model directory to create
    front_end: bool = False  # also front_end.onnx: ids -> token and sentence embeddings
    fold: bool | None = None  # fold the front end into one table [whenever the method allows]
    table_dtype: str = "float32"  # float16 halves the tables (cast after the gather)
    quantize: str | None = None  # int8: dynamic quantization of MatMul/LSTM weights
    max_accuracy_drop: float = 0.005  # int8 tables are kept only within this dev-accuracy drop
    max_tokens: int | None = None  # runtime truncation [the tokenizer's, else 512]
    dev: PathLike | None = _in()  # labelled data for the checks [the run's dev file]
    store: PathLike | None = _in()  # the run's store, if it moved [the recorded path]
    verify_store: bool = True  # re-hash the store against the run's record
    tolerance: float = 1e-5  # parity gate: |onnx - torch| <= tolerance + rtol * |torch|
    rtol: float = 1e-5  # the gate's relative part: float32 rounding grows with the logits
    triton: PathLike | None = _out()  # also write a Triton model repository entry here
    triton_name: str = "metaprep"  # the model's name in the Triton repository
    force: bool = False  # replace an existing model directory written by metaprep
    quiet: bool = False  # no progress bars


@dataclass(frozen=True)
class ExportResult:
    model: Path
    files: int
    bytes: int
    manifest: Any  # metaprep.serve.modeldir.Manifest


def export(options: ExportOptions) -> ExportResult:
    """A trained run -> a model directory that onnxruntime serves alone (docs/model-dir.md)."""
    from metaprep.serve.export import ExportOptions as GraphOptions
    from metaprep.serve.export import export_run

    o = options
    settings = GraphOptions(
        fold=o.fold, front_end=o.front_end, table_dtype=o.table_dtype, quantize=o.quantize,
        max_accuracy_drop=o.max_accuracy_drop, max_tokens=o.max_tokens, tolerance=o.tolerance,
        rtol=o.rtol,
        dev=o.dev, store=o.store, verify_store=o.verify_store, triton=o.triton,
        triton_name=o.triton_name, force=o.force, progress=not o.quiet)
    out = Path(_req(o.output, "output", "export"))
    with claim_outputs("export", o, {"output": out, "triton": o.triton}):
        if o.force and out.exists() and not is_model_dir(out):
            raise ConfigError("is not a metaprep model directory: --force replaces only a model "
                              "directory that export-onnx wrote", path=out,
                              hint="remove it yourself, or write elsewhere")
        manifest = export_run(_req(o.run, "run", "export"), out, options=settings)
    size = sum(f.bytes for f in manifest.files.values())
    return ExportResult(out, len(manifest.files), size, manifest)
