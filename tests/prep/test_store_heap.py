"""Damaged string storage in a store (HDF5's global heap and the vocabulary's entries into it)
is one StoreError, never a hang inside HDF5 nor a gigabyte allocation. Each damage is made in
the bytes of a store `metaprep align` wrote; the reads run in a subprocess with a timeout, so
a regression fails the test instead of hanging the suite."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import gensim
import h5py
import pytest

from metaprep.errors import StoreError
from metaprep.prep.store import Store
from metaprep.prep.store.heapcheck import damaged_heap

DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
ALIGN = ["align", f"glove={DATA / 'test_glove.txt'}", f"lee={DATA / 'lee_fasttext.vec'}", "-q"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("heap") / "s.h5"
    subprocess.run([sys.executable, "-m", "metaprep", *ALIGN, "-o", str(out)], check=True)
    return out


def _damaged(store: Path, tmp_path: Path, edit: str) -> Path:
    data = bytearray(store.read_bytes())
    if edit == "heap":  # the first object of the first collection: index 0, size 0
        at = data.find(b"GCOL\x01")
        data[at + 16 : at + 32] = bytes(16)
    else:  # the length of the vocabulary's second entry: 4 GB
        with h5py.File(store, "r") as f:
            offset = f["vocab"].id.get_offset()
        data[offset + 16 : offset + 20] = struct.pack("<I", 0xFFFFFFFF)
    out = tmp_path / f"{edit}.h5"
    out.write_bytes(bytes(data))
    return out


def _read_vocab(path: Path) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from metaprep.prep.store import Store\n"
            "with Store(sys.argv[1]) as s: s.vocab\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("edit", "message"), [
    ("heap", r"the string heap at byte \d+ holds an object of 0 bytes"),
    ("entry", r"/vocab: entry 1 points to no string of its length"),
])
def test_damaged_string_storage_is_a_store_error(store: Path, tmp_path: Path, edit: str,
                                                 message: str) -> None:
    import re

    damaged = _damaged(store, tmp_path, edit)
    proc = _read_vocab(damaged)  # the heap damage used to hang; the entry one to take 4 GB
    assert proc.returncode == 1 and "StoreError" in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    with pytest.raises(StoreError, match=message), Store(damaged) as s:
        _ = s.vocab


def test_commands_on_a_damaged_heap_fail_with_one_line(store: Path, tmp_path: Path) -> None:
    damaged = _damaged(store, tmp_path, "heap")
    before = damaged.read_bytes()
    for args in (["inspect", str(damaged)], [*ALIGN, "-o", str(damaged)]):
        proc = subprocess.run([sys.executable, "-m", "metaprep", *args], capture_output=True,
                              text=True, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and str(damaged) in lines[0], proc.stderr
    assert damaged.read_bytes() == before  # align did not take it for its own store


def test_a_good_store_passes_and_a_pipe_is_refused_without_blocking(store: Path,
                                                                   tmp_path: Path) -> None:
    assert damaged_heap(store) is None
    with Store(store) as s:
        assert len(s.vocab) == s.vocab_size
    fifo = tmp_path / "s.h5"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(StoreError, match="not a regular file"):
        Store(fifo)


_FUZZ = """
import random, sys
from pathlib import Path
from metaprep.errors import StoreError
from metaprep.prep.store import Store
src, work, seed, n = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4])
rng = random.Random(seed)
for i in range(n):
    data = bytearray(src)
    at = rng.randrange(len(data) - 8)
    for k in range(rng.choice([1, 2, 4, 8])):
        data[at + k] = rng.randrange(256)
    work.write_bytes(bytes(data))
    try:
        with Store(work) as s:
            s.vocab, s.read_vectors(s.sources[0])
    except StoreError:
        pass
    except BaseException as exc:
        print(f"byte {at}: {type(exc).__name__}: {exc}")
        raise SystemExit(1)
"""


def test_random_corruptions_of_a_real_store_are_store_errors(store: Path, tmp_path: Path) -> None:
    """Bytes changed anywhere in a store made by `metaprep align`: each opens, or is one
    StoreError; never another exception, a hang (the timeout) or a crash."""
    proc = subprocess.run([sys.executable, "-c", _FUZZ, str(store), str(tmp_path / "f.h5"), "7",
                           "120"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


_WRITE_THEN_DAMAGE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from exportkit import make_store
from metaprep.errors import StoreError
from metaprep.prep.store import Store
path = make_store(Path(sys.argv[1]))
with Store(path) as s:  # just written here: not walked again
    s.vocab
data = bytearray(path.read_bytes())
at = data.find(b"GCOL\\x01")
data[at + 16 : at + 32] = bytes(16)
path.write_bytes(bytes(data))
try:
    with Store(path) as s:
        s.vocab
except StoreError as exc:
    print(exc)
"""


def test_a_store_changed_after_this_process_wrote_it_is_checked_again(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _WRITE_THEN_DAMAGE, str(tmp_path / "s.h5"),
                           str(Path(__file__).parents[1])], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "the string heap at byte" in proc.stdout, proc.stderr
