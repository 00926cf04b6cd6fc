"""`metaprep export-onnx`: a trained run -> a model directory that metaprep.runtime serves with
onnxruntime alone (the layout is in docs/model-dir.md).

    run dir --Run.load_model--> torch model --bake.spec_from_model--> GraphSpec (numpy)
            --onnx_graph.build_graph--> model.onnx (+ model.data) --parity gate--> MODEL_DIR

Baking: every part of the front end that depends on the word alone is computed once per id.
Projections are multiplied into the frozen tables (V x D per source); for front ends without
context (dme, sum, single, concat) the whole front end folds into one V x D table, so the front
end is a single Gather. The parity gate runs the exported float32 graphs against the torch model
on the run's dev data and on awkward random batches; a variant (float16 tables, int8 weights) is
built after the float32 graph passed, and its accuracy change on the dev set is reported.
Nothing appears at MODEL_DIR unless everything passed: the directory is built beside it under a
temporary name and renamed.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaprep import __version__
from metaprep.errors import ExportError, WriteError
from metaprep.exporter.bake import lstm_spec, spec_from_model
from metaprep.exporter.onnx_data import ExternalData, save_graph
from metaprep.exporter.onnx_graph import OPSET, GraphSpec, build_graph
from metaprep.exporter.quantize import choose_int8
from metaprep.exporter.triton import check_triton_name, entry_taken, write_triton
from metaprep.runtime.modeldir import (
    DATA_FILE,
    GRAPH_FILES,
    AccuracyRecord,
    Checks,
    ExportInfo,
    GraphInfo,
    Manifest,
    ParityRecord,
    TaskInfo,
    file_sha256,
    write_model_files,
    write_vocab,
)

if TYPE_CHECKING:
    from metaprep.learn.multilabel import Thresholds
    from metaprep.learn.rundir import Run

__all__ = ["ExportOptions", "export_run", "lstm_spec", "spec_from_model"]

FOLDABLE = ("dme", "sum", "single", "concat")  # front ends that depend on the word alone


@dataclass(frozen=True)
class ExportOptions:
    fold: bool | None = None  # None: fold whenever the method allows it (all but cdme)
    front_end: bool = False  # also write front_end.onnx (ids -> token and sentence embeddings)
    table_dtype: str = "float32"  # float16 halves the tables (cast back after the gather)
    quantize: str | None = None  # "int8": dynamic quantization of MatMul / LSTM weights
    max_accuracy_drop: float = 0.005  # int8 tables are kept only within this dev-accuracy drop
    tolerance: float = 1e-5  # parity gate atol: |onnx - torch| <= tolerance + rtol * |torch|
    # the gate's rtol: float32 rounding grows with the logits' size (41 classes with logits up to
    # 34 differed by 1.1e-5 on a valid model); a real mismatch is far above 1e-5 relative
    rtol: float = 1e-5
    dev: str | Path | None = None  # labelled data for the checks; None: the run's dev file
    store: str | Path | None = None  # None: the store recorded in the run
    verify_store: bool = True  # re-hash the store against the run's record
    parity_examples: int = 512  # dev examples compared one by one (accuracy uses all)
    triton: str | Path | None = None  # also write a Triton model repository here
    triton_name: str = "metaprep"
    force: bool = False  # replace an existing MODEL_DIR
    progress: bool = True

    def validate(self, method: str | None = None) -> None:
        """Option errors; the method-dependent ones only once the run's method is known."""
        if self.table_dtype not in ("float32", "float16"):
            raise ExportError(f"--table-dtype must be float32 or float16, not {self.table_dtype}")
        if self.quantize not in (None, "int8"):
            raise ExportError(f"--quantize must be int8, not {self.quantize}")
        if self.quantize and self.table_dtype != "float32":
            raise ExportError("--quantize int8 and --table-dtype float16 cannot be combined",
                              hint="pick one of them")
        if self.fold and method is not None and method not in FOLDABLE:
            raise ExportError(f"a {method} front end depends on context and cannot be folded",
                              hint="drop --fold (the projections are still baked)")
        for name, value, most in (("--tolerance", self.tolerance, math.inf),
                                  ("--rtol", self.rtol, math.inf),
                                  ("--max-accuracy-drop", self.max_accuracy_drop, 1.0)):
            # NaN failed every check with a puzzling message; inf passed every graph
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 0 <= value <= most):
                raise ExportError(f"{name} must be a finite number from 0"
                                  f"{'' if most == math.inf else f' to {most:g}'}, not {value}")
        if self.triton is not None:
            check_triton_name(self.triton_name)


def _write_graphs(specs: list[GraphSpec], out: Path, *, front_end: bool) -> list[str]:
    data = ExternalData(out / DATA_FILE)
    try:
        names = ["model"] + (["front_end"] if front_end else [])
        for name in names:
            model = build_graph(specs, data, front_end=name == "front_end")
            data.flush()
            save_graph(model, out / GRAPH_FILES[name])
    finally:
        data.close()
    return [GRAPH_FILES[n] for n in names] + [DATA_FILE]


# --- dev data --------------------------------------------------------------------------------
@dataclass
class _Dev:
    path: Path
    examples: list[tuple[list[int], list[int] | None]]
    gold: np.ndarray  # (N,) class ids; multi-label: (N, C) 0/1
    thresholds: np.ndarray | None = None  # multi-label: (C,) the run's tuned thresholds
    metric: str = "accuracy"  # what the checks compare: accuracy, or micro_f1 (multi-label)


def _dev_data(run: Run, options: ExportOptions, log: Callable[[str], None]) -> _Dev | None:
    """The labelled data for the checks: --dev, else the run's recorded dev file."""
    from metaprep.learn.data import LabelMap, load_task

    path: Path | None = None if options.dev is None else Path(options.dev)
    if path is None and run.data.dev is not None:
        path = Path(run.data.dev.path)
        if not path.exists():
            log(f"note: the run's dev file {path} is gone; checking on random batches only")
            return None
    if path is None:
        log("note: no dev data (give --dev); checking on random batches only")
        return None
    if run.config.task == "multilabel":
        from metaprep.learn.data import load_labelsets

        data, _ = load_labelsets(path, run.encoder(), labels=LabelMap(run.labels),
                                 label_sep=run.config.label_sep, progress=options.progress)
        assert data.targets is not None  # load_labelsets always fills them
        return _Dev(path, [(e.ids, e.ids_b) for e in data.examples], data.targets,
                    _thresholds(run).array(), "micro_f1")
    data, _ = load_task(path, run.encoder(), labels=LabelMap(run.labels),
                        progress=options.progress)
    return _Dev(path, [(e.ids, e.ids_b) for e in data.examples],
                np.array([e.label for e in data.examples], dtype=np.int64))


def _thresholds(run: Run) -> Thresholds:
    """A multi-label run's tuned thresholds; a run without them cannot be exported."""
    found = run.thresholds()
    if found is None:
        raise ExportError("the multi-label run has no thresholds.json (training did not "
                          "finish)", path=run.path, hint="finish the run: train --resume")
    return found


# --- the export ------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(message, file=sys.stderr)


def gate_failures(parity: dict[str, Any], tol: float, graph: str) -> list[str]:
    """Failures: logits or probabilities where ``|onnx - torch| > tol + rtol * |torch|`` anywhere
    (numpy.allclose); embeddings beyond ``tol`` times their scale (>= 1)."""
    bad = []
    for out, diff in parity["max_abs_diff"].items():
        if out in ("logits", "probabilities"):
            ok = parity["max_excess"][out] <= tol
            limit = f"{tol:.3g} + {parity['rtol']:.3g} x |torch|"
        else:
            bound = tol * max(1.0, parity["max_abs_value"][out])
            ok, limit = diff <= bound, f"{bound:.3g}"
        if not ok:
            bad.append(f"{graph} {out}: max abs diff {diff:.3g} > {limit} "
                       f"(worst: {parity['worst_case'][out]})")
    return bad


def _graph_record(path: Path) -> GraphInfo:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    data = sorted({e.value for t in m.graph.initializer for e in t.external_data
                   if e.key == "location"})
    return GraphInfo(file=path.name, data_files=tuple(data),
                     inputs=tuple(i.name for i in m.graph.input),
                     outputs=tuple(o.name for o in m.graph.output),
                     ops=tuple(sorted({n.op_type for n in m.graph.node})))


def _parity_record(figures: dict[str, Any]) -> ParityRecord:
    return ParityRecord(cases=figures["cases"], max_abs_diff=figures["max_abs_diff"],
                        worst_case=figures["worst_case"], max_abs_value=figures["max_abs_value"])


def export_run(run_dir: str | Path, out_dir: str | Path, *,
               options: ExportOptions | None = None,
               log: Callable[[str], None] = _log) -> Manifest:
    """Export a run to ``out_dir``; raises ExportError (and leaves nothing) if a check fails."""
    from metaprep.learn.rundir import BEST, CONFIG, Run

    opts = options or ExportOptions()
    opts.validate()  # before the (possibly long) model load
    run, out = Path(run_dir), Path(out_dir)
    if out.exists() and not opts.force:
        raise ExportError("the model directory already exists", path=out,
                          hint="pass --force to replace it")
    if opts.triton is not None and entry_taken(Path(opts.triton) / opts.triton_name):
        raise ExportError("a Triton model of that name already exists",
                          path=Path(opts.triton) / opts.triton_name,
                          hint="remove it or pass --triton-name")
    from metaprep.learn.ensemble import is_ensemble, load_members, member_dirs

    if is_ensemble(run):  # the members' runs, checked to be one config but the seed
        runs, models = load_members(member_dirs(run), store=opts.store,
                                    verify_store=opts.verify_store, progress=opts.progress)
    else:
        runs = [Run.open(run, store=opts.store, verify_store=opts.verify_store)]
        models = []
    try:
        source = runs[0]
        cfg, labels, tok = source.config, source.labels, source.tokenizer
        opts.validate(cfg.method)  # the config is read: still before the model load
        models = models or [source.load_model(progress=opts.progress)]
        words, case_policy = source.store().vocab, source.case_policy
        thresholds = _thresholds(source) if cfg.task == "multilabel" else None
        dev = _dev_data(source, opts, log)
    finally:
        for r in runs:
            r.close()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    entry: Path | None = None
    try:
        manifest = _build(tmp, models, cfg, labels, tok, words, case_policy, dev, opts, log,
                          thresholds)
        manifest.source_run = {
            "path": str(run.resolve()),
            "config_sha256": file_sha256(runs[0].path / CONFIG),
            "weights_sha256": file_sha256(runs[0].path / BEST),
            "store_path": str(source.store_path.resolve()),
            "store_sha256": source.store_ref.sha256,
        }
        if len(runs) > 1:  # an ensemble: every member's files (the first one's above too)
            for k, r in enumerate(runs):
                manifest.source_run.update({
                    f"member{k}_path": str(r.path.resolve()),
                    f"member{k}_config_sha256": file_sha256(r.path / CONFIG),
                    f"member{k}_weights_sha256": file_sha256(r.path / BEST)})
        manifest.write(tmp)
        _check_servable(tmp, out)
        if opts.triton is not None:  # before the model appears: a failure leaves neither
            entry = write_triton(tmp, Path(opts.triton), opts.triton_name, manifest)
        if out.exists():  # --force: swap the new directory in, then drop the old one
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:  # a full disk, a file-size limit: name the output, not the temp dir
        _drop(tmp, entry)
        what = Path(exc.filename).name if exc.filename else "the model directory"
        raise WriteError(f"cannot write {what} ({exc.strerror or exc}); nothing was written",
                          path=out, hint="check free space and the file-size limit (ulimit -f)"
                          ) from exc
    except BaseException:
        _drop(tmp, entry)
        raise
    if entry is not None:
        log(f"Triton model repository entry: {entry}")
    return manifest


def _drop(tmp: Path, entry: Path | None) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    if entry is not None:  # written just before the model directory failed to appear
        shutil.rmtree(entry, ignore_errors=True)


def _check_servable(tmp: Path, out: Path) -> None:
    """Open the directory as `predict` will, with every check of the runtime and a session for
    every graph: an export that the runtime would refuse fails here, and nothing is written
    (`--max-tokens 16` once wrote a model that predict refused)."""
    from metaprep.errors import ModelError
    from metaprep.runtime.model import Model

    try:
        Model(tmp, threads=1, verify="fast").load_graphs()
    except ModelError as exc:
        where = Path(exc.path) if exc.path else tmp
        if where.is_relative_to(tmp):  # name the output, not the temporary directory
            where = out / where.relative_to(tmp)
        raise ExportError(f"the runtime refuses the model directory this export made: "
                          f"{exc.message}; nothing was written", path=where,
                          hint="please report this with the run") from exc


def _parity_gate(tmp: Path, reference: Any, feeds: list[Any], pair: bool,
                 opts: ExportOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The float32 graphs against torch on every feed; an ExportError (nothing written) when
    any output is beyond the tolerance."""
    from metaprep.exporter.parity import compare, ort_runner

    outs = ["logits", "probabilities"] + ([] if pair else ["sentence_embedding"])
    parity = {"model": compare(reference, ort_runner(tmp / GRAPH_FILES["model"]), feeds, outs,
                               rtol=opts.rtol)}
    if opts.front_end:
        single = [(n, {k: v for k, v in f.items() if not k.endswith("_b")}) for n, f in feeds]
        parity["front_end"] = compare(reference, ort_runner(tmp / GRAPH_FILES["front_end"]),
                                      single, ["token_embeddings", "sentence_embedding"],
                                      rtol=opts.rtol)
    failures = [msg for g, p in parity.items() for msg in gate_failures(p, opts.tolerance, g)]
    for g, p in parity.items():
        figures = ", ".join(f"{k} {v:.2e}" for k, v in p["max_abs_diff"].items())
        log(f"parity {g} (float32, {p['cases']} batches): max abs diff {figures}")
    if failures:
        raise ExportError("parity gate failed: " + "; ".join(failures),
                          hint="nothing was written; please report this with the run")
    return parity


def _build(tmp: Path, models: list[Any], cfg: Any, labels: list[str], tok: Any,
           words: list[str], case_policy: str, dev: _Dev | None, opts: ExportOptions,
           log: Callable[[str], None], thresholds: Thresholds | None = None) -> Manifest:
    from metaprep.exporter.parity import (
        accuracy_change,
        accuracy_feeds,
        compare,
        ensemble_runner,
        ort_runner,
        parity_feeds,
        torch_runner,
    )

    fold = opts.fold if opts.fold is not None else cfg.method in FOLDABLE
    specs = [spec_from_model(m, fold=fold, progress=opts.progress) for m in models]
    _write_graphs(specs, tmp, front_end=opts.front_end)
    feeds = parity_feeds(dev.examples if dev else [], num_ids=len(words) + 2, pair=cfg.pair,
                         limit=opts.parity_examples)
    reference = (torch_runner(models[0]) if len(models) == 1
                 else ensemble_runner([torch_runner(m) for m in models]))
    parity = _parity_gate(tmp, reference, feeds, cfg.pair, opts, log)

    # the variant actually shipped
    quantized: list[str] = []
    float_ops = set(_graph_record(tmp / GRAPH_FILES["model"]).ops)
    if opts.table_dtype == "float16":
        for name in (*GRAPH_FILES.values(), DATA_FILE):
            (tmp / name).unlink(missing_ok=True)
        for spec in specs:
            spec.table_dtype = "float16"
        _write_graphs(specs, tmp, front_end=opts.front_end)
    if opts.quantize == "int8":
        # the op types the quantizer was asked for that the graph has (a pool encoder has no LSTM)
        quantized = [op for op in choose_int8(tmp, reference, dev, cfg.pair, opts, log)
                     if op in float_ops]
    accuracy: AccuracyRecord | None = None
    variant: ParityRecord | None = None
    if dev is not None:
        acc_feeds, gold = accuracy_feeds(dev.examples, dev.gold, cfg.pair)
        acc = accuracy_change(reference, ort_runner(tmp / GRAPH_FILES["model"]), acc_feeds, gold,
                              thresholds=dev.thresholds)
        accuracy = AccuracyRecord(data=str(dev.path), **acc, metric=dev.metric)
        log(f"dev {dev.metric} ({acc['examples']} examples): torch {acc['torch_accuracy']:.4f}, "
            f"onnx {acc['onnx_accuracy']:.4f} (change {acc['change']:+.4f}, "
            f"agreement {acc['agreement']:.4f})")
    if opts.table_dtype != "float32" or quantized:
        shipped = compare(reference, ort_runner(tmp / GRAPH_FILES["model"]), feeds, ["logits"])
        variant = _parity_record(shipped)
        log(f"{opts.quantize or opts.table_dtype} model: max abs logit diff vs torch "
            f"{variant.max_abs_diff['logits']:.3g}")

    checks = Checks(parity={g: _parity_record(p) for g, p in parity.items()},
                    tolerance=opts.tolerance, rtol=opts.rtol, accuracy=accuracy,
                    variant_logits=variant)
    export = ExportInfo(fold=fold, table_dtype=opts.table_dtype, quantize=opts.quantize,
                        quantized_ops=tuple(quantized), opset=OPSET, front_end=opts.front_end)
    return _write_rest(tmp, cfg, labels, tok, words, case_policy, opts, export, checks,
                       thresholds, log, members=len(models))


def _write_text_graph(tmp: Path, tok: Any, words: list[str], case_policy: str,
                      log: Callable[[str], None]) -> bool:
    """text.onnx, so the runtime tokenizes in onnxruntime; False (and a note) for a tokenizer
    pattern that has no exact RE2 form: the runtime then tokenizes in Python, as before."""
    from metaprep.exporter.textgraph import text_graph

    try:
        graph = text_graph(tok, words, case_policy)
    except ValueError as exc:
        log(f"note: no text graph ({exc}): the runtime will tokenize in Python")
        return False
    save_graph(graph, tmp / GRAPH_FILES["text"])
    return True


def _write_serve_graph(tmp: Path, tok: Any, case_policy: str, max_tokens: int,
                       log: Callable[[str], None]) -> bool:
    """serve.onnx: the text graph and the model graph joined (texts in, one run a batch), when
    the text graph's map answers every token itself; it reads the model's tables from the same
    data file."""
    import onnx

    from metaprep.exporter.textgraph import map_is_complete, serve_graph

    if not map_is_complete(tok, case_policy):
        return False
    try:
        graph = serve_graph(onnx.load(str(tmp / GRAPH_FILES["text"])),
                            onnx.load(str(tmp / GRAPH_FILES["model"]), load_external_data=False),
                            max_tokens)
    except ValueError as exc:
        log(f"note: no serve graph ({exc}): the runtime will run the text and model graphs")
        return False
    save_graph(graph, tmp / GRAPH_FILES["serve"])
    return True


def _write_rest(tmp: Path, cfg: Any, labels: list[str], tok: Any, words: list[str],
                case_policy: str, opts: ExportOptions, export: ExportInfo,
                checks: Checks, thresholds: Thresholds | None = None,
                log: Callable[[str], None] = _log, members: int = 1) -> Manifest:
    """Vocabulary, tokenizer and labels beside the graphs, and the manifest that lists them."""
    names = ["model"] + (["front_end"] if opts.front_end else [])
    max_tokens = cfg.max_tokens  # the run's: served texts are cut where trained ones were
    if _write_text_graph(tmp, tok, words, case_policy, log):
        names.append("text")
        if not cfg.pair and _write_serve_graph(tmp, tok, case_policy, max_tokens, log):
            names.append("serve")
    graphs = {n: _graph_record(tmp / GRAPH_FILES[n]) for n in names}
    used = {f for g in graphs.values() for f in g.data_files}
    if DATA_FILE not in used:
        (tmp / DATA_FILE).unlink(missing_ok=True)
    files = [GRAPH_FILES[n] for n in names] + sorted(used)
    files += write_vocab(tmp, words)
    files += write_model_files(tmp, tokenizer=tok, labels=labels)
    manifest = Manifest(
        task=TaskInfo(pair=cfg.pair, labels=tuple(labels), method=cfg.method,
                      encoder=cfg.encoder, sources=tuple(cfg.sources),
                      meta_dim=members * cfg.meta_dim, sentence_dim=members * cfg.sentence_dim,
                      vocab_size=len(words), members=members,
                      multilabel=thresholds is not None,
                      thresholds=None if thresholds is None else thresholds.per_label,
                      global_threshold=None if thresholds is None else thresholds.global_),
        graphs=graphs,
        case_policy=case_policy,
        max_tokens=max_tokens,
        export=export,
        source_run={},
        checks=checks,
        metaprep_version=__version__,
    )
    manifest.record_files(tmp, files)
    return manifest
