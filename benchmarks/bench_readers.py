"""Reader throughput: metaprep's readers against gensim and bare polars, one run.

    python benchmarks/bench_readers.py                 # 200k x 300 text, 1M x 300 binary
    python benchmarks/bench_readers.py --quick         # 50k x 300 text, 200k x 300 binary
    python benchmarks/bench_readers.py --only align    # the whole `metaprep align` command only

Makes its own synthetic files in ``benchmarks/data/readers/`` (git-ignored; reused when present):

* ``glove-<rows>x<dim>.txt``: GloVe text (no header, 6 decimals), words ``w<i>`` plus every few
  hundred rows a token that trips naive readers (``NaN``, ``null``, ``"x,``, ``#x``, ``1.5``,
  ``-``, a word with a non-breaking space) but that gensim and a plain CSV read still accept;
* ``glove-<rows>x<dim>-spaces.txt``: the same with one row in 2,000 whose word contains ASCII
  spaces (like GloVe 840B's ``. . .``): only the exact fallback path reads those;
* ``w2v-<rows>x<dim>.bin``: word2vec binary as gensim writes it.

The text reader has two paths (prep/readers/text.py): a plain file is streamed by polars itself;
gzip and ``limit`` go in line-aligned pieces, each parsed by polars from bytes. "metaprep piece
path" times the second on the same file (a ``limit`` above its row count). pyarrow and pandas
were timed here as alternative engines until they were removed (benchmarks/results/readers.md).

Every contender reads the same file from a warm page cache; each time is the best of
``--repeat`` rounds, each round running every contender in turn (so load from other processes
on a shared machine falls on all of them alike). gensim's text load runs once: at ~10 MB/s it is
the slow side by far. Figures are MB/s of file
bytes. The ratios are the ones the project quotes: ours / gensim and ours / bare polars for text,
gensim / ours for binary (full read, and with a target vocabulary of ``--wanted`` words).

The text run also times the whole ``metaprep align glove=FILE -o OUT --quiet`` command in a
subprocess of this tree (startup, imports, hashing, the HDF5 write and the closing summary
included), beside the same command on a one-row file (the fixed cost: interpreter, imports,
store), the parse alone and gensim's load; those are printed as medians of ``--repeat`` rounds
(``--only align`` runs just them).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "readers"
ODD_TOKENS = ["NaN", "null", '"x,', "#x", "1.5", "-", "a\u00a0b", "NA", "''", "nan"]


# --- synthetic files -----------------------------------------------------------------------------
def _words(n: int, *, spaces_every: int = 0) -> list[str]:
    words = [f"w{i}" for i in range(n)]
    for k, i in enumerate(range(137, n, 397)):
        words[i] = f"{ODD_TOKENS[k % len(ODD_TOKENS)]}{i}"
    if spaces_every:
        for i in range(spaces_every // 2, n, spaces_every):
            words[i] = f". . {i}."
    return words


def make_text(path: Path, rows: int, dim: int, *, spaces_every: int = 0) -> Path:
    if path.exists():
        return path
    import polars as pl

    rng = np.random.default_rng(0)
    tmp = path.with_name(path.name + ".tmp")
    words = _words(rows, spaces_every=spaces_every)
    with open(tmp, "wb") as f:
        for start in range(0, rows, 50_000):
            block = rng.standard_normal((min(50_000, rows - start), dim)).astype(np.float32)
            frame = pl.DataFrame({"w": words[start : start + len(block)]}).hstack(
                pl.DataFrame(block, schema=[f"v{j}" for j in range(dim)])
            )
            frame.write_csv(f, separator=" ", include_header=False, float_precision=6,
                            quote_style="never")
    os.replace(tmp, path)
    return path


def make_binary(path: Path, rows: int, dim: int) -> Path:
    if path.exists():
        return path
    rng = np.random.default_rng(1)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(f"{rows} {dim}\n".encode())
        for start in range(0, rows, 50_000):
            block = rng.standard_normal((min(50_000, rows - start), dim)).astype("<f4")
            f.write(b"".join(f"w{start + i} ".encode() + v.tobytes() for i, v in enumerate(block)))
    os.replace(tmp, path)
    return path


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


# --- timing --------------------------------------------------------------------------------------
def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def rounds(
    contenders: list[tuple[str, Callable[[], object]]], repeat: int,
    pick: Callable[[list[float]], float] = min,
) -> dict[str, tuple[float, object]]:
    """Best time (or ``pick`` of the times) of each contender over ``repeat`` rounds, every
    round running all of them in turn, so a burst of load on a shared machine hits every
    contender alike."""
    times: dict[str, list[float]] = {}
    outs: dict[str, object] = {}
    for r in range(repeat):
        for name, fn in contenders:
            gc.collect()
            t0 = time.perf_counter()
            outs[name] = fn()
            seconds = time.perf_counter() - t0
            times.setdefault(name, []).append(seconds)
            print(f"  .. round {r + 1}: {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return {name: (pick(ts), outs[name]) for name, ts in times.items()}


def report(rows: list[tuple[str, float, float]], ref: dict[str, float]) -> None:
    width = max(len(name) for name, _, _ in rows)
    for name, seconds, mb in rows:
        print(f"  {name:<{width}}  {seconds:8.2f} s  {mb / seconds:8.1f} MB/s", flush=True)
    for label, value in ref.items():
        print(f"  {label}: {value:.2f}x", flush=True)


# --- the contenders ------------------------------------------------------------------------------
def ours(path: Path, *, wanted: set[str] | None = None, fmt: str | None = None,
         limit: int | None = None) -> int:
    from metaprep.prep.readers import ReadOptions, open_source

    src = open_source(path, fmt=fmt, options=ReadOptions(progress=False, limit=limit))
    n = 0
    for chunk in src.iter_chunks(wanted):
        n += len(chunk.words)
    return n


def ours_words(path: Path) -> int:
    from metaprep.prep.readers import ReadOptions, open_source

    return sum(len(w) for w in open_source(path, options=ReadOptions(progress=False)).iter_words())


def bare_polars(path: Path) -> int:
    import polars as pl

    return pl.read_csv(path, separator=" ", has_header=False, quote_char=None).height


def align_command(path: Path, tree: Path = ROOT) -> int:
    """The whole `metaprep align` command of ``tree`` (default: this one), in its own process as
    a user runs it; the store's row count."""
    import h5py

    out = DATA / "align-bench.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(tree), os.environ.get("PYTHONPATH")) if p)}
    subprocess.run([sys.executable, "-m", "metaprep", "align", f"glove={path}", "-o", str(out),
                    "--quiet"], check=True, env=env, stdout=subprocess.DEVNULL,
                   cwd=tree)  # `python -m` puts the working directory first on the path
    with h5py.File(out, "r") as f:
        n = int(f["vocab"].shape[0])
    out.unlink()
    return n


def gensim_load(path: Path, **kwargs: object) -> int:
    from gensim.models import KeyedVectors

    return len(KeyedVectors.load_word2vec_format(str(path), **kwargs))


# --- the runs ------------------------------------------------------------------------------------
def check_equal(path: Path, n: int) -> None:
    """Our first rows equal polars' reading of them (a benchmark of wrong numbers is worthless)."""
    import polars as pl

    from metaprep.prep.readers import ReadOptions
    from metaprep.prep.readers.text import TextSource

    chunk = next(TextSource(path, fmt="glove", options=ReadOptions(progress=False)).iter_chunks())
    ref = pl.read_csv(path, separator=" ", has_header=False, quote_char=None, n_rows=n)
    words = ref.to_series(0).to_list()
    vectors = ref.drop(ref.columns[0]).to_numpy().astype(np.float32)
    if chunk.words[:n] != words or not np.array_equal(chunk.vectors[:n], vectors):
        sys.exit("ours and polars disagree on the first rows: not benchmarking")


def bench_text(rows: int, dim: int, repeat: int, n_wanted: int) -> None:
    path = make_text(DATA / f"glove-{rows}x{dim}.txt", rows, dim)
    messy = make_text(DATA / f"glove-{rows}x{dim}-spaces.txt", rows, dim, spaces_every=2000)
    mb = path.stat().st_size / 1e6
    print(f"\nGloVe text {rows:,} x {dim}: {mb:.0f} MB ({path})", flush=True)
    warm(path)
    check_equal(path, 1000)
    wanted = set(random.Random(0).sample(_words(rows), min(n_wanted, rows)))
    results: list[tuple[str, float, float]] = []
    timed: dict[str, float] = {}
    contenders: list[tuple[str, Callable[[], object]]] = [
        ("bare polars read_csv", lambda: bare_polars(path)),
        ("metaprep full read", lambda: ours(path, fmt="glove")),
        ("metaprep piece path (limit)", lambda: ours(path, fmt="glove", limit=rows)),
        ("metaprep iter_words", lambda: ours_words(path)),
        (f"metaprep wanted={len(wanted):,}", lambda: ours(path, fmt="glove", wanted=wanted)),
    ]
    spaced = f"metaprep, {rows // 2000} spaced-word rows"
    contenders.append((spaced, lambda: ours(messy, fmt="glove")))
    warm(messy)
    for name, (seconds, n) in rounds(contenders, repeat).items():
        size = messy.stat().st_size / 1e6 if name == spaced else mb
        results.append((name, seconds, size))
        timed[name] = seconds
        expected = len(wanted) if name.startswith("metaprep wanted") else rows
        if n != expected:
            sys.exit(f"{name} gave {n} rows, expected {expected}")
    seconds, _ = best_of(lambda: gensim_load(path, no_header=True), 1)
    results.append(("gensim load_word2vec_format(no_header)", seconds, mb))
    timed["gensim"] = seconds
    ours_t = timed["metaprep full read"]
    report(results, {
        "metaprep / gensim": timed["gensim"] / ours_t,
        "metaprep / bare polars": timed["bare polars read_csv"] / ours_t,
        "streamed / piece path": timed["metaprep piece path (limit)"] / ours_t,
        "metaprep wanted / full": ours_t / timed[f"metaprep wanted={len(wanted):,}"],
    })


def bench_align(rows: int, dim: int, repeat: int, other: Path | None = None) -> None:
    """The whole command beside the parse alone and gensim's load, medians of ``repeat``."""
    path = make_text(DATA / f"glove-{rows}x{dim}.txt", rows, dim)
    tiny = DATA / "glove-1-row.txt"
    if not tiny.exists():
        tiny.write_text("w0 " + " ".join(["0.5"] * dim) + "\n")
    mb = path.stat().st_size / 1e6
    print(f"\nmetaprep align, GloVe text {rows:,} x {dim}: {mb:.0f} MB, medians of {repeat}",
          flush=True)
    warm(path)
    import gensim.models  # noqa: F401 - imported before timing: gensim's figure is the load alone

    contenders: list[tuple[str, Callable[[], object]]] = [
        ("metaprep align command (subprocess)", lambda: align_command(path)),
        ("metaprep align command, 1-row file", lambda: align_command(tiny)),
        ("metaprep parse only", lambda: ours(path, fmt="glove")),
        ("gensim load_word2vec_format(no_header)", lambda: gensim_load(path, no_header=True)),
    ]
    if other is not None:  # e.g. an earlier commit: git archive COMMIT metaprep | tar -x -C DIR
        contenders.insert(1, (f"metaprep align command of {other}",
                              lambda: align_command(path, other)))
    med = rounds(contenders, repeat, pick=statistics.median)
    for name, (_, n) in med.items():
        if n != (1 if "1-row" in name else rows):
            sys.exit(f"{name} gave {n} rows")
    report([(name, seconds, mb) for name, (seconds, _) in med.items()], {
        "gensim / align command": med["gensim load_word2vec_format(no_header)"][0]
        / med["metaprep align command (subprocess)"][0],
        "gensim / parse only": med["gensim load_word2vec_format(no_header)"][0]
        / med["metaprep parse only"][0],
        "align command / parse only": med["metaprep align command (subprocess)"][0]
        / med["metaprep parse only"][0],
    })


def bench_binary(rows: int, dim: int, repeat: int, n_wanted: int) -> None:
    path = make_binary(DATA / f"w2v-{rows}x{dim}.bin", rows, dim)
    mb = path.stat().st_size / 1e6
    print(f"\nword2vec binary {rows:,} x {dim}: {mb:.0f} MB ({path})", flush=True)
    warm(path)
    wanted = {f"w{i}" for i in random.Random(0).sample(range(rows), min(n_wanted, rows))}
    named = f"metaprep wanted={len(wanted):,}"
    best = rounds([
        ("gensim load_word2vec_format(binary)", lambda: gensim_load(path, binary=True)),
        ("metaprep full read", lambda: ours(path)),
        (named, lambda: ours(path, wanted=wanted)),
        ("metaprep iter_words", lambda: ours_words(path)),
    ], repeat)
    results = [(name, seconds, mb) for name, (seconds, _) in best.items()]
    if best["metaprep full read"][1] != rows or best[named][1] != len(wanted):
        sys.exit(f"binary: wrong row counts {[(k, v[1]) for k, v in best.items()]}")
    seconds_g = best["gensim load_word2vec_format(binary)"][0]
    seconds_o, seconds_w = best["metaprep full read"][0], best[named][0]
    report(results, {
        "gensim / metaprep (full)": seconds_g / seconds_o,
        f"gensim full / metaprep wanted={len(wanted):,}": seconds_g / seconds_w,
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="text rows (default 200k)")
    ap.add_argument("--bin-rows", type=int, default=1_000_000, help="binary rows (default 1M)")
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--wanted", type=int, default=50_000, help="target vocabulary size")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the fast contenders")
    ap.add_argument("--quick", action="store_true", help="50k text, 200k binary rows, 10k wanted")
    ap.add_argument("--only", choices=["text", "binary", "align"], help="run one part")
    ap.add_argument("--compare-tree", type=Path, metavar="DIR",
                    help="also time the align command of the metaprep package under DIR")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.bin_rows, args.wanted = 50_000, 200_000, 10_000
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} "
          f"load average={os.getloadavg()[0]:.1f}", flush=True)
    import metaprep

    print(f"metaprep in-process from {Path(metaprep.__file__).parent}; commands from {ROOT}")
    if args.only in (None, "text"):
        bench_text(args.rows, args.dim, args.repeat, args.wanted)
    if args.only in (None, "text", "align"):
        bench_align(args.rows, args.dim, args.repeat, args.compare_tree)
    if args.only in (None, "binary"):
        bench_binary(args.bin_rows, args.dim, args.repeat, args.wanted)


if __name__ == "__main__":
    main()
