"""The runtime installs and runs in a fresh virtual environment with only `metaprep[runtime]`
(numpy, click, onnxruntime): no torch, gensim or h5py there at all.

Needs pip to reach PyPI (or its cache: ~/.cache/pip is reused, so reruns are fast). Set
METAPREP_SKIP_VENV_TEST=1 to skip it where pip cannot install anything; CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from exportkit import make_run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("METAPREP_SKIP_VENV_TEST") == "1",
                       reason="METAPREP_SKIP_VENV_TEST=1"),
]


def _copy_project(dest: Path) -> Path:
    """The installable part of the checkout, so pip builds outside the working tree."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "metaprep", dest / "metaprep",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_predict_in_a_clean_venv(tmp_path: Path) -> None:
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    run = make_run(tmp_path / "work", method="dme", encoder="pool")
    model_dir = tmp_path / "model"
    export_run(run, model_dir, options=ExportOptions(quiet=True), log=lambda _: None)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    src = _copy_project(tmp_path / "src")
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"{src}[runtime]"],
        capture_output=True, text=True, timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]

    check = textwrap.dedent(f"""
        import importlib.util, json, sys
        from metaprep.runtime.model import Model
        m = Model({str(model_dir)!r}, threads=1)
        label, probs = m.predict(["the cat sat on the mat"])[0]
        print(json.dumps({{
            "label": label,
            "sum": sum(probs.values()),
            "installed": [n for n in ("torch", "gensim", "h5py", "onnx")
                          if importlib.util.find_spec(n) is not None],
            "prefix": sys.prefix,
        }}))
    """)
    proc = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["label"] in ("neg", "pos") and abs(got["sum"] - 1) < 1e-5
    assert got["installed"] == []  # a clean environment: none of the heavy libraries exist
    assert Path(got["prefix"]).resolve() == venv.resolve()

    cli = subprocess.run([str(venv / "bin" / "metaprep"), "predict", str(model_dir), "-"],
                         input="the cat\n\nzebra\n", capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(x)["line"] for x in cli.stdout.splitlines()] == [1, 2, 3]

    # the runtime-only install says in one line what a full-install command needs
    train = subprocess.run([str(venv / "bin" / "metaprep"), "train", "--store", "s.h5"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert train.returncode == 2
    assert "Traceback" not in train.stderr and len(train.stderr.strip().splitlines()) == 1
    assert "`metaprep train` needs the full install" in train.stderr
    assert "metaprep[full]" in train.stderr

    # the packaged default pipeline is installed with the package, not only in the checkout
    where = subprocess.run(
        [str(py), "-c", "import importlib.resources as r; "
         "print(r.files('metaprep').joinpath('pipelines/quickstart.toml').is_file())"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert where.stdout.strip() == "True", where.stderr
