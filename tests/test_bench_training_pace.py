"""bench_training_pace.py's report: means, spreads and the old/new ratios from the runs' rows."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_training_pace as pace  # noqa: E402


def _row(acc: float, wall: float, cpu: float) -> dict[str, float]:
    return {"test_accuracy": acc, "wall_s": wall, "cpu_s": cpu, "epochs": 8, "run_dir_mb": 56.0}


def test_the_report_gives_each_side_and_the_ratios() -> None:
    result = {"old_code": "old", "old_commit": "abc", "commit": "def", "seeds": "0,1",
              "started": "t0", "finished": "t1", "machine_before": "m", "machine_after": "m",
              "old_args": "--preset fast --teacher-members 0", "new_args": "--preset fast",
              "tasks": {"debian": {"old": [_row(0.78, 120, 100), _row(0.80, 140, 120)],
                                   "new": [_row(0.79, 40, 30), _row(0.79, 40, 25)]}}}
    text = pace.markdown(result)
    assert "| debian | old | 79.00 ± 1.41 | 130.0 ± 14.1 | 110.0 ± 14.1 | 8.0 | 56 |" in text
    assert "| debian | new | 79.00 ± 0.00 | 40.0 ± 0.0 | 27.5 ± 3.5 | 8.0 | 56 |" in text
    assert "| debian | old / new | | 3.25x | 4.00x | | |" in text
