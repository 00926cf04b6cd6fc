"""README.md's console blocks print what their commands print today (scripts/readme_outputs.py),
up to the figures that change from run to run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_outputs",
                                               ROOT / "scripts" / "readme_outputs.py")
assert _spec is not None and _spec.loader is not None
ro = importlib.util.module_from_spec(_spec)
sys.modules["readme_outputs"] = ro  # dataclasses look their module up while the class is built
_spec.loader.exec_module(ro)


@pytest.mark.slow
def test_readme_fast_blocks_match_a_rerun(capsys: pytest.CaptureFixture[str]) -> None:
    code = ro.main(["--check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "block(s) match" in out


EXPORT = """\
parity model (float32, 10 batches): max abs diff logits 5.22e-08, probabilities 5.96e-08
dev accuracy (40 examples): torch 0.4750, onnx 0.4750 (change +0.0000, agreement 1.0000)
wrote model (7 files, 0.6 MB)"""

PIPELINE = """\
stage     status  time   figures
--------  ------  -----  ---------------------------
align     ran     0.8s   vocab: 6736; size_mb: 12.9
train     ran     32.3s  best_dev_acc: 0.7765"""


def changed(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize("old, new", [
    ("5.22e-08", "9.11e-07"),  # float noise in the parity gate
    ("32.3s", "4.1s"),  # a duration, and the column it narrows
    ("--------  ------  -----  ", "--------  ------  ----  "),
])
def test_a_volatile_figure_is_not_drift(old: str, new: str) -> None:
    for text in (EXPORT, PIPELINE):
        if old in text:
            assert ro.drift(text.splitlines(), changed(text, old, new).splitlines(), "x") == ""


@pytest.mark.parametrize("line", [
    "measured 2026-11-24 at 09:19 UTC, commit f5971a9, in /tmp/readme-tour-x1y2/run",
    "166,001 sentences/s, 480.2 MB/s, 12 ms",
])
def test_dates_rates_paths_and_hashes_are_masked(line: str) -> None:
    other = ("measured 2027-01-02 at 10:00 UTC, commit 0a1b2c3d, in /tmp/readme-tour-zz/run"
             if "measured" in line else "99 sentences/s, 1.0 MB/s, 3.5 s")
    assert ro.mask(line) == ro.mask(other)


@pytest.mark.parametrize("old, new", [
    ("torch 0.4750, onnx 0.4750", "torch 0.4750, onnx 0.4500"),  # an accuracy
    ("7 files, 0.6 MB", "9 files, 1.0 MB"),  # what the model holds
    ("wrote model", "saved model"),  # wording
    ("best_dev_acc: 0.7765", "best_dev_acc: 0.7766"),
])
def test_a_changed_figure_or_wording_is_drift(old: str, new: str) -> None:
    text = EXPORT if old in EXPORT else PIPELINE
    diff = ro.drift(text.splitlines(), changed(text, old, new).splitlines(), "README.md:9")
    old_line = next(line for line in text.splitlines() if old in line)
    assert f"-{old_line}" in diff
    assert "README.md:9 (rerun)" in diff


def test_commands_span_continuations_and_open_quotes() -> None:
    body = ["$ metaprep align a=b \\", "    -o s.h5", "s.h5: 3 words",
            "$ curl -d '{\"x\": [1,", "    2]}'", "{}", "$ ls"]
    steps = ro.parse_steps(body, "README.md:3")
    assert [s.command for s in steps] == ["metaprep align a=b \\\n    -o s.h5",
                                          "curl -d '{\"x\": [1,\n    2]}'", "ls"]
    assert [s.output for s in steps] == ["s.h5: 3 words", "{}", ""]
    assert ro.render(steps) == body


def test_progress_bars_leave_what_a_terminal_shows() -> None:
    text = "a\nbar 1/3\rbar 2/3\rbar 3/3\r        \rwrote x\n\nbar 1/2\rbar 2/2\r     \r\nb\n"
    assert ro.terminal_lines(text) == ["a", "wrote x", "", "b", ""]


def test_every_console_block_needs_a_marker() -> None:
    text = "# x\n\n<!-- readme-outputs: tour -->\n```console\n$ echo a\na\n```\n\n" \
           "```console\n$ echo b\nb\n```\n"
    with pytest.raises(ro.ReadmeError, match=r"README.md:9: a console block without"):
        ro.parse(text)
    blocks = ro.parse(text.split("\n\n```console")[0])
    assert [(b.group, b.slow, b.steps[0].command) for b in blocks] == [("tour", False, "echo a")]


def test_check_then_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n\n<!-- readme-outputs: tour -->\n```console\n"
                      "$ printf 'took 3.2s\\nhello\\n' && ls *.cor\ntook 9.9s\nbye\n"
                      "pang_lee_polarity.cor\n```\n\n<!-- readme-outputs: tour slow -->\n"
                      "```console\n$ false\n```\n")
    assert ro.main(["--check", "--readme", str(readme)]) == 1
    out = capsys.readouterr().out
    assert "\n-bye\n" in out and "\n+hello\n" in out and "1 of 1 block(s) drifted" in out
    assert "1 slow or unselected block(s) not rerun" in out

    assert ro.main(["--write", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "took 3.2s\nhello\npang_lee_polarity.cor\n```" in text and "$ false" in text
    assert ro.main(["--check", "--readme", str(readme)]) == 0

    # a run that differs only in its timing leaves the README as it is
    readme.write_text(text.replace("took 3.2s", "took 7.0s"))
    assert ro.main(["--write", "--readme", str(readme)]) == 0
    assert "took 7.0s" in readme.read_text()


def test_a_failing_command_or_unknown_group_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    for group, command, message in [("tour", "metaprep nosuchcommand", "exited 2"),
                                    ("nosuch", "true", "group 'nosuch' has no setup")]:
        readme.write_text(f"<!-- readme-outputs: {group} -->\n```console\n$ {command}\n```\n")
        assert ro.main(["--check", "--readme", str(readme)]) == 2
        assert message in capsys.readouterr().err
