"""Peak memory and time of `metaprep align` on three large synthetic sources (union vocabulary),
next to the straightforward alternative (gensim loads each file whole, numpy builds the aligned
matrices in memory, h5py writes them), measured in the same run on the same files.

    python benchmarks/bench_align_memory.py                        # 3 x 1,000,000 x 300
    python benchmarks/bench_align_memory.py --rows 100000 --format word2vec-binary

Sources overlap like real ones: s1 shares 70% of s0's words, s2 40%; the union is 1.6 x rows.
Each run is a child process; its peak RSS comes from os.wait4 (ru_maxrss of that child only).
Files go to benchmarks/data/align_memory/ (git-ignored) and are reused when present.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "align_memory"

# The alternative: what one writes without a streaming aligner.
ALTERNATIVE = r"""
import sys, h5py, numpy as np
from gensim.models import KeyedVectors
out, binary, paths = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
kvs = [KeyedVectors.load_word2vec_format(p, binary=binary, no_header=not binary) for p in paths]
vocab = {}
for kv in kvs:
    for w in kv.index_to_key:
        vocab.setdefault(w, len(vocab))
with h5py.File(out, "w") as f:
    f["vocab"] = np.array(list(vocab), dtype=object).astype(h5py.string_dtype())
    for i, kv in enumerate(kvs):
        m = np.zeros((len(vocab), kv.vector_size), dtype=np.float32)
        rows = np.fromiter((vocab[w] for w in kv.index_to_key), dtype=np.int64)
        m[rows] = kv.vectors
        f[f"sources/s{i}/vectors"] = m
"""


def _word_ids(k: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Source k's words: a window of the id space, locally shuffled (frequency orders differ)."""
    start = {0: 0, 1: int(0.3 * rows), 2: int(0.6 * rows)}[k]
    ids = np.arange(start, start + rows)
    if k:
        window = 1000 * k
        for a in range(0, rows, window):
            rng.shuffle(ids[a : a + window])
    return ids


def _write_source(path: Path, k: int, rows: int, dim: int, fmt: str) -> None:
    rng = np.random.default_rng(k)
    ids = _word_ids(k, rows, rng)
    tmp = path.with_suffix(".part")
    # Text rows from a table of fixed-width tokens ("0.1234" / "-0.123"): fast to write, and
    # every token parses as a float.
    vals = rng.uniform(-0.999, 0.999, size=4096).round(3).astype(np.float32)
    table = np.array([f"{v:.4f}"[:6].encode() + b" " for v in vals], dtype="S7").view(np.uint8)
    table = table.reshape(-1, 7)
    with open(tmp, "wb") as f:
        if fmt == "word2vec-binary":
            f.write(f"{rows} {dim}\n".encode())
        block = 20000
        for a in range(0, rows, block):
            n = min(block, rows - a)
            words = [f"w{i}".encode() for i in ids[a : a + n]]
            if fmt == "word2vec-binary":
                vecs = rng.normal(size=(n, dim)).astype("<f4")
                f.write(b"".join(w + b" " + v.tobytes() + b"\n"
                                 for w, v in zip(words, vecs, strict=True)))
            else:
                idx = rng.integers(0, len(table), size=(n, dim))
                text = table[idx].reshape(n, dim * 7)
                text[:, -1] = ord("\n")
                f.write(b"".join(w + b" " + t.tobytes() for w, t in zip(words, text, strict=True)))
    tmp.replace(path)


def _run(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit status) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, proc.returncode


def _check_same(ours: Path, alt: Path, n: int = 2000) -> bool:
    import h5py

    with h5py.File(ours, "r") as a, h5py.File(alt, "r") as b:
        va, vb = a["vocab"].asstr()[...], b["vocab"].asstr()[...]
        if len(va) != len(vb) or set(va[:n]) != set(vb[:n]):
            return False
        index_b = {w: i for i, w in enumerate(vb)}
        rows = np.sort(np.random.default_rng(0).choice(len(va), size=min(n, len(va)),
                                                       replace=False))
        rows_b = np.array([index_b[w] for w in va[rows]])
        order = np.argsort(rows_b)
        for s in a["sources"]:
            x = a["sources"][s]["vectors"][rows]
            y = b["sources"][s]["vectors"][np.sort(rows_b)]
            if not np.array_equal(x[order], y):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per source")
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--format", default="glove", choices=["glove", "word2vec-binary"])
    ap.add_argument("--skip-alternative", action="store_true", help="only run metaprep align")
    args = ap.parse_args()

    d = DATA / f"{args.format}-{args.rows}x{args.dim}"
    d.mkdir(parents=True, exist_ok=True)
    ext = "bin" if args.format == "word2vec-binary" else "txt"
    paths = [d / f"s{k}.{ext}" for k in range(3)]
    for k, p in enumerate(paths):
        if not p.exists():
            t0 = time.perf_counter()
            _write_source(p, k, args.rows, args.dim, args.format)
            print(f"wrote {p} ({p.stat().st_size / 2**30:.2f} GiB) in "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    per_source = args.rows * args.dim * 4 / 2**30
    print(f"3 sources of {args.rows:,} x {args.dim} ({args.format}, {per_source:.2f} GiB each "
          f"as float32), union vocabulary of {int(1.6 * args.rows):,} words")

    results = []
    ours = d / "ours.h5"
    cmd = [sys.executable, "-m", "metaprep", "align", *[f"s{k}={p}" for k, p in enumerate(paths)],
           *[x for k in range(3) for x in ("--format", f"s{k}={args.format}")],
           "-q", "-o", str(ours)]
    secs, rss, rc = _run(cmd)
    results.append(("metaprep align (streaming)", secs, rss, rc, ours))
    if not args.skip_alternative:
        alt = d / "alternative.h5"
        secs, rss, rc = _run([sys.executable, "-c", ALTERNATIVE, str(alt),
                              "1" if args.format == "word2vec-binary" else "0", *map(str, paths)])
        results.append(("gensim load + numpy in memory", secs, rss, rc, alt))

    print(f"{'method':32} {'seconds':>8} {'peak RSS MiB':>13} {'store GiB':>10}  status")
    for name, secs, rss, rc, out in results:
        size = out.stat().st_size / 2**30 if out.exists() else float("nan")
        print(f"{name:32} {secs:8.1f} {rss:13.0f} {size:10.2f}  {'ok' if rc == 0 else rc}")
    if len(results) == 2 and all(r[3] == 0 for r in results):
        print("same vectors for 2,000 sampled words:", _check_same(ours, results[1][4]))


if __name__ == "__main__":
    main()
