"""The optional levers of the meta-embedding front end (torch modules and helpers only; the
config keys are in learn/config.py, the measured effect of each in benchmarks/results/levers.md).

- ``SourceNorm``: each source normalised before its projection (centred on its mean, also scaled
  to unit mean norm, or a LayerNorm). It depends on the word alone, so export bakes it into the
  tables.
- ``word_features``: FAME-style per-word features for the scorer (which sources have the word, a
  frequency bin from its count in the train split, the word's length and shape).
  ``FeatureScorer`` turns them into one score offset per source; a per-word constant, so a DME
  still folds into one table.
- ``drop_sources``: whole sources dropped per token in training, so the mix learns to use each.
- ``mix_entropy``: the mean entropy of the mixing weights, for an optional loss term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from metaprep.ids import ID_OFFSET
from metaprep.learn.config import NORMS

__all__ = ["NORMS", "FeatureScorer", "SourceNorm", "drop_sources", "feature_count",
           "frequency_bins", "mix_entropy", "rank_bins", "set_frequency", "word_features"]

# log2 of the word's count in the train split: unseen, 1, 2-3, ... 64+ (runs saved before train
# counts existed: of the row rank, 1, 2-3, ... 128+, the order of every file align counted)
FREQ_BINS = 8
LEN_BINS = (1, 2, 3, 5, 8)  # word length <= each, else the last bin: 6 bins
SHAPES = 4  # all letters, has a digit, has a hyphen, has other punctuation


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


def feature_count(num_sources: int) -> int:
    """F, the width of one word's feature vector."""
    return num_sources + FREQ_BINS + len(LEN_BINS) + 1 + SHAPES


def _shape_bits(word: str) -> list[float]:
    return [float(word.isalpha()), float(any(c.isdigit() for c in word)), float("-" in word),
            float(any(not c.isalnum() and c != "-" for c in word))]


def frequency_bins(counts: torch.Tensor) -> torch.Tensor:
    """(V+2,) counts -> (V+2,) long bins: 0 unseen, then 1, 2-3, 4-7, ... (log2), capped."""
    c = counts.double().clamp(min=1.0)
    bins = torch.floor(torch.log2(c)).long() + 1
    return torch.where(counts > 0, bins.clamp(max=FREQ_BINS - 1), torch.zeros_like(bins))


def rank_bins(rows: int) -> torch.Tensor:
    """(V+2,) bins from the row rank, as runs saved before train counts existed had them."""
    rank = torch.arange(rows, dtype=torch.float64) - ID_OFFSET + 1
    bins = torch.floor(torch.log2(rank.clamp(min=1.0))).long().clamp(max=FREQ_BINS - 1)
    return torch.where(rank >= 1, bins, torch.zeros_like(bins))


def word_features(words: Sequence[str], present: torch.Tensor,
                  bins: torch.Tensor | None = None) -> torch.Tensor:
    """(V+2, F) float32: presence bits (S), frequency bin (one-hot; ``bins`` (V+2,) from
    ``frequency_bins`` or ``rank_bins``; none: all 0 until set), length bin (one-hot), shape
    bits. Rows 0 and 1 (padding, UNK) are zeros. ``present`` (V+2, S) bool."""
    n, s = present.shape
    out = torch.zeros(n, feature_count(s))
    if present.device.type == "meta":
        return out.to("meta")
    out[:, :s] = present.float()
    for row, word in enumerate(words):
        i = row + ID_OFFSET
        length = next((b for b, top in enumerate(LEN_BINS) if len(word) <= top), len(LEN_BINS))
        out[i, s + FREQ_BINS + length] = 1.0
        out[i, s + FREQ_BINS + len(LEN_BINS) + 1:] = torch.tensor(_shape_bits(word))
    if bins is not None:
        set_frequency(out, s, bins)
    out[:ID_OFFSET] = 0.0
    return out


def set_frequency(features: torch.Tensor, sources: int, bins: torch.Tensor) -> None:
    """Write the one-hot frequency bins into ``features`` (V+2, F) in place (rows 0, 1 stay 0)."""
    cols = features[:, sources : sources + FREQ_BINS]
    cols.zero_()
    cols.scatter_(1, bins.long().view(-1, 1), 1.0)
    cols[:ID_OFFSET] = 0.0


class FeatureScorer(nn.Module):
    """Word features (..., F) -> one score offset per source (..., S). A shared score would
    cancel in the softmax, so each source has its own weights."""

    def __init__(self, num_features: int, num_sources: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, num_sources)
        nn.init.zeros_(self.linear.weight)  # start as the plain scorer; learn what helps
        nn.init.zeros_(self.linear.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear(feats)  # type: ignore[no-any-return]


def drop_sources(use: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """use (B,T,S) bool -> the same with each (token, source) dropped with probability p in
    training; a token keeps its sources when all would be dropped (no token loses its vector)."""
    if not training or p <= 0.0:
        return use
    keep = torch.rand(use.shape, device=use.device) >= p
    dropped = use & keep
    return torch.where(dropped.any(-1, keepdim=True), dropped, use)


def mix_entropy(weights: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the per-token weights (B,T,S) over the valid tokens (B,T)."""
    w = weights.clamp(min=1e-9)
    ent = -(weights * w.log()).sum(-1)  # (B,T)
    return (ent * valid).sum() / valid.sum().clamp(min=1)
