from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metaprep.errors import DataError
from metaprep.ids import PAD_ID, UNK_ID
from metaprep.learn.data import (
    LabelMap,
    TextEncoder,
    bucket_batches,
    collate,
    load_task,
    shard_batches,
    token_counts,
)
from metaprep.prep.store import Store, StoreWriter
from metaprep.tokenize import TokenizerConfig

POS = ["good", "great", "fine", "nice", "superb", "lovely"]
NEG = ["bad", "awful", "poor", "nasty", "dire", "grim"]
NEUTRAL = ["the", "a", "film", "plot", "was", "is", "very", "quite", "actor", "story", "and",
           "it", "this", "scene", "music", "end"]
VOCAB = POS + NEG + NEUTRAL + ["rare"]


def make_store(path: Path, *, seed: int = 0, dims: tuple[int, int] = (6, 4)) -> Path:
    """Two sources over VOCAB: 'a' misses a few sentiment words, 'b' misses others; the
    sentiment is readable from either source's first coordinate."""
    rng = np.random.default_rng(seed)
    with StoreWriter(path, VOCAB, attrs={"case_policy": "lower", "tokenizer": {}}) as w:
        for name, dim, missing in (("a", dims[0], {"great", "awful", "rare"}),
                                   ("b", dims[1], {"fine", "poor", "the"})):
            w.add_source(name, dim)
            vec = rng.normal(0, 0.3, (len(VOCAB), dim)).astype(np.float32)
            for i, word in enumerate(VOCAB):
                vec[i, 0] += 1.0 if word in POS else -1.0 if word in NEG else 0.0
            mask = np.array([wd not in missing for wd in VOCAB])
            vec[~mask] = 0
            w.write_block(name, 0, vec)
            w.set_present(name, mask)
    return path


def sentences(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = "pos" if rng.random() < 0.5 else "neg"
        words = list(rng.choice(NEUTRAL, size=rng.integers(2, 8)))
        cue = str(rng.choice(POS if label == "pos" else NEG))
        words.insert(int(rng.integers(0, len(words))), cue)
        if rng.random() < 0.2:
            words.append("Unheard")  # in no source: the UNK vector
        out.append((" ".join(words), label))
    return out


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows), encoding="utf-8")
    return path


def make_task(tmp_path: Path, *, n_train: int = 48, n_dev: int = 24) -> dict[str, Path]:
    return {
        "store": make_store(tmp_path / "store.h5"),
        "train": write_tsv(tmp_path / "train.tsv", sentences(n_train, 1)),
        "dev": write_tsv(tmp_path / "dev.tsv", sentences(n_dev, 2)),
        "test": write_tsv(tmp_path / "test.tsv", sentences(n_dev, 3)),
    }


def encoder_for(store_path: Path) -> TextEncoder:
    with Store(store_path) as st:
        return TextEncoder.from_store(st)


# --- tests --------------------------------------------------------------------------------------
def test_load_task_maps_tokens_and_labels(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    enc = encoder_for(task["store"])
    data, labels = load_task(task["train"], enc, progress=False)
    assert labels.labels == ["neg", "pos"]
    assert len(data) == 48 and not data.pair
    assert enc.encode("GOOD film Unheard") == [2 + VOCAB.index("good"), 2 + VOCAB.index("film"),
                                               UNK_ID]
    counts = token_counts(data)
    assert counts[UNK_ID] == sum(e.ids.count(UNK_ID) for e in data.examples) > 0


def test_unknown_label_in_dev_names_file_and_line(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    enc = encoder_for(task["store"])
    bad = write_tsv(tmp_path / "dev_bad.tsv", [("good film", "pos"), ("bad film", "meh")])
    with pytest.raises(DataError, match=r"dev_bad\.tsv:3: label 'meh'"):
        load_task(bad, enc, labels=LabelMap(["neg", "pos"]), progress=False)


def test_empty_text_and_wrong_columns_are_data_errors(tmp_path: Path) -> None:
    enc = encoder_for(make_store(tmp_path / "s.h5"))
    empty = write_tsv(tmp_path / "e.tsv", [("good", "pos"), ("  ,", "neg"), ("", "neg")])
    # "," is one token, so line 3 ("  ,") passes; line 4 has no tokens at all
    with pytest.raises(DataError, match=r"e\.tsv:4: empty text"):
        load_task(empty, enc, progress=False)
    cols = tmp_path / "c.tsv"
    cols.write_text("sentence\tlabel\ngood\tpos\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.tsv:1: missing column"):
        load_task(cols, enc, progress=False)
    one = write_tsv(tmp_path / "one.tsv", [("good", "pos"), ("fine", "pos")])
    with pytest.raises(DataError, match="only one label"):
        load_task(one, enc, progress=False)


def test_pairs_from_jsonl(tmp_path: Path) -> None:
    enc = encoder_for(make_store(tmp_path / "s.h5"))
    path = tmp_path / "p.jsonl"
    rows = [{"text_a": "good film", "text_b": "the plot", "label": "yes"},
            {"text_a": "a", "text_b": "bad bad story", "label": "no"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data, labels = load_task(path, enc, progress=False)
    assert data.pair and labels.labels == ["no", "yes"]
    batch = collate(data, np.array([0, 1]))
    assert batch.ids_b is not None and batch.lengths_b is not None
    assert batch.lengths_b.tolist() == [2, 3]
    assert batch.ids[1].tolist() == [2 + VOCAB.index("a"), PAD_ID]


def test_bucket_batches_cover_everything_and_are_reproducible() -> None:
    lengths = np.random.default_rng(0).integers(1, 30, size=103)
    a = bucket_batches(lengths, 10, seed=5, epoch=2)
    b = bucket_batches(lengths, 10, seed=5, epoch=2)
    c = bucket_batches(lengths, 10, seed=5, epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(103))
    # similar lengths together: within a batch the spread is small compared with the data's
    spread = np.mean([np.ptp(lengths[x]) for x in a])
    assert spread < np.ptp(lengths) / 3
    # evaluation order: sorted, no seed
    plain = bucket_batches(lengths, 10)
    assert np.all(np.diff(lengths[np.concatenate(plain)]) >= 0)


def test_shard_batches_even_split() -> None:
    batches = [np.array([i]) for i in range(5)]
    r0, r1 = shard_batches(batches, 0, 2), shard_batches(batches, 1, 2)
    assert len(r0) == len(r1) == 3
    assert sorted(int(b[0]) for b in r0 + r1) == [0, 0, 1, 2, 3, 4]  # one batch repeated
    assert shard_batches(batches, 0, 1) == batches


def test_tokenizer_from_store(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with StoreWriter(path, ["x"], attrs={"tokenizer": {"mode": "whitespace"}}) as w:
        w.add_source("a", 2)
    enc = encoder_for(path)
    assert enc.tokenizer.config == TokenizerConfig(mode="whitespace")
    assert enc.tokens("x, y") == ["x,", "y"]


def test_examples_times_labels_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A label column that is really an id column (every example its own label): a 490 KB
    train file of 20,000 examples made (20,000 x 20,000) tables and died in a MemoryError."""
    import metaprep.learn.data as data_module
    from metaprep.learn.data import load_labelsets

    monkeypatch.setattr(data_module, "MAX_CELLS", 30)
    enc = encoder_for(make_store(tmp_path / "s.h5"))
    ids = write_tsv(tmp_path / "ids.tsv", [(f"good film {i}", f"id{i}") for i in range(6)])
    for load in (load_task, load_labelsets):
        with pytest.raises(DataError, match=r"6 examples x 6 labels is more than the 30 scores"
                           ) as err:
            load(ids, enc, progress=False)
        assert err.value.path == str(ids) and "--label-column" in str(err.value)
    few = write_tsv(tmp_path / "few.tsv", [(f"good film {i}", f"l{i % 5}") for i in range(6)])
    assert len(load_task(few, enc, progress=False)[1]) == 5  # 6 x 5 fits
