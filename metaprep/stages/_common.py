"""What the stage modules share: the path-field markers the pipeline reads, the required-option
check, the task-data columns and the task detection of split and train."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError

__all__ = [
    "PathLike",
    "TaskColumns",
    "input_field",
    "name_field",
    "output_field",
    "required",
    "resolve_task",
]

PathLike = str | Path


def input_field(default: Any = None, *, named: bool = False) -> Any:
    """A field naming input file(s): hashed by the pipeline, never an output's target
    (``named``: a table whose keys become names, checked as ``name_field`` values are)."""
    meta = {"path": "in", **({"name": "keys"} if named else {})}
    if isinstance(default, (dict, tuple)):  # a fresh copy for every options object
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def output_field(default: Any = None) -> Any:
    """A field naming what the stage writes: filled with the stage directory by the pipeline."""
    return field(default=default, metadata={"path": "out"})


def name_field(default: str) -> Any:
    """A field whose value becomes one folder name (metaprep.names): a pipeline checks it when
    the file is loaded, the stage before it writes."""
    return field(default=default, metadata={"name": "value"})


def required(value: Any, name: str, stage: str) -> Any:
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


def resolve_task(task: str | None, data: PathLike, *, label_sep: str, encoding: str,
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
