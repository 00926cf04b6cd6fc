"""Small run directories for the export and runtime tests: a random-vector store, a model with
random weights (metaprep.learn.model), and the files a run directory holds (docs/model.md)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "Paris", "ran", "fast", "slow", "big",
         "small", "red", "blue", "green", "house", "tree", "river", "sky", "good", "bad", "very",
         "not", "and", "or", "it", "is", "was", ".", ",", "!", "?", "New", "York", "été"]
LABELS = ["neg", "pos"]


def make_store(path: Path, *, dims: tuple[int, ...] = (6, 4), seed: int = 0,
               case_policy: str = "fallback") -> Path:
    from metaprep.prep.store import StoreWriter

    rng = np.random.default_rng(seed)
    with StoreWriter(path, WORDS, attrs={"case_policy": case_policy, "tokenizer": {}}) as w:
        for k, d in enumerate(dims):
            name = f"s{k}"
            w.add_source(name, d)
            w.write_block(name, 0, rng.standard_normal((len(WORDS), d)).astype(np.float32))
            present = rng.random(len(WORDS)) < 0.75
            present[k] = False  # "the" / "a" missing from one source each
            present[-1] = False  # "été" in no source: the UNK vector
            w.set_present(name, present)
    return path


def sentences(n: int, seed: int = 1, oov: bool = True) -> list[str]:
    rng = random.Random(seed)
    extra = ["zebra", "qwerty"] if oov else []
    return [" ".join(rng.choice(WORDS + extra) for _ in range(rng.randint(1, 12)))
            for _ in range(n)]


def write_task(path: Path, n: int, *, pair: bool = False, seed: int = 1) -> Path:
    texts = sentences(n, seed)
    other = sentences(n, seed + 100)
    rows = []
    for i, t in enumerate(texts):
        label = LABELS[(len(t) + i) % 2]
        rows.append(f"{t}\t{other[i]}\t{label}" if pair else f"{t}\t{label}")
    header = "text_a\ttext_b\tlabel" if pair else "text\tlabel"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# a small pooled model with the learned source: trains in a second (ensembles, teachers)
SMALL = {"method": "sum", "encoder": "pool", "proj_dim": 5, "mlp_hidden": 6, "epochs": 2,
         "learned_dim": 4, "learned_buckets": 16, "threads": 1, "quiet": True}


def small_task(base: Path) -> dict[str, Path]:
    """A store and train / dev / test files for SMALL runs."""
    return {"store": make_store(base / "store.h5"),
            "train": write_task(base / "train.tsv", 80, seed=3),
            "dev": write_task(base / "dev.tsv", 30, seed=4),
            "test": write_task(base / "test.tsv", 30, seed=5)}


def make_run(tmp: Path, *, method: str = "dme", encoder: str = "bilstm", pair: bool = False,
             seed: int = 0, dev: bool = True, case_policy: str = "fallback",
             **cfg_kw: Any) -> Path:
    """A run directory whose weights are random (seeded) but scaled so outputs vary."""
    import torch

    from metaprep.learn.config import RunConfig
    from metaprep.learn.model import build_model, weights_state_dict
    from metaprep.learn.rundir import DataRecord, FileRef, Run, StoreRef
    from metaprep.prep.store import Store
    from metaprep.tokenize import TokenizerConfig

    tmp.mkdir(parents=True, exist_ok=True)
    store_path = make_store(tmp / "store.h5", case_policy=case_policy)
    sources = ["s0"] if method == "single" else ["s0", "s1"]
    cfg = RunConfig(method=method, sources=sources, source_dims=[6, 4][: len(sources)],
                    vocab_size=len(WORDS), proj_dim=5, hidden=4, mlp_hidden=6, context_hidden=2,
                    cnn_filters=4, cnn_widths=[1, 2, 3],
                    encoder=encoder, pair=pair, num_labels=2, seed=seed)
    cfg = replace(cfg, **cfg_kw)
    torch.manual_seed(seed)
    with Store(store_path) as store:
        model = build_model(store, cfg, progress=False)
        ref = StoreRef.of(store)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm." in name:  # a LayerNorm near its init: tripled, it amplifies float noise
                p.add_(0.1 * torch.randn(p.shape))
                continue
            if "encoder.convs" in name:  # a window sums D x w inputs: lively enough as it is
                continue
            p.mul_(3.0)  # livelier than the default init: logits that differ between inputs
            if "feature_scorer" in name:  # zero at init: give the word features a say
                p.add_(torch.randn(p.shape))
        if hasattr(model.front, "train_counts"):  # word features: train counts that matter
            gen = torch.Generator().manual_seed(seed + 1)
            model.front.set_train_counts(torch.randint(0, 200, (len(WORDS) + 2,), generator=gen))
        learned = model.front.learned
        if learned is not None:  # some words seen in training, bigram rows that matter
            gen = torch.Generator().manual_seed(seed)
            learned.mark_seen(torch.randint(2, len(WORDS) + 2, (len(WORDS) // 2,), generator=gen))
            if learned.bigrams is not None:
                learned.bigrams.copy_(torch.randn(learned.bigrams.shape, generator=gen))
            if learned.subwords is not None:  # n-gram rows as lively as the word rows
                learned.subwords.copy_(torch.randn(learned.subwords.shape, generator=gen))
    data = DataRecord()
    if dev:
        dev_path = write_task(tmp / f"dev{'-pair' if pair else ''}.tsv", 40, pair=pair)
        data = DataRecord(dev=FileRef.of(dev_path))
    run = Run.create(tmp / f"run-{method}-{encoder}{'-pair' if pair else ''}", config=cfg,
                     labels=LABELS, tokenizer=TokenizerConfig.from_dict({}), store_ref=ref,
                     data=data)
    run.save_best(weights_state_dict(model))
    return run.path


def train_options(**kw: Any) -> Any:
    """TrainOptions from flat keywords, as the tests write them: the stage's own fields, and
    every other keyword a training option (its ``config``)."""
    from dataclasses import fields

    from metaprep.stages import TrainOptions

    own = {f.name for f in fields(TrainOptions)}
    config = {k: v for k, v in kw.items() if k not in own}
    return TrainOptions(**{k: v for k, v in kw.items() if k in own}, config=config)


def export_model(base: Path, **run_kw: Any) -> Path:
    """A ``make_run`` run at ``base``, exported quietly to ``base / "model"``."""
    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    export_run(make_run(base, **run_kw), base / "model", options=ExportOptions(quiet=True),
               log=lambda _: None)
    return base / "model"


def single_and_pair(base: Path) -> dict[str, Path]:
    """A single-sentence and a sentence-pair model directory (pool encoders: quick to export)."""
    return {"single": export_model(base / "single", method="dme", encoder="pool"),
            "pair": export_model(base / "pair", method="sum", encoder="pool", pair=True)}
