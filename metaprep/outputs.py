"""What a stage may write, and how: an output is never one of the stage's inputs, never holds one
and never sits inside one (through symlinks and hard links); a special file is refused, never
renamed over; one process at a time writes an output (a lock beside it); and the temporary
files a killed run left beside an output are cleared by the next run of the same output.

Standard library only. The stages (``metaprep.stages``) call ``claim`` around their work, so the
CLI and the pipeline both get it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any

from metaprep.distributed import world
from metaprep.errors import ConfigError

__all__ = [
    "check_paths",
    "claim",
    "claim_outputs",
    "VOCAB_KEYWORDS",
    "clear_stale",
    "hold",
    "input_paths",
    "path_fields",
]


def _flatten(value: object) -> list[Path]:
    if value is None or value == "-":
        return []
    if isinstance(value, Mapping):
        return [p for v in value.values() for p in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _flatten(v)]
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return []


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # a hard link or a symlink to the same file
    except OSError:
        return False


# --vocab values that are not files (align's vocab field mixes them with word-list files)
VOCAB_KEYWORDS = ("union", "intersection")


def input_paths(options: Any) -> list[Path]:
    """Every input file an options object names (its ``{"path": "in"}`` fields), flattened."""
    return [p for v in path_fields(options, "in").values() for p in _flatten(v)
            if str(p) not in VOCAB_KEYWORDS]


def _check_parent(stage: str, out_name: str, out: Path) -> None:
    """The nearest existing folder above ``out`` must be a folder (not a file or device)."""
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{stage}: {out_name} would go inside {parent}, which is not "
                                  "a folder", path=out, hint="give a path in a folder")
            return


def _overlap(stage: str, outputs: Mapping[str, object]) -> None:
    """Two outputs of one command never hold one another (export-onnx -o M --triton M made M
    for its lock, then refused M as existing)."""
    outs = [(name, p, p.resolve()) for name, v in outputs.items() for p in _flatten(v)]
    for k, (a_name, a, ra) in enumerate(outs):
        for b_name, b, rb in outs[k + 1:]:
            if ra == rb or ra.is_relative_to(rb) or rb.is_relative_to(ra):
                raise ConfigError(f"{stage}: the outputs {a_name} ({a}) and {b_name} ({b}) "
                                  "would be written one inside the other; nothing was written",
                                  path=b, hint="give each its own place")


def check_paths(stage: str, outputs: Mapping[str, object], inputs: Mapping[str, object], *,
                devices: bool = False) -> None:
    """Refuse an output that is, holds or sits inside an input or another output, or that is a
    special file (``devices``: a device or pipe is accepted, for outputs written as a stream)."""
    _overlap(stage, outputs)
    ins = [(name, p) for name, v in inputs.items() for p in _flatten(v)
           if str(p) not in VOCAB_KEYWORDS]
    for out_name, value in outputs.items():
        for out in _flatten(value):
            _check_parent(stage, out_name, out)
            real = out.resolve()
            if out.exists() or out.is_symlink():
                mode = os.stat(out).st_mode if out.exists() else 0
                special = not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
                if out.exists() and special and devices:
                    continue  # /dev/null, a FIFO: written to as it is, nothing to clash with
                if out.exists() and special:
                    raise ConfigError(f"{stage}: {out_name} is not a regular file or folder "
                                      "(a device, pipe or socket): metaprep writes only files",
                                      path=out, hint="give a file or folder path")
            for in_name, inp in ins:
                src = inp.resolve()
                clash = (real == src or _same(out, inp) or real.is_relative_to(src)
                         or src.is_relative_to(real))
                if clash:
                    how = ("is" if real == src or _same(out, inp) else
                           "sits inside" if real.is_relative_to(src) else "holds")
                    raise ConfigError(f"{stage}: the output ({out_name}) {how} the input "
                                      f"{in_name} ({inp}); nothing was written", path=out,
                                      hint="write somewhere else")


# `.NAME.<pid>.tmp` (files written then renamed), `.NAME.export-<pid>` (a model directory being
# built), `.NAME.old-<pid>` (a model directory set aside while --force swaps in the new one)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)\.tmp|export-(?P<epid>\d+)|"
                   r"old-(?P<opid>\d+))$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale(output: Path, *, inside: bool = False) -> list[Path]:
    """Remove what killed runs left beside ``output`` (their process is gone); a model directory
    set aside by a killed ``--force`` comes back if nothing replaced it. With ``inside``, also
    the temporary files in the folder ``output`` (a run directory, written file by file).
    Returns what it cleared."""
    parent = output.parent if str(output.parent) else Path(".")
    cleared: list[Path] = []
    try:
        entries = list(parent.iterdir())
        if inside and output.is_dir() and not output.is_symlink():
            entries += list(output.iterdir())
    except OSError:
        return cleared
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or (entry.parent == parent and m.group("name") != output.name):
            continue
        pid = int(m.group("pid") or m.group("epid") or m.group("opid"))
        if _alive(pid):
            continue
        if m.group("opid") and not output.exists() and not output.is_symlink():
            os.replace(entry, output)  # the previous model directory, never lost
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        cleared.append(entry)
    return cleared


_BUSY = ("another metaprep process is writing this output", "wait for it, or write elsewhere")


def _locked_file(lock: Path, output: Path, busy: tuple[str, str] = _BUSY) -> int:
    """An open descriptor of ``lock`` holding its flock, the file still at that path.

    The holder removes the lock file when done, so a process that opened it just before may
    then lock a file no longer at the path while a third process locks a new one there: both
    would hold "the" lock. The locked file is therefore checked to still be at the path, and
    opened again if it is not."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.fstat(fd)
            try:
                now = os.stat(lock)
            except FileNotFoundError:
                now = None
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(busy[0], path=output, hint=busy[1]) from exc
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)  # the previous holder removed it: lock the file at the path now


@contextmanager
def hold(output: Path, *, busy: tuple[str, str] = _BUSY) -> Iterator[None]:
    """One process at a time for ``output``: the lock beside it (``.NAME.lock``), held for the
    block; another process gets a ConfigError saying ``busy`` (message, hint) at once."""
    lock = output.with_name(f".{output.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _locked_file(lock, output, busy)
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)  # still held: nobody else has it locked at this path
        finally:
            os.close(fd)


@contextmanager
def claim(stage: str, outputs: Mapping[str, object], inputs: Mapping[str, object], *,
          folders: bool = False) -> Iterator[None]:
    """Check the paths, then hold every output's lock and clear its stale temporary files
    (``folders``: also those inside output folders written file by file, such as a run)."""
    check_paths(stage, outputs, inputs)
    paths: Iterable[Path] = [p for v in outputs.values() for p in _flatten(v)]
    with ExitStack() as stack:
        for path in paths:
            stack.enter_context(hold(path))
            clear_stale(path, inside=folders)
        yield


# --- what each stage may replace ----------------------------------------------------------
def path_fields(options: Any, kind: str) -> dict[str, Any]:
    """Field name -> value of the ``kind`` ("in" or "out") path fields of an options object."""
    return {f.name: getattr(options, f.name) for f in fields(options)
            if f.metadata.get("path") == kind}


def claim_outputs(stage: str, options: Any, outputs: dict[str, Any], *,
                  folders: bool = False) -> Any:
    """``claim`` for a stage: its inputs are the options' ``{"path": "in"}`` fields, and
    ``outputs`` the paths it really writes (split's three files, not the folder they go in)."""
    if not world().main:  # under torchrun only rank 0 writes
        check_paths(stage, outputs, path_fields(options, "in"))
        return nullcontext()
    return claim(stage, outputs, path_fields(options, "in"), folders=folders)
