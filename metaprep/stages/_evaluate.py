"""The evaluate stage: a run's scores on labelled data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaprep.outputs import claim_outputs
from metaprep.stages._common import PathLike, input_field, output_field, required

__all__ = ["EvaluateOptions", "EvaluateResult", "evaluate"]


@dataclass(frozen=True)
class EvaluateOptions:
    run: PathLike | None = input_field()  # the run directory to score
    data: PathLike | None = input_field()  # labelled data (its labels must be among the run's)
    output: PathLike | None = output_field()  # the metrics as JSON too (a dir: evaluation.json)
    store: PathLike | None = input_field()  # the run's store, if it moved [the recorded path]
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
    metrics = evaluate_run(required(o.run, "run", "evaluate"), required(o.data, "data", "evaluate"),
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
