from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from metaprep.cli import cli
from metaprep.errors import ConfigError, DataError
from metaprep.prep.split import split_file
from metaprep.taskdata import Columns, Example, read_examples


def _corpus(path: Path, n_per_label: int = 20) -> Path:
    lines = []
    for i in range(n_per_label):
        lines.append(f"__label__pos good film number {i}\n")
        lines.append(f"__label__neg bad\tfilm number {i}\n")
    path.write_text("".join(lines), encoding="latin-1")
    return path


def test_split_is_stratified_complete_and_reproducible(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "c.txt")
    counts = split_file(src, tmp_path / "a", dev=0.25, test=0.25, seed=3, encoding="latin-1")
    assert counts == {"train": 20, "dev": 10, "test": 10}
    labels = {name: [e.label for e in read_examples(tmp_path / "a" / f"{name}.tsv")]
              for name in counts}
    assert labels["dev"].count("pos") == labels["dev"].count("neg") == 5
    texts = [e.text for name in counts for e in read_examples(tmp_path / "a" / f"{name}.tsv")]
    assert len(set(texts)) == 40  # nothing lost or repeated; the tab became a space
    assert "bad film number 0" in texts
    split_file(src, tmp_path / "b", dev=0.25, test=0.25, seed=3, encoding="latin-1")
    for name in counts:
        assert (tmp_path / "a" / f"{name}.tsv").read_bytes() == (
            tmp_path / "b" / f"{name}.tsv").read_bytes()


def test_split_bad_fractions_and_tiny_data(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "c.txt", n_per_label=1)
    with pytest.raises(ConfigError):
        split_file(src, tmp_path / "o", dev=0.6, test=0.5)
    with pytest.raises(DataError, match="too few"):
        split_file(src, tmp_path / "o", dev=0.1, test=0.1, encoding="latin-1")


def test_split_cli(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "c.txt")
    result = CliRunner().invoke(cli, ["split", str(src), "-o", str(tmp_path / "o"),
                                      "--encoding", "latin-1", "--test", "0"])
    assert result.exit_code == 0, result.output
    assert "train: 34" in result.output and not (tmp_path / "o" / "test.tsv").exists()


def test_split_reads_other_column_names_and_writes_standard_ones(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text("".join(f'{{"review": "text {i}", "stars": {i % 2}}}\n' for i in range(20)))
    counts = split_file(src, tmp_path / "o", dev=0.2, test=0, columns=Columns(text="review",
                                                                             label="stars"))
    assert counts == {"train": 16, "dev": 4}
    train = tmp_path / "o" / "train.tsv"
    assert train.read_text().startswith("text\tlabel\n")
    assert Example("text 0", "0", 2) in list(read_examples(train))


def test_a_write_failure_leaves_the_previous_split_whole(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """dev.tsv failing (a full disk) used to leave the new train.tsv beside the old dev.tsv, and
    a failing file's temporary copy behind."""
    from metaprep.errors import WriteError
    from metaprep.prep import split as split_module

    out = tmp_path / "out"
    split_file(_corpus(tmp_path / "a.txt"), out, seed=0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write = split_module._write_tsv

    def failing(tmp: Path, path: Path, examples: list[Example], label_sep: str = ",") -> None:
        if path.name == "dev.tsv":
            tmp.write_text("half")
            raise split_module.write_failure(path, OSError(28, "No space left on device"))
        write(tmp, path, examples, label_sep)

    monkeypatch.setattr(split_module, "_write_tsv", failing)
    with pytest.raises(WriteError, match="cannot write dev.tsv"):
        split_file(_corpus(tmp_path / "a.txt", 30), out, seed=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_split_without_test_leaves_no_earlier_test_file(tmp_path: Path) -> None:
    """--test 0 over an earlier split kept its test.tsv, whose texts the new train.tsv held:
    training on one and scoring on the other silently reported inflated accuracy."""
    src = _corpus(tmp_path / "c.txt")
    split_file(src, tmp_path / "a", dev=0.25, test=0.25, seed=3, encoding="latin-1")
    counts = split_file(src, tmp_path / "a", dev=0.25, test=0.0, seed=4, encoding="latin-1")
    assert counts == {"train": 30, "dev": 10}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["dev.tsv", "train.tsv"]
    (tmp_path / "a" / "test.tsv").mkdir()  # not a file split can remove: refused, nothing replaced
    before = (tmp_path / "a" / "train.tsv").read_bytes()
    with pytest.raises(ConfigError, match="cannot remove the earlier split's test.tsv"):
        split_file(src, tmp_path / "a", dev=0.25, test=0.0, seed=5, encoding="latin-1")
    assert (tmp_path / "a" / "train.tsv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["dev.tsv", "test.tsv",
                                                                  "train.tsv"]
