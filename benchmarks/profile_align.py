"""Where the time of `metaprep align` goes: one run in this process, wall seconds per stage.

    python benchmarks/profile_align.py FILE [FILE ...] [--vocab union|intersection|WORDS]

Stages are timed by wrapping the library's functions (nothing in the package is changed):
imports, reading (time spent inside the readers' iterators: parse, and the words pass when the
vocabulary needs one), matching rows, HDF5 writes, waiting for the background sha256, OOV and
normalisation passes, closing the store, the summary the command prints. Whatever is left is
the glue between them. Compare the total with bench_readers.py --only align's command time:
the difference is the interpreter and click starting up.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
SPENT: dict[str, float] = defaultdict(float)


def timed(owner: Any, attr: str, stage: str) -> None:
    fn = getattr(owner, attr)

    def wrapper(*args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            SPENT[stage] += time.perf_counter() - t

    setattr(owner, attr, wrapper)


def timed_iter(owner: Any, attr: str, stage: str) -> None:
    """Time spent inside a generator method's ``next()`` calls."""
    fn: Callable[..., Iterator[Any]] = getattr(owner, attr)

    def wrapper(*args: Any, **kw: Any) -> Iterator[Any]:
        it = fn(*args, **kw)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                SPENT[stage] += time.perf_counter() - t
                return
            SPENT[stage] += time.perf_counter() - t
            yield item

    setattr(owner, attr, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--vocab", default="union")
    args = ap.parse_args()
    import polars  # noqa: F401 - the readers import it on first use; counted as an import here

    from metaprep.prep import align as align_mod
    from metaprep.prep import inspect as inspect_mod
    from metaprep.prep.readers.text import TextSource
    from metaprep.prep.sourcehash import SourceHashes
    from metaprep.prep.store import StoreWriter
    from metaprep.prep.vocab import CaseMatcher

    SPENT["imports"] = time.perf_counter() - T0
    timed_iter(TextSource, "iter_chunks", "read vectors (parse)")
    timed_iter(TextSource, "iter_words", "read words (words pass)")
    timed(CaseMatcher, "match", "match rows")
    timed(StoreWriter, "write_block", "HDF5 writes")
    timed(StoreWriter, "close", "close store")
    timed(StoreWriter, "grow", "grow datasets")
    timed(StoreWriter, "set_vocab", "write vocabulary")
    timed(StoreWriter, "set_present", "write present masks")
    timed(CaseMatcher, "matched", "present masks")
    timed(align_mod, "_default_opener", "open sources (sniff)")
    timed(SourceHashes, "digest", "wait for sha256")
    timed(align_mod, "_normalize", "normalise / OOV stats")
    timed(align_mod, "_fill_oov", "OOV fill")
    out = Path("benchmarks/data/profile-align.h5")
    out.parent.mkdir(parents=True, exist_ok=True)
    specs = [align_mod.SourceSpec(f"s{i}", p) for i, p in enumerate(args.files)]
    t = time.perf_counter()
    align_mod.align(specs, out, align_mod.AlignOptions(vocab=(args.vocab,), progress=False))
    SPENT["align() total"] = time.perf_counter() - t
    t = time.perf_counter()
    inspect_mod.format_summary(inspect_mod.inspect_store(out))
    SPENT["summary"] = time.perf_counter() - t
    out.unlink()
    inner = sum(v for k, v in SPENT.items() if k not in ("imports", "align() total", "summary"))
    SPENT["glue (align() total minus its stages)"] = SPENT["align() total"] - inner
    for stage, seconds in SPENT.items():
        print(f"  {stage:<40} {seconds:6.2f} s")
    print(f"  {'total (after interpreter start)':<40} {time.perf_counter() - T0:6.2f} s")


if __name__ == "__main__":
    main()
