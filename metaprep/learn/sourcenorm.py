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
        if kind in ("center", "scale"):
            rows = table[have].float() if table.device.type != "meta" else table.float()
            count = max(1, int(rows.shape[0])) if table.device.type != "meta" else 1
            shift = rows.sum(0) / count  # (d,)
            if kind == "scale":  # unit mean norm: sources of any scale meet as equals
                scale = (rows - shift).norm(dim=-1).sum() / count
                scale = torch.where(scale > 0, scale, torch.ones_like(scale))
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
