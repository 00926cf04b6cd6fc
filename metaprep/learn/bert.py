"""A BERT encoder forward pass written with torch from a checkpoint's plain tensors, for
`metaprep distill` (no transformers library: ids in, token states out).

Reads a sentence-transformers / Hugging Face folder: ``config.json`` (``model_type`` bert) and
``model.safetensors`` with the usual BERT names (``embeddings.*``, ``encoder.layer.N.*``, an
optional ``bert.`` or ``0.auto_model.`` prefix). ``bert_from_onnx`` reads the same weights out of
a torch-exported ONNX BERT, so the forward pass can be checked against onnxruntime.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from metaprep.errors import ModelError

__all__ = ["Bert", "bert_from_onnx", "load_bert"]

_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu,
         "gelu_new": lambda x: F.gelu(x, approximate="tanh")}
SUPPORTED = "a BERT folder (config.json with model_type bert + model.safetensors) or an ONNX " \
            "BERT export with inputs input_ids and attention_mask"


class Bert:
    """The encoder of a BERT checkpoint: ids (B,T) + mask (B,T) -> token states (B,T,H)."""

    def __init__(self, weights: dict[str, torch.Tensor], *, heads: int, eps: float = 1e-12,
                 act: str = "gelu") -> None:
        self.w = {k: v.float() for k, v in weights.items()}
        self.heads, self.eps = heads, eps
        if act not in _ACTS:
            raise ModelError(f"hidden_act {act!r} is not supported ({', '.join(_ACTS)})")
        self.act = _ACTS[act]
        self.layers = 1 + max((int(k.split(".")[2]) for k in self.w if k.startswith("encoder.")),
                              default=-1)
        self.hidden = int(self.w["embeddings.word_embeddings.weight"].shape[1])

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.w[f"{name}.weight"], self.w[f"{name}.bias"],
                            self.eps)

    def _lin(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        e = "embeddings"
        x = (self.w[f"{e}.word_embeddings.weight"][ids]
             + self.w[f"{e}.position_embeddings.weight"][:T][None]
             + self.w[f"{e}.token_type_embeddings.weight"][0])  # (B,T,H)
        x = self._ln(x, f"{e}.LayerNorm")
        h, dh = self.heads, self.hidden // self.heads
        bias = torch.where(mask.bool(), 0.0, torch.finfo(x.dtype).min)[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(B, T, h, dh).transpose(1, 2)  # (B,h,T,dh)

            q, k, v = (split(self._lin(x, f"{p}.attention.self.{n}"))
                       for n in ("query", "key", "value"))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, -1)  # (B,h,T,T)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, self.hidden)  # (B,T,H)
            x = self._ln(x + self._lin(ctx, f"{p}.attention.output.dense"),
                         f"{p}.attention.output.LayerNorm")
            inner = self.act(self._lin(x, f"{p}.intermediate.dense"))  # (B,T,4H)
            x = self._ln(x + self._lin(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x


def _strip(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix (``bert.``, ``0.auto_model.``...) before ``embeddings.``."""
    for key in weights:
        if key.endswith("embeddings.word_embeddings.weight"):
            prefix = key[: -len("embeddings.word_embeddings.weight")]
            return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    return weights


def load_bert(folder: str | Path) -> Bert:
    """A Bert from a checkpoint folder; a one-line ModelError for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    try:
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read config.json ({exc})", path=config_path,
                         hint=f"distill reads {SUPPORTED}") from exc
    if config.get("model_type") != "bert":
        raise ModelError(f"model_type {config.get('model_type')!r} is not supported",
                         path=config_path, hint=f"distill reads {SUPPORTED}")
    try:
        weights = _strip(load_file(str(weights_path)))
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"cannot read the weights ({exc})", path=weights_path,
                         hint=f"distill reads {SUPPORTED}") from exc
    if "embeddings.word_embeddings.weight" not in weights:
        raise ModelError("no BERT embeddings.word_embeddings.weight in the file",
                         path=weights_path, hint=f"distill reads {SUPPORTED}")
    return Bert(weights, heads=int(config.get("num_attention_heads", 12)),
                eps=float(config.get("layer_norm_eps", 1e-12)),
                act=str(config.get("hidden_act", "gelu")))


def bert_from_onnx(path: str | Path, *, heads: int) -> Bert:
    """The BERT weights inside a torch-exported ONNX model: named tensors as they are, and each
    anonymous MatMul weight named after the bias added to its output (transposed back)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
             for t in model.graph.initializer}
    weights = {k: v for k, v in inits.items() if not k.startswith("onnx::")}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            for add in consumers.get(node.output[0], []):
                bias = next((n for n in add.input if n.endswith(".bias") and n in inits), None)
                if add.op_type == "Add" and bias:
                    weights[bias[: -len("bias")] + "weight"] = inits[node.input[1]].T
    return Bert(_strip(weights), heads=heads)
