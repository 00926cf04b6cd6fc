"""The table printed at the end of `metaprep run`."""

from __future__ import annotations

import json

from metaprep.pipeline import Pipeline

__all__ = ["summary_table"]


def _fmt(figures: dict[str, object]) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.3g}" if abs(value) < 1e-3 else f"{value:.4g}"
        parts.append(f"{key}: {value}")
    return "; ".join(parts) or json.dumps(figures)


def summary_table(pipe: Pipeline) -> str:
    rows = [("stage", "status", "time", "figures", "outputs")]
    for plan in pipe.stages:
        status = {"skip": "skipped", "force": "forced"}.get(plan.action, "ran")
        took = "-" if plan.action == "skip" else f"{plan.seconds:.1f}s"
        rows.append((plan.name, status, took, _fmt(plan.figures),
                     str(plan.out_dir)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[j].ljust(widths[j]) for j in range(4)] + [row[4]]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return f"pipeline {pipe.name} ({pipe.path})\n" + "\n".join(lines)
