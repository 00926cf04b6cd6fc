"""Dynamic meta-embeddings (DME), contextual DME (CDME) and baselines, with a sentence encoder and
a classifier head: torch modules only (the config is in learn/config.py, the run directory in
learn/rundir.py). The structure is documented in docs/model.md.

    ids (B,T) -> MetaEmbedder -> meta (B,T,D), weights (B,T,S) -> encoder -> sentence (B,E)
              -> Classifier([u] or [u, v, |u-v|, u*v]) -> logits (B,C)

The source tables are frozen buffers (never saved with the weights: rebuilt from the store), and
the forward pass uses only plain ops (gather, matmul, softmax, LSTM over valid steps, 1-D
convolution, masked max/mean) so it can be rebuilt in ONNX.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metaprep.errors import ConfigError, ModelError, StoreError
from metaprep.ids import ID_OFFSET, PAD_ID
from metaprep.learn.config import RunConfig
from metaprep.learn.encoders import BiLSTMMax, Classifier, ConvMax, MaxMeanPool, run_lstm
from metaprep.learn.learned import LearnedSource
from metaprep.learn.scratch import Scratch
from metaprep.learn.sourcenorm import SourceNorm

__all__ = [
    "Classifier",
    "ConvMax",
    "Encoded",
    "MetaEmbedder",
    "MetaEmbeddingClassifier",
    "build_model",
    "load_tables",
    "store_words",
    "weights_state_dict",
]

_MASKED = -1e9  # score given to masked sources: exp() underflows to exactly 0, never NaN


# --- modules ------------------------------------------------------------------------------------
class Encoded(NamedTuple):
    meta: torch.Tensor  # (B,T,D) meta-embeddings, zeros at padding
    weights: torch.Tensor | None  # (B,T,S) mixing weights (dme/cdme), zeros at padding
    sentence: torch.Tensor  # (B,E) sentence vectors


def valid_mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,T) True at real tokens: before the length and not the padding id."""
    steps = torch.arange(ids.shape[1], device=ids.device)
    return (steps[None, :] < lengths[:, None]) & (ids != PAD_ID)


class MetaEmbedder(nn.Module):
    """ids (B,T) -> meta-embeddings (B,T,D) and per-source weights (B,T,S).

    Buffers (frozen, not in the state dict): ``table_{k}`` (V+2, d_k) for source k (rows 0 and 1,
    padding and UNK, are zeros) and ``present`` (V+2, S) bool. Parameters: ``proj[k]``
    Linear(d_k -> D) (not for concat), ``scorer`` Linear(D -> 1) (dme) or Linear(2h -> 1) (cdme),
    ``context`` BiLSTM(D -> h) (cdme), ``unk`` (D,), the vector of words no used source has,
    ``learned`` (learn/learned.py) when ``cfg.learned_dim``: source S-1 of the mix, present for
    the words of the train split; its word-bigram vectors are added after the mix, through its
    projection (concat: into its own columns). ``norm[k]`` (learn/sourcenorm.py) comes before each
    store source's projection.
    """

    present: torch.Tensor  # (V+2, S) bool buffer

    def __init__(
        self, cfg: RunConfig, tables: Sequence[torch.Tensor], present: torch.Tensor,
        words: Sequence[str] | None = None, *, progress: bool = False,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        if len(tables) != len(cfg.sources) or present.shape != (cfg.vocab_size + 2, len(tables)):
            raise ModelError("the source tables do not match the run config")
        for k, table in enumerate(tables):
            if tuple(table.shape) != (cfg.vocab_size + 2, cfg.source_dims[k]):
                raise ModelError(
                    f"table of source {cfg.sources[k]!r} has shape {tuple(table.shape)}"
                )
            self.register_buffer(f"table_{k}", table, persistent=False)
        self.register_buffer("present", present.bool(), persistent=False)
        self.norm = nn.ModuleList(SourceNorm(cfg.source_norm, t, present[:, k].bool())
                                  for k, t in enumerate(tables))
        dim = cfg.meta_dim
        self.learned = (LearnedSource(cfg.vocab_size + ID_OFFSET, cfg.learned_dim,
                                      cfg.learned_buckets, cfg.learned_dropout,
                                      subwords=cfg.learned_subwords, words=words,
                                      progress=progress)
                        if cfg.learned_dim else None)
        if cfg.method != "concat":
            self.proj = nn.ModuleList(nn.Linear(d, cfg.proj_dim) for d in cfg.all_dims)
        if cfg.method == "dme":
            self.scorer = nn.Linear(dim, 1)
        if cfg.method == "cdme":
            self.context = nn.LSTM(dim, cfg.context_hidden, batch_first=True, bidirectional=True)
            self.scorer = nn.Linear(2 * cfg.context_hidden, 1)
        self.unk = nn.Parameter(torch.randn(dim) * 0.1)

    @property
    def num_sources(self) -> int:
        """Sources in the mix: the store's, then the learned one."""
        return len(self.cfg.all_dims)

    @property
    def source_names(self) -> list[str]:
        return [*self.cfg.sources, *(["learned"] if self.learned is not None else [])]

    def presence(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) -> (..., S) bool: source k has the word (learned: seen in training, or with
        character n-grams)."""
        have = self.present[ids]
        if self.learned is None:
            return have
        return torch.cat([have, self.learned.presence(ids)[..., None]], -1)

    def start_learned(self, train_ids: torch.Tensor) -> None:
        """Before training: the learned source's words are those of ``train_ids``."""
        if self.learned is not None:
            self.learned.mark_seen(train_ids)

    def raw_vectors(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """ids (B,T) -> each source's vectors (B,T,d_k), before projection and masks."""
        raw = [F.embedding(ids, self.table(k)).float() for k in range(len(self.cfg.sources))]
        return raw if self.learned is None else [*raw, self.learned(ids)]

    def pair_term(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
        """ids, valid (B,T) -> the word-bigram vectors in meta space (B,T,D), or None."""
        if self.learned is None or self.learned.bigrams is None:
            return None
        vec = self.learned.pair_vectors(ids, valid)  # (B,T,d)
        if self.cfg.method == "concat":  # the learned source's columns are the last d
            return F.pad(vec, (self.cfg.meta_dim - vec.shape[-1], 0))
        proj: nn.Linear = self.proj[-1]  # type: ignore[assignment]
        return vec @ proj.weight.T  # (B,T,D): the projection without its bias

    def table(self, k: int) -> torch.Tensor:
        return getattr(self, f"table_{k}")  # type: ignore[no-any-return]

    def source_rows(self, k: int, rows: torch.Tensor) -> torch.Tensor:
        """Raw rows (..., d_k) of source k -> normalised and projected (..., D) (concat: only
        normalised; the learned source is trained, not normalised). Depends on the word alone:
        export bakes it into the tables."""
        x = self.norm[k](rows.float()) if k < len(self.norm) else rows.float()
        return x if self.cfg.method == "concat" else self.proj[k](x)  # type: ignore[no-any-return]

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.cfg
        B, T = ids.shape
        valid = valid_mask(ids, lengths)  # (B,T)
        present = self.presence(ids) & valid[..., None]  # (B,T,S) source k has this word
        known = present.any(-1)  # (B,T) some used source has it; otherwise the UNK vector
        use = present if cfg.mask_missing else valid[..., None].expand_as(present)  # (B,T,S)
        weights: torch.Tensor | None = None
        if cfg.method in ("sum", "single"):
            meta = self._sum(ids, valid, use)  # (B,T,D)
        else:
            rows = [self.source_rows(k, e) for k, e in enumerate(self.raw_vectors(ids))]
            #       S x (B,T,D) (concat: (B,T,d_k))
            if cfg.method == "concat":
                meta = torch.cat([e * use[..., k : k + 1] for k, e in enumerate(rows)], -1)
            else:
                proj = torch.stack(rows, 2)  # (B,T,S,D)
                weights = self._weights(proj, lengths, use)  # (B,T,S)
                meta = (weights[..., None] * proj).sum(2)  # (B,T,D)

        meta = torch.where(known[..., None], meta, self.unk)  # (B,T,D)
        pairs = self.pair_term(ids, valid)  # after the per-word part: that part still folds
        if pairs is not None:
            meta = meta + pairs
        meta = meta * valid[..., None]
        return meta, weights

    def _sum(self, ids: torch.Tensor, valid: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        """The sum of the used sources' projections (B,T,D). The store sources depend on the word
        alone, so they are computed once per distinct word of the batch (U rows, far fewer than
        B x T tokens) and then spread; the learned source, whose dropout differs per token, is
        computed per token."""
        store = len(self.cfg.sources)
        # past a text's length its ids are padding, whatever they hold: a batch's rows are then
        # the same however it is padded
        real = torch.where(valid, ids, torch.full_like(ids, PAD_ID))
        uniq, inverse = torch.unique(real, return_inverse=True)  # (U,), (B,T)
        have = self.present[uniq]  # (U,S_store)
        if not self.cfg.mask_missing:
            have = torch.ones_like(have)
        total = sum(self.source_rows(k, F.embedding(uniq, self.table(k)).float())
                    * have[:, k : k + 1] for k in range(store))  # (U,D)
        meta = total[inverse]  # type: ignore[index]  # (B,T,D)
        if self.learned is not None:
            mine = self.source_rows(store, self.learned(ids))  # (B,T,D)
            meta = meta + mine * use[..., store : store + 1]
        return meta  # type: ignore[no-any-return]

    def _weights(self, proj: torch.Tensor, lengths: torch.Tensor, use: torch.Tensor
                 ) -> torch.Tensor:
        B, T, S, D = proj.shape
        if self.cfg.method == "dme":
            scores = self.scorer(proj).squeeze(-1)  # (B,T,S)
        else:
            # each source's own projected sentence is one sequence: fold sources into the batch
            seqs = proj.permute(0, 2, 1, 3).reshape(B * S, T, D)  # (B*S,T,D), row b*S + s
            ctx = run_lstm(self.context, seqs, lengths.repeat_interleave(S))  # (B*S,T,2h)
            scores = self.scorer(ctx).reshape(B, S, T).transpose(1, 2)  # (B,T,S)
        if self.cfg.gating == "sigmoid":
            return torch.sigmoid(scores) * use
        masked = torch.where(use, scores, torch.full_like(scores, _MASKED))
        return torch.softmax(masked, -1) * use  # exactly 0 where not used (incl. padding)


class MetaEmbeddingClassifier(nn.Module):
    """``front`` (MetaEmbedder) + ``encoder`` (BiLSTMMax, MaxMeanPool or ConvMax) +
    ``classifier``."""

    def __init__(
        self, cfg: RunConfig, tables: Sequence[torch.Tensor], present: torch.Tensor,
        words: Sequence[str] | None = None, *, progress: bool = False,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.front = MetaEmbedder(cfg, tables, present, words, progress=progress)
        self.encoder: BiLSTMMax | MaxMeanPool | ConvMax
        if cfg.encoder == "bilstm":
            self.encoder = BiLSTMMax(cfg.meta_dim, cfg.hidden)
        elif cfg.encoder == "cnn":
            self.encoder = ConvMax(cfg.meta_dim, cfg.cnn_filters, cfg.cnn_widths)
        elif cfg.pool_combiner == "auto":  # a new run resolves it (learn/prepare.py)
            raise ConfigError("pool_combiner auto is picked from the train split when a run "
                              "starts; a model needs mean or sqrtn",
                              hint="the run's config.json was edited: put back its value")
        else:
            self.encoder = MaxMeanPool(cfg.meta_dim, cfg.pool_combiner)
        features = self.encoder.out_dim * (4 if cfg.pair else 1)
        self.classifier = Classifier(features, cfg.mlp_hidden, cfg.num_labels)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        """ids (B,T) int64, lengths (B,) int64 -> meta (B,T,D), weights (B,T,S), sentence (B,E).
        A length of 0 is read as 1 (one padding token: a zero vector)."""
        lengths = lengths.clamp(min=1, max=ids.shape[1])
        meta, weights = self.front(ids, lengths)
        valid = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        return Encoded(meta, weights, self.encoder(meta, lengths, valid))

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        ids_b: torch.Tensor | None = None,
        lengths_b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        u = self.encode(ids, lengths).sentence  # (B,E)
        if not self.cfg.pair:
            return self.head(u)
        if ids_b is None or lengths_b is None:
            raise ModelError("a sentence-pair model needs ids_b and lengths_b")
        return self.head(u, self.encode(ids_b, lengths_b).sentence)

    def head(self, u: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B,C) from sentence vectors (B,E); a pair's features are [u, v, |u-v|, u*v]."""
        if v is None:
            return self.classifier(u)  # type: ignore[no-any-return]
        return self.classifier(torch.cat([u, v, (u - v).abs(), u * v], -1))  # type: ignore[no-any-return]


# --- building from a store ----------------------------------------------------------------------
def load_tables(
    store: Any, cfg: RunConfig, *, progress: bool = True, scratch: Scratch | None = None
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Read the used sources from an open Store into (V+2, d_k) tables and the (V+2, S) mask.
    float16 sources stay float16 (cast after the gather). With ``scratch`` (learn/scratch.py) each
    table is written to a file there and memory-mapped (learn/scratch.py): a
    multi-million-word table is then page cache, not the process's memory."""
    if store.vocab_size != cfg.vocab_size:
        raise StoreError(
            f"the store has {store.vocab_size} words but the run expects {cfg.vocab_size}",
            path=store.path, hint="use the store the run was trained on",
        )
    tables: list[torch.Tensor] = []
    present = torch.zeros(cfg.vocab_size + ID_OFFSET, len(cfg.sources), dtype=torch.bool)
    for k, (name, dim) in enumerate(zip(cfg.sources, cfg.source_dims, strict=True)):
        if store.dim(name) != dim:  # store.dim names the store's sources if name is not one
            raise StoreError(
                f"source {name!r} has dimension {store.dim(name)}, the run expects {dim}",
                path=store.path,
            )
        ds = store.vectors(name)
        dtype = np.float16 if ds.dtype == np.float16 else np.float32
        shape = (cfg.vocab_size + ID_OFFSET, dim)

        def blocks(ds: Any = ds, name: str = name, dim: int = dim) -> Iterator[np.ndarray]:
            return _store_rows(ds, name, dim, cfg.vocab_size, progress=progress)

        table = (scratch or Scratch(None)).array(shape, dtype, blocks)
        tables.append(torch.from_numpy(table))
        have = store.present(name)
        if cfg.use_derived:
            have = have | store.derived(name)
        present[ID_OFFSET:, k] = torch.from_numpy(have)
    return tables, present


def _store_rows(ds: Any, name: str, dim: int, rows: int, *, progress: bool
                ) -> Iterator[np.ndarray]:
    """A table's rows in blocks: padding and UNK (zeros), then the store's, ~64 MiB a read."""
    from tqdm import tqdm

    yield np.zeros((ID_OFFSET, dim), dtype=ds.dtype)
    step = max(1, (64 << 20) // (dim * 4))
    with tqdm(total=rows, desc=f"loading {name}", unit="row", disable=not progress,
              leave=False) as bar:
        for start in range(0, rows, step):
            block = np.asarray(ds[start : start + step])
            yield block
            bar.update(len(block))


def build_model(store: Any, cfg: RunConfig, *, progress: bool = True,
                scratch: Scratch | None = None) -> MetaEmbeddingClassifier:
    """A freshly initialised model (seed it first) whose frozen tables come from the store
    (mapped from files in ``scratch``, see load_tables)."""
    tables, present = load_tables(store, cfg, progress=progress, scratch=scratch)
    return MetaEmbeddingClassifier(cfg, tables, present, store_words(store, cfg),
                                   progress=progress)


def store_words(store: Any, cfg: RunConfig) -> list[str] | None:
    """The store's words when the model needs them (word features, the learned source's
    character n-grams), else None."""
    need = cfg.learned_dim and cfg.learned_subwords
    return list(store.vocab) if need else None


def weights_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable state (everything but the frozen tables), unwrapping DDP: views of the live
    tensors (no copy), for writing at once."""
    inner = getattr(model, "module", model)
    return {k: v.detach().contiguous() for k, v in inner.state_dict().items()}
