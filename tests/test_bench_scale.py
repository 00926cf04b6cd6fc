"""benchmarks/bench_scale.py and its helpers: the synthetic inputs carry the real files' quirks,
the watcher measures and stops a child, and the whole benchmark runs end to end at a tiny
scale."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_scale  # noqa: E402
import procwatch  # noqa: E402
import scale_inputs  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> scale_inputs.Inputs:
    return scale_inputs.inputs(tmp_path_factory.mktemp("in"), scale=0.001, dim=8,
                               report=lambda _m: None)


def test_inputs_have_the_real_files_quirks(tiny: scale_inputs.Inputs) -> None:
    files = {s.name: s for s in tiny.sources}
    assert [files[n].rows for n in ("glove", "w2v", "paragram", "wiki")] == [2200, 3000, 1700,
                                                                             1000]
    glove = files["glove"].path.read_bytes()
    assert "\u00a0".encode() in glove  # an NBSP inside a word
    lines = glove.splitlines()
    assert len(lines) == 2200 and sum(line.count(b" ") == 9 for line in lines) >= 1  # a space
    para = files["paragram"].path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        para.decode("utf-8")  # latin-1
    assert para.decode("latin-1").count("é") > 0
    wiki = files["wiki"].path.read_bytes().splitlines()
    assert wiki[0] == b"1000 8" and wiki[1].endswith(b" ")
    with gzip.open(files["w2v"].path, "rb") as f:
        head = f.read(4096)
    assert head.startswith(b"3000 8\n") and b"_" in gzip.decompress(
        files["w2v"].path.read_bytes())
    train = tiny.train.read_text(encoding="utf-8").splitlines()
    assert train[0] == "text\tlabel" and len(train) == 1301
    assert {line.rsplit("\t", 1)[1] for line in train[1:]} == {"0", "1"}


def test_inputs_are_cached_and_deterministic(tiny: scale_inputs.Inputs, tmp_path: Path) -> None:
    again = scale_inputs.inputs(tiny.folder.parent, scale=0.001, dim=8, report=pytest.fail)
    assert again.train == tiny.train  # nothing rewritten (report would fail)
    other = scale_inputs.inputs(tmp_path, scale=0.001, dim=8, report=lambda _m: None)
    for a, b in zip(tiny.sources, other.sources, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
    assert tiny.train.read_bytes() == other.train.read_bytes()


def test_watcher_measures_anonymous_memory(tmp_path: Path) -> None:
    code = "import time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); " \
           "time.sleep(0.6)"
    m = procwatch.run_measured([sys.executable, "-c", code], log=tmp_path / "log", poll=0.05,
                               report=None)
    assert m.ok and m.samples >= 3
    assert 0.28e9 < m.peak_anon < 0.6e9
    assert m.maxrss >= 0.3e9 and m.hwm >= 0.3e9


def test_watcher_stops_a_child_past_the_limit(tmp_path: Path) -> None:
    code = "import time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); " \
           "time.sleep(30)"
    m = procwatch.run_measured([sys.executable, "-c", code], log=tmp_path / "log", poll=0.05,
                               max_anon=0.1e9, report=None)
    assert not m.ok and "anonymous memory" in m.stopped and m.wall_s < 20


@pytest.mark.slow
def test_bench_scale_end_to_end(tmp_path: Path) -> None:
    rc = bench_scale.main(["--scale", "0.001", "--data", str(tmp_path / "data"),
                           "--results", str(tmp_path / "res"), "--epochs", "1",
                           "--stages", "align-task,align-union,train,export,serve",
                           "--serve-texts", "2000"])
    assert rc == 0
    meta = json.loads((tmp_path / "res" / "scale.json").read_text())
    stages = {r["stage"]: r for r in meta["stages"]}
    assert list(stages) == ["align-task", "align-union", "train", "export", "serve"]
    for r in stages.values():
        assert r["exit"] == 0 and r["peak_anon_gb"] > 0 and r["wall_s"] > 0
    assert stages["align-task"]["disk_gb"] > 0 and stages["export"]["disk_gb"] > 0
    assert stages["serve"]["serve"]["texts"] == 2000
    md = (tmp_path / "res" / "scale.md").read_text()
    assert "| align-task |" in md and "commit" in md
