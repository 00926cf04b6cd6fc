"""Encoded examples in flat arrays (learn/rows.py): they read back as the examples given, one
at a time, in slices and from the end; a task's arrays hold 4 bytes a token and 24 an example;
batches and lengths come from them as from the lists."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from metaprep.learn.data import TaskData, collate, token_counts
from metaprep.learn.rows import Example, ExampleRows


def _examples(n: int, pair: bool, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)

    def ids() -> list[int]:
        return [rng.randrange(2, 50_000) for _ in range(rng.randint(1, 30))]

    return [Example(ids(), ids() if pair else None, rng.randrange(3), 2 + k) for k in range(n)]


@pytest.mark.parametrize("pair", [False, True])
def test_rows_read_back_as_the_examples_given(pair: bool) -> None:
    given = _examples(200, pair)
    rows = ExampleRows.of(given)
    assert len(rows) == len(given) and list(rows) == given
    assert rows[-1] == given[-1] and rows[10:13] == given[10:13] and rows[::50] == given[::50]
    with pytest.raises(IndexError):
        rows[200]
    with pytest.raises(IndexError):
        rows[-201]
    tokens = sum(len(e.ids) + len(e.ids_b or ()) for e in given)
    held = sum(a.nbytes for side in rows.sides for a in side) + rows.labels.nbytes \
        + rows.lines.nbytes
    assert held <= 4 * tokens + (8 * len(rows.sides) + 16) * (len(given) + 1)


@pytest.mark.parametrize("pair", [False, True])
def test_batches_lengths_and_counts_are_the_lists(pair: bool) -> None:
    given = _examples(120, pair, seed=1)
    data = TaskData(Path("t.tsv"), given, pair)  # a list given: packed
    assert isinstance(data.examples, ExampleRows)
    want = [max(len(e.ids), len(e.ids_b or ())) for e in given]
    np.testing.assert_array_equal(data.lengths(), want)
    index = np.array([5, 0, 119, 64])
    batch = collate(data, index)
    for row, i in enumerate(index.tolist()):
        e = given[i]
        assert batch.ids[row, : len(e.ids)].tolist() == e.ids and batch.lengths[row] == len(e.ids)
        assert int(batch.ids[row, len(e.ids):].abs().sum()) == 0  # padding
        if pair:
            assert batch.ids_b is not None and batch.ids_b[row, : len(e.ids_b or ())].tolist() \
                == e.ids_b
        assert int(batch.labels[row]) == e.label
    assert batch.ids.dtype == batch.labels.dtype == batch.lengths.dtype  # int64, as torch wants
    counts = token_counts(data)
    for e in given[:10]:
        for t in e.ids:
            assert counts[t] == sum(x.ids.count(t) + (x.ids_b or []).count(t) for x in given)
