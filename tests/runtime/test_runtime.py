from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from exportkit import WORDS, make_run, sentences
from hypothesis import given, settings
from hypothesis import strategies as st

from metaprep.cli import cli
from metaprep.errors import DataError, ModelError
from metaprep.ids import VocabIndex
from metaprep.runtime import Model, read_texts
from metaprep.runtime.modeldir import open_vocab, write_vocab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A single-sentence model (with front end, max_tokens 6) and a pair model."""
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("runtime")
    out = {}
    for name, kw, opts in [
        ("single", {"method": "dme", "max_tokens": 6}, {"front_end": True}),
        ("pair", {"method": "cdme", "pair": True}, {}),
    ]:
        run = make_run(base / name, **kw)
        export_run(run, base / name / "model", options=ExportOptions(quiet=True, **opts),
                   log=lambda _: None)
        out[name], out[f"{name}_run"] = base / name / "model", run
    return out


def _torch_probs(run: Path, texts: list, max_tokens: int | None = None) -> np.ndarray:
    import torch

    from metaprep.learn.rundir import Run
    from metaprep.runtime import pad_batch

    with Run.open(run) as source:
        model, cfg, enc = source.load_model(), source.config, source.encoder()

    def ids(t: str) -> list[int]:
        return enc.encode(t)[:max_tokens]

    with torch.no_grad():
        if cfg.pair:
            a, la = pad_batch([ids(x) for x, _ in texts])
            b, lb = pad_batch([ids(y) for _, y in texts])
            logits = model(*(torch.from_numpy(v) for v in (a, la, b, lb)))
        else:
            a, la = pad_batch([ids(x) for x in texts])
            logits = model(torch.from_numpy(a), torch.from_numpy(la))
    return logits.softmax(-1).numpy()


def test_runtime_matches_torch_on_text(exported: dict[str, Path]) -> None:
    texts = sentences(30, seed=7) + ["", "zebra", "PARIS été !", "the " * 20]
    model = Model(exported["single"], batch_size=4)
    np.testing.assert_allclose(model.predict_proba(texts),
                               _torch_probs(exported["single_run"], texts, max_tokens=6),
                               atol=1e-5, rtol=0)
    pairs = list(zip(sentences(12, seed=8), sentences(12, seed=9), strict=True)) + [("", "cat")]
    pm = Model(exported["pair"])
    np.testing.assert_allclose(pm.predict_proba(pairs), _torch_probs(exported["pair_run"], pairs),
                               atol=1e-5, rtol=0)
    with pytest.raises(DataError, match="sentence pairs"):
        pm.predict_proba(["not a pair"])


def test_batch_size_and_order_do_not_change_outputs(exported: dict[str, Path]) -> None:
    texts = sentences(25, seed=3)
    one = Model(exported["single"], batch_size=1).predict_proba(texts)
    many = Model(exported["single"], batch_size=64).predict_proba(texts)
    np.testing.assert_allclose(one, many, atol=1e-6, rtol=0)
    rev = Model(exported["single"], batch_size=5).predict_proba(texts[::-1])
    np.testing.assert_allclose(rev[::-1], many, atol=1e-6, rtol=0)


def test_predict_embed_and_stats(exported: dict[str, Path]) -> None:
    model = Model(exported["single"], threads=1)
    preds = model.predict(["the cat sat", "", "qwerty zebra", "a b c d e f g h i j"])
    assert [set(p) for _, p in preds] == [{"neg", "pos"}] * 4
    assert all(abs(sum(p.values()) - 1) < 1e-5 for _, p in preds)
    probs = Model(exported["single"], threads=1).predict_proba(
        ["the cat sat", "", "qwerty zebra", "a b c d e f g h i j"])
    for (label, row), want in zip(preds, probs, strict=True):  # the dicts hold the array's floats
        assert label == model.labels[int(np.argmax(want))]
        assert row == {k: float(x) for k, x in zip(model.labels, want, strict=True)}
        assert all(type(x) is float for x in row.values())
    st_ = model.stats
    assert (st_.texts, st_.empty, st_.truncated) == (4, 1, 1)
    assert st_.unknown == 2 + 5  # qwerty, zebra; then b..f (counted after truncation to 6)
    emb = model.embed(["the cat", "dog"])
    assert emb.shape == (2, model.manifest.task.sentence_dim) and emb.dtype == np.float32
    # embed uses the front-end graph; the classifier graph's sentence output agrees
    sess = model._session("model")
    ids, lengths = np.array([[2, 4]]), np.array([2])
    (direct,) = sess.run(["sentence_embedding"], {"ids": ids, "lengths": lengths})
    np.testing.assert_allclose(model.embed(["the cat"]), direct, atol=1e-6, rtol=0)
    assert model.embed([]).shape == (0, emb.shape[1])


def test_tampered_or_incomplete_model_dir(exported: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(exported["single"], copy)
    labels = (copy / "labels.json").read_text()
    (copy / "labels.json").write_text(labels.replace("neg", "bad"))  # same size
    with pytest.raises(ModelError, match="labels.json does not match its sha256"):
        Model(copy)
    (copy / "labels.json").write_text('["a", "b", "c"]\n')
    with pytest.raises(ModelError, match="labels.json has 16 bytes, the manifest says"):
        Model(copy)
    # the user may opt out of the checksums, not out of the labels agreeing with the manifest
    with pytest.raises(ModelError, match="labels.json does not match the manifest"):
        Model(copy, verify="none")
    (copy / "vocab.index.npy").unlink()
    with pytest.raises(ModelError, match="vocab.index.npy listed in the manifest is missing"):
        Model(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="format version 99"):
        Model(copy)
    with pytest.raises(ModelError, match="no such model directory"):
        Model(tmp_path / "nothing")


@settings(max_examples=20, deadline=None)
@given(words=st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r",
                                                     blacklist_categories=("Cs",)),
                              min_size=1, max_size=6), unique=True, max_size=40),
       probes=st.lists(st.text(max_size=6), max_size=20))
def test_mapped_vocab_agrees_with_vocab_index(tmp_path_factory: pytest.TempPathFactory,
                                              words: list[str], probes: list[str]) -> None:
    d = tmp_path_factory.mktemp("vocab")
    write_vocab(d, words)
    queries = probes + words + [w.upper() for w in words] + [w.lower() for w in words]
    for policy in ("exact", "lower", "fallback"):
        mapped = open_vocab(d, case_policy=policy)
        assert mapped.encode(queries) == VocabIndex(words, case_policy=policy).encode(queries)
    assert [mapped.word(i) for i in range(len(words))] == words


def test_read_texts_formats_and_bad_bytes() -> None:
    warnings: list[str] = []
    lines = b"good text\n\nbad \xff byte\r\nlast"
    got = list(read_texts(io.BytesIO(lines), name="in.txt", warn=warnings.append))
    assert got == [(1, "good text", None), (2, "", None), (3, "bad \ufffd byte", None),
                   (4, "last", None)]
    assert len(warnings) == 1 and warnings[0].startswith("in.txt:3: not valid UTF-8")

    tsv = b"id\ttext\n1\thello\n2\n3\tworld\n"
    got = list(read_texts(io.BytesIO(tsv), name="x.tsv"))
    assert got[0] == (2, "hello", None) and got[1][1] is None and got[2] == (4, "world", None)
    with pytest.raises(DataError, match="no column sentence"):
        list(read_texts(io.BytesIO(tsv), name="x.tsv", columns=("sentence",)))

    jsonl = b'{"text": "a"}\n\nnot json\n{"text": 3}\n{"q": "x", "text": "b"}\n'
    got = list(read_texts(io.BytesIO(jsonl), name="x.jsonl"))
    assert [(n, t) for n, t, _ in got] == [(1, "a"), (3, None), (4, None), (5, "b")]

    pairs = list(read_texts(io.BytesIO(b"a\tb\nno tab\n"), fmt="lines", columns=("x", "y")))
    assert pairs[0] == (1, ("a", "b"), None) and pairs[1][1] is None


def test_cli_predict_stream_with_awkward_lines(exported: dict[str, Path]) -> None:
    data = b"the cat sat\n\n" + b"dog " * 50 + b"\nzebra \xfe\xff mat\nlast line"
    result = CliRunner().invoke(cli, ["predict", str(exported["single"]), "-", "--threads", "1"],
                                input=data)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r["label"] in ("neg", "pos") for r in records)
    assert "<stdin>:4: not valid UTF-8" in result.stderr
    assert "1 text(s) longer than 6 tokens were truncated" in result.stderr
    assert result.stderr.count("truncated") == 1
    assert "1 empty text(s)" in result.stderr


def test_cli_predict_pairs_tsv_and_embed_outputs(exported: dict[str, Path],
                                                 tmp_path: Path) -> None:
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("text_a\ttext_b\nthe cat\ta dog\nshort\n\t\n", encoding="utf-8")
    out = tmp_path / "p.jsonl"
    r = CliRunner().invoke(cli, ["predict", str(exported["pair"]), str(tsv), "-o", str(out)])
    assert r.exit_code == 0, r.output
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [("label" in x, "error" in x) for x in records] == [(True, False), (False, True),
                                                               (True, False)]
    assert "pairs.tsv:3:" in r.stderr

    texts = tmp_path / "t.jsonl"
    texts.write_text('{"text": "the cat"}\n{"nope": 1}\n{"text": ""}\n')
    npy = tmp_path / "e.npy"
    r = CliRunner().invoke(cli, ["embed", str(exported["single"]), str(texts), "-o", str(npy)])
    assert r.exit_code == 0, r.output
    emb = np.load(npy)
    assert emb.shape == (3, 8) and np.isnan(emb[1]).all() and np.isfinite(emb[[0, 2]]).all()
    js = tmp_path / "e.jsonl"
    r = CliRunner().invoke(cli, ["embed", str(exported["single"]), str(texts), "-o", str(js)])
    rows = [json.loads(x) for x in js.read_text().splitlines()]
    np.testing.assert_allclose(rows[0]["embedding"], emb[0], atol=1e-6)
    r = CliRunner().invoke(cli, ["embed", str(exported["pair"]), str(texts), "-o", str(npy)])
    assert isinstance(r.exception, ModelError)  # pair models embed via their front-end graph


def test_runtime_and_cli_load_no_torch(exported: dict[str, Path], tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from metaprep.runtime.model import Model
        m = Model({str(exported["single"])!r}, threads=1)
        print(m.predict(["the cat sat", ""])[0][0])
        m.embed(["a dog"])
        from metaprep.cli import cli
        r = CliRunner().invoke(cli, ["predict", {str(exported["single"])!r}, "-"], input="cat\\n")
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(cli, ["embed", {str(exported["single"])!r}, "-", "-o",
                                     {str(tmp_path / "e.npy")!r}], input="cat\\n")
        assert r.exit_code == 0, r.output
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("torch", "gensim", "h5py", "onnx", "safetensors", "polars"))
        print("HEAVY", heavy)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert proc.stdout.split()[0] in ("neg", "pos")


def test_onnxruntime_threads_do_not_spin_unless_asked(exported: dict[str, Path]) -> None:
    key = "session.intra_op.allow_spinning"
    for spin, want in ((False, "0"), (True, "1")):
        sess = Model(exported["single"], threads=2, spin=spin)._session("model")
        assert sess.get_session_options().get_session_config_entry(key) == want


def test_unknown_words_map_to_unk(exported: dict[str, Path]) -> None:
    model = Model(exported["single"])
    assert model.encode("the zebra Paris PARIS") == [2, 1, 9, 9]
    assert len(WORDS) == len(model.vocab)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="ab C,.-'\u00e9 \t\n", max_size=60), max_size=8),
       st.integers(1, 5), st.booleans(), st.booleans())
def test_tokenize_many_is_tokenize_cut_at_the_limit(texts: list[str], limit: int, lower: bool,
                                                   spaces: bool) -> None:
    from metaprep.tokenize import Tokenizer, TokenizerConfig

    tok = Tokenizer(TokenizerConfig(mode="whitespace" if spaces else "regex", lowercase=lower))
    long = "word " * (40 * limit)  # over 32 x limit characters: the token-by-token path
    batch = [*texts, long, long.upper()]
    for text in batch:
        assert tok.tokenize_many([text], limit) == [tok.tokenize(text)[:limit]]
    # all at once (huge texts among short ones), and a tuple is a sequence too
    want = [tok.tokenize(t)[:limit] for t in batch]
    assert tok.tokenize_many(batch, limit) == want
    assert tok.tokenize_many(tuple(batch[::-1]), limit) == want[::-1]
    assert tok.tokenize_many([], limit) == []


def test_the_flat_padding_and_the_array_api(exported: dict[str, Path]) -> None:
    from metaprep.runtime import pad_batch, pad_flat

    rows = [[3, 4, 5], [], [7], [8, 9]]
    flat = np.array([i for r in rows for i in r], dtype=np.int64)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    want = np.array([[3, 4, 5], [0, 0, 0], [7, 0, 0], [8, 9, 0]], dtype=np.int64)
    for ids, lens in (pad_flat(flat, lengths), pad_batch(rows)):
        assert ids.dtype == np.int64 and lens.dtype == np.int64
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(lens, [3, 0, 1, 2])
    empty_ids, empty_lens = pad_batch([[], []])  # T >= 1 even when every row is empty
    assert empty_ids.shape == (2, 1) and not empty_ids.any() and list(empty_lens) == [0, 0]
    model = Model(exported["single"])
    texts = sentences(20, seed=5) + [""]
    np.testing.assert_array_equal(model.predict_ids(texts),
                                  np.argmax(model.predict_proba(texts), axis=1))


def test_statistics_are_exact_under_threads(exported: dict[str, Path]) -> None:
    """16 threads sharing one Model: every text, token and unknown word counted once (the
    counts were added without a lock and lost updates)."""
    import dataclasses
    import sys
    import threading

    from metaprep.runtime import RunStats

    texts = ["a fine film zebra", "dull", "", "the cat sat on the mat " * 3] * 4
    model = Model(exported["single"], threads=2, batch_size=4)
    model.predict_proba(texts)
    once = dataclasses.asdict(model.stats)
    model.stats = RunStats()
    calls = 40

    def work() -> None:
        for _ in range(calls):
            model.predict_proba(texts)

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        workers = [threading.Thread(target=work) for _ in range(16)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(before)
    assert dataclasses.asdict(model.stats) == {k: v * 16 * calls for k, v in once.items()}
    assert once["truncated"] == 4 and once["unknown"] >= 4
