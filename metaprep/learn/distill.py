"""A sentence-transformer -> a static embedding file (the library behind `metaprep distill`),
the way model2vec does it: each vocabulary entry through the model on its own, the mean of its
token states ([CLS] and [SEP] included, as the model's mean pooling), PCA to fewer dimensions,
then optional Zipf weighting (rows scaled by log(2 + rank): frequent entries, which carry little
topic, count less).

The vocabulary is the tokenizer's own (every WordPiece token but the special and [unused]
ones, in id order, which WordPiece vocabularies roughly sort by frequency) or a word list (each
word cut into its WordPieces as BERT's tokenizer does, by metaprep.prep.readers.wordpiece; list
it most frequent first for the Zipf weights).

Output: a word2vec binary file that `metaprep align` reads like any other source, and beside
it ``<output>.json`` with the provenance (model, its sha256, dims, PCA, date).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaprep.atomic import atomic_path, write_failure
from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError, DataError, ModelError
from metaprep.learn.bert import SUPPORTED, load_bert

__all__ = ["distill_model", "read_words"]

Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]  # ids (B,T), mask (B,T) -> (B,T,H)
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_PIECES = 16  # a word longer than this in pieces is cut: its vector is its first pieces'


def _encoder(model: Path) -> tuple[Encode, Path, dict[str, Any]]:
    """-> (encode, the weights file, what the model is). A folder or its model.safetensors:
    the torch BERT; a .onnx file: onnxruntime."""
    if model.suffix == ".onnx":
        return _onnx_encoder(model)
    folder = model if model.is_dir() else model.parent
    if not model.is_dir() and model.name != "model.safetensors":
        raise ModelError("not a supported model", path=model, hint=f"distill reads {SUPPORTED}")
    bert = load_bert(folder)

    def encode(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return bert(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    info = {"kind": "bert-safetensors", "layers": bert.layers, "hidden": bert.hidden}
    return encode, folder / "model.safetensors", info


def _onnx_encoder(model: Path) -> tuple[Encode, Path, dict[str, Any]]:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unrelated exception types
        raise ModelError(f"cannot load the ONNX model ({str(exc).splitlines()[0]})",
                         path=model, hint=f"distill reads {SUPPORTED}") from exc
    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs() if len(o.shape or []) == 3]
    if not {"input_ids", "attention_mask"} <= set(names) or not outs:
        raise ModelError(f"inputs {names} and no (batch, tokens, hidden) output: not a "
                         "supported model", path=model, hint=f"distill reads {SUPPORTED}")

    def encode(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        return sess.run([outs[0]], feed)[0]  # type: ignore[no-any-return]

    return encode, model, {"kind": "onnx", "output": outs[0]}


def _vocabulary(model: Path, vocab: Path | None) -> dict[str, int]:
    """The model's WordPiece vocabulary (vocab.txt: one token per line, the line is the id)."""
    path = vocab or (model if model.is_dir() else model.parent) / "vocab.txt"
    try:
        tokens = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the vocabulary ({exc})", path=path,
                         hint="give the model's vocab.txt with --vocab-file") from exc
    index = {t: i for i, t in enumerate(tokens) if t}
    if "[CLS]" not in index or "[SEP]" not in index:
        raise ModelError("no [CLS]/[SEP] tokens: not a BERT WordPiece vocabulary", path=path,
                         hint="give the model's vocab.txt with --vocab-file")
    return index


def read_words(path: Path) -> list[str]:
    """A word list: the first whitespace-separated field of each non-empty line, kept once."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the word list ({exc})", path=path) from exc
    words = list(dict.fromkeys(line.split()[0] for line in lines if line.strip()))
    if not words:
        raise DataError("the word list is empty", path=path, hint="one word per line")
    return words


def _entries(index: dict[str, int], words: Sequence[str] | None
             ) -> tuple[list[str], list[list[int]]]:
    """(names, ids with [CLS] and [SEP]) of every entry to distil."""
    from metaprep.prep.readers.wordpiece import wordpieces

    cls, sep = index["[CLS]"], index["[SEP]"]
    if words is None:
        keep = [(w, i) for w, i in sorted(index.items(), key=lambda kv: kv[1])
                if w not in _SPECIAL and not w.startswith("[unused")]
        return [w for w, _ in keep], [[cls, i, sep] for _, i in keep]
    lower = not any(c.isupper() for t in index for c in t if not t.startswith("["))  # uncased
    ids = [wordpieces(w.lower() if lower else w, index)[:MAX_PIECES] for w in words]
    kept = [(w, i) for w, i in zip(words, ids, strict=True) if i]
    return [w for w, _ in kept], [[cls, *i, sep] for _, i in kept]


def _mean_states(encode: Encode, ids: list[list[int]], batch_size: int, progress: bool
                 ) -> np.ndarray:
    from tqdm import tqdm

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths batch together
    out: np.ndarray | None = None
    bar = tqdm(total=len(ids), desc="distilling", unit="entry", disable=not progress,
               file=sys.stderr)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(ids[r]) for r in rows)
        batch = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            batch[j, : len(ids[r])] = ids[r]
        mask = (np.arange(width)[None, :] < np.array([len(ids[r]) for r in rows])[:, None])
        states = encode(batch, mask.astype(np.int64))  # (B,T,H)
        mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # (B,H)
        if out is None:
            out = np.empty((len(ids), mean.shape[1]), dtype=np.float32)
        out[rows] = mean
        bar.update(len(rows))
    bar.close()
    assert out is not None
    return out


def _pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, float]:
    """Rows projected on the top ``dims`` principal axes, and the variance share they keep."""
    centred = x - x.mean(0)
    cov = centred.T.astype(np.float64) @ centred / max(1, len(x) - 1)  # (H,H)
    values, vectors = np.linalg.eigh(cov)
    top = np.argsort(values)[::-1][:dims]
    share = float(values[top].sum() / values.sum()) if values.sum() > 0 else 1.0
    return (centred @ vectors[:, top]).astype(np.float32), share


def distill_model(model: str | Path, output: str | Path, *, words: str | Path | None = None,
                  vocab_file: str | Path | None = None, pca_dims: int | None = 256,
                  zipf: bool = True, batch_size: int = 256, progress: bool = True
                  ) -> dict[str, Any]:
    """Write the distilled table (word2vec binary) and its provenance; returns the provenance."""
    model, output = Path(model), Path(output)
    if not model.exists():
        raise ModelError("no such model", path=model, hint=f"distill reads {SUPPORTED}")
    if pca_dims is not None and pca_dims < 1:
        raise ConfigError("pca_dims must be at least 1 (or none: keep every dimension)")
    encode, weights_file, info = _encoder(model)
    index = _vocabulary(model, Path(vocab_file) if vocab_file else None)
    word_list = read_words(Path(words)) if words else None
    names, ids = _entries(index, word_list)
    if not ids:
        raise DataError("no word of the list has a piece in the vocabulary", path=words)
    vectors = _mean_states(encode, ids, batch_size, progress)  # (N,H)
    hidden = int(vectors.shape[1])
    share = 1.0
    if pca_dims is not None and pca_dims < hidden:
        vectors, share = _pca(vectors, pca_dims)
    if zipf:
        vectors *= np.log(2.0 + np.arange(len(vectors), dtype=np.float32))[:, None]
    keep = [i for i, w in enumerate(names) if not any(c.isspace() for c in w)]
    record = {
        "model": str(model.resolve()), "weights": str(weights_file.resolve()),
        "sha256": file_sha256(weights_file), **info, "hidden": hidden,
        "dim": int(vectors.shape[1]), "pca_dims": pca_dims if pca_dims and pca_dims < hidden
        else None, "pca_variance_kept": round(share, 4), "zipf": zipf,
        "vocabulary": str(Path(words).resolve()) if words else "tokenizer", "rows": len(keep),
        "pooling": "mean of token states incl. [CLS] and [SEP]",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write(output, [names[i] for i in keep], vectors[keep], record)
    return record


def _write(output: Path, names: Sequence[str], vectors: np.ndarray, record: dict[str, Any]
           ) -> None:
    sidecar = output.with_name(output.name + ".json")
    try:
        with atomic_path(output) as tmp, open(tmp, "wb") as f:
            f.write(f"{len(names)} {vectors.shape[1]}\n".encode())
            rows = vectors.astype("<f4")  # word2vec binary: little-endian float32
            f.write(b"".join(w.encode("utf-8") + b" " + r.tobytes() + b"\n"
                             for w, r in zip(names, rows, strict=True)))
        with atomic_path(sidecar) as tmp_json:
            tmp_json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise write_failure(output, exc) from exc
