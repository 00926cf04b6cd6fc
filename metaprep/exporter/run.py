"""`metaprep export-onnx`: a trained run -> a model directory that metaprep.runtime serves with
onnxruntime alone (the layout is in docs/model-dir.md).

    run dir --Run.load_model--> torch model(s) --build.build--> a checked model directory in a
            temporary folder --the runtime opens it--> MODEL_DIR (and a Triton entry)

This module reads the run (one run, or an ensemble's members), its dev data for the checks, and
commits the result: nothing appears at MODEL_DIR unless every check passed, the directory being
built beside it under a temporary name and renamed; the runtime opens it with every check of
``predict`` first. What the directory holds is built by build.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from metaprep.errors import ExportError, WriteError
from metaprep.exporter.build import DevData, build
from metaprep.exporter.triton import entry_taken, write_triton
from metaprep.learn.memory import check_memory, export_estimate
from metaprep.runtime.modeldir import Manifest, file_sha256

if TYPE_CHECKING:
    from metaprep.learn.multilabel import Thresholds
    from metaprep.learn.rundir import Run
    from metaprep.stages import ExportOptions

__all__ = ["export_run"]


# --- dev data ------------------------------------------------------------------------------------
def _dev_data(run: Run, options: ExportOptions, log: Callable[[str], None]) -> DevData | None:
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
                                 label_sep=run.config.label_sep, progress=not options.quiet)
        assert data.targets is not None  # load_labelsets always fills them
        return DevData(path, [(e.ids, e.ids_b) for e in data.examples], data.targets,
                    _thresholds(run).array(), "micro_f1")
    data, _ = load_task(path, run.encoder(), labels=LabelMap(run.labels),
                        progress=not options.quiet)
    return DevData(path, [(e.ids, e.ids_b) for e in data.examples],
                data.examples.labels)


def _thresholds(run: Run) -> Thresholds:
    """A multi-label run's tuned thresholds; a run without them cannot be exported."""
    from metaprep.learn.rundir import THRESHOLDS

    found = run.thresholds()
    if found is None:
        raise ExportError(f"the multi-label run has no {THRESHOLDS} (training did not "
                          "finish)", path=run.path, hint="finish the run: train --resume")
    return found


# --- the export ----------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(message, file=sys.stderr)


def export_run(run_dir: str | Path, out_dir: str | Path, *,
               options: ExportOptions, log: Callable[[str], None] = _log) -> Manifest:
    """Export a run to ``out_dir``; raises ExportError (and leaves nothing) if a check fails."""
    from metaprep.learn.rundir import BEST, CONFIG, Run

    opts = options
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
                                    verify_store=opts.verify_store, progress=not opts.quiet)
    else:
        runs = [Run.open(run, store=opts.store, verify_store=opts.verify_store)]
        models = []
    try:
        source = runs[0]
        cfg, labels, tok = source.config, source.labels, source.tokenizer
        opts.validate(cfg.method)  # the config is read: still before the model load
        store = source.store()
        check_memory(export_estimate(cfg, [store.vectors(s).dtype.itemsize for s in cfg.sources],
                                     members=len(runs)), path=run, log=log)
        models = models or [source.load_model(progress=not opts.quiet)]
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
        manifest = build(tmp, models, cfg, labels, tok, words, case_policy, dev, opts, log,
                          thresholds)
        # the torch models (a 3.5M-word one held 3 GB) are done with: not held while the
        # runtime opens the directory below
        models.clear()
        del dev
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
