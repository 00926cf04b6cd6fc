"""Score a Ray Dataset with a model directory: ``map_batches`` on a pool of actors, each loading
the Model once (docs/engines.md).

    import ray
    from metaprep.runtime.ray import predict_dataset
    ds = ray.data.read_parquet("texts/")
    scored = predict_dataset(ds, "/shared/models/topics", actors=4)
    scored.write_parquet("scored/")

Each actor (a process Ray keeps for the whole job) opens the model directory in its constructor
and scores every batch it is handed; ``actors`` of them run at once, each with ``threads`` CPUs
that its Model uses for as many batches at once. A batch gains the outputs asked for as columns
(runtime/engines.py: label, probability, probabilities, embedding); the input columns stay.

The model directory must be readable at the same path by every node (shared storage; on one
machine, any path). An actor that dies is restarted and its batches run again: Ray Data's
default for actor pools (``max_restarts=-1``, ``max_task_retries=-1``).

Imports numpy and metaprep.runtime.model (through runtime/engines.py); ray only inside
predict_dataset, so importing this module needs no Ray.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from metaprep.runtime.engines import check_model, check_outputs, score
from metaprep.runtime.model import Model

__all__ = ["Scorer", "predict_dataset"]

# rows a batch: the Model sorts a batch's texts by length, so a large batch pads less
BATCH_SIZE = 4096


class Scorer:
    """A callable class for ``Dataset.map_batches``: the Model is opened when Ray builds the
    actor, once, and each call scores one batch (a dict of numpy columns)."""

    def __init__(self, model_dir: str, *, columns: Sequence[str] = ("text",),
                 outputs: Sequence[str] = ("label", "probability"), threads: int = 1,
                 verify: str = "fast") -> None:
        self.columns = tuple(columns)
        self.outputs = check_outputs(outputs)
        self.model = Model(model_dir, threads=threads, verify=verify)
        check_model(self.model, self.outputs)
        if len(self.columns) != (2 if self.model.pair else 1):
            raise ValueError(f"this model reads {'two columns' if self.model.pair else 'one'}"
                             f" of text, not {list(self.columns)}")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clash = set(self.outputs) & set(batch)
        if clash:
            raise ValueError(f"the dataset already has a column {', '.join(sorted(clash))}: "
                             "rename it or ask for other outputs")
        out = score(self.model, [batch[c] for c in self.columns], self.outputs)
        return {**batch, **out}


def predict_dataset(ds: Any, model_dir: str | os.PathLike[str], *,
                    columns: Sequence[str] = ("text",),
                    outputs: Sequence[str] = ("label", "probability"), actors: int = 2,
                    threads: int = 1, batch_size: int = BATCH_SIZE, verify: str = "fast",
                    check: bool = True) -> Any:
    """``ds`` (a ray.data.Dataset) with the outputs added as columns, scored by ``actors``
    actors of ``threads`` CPUs each (lazy, as every Ray Data transform). ``check``: open the
    model here first, so that a wrong path or a broken directory fails now: in an actor, Ray
    would restart it without end (pass False where this process cannot see the path)."""
    import ray.data

    check_outputs(outputs)
    if actors < 1 or threads < 1 or batch_size < 1:
        raise ValueError("actors, threads and batch_size must be at least 1")
    if check:
        Scorer(os.fspath(model_dir), columns=columns, outputs=outputs, threads=1, verify=verify)
    return ds.map_batches(
        Scorer, fn_constructor_args=(os.fspath(model_dir),),
        fn_constructor_kwargs={"columns": tuple(columns), "outputs": tuple(outputs),
                               "threads": threads, "verify": verify},
        batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads)
