"""docs/multi-node.md's torchrun commands run as written, in a directory holding the 400-example
task they name. Each command is started twice at once, as the doc says to start it on each of
two nodes. Only the rendezvous port is changed, to a free one. The rank-0 node's stdout must
have the shape of the doc's output block after it (figures masked: speed and timing vary)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "multi-node.md"
sys.path.insert(0, str(ROOT / "tests" / "learn"))
from test_data import make_task  # noqa: E402
from test_ddp import _free_port  # noqa: E402
from test_multinode import cannot_start, finish_nodes  # noqa: E402


def _examples() -> list[tuple[list[str], str]]:
    """(torchrun command as words, the output block that follows it), in doc order."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"```sh\n(.*?)```.*?```text\n(.*?)```", text, flags=re.S)
    return [(code.replace("\\\n", " ").split(), out) for code, out in found]


def _shape(text: str) -> list[str]:
    return [re.sub(r"\d+(\.\d+)?", "N", line).split(";")[0] for line in text.strip().splitlines()]


def test_the_doc_gives_a_run_then_its_resume() -> None:
    (run, _), (resume, _) = _examples()
    assert run[0] == resume[0] == "torchrun" and "--resume" in resume
    assert run[run.index("-o") + 1] == resume[resume.index("-o") + 1]


@pytest.mark.slow
@pytest.mark.skipif(cannot_start() is not None, reason=str(cannot_start()))
def test_commands_run_as_written(tmp_path: Path) -> None:
    make_task(tmp_path, n_train=400, n_dev=100)  # store.h5, train.tsv, dev.tsv
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    for words, want in _examples():
        port = str(_free_port())
        args = [w.replace(":29500", f":{port}") for w in words[1:]]
        cmd = [sys.executable, "-m", "torch.distributed.run", *args]  # what `torchrun` runs
        nodes = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        ends = finish_nodes(nodes)
        outs = sorted(out for out, _ in ends)
        assert outs[0] == ""  # the other node prints nothing
        assert _shape(outs[1]) == _shape(want)
    assert (tmp_path / "run" / "metrics.json").is_file()
