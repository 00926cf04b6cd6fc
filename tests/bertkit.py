"""Tiny BERT folders and ONNX graphs for the static-source tests, built in milliseconds, with hooks
to damage any config key or tensor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"]
PIECES = ["the", "cat", "sat", "on", "mat", "dog", "##s", "##ing", "run", "a"]
VOCAB = SPECIAL + PIECES
H, LAYERS, HEADS, INNER, POSITIONS = 8, 2, 2, 16, 32
CONFIG: dict[str, Any] = {
    "model_type": "bert", "hidden_size": H, "num_attention_heads": HEADS,
    "num_hidden_layers": LAYERS, "intermediate_size": INNER, "hidden_act": "gelu",
    "layer_norm_eps": 1e-12, "vocab_size": len(VOCAB), "max_position_embeddings": POSITIONS,
    "type_vocab_size": 2,
}
Weights = dict[str, torch.Tensor]


def tiny_weights() -> Weights:
    """A random 2-layer BERT's tensors, unprefixed."""
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.5

    w = {"embeddings.word_embeddings.weight": r(len(VOCAB), H),
         "embeddings.position_embeddings.weight": r(POSITIONS, H),
         "embeddings.token_type_embeddings.weight": r(2, H),
         "embeddings.LayerNorm.weight": 1 + r(H), "embeddings.LayerNorm.bias": r(H)}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name, (o, n) in {"attention.self.query": (H, H), "attention.self.key": (H, H),
                             "attention.self.value": (H, H), "attention.output.dense": (H, H),
                             "intermediate.dense": (INNER, H),
                             "output.dense": (H, INNER)}.items():
            w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"] = r(o, n), r(o)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{ln}.weight"], w[f"{p}.{ln}.bias"] = 1 + r(H), r(H)
    return w


def tiny_bert(folder: Path, *, model_type: str = "bert", config: dict[str, Any] | None = None,
              weights: Callable[[Weights], Weights] | None = None,
              vocab: list[str] | None = None) -> Path:
    """A random 2-layer BERT with a 16-token WordPiece vocabulary, in the sentence-transformers
    folder layout (config.json, model.safetensors with a ``bert.`` prefix, vocab.txt).
    ``config`` entries replace the config's (the value ``DROP`` removes a key); ``weights``
    edits the unprefixed tensors before they are saved."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab or VOCAB) + "\n", encoding="utf-8")
    cfg = {**CONFIG, "model_type": model_type, **(config or {})}
    cfg = {k: v for k, v in cfg.items() if v is not DROP}
    (folder / "config.json").write_text(json.dumps(cfg))
    w = tiny_weights()
    if weights is not None:
        w = weights(w)
    save_file({f"bert.{k}": v.contiguous() for k, v in w.items()},
              str(folder / "model.safetensors"))
    return folder


DROP = object()  # a config value meaning "leave the key out"


def read_w2v_binary(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    head, rest = data.split(b"\n", 1)
    n, dim = map(int, head.split())
    out = {}
    for _ in range(n):
        word, rest = rest.split(b" ", 1)
        out[word.decode()] = np.frombuffer(rest[: 4 * dim], "<f4")
        rest = rest[4 * dim + 1 :]
    assert rest == b""
    return out


def tiny_onnx(path: Path, *, rows: int = len(VOCAB), inputs: tuple[str, ...] = (
        "input_ids", "attention_mask"), id_type: int | None = None,
              mask_type: int | None = None, scale: float = 1.0, extra_token: bool = False,
              external: str | None = None) -> Path:
    """An ONNX "encoder": token states = a table's rows (Gather on input_ids) times ``scale``
    (or the table with one token too many: ``extra_token``). ``external`` stores the table as
    external data at that location."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((rows, H)).astype(np.float32)
    init = numpy_helper.from_array(table, "embeddings.word_embeddings.weight")
    if external is not None:
        init.data_location = TensorProto.EXTERNAL
        init.ClearField("raw_data")
        for k, v in {"location": external, "offset": "0", "length": str(table.nbytes)}.items():
            init.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    nodes = [helper.make_node("Gather", ["embeddings.word_embeddings.weight", "input_ids"],
                              ["g"]),
             helper.make_node("Mul", ["g", "scale"], ["s"])]
    inits = [init, numpy_helper.from_array(np.array(scale, np.float32), "scale")]
    if extra_token:
        nodes.append(helper.make_node("Concat", ["s", "s"], ["states"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["s"], ["states"]))
    ids = id_type or TensorProto.INT64
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(n, ids if n == "input_ids" else mask_type or ids,
                                       ["B", "T"]) for n in inputs],
        [helper.make_tensor_value_info("states", TensorProto.FLOAT, ["B", "T", H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path
