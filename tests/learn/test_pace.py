"""What makes a training step cheap keeps it the same step: the flat-id batches, the sum computed
once per distinct word, the row-wise sparse Adam, the cheaper dropout; and the schedule pieces of
the fast recipe (linear lr, label smoothing, the batch picked from the data's size)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import make_task
from test_learned import make_model
from test_model import batch

from metaprep.errors import ConfigError
from metaprep.ids import PAD_ID
from metaprep.learn.config import PRESETS, RunConfig
from metaprep.learn.data import Example, TaskData, collate
from metaprep.learn.learned import FastDropout
from metaprep.learn.train import train


def _padded(seqs: list[list[int]]) -> torch.Tensor:
    width = max(1, max(map(len, seqs)))
    return torch.tensor([s + [PAD_ID] * (width - len(s)) for s in seqs], dtype=torch.int64)


def test_flat_batches_are_the_padded_sentences() -> None:
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(2, 50, size=n)) for n in (3, 0, 7, 1, 5)]
    pairs = [list(rng.integers(2, 50, size=n)) for n in (2, 4, 0, 1, 6)]
    data = TaskData(Path("t.tsv"), [Example([int(i) for i in s], [int(i) for i in p], 0, k + 2)
                                    for k, (s, p) in enumerate(zip(seqs, pairs, strict=True))],
                    pair=True)
    for index in ([0, 2, 4], [1], [4, 3, 2, 1, 0]):
        b = collate(data, np.array(index))
        assert torch.equal(b.ids, _padded([seqs[i] for i in index]))
        assert b.lengths.tolist() == [len(seqs[i]) for i in index]
        assert b.ids_b is not None and torch.equal(b.ids_b, _padded([pairs[i] for i in index]))


@pytest.mark.parametrize("mask_missing", [True, False])
def test_the_sum_per_distinct_word_is_the_sum_per_token(mask_missing: bool) -> None:
    model = make_model("sum", mask_missing=mask_missing)
    front = model.front
    ids, lengths = batch()
    with torch.no_grad():
        meta, _ = front(ids, lengths)
        valid = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]) & (ids != PAD_ID)
        present = front.presence(ids) & valid[..., None]
        use = present if mask_missing else valid[..., None].expand_as(present)
        rows = [front.source_rows(k, e) for k, e in enumerate(front.raw_vectors(ids))]
        want = (torch.stack(rows, 2) * use[..., None]).sum(2)
        want = torch.where(present.any(-1)[..., None], want, front.unk)
        pairs = front.pair_term(ids, valid)
        want = (want + (pairs if pairs is not None else 0)) * valid[..., None]
    assert torch.allclose(meta, want, atol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.7, 0.99])
def test_fast_dropout_drops_the_share_asked_and_keeps_the_mean(p: float) -> None:
    drop = FastDropout(p)
    torch.manual_seed(0)
    y = drop(torch.ones(400_001, 3))  # not a whole number of 4-byte draws
    assert abs(float((y == 0).float().mean()) - p) < 0.004
    assert abs(float(y.mean()) - 1.0) < 0.02
    assert torch.unique(y).tolist() == [0.0, torch.tensor(256 / drop.keep).item()]
    first = drop(torch.ones(10, 7))
    torch.manual_seed(0)
    drop(torch.ones(400_001, 3))
    assert torch.equal(drop(torch.ones(10, 7)), first)  # seeded: the same masks
    assert torch.equal(drop.eval()(torch.ones(5)), torch.ones(5))


@pytest.mark.parametrize(("n", "batch"), [(47_663, 256), (25_000, 128), (10_080, 64),
                                          (1_000, 64), (10, 64), (5_000_000, 256)])
def test_batch_size_zero_is_picked_from_the_training_set_and_scales_the_lr(n: int, batch: int
                                                                        ) -> None:
    cfg = RunConfig(batch_size=0, lr=1e-3).for_examples(n)
    assert cfg.batch_size == batch and cfg.lr == pytest.approx(1e-3 * batch / 64)
    given = RunConfig(batch_size=48, lr=1e-3)
    assert given.for_examples(n) is given  # a batch size given is kept, and its lr


@pytest.mark.parametrize(("key", "value"), [("label_smoothing", 0.6), ("label_smoothing", -0.1),
                                            ("lr_schedule", "cosine"), ("batch_size", -1)])
def test_the_new_options_are_checked(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        RunConfig(**{key: value}).validate()  # type: ignore[arg-type]


def test_linear_schedule_with_an_auto_batch_trains_and_records_what_it_used(tmp_path: Path
                                                                           ) -> None:
    task = make_task(tmp_path, n_train=96)
    cfg = RunConfig(method="sum", encoder="pool", proj_dim=8, mlp_hidden=8, epochs=10,
                    batch_size=0, lr=0.1, lr_schedule="linear", label_smoothing=0.1,
                    patience=10)
    m = train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
              out=tmp_path / "r", progress=False)
    assert m["batch_size"] == 64 and m["lr"] == pytest.approx(0.1)  # 96 texts: the smallest
    lrs = [e["lr"] for e in m["epochs"]]  # the lr of each epoch's last step
    steps = m["epochs"][-1]["steps"]
    assert lrs == pytest.approx([0.1 * (1 - (s - 1) / steps)
                                 for s in (e["steps"] for e in m["epochs"])])
    assert m["dev"]["accuracy"] > 0.8
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["batch_size"] == 0  # the option as given: a resume picks the same again


def test_the_learned_source_is_left_out_below_its_token_count() -> None:
    cfg = RunConfig(learned_dim=16, learned_buckets=100, learned_subwords=10,
                    learned_min_tokens=1_000)
    assert cfg.for_tokens(1_000) is cfg
    small = cfg.for_tokens(999)
    assert (small.learned_dim, small.learned_buckets, small.learned_subwords) == (0, 0, 0)
    small.validate()
    assert RunConfig(learned_dim=16).for_tokens(0).learned_dim == 16  # 0: always kept


def test_a_run_on_too_little_text_saves_the_config_it_trained(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    """config.json says what was trained (no learned source), so evaluate and export rebuild
    the same model; the run says why."""
    from exportkit import train_options

    from metaprep import stages

    task = make_task(tmp_path)
    small = {"method": "sum", "encoder": "pool", "proj_dim": 5, "mlp_hidden": 6, "epochs": 1,
             "batch_size": 8, "threads": 1, "learned_dim": 4, "learned_buckets": 50}
    done = stages.train(train_options(**task, output=tmp_path / "r", learned_min_tokens=10**6,
                                      **small))
    saved = json.loads((done.run / "config.json").read_text())
    assert (saved["learned_dim"], saved["learned_buckets"]) == (0, 0)
    assert "the learned source is left out: the train split has" in capsys.readouterr().err
    stages.export(stages.ExportOptions(run=done.run, output=tmp_path / "m", quiet=True))
    kept = stages.train(train_options(**task, output=tmp_path / "k", learned_min_tokens=10,
                                      quiet=True, **small))
    assert json.loads((kept.run / "config.json").read_text())["learned_dim"] == 4


def test_the_fast_preset_trains_one_model_at_the_fast_pace() -> None:
    fast = PRESETS["fast"]
    assert fast["lr_schedule"] == "linear" and fast["batch_size"] == 0
    assert not fast.get("teacher_members") and not fast.get("members")


def test_a_finished_run_keeps_what_it_needs_unless_told(tmp_path: Path) -> None:
    """The stage removes the checkpoints of a finished run and of its teacher's members (about
    3x the model each); --keep-checkpoints keeps them; export needs neither."""
    from exportkit import train_options

    from metaprep import stages

    task = make_task(tmp_path)
    small = {"method": "sum", "encoder": "pool", "proj_dim": 5, "mlp_hidden": 6, "epochs": 1,
             "batch_size": 8, "quiet": True, "threads": 1}
    taught = stages.train(train_options(**task, output=tmp_path / "t", teacher_members=2,
                                        **small))
    assert sorted(p.name for p in taught.run.rglob("checkpoint.pt")) == []
    assert len(list(taught.run.rglob("best.safetensors"))) == 3  # the model and two members
    kept = stages.train(train_options(**task, output=tmp_path / "k", keep_checkpoints=True,
                                      **small))
    assert (kept.run / "checkpoint.pt").is_file()
    again = stages.train(train_options(output=tmp_path / "t", resume=True, quiet=True))
    assert again.metrics["dev"] == taught.metrics["dev"]  # finished: nothing trained
    stages.export(stages.ExportOptions(run=taught.run, output=tmp_path / "m", quiet=True))
    assert (tmp_path / "m" / "manifest.json").is_file()


def test_the_run_pace_says_where_the_whole_run_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from metaprep.learn import pace as pace_module
    from metaprep.learn.pace import RunPace, duration

    clock = iter([0.0, 10.0, 20.0, 30.0, 40.0, 100.0, 110.0])
    monkeypatch.setattr(pace_module.time, "perf_counter", lambda: next(clock))
    pace = RunPace(total=3, labels={0: "teacher", 1: "teacher"})
    pace.start_model(0)  # t 0
    assert pace.epoch_line(1, 4) == ("model 1 of 3 (teacher), epoch 1/4",  # t 10: 10 s/epoch
                                     "at most 30 s left in this model, about 2 min in all")
    assert pace.epoch_line(2, 4)[0] == "model 1 of 3 (teacher), epoch 2/4"  # t 20
    pace.end_model()  # t 30: the first model took 30 s
    pace.start_model(0)  # t 40
    assert pace.epoch_line(4, 4) == ("model 2 of 3 (teacher), epoch 4/4",  # t 100
                                     "about 30 s in all")  # the last model, as long as the first
    pace.end_model()  # t 110
    assert pace.epoch_line.__self__.done == 2  # type: ignore[attr-defined]
    assert RunPace().epoch_line.__self__.total == 1  # type: ignore[attr-defined]
    assert [duration(s) for s in (0.2, 41, 200, 9000)] == ["1 s", "41 s", "3 min", "2.5 h"]


def test_a_taught_run_reports_its_models_as_one_run(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from exportkit import train_options

    from metaprep import stages

    task = make_task(tmp_path)
    stages.train(train_options(**task, output=tmp_path / "t", teacher_members=2, method="sum",
                               encoder="pool", proj_dim=5, mlp_hidden=6, epochs=2, batch_size=8,
                               threads=1))
    got = capsys.readouterr()
    err = got.out + got.err  # the epoch lines go through tqdm.write
    for where in ("model 1 of 3 (teacher), epoch 1/2", "model 2 of 3 (teacher), epoch 2/2",
                  "model 3 of 3, epoch 1/2"):
        assert where in err, err
    assert "in all" in err and "left in this model" in err
