"""runtime/ray.py on a local Ray of 2 CPUs with a pool of 2 actors: predictions equal Model's for
every row, each actor loads the Model once, and an actor killed mid-job loses and duplicates no
row. Skips, saying why, where ray[data] is missing."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from enginekit import engine_model, engine_texts, killing_the_stalled, ray_init, ray_missing

from metaprep.runtime.model import Model

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(ray_missing() is not None, reason=str(ray_missing()))]

BLOCKS = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return engine_model(tmp_path_factory.mktemp("ray-model"))


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray_init(2)
    yield
    ray.shutdown()


def _dataset(texts: list[str | None]) -> Any:
    import ray.data

    return ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)],
                               override_num_blocks=BLOCKS)


def _check_rows(rows: list[dict[str, Any]], texts: list[str | None], model: Model) -> None:
    """Every id once, and each row's outputs those of Model.predict on its text."""
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == len(texts) and sorted(ids) == list(range(len(texts)))
    by_id = {int(r["id"]): r for r in rows}
    kept = [i for i, t in enumerate(texts) if t is not None]
    for i, (label, probs) in zip(kept, model.predict([texts[i] for i in kept]), strict=True):
        assert by_id[i]["label"] == label, i
        np.testing.assert_allclose(by_id[i]["probabilities"], [probs[k] for k in model.labels],
                                   rtol=1e-6, atol=1e-7)
        assert by_id[i]["probability"] == pytest.approx(probs[label], rel=1e-6)
    for i in set(range(len(texts))) - set(kept):
        assert by_id[i]["label"] is None and np.isnan(by_id[i]["probability"])


def _loads(log: Path) -> Counter[str]:
    """Scorers built per actor pid (not counting the one predict_dataset opens here to check)."""
    return Counter(pid for p in log.glob("load-*")
                   if (pid := p.name.split("-")[1]) != str(os.getpid()))


def _logged_scorer(log: str, stall: bool, wait_for: int = 0) -> type:
    """A Scorer that records (in the actor) each construction and call with the actor's pid;
    with ``stall``, the first call of the first actor writes a marker and waits to be killed;
    with ``wait_for``, a call waits (up to a minute) until that many actors have started, so
    a busy machine cannot finish the job on the first actor alone."""
    from metaprep.runtime.ray import Scorer

    class LoggedScorer(Scorer):  # defined here: Ray pickles it by value
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            import uuid

            Path(log, f"load-{os.getpid()}-{uuid.uuid4().hex}").touch()
            super().__init__(*args, **kwargs)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            import time
            import uuid

            pid = os.getpid()
            Path(log, f"call-{pid}-{uuid.uuid4().hex}").touch()
            end = time.monotonic() + 60
            while len(list(Path(log).glob("load-*"))) < wait_for and time.monotonic() < end:
                time.sleep(0.1)
            if stall and not Path(log, "killed").exists():
                Path(log, f"stalled-{pid}").touch()
                end = time.monotonic() + 120
                while time.monotonic() < end:  # until killed
                    time.sleep(0.2)
            return super().__call__(batch)

    return LoggedScorer


def test_predictions_equal_model_predict(ray_cluster: None, model_dir: Path,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """Every row as Model.predict gives it, through an actor pool of 2 whose actors each
    construct one Scorer (one Model) and score many batches with it."""
    import metaprep.runtime.ray as mray

    # the driver's check opens one Scorer here, then each of the two actors one
    monkeypatch.setattr(mray, "Scorer", _logged_scorer(str(tmp_path), stall=False,
                                                       wait_for=3))
    texts: list[str | None] = [*engine_texts(300), None]
    ds = mray.predict_dataset(_dataset(texts), model_dir, actors=2, batch_size=16,
                              outputs=("label", "probability", "probabilities", "embedding"))
    rows = ds.take_all()
    model = Model(model_dir, threads=1)
    _check_rows(rows, texts, model)
    by_id = {int(r["id"]): r["embedding"] for r in rows}
    np.testing.assert_allclose([by_id[i] for i in range(10)], model.embed(texts[:10]),  # type: ignore[arg-type]
                               rtol=1e-5, atol=1e-6)
    loads = _loads(tmp_path)
    calls = Counter(p.name.split("-")[1] for p in tmp_path.glob("call-*"))
    assert len(loads) == 2 and all(n == 1 for n in loads.values()), loads  # 2 actors, 1 each
    assert set(calls) <= set(loads) and sum(calls.values()) >= len(texts) // 16


def test_actor_killed_mid_job_loses_and_duplicates_no_row(ray_cluster: None, model_dir: Path,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """An actor stops in its first batch and writes its pid; the test kills it (SIGKILL). Ray
    Data restarts the actor and runs its batches again: every id once, scored as Model scores
    it."""
    import metaprep.runtime.ray as mray

    monkeypatch.setattr(mray, "Scorer", _logged_scorer(str(tmp_path), stall=True))
    texts: list[str | None] = [*engine_texts(300), None]
    ds = mray.predict_dataset(_dataset(texts), model_dir, actors=2, batch_size=16,
                              outputs=("label", "probability", "probabilities"))
    with killing_the_stalled(tmp_path) as killed:
        rows = ds.take_all()
    assert killed, "the stalled actor never wrote its marker"
    loads = _loads(tmp_path)
    assert str(killed[0]) in loads and len(loads) >= 3  # the killed actor was replaced
    _check_rows(rows, texts, Model(model_dir, threads=1))


def test_a_wrong_model_path_fails_before_the_job(ray_cluster: None, tmp_path: Path) -> None:
    """An actor that cannot open the model would be restarted without end: the driver opens it
    first and says what is wrong."""
    from metaprep.errors import ModelError
    from metaprep.runtime.ray import predict_dataset

    with pytest.raises(ModelError, match="no such model directory"):
        predict_dataset(_dataset(["a"]), tmp_path / "nothing")
