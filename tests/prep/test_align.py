from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gensim
import numpy as np
import pytest
from click.testing import CliRunner

from metaprep import stages
from metaprep.cli import cli
from metaprep.errors import ConfigError, FormatError, MetaprepError, VocabError
from metaprep.prep.align import AlignOptions, SourceSpec, align
from metaprep.prep.alignplan import parse_source_args, plan_from_options
from metaprep.prep.readers.base import Chunk
from metaprep.prep.readers.memory import MemorySource
from metaprep.prep.store import Store
from metaprep.prep.vocab import CaseMatcher, pool_vocab
from metaprep.tokenize import TokenizerConfig

GENSIM_DATA = Path(os.path.dirname(gensim.__file__)) / "test" / "test_data"
QUIET = AlignOptions(progress=False)
RNG = np.random.default_rng(0)


def _vecs(n: int, dim: int = 4) -> np.ndarray:
    return RNG.normal(size=(n, dim)).astype(np.float32)


class _Failing(MemorySource):
    """Fails after its first chunk, as a reader meeting a bad line would."""

    def iter_chunks(self, wanted: Any = None) -> Iterator[Chunk]:
        for i, chunk in enumerate(super().iter_chunks(wanted)):
            if i == 1:
                raise FormatError("bad row", path=self.path, line=42)
            yield chunk


def _setup(tmp_path: Path, data: dict[str, tuple[list[str], np.ndarray]], *, chunk: int = 2,
           subwords: dict[str, Any] | None = None, failing: str | None = None,
           **per: dict[str, str]) -> tuple[list[SourceSpec], Any]:
    specs = []
    for name in data:
        path = tmp_path / f"{name}.vec"
        path.write_text(name)
        kw = {k: v[name] for k, v in per.items() if name in v}
        specs.append(SourceSpec(name, path, **kw))
    seen: dict[str, Any] = {}

    def opener(spec: SourceSpec, options: Any) -> MemorySource:
        words, vecs = data[spec.name]
        cls = _Failing if spec.name == failing else MemorySource
        src = cls(words, vecs, path=spec.path, options=options, chunk_size=chunk,
                  subwords=(subwords or {}).get(spec.name))
        seen[spec.name] = src
        return src

    return specs, opener


def _run(tmp_path: Path, data: dict[str, tuple[list[str], np.ndarray]],
         options: AlignOptions = QUIET, **kw: Any) -> Store:
    specs, opener = _setup(tmp_path, data, **kw)
    return Store(align(specs, tmp_path / "out.h5", options, opener=opener))


def _row(store: Store, name: str, word: str) -> np.ndarray:
    return store.read_vectors(name, np.array([store.vocab.index(word)]))[0]


# --- vocabularies --------------------------------------------------------------------------
def test_union_order_values_and_present(tmp_path: Path) -> None:
    a, b = _vecs(3), _vecs(4)
    s = _run(tmp_path, {"a": (["x", "y", "z"], a), "b": (["v", "y", "w", "x"], b)})
    assert s.vocab == ["x", "y", "z", "v", "w"]
    assert s.present("a").tolist() == [True, True, True, False, False]
    assert s.present("b").tolist() == [True, True, False, True, True]
    np.testing.assert_array_equal(s.read_vectors("a")[:3], a)
    np.testing.assert_array_equal(s.read_vectors("b")[[3, 1, 4, 0]], b)  # staged rows in place
    assert not s.read_vectors("a")[3:].any() and not s.read_vectors("b")[2].any()
    assert s.attrs["vocab_mode"] == "union"


def test_intersection_keeps_first_source_order(tmp_path: Path) -> None:
    s = _run(tmp_path, {"a": (["x", "y", "z", "q"], _vecs(4)), "b": (["z", "q", "x"], _vecs(3))},
             AlignOptions(vocab=("intersection",), progress=False))
    assert s.vocab == ["x", "z", "q"]
    assert s.present("a").all() and s.present("b").all()


def test_word_list_vocabulary_reads_only_wanted_rows(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("z\nnew\nx\n")
    a = _vecs(3)
    s = _run(tmp_path, {"a": (["x", "y", "z"], a)},
             AlignOptions(vocab=(str(tmp_path / "words.txt"),), progress=False))
    assert s.vocab == ["z", "new", "x"] and s.attrs["vocab_mode"] == "target"
    assert s.present("a").tolist() == [True, False, True]
    np.testing.assert_array_equal(s.read_vectors("a")[[2, 0]], a[[0, 2]])
    attrs = s.source_attrs("a")
    assert attrs["present_count"] == 2 and attrs["oov_count"] == 1


def test_task_data_vocabulary_counts_and_tokenizer(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("text\tlabel\nthe cat , the dog\tx\nThe end\ty\n")
    (tmp_path / "dev.jsonl").write_text('{"text": "dog dog bird", "label": "z"}\n')
    tok = TokenizerConfig(lowercase=True)
    s = _run(tmp_path, {"a": (["the", "dog"], _vecs(2))},
             AlignOptions(vocab=(str(tmp_path / "train.tsv"), str(tmp_path / "dev.jsonl")),
                          tokenizer=tok, min_count=2, progress=False))
    assert s.vocab == ["the", "dog"]  # the x3, dog x3 (ties: first seen); cat, bird once
    assert s.tokenizer == tok.to_dict()
    (tmp_path / "second").mkdir()
    s2 = _run(tmp_path / "second", {"a": (["the"], _vecs(1))},
              AlignOptions(vocab=(str(tmp_path / "train.tsv"),), max_vocab=2, progress=False))
    assert s2.vocab == ["the", "cat"] and TokenizerConfig.from_dict(s2.tokenizer).lowercase is False


def test_pool_vocab_modes_and_case() -> None:
    def streams() -> list[list[list[str]]]:
        return [[["Paris", "the"]], [["paris"], ["THE", "x"]]]

    assert list(pool_vocab(streams())) == ["Paris", "the", "paris", "THE", "x"]
    assert list(pool_vocab(streams(), max_vocab=2)) == ["Paris", "the"]
    assert list(pool_vocab(streams(), mode="intersection")) == []
    assert list(pool_vocab(streams(), case_policy="lower")) == ["paris", "the", "x"]
    assert list(pool_vocab(streams(), mode="intersection", case_policy="lower")) == [
        "paris", "the"]
    # fallback: kept when every source finds the word through exact/lower/Title/UPPER
    assert pool_vocab(streams(), mode="intersection", case_policy="fallback") == {
        "Paris": 0, "the": 1, "paris": 2, "THE": 3}


def test_growing_union_matcher() -> None:
    m = CaseMatcher.growing_union("exact")
    assert m.match(["a", "b"]) == ([0, 1], [0, 1])
    assert m.match(["c", "a"]) == ([0], [2])  # "a" was matched already by this source
    m.reset()  # the next source
    assert m.match(["b", "d"]) == ([0, 1], [1, 3])
    assert list(m.words) == ["a", "b", "c", "d"] and len(m) == 4
    dup = CaseMatcher.growing_union("exact")
    assert dup.match(["a", "a"]) == ([0], [0]) and list(dup.words) == ["a"]
    low = CaseMatcher.growing_union("lower")
    assert low.match(["Paris", "paris", "X"]) == ([0, 2], [0, 1])  # first match wins
    assert list(low.words) == ["paris", "x"] and low.step_counts() == {"lower": 2}
    with pytest.raises(ValueError, match="exact or lower"):
        CaseMatcher.growing_union("fallback")


# --- case policies -------------------------------------------------------------------------
def test_lower_policy_first_match_wins(tmp_path: Path) -> None:
    v = _vecs(4)
    s = _run(tmp_path, {"a": (["Paris", "paris", "THE", "x"], v)},
             AlignOptions(case="lower", progress=False))
    assert s.vocab == ["paris", "the", "x"]
    np.testing.assert_array_equal(_row(s, "a", "paris"), v[0])
    assert s.source_attrs("a")["case_steps"] == {"lower": 3}
    assert s.case_policy == "lower"


def test_fallback_steps_counted_and_best_step_wins(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("paris\nBerlin\nUSA\nthe\nrome\nnope\n")
    v = _vecs(7)
    words = ["ROME", "Rome", "Paris", "berlin", "USA", "THE", "rome"]
    s = _run(tmp_path, {"a": (words, v)},
             AlignOptions(vocab=(str(tmp_path / "w.txt"),), case="fallback", progress=False))
    steps = s.source_attrs("a")["case_steps"]
    assert steps == {"exact": 2, "lower": 1, "title": 1, "upper": 1}
    np.testing.assert_array_equal(_row(s, "a", "rome"), v[6])  # exact, though read last
    np.testing.assert_array_equal(_row(s, "a", "paris"), v[2])
    np.testing.assert_array_equal(_row(s, "a", "the"), v[5])
    assert s.present("a").tolist() == [True, True, True, True, True, False]


def test_exact_policy_misses_other_cases(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("paris\n")
    s = _run(tmp_path, {"a": (["Paris"], _vecs(1))},
             AlignOptions(vocab=(str(tmp_path / "w.txt"),), progress=False))
    assert not s.present("a").any()


# --- normalisation, dtype, stats -----------------------------------------------------------
def test_normalize_l2_and_center(tmp_path: Path) -> None:
    a, b = _vecs(50) * 3 + 5, _vecs(40)
    s = _run(tmp_path, {"a": ([f"w{i}" for i in range(50)], a),
                        "b": ([f"w{i}" for i in range(10, 50)], b)},
             normalize={"a": "center", "b": "l2"}, oov={"b": "mean"})
    got_a, got_b = s.read_vectors("a"), s.read_vectors("b")
    centred = a - a.mean(0)
    np.testing.assert_allclose(got_a, centred / np.linalg.norm(centred, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got_b[10:], axis=1), 1.0, rtol=1e-6)
    mean_of_normalised = (b / np.linalg.norm(b, axis=1, keepdims=True)).mean(0)
    np.testing.assert_allclose(got_b[:10], np.tile(mean_of_normalised, (10, 1)), atol=1e-6)
    assert s.source_attrs("a")["normalize"] == "center"


def test_float16_and_source_stats(tmp_path: Path) -> None:
    a = _vecs(5)
    s = _run(tmp_path, {"a": (["x", "y", "x", "z", "y"], a)},
             AlignOptions(dtype="float16", progress=False))
    assert s.vectors("a").dtype == np.float16
    np.testing.assert_allclose(s.read_vectors("a"), a[[0, 1, 3]], rtol=1e-3, atol=1e-3)
    attrs = s.source_attrs("a")
    assert (attrs["rows_read"], attrs["duplicates"], attrs["dim"]) == (5, 2, 4)
    assert len(attrs["sha256"]) == 64 and attrs["format"] == "memory"


def test_float16_overflow_is_an_error(tmp_path: Path) -> None:
    _expect(tmp_path, ConfigError, "do not fit float16",
            data={"a": (["x"], np.array([[1e6, 0.0]], dtype=np.float32))},
            options=AlignOptions(dtype="float16", progress=False))


def test_limit_rows_per_source(tmp_path: Path) -> None:
    s = _run(tmp_path, {"a": (["x", "y", "z"], _vecs(3)), "b": (["z", "q"], _vecs(2))},
             AlignOptions(limit=1, progress=False))
    assert s.vocab == ["x", "z"]


# --- OOV strategies through align ----------------------------------------------------------
def test_random_oov_reproducible_with_seed(tmp_path: Path) -> None:
    data = {"a": ([f"w{i}" for i in range(200)], _vecs(200)),
            "b": ([f"w{i}" for i in range(100)], _vecs(100) * 4 + 1)}
    outs = []
    for seed in (3, 3, 4):
        d = tmp_path / f"r{len(outs)}"
        d.mkdir()
        outs.append(_run(d, data, AlignOptions(seed=seed, progress=False),
                         oov={"b": "random"}).read_vectors("b"))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0][100:], outs[2][100:])
    np.testing.assert_array_equal(outs[0][:100], outs[2][:100])
    assert abs(outs[0][100:].mean() - data["b"][1].mean()) < 0.5


def test_map_oov_through_align(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(400)]
    a = _vecs(400, 6)
    b = a @ RNG.normal(size=(6, 3)).astype(np.float32)
    s = _run(tmp_path, {"a": (words, a), "b": (words[:300], b[:300])}, oov={"b": "map:a"})
    fit = s.source_attrs("b")["map_fit"]
    assert fit["r2"] > 0.999 and fit["from"] == ["a"]
    assert s.source_attrs("b")["oov_filled"] == {"map": 100}
    np.testing.assert_allclose(s.read_vectors("b")[300:], b[300:], atol=1e-3)
    assert not s.present("b")[300:].any()  # mapped rows are not present
    assert s.derived("b")[300:].all() and not s.derived("b")[:300].any()


def test_subword_oov_rows_are_not_present(tmp_path: Path) -> None:
    compose = {"ft": lambda words: np.array([[len(w), 1.0] for w in words])}
    s = _run(tmp_path, {"a": (["x", "longer"], _vecs(2, 2)), "ft": (["x"], _vecs(1, 2))},
             subwords=compose, oov={"ft": "subword"})
    assert s.present("ft").tolist() == [True, False]
    np.testing.assert_array_equal(s.read_vectors("ft")[1], [6.0, 1.0])
    assert s.source_attrs("ft")["oov_filled"] == {"subword": 1}
    assert s.derived("ft").tolist() == [False, True]  # composed from the word: informative
    assert not s.derived("a").any()


# --- bad input -----------------------------------------------------------------------------
def _expect(tmp_path: Path, err: type[MetaprepError], match: str, data: Any = None,
            options: AlignOptions = QUIET, **kw: Any) -> MetaprepError:
    data = data or {"a": (["x", "y"], _vecs(2)), "b": (["y"], _vecs(1))}
    specs, opener = _setup(tmp_path, data, **kw)
    with pytest.raises(err, match=match) as info:
        align(specs, tmp_path / "out.h5", options, opener=opener)
    assert not (tmp_path / "out.h5").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.h5")]
    return info.value


def test_bad_input_is_typed_and_leaves_no_output(tmp_path: Path) -> None:
    _expect(tmp_path, ConfigError, "no other source named 'c'", oov={"a": "map:c"})
    _expect(tmp_path, ConfigError, "unknown OOV strategy", oov={"a": "median"})
    _expect(tmp_path, ConfigError, "no subword information", oov={"a": "subword"})
    e = _expect(tmp_path, VocabError, "no such vocabulary file",
                options=AlignOptions(vocab=(str(tmp_path / "missing.txt"),), progress=False))
    assert e.path and e.path.endswith("missing.txt")
    (tmp_path / "bad.tsv").write_text("sentence\tlabel\nx\ty\n")
    e = _expect(tmp_path, MetaprepError, "missing column",
                options=AlignOptions(vocab=(str(tmp_path / "bad.tsv"),), progress=False))
    assert e.line == 1
    _expect(tmp_path, VocabError, "intersection vocabulary is empty",
            data={"a": (["x"], _vecs(1)), "b": (["y"], _vecs(1))},
            options=AlignOptions(vocab=("intersection",), progress=False))
    _expect(tmp_path, ConfigError, "--min-count applies to task data",
            options=AlignOptions(vocab=(str(tmp_path / "a.vec"),), min_count=2, progress=False))
    _expect(tmp_path, ConfigError, "cannot be combined",
            options=AlignOptions(vocab=("union", str(tmp_path / "a.vec")), progress=False))
    _expect(tmp_path, ConfigError, "--case must be one of",
            options=AlignOptions(case="upper", progress=False))
    # a NUL in a word used to be a traceback: streamed, the source file is named
    nul = {"a": (["x\x00y", "z"], _vecs(2)), "b": (["x\x00y"], _vecs(1))}
    e = _expect(tmp_path, FormatError, r"the word 'x\\x00y' holds a NUL character", data=nul,
                options=AlignOptions(vocab=("union",), progress=False))
    assert e.path and e.path.endswith("a.vec")
    _expect(tmp_path, VocabError, r"the word 'x\\x00y' .* holds a NUL character", data=nul,
            options=AlignOptions(vocab=("intersection",), progress=False))


def test_odd_align_options_are_one_config_error(tmp_path: Path) -> None:
    for pattern, message in [("(?:a+)+$", "has nested repetition"),  # would never end
                             (r"(\w+)( )", "has 2 capture group")]:  # tuples, a traceback
        with pytest.raises(ConfigError, match=re.escape(f"--token-pattern {pattern!r} ")
                           + message):
            plan_from_options(stages.AlignOptions(sources={"a": "a.vec"}, token_pattern=pattern))
    for seed in (-5, 2**70):  # numpy refuses a negative seed; HDF5 one past int64
        _expect(tmp_path, ConfigError, f"--seed must be a whole number from 0 to "
                f"9,223,372,036,854,775,807, not {seed}",
                options=AlignOptions(seed=seed, progress=False), oov={"a": "random"})
    with pytest.raises(ConfigError, match="source 'g' has no path"):  # was "the output sits
        plan_from_options(stages.AlignOptions(sources={"g": ""}))  # inside the input (.)"
    with pytest.raises(ConfigError, match="source 'g' has no path"):
        parse_source_args(["g="])
    os.mkfifo(tmp_path / "fifo.txt")  # was "no such vocabulary file"
    _expect(tmp_path, VocabError, "the vocabulary file is not a regular file",
            options=AlignOptions(vocab=(str(tmp_path / "fifo.txt"),), progress=False))


def test_l2_rows_near_the_float32_limits_keep_their_direction(tmp_path: Path) -> None:
    """Their squares overflowed (or vanished) in float32: present rows became all zeros."""
    vecs = np.array([[1e20, 1e20, 0, 0], [1e-30, 0, 0, 1e-30], [3e38, 0, 0, 0]], np.float32)
    s = _run(tmp_path, {"a": (["big", "tiny", "max"], vecs)},
             options=AlignOptions(progress=False), normalize={"a": "l2"})
    root = np.float32(np.sqrt(0.5))
    np.testing.assert_allclose(s.read_vectors("a"), [[root, root, 0, 0], [root, 0, 0, root],
                                                     [1, 0, 0, 0]], rtol=1e-6)


@pytest.mark.parametrize(("dtype", "value"), [("float32", 3e38), ("float16", 60_000.0)])
@pytest.mark.filterwarnings("error")  # numpy's overflow warnings no longer precede the error
def test_oov_rows_that_overflow_are_never_stored(tmp_path: Path, dtype: str, value: float
                                                 ) -> None:
    """Random OOV rows drawn around values near the limit were written as inf: align renamed a
    store into place that then failed to open."""
    (tmp_path / "out.h5").write_bytes(b"previous store")
    huge = np.array([[value, 0], [-value, 1], [value, 2], [-value, 3]], np.float32)
    others = [f"o{i}" for i in range(40)]  # a's OOV rows: drawn with a std of about value
    data = {"a": (["w", "x", "y", "z"], huge), "b": (["w", *others], _vecs(41, 2))}
    specs, opener = _setup(tmp_path, data, oov={"a": "random"})
    with pytest.raises(FormatError, match=r"filling its OOV rows \(random\) gives NaN or "
                                          r"infinite values \(first for 'o") as info:
        align(specs, tmp_path / "out.h5", AlignOptions(dtype=dtype, progress=False),
              opener=opener)
    assert info.value.path == str(tmp_path / "a.vec")
    assert (tmp_path / "out.h5").read_bytes() == b"previous store"


def test_failure_midway_leaves_previous_output_untouched(tmp_path: Path) -> None:
    (tmp_path / "out.h5").write_bytes(b"previous store")
    specs, opener = _setup(tmp_path, {"a": ([f"w{i}" for i in range(10)], _vecs(10)),
                                      "b": ([f"w{i}" for i in range(9, 0, -1)], _vecs(9))},
                           failing="b")
    with pytest.raises(FormatError, match="line|bad row") as info:
        align(specs, tmp_path / "out.h5", QUIET, opener=opener)
    assert info.value.line == 42
    assert (tmp_path / "out.h5").read_bytes() == b"previous store"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vec", "b.vec", "out.h5"]


def test_source_arguments() -> None:
    assert parse_source_args(["glove=/x/a.txt", "/y/crawl-300d.vec"]) == [
        ("glove", Path("/x/a.txt")), ("crawl-300d", Path("/y/crawl-300d.vec"))]
    with pytest.raises(ConfigError, match="given twice"):
        parse_source_args(["a=/x/1.txt", "/y/a.vec"])
    with pytest.raises(ConfigError, match="must be one folder name"):
        parse_source_args(["/x/my vectors.txt"])
    # a bad NAME in NAME=PATH is named as such (it was taken for a missing file's path)
    for bad in ("my glove", "a" * 240, ".hidden"):
        with pytest.raises(ConfigError, match=r"source name \(NAME=PATH\) .* must be one folder"):
            parse_source_args([f"{bad}=/x/a.txt"])
    assert parse_source_args(["/x/a=b/c.vec"]) == [("c", Path("/x/a=b/c.vec"))]  # a path with =


def test_missing_or_directory_source(tmp_path: Path) -> None:
    for path, msg in ((tmp_path / "none.vec", "no such embedding file"), (tmp_path, "not a file")):
        with pytest.raises(ConfigError, match=msg) as info:
            align([SourceSpec("a", path)], tmp_path / "o.h5", QUIET)
        assert info.value.path == str(path)
    assert not (tmp_path / "o.h5").exists()


# --- the command on gensim's real files ----------------------------------------------------
def test_cli_text_sources_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(cli, [
        "align", f"glove={GENSIM_DATA / 'test_glove.txt'}",
        f"ft={GENSIM_DATA / 'lee_fasttext.vec'}",
        "--oov", "glove=map:ft", "--oov-default", "mean", "--case", "fallback", "--normalize",
        "l2", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "map fit glove <- ft" in res.output and "overlap" in res.output
    with Store(out) as s:
        assert s.sources == ["glove", "ft"] and s.vocab[0] == "the"
        assert s.source_attrs("glove")["rows_read"] == 76
        assert s.source_attrs("ft")["rows_read"] == 1762
        assert s.source_attrs("ft")["oov"] == "mean"
        assert s.attrs["command"]["params"]["oov_default"] == "mean"
        present = s.present("glove")
        np.testing.assert_allclose(np.linalg.norm(s.read_vectors("glove")[present], axis=1), 1,
                                   rtol=1e-5)


def test_cli_error_exit_status_and_no_output(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    glove = GENSIM_DATA / "test_glove.txt"
    res = CliRunner().invoke(cli, ["align", f"g={glove}", "--oov", "nope=mean", "-o", str(out)])
    assert isinstance(res.exception, ConfigError) and "no source named 'nope'" in str(
        res.exception)
    proc = subprocess.run(
        [sys.executable, "-m", "metaprep", "align", f"g={glove}", "--vocab",
         str(tmp_path / "none.txt"), "-q", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "none.txt" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_cli_binary_and_fasttext_subword(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(cli, [
        "align", f"w2v={GENSIM_DATA / 'euclidean_vectors.bin'}",
        f"ft={GENSIM_DATA / 'lee_fasttext.bin'}", f"glove={GENSIM_DATA / 'test_glove.txt'}",
        "--oov", "ft=subword", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with Store(out) as s:
        ft_present = s.present("ft")
        assert not ft_present.all()
        filled = s.read_vectors("ft")[~ft_present]
        assert np.linalg.norm(filled, axis=1).min() > 0  # composed from n-grams, not zeros
        assert s.source_attrs("ft")["oov_filled"] == {"subword": int((~ft_present).sum())}
        assert s.source_attrs("w2v")["format"] == "word2vec-binary"


def test_cli_task_data_vocabulary_latin1(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    cor = GENSIM_DATA / "pang_lee_polarity.cor"
    args = ["align", f"glove={GENSIM_DATA / 'test_glove.txt'}", "--vocab", str(cor),
            "--lowercase", "--min-count", "3", "--case", "lower", "-q", "-o", str(out)]
    res = CliRunner().invoke(cli, args)
    assert isinstance(res.exception, MetaprepError) and "latin-1" in str(res.exception)
    res = CliRunner().invoke(cli, [*args, "--data-encoding", "latin-1"])
    assert res.exit_code == 0, res.output
    with Store(out) as s:
        assert s.attrs["vocab_mode"] == "target" and s.tokenizer["lowercase"] is True
        assert s.vocab[:3] == [".", "the", ","]  # most frequent first
        assert "__label__neg" not in s.vocab and "__label__pos" not in s.vocab
        assert 0 < s.source_attrs("glove")["present_count"] < s.vocab_size


def test_cli_matrix_sources_with_vocab_file_and_tensor(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    m = RNG.normal(size=(3, 4)).astype(np.float32)
    np.save(tmp_path / "m.npy", m)
    (tmp_path / "words.list").write_text("the\ncat\nsat\n")
    save_file({"emb": m[::-1].copy(), "other": np.zeros((1, 2), np.float32)},
              str(tmp_path / "t.safetensors"))
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(cli, [
        "align", f"m={tmp_path / 'm.npy'}", f"t={tmp_path / 't.safetensors'}",
        "--vocab-file", f"m={tmp_path / 'words.list'}", "--vocab-file",
        f"t={tmp_path / 'words.list'}", "--tensor", "t=emb", "--format", "m=npy", "-q",
        "-o", str(out)])
    assert res.exit_code == 0, res.output
    with Store(out) as s:
        assert s.vocab == ["the", "cat", "sat"]
        np.testing.assert_array_equal(s.read_vectors("m"), m)
        np.testing.assert_array_equal(s.read_vectors("t"), m[::-1])
        assert s.source_attrs("t")["tensor"] == "emb"
        assert s.source_attrs("m")["vocab_file"].endswith("words.list")


@pytest.mark.parametrize("filler", [3, 400])  # few wanted rows (piece path), many (streamed)
def test_lower_policy_matches_capitalised_words_in_text_files(tmp_path: Path, filler: int
                                                              ) -> None:
    rows = ["Paris 1 2", "the 3 4", "\u00c9cole 5 6", "BERLIN 7 8"]
    rows += [f"w{i} {i} 1" for i in range(filler)]
    src = tmp_path / "src.txt"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    words = tmp_path / "words.txt"
    words.write_text("paris\nthe\n\u00e9cole\nberlin\nw1\nw2\n", encoding="utf-8")
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(cli, ["align", f"g={src}", "--vocab", str(words), "--case", "lower",
                                   "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with Store(out) as s:
        got = dict(zip(s.vocab, s.read_vectors("g").tolist(), strict=True))
        assert s.present("g").all()
    assert got["paris"] == [1, 2] and got["\u00e9cole"] == [5, 6] and got["berlin"] == [7, 8]


@pytest.mark.parametrize("case", ["exact", "lower"])
def test_union_grown_while_streaming_equals_the_words_pass_union(tmp_path: Path, case: str
                                                                 ) -> None:
    """A plain union is built while the vectors stream (no words-only pass); a --max-vocab
    larger than any source still takes the words pass: both give the same store."""
    specs = [SourceSpec("glove", GENSIM_DATA / "test_glove.txt"),
             SourceSpec("vec", GENSIM_DATA / "lee_fasttext.vec", oov="mean"),
             SourceSpec("w2v", GENSIM_DATA / "euclidean_vectors.bin", oov="map:vec")]
    stores = [Store(align(specs, tmp_path / f"{n}.h5",
                          AlignOptions(case=case, max_vocab=n, progress=False)))
              for n in (None, 10**6)]
    grown, pooled = stores
    assert grown.vocab == pooled.vocab and len(grown.vocab) > 1800
    for s in specs:
        np.testing.assert_array_equal(grown.present(s.name), pooled.present(s.name))
        np.testing.assert_array_equal(grown.read_vectors(s.name), pooled.read_vectors(s.name))
        assert grown.source_attrs(s.name) == pooled.source_attrs(s.name)
    assert grown.attrs["vocab_size"] == len(grown.vocab)
    # the first was grown (resizable datasets), the second sized from the words pass
    assert grown.vectors("glove").maxshape[0] is None
    assert pooled.vectors("glove").maxshape[0] == len(pooled.vocab)


def test_grown_union_leaves_out_words_whose_only_row_was_skipped(tmp_path: Path) -> None:
    """Under --on-bad-line skip a bad row's word is in no source, so not in a grown union (the
    words-only pass, which does not parse numbers, used to add it as an OOV row)."""
    src = tmp_path / "g.txt"
    src.write_text("a 1 2\nb 1 x\nc 3 4\n")
    out = align([SourceSpec("g", src)], tmp_path / "s.h5",
                AlignOptions(on_bad_line="skip", progress=False))
    with Store(out) as s:
        assert s.vocab == ["a", "c"] and s.present("g").all()
        assert s.source_attrs("g")["bad_lines"] == 1
