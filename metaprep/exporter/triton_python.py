"""A text-in model for Triton's python backend, served by ``metaprep.runtime`` in the stub process.

    REPO/NAME/config.pbtxt    backend "python", dynamic batching, CPU instances, parameters
    REPO/NAME/1/model.py      three lines: TritonPythonModel from this module
    REPO/NAME/1/model/        with ``copy``: the model directory itself (else an absolute path)

Requests carry raw text: ``TEXT`` (BYTES, one UTF-8 string per row; ``TEXT_A`` and ``TEXT_B`` for a
sentence-pair model). Responses: ``LABEL`` (BYTES) and ``PROBABILITIES`` (FP32, one column per
label, in the order of ``labels.json``), and ``EMBEDDING`` (FP32 sentence vector) for a
single-sentence model when the client asks for it. Tokenizing, vocabulary lookup, truncation
and length bucketing are the runtime's, so Triton answers exactly what ``Model.predict_proba``
answers in process.

The Python that runs the stub needs ``metaprep[runtime]``. Triton's python backend before 24.11
(server 2.51 and older, the one nvidia-pytriton 0.7.0 ships) was built with a pybind11 that
predates NumPy 2: under NumPy 2 every tensor it hands over is garbage and the first text request
kills the stub. The model refuses to load under NumPy 2 unless its config says the backend is
newer (``numpy2``, below).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ConfigError, ModelError
from metaprep.names import check_name

__all__ = ["TritonOptions", "TritonPythonModel", "TritonResult", "write_python_model"]

_MODEL_PY = '''\
"""Triton python backend entry for a metaprep model, written by `metaprep triton`.

The model directory, threads and checks are parameters in ../config.pbtxt. The Python that runs
this file needs metaprep[runtime] (numpy + onnxruntime): see metaprep's README, Serving with
Triton.
"""

from metaprep.exporter.triton_python import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


@dataclass(frozen=True)
class TritonOptions:
    name: str = "metaprep"  # the model's name in the repository and in request URLs
    max_batch_size: int = 64  # rows Triton may gather into one execute(): one runtime call
    instances: int = 1  # stub processes; each holds its own copy of the model in memory
    threads: int = 0  # onnxruntime threads per instance; 0: cores // instances, at load time
    queue_delay_us: int = 1000  # how long Triton holds a request to fill a batch
    dynamic_batching: bool = True  # off: each request is one execute() of its own rows
    copy: bool = False  # copy the model directory into the repository (else its absolute path)
    verify: str = "fast"  # the manifest check when Triton loads the model (fast, full, none)
    numpy2: bool = False  # the serving Triton's python backend is 24.11 or newer (NumPy 2 safe)


@dataclass(frozen=True)
class TritonResult:
    path: Path  # REPO/NAME
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    labels: tuple[str, ...]


_BOUNDS = [("max_batch_size", 1, 65_536), ("instances", 1, 256), ("threads", 0, 1024),
           ("queue_delay_us", 0, 60_000_000)]  # a minute


def _check(o: TritonOptions) -> None:
    check_name(o.name, "--name", hint="the model's folder in the repository: --name sentiment")
    # upper bounds: a typo such as --instances 1000000 would have Triton start a million stub
    # processes, and values past int32 make a config.pbtxt Triton cannot read
    for key, low, high in _BOUNDS:
        value = getattr(o, key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"--{key.replace('_', '-')} must be a whole number from {low} to "
                              f"{high:,}, not {value!r}")
    if o.verify not in ("fast", "full", "none"):
        raise ConfigError(f"verify must be fast, full or none, got {o.verify!r}")


def write_python_model(model_dir: str | Path, repo: str | Path,
                       options: TritonOptions | None = None) -> TritonResult:
    """REPO/NAME for Triton's python backend over MODEL_DIR, built beside it and renamed into
    place. The model directory is opened (and verified) first, so a broken one fails here."""
    from metaprep.exporter.modelcopy import copy_model
    from metaprep.exporter.triton import entry_failure, entry_taken, staging
    from metaprep.outputs import claim
    from metaprep.runtime.model import Model

    o = options or TritonOptions()
    _check(o)
    source = Path(model_dir).resolve()
    model = Model(source, threads=1, verify=o.verify)
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
            (tmp / "1").mkdir()
            where = str(source)
            if o.copy:  # the files the manifest lists, checked; nothing else in the folder
                copy_model(source, tmp / "1" / "model")
                where = "1/model"  # relative: resolved against REPO/NAME when Triton loads it
            (tmp / "1" / "model.py").write_text(_MODEL_PY, encoding="utf-8")
            (tmp / "config.pbtxt").write_text(
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


# --- the backend side: runs inside Triton's python stub ------------------------------------------
def _check_config(model: Any, inputs: list[str], outputs: list[dict[str, Any]],
                  model_dir: Path) -> None:
    """The model directory (an absolute path: it may have been exported again since `metaprep
    triton` wrote the config) is still one this config serves: single-label, the same inputs
    and as many probabilities as labels. A multi-label model would be served argmax labels."""
    if model.multilabel:
        raise ModelError("the Triton Python backend serves single-label models only, and this "
                         "model directory is multi-label now", path=model_dir,
                         hint="serve the ONNX graph (export-onnx --triton)")
    want = ["TEXT_A", "TEXT_B"] if model.pair else ["TEXT"]
    dims = {o["name"]: [int(d) for d in o["dims"]] for o in outputs if o.get("dims")}
    if inputs != want or dims.get("PROBABILITIES", [len(model.labels)]) != [len(model.labels)]:
        raise ModelError(f"config.pbtxt reads {inputs} and gives {dims.get('PROBABILITIES')} "
                         f"probabilities; the model directory reads {want} and has "
                         f"{len(model.labels)} labels", path=model_dir,
                         hint="write the Triton model again: metaprep triton")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _texts(array: np.ndarray) -> list[str]:
    """A BYTES tensor (object array of bytes) -> str; bytes that are not UTF-8 become U+FFFD,
    as in `metaprep predict`."""
    return [x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x)
            for x in array.reshape(-1)]


class TritonPythonModel:
    """What Triton's python backend calls: initialize once per instance, execute per batch."""

    def initialize(self, args: dict[str, Any]) -> None:
        from metaprep.runtime.model import Model

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if int(np.__version__.split(".")[0]) >= 2 and params.get("numpy2") != "ok":
            raise ModelError(
                f"NumPy {np.__version__} in the Python that runs Triton's python backend: "
                "backends before Triton 24.11 (server 2.51, nvidia-pytriton 0.7.0) corrupt every "
                "tensor under NumPy 2 and crash on the first text", path=args["model_repository"],
                hint="install numpy<2 in that Python, or on Triton 24.11 or newer set the "
                     'parameter numpy2 to "ok" (metaprep triton --numpy2)')
        model_dir = Path(args["model_repository"]) / params["model_dir"]  # absolute stays so
        instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", [])) or 1
        threads = int(params.get("threads") or 0) or max(1, _cores() // instances)
        batch = max(1, int(config.get("max_batch_size") or 64))
        self.model = Model(model_dir, threads=threads, batch_size=batch,
                           verify=params.get("verify", "fast"))
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = {o["name"] for o in config["output"]}
        _check_config(self.model, self.inputs, config["output"], model_dir)
        self.labels = np.array([s.encode("utf-8") for s in self.model.labels], dtype=np.object_)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        texts: list[Any] = []
        sizes: list[int] = []
        for request in requests:  # Triton checked names, types and shapes against the config
            cols = [_texts(pb_utils.get_input_tensor_by_name(request, n).as_numpy())
                    for n in self.inputs]
            rows = list(zip(*cols, strict=True)) if len(cols) == 2 else cols[0]
            texts.extend(rows)
            sizes.append(len(rows))
        try:
            probs = self.model.predict_proba(texts)
            wanted = set().union(*(self._requested(r) for r in requests))
            vectors = self.model.embed(texts) if "EMBEDDING" in wanted else None
        except Exception as exc:  # one answer per request, never a dead stub
            error = pb_utils.TritonError(f"metaprep: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for request, n in zip(requests, sizes, strict=True):
            p, asked, out = probs[start : start + n], self._requested(request), []
            if "LABEL" in asked:
                out.append(pb_utils.Tensor("LABEL", self.labels[p.argmax(axis=1)].reshape(n, 1)))
            if "PROBABILITIES" in asked:
                out.append(pb_utils.Tensor("PROBABILITIES", p))
            if vectors is not None and "EMBEDDING" in asked:
                out.append(pb_utils.Tensor("EMBEDDING", vectors[start : start + n]))
            responses.append(pb_utils.InferenceResponse(output_tensors=out))
            start += n
        return responses

    def _requested(self, request: Any) -> set[str]:
        """Output names the client asked for (all of them when it named none)."""
        asked = getattr(request, "requested_output_names", None)
        names = set(asked()) if asked is not None else set()
        return (names or self.outputs) & self.outputs

    def finalize(self) -> None:
        self.model = None  # type: ignore[assignment]
