"""The model Triton's python backend runs for a repository entry ``metaprep triton`` wrote
(exporter/triton_python.py): ``metaprep.runtime`` inside the stub process.

Requests carry raw text: ``TEXT`` (BYTES, one UTF-8 string per row; ``TEXT_A`` and ``TEXT_B`` for a
sentence-pair model). Responses: ``LABEL`` (BYTES) and ``PROBABILITIES`` (FP32, one column per
label, in the order of ``labels.json``), and ``EMBEDDING`` (FP32 sentence vector) for a
single-sentence model when the client asks for it. Tokenizing, vocabulary lookup, truncation
and length bucketing are the runtime's, so Triton answers exactly what ``Model.predict_proba``
answers in process.

Triton's python backend before 24.11 (server 2.51 and older) was built with a pybind11 that
predates NumPy 2: under NumPy 2 every tensor it hands over is garbage and the first text request
kills the stub. The model refuses to load under NumPy 2 unless its config says the backend is
newer (the ``numpy2`` parameter). numpy and the runtime only; ``triton_python_backend_utils``,
which Triton provides, inside ``execute``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ModelError
from metaprep.runtime.model import Model

__all__ = ["TritonPythonModel"]


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
