"""The predict and embed stages (metaprep.runtime.predict) and their thin CLI faces."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from exportkit import make_run
from hypothesis import given, settings
from hypothesis import strategies as st

from metaprep.cli import cli
from metaprep.errors import ConfigError, DataError
from metaprep.runtime.model import Model
from metaprep.runtime.predict import EmbedOptions, PredictOptions, embed, predict
from metaprep.runtime.probabilities import Probabilities
from metaprep.tokenize import Tokenizer, TokenizerConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("predict")
    run = make_run(base, method="dme", max_tokens=6)
    export_run(run, base / "model", options=ExportOptions(quiet=True),
               log=lambda _: None)
    return base / "model"


def test_predict_stage_numbers_records_not_lines(model_dir: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\ttext\n1\tthe cat\n2\n3\ta dog\n", encoding="utf-8")
    warnings: list[str] = []
    result = predict(PredictOptions(model_dir=model_dir, input=tsv, output=tmp_path / "p.jsonl",
                                    quiet=True), warn=warnings.append)
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(r["record"], r["line"]) for r in rows] == [(1, 2), (2, 3), (3, 4)]
    assert "label" in rows[0] and "error" in rows[1]
    assert (result.records, result.errors, result.notes) == (3, 1, [])
    assert warnings == [f"{tsv}:3: 1 fields, the header has more"]


def test_predict_to_a_text_only_stdout(model_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    texts = tmp_path / "t.txt"
    texts.write_text("the cat\n\n")
    out = io.StringIO()  # like a notebook's stdout: no .buffer
    monkeypatch.setattr("sys.stdout", out)
    result = predict(PredictOptions(model_dir=model_dir, input=texts))
    assert result.output is None and result.records == 2
    assert [json.loads(x)["record"] for x in out.getvalue().splitlines()] == [1, 2]


def test_options_mark_their_paths_and_are_checked(model_dir: Path, tmp_path: Path) -> None:
    roles = {f.name: f.metadata.get("path") for f in dataclasses.fields(EmbedOptions)}
    assert roles["model_dir"] == "in" and roles["input"] == "in" and roles["output"] == "out"
    with pytest.raises(ConfigError, match="must end in .npy or .jsonl"):
        embed(EmbedOptions(model_dir=model_dir, output=tmp_path / "x.csv"))
    with pytest.raises(ConfigError, match="batch size"):
        predict(PredictOptions(model_dir=model_dir, batch_size=0))
    with pytest.raises(DataError, match="cannot read input"):
        predict(PredictOptions(model_dir=model_dir, input=tmp_path / "missing.txt"))
    texts = tmp_path / "t.txt"
    texts.write_text("the cat\n")
    with pytest.raises(DataError, match="cannot write the output: No such file or directory"):
        predict(PredictOptions(model_dir=model_dir, input=texts, output=tmp_path / "no" / "p"))


def test_output_may_not_be_the_input_or_inside_the_model_dir(model_dir: Path,
                                                             tmp_path: Path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("the cat\n")
    (tmp_path / "link.jsonl").symlink_to(texts)
    for out in (texts, tmp_path / "link.jsonl"):  # predict -o IN IN used to overwrite IN
        with pytest.raises(ConfigError, match="the output .output. is the input input"):
            predict(PredictOptions(model_dir=model_dir, input=texts, output=out))
    assert texts.read_text() == "the cat\n"
    vocab = (model_dir / "vocab.txt").read_bytes()
    with pytest.raises(ConfigError, match="sits inside the input model_dir"):
        predict(PredictOptions(model_dir=model_dir, input=texts, output=model_dir / "vocab.txt"))
    with pytest.raises(ConfigError, match="sits inside the input model_dir"):
        embed(EmbedOptions(model_dir=model_dir, input=texts, output=model_dir / "e.npy"))
    assert (model_dir / "vocab.txt").read_bytes() == vocab and not (model_dir / "e.npy").exists()
    # a device is still written to as it is
    assert predict(PredictOptions(model_dir=model_dir, input=texts, output=Path(os.devnull),
                                  quiet=True)).records == 1


def test_paths_given_as_str_work(model_dir: Path, tmp_path: Path) -> None:
    """``output="p.jsonl"`` (a str where a Path is typed) used to be an AttributeError."""
    texts = tmp_path / "in.txt"
    texts.write_text("the cat sat\n")
    out = tmp_path / "p.jsonl"
    predict(PredictOptions(model_dir=str(model_dir), input=str(texts),  # type: ignore[arg-type]
                           output=str(out)))  # type: ignore[arg-type]
    assert len(out.read_text().splitlines()) == 1


def test_predict_on_a_bare_str_is_a_clear_error(model_dir: Path) -> None:
    model = Model(model_dir)
    with pytest.raises(DataError, match="give a list of texts, not one str"):
        model.predict("the cat sat")
    with pytest.raises(DataError, match="not one bytes"):
        model.predict(b"the cat sat")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="texts must be str, not int"):  # said "not pairs"
        model.predict([1, 2])  # type: ignore[list-item]
    assert len(model.predict(["the cat sat"])) == 1
    # none of these is a list of texts: each was a TypeError or a KeyError traceback
    for other, name in [(None, "NoneType"), (7, "int"), ((t for t in ["a"]), "generator"),
                        ({"a", "b"}, "set"), ({"a": 1}, "dict")]:
        with pytest.raises(DataError, match=f"give a list of texts, not {name}"):
            model.predict_proba(other)  # type: ignore[arg-type]
    assert model.predict_proba(np.array(["the cat", "a dog"])).shape == (2, 2)
    for other in (None, b"the cat", ["the cat"]):
        with pytest.raises(DataError, match="encode takes one text"):
            model.encode(other)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"threads": "2"}, {"threads": 0}, {"threads": 10**6},
                                     {"batch_size": 2.5}, {"batch_size": True},
                                     {"batch_size": 10**9}])
def test_model_options_are_bounded(model_dir: Path, options: dict[str, Any]) -> None:
    """threads="2" was a TypeError at the first batch, 10**6 threads were started for as many
    texts, a batch of 10**9 texts held a whole stream in memory, 2.5 and True were taken."""
    with pytest.raises(ValueError, match="threads|batch_size"):
        Model(model_dir, **options)
    with pytest.raises(ConfigError, match="threads|batch size"):
        PredictOptions(model_dir=model_dir, threads=10**6 if "threads" in options else None,
                       batch_size=10**9 if "batch_size" in options else 64).validate()


def _with_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """fn's result and the peak of Python memory allocated while it ran."""
    tracemalloc.start()
    try:
        got = fn()
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_line_is_cut_while_it_is_tokenized(model_dir: Path) -> None:
    model = Model(model_dir)  # max_tokens 6
    line = "cat " * 2_000_000  # 8 MB: as a token list, 16 MB of pointers alone
    ids, peak = _with_peak(lambda: model.encode(line))
    assert ids == [4] * 6 and model.stats.truncated == 1
    assert peak < 1 << 20


def test_a_line_without_end_is_read_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """`yes | tr -d '\\n' | metaprep predict` grew one line until the machine ran out (a 400 MB
    line took 1.7 GB); a line is now read up to MAX_LINE_BYTES and the rest dropped."""
    import io

    from metaprep.runtime import inputs as runtime

    monkeypatch.setattr(runtime, "MAX_LINE_BYTES", 16)
    notes: list[str] = []
    data = b"short\n" + "\u00e9".encode() * 40 + b"\nnext\n" + b"x" * 16
    got = list(runtime.read_texts(io.BytesIO(data), name="in.txt", fmt="lines",
                                  warn=notes.append))
    assert got == [(1, "short", None), (2, "\u00e9" * 8, None), (3, "next", None),
                   (4, "x" * 16, None)]  # 16 bytes of two-byte characters: 8 whole ones
    assert notes == ["in.txt:2: longer than 16 bytes; only those were read"]
    tsv = list(runtime.read_texts(io.BytesIO(b"text\n" + b"y" * 40 + b"\nok\n"), fmt="tsv"))
    assert tsv == [(2, None, "longer than 16 bytes"), (3, "ok", None)]


@pytest.mark.slow
def test_predict_on_an_endless_line_keeps_flat_memory(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    code = ("from pathlib import Path\n"
            "from metaprep.runtime.predict import PredictOptions, predict\n"
            f"predict(PredictOptions(model_dir=Path({str(model_dir)!r}), "
            f"output=Path({str(out)!r})))\n"
            "import re\nstatus = open('/proc/self/status').read()\n"  # peak of this program
            "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=False)
    assert proc.stdin is not None
    for _ in range(50):  # 200 MB, no line end
        proc.stdin.write(b"cat " * 1_000_000)
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0 and proc.stdout is not None
    assert int(proc.stdout.read()) < 400_000  # KB: the line alone is 200 MB
    assert len(out.read_text().splitlines()) == 1


def test_a_batch_keeps_each_text_alone(model_dir: Path) -> None:
    """A huge line, an empty text, a lone surrogate and plain texts in one call: each row is what
    the text gives alone, and the huge line is still cut while it is tokenized."""
    texts = ["cat " * 2_000_000, "", "the cat sat", "a\ud800b dog", "\x1c\u0301", "THE CAT"]
    model = Model(model_dir)
    together, peak = _with_peak(lambda: model.predict_proba(texts))
    assert peak < 1 << 20
    # "" is the only empty text: \x1c is a blank, the combining mark a token of its own
    assert (model.stats.texts, model.stats.truncated, model.stats.empty) == (6, 1, 1)
    alone = np.concatenate([Model(model_dir).predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6, rtol=0)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40), lowercase=st.booleans(), mode=st.sampled_from(["regex",
                                                                                 "whitespace"]))
def test_streamed_tokens_equal_the_tokenizer(text: str, lowercase: bool, mode: str) -> None:
    tok = Tokenizer(TokenizerConfig(mode=mode, lowercase=lowercase))
    assert list(tok.iter_tokens(text)) == tok.tokenize(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_embed_npy_is_streamed_and_readable(model_dir: Path, tmp_path: Path) -> None:
    texts = tmp_path / "t.jsonl"
    lines = [json.dumps({"text": f"the cat {i}"}) for i in range(700)] + ['{"nope": 1}']
    texts.write_text("\n".join(lines) + "\n")
    npy, js = tmp_path / "e.npy", tmp_path / "e.jsonl"
    result = embed(EmbedOptions(model_dir=model_dir, input=texts, output=npy, batch_size=32))
    assert (result.records, result.errors, result.dim) == (701, 1, 8)
    emb = np.load(npy)
    assert emb.shape == (701, 8) and emb.dtype == np.float32 and np.isnan(emb[-1]).all()
    assert np.load(npy, mmap_mode="r").shape == (701, 8)
    embed(EmbedOptions(model_dir=model_dir, input=texts, output=js))
    # strict JSON: the unreadable record wrote NaN, which JSON has not
    rows = [json.loads(x, parse_constant=_no_constant) for x in js.read_text().splitlines()]
    assert rows[0]["record"] == 1 and rows[-1]["line"] == 701
    assert set(rows[-1]) == {"record", "line", "error"} and "text" in rows[-1]["error"]
    np.testing.assert_allclose(rows[5]["embedding"], emb[5], atol=1e-6)
    direct = Model(model_dir).embed([f"the cat {i}" for i in range(700)])
    np.testing.assert_allclose(emb[:700], direct, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl", "e.npy", "t.jsonl"]


def test_cli_help_has_examples_and_quiet() -> None:
    for name in ("predict", "embed"):
        out = CliRunner().invoke(cli, [name, "--help"]).output
        assert "Examples:" in out and "-q, --quiet" in out and "-o, --output" in out


def test_write_errors_are_one_line(model_dir: Path, tmp_path: Path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("the cat\n" * 50)
    base = [sys.executable, "-m", "metaprep", "predict", str(model_dir), str(texts)]
    for argv, stdout in ((base + ["-o", "/dev/full"], None), (base, "/dev/full")):
        with open(stdout or "/dev/null", "wb") as out:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                  timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"error: {'/dev/full' if stdout is None else '<stdout>'}: cannot write the output: "
            "No space left on device (check free space and permissions)"]
    assert Path("/dev/full").is_char_device()  # written to, never replaced


def test_top_k_keeps_the_most_probable_labels_in_order(model_dir: Path, tmp_path: Path) -> None:
    model = Model(model_dir)
    texts = ["the cat sat", "a dog", "", "mat mat mat the"]
    probs = model.predict_proba(texts)
    full = model.predict(texts)
    assert model.predict(texts, top_k=len(model.labels)) == full
    for (label, shown), p in zip(full, probs, strict=True):  # every label: a view of the row
        assert isinstance(shown, Probabilities) and list(shown) == model.labels
        assert list(shown.values()) == p.tolist() and label == model.labels[int(np.argmax(p))]
    for k in range(1, len(model.labels)):
        for (label, shown), p, (best, _) in zip(model.predict(texts, top_k=k), probs, full,
                                                strict=True):
            assert label == best and len(shown) == k
            order = sorted(range(len(p)), key=lambda j: (-p[j], j))[:k]
            assert list(shown) == [model.labels[j] for j in order]
            assert list(shown.values()) == [float(p[j]) for j in order]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="top_k"):
            model.predict(texts, top_k=bad)  # type: ignore[arg-type]
    inp = tmp_path / "in.txt"
    inp.write_text("the cat sat\na dog\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", str(model_dir), str(inp), "--top-k", "1", "-q"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [list(r["probabilities"]) for r in rows] == [[r["label"]] for r in rows]
    assert [r["label"] for r in rows] == [b for b, _ in full[:2]]
    bad_k = CliRunner().invoke(cli, ["predict", str(model_dir), str(inp), "--top-k", "0"])
    assert bad_k.exit_code == 2 and "--top-k" in bad_k.output


def test_top_k_order_breaks_ties_by_the_lower_index() -> None:
    from metaprep.runtime.probabilities import top_k_order as _top_k_order

    p = np.array([[0.1, 0.2, 0.5, 0.2], [0.25, 0.25, 0.25, 0.25]], dtype=np.float32)
    assert _top_k_order(p, 3).tolist() == [[2, 1, 3], [0, 1, 2]]
    assert _top_k_order(p, 1).ravel().tolist() == np.argmax(p, axis=1).tolist()


def test_columns_must_fit_the_model(model_dir: Path, tmp_path: Path) -> None:
    """Two columns for a single-text model read every line as a pair: each record an error
    line and exit 0. Refused before any output now."""
    texts = tmp_path / "t.txt"
    texts.write_text("the cat\na dog\n")
    with pytest.raises(ConfigError, match="this model reads single texts: give one column, "
                                          "not 2"):
        predict(PredictOptions(model_dir=model_dir, input=texts, output=tmp_path / "p.jsonl",
                               columns=("a", "b")))
    assert not (tmp_path / "p.jsonl").exists()
