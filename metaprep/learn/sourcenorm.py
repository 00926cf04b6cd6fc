"""Each source normalised before its projection: centred on its mean, also scaled to unit mean
norm, or a per-source LayerNorm (``source_norm``; its measured effect is in
benchmarks/results/levers.md). It depends on the word alone, so export bakes it into the tables.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SourceNorm"]


class SourceNorm(nn.Module):
    """Rows (..., d) of one source -> normalised rows. The mean and scale come from the rows
    the source has (``have``), computed once from the frozen table (buffers, not saved)."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, kind: str, table: torch.Tensor, have: torch.Tensor) -> None:
        super().__init__()
        self.kind = kind
        d = table.shape[1]
        shift = torch.zeros(d, device=table.device)
        scale = torch.ones((), device=table.device)
        if kind in ("center", "scale") and table.device.type != "meta":
            shift, scale = _moments(table, have, kind == "scale")
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        if kind == "layernorm":
            self.ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "layernorm":
            return self.ln(x)  # type: ignore[no-any-return]
        if self.kind == "none":
            return x
        return (x - self.shift) / self.scale


def _moments(table: torch.Tensor, have: torch.Tensor, scaled: bool,
             block: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean row of the rows the source has, and their mean distance from it (1 unless
    ``scaled``), read in blocks: a float32 copy of a multi-million-word table is gigabytes."""
    d = table.shape[1]
    count = max(1, int(have.sum()))
    total = torch.zeros(d, dtype=torch.float64, device=table.device)
    for start in range(0, table.shape[0], block):
        rows = table[start : start + block][have[start : start + block]].double()
        total += rows.sum(0)
    shift = (total / count).float()  # (d,)
    scale = torch.ones((), device=table.device)
    if scaled:  # unit mean norm: sources of any scale meet as equals
        norms = torch.zeros((), dtype=torch.float64, device=table.device)
        for start in range(0, table.shape[0], block):
            rows = table[start : start + block][have[start : start + block]].float()
            norms += (rows - shift).norm(dim=-1).double().sum()
        scale = (norms / count).float()
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return shift, scale
