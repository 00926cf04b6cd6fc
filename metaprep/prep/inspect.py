"""What a store holds: per-source coverage, OOV filling, case steps, and pairwise overlap
(the library behind `metaprep inspect`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from metaprep.prep.store import Store

__all__ = ["format_summary", "inspect_store"]


def inspect_store(path: str | Path) -> dict[str, Any]:
    """A JSON-ready summary of the store at ``path``."""
    with Store(path) as store:
        v = store.vocab_size
        masks = {name: store.present(name) for name in store.sources}
        sources = []
        for name in store.sources:
            a = store.source_attrs(name)
            present = int(masks[name].sum())
            sources.append({
                "name": name,
                "format": a.get("format"),
                "path": a.get("path"),
                "sha256": a.get("sha256"),
                "rows_read": a.get("rows_read"),
                "dim": store.dim(name),
                "dtype": str(store.vectors(name).dtype),
                "present": present,
                "coverage": present / v if v else 0.0,
                "oov": a.get("oov"),
                "oov_count": v - present,
                "oov_filled": a.get("oov_filled", {}),
                "duplicates": a.get("duplicates"),
                "bad_lines": a.get("bad_lines"),
                "normalize": a.get("normalize"),
                "case_steps": a.get("case_steps", {}),
                "map_fit": a.get("map_fit"),
                "subword_all_zero": a.get("subword_all_zero"),
            })
        names = list(store.sources)
        overlap = [[int(np.count_nonzero(masks[x] & masks[y])) for y in names] for x in names]
        attrs = store.attrs
        return {
            "path": str(store.path),
            "format_version": attrs.get("format_version"),
            "metaprep_version": attrs.get("metaprep_version"),
            "created": attrs.get("created"),
            "vocab_size": v,
            "vocab_mode": attrs.get("vocab_mode"),
            "case_policy": store.case_policy,
            "tokenizer": store.tokenizer,
            "in_all": int(np.logical_and.reduce(list(masks.values())).sum()) if masks else 0,
            "sources": sources,
            "overlap": {"names": names, "counts": overlap},
        }


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), *(fmt.format(*r) for r in rows)]


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a plain-text table."""
    lines = [
        f"{s['path']}: {s['vocab_size']:,} words ({s['vocab_mode'] or '?'} vocabulary), "
        f"{len(s['sources'])} source(s), case policy {s['case_policy']}; "
        f"{s['in_all']:,} words present in every source",
        "",
    ]
    rows = []
    for src in s["sources"]:
        filled = ", ".join(f"{k} {v:,}" for k, v in sorted(src["oov_filled"].items())) or "-"
        steps = ", ".join(f"{k} {v:,}" for k, v in src["case_steps"].items() if v) or "-"
        rows.append([
            src["name"], str(src["format"]), f"{src['rows_read'] or 0:,}", str(src["dim"]),
            src["dtype"], f"{src['present']:,}", f"{100 * src['coverage']:.1f}%",
            f"{src['oov_count']:,}", str(src["oov"]), filled, f"{src['duplicates'] or 0:,}",
            f"{src['bad_lines'] or 0:,}", str(src["normalize"]), steps,
        ])
    lines += _table(["source", "format", "rows read", "dim", "dtype", "present", "coverage",
                     "OOV", "strategy", "filled", "dups", "bad", "normalize", "case steps"],
                    rows)
    for src in s["sources"]:
        fit = src.get("map_fit")
        if fit:
            lines.append(
                f"map fit {src['name']} <- {'+'.join(fit['from'])}: R^2 {_num(fit['r2'])}, "
                f"cosine {fit['cosine']:.3f} on {fit['heldout_words']:,} held-out words "
                f"(fitted on {fit['train_words']:,}); {fit['unmapped']:,} rows left zero")
        if src.get("subword_all_zero"):
            lines.append(f"{src['name']}: {src['subword_all_zero']:,} subword rows are all zero "
                         "(no known n-gram or word piece)")
    names = s["overlap"]["names"]
    if len(names) > 1:
        lines += ["", "overlap (words present in both):"]
        lines += _table([""] + names, [[n] + [f"{c:,}" for c in row]
                                       for n, row in zip(names, s["overlap"]["counts"],
                                                         strict=True)])
    return "\n".join(lines)
