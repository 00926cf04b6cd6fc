"""A sentence-transformer -> a static embedding file (the library behind `metaprep static-source`),
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.atomic import atomic_path, write_failure
from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError, DataError, ModelError
from metaprep.learn.bertfiles import SUPPORTED, check_vocab_fits, read_bounded, read_vocab

__all__ = ["write_static_source", "read_words"]

Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]  # ids (B,T), mask (B,T) -> (B,T,H)
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_PIECES = 16  # a word longer than this in pieces is cut: its vector is its first pieces'
MAX_BATCH = 65_536  # entries per forward pass
MAX_WORDS_BYTES = 256 << 20  # read no more than this of a word list
MAX_WORDS = 2_000_000  # 10 x model2vec's largest vocabularies; the table is MAX_WORDS x hidden


@dataclass(frozen=True)
class _Encoder:
    encode: Encode
    weights: Path  # the file whose sha256 the provenance records
    info: dict[str, Any]
    rows: int | None  # rows of the word embedding table (None: not found in an ONNX graph)
    positions: int | None  # tokens an entry may have ([CLS] and [SEP] included)


def _encoder(model: Path) -> _Encoder:
    """A folder or its model.safetensors: the torch BERT, its files checked (bertfiles); a
    .onnx file: onnxruntime, its graph checked (staticsource_onnx)."""
    if model.suffix == ".onnx":
        from metaprep.learn.staticsource_onnx import onnx_encoder

        run, info, rows, positions = onnx_encoder(model)
        return _Encoder(run, model, info, rows, positions)
    folder = model if model.is_dir() else model.parent
    if not model.is_dir() and model.name != "model.safetensors":
        raise ModelError("not a supported model", path=model,
                         hint=f"static-source reads {SUPPORTED}")
    import torch

    from metaprep.learn.bert import load_bert

    bert = load_bert(folder)

    def encode(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return bert(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    info = {"kind": "bert-safetensors", "layers": bert.layers, "hidden": bert.hidden}
    return _Encoder(encode, folder / "model.safetensors", info, bert.config.vocab_size,
                    bert.max_positions)


def _vocabulary(model: Path, vocab: Path | None, enc: _Encoder) -> dict[str, int]:
    """The model's WordPiece vocabulary (vocab.txt: one token per line, the line is the id),
    every id inside the model's embedding table."""
    path = vocab or (model if model.is_dir() else model.parent) / "vocab.txt"
    tokens = read_vocab(path)
    if enc.rows is not None:
        check_vocab_fits(tokens, enc.rows, path, f"{enc.weights.name}'s word embedding table")
    return {t: i for i, t in enumerate(tokens) if t}


def read_words(path: Path) -> list[str]:
    """A word list: the first whitespace-separated field of each non-empty line, kept once."""
    data = read_bounded(path, "word list", MAX_WORDS_BYTES, DataError)
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"the word list is not valid UTF-8 (byte {data[exc.start]:#04x})",
                        path=path, line=data.count(b"\n", 0, exc.start) + 1,
                        hint="save it as UTF-8") from exc
    words = list(dict.fromkeys(line.split()[0] for line in lines if line.strip()))
    if not words:
        raise DataError("the word list is empty", path=path, hint="one word per line")
    if len(words) > MAX_WORDS:
        raise DataError(f"the word list has {len(words):,} words; static-source takes at most "
                        f"{MAX_WORDS:,}", path=path, hint="keep the most frequent words")
    return words


def _entries(index: dict[str, int], words: Sequence[str] | None, pieces: int
             ) -> tuple[list[str], list[list[int]]]:
    """(names, ids with [CLS] and [SEP]) of every entry to encode, each of at most ``pieces``
    pieces."""
    from metaprep.prep.readers.wordpiece import wordpieces

    cls, sep = index["[CLS]"], index["[SEP]"]
    if words is None:
        keep = [(w, i) for w, i in sorted(index.items(), key=lambda kv: kv[1])
                if w not in _SPECIAL and not w.startswith("[unused")]
        return [w for w, _ in keep], [[cls, i, sep] for _, i in keep]
    lower = not any(c.isupper() for t in index for c in t if not t.startswith("["))  # uncased
    ids = [wordpieces(w.lower() if lower else w, index)[:pieces] for w in words]
    kept = [(w, i) for w, i in zip(words, ids, strict=True) if i]
    return [w for w, _ in kept], [[cls, *i, sep] for _, i in kept]


def _mean_states(encode: Encode, names: Sequence[str], ids: list[list[int]], batch_size: int,
                 progress: bool, model: Path) -> np.ndarray:
    """(N,H) float32: each entry's mean token state; a non-finite one is a ModelError naming
    the entry (NaN or overflowing weights), never a row of the output."""
    from tqdm import tqdm

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths batch together
    out: np.ndarray | None = None
    bar = tqdm(total=len(ids), desc="static source", unit="entry", disable=not progress,
               file=sys.stderr)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(ids[r]) for r in rows)
        batch = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            batch[j, : len(ids[r])] = ids[r]
        mask = (np.arange(width)[None, :] < np.array([len(ids[r]) for r in rows])[:, None])
        states = encode(batch, mask.astype(np.int64)).astype(np.float64)  # (B,T,H)
        with np.errstate(over="ignore", invalid="ignore"):  # float64: finite states never sum
            mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # to inf
        bad = ~np.isfinite(mean).all(axis=1)
        if bad.any():
            raise ModelError(f"the model's states for {names[rows[int(np.argmax(bad))]]!r} hold "
                             "a NaN or infinite value", path=model,
                             hint="its weights are out of range; nothing was written")
        if out is None:
            out = np.empty((len(ids), mean.shape[1]), dtype=np.float32)
        out[rows] = mean
        bar.update(len(rows))
    bar.close()
    if out is None:
        raise DataError("nothing to encode", path=model)
    return out


def _pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, float]:
    """Rows projected on the top ``dims`` principal axes, and the variance share they keep."""
    centred = x - x.mean(0)
    cov = centred.T.astype(np.float64) @ centred / max(1, len(x) - 1)  # (H,H)
    values, vectors = np.linalg.eigh(cov)
    top = np.argsort(values)[::-1][:dims]
    share = float(values[top].sum() / values.sum()) if values.sum() > 0 else 1.0
    return (centred @ vectors[:, top]).astype(np.float32), share


def _check_options(pca_dims: int | None, batch_size: int) -> None:
    for name, value, low, high in (("pca_dims", pca_dims, 1, None),
                                   ("batch_size", batch_size, 1, MAX_BATCH)):
        if value is None and name == "pca_dims":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low or \
                (high is not None and value > high):
            span = f"from {low} to {high:,}" if high else f"at least {low}"
            raise ConfigError(f"{name} must be a whole number {span}, not {value!r}"
                              + (" (or none: keep every dimension)" if name == "pca_dims" else ""))


def write_static_source(model: str | Path, output: str | Path, *, words: str | Path | None = None,
                  vocab_file: str | Path | None = None, pca_dims: int | None = 256,
                  zipf: bool = True, batch_size: int = 256, progress: bool = True
                  ) -> dict[str, Any]:
    """Write the static table (word2vec binary) and its provenance; returns the provenance.
    The model's files are all checked before the first forward pass (bertfiles,
    staticsource_onnx)."""
    model, output = Path(model), Path(output)
    if not model.exists():
        raise ModelError("no such model", path=model, hint=f"static-source reads {SUPPORTED}")
    _check_options(pca_dims, batch_size)
    enc = _encoder(model)
    index = _vocabulary(model, Path(vocab_file) if vocab_file else None, enc)
    word_list = read_words(Path(words)) if words else None
    pieces = MAX_PIECES if enc.positions is None else min(MAX_PIECES, enc.positions - 2)
    if pieces < 1:
        raise ModelError(f"the model has {enc.positions} positions; an entry needs at least 3 "
                         "([CLS], a piece, [SEP])", path=model)
    names, ids = _entries(index, word_list, pieces)
    if not ids:
        raise DataError("no word of the list has a piece in the vocabulary" if words else
                        "the vocabulary has no token but special ones", path=words or model)
    vectors = _mean_states(enc.encode, names, ids, batch_size, progress, model)  # (N,H)
    hidden = int(vectors.shape[1])
    share = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        if pca_dims is not None and pca_dims < hidden:
            vectors, share = _pca(vectors, pca_dims)
        if zipf:
            vectors *= np.log(2.0 + np.arange(len(vectors), dtype=np.float32))[:, None]
    # a word2vec file cannot hold a word with a space, and a store no NUL
    keep = [i for i, w in enumerate(names) if not any(c.isspace() or c == "\0" for c in w)]
    if not keep:
        raise DataError("every entry holds a space or NUL, which a word2vec file cannot hold",
                        path=words or model)
    record = {
        "model": str(model.resolve()), "weights": str(enc.weights.resolve()),
        "sha256": file_sha256(enc.weights), **enc.info, "hidden": hidden,
        "dim": int(vectors.shape[1]), "pca_dims": pca_dims if pca_dims and pca_dims < hidden
        else None, "pca_variance_kept": round(share, 4), "zipf": zipf,
        "vocabulary": str(Path(words).resolve()) if words else "tokenizer", "rows": len(keep),
        "pooling": "mean of token states incl. [CLS] and [SEP]",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write(output, [names[i] for i in keep], vectors[keep], record, model)
    return record


def _write(output: Path, names: Sequence[str], vectors: np.ndarray, record: dict[str, Any],
           model: Path) -> None:
    """The table and its provenance, each written whole or not at all; a non-finite vector
    (PCA or the Zipf weights overflowing float32) is refused before anything is written."""
    if not np.isfinite(vectors).all():
        raise ModelError("the static vectors overflow float32 (the model's states are too "
                         "large)", path=model, hint="nothing was written")
    sidecar = output.with_name(output.name + ".json")
    try:  # both written before either is renamed: a failure keeps the earlier pair whole
        with atomic_path(output) as tmp, atomic_path(sidecar) as tmp_json:
            with open(tmp, "wb") as f:
                f.write(f"{len(names)} {vectors.shape[1]}\n".encode())
                rows = vectors.astype("<f4")  # word2vec binary: little-endian float32
                f.write(b"".join(w.encode("utf-8") + b" " + r.tobytes() + b"\n"
                                 for w, r in zip(names, rows, strict=True)))
            tmp_json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise write_failure(output, exc) from exc
