"""Run a command as a child process and measure it from outside (``bench_scale.py``'s stages).

What is measured, and how:

* wall time: ``time.monotonic()`` around the child;
* CPU time (user + system) and the kernel's peak RSS of the child (``ru_maxrss``) from
  ``os.wait4``: exact, whatever the polling misses;
* peak anonymous memory (``RssAnon``: heap, numpy and torch buffers, Python objects) and peak
  file-backed RSS (``RssFile``: mmapped files and shared libraries in memory), read from
  ``/proc/PID/status`` of the child and all its descendants, summed, every ``poll`` seconds.
  A peak shorter than the poll interval can be missed; ``VmHWM`` of the child (the kernel's
  own RSS high-water mark, anonymous + file + shmem) is read too and bounds it;
* a stop: past ``max_anon`` bytes of anonymous memory or ``max_seconds`` of wall time the
  whole process group is killed (SIGKILL) and the result says why.

Linux only (``/proc``). The child runs in its own session, so the kill reaches only what it
started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Measured", "run_measured", "tree_memory"]


@dataclass
class Measured:
    cmd: list[str]
    exit_code: int
    wall_s: float
    cpu_s: float  # user + system, from wait4 (the child and its waited-for children)
    peak_anon: int  # bytes, polled sum over the process tree
    peak_file: int  # bytes of file-backed RSS, polled sum
    peak_rss: int  # bytes, polled max of (anon + file + shmem) summed over the tree
    hwm: int  # bytes: the child's VmHWM at its last poll (kernel-tracked peak RSS)
    maxrss: int  # bytes: ru_maxrss from wait4 (largest of the child and its descendants)
    samples: int
    poll_s: float
    stopped: str = ""  # why the watcher killed it, if it did
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (s, anon, file)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.stopped


def _status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status we use, in bytes (empty if the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                key, _, rest = line.partition(b":")
                if key in (b"VmRSS", b"RssAnon", b"RssFile", b"RssShmem", b"VmHWM"):
                    out[key.decode()] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return {}
    return out


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (through /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def tree_memory(pid: int) -> tuple[int, int, int, int]:
    """(anon, file, rss, hwm of ``pid`` itself) in bytes, summed over ``pid``'s tree."""
    anon = file = rss = 0
    hwm = 0
    for p in _descendants(pid):
        st = _status(p)
        anon += st.get("RssAnon", 0)
        file += st.get("RssFile", 0)
        rss += st.get("VmRSS", 0)
        if p == pid:
            hwm = st.get("VmHWM", 0)
    return anon, file, rss, hwm


def run_measured(
    cmd: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
    poll: float = 0.1, max_anon: float = 16e9, max_seconds: float = 3600,
    report_every: float = 30.0, report: object = print, timeline_every: float = 1.0,
    profile: Path | None = None, profile_rate: int = 20,
) -> Measured:
    """Run ``cmd`` with stdout and stderr to ``log``; poll its memory until it ends. With
    ``profile``, py-spy attaches to the child (and its subprocesses) and writes collapsed
    stacks there: it samples without pausing the child and is not part of the measured tree."""
    say = report if callable(report) else (lambda _m: None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None,
                                start_new_session=True)
        spy = _start_spy(proc.pid, profile, profile_rate) if profile is not None else None
        peak_anon = peak_file = peak_rss = hwm = samples = 0
        stopped = ""
        timeline: list[tuple[float, int, int]] = []
        last_report = last_line = t0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            anon, file, rss, h = tree_memory(proc.pid)
            samples += 1
            peak_anon, peak_file = max(peak_anon, anon), max(peak_file, file)
            peak_rss, hwm = max(peak_rss, rss), max(hwm, h)
            now = time.monotonic()
            if now - last_line >= timeline_every:
                timeline.append((round(now - t0, 1), anon, file))
                last_line = now
            if not stopped and (anon > max_anon or now - t0 > max_seconds):
                stopped = (f"anonymous memory {anon / 1e9:.1f} GB > {max_anon / 1e9:.0f} GB"
                           if anon > max_anon else f"wall time > {max_seconds:.0f} s")
                say(f"  stopping it: {stopped}")
                os.killpg(proc.pid, signal.SIGKILL)
            if now - last_report >= report_every:
                last_report = now
                say(f"  ... {now - t0:.0f} s, anon {anon / 1e9:.2f} GB (peak "
                    f"{peak_anon / 1e9:.2f}), file RSS {file / 1e9:.2f} GB; "
                    f"{_last_line(log)}")
            time.sleep(poll)
        wall = time.monotonic() - t0
    if spy is not None:
        try:
            spy.wait(timeout=60)  # it writes its file once the target is gone
        except subprocess.TimeoutExpired:
            spy.kill()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(list(cmd), proc.returncode, wall, usage.ru_utime + usage.ru_stime,
                    peak_anon, peak_file, max(peak_rss, 0), hwm, usage.ru_maxrss * 1024,
                    samples, poll, stopped, timeline)


def _start_spy(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy")
    if spy is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate",
                             str(rate), "--subprocesses", "--nonblocking", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _last_line(log: Path) -> str:
    """The tail of the child's output (progress bars write \\r-separated updates)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 400))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in tail.replace("\r", "\n").split("\n") if p.strip()]
    return parts[-1][:150] if parts else ""
