"""A BERT encoder forward pass written with torch from a checkpoint's plain tensors, for
`metaprep static-source` (no transformers library: ids in, token states out).

Reads a sentence-transformers / Hugging Face folder: ``config.json`` (``model_type`` bert) and
``model.safetensors`` with the usual BERT names (``embeddings.*``, ``encoder.layer.N.*``, an
optional ``bert.`` or ``0.auto_model.`` prefix), both checked by ``bertfiles`` before anything
runs. ``bert_from_onnx`` reads the same weights out of a torch-exported ONNX BERT, so the forward
pass can be checked against onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from metaprep.learn.bertfiles import SUPPORTED, BertConfig, read_config, read_weights

__all__ = ["Bert", "SUPPORTED", "bert_from_onnx", "load_bert"]

_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu,
         "gelu_new": lambda x: F.gelu(x, approximate="tanh")}


class Bert:
    """The encoder of a BERT checkpoint: ids (B,T) + mask (B,T) -> token states (B,T,H)."""

    def __init__(self, weights: dict[str, torch.Tensor], config: BertConfig) -> None:
        # weights: bertfiles.read_weights's, every tensor of tensor_shapes(config) checked
        self.w = {k: v.float() for k, v in weights.items()}
        self.config = config
        self.heads, self.eps, self.act = config.heads, config.eps, _ACTS[config.act]
        self.layers, self.hidden = config.layers, config.hidden
        self.max_positions = config.max_positions

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


def load_bert(folder: str | Path) -> Bert:
    """A Bert from a checkpoint folder, its config and every weight it uses checked first; a
    one-line ModelError for anything else."""
    folder = Path(folder)
    config_path = folder / "config.json"
    config = read_config(config_path)
    return Bert(read_weights(folder / "model.safetensors", config, config_path), config)


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
    suffix = "embeddings.word_embeddings.weight"
    prefix = next(k for k in weights if k.endswith(suffix))[: -len(suffix)]
    w = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    config = BertConfig(
        hidden=int(w[suffix].shape[1]), heads=heads, vocab_size=int(w[suffix].shape[0]),
        layers=1 + max(int(k.split(".")[2]) for k in w if k.startswith("encoder.layer.")),
        intermediate=int(w["encoder.layer.0.intermediate.dense.bias"].shape[0]),
        max_positions=int(w["embeddings.position_embeddings.weight"].shape[0]),
        type_vocab=int(w["embeddings.token_type_embeddings.weight"].shape[0]))
    return Bert(w, config)
