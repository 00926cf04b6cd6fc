"""A model directory's contents, built in a temporary folder by ``export_run`` (run.py): the
float32 graphs and their parity gate, the variant shipped (float16 tables, int8 weights), the text
and serve graphs, the vocabulary, tokenizer and labels, and the manifest that lists them all.

    torch model --bake.spec_from_model--> GraphSpec (numpy) --onnx_graph.build_graph-->
    model.onnx (+ model.data) --parity.parity_gate--> variants, text.onnx, serve.onnx, manifest

Baking: every part of the front end that depends on the word alone is computed once per id.
Projections are multiplied into the frozen tables (V x D per source); for front ends without
context (dme, sum, single, concat) the whole front end folds into one V x D table, so the front
end is a single Gather. A variant is built after the float32 graph passed, and its accuracy
change on the dev set is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaprep import __version__
from metaprep.exporter.bake import spec_from_model
from metaprep.exporter.graphspec import FOLDABLE, GraphSpec
from metaprep.exporter.onnx_builder import OPSET
from metaprep.exporter.onnx_data import ExternalData, save_graph
from metaprep.exporter.onnx_graph import build_graph
from metaprep.exporter.quantize import choose_int8
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
    write_model_files,
    write_vocab,
)

if TYPE_CHECKING:
    from metaprep.learn.multilabel import Thresholds
    from metaprep.stages import ExportOptions

__all__ = ["PARITY_EXAMPLES", "DevData", "build"]

PARITY_EXAMPLES = 512  # dev examples compared one by one with torch (accuracy uses all)


@dataclass
class DevData:
    """The labelled data the checks run on, as model ids."""

    path: Path
    examples: list[tuple[list[int], list[int] | None]]
    gold: np.ndarray  # (N,) class ids; multi-label: (N, C) 0/1
    thresholds: np.ndarray | None = None  # multi-label: (C,) the run's tuned thresholds
    metric: str = "accuracy"  # what the checks compare: accuracy, or micro_f1 (multi-label)


def build(tmp: Path, models: list[Any], cfg: Any, labels: list[str], tok: Any,
           words: list[str], case_policy: str, dev: DevData | None, opts: ExportOptions,
           log: Callable[[str], None], thresholds: Thresholds | None = None) -> Manifest:
    """The graphs, checked, and every other file in ``tmp``; the manifest that lists them
    (its ``source_run`` is the caller's)."""
    from metaprep.exporter.parity import (
        accuracy_change,
        accuracy_feeds,
        compare,
        ensemble_runner,
        ort_runner,
        parity_feeds,
        parity_gate,
        torch_runner,
    )

    fold = opts.fold if opts.fold is not None else cfg.method in FOLDABLE
    specs = [spec_from_model(m, fold=fold, progress=not opts.quiet) for m in models]
    _write_graphs(specs, tmp, front_end=opts.front_end)
    if opts.table_dtype != "float16":  # nothing rewrites the baked tables: not held through
        specs.clear()                  # the parity checks (0.9 GB at 3.5M words)
    feeds = parity_feeds(dev.examples if dev else [], num_ids=len(words) + 2, pair=cfg.pair,
                         limit=PARITY_EXAMPLES)
    reference = (torch_runner(models[0]) if len(models) == 1
                 else ensemble_runner([torch_runner(m) for m in models]))
    parity = parity_gate(tmp, reference, feeds, cfg.pair, opts, log)

    # the variant actually shipped
    quantized: list[str] = []
    float_ops = set(_graph_record(tmp / GRAPH_FILES["model"]).ops)
    if opts.table_dtype == "float16":
        for name in (*GRAPH_FILES.values(), DATA_FILE):
            (tmp / name).unlink(missing_ok=True)
        for spec in specs:
            spec.table_dtype = "float16"
        _write_graphs(specs, tmp, front_end=opts.front_end)
    del specs  # the baked tables are on disk: 0.9 GB at 3.5M words, not held by the checks
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
                checks: Checks, thresholds: Thresholds | None,
                log: Callable[[str], None], members: int = 1) -> Manifest:
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
