"""The learned source: a table trained with the task, one more source in the meta-embedding mix
(torch only; MetaEmbedder in learn/model.py calls it). The pretrained sources are frozen, so a
word none of them knows carries nothing; this table learns every word of the train split.

    ids (B,T) -> words[id if seen else UNK] (B,T,d), seen[id] (B,T)      (the source's presence)
    ids (B,T) -> bigrams[(ids[:, t] * MULT + ids[:, t+1]) % buckets] (B,T,d)   (0 at the last step)

Words not seen in the train split share the UNK row and count as absent (no training example
ever moved their row). With ``subwords`` buckets (fastText's character n-grams, hashed by
learn/subwords.py from the store's words), a word's vector is, as in fastText, the mean of its
own row (if seen in training) and the rows of its n-grams; so a word unseen in training but with
n-grams is present too. Padding and UNK have no n-grams. All of this depends on the word alone:
:meth:`LearnedSource.table` gives the effective (V+2, d) table, and export folds it like a
pretrained source's (the exported graph and the runtime do not change). The bigram hash uses
integer Mul/Add/Mod over the two word ids only, so the exported graph computes it itself
(exporter/onnx_graph.py) and the runtime needs no change.
``seen`` is a persistent buffer: it is part of the saved weights, as the tables are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from metaprep.ids import BIGRAM_MULT, ID_OFFSET, UNK_ID
from metaprep.learn.subwords import subword_rows

__all__ = ["LearnedSource", "bigram_rows"]

INIT_SD = 0.01  # small random rows: a row trained from few examples is not drowned in noise


def bigram_rows(ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """(B,T) word ids -> (B,T-1) bucket of each pair (t, t+1)."""
    return (ids[:, :-1] * BIGRAM_MULT + ids[:, 1:]) % buckets


class FastDropout(nn.Module):
    """Dropout whose mask is one random byte an element below ``keep``/256 rather than a
    Bernoulli draw: the kept share is 1 - p rounded to 1/256 (the output is rescaled by the
    share kept, so its mean is kept exactly), at a fifth of the time on CPU (Bernoulli sampling
    was an eighth of a training step of the fast preset; a float draw an element half the
    rest)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.keep = min(256, max(1, round(256 * (1.0 - p))))  # of 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        # four uniform bytes from each 32-bit draw
        draws = torch.randint(-2**31, 2**31, ((n + 3) // 4,), dtype=torch.int32, device=x.device)
        keep = draws.view(torch.uint8)[:n].view(x.shape) < self.keep
        return x.mul(keep).mul_(256.0 / self.keep)


class LearnedSource(nn.Module):
    """Parameters: ``words`` (V+2, d), ``bigrams`` (buckets, d) if buckets, ``subwords``
    (subwords, d) if subwords. Buffers: ``seen`` (V+2,) bool, the words of the train split (set
    by :meth:`mark_seen`; saved), and with subwords ``ngrams`` (V+2, W) int32, each id's n-gram
    rows, -1 padded (rebuilt from ``words``, the store's vocabulary; not saved)."""

    seen: torch.Tensor
    ngrams: torch.Tensor

    def __init__(self, rows: int, dim: int, buckets: int, dropout: float, *,
                 sparse: bool = True, subwords: int = 0, words: Sequence[str] | None = None,
                 progress: bool = False) -> None:
        super().__init__()
        # sparse gradients: a step touches the rows of its batch only, not the whole table (a
        # dense Adam step over 200k bigram rows cost more than the rest of the model's step)
        self.sparse = sparse
        self.words = nn.Parameter(torch.randn(rows, dim) * INIT_SD)
        # zero bigram rows: a pair starts as a no-op and only what the data supports moves it
        self.bigrams = nn.Parameter(torch.zeros(buckets, dim)) if buckets else None
        self.register_buffer("seen", torch.zeros(rows, dtype=torch.bool))
        self.dropout = FastDropout(dropout)
        # n-gram rows start small random, as fastText's do; the word rows keep their start
        self.subwords = nn.Parameter(torch.randn(subwords, dim) * INIT_SD) if subwords else None
        if subwords:
            if words is None or len(words) + ID_OFFSET != rows:
                raise ValueError("subwords need the store's words, one per row after padding "
                                 "and UNK")
            if torch.get_default_device().type == "meta":  # a shell to check shapes with
                grams = torch.full((rows, 1), -1, dtype=torch.int32)
            else:
                grams = torch.from_numpy(subword_rows(words, subwords, progress=progress))
                pad = torch.full((ID_OFFSET, grams.shape[1]), -1, dtype=torch.int32)
                grams = torch.cat([pad, grams])
            self.register_buffer("ngrams", grams, persistent=False)

    @torch.no_grad()
    def mark_seen(self, ids: torch.Tensor) -> None:
        """The train split's word ids (any shape): only these get rows of their own."""
        self.seen.zero_()
        self.seen[ids.flatten()] = True
        self.seen[:2] = False  # padding and UNK are never words

    def word_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Row of each id: its own if seen in training, else the shared UNK row."""
        return torch.where(self.seen[ids], ids, torch.full_like(ids, UNK_ID))

    def presence(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) -> (...) bool: the word has a vector of its own (seen in training, or with
        n-grams); the others (UNK, padding) get the shared UNK row and count as absent."""
        if self.subwords is None:
            return self.seen[ids]
        return self.seen[ids] | (self.ngrams[ids, 0] >= 0)

    def vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) -> effective vectors (..., d), before dropout: the word's row, or with
        subwords the mean of its row (if seen) and its n-gram rows."""
        if self.subwords is None:
            return F.embedding(self.word_rows(ids), self.words, sparse=self.sparse)
        uniq, inverse = torch.unique(ids, return_inverse=True)  # each word's n-grams once
        return self._mean(uniq)[inverse]

    def _mean(self, ids: torch.Tensor) -> torch.Tensor:
        """(U,) distinct ids -> (U,d): mean of the own row (seen words, and words without
        n-grams: UNK's row) and the n-gram rows."""
        assert self.subwords is not None
        own = F.embedding(self.word_rows(ids), self.words, sparse=self.sparse)  # (U,d)
        grams = self.ngrams[ids]  # (U,W)
        have = grams >= 0
        count = have.sum(1)  # (U,)
        mine = (self.seen[ids] | (count == 0)).to(own.dtype)  # (U,)
        owner, slot = have.nonzero(as_tuple=True)  # (K,) the real n-grams only
        # each distinct row once (G <= K): a smaller sparse gradient for the optimizer to merge
        rows, which = torch.unique(grams[owner, slot].long(), return_inverse=True)  # (G,), (K,)
        vec = F.embedding(rows, self.subwords, sparse=self.sparse)  # (G,d)
        total = (own * mine[:, None]).index_add(0, owner, vec[which])  # (U,d)
        return total / (mine + count)[:, None]

    @torch.no_grad()
    def table(self, *, block: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
        """The effective (V+2, d) table and presence (V+2,) of every id, what export folds."""
        n = self.words.shape[0]
        out = torch.empty(n, self.words.shape[1], dtype=self.words.dtype)
        for start in range(0, n, block):
            out[start : start + block] = self.vectors(torch.arange(start, min(n, start + block)))
        return out, self.presence(torch.arange(n))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,T) -> word vectors (B,T,d)."""
        return self.dropout(self.vectors(ids))  # type: ignore[no-any-return]

    def pair_vectors(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """ids, valid (B,T) -> (B,T,d): the bigram (t, t+1) at step t, 0 where either is not a
        real token (and at the last step)."""
        assert self.bigrams is not None
        rows = bigram_rows(ids, self.bigrams.shape[0])  # (B,T-1)
        both = (valid[:, :-1] & valid[:, 1:])[..., None]  # (B,T-1,1)
        vec = F.embedding(rows, self.bigrams, sparse=self.sparse) * both  # (B,T-1,d)
        return self.dropout(F.pad(vec, (0, 0, 0, 1)))  # (B,T,d)
