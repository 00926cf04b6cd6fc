"""The files of a BERT folder, checked before `metaprep static-source` runs a single forward pass.

A model folder may come from anyone, so nothing in it is taken on trust:

- ``config.json``: every key the forward pass uses has its type and range checked (sizes are
  bounded, so nothing absurd is asked for; ``hidden_size`` must divide by the heads; options
  that would change the arithmetic, such as relative position embeddings, are refused);
- ``model.safetensors``: its header is read first, and every tensor the forward pass reads must
  be there with a float dtype and the exact shape the config gives (no layer missing, none
  extra); then the tensors are loaded and must hold finite values;
- ``vocab.txt``: strict UTF-8, one token per ``\\n``-ended line (the line is the id), every id
  inside the embedding table.

Each file must be a regular file (a pipe would block the read, ``/dev/zero`` fill memory), the
small ones of bounded size. Every failure is a one-line ModelError naming the file and the key,
tensor or line.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from metaprep.errors import MetaprepError, ModelError

if TYPE_CHECKING:
    import torch

__all__ = ["ACTS", "BertConfig", "SUPPORTED", "check_vocab_fits", "read_bounded", "read_config",
           "read_vocab", "read_weights", "tensor_shapes"]

ACTS = ("gelu", "relu", "gelu_new")
SUPPORTED = ("a BERT folder (config.json with model_type bert + model.safetensors) or an ONNX "
             "BERT export with inputs input_ids and attention_mask")
MAX_CONFIG_BYTES = 1 << 20  # a BERT config.json is under 1 KB
MAX_VOCAB_BYTES = 64 << 20  # bert-base's vocab.txt is 230 KB; a 1 M-token vocabulary ~10 MB
_FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
_EMBEDDINGS = "embeddings.word_embeddings.weight"
_LAYER = re.compile(r"encoder\.layer\.([^.]*)\.")

# config key -> (lowest, highest, default; None: the key is required). The bounds are far above
# any published BERT (bert-large: 1,024 wide, 24 layers, 16 heads, 4,096 inner, 30,522 tokens)
# and keep what a forged config can ask for small before any tensor is compared with it.
_INTS: dict[str, tuple[int, int, int | None]] = {
    "hidden_size": (1, 16_384, None),
    "num_attention_heads": (1, 16_384, None),
    "num_hidden_layers": (1, 256, None),
    "intermediate_size": (1, 65_536, None),
    "vocab_size": (1, 2_000_000, None),
    "max_position_embeddings": (1, 1 << 20, 512),  # Hugging Face's defaults for the optional
    "type_vocab_size": (1, 1024, 2),
}


@dataclass(frozen=True)
class BertConfig:
    """What the forward pass needs from config.json, checked."""

    hidden: int
    heads: int
    layers: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float = 1e-12
    act: str = "gelu"


def tensor_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the forward pass reads, with the shape the config gives it."""
    h, i = cfg.hidden, cfg.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        _EMBEDDINGS: (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_positions, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab, h),
        "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg.layers):
        p = f"encoder.layer.{n}"
        for name, (rows, cols) in {"attention.self.query": (h, h), "attention.self.key": (h, h),
                                   "attention.self.value": (h, h),
                                   "attention.output.dense": (h, h),
                                   "intermediate.dense": (i, h), "output.dense": (h, i)}.items():
            shapes[f"{p}.{name}.weight"], shapes[f"{p}.{name}.bias"] = (rows, cols), (rows,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}.{ln}.weight"], shapes[f"{p}.{ln}.bias"] = (h,), (h,)
    return shapes


# --- files ----------------------------------------------------------------------------------
def _regular(path: Path, what: str, error: type[MetaprepError]) -> os.stat_result:
    try:
        st = os.stat(path)  # follows links: a Hugging Face cache links every file to a blob
    except FileNotFoundError as exc:
        raise error(f"no {what} here", path=path, hint=f"static-source reads {SUPPORTED}") from exc
    except OSError as exc:  # a link loop, no permission
        raise error(f"cannot read the {what} ({exc.strerror or exc})", path=path) from exc
    if not stat.S_ISREG(st.st_mode):
        raise error(f"the {what} is not a regular file (a folder, pipe or device)", path=path)
    return st


def read_bounded(path: Path, what: str, limit: int,
                 error: type[MetaprepError] = ModelError) -> bytes:
    """A regular file's bytes, refused when over ``limit`` (checked before it is read)."""
    st = _regular(path, what, error)
    if st.st_size > limit:
        raise error(f"the {what} is {st.st_size:,} bytes, more than the {limit:,} allowed",
                    path=path, hint=f"is this really a {what}?")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} ({exc.strerror or exc})", path=path) from exc
    if len(data) > limit:  # it grew since the stat
        raise error(f"the {what} is more than the {limit:,} bytes allowed", path=path)
    return data


# --- config.json ----------------------------------------------------------------------------
def read_config(path: Path) -> BertConfig:
    """config.json, every key the forward pass uses checked (see the module docstring)."""
    data = read_bounded(path, "config.json", MAX_CONFIG_BYTES)
    try:
        config = json.loads(data.decode("utf-8"))  # NaN / Infinity fail the range checks
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"cannot read config.json ({exc})", path=path,
                         hint=f"static-source reads {SUPPORTED}") from exc
    if not isinstance(config, dict):
        raise ModelError(f"config.json holds a JSON {type(config).__name__}, not an object",
                         path=path, hint=f"static-source reads {SUPPORTED}")
    if config.get("model_type") != "bert":
        raise ModelError(f"model_type {config.get('model_type')!r} is not supported",
                         path=path, hint=f"static-source reads {SUPPORTED}")

    def bad(key: str, why: str) -> ModelError:
        return ModelError(f"config key {key!r} {why}", path=path,
                          hint="the folder's config.json does not describe a BERT "
                               "static-source reads")

    sizes: dict[str, int] = {}
    for key, (low, high, default) in _INTS.items():
        value = config.get(key, default)
        if key not in config and default is None:
            raise bad(key, "is missing")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(key, f"must be a whole number from {low:,} to {high:,}, not {value!r}")
        sizes[key] = value
    hidden, heads = sizes["hidden_size"], sizes["num_attention_heads"]
    if hidden % heads:
        raise bad("num_attention_heads", f"({heads}) must divide hidden_size ({hidden})")
    eps = config.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise bad("layer_norm_eps", f"must be a number above 0 and at most 1, not {eps!r}")
    act = config.get("hidden_act", "gelu")
    if act not in ACTS:
        raise bad("hidden_act", f"is {act!r}; supported: {', '.join(ACTS)}")
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise bad("position_embedding_type", f"is {position!r}; only 'absolute' is supported")
    return BertConfig(hidden, heads, sizes["num_hidden_layers"], sizes["intermediate_size"],
                      sizes["vocab_size"], sizes["max_position_embeddings"],
                      sizes["type_vocab_size"], float(eps), str(act))


# --- model.safetensors ----------------------------------------------------------------------
def _prefix(keys: list[str], path: Path) -> str:
    """The wrapper prefix (``bert.``, ``0.auto_model.``...) before ``embeddings.``."""
    found = sorted({k[: -len(_EMBEDDINGS)] for k in keys if k.endswith(_EMBEDDINGS)})
    if not found:
        raise ModelError(f"tensor {_EMBEDDINGS} is missing (under any prefix): not a BERT",
                         path=path, hint=f"static-source reads {SUPPORTED}")
    if len(found) > 1:
        raise ModelError(f"the file holds {len(found)} word embedding tables "
                         f"({', '.join(p + _EMBEDDINGS for p in found[:3])}): which is the "
                         "model is not clear", path=path, hint="keep one model per folder")
    return found[0]


def read_weights(path: Path, cfg: BertConfig, config_path: Path) -> dict[str, torch.Tensor]:
    """The tensors the forward pass reads (as float32, wrapper prefix dropped), each checked
    in the header (present, float dtype, shape) before any is loaded, then for finite values."""
    import torch
    from safetensors import SafetensorError, safe_open

    _regular(path, "model.safetensors", ModelError)
    want = tensor_shapes(cfg)
    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            prefix = _prefix(keys, path)
            for key in keys:  # an encoder layer the config does not have is not ignored
                m = _LAYER.match(key[len(prefix):]) if key.startswith(prefix) else None
                if m and not (m.group(1).isdigit() and int(m.group(1)) < cfg.layers):
                    raise ModelError(
                        f"tensor {key} belongs to encoder layer {m.group(1)!r}, but "
                        f"{config_path.name} gives num_hidden_layers {cfg.layers}", path=path,
                        hint="the config and the weights are of different models")
            for name, shape in want.items():
                key = prefix + name
                if key not in keys:
                    raise ModelError(f"tensor {key} is missing", path=path,
                                     hint="the weights are incomplete or of another model")
                part = f.get_slice(key)
                dtype, got = part.get_dtype(), tuple(part.get_shape())
                if dtype not in _FLOAT_DTYPES:
                    raise ModelError(f"tensor {key} has dtype {dtype}; a weight must be one of "
                                     f"{', '.join(_FLOAT_DTYPES)}", path=path)
                if got != shape:
                    raise ModelError(
                        f"tensor {key} has shape {list(got)}, {config_path.name} makes it "
                        f"{list(shape)}", path=path,
                        hint="the config and the weights are of different models")
            for name in want:
                t = f.get_tensor(prefix + name).float()
                if not bool(torch.isfinite(t).all()):
                    raise ModelError(f"tensor {prefix + name} holds a NaN or infinite value",
                                     path=path, hint="the weights are damaged")
                out[name] = t
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"cannot read the weights ({exc})", path=path,
                         hint=f"static-source reads {SUPPORTED}") from exc
    return out


# --- vocab.txt ------------------------------------------------------------------------------
def read_vocab(path: Path) -> list[str]:
    """A WordPiece vocab.txt: one token per ``\\n``-ended line (a CR before it dropped), the
    line number the id. Only ``\\n`` ends a line: a token holding U+2028 or a form feed must not
    shift the ids of every token after it."""
    data = read_bounded(path, "vocabulary", MAX_VOCAB_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ModelError(f"the vocabulary is not valid UTF-8 (byte {data[exc.start]:#04x})",
                         path=path, line=line,
                         hint="give the model's vocab.txt with --vocab-file") from exc
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
    if "[CLS]" not in tokens or "[SEP]" not in tokens:
        raise ModelError("no [CLS]/[SEP] tokens: not a BERT WordPiece vocabulary", path=path,
                         hint="give the model's vocab.txt with --vocab-file")
    return tokens


def check_vocab_fits(tokens: list[str], rows: int, vocab: Path, table: str) -> None:
    """Every id of the vocabulary (its line number) must be a row of the embedding table."""
    if len(tokens) > rows:
        raise ModelError(
            f"the vocabulary has {len(tokens):,} tokens but {table} has {rows:,} rows: ids "
            f"from {rows:,} on ({tokens[rows]!r} first) lie past the table", path=vocab,
            hint="give this model's own vocab.txt with --vocab-file")
