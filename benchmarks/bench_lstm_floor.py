"""How fast can a float32 BiLSTM run on this machine? The matrix products an LSTM cannot avoid,
timed alone, next to onnxruntime's LSTM op and torch's nn.LSTM, in one run.

    python benchmarks/bench_lstm_floor.py [--threads 2] [--input 256] [--hidden 512]

A bidirectional LSTM over a (B, T) batch does, per direction, one input product
(B*T, d) x (d, 4h) and T recurrent products (B, h) x (h, 4h), one after another. This script
times exactly those products with onnxruntime's MatMul (weights as initializers, so they are
pre-packed like the LSTM op's) and adds them up: a floor for any float32 implementation that
runs the products as dense matmuls, gates and everything else excluded. Beside it: the ONNX
``LSTM`` op (what metaprep exports) and torch's ``nn.LSTM`` (eager), same shapes and threads.
The ratio torch / floor is the largest speed-up over torch that float32 could give.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import timings  # noqa: E402 - sibling script


def timed(fn: Callable[[], object]) -> float:
    """Median seconds per call after warm-up (bench_runtime's timing)."""
    return timings(fn, min_time=1.0, min_reps=20)[0]


def session(model: object, threads: int) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts,  # type: ignore[attr-defined]
                                providers=["CPUExecutionProvider"])


def matmul_seconds(m: int, k: int, n: int, threads: int) -> float:
    """One (m, k) x (k, n) float32 product in onnxruntime, weights as an initializer."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [w])
    sess = session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                   threads)
    feed = {"x": rng.standard_normal((m, k)).astype(np.float32)}
    return timed(lambda: sess.run(None, feed))  # type: ignore[attr-defined]


def ort_lstm_seconds(b: int, t: int, d: int, h: int, threads: int) -> float:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.05).astype(np.float32), n)
             for n, s in (("W", (2, 4 * h, d)), ("R", (2, 4 * h, h)), ("B", (2, 8 * h)))]
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=h,
                          direction="bidirectional")], "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [t, b, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [t, 2, b, h])], inits)
    sess = session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                   threads)
    feed = {"x": rng.standard_normal((t, b, d)).astype(np.float32)}
    return timed(lambda: sess.run(None, feed))  # type: ignore[attr-defined]


def torch_lstm_seconds(b: int, t: int, d: int, h: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    lstm = torch.nn.LSTM(d, h, batch_first=True, bidirectional=True).eval()
    x = torch.randn(b, t, d)
    with torch.inference_mode():
        return timed(lambda: lstm(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", type=int, default=256, help="LSTM input size (metaprep proj-dim)")
    ap.add_argument("--hidden", type=int, default=512)
    args = ap.parse_args()
    d, h, k = args.input, args.hidden, args.threads
    print(f"cpus={os.cpu_count()} threads={k} input={d} hidden={h} "
          f"load average={os.getloadavg()[0]:.1f}")
    print("| batch x tokens | matmul floor | onnxruntime LSTM | torch nn.LSTM | torch / ort | "
          "torch / floor (best float32 could do) |")
    print("|---|---:|---:|---:|---:|---:|")
    for b, t in ((1, 20), (32, 30)):
        floor = 2 * (matmul_seconds(b * t, d, 4 * h, k) + t * matmul_seconds(b, h, 4 * h, k))
        ort_s = ort_lstm_seconds(b, t, d, h, k)
        torch_s = torch_lstm_seconds(b, t, d, h, k)
        print(f"| {b}x{t} | {floor * 1e3:.2f} ms | {ort_s * 1e3:.2f} ms | {torch_s * 1e3:.2f} ms "
              f"| {torch_s / ort_s:.2f}x | {torch_s / floor:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
