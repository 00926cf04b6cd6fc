"""Aligned vectors back out as a word2vec file (the library behind `metaprep export-vectors`).

Text: a ``V dim`` header, then ``word v1 v2 ...`` per line, floats in their shortest form that
reads back to the same float32. Binary: the same header, then ``word `` + dim little-endian
float32 + ``\\n`` per word (as the original word2vec tool writes it; gensim reads both). A word
containing whitespace cannot be represented in either and is left out (and counted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import ConfigError, StoreError
from metaprep.outputs import check_paths
from metaprep.prep.store import Store

__all__ = ["export_vectors"]


def export_vectors(
    store_path: str | Path,
    out: str | Path,
    *,
    source: str | None = None,
    concat: bool = False,
    binary: bool = False,
    only_present: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write one source (or all of them side by side with ``concat``) of the store to ``out``.

    ``only_present`` keeps the words the source's file had (with ``concat``: every source's).
    Returns what was written: rows, dim, and the words left out for containing whitespace.
    """
    if (source is None) == (not concat):
        raise ConfigError("name one source or ask for --concat (not both)")
    out = Path(out)
    # the output is never the store itself (-o STORE STORE used to replace the store)
    check_paths("export-vectors", {"output": out}, {"store": store_path})
    with Store(store_path) as store:
        names: Sequence[str] = list(store.sources) if concat else [str(source)]
        for n in names:
            store.dim(n)  # an unknown name raises StoreError naming the sources
        if not names:
            raise StoreError("the store has no sources", path=store.path)
        keep = np.ones(store.vocab_size, dtype=bool)
        if only_present:
            for n in names:
                keep &= store.present(n)
        vocab = store.vocab
        bad = np.array([not w or any(c.isspace() for c in w) for w in vocab], dtype=bool)
        skipped = [w for w in np.asarray(vocab, dtype=object)[bad & keep]]
        keep &= ~bad
        dim = sum(store.dim(n) for n in names)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(f"{int(keep.sum())} {dim}\n".encode())
                _write_rows(f, store, names, vocab, keep, binary, progress)
            os.replace(tmp, out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write the vectors: {exc.strerror or exc}", path=out) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return {"path": str(out), "rows": int(keep.sum()), "dim": dim, "sources": list(names),
            "skipped_whitespace": len(skipped), "skipped_examples": skipped[:5]}


def _write_rows(
    f: Any, store: Store, names: Sequence[str], vocab: Sequence[str], keep: np.ndarray,
    binary: bool, progress: bool,
) -> None:
    ds = store.vectors(names[0])
    step = max(1, (ds.chunks[0] if ds.chunks else 1024) * 16)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(vocab), unit="row", leave=False, desc="exporting")
    for start in range(0, len(vocab), step):
        stop = min(start + step, len(vocab))
        sel = keep[start:stop]
        if sel.any():
            block = np.concatenate([np.asarray(store.vectors(n)[start:stop], dtype="<f4")
                                    for n in names], axis=1)[sel]
            words = [w for w, k in zip(vocab[start:stop], sel, strict=True) if k]
            if binary:
                f.write(b"".join(w.encode("utf-8") + b" " + row.tobytes() + b"\n"
                                 for w, row in zip(words, block, strict=True)))
            else:
                text = block.astype(str)  # shortest repr that reads back as the same float32
                f.write("".join(w + " " + " ".join(r) + "\n"
                                for w, r in zip(words, text.tolist(), strict=True))
                        .encode("utf-8"))
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
