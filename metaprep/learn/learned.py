"""The learned source: a table trained with the task, one more source in the meta-embedding mix
(torch only; MetaEmbedder in learn/model.py calls it). The pretrained sources are frozen, so a
word none of them knows carries nothing; this table learns every word of the train split.

    ids (B,T) -> words[id if seen else UNK] (B,T,d), seen[id] (B,T)      (the source's presence)
    ids (B,T) -> bigrams[(ids[:, t] * MULT + ids[:, t+1]) % buckets] (B,T,d)   (0 at the last step)

Words not seen in the train split share the UNK row and count as absent (no training example
ever moved their row). The bigram hash uses integer Mul/Add/Mod over the two word ids only, so
the exported graph computes it itself (serve/onnx_graph.py) and the runtime needs no change.
``seen`` is a persistent buffer: it is part of the saved weights, as the tables are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metaprep.ids import BIGRAM_MULT, UNK_ID

__all__ = ["LearnedSource", "bigram_rows"]

INIT_SD = 0.01  # small random rows: a row trained from few examples is not drowned in noise


def bigram_rows(ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """(B,T) word ids -> (B,T-1) bucket of each pair (t, t+1)."""
    return (ids[:, :-1] * BIGRAM_MULT + ids[:, 1:]) % buckets


class LearnedSource(nn.Module):
    """Parameters: ``words`` (V+2, d), ``bigrams`` (buckets, d) if buckets. Buffer (saved):
    ``seen`` (V+2,) bool, the words of the train split (set by :meth:`mark_seen`)."""

    seen: torch.Tensor

    def __init__(self, rows: int, dim: int, buckets: int, dropout: float, *,
                 sparse: bool = True) -> None:
        super().__init__()
        # sparse gradients: a step touches the rows of its batch only, not the whole table (a
        # dense Adam step over 200k bigram rows cost more than the rest of the model's step)
        self.sparse = sparse
        self.words = nn.Parameter(torch.randn(rows, dim) * INIT_SD)
        # zero bigram rows: a pair starts as a no-op and only what the data supports moves it
        self.bigrams = nn.Parameter(torch.zeros(buckets, dim)) if buckets else None
        self.register_buffer("seen", torch.zeros(rows, dtype=torch.bool))
        self.dropout = nn.Dropout(dropout)

    @torch.no_grad()
    def mark_seen(self, ids: torch.Tensor) -> None:
        """The train split's word ids (any shape): only these get rows of their own."""
        self.seen.zero_()
        self.seen[ids.flatten()] = True
        self.seen[:2] = False  # padding and UNK are never words

    @torch.no_grad()
    def init_rows(self, table: torch.Tensor, have: torch.Tensor) -> None:
        """Start the rows of words ``have`` (V+2,) from a pretrained ``table`` (V+2, d)."""
        self.words[have] = table[have].float()

    def word_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Row of each id: its own if seen in training, else the shared UNK row."""
        return torch.where(self.seen[ids], ids, torch.full_like(ids, UNK_ID))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,T) -> word vectors (B,T,d)."""
        vec = F.embedding(self.word_rows(ids), self.words, sparse=self.sparse)
        return self.dropout(vec)  # type: ignore[no-any-return]

    def pair_vectors(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """ids, valid (B,T) -> (B,T,d): the bigram (t, t+1) at step t, 0 where either is not a
        real token (and at the last step)."""
        assert self.bigrams is not None
        rows = bigram_rows(ids, self.bigrams.shape[0])  # (B,T-1)
        both = (valid[:, :-1] & valid[:, 1:])[..., None]  # (B,T-1,1)
        vec = F.embedding(rows, self.bigrams, sparse=self.sparse) * both  # (B,T-1,d)
        return self.dropout(F.pad(vec, (0, 0, 0, 1)))  # (B,T,d)
