"""A text-in model for Triton's python backend: the repository entry ``metaprep triton`` writes.

    REPO/NAME/config.pbtxt    backend "python", dynamic batching, CPU instances, parameters
    REPO/NAME/1/model.py      three lines: TritonPythonModel from metaprep.runtime.triton_backend
    REPO/NAME/1/model/        with ``copy``: the model directory itself (else an absolute path)

Triton's stub process then runs ``metaprep.runtime`` on raw text (runtime/triton_backend.py says
what requests carry and what comes back); that Python needs ``metaprep[runtime]``. The entry is
built beside the repository and renamed into place (triton.py's ``staging``), and the model
directory is opened with every check first, so a broken one fails here, not in the server.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaprep.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from metaprep.stages import TritonOptions

__all__ = ["TritonResult", "write_python_model"]

_MODEL_PY = '''\
"""Triton python backend entry for a metaprep model, written by `metaprep triton`.

The model directory, threads and checks are parameters in ../config.pbtxt. The Python that runs
this file needs metaprep[runtime] (numpy + onnxruntime): see metaprep's README, Serving with
Triton.
"""

from metaprep.runtime.triton_backend import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


@dataclass(frozen=True)
class TritonResult:
    path: Path  # REPO/NAME
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    labels: tuple[str, ...]


def write_python_model(model_dir: str | Path, repo: str | Path,
                       options: TritonOptions) -> TritonResult:
    """REPO/NAME for Triton's python backend over MODEL_DIR, built beside it and renamed into
    place. The model directory is opened (and verified) first, so a broken one fails here."""
    from metaprep.exporter.modelcopy import copy_model
    from metaprep.exporter.triton import CONFIG, VERSION, entry_failure, entry_taken, staging
    from metaprep.outputs import claim
    from metaprep.runtime.model import Model

    o = options
    o.validate()
    source = Path(model_dir).resolve()
    model = Model(source, threads=1, verify=o.verify, wait=True)  # every graph checked now
    if model.multilabel:  # its LABEL output is one argmax label: wrong for a label set
        raise ConfigError("the Triton Python backend serves single-label models only",
                          path=source, hint="serve the ONNX graph (export-onnx --triton): "
                          "its probabilities with the manifest's task.thresholds")
    inputs = ("TEXT_A", "TEXT_B") if model.pair else ("TEXT",)
    width = _embedding_width(model)
    outputs = ("LABEL", "PROBABILITIES") + (("EMBEDDING",) if width else ())
    target = Path(repo) / o.name
    with claim("triton", {"output": target}, {"model": source}):
        if entry_taken(target):
            raise ConfigError("a Triton model of that name already exists", path=target,
                              hint="remove it, or pass --name")
        tmp = staging(Path(repo), o.name)  # beside the repository: Triton loads all inside
        try:
            tmp.mkdir()  # never one found in place: a symlink planted there leads elsewhere
            (tmp / VERSION).mkdir()
            where = str(source)
            if o.copy:  # the files the manifest lists, checked; nothing else in the folder
                copy_model(source, tmp / VERSION / "model")
                where = f"{VERSION}/model"  # relative: resolved against REPO/NAME at load
            (tmp / VERSION / "model.py").write_text(_MODEL_PY, encoding="utf-8")
            (tmp / CONFIG).write_text(
                _config(o, inputs, len(model.labels), width, where), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise entry_failure(target, exc) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return TritonResult(target, inputs, outputs, tuple(model.labels))


def _embedding_width(model: Any) -> int:
    """The sentence vector's width, or 0 where the model gives none (pairs, unless --front-end);
    asked of the runtime itself rather than read from the manifest."""
    if model.pair:
        return 0
    try:
        return int(model.embed([""]).shape[1])
    except ModelError:
        return 0


def _config(o: TritonOptions, inputs: Sequence[str], labels: int, width: int,
            model_dir: str) -> str:
    def tensor(name: str, dtype: str, dims: int) -> str:
        return f'  {{ name: "{name}" data_type: {dtype} dims: [ {dims} ] }}'

    outs = [tensor("LABEL", "TYPE_STRING", 1), tensor("PROBABILITIES", "TYPE_FP32", labels)]
    if width:
        outs.append(tensor("EMBEDDING", "TYPE_FP32", width))
    params = {"model_dir": model_dir, "threads": str(o.threads), "verify": o.verify,
              "numpy2": "ok" if o.numpy2 else "no"}
    lines = [
        f'name: "{o.name}"', 'backend: "python"', f"max_batch_size: {o.max_batch_size}",
        "input [", ",\n".join(tensor(n, "TYPE_STRING", 1) for n in inputs), "]",
        "output [", ",\n".join(outs), "]",
    ]
    if o.dynamic_batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {o.queue_delay_us} }}")
    lines.append(f"instance_group [ {{ kind: KIND_CPU count: {o.instances} }} ]")
    lines += [f'parameters: {{ key: "{k}" value: {{ string_value: {json.dumps(v)} }} }}'
              for k, v in params.items()]
    return "\n".join(lines) + "\n"
