"""One max_tokens from training to serving: the run's limit cuts texts in training, evaluation,
the export's checks and the runtime alike, so a long text gets one answer everywhere."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from exportkit import LABELS, SMALL, WORDS, make_run, small_task, train_options

from metaprep import stages
from metaprep.errors import ConfigError


def _long_texts(tokens: int, seed: int) -> list[str]:
    """Texts of ``tokens`` words: 400 of one word (a different one each time, in a random
    order), then one other word over and over, so that the part past 400 pulls every text the
    same way."""
    rng = random.Random(seed)
    words = [w for w in WORDS if w not in ("river", "été")]
    rng.shuffle(words)
    return [" ".join([w] * 400 + ["river"] * (tokens - 400)) for w in words]


def test_a_2000_token_text_gets_one_answer_from_evaluate_and_predict(tmp_path: Path) -> None:
    import torch

    from metaprep.learn.data import LabelMap, load_task
    from metaprep.learn.evaluate import predict
    from metaprep.learn.rundir import Run
    from metaprep.runtime.model import Model

    torch.set_num_threads(1)
    run = make_run(tmp_path / "work", method="sum", encoder="pool", max_tokens=400)
    stages.export(stages.ExportOptions(run=run, output=tmp_path / "model", quiet=True))
    model = Model(tmp_path / "model", threads=1)
    assert model.max_tokens == 400  # carried from the run

    texts = _long_texts(2000, seed=5)
    served = model.predict_ids(texts)
    assert len(set(served.tolist())) == 2  # the first 400 tokens decide, and they differ
    assert model.stats.truncated == len(texts)
    data = tmp_path / "long.tsv"  # labelled with the served answers
    data.write_text("text\tlabel\n" + "".join(
        f"{t}\t{LABELS[k]}\n" for t, k in zip(texts, served.tolist(), strict=True)),
        encoding="utf-8")
    scores = stages.evaluate(stages.EvaluateOptions(run=run, data=data, quiet=True))
    assert scores.metrics["accuracy"] == 1.0  # evaluate answers as predict does, text for text

    # the test can tell: read whole, the texts get other answers than cut at 400 tokens
    with Run.open(run) as r:
        enc = r.encoder()
        cut = load_task(data, enc, labels=LabelMap(r.labels), progress=False)[0]
        assert max(len(e.ids) for e in cut.examples) == 400
        whole = [e._replace(ids=enc.vocab.encode(t.split())) for e, t in
                 zip(cut.examples, texts, strict=True)]
        net = r.load_model()
    uncut = predict(net, type(cut)(cut.path, whole, cut.pair), device="cpu")
    assert not np.array_equal(uncut, served)


def test_train_records_max_tokens_and_export_carries_it(tmp_path: Path) -> None:
    data = small_task(tmp_path)
    out = stages.train(train_options(**data, output=tmp_path / "run", max_tokens=5,
                                           **SMALL))
    config = json.loads((out.run / "config.json").read_text())
    tokenizer = json.loads((out.run / "tokenizer.json").read_text())
    assert config["max_tokens"] == tokenizer["max_tokens"] == 5
    stages.export(stages.ExportOptions(run=out.run, output=tmp_path / "model", quiet=True))
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["max_tokens"] == 5


@pytest.mark.parametrize("value", [0, -3, 10**6])
def test_max_tokens_out_of_range_is_refused_before_anything_is_written(
        tmp_path: Path, value: int) -> None:
    data = small_task(tmp_path)
    with pytest.raises(ConfigError, match="max_tokens"):
        stages.train(train_options(**data, output=tmp_path / "run", max_tokens=value,
                                         **SMALL))
    assert not (tmp_path / "run").exists()
