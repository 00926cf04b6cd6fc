from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from metaprep.cli import cli
from metaprep.errors import StoreError, VocabError
from metaprep.prep.align import AlignOptions, SourceSpec, align
from metaprep.prep.inspect import format_summary, inspect_store
from metaprep.prep.readers.memory import MemorySource

RNG = np.random.default_rng(2)


def _store(tmp_path: Path) -> Path:
    data = {
        "a": (["x", "y", "z", "x"], RNG.normal(size=(4, 3))),
        "b": (["y", "z", "w"] + [f"n{i}" for i in range(40)], RNG.normal(size=(43, 2))),
        "c": (["Z", "q"], RNG.normal(size=(2, 2))),
    }
    specs = []
    for name, oov in (("a", "map:b"), ("b", "mean"), ("c", "zero")):
        (tmp_path / f"{name}.vec").write_text(name)
        specs.append(SourceSpec(name, tmp_path / f"{name}.vec", oov=oov))

    def opener(spec: SourceSpec, options: Any) -> MemorySource:
        words, vecs = data[spec.name]
        return MemorySource(words, vecs, path=spec.path, options=options, format="glove")

    with pytest.raises(VocabError, match="needs at least"):  # a: 2 shared words cannot fit a map
        align(specs, tmp_path / "s.h5", AlignOptions(progress=False), opener=opener)
    specs[0] = SourceSpec("a", tmp_path / "a.vec", oov="random")
    return align(specs, tmp_path / "s.h5", AlignOptions(case="fallback", progress=False),
                 opener=opener)


def test_summary_values(tmp_path: Path) -> None:
    s = inspect_store(_store(tmp_path))
    assert s["vocab_size"] == 3 + 41 + 2  # x y z | w n0..n39 | Z q
    assert s["case_policy"] == "fallback" and s["vocab_mode"] == "union"
    a, b, c = s["sources"]
    assert (a["name"], a["rows_read"], a["duplicates"], a["present"]) == ("a", 4, 1, 4)
    assert a["case_steps"] == {"exact": 3, "lower": 1, "title": 0, "upper": 0}  # Z -> z
    assert a["oov"] == "random" and a["oov_filled"] == {"random": s["vocab_size"] - 4}
    assert b["oov_filled"] == {"mean": 2}  # x and q; Z finds z through the lower step
    assert c["present"] == 3  # Z, q, and z through the title step
    assert c["case_steps"] == {"exact": 2, "lower": 0, "title": 1, "upper": 0}
    assert c["coverage"] == pytest.approx(3 / s["vocab_size"])
    assert (a["dim"], a["dtype"], a["format"]) == (3, "float32", "glove")
    names, counts = s["overlap"]["names"], s["overlap"]["counts"]
    assert names == ["a", "b", "c"]
    assert counts[0][0] == 4 and counts[0][1] == 3 and counts[1][0] == 3  # y, z, Z
    assert counts[0][2] == 2  # z and Z: c has Z
    assert s["in_all"] == 2
    json.dumps(s)  # JSON-ready


def test_text_table_and_cli(tmp_path: Path) -> None:
    path = _store(tmp_path)
    text = format_summary(inspect_store(path))
    assert "overlap (words present in both)" in text
    assert "exact 3, lower 1" in text and "random" in text
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0 and res.output.strip() == text
    res = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert json.loads(res.output)["sources"][2]["name"] == "c"


def test_missing_or_foreign_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        inspect_store(tmp_path / "none.h5")
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(StoreError, match="not a readable HDF5"):
        inspect_store(tmp_path / "x.h5")
