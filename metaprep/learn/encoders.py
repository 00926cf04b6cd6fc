"""The sentence encoders and the classifier head: meta-embeddings (B,T,D) -> sentence (B,E) ->
logits (B,C). Torch modules only; each is rebuilt op by op in exporter/onnx_graph.py, and each reads
only the valid steps of a padded batch (docs/model.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["BiLSTMMax", "Classifier", "ConvMax", "MaxMeanPool", "run_lstm"]


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Bidirectional LSTM over the first ``lengths`` steps only (padding is never read).
    x (N,T,d) -> (N,T,2h), zeros after each length."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out


class BiLSTMMax(nn.Module):
    """meta (B,T,D) -> (B,2H): BiLSTM, then max over valid steps only."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(
        self, meta: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        out = run_lstm(self.lstm, meta, lengths)  # (B,T,2H)
        return out.masked_fill(~valid[..., None], float("-inf")).max(1).values


class MaxMeanPool(nn.Module):
    """meta (B,T,D) -> (B,2D): [max, sum / n] over the n valid steps, no recurrence; with
    ``combiner`` sqrtn, [max, sum / sqrt(n)]."""

    def __init__(self, dim: int, combiner: str = "mean") -> None:
        super().__init__()
        self.out_dim = 2 * dim
        self.combiner = combiner

    def forward(
        self, meta: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        mx = meta.masked_fill(~valid[..., None], float("-inf")).max(1).values  # (B,D)
        count = valid.sum(1, keepdim=True).clamp(min=1).to(meta.dtype)  # (B,1)
        if self.combiner == "sqrtn":
            count = count.sqrt()
        mean = (meta * valid[..., None]).sum(1) / count  # (B,D)
        return torch.cat([mx, mean], -1)


class ConvMax(nn.Module):
    """meta (B,T,D) -> (B,K*C): per width w, a wide 1-D convolution (w-1 zero steps on each side,
    so a text shorter than w still fills whole windows and every word meets every tap), ReLU,
    then the max over the n+w-1 windows that touch the text. Padding is zero before the
    convolution and its extra windows never enter the max: a sentence alone and in a padded
    batch give the same vector."""

    def __init__(self, dim: int, filters: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = list(widths)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w, padding=w - 1) for w in widths)
        self.out_dim = filters * len(widths)

    def forward(
        self, meta: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        x = meta.masked_fill(~valid[..., None], 0.0).transpose(1, 2)  # (B,D,T)
        out = []
        for w, conv in zip(self.widths, self.convs, strict=True):
            y = F.relu(conv(x))  # (B,C,T+w-1)
            windows = torch.arange(y.shape[2], device=y.device) < (lengths + w - 1)[:, None]
            out.append(y.masked_fill(~windows[:, None, :], float("-inf")).max(2).values)  # (B,C)
        return torch.cat(out, -1)


class Classifier(nn.Module):
    """features (B,F) -> logits (B,C): Linear ``hidden``, ReLU, Linear ``out``."""

    def __init__(self, in_dim: int, hidden: int, num_labels: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x)))  # type: ignore[no-any-return]
