"""Model.predict's per-row probabilities: a read-only view that behaves as the dict it replaced."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Mapping

import numpy as np
import pytest

from metaprep.runtime.probabilities import Probabilities

LABELS = ["neg", "pos", "mixed"]
INDEX = {label: j for j, label in enumerate(LABELS)}


def _row(values: list[float]) -> Probabilities:
    return Probabilities(np.asarray(values, dtype=np.float32), INDEX)


def test_reads_like_the_dict_of_its_row() -> None:
    matrix = np.asarray([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    p = Probabilities(matrix[0], INDEX)
    want = dict(zip(LABELS, matrix[0].tolist(), strict=True))
    assert isinstance(p, Mapping) and len(p) == 3 and list(p) == LABELS
    assert p["pos"] == want["pos"] and type(p["pos"]) is float
    assert p.get("nope") is None and p.get("neg") == want["neg"]
    assert "mixed" in p and "nope" not in p and 1 not in p
    assert list(p.items()) == list(want.items()) and list(p.values()) == list(want.values())
    assert max(p, key=p.__getitem__) == "pos"
    assert p == want and want == p and dict(p) == want and p.to_dict() == want
    assert p != {**want, "pos": 0.0} and p != Probabilities(matrix[1], INDEX)
    assert p != [0.1, 0.7, 0.2] and p != "x"
    with pytest.raises(KeyError):
        p["nope"]
    assert repr(p) == repr(want)


def test_is_read_only_and_unhashable_as_a_dict() -> None:
    p = _row([0.2, 0.3, 0.5])
    with pytest.raises(TypeError):
        p["neg"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(p)
    with pytest.raises(AttributeError):
        p.extra = 1  # type: ignore[attr-defined]


def test_copies_pickles_and_json_as_a_plain_dict() -> None:
    p = _row([0.2, 0.3, 0.5])
    for other in (pickle.loads(pickle.dumps(p)), copy.copy(p), copy.deepcopy(p)):
        assert type(other) is dict and other == p
    assert json.loads(json.dumps(p.to_dict())) == p
    with pytest.raises(TypeError):
        json.dumps(p)  # a Mapping, not a dict: the docs say to copy it first
