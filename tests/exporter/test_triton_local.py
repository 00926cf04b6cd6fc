"""The python backend stub's environment (exporter/triton_local.stub_env) sees the packages of the
environment that made it, also when that is a virtual environment: the README's set-up is a venv,
and `--system-site-packages` from inside one shows the base interpreter's packages instead.

Needs pip to reach PyPI or its cache once (numpy<2 for the stub under NumPy 2); set
METAPREP_SKIP_VENV_TEST=1 to skip it where pip cannot install anything; CI runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import metaprep
from metaprep.exporter.triton_local import running_site_dirs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("METAPREP_SKIP_VENV_TEST") == "1",
                       reason="METAPREP_SKIP_VENV_TEST=1"),
]

# what the stub's Python is asked: run as the stub runs it (isolated, a bare PATH)
_ASK = ("import json, sys, numpy, onnxruntime, metaprep, probe_only_here; "
        "print(json.dumps([numpy.__version__, metaprep.__file__, sys.prefix]))")


def test_the_running_environment_is_among_the_site_dirs() -> None:
    import numpy

    dirs = running_site_dirs()
    assert any(Path(numpy.__file__).is_relative_to(d) for d in dirs)
    if sys.prefix != sys.base_prefix:  # in a venv: its own site-packages, not only the base's
        assert any(Path(d).is_relative_to(sys.prefix) for d in dirs)


def test_a_stub_env_made_inside_a_venv_sees_that_venv(tmp_path: Path) -> None:
    # a venv of our own, whatever runs the tests, holding a module nothing else has; it sees
    # the running environment's packages through a path file, as a user's venv sees its installs
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True,
                   timeout=120)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = outer / "lib" / version / "site-packages"
    (site / "probe_only_here.py").write_text("WHERE = 'outer venv'\n", encoding="utf-8")
    checkout = str(Path(metaprep.__file__).resolve().parents[1])
    lines = [checkout, *(f"import site; site.addsitedir({d!r})" for d in running_site_dirs())]
    (site / "running.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")

    make = textwrap.dedent(f"""
        from metaprep.exporter.triton_local import stub_env
        print(stub_env({str(tmp_path / "stubenv")!r}))
    """)
    made = subprocess.run([str(outer / "bin" / "python"), "-c", make], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    if made.returncode != 0 and "cannot install numpy<2" in made.stderr:
        pytest.skip(f"pip cannot install numpy<2 here: {made.stderr.strip()[-300:]}")
    assert made.returncode == 0, made.stderr[-3000:]
    stub = Path(made.stdout.strip())

    got = subprocess.run([str(stub / "bin" / "python3"), "-I", "-c", _ASK],
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin"})
    assert got.returncode == 0, got.stderr[-3000:]  # onnxruntime and the probe module found
    numpy_version, metaprep_file, prefix = json.loads(got.stdout)
    assert Path(prefix) == stub  # the stub's own environment
    assert Path(metaprep_file).resolve().parents[1] == Path(checkout)
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:  # the stub's pybind11 predates NumPy 2
        assert int(numpy_version.split(".")[0]) == 1
