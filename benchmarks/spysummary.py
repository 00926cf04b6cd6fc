"""Where the time goes, from py-spy's collapsed stacks (``py-spy record --format raw``).

Each line of that file is ``frame;frame;...;frame COUNT``, outermost first, a frame being
``function (file:line)``. ``top_frames`` ranks frames by their self share (the innermost
frame: where the CPU was) and, for metaprep's own frames, by their total share (on the
stack: what they cost with what they call), merged into one list of ``(frame, total, self)``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

__all__ = ["top_frames"]

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
