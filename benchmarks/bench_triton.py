"""Serving under load: a real Triton Inference Server (python backend, `metaprep triton`) against
metaprep.runtime in process, at the same onnxruntime thread budget, in one run.

    python benchmarks/bench_triton.py [MODEL_DIR] [--threads 2] [--clients 8] [--seconds 10]

N client threads each send one text per request in a closed loop for a bounded time (loopback
HTTP, tritonclient; one client object per thread). Printed per setup: requests/s, p50 and p99
latency, and for Triton the mean rows per execute() from the server's own statistics:

  runtime, 1 text per call     N threads calling Model.predict_proba([text]) on one Model
  runtime, batches of 64       one thread, predict_proba on 64 texts: the in-process ceiling
  triton, dynamic batching     1 instance x T threads, max_queue_delay 1000 us, max batch 64
  triton, no batching          1 instance x T threads, each request its own execute()
  triton, 2 instances          2 instances x T/2 threads, dynamic batching

Without MODEL_DIR a model is made in benchmarks/data/triton/: dme + BiLSTM-max (proj 256,
hidden 256) on random weights over a toy vocabulary; speed depends on the shape, not on what
was learnt. Texts are 1-12 random words. Clients, server and model share the machine's cores
(and other users' jobs: the load average is printed), so the figures are for comparing the
setups with each other, not absolute capacity.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "triton"


def make_model(work: Path) -> Path:
    model = work / "model"
    if (model / "manifest.json").exists():
        return model
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from exportkit import make_run

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    run = make_run(work / "src", method="dme", encoder="bilstm", proj_dim=256, hidden=256,
                   mlp_hidden=256, dev=False)
    export_run(run, model, options=ExportOptions(quiet=True), log=lambda _: None)
    return model


def load(call: Callable[[int], None], clients: int, seconds: float) -> dict[str, float]:
    """``call(k)`` in ``clients`` threads in a closed loop for ``seconds``; latencies in ms."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                call(k)
                lat[k].append((time.perf_counter() - t0) * 1e3)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    wall = time.monotonic() - start
    if errors:
        raise RuntimeError(f"{len(errors)} client error(s), first: {errors[0]!r}")
    flat = sorted(x for xs in lat for x in xs)
    return {"requests": len(flat), "rps": len(flat) / wall,
            "p50": statistics.median(flat), "p99": flat[min(len(flat) - 1, int(0.99 * len(flat)))]}


def triton_setup(model: Path, work: Path, texts: list[str], args: argparse.Namespace,
                 name: str, **opts: Any) -> dict[str, float]:
    import shutil

    import tritonclient.http as http

    from metaprep.exporter.triton_local import run_triton
    from metaprep.exporter.triton_python import write_python_model
    from metaprep.stages import TritonOptions

    repo = work / f"repo-{name}"
    shutil.rmtree(repo, ignore_errors=True)
    write_python_model(model, repo, TritonOptions(name="m", **opts))
    with run_triton(repo, work / "server") as srv:
        local = threading.local()

        def call(k: int) -> None:
            if not hasattr(local, "c"):
                local.c = http.InferenceServerClient(srv.url, network_timeout=120)
                local.i = k
            text = texts[local.i % len(texts)]
            local.i += args.clients
            inp = http.InferInput("TEXT", [1, 1], "BYTES")
            inp.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
            local.c.infer("m", [inp], outputs=[http.InferRequestedOutput("PROBABILITIES")])

        load(call, args.clients, 2.0)  # warm-up: sessions, connections
        admin = http.InferenceServerClient(srv.url)
        before = admin.get_inference_statistics("m")["model_stats"][0]
        result = load(call, args.clients, args.seconds)
        after = admin.get_inference_statistics("m")["model_stats"][0]
        admin.close()
        rows = after["inference_count"] - before["inference_count"]
        runs = after["execution_count"] - before["execution_count"]
        result["batch"] = rows / max(1, runs)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="a model directory [a synthetic one]")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads, both sides")
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured time per setup")
    ap.add_argument("--work", type=Path, default=DATA)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else make_model(args.work)

    sys.path.insert(0, str(ROOT / "tests"))
    from exportkit import sentences

    from metaprep.runtime import Model

    texts = sentences(4000, seed=11)
    rows: list[tuple[str, dict[str, float]]] = []

    m = Model(model, threads=args.threads)
    m.predict_proba(texts[:64])
    rows.append(("runtime, 1 text per call", load(
        lambda k: m.predict_proba([texts[k]]), args.clients, args.seconds)))
    pos = [0]

    def batch64(_: int) -> None:
        m.predict_proba(texts[pos[0] % 3900 : pos[0] % 3900 + 64])
        pos[0] += 64

    r = load(batch64, 1, args.seconds)
    r["rps"] *= 64  # texts per second
    rows.append(("runtime, batches of 64 (texts/s)", r))
    rows.append(("triton, dynamic batching", triton_setup(
        model, args.work, texts, args, "dyn", threads=args.threads)))
    rows.append(("triton, no batching", triton_setup(
        model, args.work, texts, args, "nobatch", threads=args.threads,
        dynamic_batching=False)))
    rows.append((f"triton, 2 instances x {max(1, args.threads // 2)} thr", triton_setup(
        model, args.work, texts, args, "two", threads=max(1, args.threads // 2), instances=2)))

    print(f"{dt.date.today()}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores, {args.clients} clients, {args.seconds:.0f} s per setup, "
          f"onnxruntime threads {args.threads}, model {model}")
    print(f"{'setup':36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'rows/exec':>9}")
    for name, r in rows:
        batch = f"{r['batch']:.1f}" if "batch" in r else "-"
        print(f"{name:36} {r['rps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f} {batch:>9}")


if __name__ == "__main__":
    main()
