"""docs/engines.md's examples run as written: each ```python block, unchanged, in a fresh Python,
from a directory holding a model at the path the docs give (the quickstart's). Only loopback is
set from outside: SPARK_LOCAL_IP, and Ray's usage report off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from enginekit import LOOPBACK, engine_model, ray_missing, spark_missing

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "engines.md"
MODEL = "artifacts/quickstart/export/model"


def _blocks() -> dict[str, str]:
    """The doc's python blocks by engine (the module each one imports)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    found = {}
    for code in blocks:
        engine = "spark" if "metaprep.runtime.spark" in code else "ray"
        assert engine not in found, "one example per engine"
        found[engine] = code
    return found


def test_the_doc_has_one_example_per_engine_and_they_use_the_model_path() -> None:
    blocks = _blocks()
    assert set(blocks) == {"spark", "ray"}
    assert all(MODEL in code for code in blocks.values())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("docs-engines")
    engine_model(base, base / MODEL)
    return base


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["spark", "ray"])
def test_example_runs_as_written(engine: str, workdir: Path) -> None:
    missing = spark_missing() if engine == "spark" else ray_missing()
    if missing:
        pytest.skip(missing)
    env = {**os.environ, "SPARK_LOCAL_IP": LOOPBACK, "RAY_USAGE_STATS_ENABLED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    out = subprocess.run([sys.executable, "-c", _blocks()[engine]], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "a fine film" in out.stdout and out.stdout.count("pos") + out.stdout.count("neg") >= 3
