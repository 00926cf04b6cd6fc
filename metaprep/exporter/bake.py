"""Baking a trained torch model into numpy for the ONNX graph (``GraphSpec``): every part of the
front end that depends on the word alone is computed once per id. Projections are multiplied
into the frozen tables (V x D per source), after each source's normalisation, and the word
features' score offsets become one (V+2, S) table; front ends without context (dme, sum,
single, concat) fold into one V x D table, so the exported front end is a single Gather. The
learned source is one more table per word (its character n-grams' rows already averaged in);
its word-bigram rows are kept apart (one Gather over the hashed pairs, added after the front
end)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from metaprep.errors import ExportError
from metaprep.exporter.graphspec import FrontSpec, GraphSpec, LSTMSpec

__all__ = ["lstm_spec", "spec_from_model"]


def lstm_spec(lstm: Any) -> LSTMSpec:
    """A one-layer bidirectional torch LSTM in ONNX layout (gates i,f,g,o -> i,o,f,c)."""
    if lstm.num_layers != 1 or not lstm.bidirectional or getattr(lstm, "proj_size", 0):
        raise ExportError("only one-layer bidirectional LSTMs without projection are exported")

    def get(name: str) -> np.ndarray:
        w = getattr(lstm, name).detach().cpu().float().numpy()
        i, f, g, o = np.split(w, 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    sfx = ("_l0", "_l0_reverse")
    return LSTMSpec(
        W=np.stack([get(f"weight_ih{s}") for s in sfx]),
        R=np.stack([get(f"weight_hh{s}") for s in sfx]),
        B=np.stack([np.concatenate([get(f"bias_ih{s}"), get(f"bias_hh{s}")]) for s in sfx]),
    )


def _rows(n: int, width: int, progress: bool, desc: str) -> Any:
    from tqdm import tqdm

    step = max(1, (32 << 20) // max(1, 4 * width))  # ~32 MiB of output per block
    return tqdm(range(0, n, step), desc=desc, unit="block", disable=not progress, leave=False,
                file=sys.stderr), step


def _fold(front: Any, dim: int, progress: bool) -> np.ndarray:
    """The whole front end evaluated once per id: (V+2, D). Row 0 (padding) comes out zero."""
    import torch

    n = front.present.shape[0]
    out = np.empty((n, dim), dtype=np.float32)
    blocks, step = _rows(n, dim * max(1, front.num_sources), progress, "folding front end")
    with torch.inference_mode():
        for start in blocks:
            ids = torch.arange(start, min(n, start + step)).unsqueeze(1)  # (n,1)
            meta, _ = front(ids, torch.ones(len(ids), dtype=torch.long))  # (n,1,D)
            out[start : start + len(ids)] = meta[:, 0].numpy()
    out[0] = 0.0  # already zero (padding); the graph relies on it to zero padded steps
    return out


def _source_table(front: Any, k: int) -> Any:
    """Source k's raw (V+2, d_k) table; the learned source's effective one (each id's own row,
    or the mean of it and its character n-grams' rows; the shared UNK row for absent words)."""
    if k < len(front.cfg.sources):
        return front.table(k)
    return front.learned.table()[0]


def _pairs(front: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The learned word-bigram table (buckets, d) and its map into meta space (d, D); or the table
    already mapped (buckets, D) when that is no larger, or for concat the raw table, whose rows
    land in the learned source's own last d columns (map None)."""
    learned = front.learned
    if learned is None or learned.bigrams is None:
        return None, None
    table = learned.bigrams.detach().cpu().float().numpy()
    if front.cfg.method == "concat":
        return table, None
    to_meta = front.proj[-1].weight.detach().cpu().float().numpy().T  # (d, D)
    if to_meta.shape[1] <= to_meta.shape[0]:  # no larger mapped: map once, no MatMul per batch
        return table @ to_meta, None
    return table, to_meta


def _bake(front: Any, k: int, progress: bool) -> np.ndarray:
    """Source k's table normalised and projected (concat: normalised only): (V+2, D)."""
    import torch

    table = _source_table(front, k)
    with torch.inference_mode():
        width = int(front.source_rows(k, table[:1]).shape[1])
        out = np.empty((table.shape[0], width), dtype=np.float32)
        blocks, step = _rows(table.shape[0], width, progress, f"baking source {k}")
        for start in blocks:
            out[start : start + step] = front.source_rows(k, table[start : start + step]).numpy()
    return out


def spec_from_model(model: Any, *, fold: bool, table_dtype: str = "float32",
                    progress: bool = False) -> GraphSpec:
    """Numpy weights and baked tables of a MetaEmbeddingClassifier (see docs/model.md)."""
    cfg, front = model.cfg, model.front
    if fold:
        fs = FrontSpec(method=cfg.method, dim=cfg.meta_dim,
                       folded=_fold(front, cfg.meta_dim, progress))
    else:
        import torch

        present = front.presence(torch.arange(front.present.shape[0])).numpy()
        tables = [_bake(front, k, progress) for k in range(front.num_sources)]
        fs = FrontSpec(
            method=cfg.method, dim=cfg.meta_dim, tables=tables,
            use=present.astype(np.float32) if cfg.mask_missing
            else np.ones(present.shape, np.float32),
            known=present.any(axis=1), unk=front.unk.detach().numpy(), gating=cfg.gating,
        )
        if cfg.method in ("dme", "cdme"):
            fs.scorer_w = front.scorer.weight.detach().numpy().T  # (D or 2h, 1)
            fs.scorer_b = front.scorer.bias.detach().numpy()
        if cfg.method == "cdme":
            fs.context = lstm_spec(front.context)
    fs.pair_table, fs.pair_map = _pairs(front)
    cls = model.classifier
    return GraphSpec(
        front=fs,
        encoder=cfg.encoder,
        encoder_lstm=lstm_spec(model.encoder.lstm) if cfg.encoder == "bilstm" else None,
        hidden_w=cls.hidden.weight.detach().numpy().T,
        hidden_b=cls.hidden.bias.detach().numpy(),
        out_w=cls.out.weight.detach().numpy().T,
        out_b=cls.out.bias.detach().numpy(),
        pair=cfg.pair,
        table_dtype=table_dtype,
        multilabel=cfg.task == "multilabel",
        encoder_convs=[(c.weight.detach().numpy(), c.bias.detach().numpy())
                       for c in model.encoder.convs] if cfg.encoder == "cnn" else [],
        pool_combiner=cfg.pool_combiner,
    )
