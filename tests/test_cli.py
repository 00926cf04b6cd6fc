"""The CLI feels like one tool: the same flag for the same idea, an example in every --help,
every option described, old spellings still accepted."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from metaprep.cli import cli

ROOT = Path(__file__).resolve().parents[1]
NAMES = cli.list_commands(click.Context(cli))
WRITERS = {"split", "align", "train", "evaluate", "export-onnx", "export-vectors", "predict",
           "embed"}
WITH_BARS = {"align", "train", "evaluate", "export-onnx", "export-vectors", "predict", "embed"}


def _command(name: str) -> click.Command:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    return command


@pytest.mark.parametrize("name", NAMES)
def test_every_command_has_an_example_and_described_options(name: str) -> None:
    command = _command(name)
    assert "Example" in (command.epilog or ""), f"{name} --help shows no example"
    for p in command.params:
        if isinstance(p, click.Option) and not p.hidden:
            assert p.help, f"{name} {p.opts} has no help"


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_outputs_are_dash_o_dash_dash_output(name: str) -> None:
    opts = [p.opts for p in _command(name).params if isinstance(p, click.Option)]
    assert ["-o", "--output"] in opts


@pytest.mark.parametrize("name", sorted(WITH_BARS))
def test_quiet_is_dash_q_dash_dash_quiet(name: str) -> None:
    opts = [p.opts for p in _command(name).params if isinstance(p, click.Option)]
    assert ["-q", "--quiet"] in opts


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"__label__{'ab'[i % 2]} text {i}\n" for i in range(40)))
    return corpus


def test_one_spelling_of_output_and_quiet(tmp_path: Path) -> None:
    """-o/--output and -q/--quiet on every command; the hidden --out and --no-progress of
    earlier versions are gone (nothing outside used them)."""
    runner = CliRunner()
    out = runner.invoke(cli, ["split", str(_corpus(tmp_path)), "-o", str(tmp_path / "d")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "d" / "train.tsv").is_file()
    old = runner.invoke(cli, ["split", str(_corpus(tmp_path)), "--out", str(tmp_path / "e")])
    assert old.exit_code == 2 and "No such option '--out'" in old.output
    missing = runner.invoke(cli, ["split", str(_corpus(tmp_path))])
    assert missing.exit_code == 2 and "Missing option '-o' / '--output'" in missing.output


def test_run_help_lists_the_stages() -> None:
    out = CliRunner().invoke(cli, ["run", "--help"])
    assert out.exit_code == 0
    for stage in ("split", "align", "train", "export", "evaluate", "predict"):
        assert f"  {stage} " in out.output


def test_the_packaged_quickstart_runs_from_any_directory(tmp_path: Path) -> None:
    old = os.getcwd()
    os.chdir(tmp_path)  # no pipelines/ folder here
    try:
        out = CliRunner().invoke(cli, ["run", "quickstart", "--dry-run"])
    finally:
        os.chdir(old)
    assert out.exit_code == 0, out.output
    assert out.output.startswith("[split] run: data=")
    # upstream stage folders are under ./artifacts, wherever the pipeline file lives
    assert "vocab=artifacts/quickstart/split/train.tsv" in out.output
    unknown = CliRunner().invoke(cli, ["run", "no-such-pipeline"])
    assert unknown.exit_code != 0 and "packaged pipelines: quickstart" in str(unknown.exception)


def test_a_skipped_stage_shows_no_stale_time(tmp_path: Path) -> None:
    _corpus(tmp_path)
    (tmp_path / "p.toml").write_text('[split]\ndata = "c.txt"\n')
    args = ["run", str(tmp_path / "p.toml"), "--artifacts", str(tmp_path / "art")]
    CliRunner().invoke(cli, args)
    again = CliRunner().invoke(cli, args)
    row = next(line for line in again.output.splitlines() if line.startswith("split "))
    assert row.split()[1:3] == ["skipped", "-"]


def test_task_data_with_other_column_names(tmp_path: Path) -> None:
    """--text-column / --label-column through split, align, evaluate (train: --set
    text_column=..., recorded in the run, so evaluate and resume need nothing more); predict
    reads the text column too."""
    import gensim

    data = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
    rows = ["review\tverdict"] + [f"{w} film {i}\t{'pos' if i % 2 else 'neg'}"
                                   for i, w in enumerate(["good", "bad", "dull", "fine"] * 12)]
    corpus = tmp_path / "c.tsv"
    corpus.write_text("\n".join(rows) + "\n")
    cols = ["--text-column", "review", "--label-column", "verdict"]
    runner = CliRunner()
    plain = runner.invoke(cli, ["split", str(corpus), "-o", str(tmp_path / "x")])
    assert plain.exit_code != 0 and "text" in str(plain.exception)  # the standard names: missing
    ok = runner.invoke(cli, ["split", str(corpus), "-o", str(tmp_path / "d"), *cols])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "d" / "train.tsv").read_text().startswith("text\tlabel\n")  # standard out
    aligned = runner.invoke(cli, ["align", f"glove={data / 'test_glove.txt'}", "--vocab",
                                  str(corpus), *cols, "-o", str(tmp_path / "s.h5"), "-q"])
    assert aligned.exit_code == 0, aligned.output
    trained = runner.invoke(cli, ["train", "--store", str(tmp_path / "s.h5"), "--train",
                                  str(corpus), "--dev", str(corpus), "--set", "text_column=review",
                                  "--set", "label_column=verdict", "--encoder", "pool",
                                  "--proj-dim", "4", "--set", "mlp_hidden=4", "--epochs", "1",
                                  "-o", str(tmp_path / "run"), "-q"])
    assert trained.exit_code == 0, trained.output
    scored = runner.invoke(cli, ["evaluate", str(tmp_path / "run"), str(corpus), "--json", "-q"])
    assert scored.exit_code == 0, scored.output
    assert '"n": 48' in scored.output


def test_predict_and_embed_take_the_same_text_column_flag() -> None:
    for name in ("predict", "embed"):
        opts = [p.opts for p in _command(name).params if isinstance(p, click.Option)]
        assert ["--column", "--text-column"] in opts


@pytest.mark.parametrize("args", [
    ["align", "g=a.txt", "-o", "."], ["inspect", "."], ["train", "--epochs", "many"],
    ["train", "--set", "cnn_widths=3,x"], ["train", "--set", "hidden"],
    ["train", "--set", "no_such=1"], ["train", "--set", "epochs=2"]])
def test_a_value_of_the_wrong_kind_is_one_line(args: list[str], tmp_path: Path) -> None:
    """click's usage error is four lines; a folder given for a file is one, like every error."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "metaprep", *args], capture_output=True,
                          text=True, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: Invalid value for ") and lines[0].endswith(" --help)")


@pytest.mark.parametrize("args", [["align", "g=a.txt"], ["train", "--no-such-option"],
                                  ["predict"], ["split", "a", "b", "c"]])
def test_a_usage_error_is_one_line_naming_the_help(args: list[str], tmp_path: Path) -> None:
    """A missing option, an unknown option, extra arguments: one line and exit 2, as any error
    (click's own form is four lines)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "metaprep", *args], capture_output=True,
                          text=True, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and lines[0].endswith(f"metaprep {args[0]} --help)")
