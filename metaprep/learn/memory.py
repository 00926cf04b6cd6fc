"""What a stage will hold in memory, said before it starts: train and export estimate their
largest parts from the store's shape and the run's config, print one line when the total passes
the memory goal, and refuse with a hint when it passes what the machine has free.

The figures are the parts that grow with the vocabulary or the data: train's trainable weights
held four times (weights, gradients, Adam's two moments) and what remains of the task data
(the encoded examples are memory-mapped, learn/scratch.py); export's torch model, its baked
(V+2, D) float32 table and the vocabulary's map. The frozen tables (store dtype) are said apart:
they are mapped from a file beside the run (page cache, which the kernel can drop and read
again), not counted against the goal or the free memory. Against peak anonymous memory (GB =
1e9 bytes; benchmarks/bench_scale.py, synthetic Kaggle-size inputs, results/scale-big23.md and
scale-mem23.md), train on the 3.5M-word union store (1 float16 source, 50k examples): estimated
6.0, measured 7.9, before the tables, examples and best weights were mapped; now estimated 3.8,
measured 3.25 (the learned source's 0.9 GB table and Adam's two 0.95 GB moments of it are most
of it). Export of that run: estimated 4.6, measured 5.7 before; now estimated 2.6, measured
3.1 (its peak is the parity check: the torch model beside onnxruntime's session of the 0.95 GB
model). They are floors, not bounds (export's is below what it measured). No torch here: the
estimate comes before the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metaprep.errors import ConfigError
from metaprep.ids import ID_OFFSET
from metaprep.learn.config import RunConfig

__all__ = ["MEMORY_GOAL", "Estimate", "available_bytes", "check_memory", "export_estimate",
           "train_estimate"]

# the anonymous memory a stage aims to stay under (issue 23: a competition entrant's inputs on
# one machine)
MEMORY_GOAL = 4_000_000_000
# bytes of task data a byte of the task files: the examples are read one at a time and their ids
# memory-mapped (learn/rows.py, learn/scratch.py); what stays grows with the examples (each
# epoch's batch order, lengths). Training on 25k, 300k and 1M Kaggle-like examples (51 bytes of
# file each) peaked at 0.716, 0.758 and 0.778 GB: 64 bytes an example over the range, 29 from
# 300k to 1M (before: 0.926, 1.005 and 1.087 GB, 165 bytes an example; results/train-memory.md)
_DATA_BYTES_A_FILE_BYTE = 1
# bytes of the exported vocabulary a word, while export builds its text graph (the map's
# strings in the ONNX protobuf and in the runtime's check): 0.7 GB for 3.5M words, measured
_MAP_BYTES_A_WORD = 200
_HINTS = {"vocab": "a smaller vocabulary (align --vocab with the task's files)",
          "float16": "float16 tables (align --dtype float16)",
          "sources": "fewer sources (--set sources=...)",
          "learned": "a smaller learned source (--set learned_dim=0)"}


@dataclass(frozen=True)
class Estimate:
    """About how many bytes a stage holds, by part (the largest ones only)."""

    stage: str
    parts: tuple[tuple[str, int], ...]
    hints: tuple[str, ...] = tuple(_HINTS)  # what would lower it (keys of _HINTS)
    mapped: int = 0  # bytes mapped from files (page cache): said, not counted in ``total``

    @property
    def total(self) -> int:
        return sum(n for _, n in self.parts)

    def line(self) -> str:
        parts = ", ".join(f"{what} {_gb(n)}" for what, n in self.parts if n)
        files = f"; frozen tables {_gb(self.mapped)} mapped from a file" if self.mapped else ""
        return f"{self.stage} holds about {_gb(self.total)} of memory ({parts}{files})"

    def hint(self) -> str:
        found = [_HINTS[h] for h in self.hints]
        return ", ".join(found[:-1]) + f" or {found[-1]}" if len(found) > 1 else "".join(found)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 100_000_000 else f"{n / 1e6:.1f} MB"


def _tables(vocab_size: int, dims: Sequence[int], itemsizes: Sequence[int]) -> int:
    return sum((vocab_size + ID_OFFSET) * d * b for d, b in zip(dims, itemsizes, strict=True))


def _hints(cfg: RunConfig, itemsizes: Sequence[int]) -> tuple[str, ...]:
    # float16 tables would halve the mapped file, not the memory counted
    return ("vocab", *(["sources"] if len(itemsizes) > 1 else []),
            *(["learned"] if cfg.learned_dim else []))


def train_estimate(cfg: RunConfig, itemsizes: Sequence[int], *, data_bytes: int = 0
                   ) -> Estimate:
    """Training's trainable weights with their gradients and Adam's two moments, the task data
    (``data_bytes``: the size of the train, dev and test files) and, mapped from a file, its
    frozen tables (``itemsizes``: the store's bytes a number, per source)."""
    tables = _tables(cfg.vocab_size, cfg.source_dims, itemsizes)
    weights = 4 * 4 * cfg.weight_count()
    return Estimate("train", (("weights, gradients and optimizer state", weights),
                              ("task data", _DATA_BYTES_A_FILE_BYTE * data_bytes)),
                    _hints(cfg, itemsizes), mapped=tables)


def export_estimate(cfg: RunConfig, itemsizes: Sequence[int], *, members: int = 1) -> Estimate:
    """Export's torch model (its weights; an ensemble's ``members`` models, whose frozen
    tables, mapped from a file, they share), the baked float32 table it writes and the
    vocabulary's map of its text graph."""
    v = cfg.vocab_size
    model = members * 4 * cfg.weight_count()
    baked = members * (v + ID_OFFSET) * cfg.meta_dim * 4
    return Estimate("export", (("the trained model", model), ("baked tables", baked),
                               ("vocabulary map", v * _MAP_BYTES_A_WORD)),
                    _hints(cfg, itemsizes), mapped=_tables(v, cfg.source_dims, itemsizes))


def available_bytes() -> int | None:
    """The memory the machine has free (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(estimate: Estimate, *, path: str | Path | None,
                 log: Callable[[str], None] | None) -> None:
    """Refuse (ConfigError) when the estimate passes the free memory; ``log`` a note when it
    passes MEMORY_GOAL. Called before the stage loads anything large."""
    free = available_bytes()
    if free is not None and estimate.total > free:
        raise ConfigError(f"{estimate.line()}: more than the {_gb(free)} this machine has free",
                          path=path, hint=f"free memory, or use {estimate.hint()}")
    if estimate.total > MEMORY_GOAL and log is not None:
        log(f"note: {estimate.line()}, above the {_gb(MEMORY_GOAL)} goal; to lower it: "
            f"{estimate.hint()}")
