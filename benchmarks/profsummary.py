"""Where the time and the memory go: summaries of py-spy and memray files for bench_scale.py.

``top_frames``: py-spy's collapsed stacks (``py-spy record --format raw``). Each line of that
file is ``frame;frame;...;frame COUNT``, outermost first, a frame being ``function (file:line)``.
Frames are ranked by their self share (the innermost frame: where the CPU was) and, for
metaprep's own frames, by their total share (on the stack: what they cost with what they
call), merged into one list of ``(frame, total, self)``.

``peak_allocations``: a memray capture (``memray run --aggregate``): the memory live at the
peak, grouped by the innermost metaprep frame of each allocation's stack (else the innermost
frame), with an example of the full stack. Without ``--trace-python-allocators`` small Python
objects are seen as the 256 KiB pymalloc arenas they live in, charged to the stack that
needed a new arena: right in aggregate, not object by object. memray counts mappings as
allocations too: a file mapped whole (mmap.mmap of an embedding file: page cache, not
anonymous memory) is listed apart, told by its size (one mapping of 16 MiB or more; pymalloc's
arenas are 1 MiB). Allocations with no Python frame come from native threads (polars' readers,
onnxruntime's and torch's pools).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

__all__ = ["peak_allocations", "top_frames"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def _short(frame: str) -> str:
    """``func (pkg/module.py:line)`` with site-packages and the repository's path cut."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for cut in ("site-packages/", "/metaprep/", "/lib/python3"):
        i = path.find(cut)
        if i >= 0:
            path = ("metaprep/" if cut == "/metaprep/" else "") + path[i + len(cut):]
            break
    return f"{m['func']} ({path}:{m['line']})"


def top_frames(path: Path, n: int = 12) -> list[tuple[str, float, float]]:
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        frames = [_short(f) for f in stack.split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += k
        for f in set(frames):
            total[f] += k
        own[frames[-1]] += k
    if not samples:
        return []
    chosen = [f for f, _ in own.most_common(n)]
    ours = [f for f, c in total.most_common() if f.split(" (", 1)[-1].startswith("metaprep/")
            and c < 0.97 * samples]
    for f in ours[:n]:
        if f not in chosen:
            chosen.append(f)
    chosen.sort(key=lambda f: (-total[f], -own[f]))
    return [(f, total[f] / samples, own[f] / samples) for f in chosen]


def peak_allocations(path: Path, n: int = 12) -> dict[str, object]:
    """{"peak_bytes": ..., "sites": [(site, bytes, allocations, stack), ...]} at the peak."""
    import memray

    reader = memray.FileReader(str(path))
    sites: dict[str, list[object]] = {}
    mapped = 0
    for rec in reader.get_high_watermark_allocation_records(merge_threads=True):
        stack = rec.stack_trace()  # innermost first: (function, file, line)
        frames = [f"{fn} ({_short_path(file)}:{line})" for fn, file, line in stack]
        ours = [f for f in frames if "(metaprep/" in f]
        site = ours[0] if ours else (frames[0] if frames else "<native thread, no Python frame>")
        whole_file = rec.size >= (16 << 20) * max(1, rec.n_allocations)
        if rec.allocator == memray.AllocatorType.MMAP and whole_file:
            mapped += rec.size
            site = f"file mapping: {site}"
        entry = sites.setdefault(site, [0, 0, " <- ".join(frames[:6])])
        entry[0] += rec.size  # type: ignore[operator]
        entry[1] += rec.n_allocations  # type: ignore[operator]
    top = sorted(sites.items(), key=lambda kv: -kv[1][0])[:n]  # type: ignore[operator]
    return {"peak_bytes": reader.metadata.peak_memory, "mapped_bytes": mapped,
            "sites": [(site, v[0], v[1], v[2]) for site, v in top]}


def _short_path(path: str) -> str:
    return _short(f"f ({path}:0)").split(" (", 1)[1].rsplit(":", 1)[0]
