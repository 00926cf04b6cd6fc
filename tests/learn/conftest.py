"""Fixtures of the learn tests: a small task, and an ensemble of two SMALL models trained on it
(each module that asks gets its own)."""

from __future__ import annotations

from pathlib import Path

import pytest
from exportkit import SMALL, small_task, train_options

from metaprep import stages


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return small_task(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ens") / "ens"
    stages.train(train_options(**data, output=out, members=2, seed=7, **SMALL))
    return out
