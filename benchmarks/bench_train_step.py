"""Training step time of DME and CDME against one source alone, same encoder and batches.

    python benchmarks/bench_train_step.py [--encoders bilstm,pool] [--steps 20] [--threads 1]

Builds a synthetic store (3 sources: 300d, 300d, 100d over a 50,000-word vocabulary; random
vectors, ~80% coverage each) and random length-bucketed batches (64 sentences of 8-40 tokens),
then times full training steps (forward, backward, clip, Adam) of each method through the same
code `metaprep train` runs (``build_model`` from the store, the same optimizer and clipping).
Methods are timed in interleaved rounds (one step each, in turn) so machine noise hits all of them
alike; the median wall time and the median process CPU time per step are reported (with one
thread, CPU time is the work itself, robust to other processes on a shared machine).
Targets: dme <= 1.3x and cdme <= 2x the single-source step (BiLSTM-max encoder).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from metaprep.learn.config import RunConfig
from metaprep.learn.model import build_model
from metaprep.prep.store import Store, StoreWriter

DIMS = {"s300a": 300, "s300b": 300, "s100": 100}
METHODS = ("single", "dme", "cdme", "sum", "concat")
TARGETS = {"dme": 1.3, "cdme": 2.0}


def make_store(path: Path, vocab: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    with StoreWriter(path, words) as w:
        for name, dim in DIMS.items():
            w.add_source(name, dim)
            for start in range(0, vocab, 10_000):
                n = min(10_000, vocab - start)
                w.write_block(name, start, rng.normal(0, 1, (n, dim)).astype(np.float32))
            w.set_present(name, rng.random(vocab) < 0.8)
    return path


def make_batches(n: int, vocab: int, batch: int, seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lengths = np.sort(rng.integers(8, 41, size=batch))[::-1].copy()
        base = int(lengths[0])
        lengths = np.clip(lengths, base - 6, base)  # bucketed: similar lengths in one batch
        ids = rng.integers(2, vocab + 2, size=(batch, base))
        ids[rng.random(ids.shape) < 0.03] = 1  # a few UNK
        for i, n_tok in enumerate(lengths):
            ids[i, n_tok:] = 0
        labels = rng.integers(0, 2, size=batch)
        out.append((torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(labels)))
    return out


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer,
               batch: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """One step exactly as metaprep.learn.train runs it; returns its (wall, process CPU) time."""
    ids, lengths, labels = batch
    t0, c0 = time.perf_counter(), time.process_time()
    loss = torch.nn.functional.cross_entropy(model(ids, lengths), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoders", default="bilstm,pool")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per method and encoder")
    ap.add_argument("--rounds", type=int, default=20,
                    help="interleaved rounds the steps split into (steps // rounds per method)")
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--proj-dim", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: CPU time is then a clean measure of the work)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(make_store(Path(tmp) / "store.h5", args.vocab))
        batches = make_batches(8, args.vocab, args.batch_size)
        tokens = sum(int(b[1].sum()) for b in batches) / len(batches)
        print(f"torch {torch.__version__}, {args.threads} threads; batch {args.batch_size} "
              f"sentences, {tokens:.0f} tokens on average; sources {DIMS}; "
              f"proj {args.proj_dim}, BiLSTM hidden {args.hidden}")
        for encoder in args.encoders.split(","):
            models = {}
            for method in METHODS:
                sources = ["s300a"] if method == "single" else list(DIMS)
                cfg = RunConfig(method=method, sources=sources,
                                source_dims=[DIMS[s] for s in sources],
                                vocab_size=args.vocab, proj_dim=args.proj_dim,
                                hidden=args.hidden, encoder=encoder)
                torch.manual_seed(0)
                model = build_model(store, cfg, progress=False).train()
                opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
                models[method] = (model, opt)

            def step(method: str, i: int, models: dict = models) -> tuple[float, float]:
                return train_step(*models[method], batches[i % len(batches)])

            for method in METHODS:  # warm-up
                for i in range(2):
                    step(method, i)
            times: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
            per_round = max(1, args.steps // args.rounds)
            for r in range(args.rounds):
                for method in METHODS:
                    times[method] += [step(method, r * per_round + i) for i in range(per_round)]
            wall = {m: statistics.median(t[0] for t in ts) * 1000 for m, ts in times.items()}
            cpu = {m: statistics.median(t[1] for t in ts) * 1000 for m, ts in times.items()}
            print(f"\nencoder {encoder} ({len(times['dme'])} steps each, median ms per step; CPU "
                  "time is what the step itself consumed, unaffected by other processes' load)")
            print(f"{'method':<8} {'wall ms':>9} {'ratio':>7} {'CPU ms':>9} {'ratio':>7} "
                  f"{'target':>8}")
            for m in METHODS:
                rw, rc = wall[m] / wall["single"], cpu[m] / cpu["single"]
                target = f"<= {TARGETS[m]}x" if m in TARGETS and encoder == "bilstm" else ""
                verdict = ("ok" if max(rw, rc) <= TARGETS[m] else "MISSED") if target else ""
                print(f"{m:<8} {wall[m]:9.1f} {rw:6.2f}x {cpu[m]:9.1f} {rc:6.2f}x {target:>8} "
                      f"{verdict}")
        store.close()


if __name__ == "__main__":
    main()
