"""Filling the rows a source does not have (OOV rows), and the row statistics they need.

Strategies (``--oov NAME=STRATEGY``):

    zero      zeros (the dataset's fill value: nothing to write)
    random    N(mean_d, std_d) per dimension d, the source's own statistics over present rows,
              drawn from a generator seeded by (seed, source name): reproducible
    mean      the mean of the source's present rows
    subword   composed from the word's pieces (Source.subword_vectors): fastText character
              n-grams for a .bin model, the mean of WordPiece pieces for a matrix whose vocabulary
              has ``##`` pieces (a transformer's input table)
    map       a least-squares linear map (with bias) from the other sources' vectors, fitted on
              words present everywhere; ``map:OTHER`` maps from one source only. Rows whose
              predictors are missing too stay zero and are counted as ``unmapped``.

Every pass reads the store being written back in blocks of consecutive rows, so memory stays
flat whatever the vocabulary size. Present rows are never changed here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metaprep.errors import ConfigError, VocabError
from metaprep.prep.store import StoreWriter

__all__ = [
    "OOV_STRATEGIES",
    "OovSpec",
    "RowStats",
    "fill_constant",
    "fill_map",
    "fill_random",
    "fill_subword",
    "l2_rows",
    "parse_oov",
    "present_stats",
    "source_rng",
]

OOV_STRATEGIES = ("zero", "random", "mean", "subword", "map")


@dataclass(frozen=True)
class OovSpec:
    kind: str  # one of OOV_STRATEGIES
    other: str | None = None  # map: the one source to map from (None: all the others)

    def __str__(self) -> str:
        return f"map:{self.other}" if self.other else self.kind


def parse_oov(text: str, *, option: str = "--oov") -> OovSpec:
    kind, sep, other = text.partition(":")
    if kind not in OOV_STRATEGIES or (sep and kind != "map") or (sep and not other):
        raise ConfigError(
            f"unknown OOV strategy {text!r} for {option}",
            hint=f"use one of {', '.join(OOV_STRATEGIES)} or map:OTHER_SOURCE",
        )
    return OovSpec(kind, other or None)


class RowStats:
    """Per-dimension count, mean and standard deviation, accumulated block by block (float64)."""

    def __init__(self, dim: int) -> None:
        self.count = 0
        self._sum = np.zeros(dim, dtype=np.float64)
        self._sumsq = np.zeros(dim, dtype=np.float64)

    def update(self, rows: np.ndarray) -> None:
        if len(rows):
            self.count += len(rows)
            self._sum += rows.sum(axis=0, dtype=np.float64)
            self._sumsq += np.einsum("ij,ij->j", rows, rows, dtype=np.float64)

    @property
    def mean(self) -> np.ndarray:
        return self._sum / max(self.count, 1)

    @property
    def std(self) -> np.ndarray:
        var = self._sumsq / max(self.count, 1) - np.square(self.mean)
        return np.sqrt(np.maximum(var, 0.0))


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    # in float64: float32 squares overflow past 1.8e19 and vanish below 1e-19, which made such
    # rows all zeros
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def source_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends on the seed and the source name only, so adding or reordering
    other sources does not change this source's draws."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _blocks(
    writer: StoreWriter, name: str, desc: str, progress: bool
) -> Iterator[tuple[int, int]]:
    if not progress:
        yield from writer.iter_blocks(name)
        return
    from tqdm import tqdm

    with tqdm(total=writer.vocab_size, unit="row", leave=False, desc=desc) as bar:
        for start, stop in writer.iter_blocks(name):
            yield start, stop
            bar.update(stop - start)


def present_stats(
    writer: StoreWriter,
    name: str,
    present: np.ndarray,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = False,
) -> RowStats:
    """Statistics of the present rows; with ``transform``, present rows are first replaced by
    ``transform(rows)`` in the store (e.g. centring) and the statistics are of the new rows."""
    stats = RowStats(int(writer.vectors(name).shape[1]))
    desc = f"normalizing {name}" if transform else f"statistics {name}"
    for start, stop in _blocks(writer, name, desc, progress):
        mask = present[start:stop]
        if not mask.any():
            continue
        block = writer.read_block(name, start, stop)
        rows = block[mask]
        if transform is not None:
            rows = transform(rows)
            block[mask] = rows
            writer.write_block(name, start, block)
        stats.update(rows)
    return stats


def _fill(
    writer: StoreWriter,
    name: str,
    present: np.ndarray,
    make: Callable[[int, int, np.ndarray], np.ndarray],
    desc: str,
    progress: bool,
) -> int:
    """Replace the non-present rows of each block by ``make(start, stop, missing_mask)``."""
    filled = 0
    for start, stop in _blocks(writer, name, desc, progress):
        missing = ~present[start:stop]
        k = int(missing.sum())
        if k == 0:
            continue
        block = writer.read_block(name, start, stop)
        block[missing] = make(start, stop, missing)
        writer.write_block(name, start, block)
        filled += k
    return filled


def fill_constant(
    writer: StoreWriter, name: str, present: np.ndarray, value: np.ndarray, *,
    progress: bool = False,
) -> int:
    """Every OOV row becomes ``value`` (e.g. the source's mean vector)."""
    v = np.asarray(value, dtype=np.float32)
    return _fill(writer, name, present, lambda a, b, m: np.broadcast_to(v, (int(m.sum()), len(v))),
                 f"OOV mean {name}", progress)


def fill_random(
    writer: StoreWriter, name: str, present: np.ndarray, stats: RowStats,
    rng: np.random.Generator, *, progress: bool = False,
) -> int:
    """OOV rows drawn from N(mean, std) of the present rows, per dimension."""
    mean, std = stats.mean, stats.std

    def make(a: int, b: int, m: np.ndarray) -> np.ndarray:
        return rng.normal(mean, std, size=(int(m.sum()), len(mean))).astype(np.float32)

    return _fill(writer, name, present, make, f"OOV random {name}", progress)


def fill_subword(
    writer: StoreWriter, name: str, present: np.ndarray, vocab: Sequence[str], source: Any,
    *, normalize: Callable[[np.ndarray], np.ndarray] | None = None, progress: bool = False,
) -> tuple[int, int]:
    """OOV rows composed from the source's subword units (fastText n-grams, WordPiece pieces).
    Returns (filled, all-zero): a word without any known unit composes to zeros."""
    zero = 0

    def make(a: int, b: int, m: np.ndarray) -> np.ndarray:
        nonlocal zero
        words = [vocab[int(i)] for i in np.flatnonzero(m) + a]
        vecs = np.asarray(source.subword_vectors(words), dtype=np.float32)
        if normalize is not None:
            vecs = normalize(vecs)
        zero += int((~vecs.any(axis=1)).sum())
        return vecs

    filled = _fill(writer, name, present, make, f"OOV subword {name}", progress)
    return filled, zero


def _design(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Predictor rows side by side plus a column of ones (the bias)."""
    x = np.concatenate([*blocks, np.ones((len(blocks[0]), 1), dtype=np.float32)], axis=1)
    return x.astype(np.float64)


def fill_map(
    writer: StoreWriter,
    target: str,
    predictors: Sequence[str],
    present: Mapping[str, np.ndarray],
    *,
    holdout: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit ``target ~ [predictors, 1] @ W`` by least squares on words present in all of them,
    report the fit on a held-out share of those words (fitted without them), then fill the
    target's OOV rows whose predictors are all present with the map fitted on every shared word.
    """
    v = writer.vocab_size
    have_all = np.ones(v, dtype=bool)
    for p in predictors:
        have_all &= present[p]
    shared = have_all & present[target]
    held = source_rng(seed, target).random(v) < holdout
    n_held = int((shared & held).sum())
    n_train = int((shared & ~held).sum())
    d_in = sum(int(writer.vectors(p).shape[1]) for p in predictors) + 1
    d_out = int(writer.vectors(target).shape[1])
    if n_train < d_in or n_held < 1:
        raise VocabError(
            f"mapping {target} from {', '.join(predictors)} needs at least {d_in} shared words to "
            f"fit plus some to test; {n_train + n_held} words are present in all of them",
            hint="use another OOV strategy for this source, or a larger vocabulary",
        )
    xtx, xty = _normal_equations(writer, target, predictors, shared, held, d_in, d_out,
                                 progress)
    w_train = _solve(xtx["train"], xty["train"])
    w_all = _solve(xtx["train"] + xtx["held"], xty["train"] + xty["held"])
    fillable = have_all & ~present[target]
    score = _score_and_fill(writer, target, predictors, shared & held, fillable, w_train, w_all,
                            progress)
    ss_tot = float((score["y_sq"] - np.square(score["y_sum"]) / n_held).sum())
    return {
        "from": list(predictors),
        "train_words": n_train,
        "heldout_words": n_held,
        "r2": 1.0 - score["ss_res"] / ss_tot if ss_tot > 0 else None,
        "cosine": score["cos_sum"] / n_held,
        "filled": int(fillable.sum()),
        "unmapped": int((~have_all & ~present[target]).sum()),
    }


def _normal_equations(writer: StoreWriter, target: str, predictors: Sequence[str],
                      shared: np.ndarray, held: np.ndarray, d_in: int, d_out: int,
                      progress: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """X'X and X'Y over the shared words, kept apart for the fitted and the held-out ones."""
    xtx = {k: np.zeros((d_in, d_in)) for k in ("train", "held")}
    xty = {k: np.zeros((d_in, d_out)) for k in ("train", "held")}
    for start, stop in _blocks(writer, target, f"fitting map {target}", progress):
        sel = shared[start:stop]
        if not sel.any():
            continue
        x = _design([writer.read_block(p, start, stop)[sel] for p in predictors])
        y = writer.read_block(target, start, stop)[sel].astype(np.float64)
        h = held[start:stop][sel]
        for key, rows in (("train", ~h), ("held", h)):
            xtx[key] += x[rows].T @ x[rows]
            xty[key] += x[rows].T @ y[rows]
    return xtx, xty


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ridge = 1e-8 * max(float(np.trace(a)) / len(a), 1e-12)  # keeps rank-deficient fits finite
    return np.linalg.solve(a + ridge * np.eye(len(a)), b)


def _score_and_fill(writer: StoreWriter, target: str, predictors: Sequence[str],
                    tested: np.ndarray, fillable: np.ndarray, w_train: np.ndarray,
                    w_all: np.ndarray, progress: bool) -> dict[str, Any]:
    """One pass: score the held-out words with ``w_train``, fill OOV rows with ``w_all``."""
    d_out = w_all.shape[1]
    out: dict[str, Any] = {"ss_res": 0.0, "y_sum": np.zeros(d_out), "y_sq": np.zeros(d_out),
                           "cos_sum": 0.0}
    for start, stop in _blocks(writer, target, f"OOV map {target}", progress):
        test, fill = tested[start:stop], fillable[start:stop]
        if not (test.any() or fill.any()):
            continue
        need = test | fill
        x = _design([writer.read_block(p, start, stop)[need] for p in predictors])
        block = writer.read_block(target, start, stop)
        if test.any():
            yt = block[test].astype(np.float64)
            pred = x[test[need]] @ w_train
            out["ss_res"] += float(np.square(yt - pred).sum())
            out["y_sum"] += yt.sum(axis=0)
            out["y_sq"] += np.square(yt).sum(axis=0)
            denom = np.linalg.norm(yt, axis=1) * np.linalg.norm(pred, axis=1)
            out["cos_sum"] += float(np.sum(np.divide((yt * pred).sum(axis=1), denom,
                                                     out=np.zeros(len(yt)), where=denom > 0)))
        if fill.any():
            block[fill] = (x[fill[need]] @ w_all).astype(np.float32)
            writer.write_block(target, start, block)
    return out
