"""Dynamic meta-embeddings (DME), contextual DME (CDME) and baselines, with a sentence encoder and
a classifier head. The structure and the run directory are documented in docs/model.md.

    ids (B,T) -> MetaEmbedder -> meta (B,T,D), weights (B,T,S) -> encoder -> sentence (B,E)
              -> Classifier([u] or [u, v, |u-v|, u*v]) -> logits (B,C)

The source tables are frozen buffers (never saved with the weights: rebuilt from the store), and
the forward pass uses only plain ops (gather, matmul, softmax, LSTM over valid steps, masked
max/mean) so it can be rebuilt in ONNX.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from metaprep.atomic import atomic_path
from metaprep.errors import ConfigError, ModelError, StoreError
from metaprep.ids import ID_OFFSET, PAD_ID
from metaprep.tokenize import TokenizerConfig

__all__ = [
    "ENCODERS",
    "METHODS",
    "Classifier",
    "Encoded",
    "MetaEmbedder",
    "MetaEmbeddingClassifier",
    "RunConfig",
    "StoreRef",
    "atomic_path",
    "build_model",
    "load_run",
    "load_tables",
    "read_json",
    "read_run_info",
    "weights_state_dict",
    "write_json",
]

METHODS = ("dme", "cdme", "concat", "sum", "single")
ENCODERS = ("bilstm", "pool")
_MASKED = -1e9  # score given to masked sources: exp() underflows to exactly 0, never NaN


# --- configuration ------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """Everything needed to rebuild the model and repeat the run (saved as config.json)."""

    # model structure
    # dme | cdme | concat | sum | single (one source's projection). concat is the default because
    # it won our measured comparison (benchmarks/results/methods*.md: +2 to +4 points over dme).
    method: str = "concat"
    sources: list[str] = field(default_factory=list)  # store sources used, in this order
    source_dims: list[int] = field(default_factory=list)  # their dimensions (checked at load)
    vocab_size: int = 0  # store rows; model ids are 0 pad, 1 UNK, row + 2
    proj_dim: int = 256  # d': the paper's projection size
    gating: str = "softmax"  # softmax over sources per token, or an independent sigmoid each
    context_hidden: int = 2  # CDME BiLSTM units per direction (2 in the paper: a tiny scorer)
    mask_missing: bool = True  # absent sources get weight 0 (False: the paper, zero vectors mix in)
    use_derived: bool = True  # rows align derived from the word (subword, map) count as present
    mix_relu: bool = False  # ReLU after the mix (the paper's code has it as an option)
    mix_dropout: float = 0.0  # dropout on the meta-embeddings
    encoder: str = "bilstm"  # bilstm (BiLSTM-max) | pool (concatenated max and mean, no recurrence)
    hidden: int = 512  # BiLSTM units per direction (InferSent / DME default)
    mlp_hidden: int = 512  # classifier hidden layer
    num_labels: int = 2  # filled from the training labels
    pair: bool = False  # sentence-pair task: features [u, v, |u-v|, u*v]
    # training
    lr: float = 4e-4  # Adam, as in the paper
    lr_decay: float = 0.2  # lr *= lr_decay when the dev metric does not improve
    min_lr: float = 1e-5  # stop once the lr decays below this
    patience: int = 3  # stop after this many epochs without dev improvement
    epochs: int = 10
    batch_size: int = 64
    grad_clip: float = 5.0  # max gradient norm
    seed: int = 0  # weights, batch order and dropout all derive from it
    checkpoint_steps: int = 0  # also checkpoint every N steps inside an epoch (0: epoch ends only)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, *, path: str | Path | None = None) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"config key {key!r}: {why}", path=path)

        if self.method not in METHODS:
            raise bad("method", f"must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.encoder not in ENCODERS:
            raise bad("encoder", f"must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        if self.gating not in ("softmax", "sigmoid"):
            raise bad("gating", f"must be softmax or sigmoid, not {self.gating!r}")
        if len(self.sources) != len(self.source_dims):
            raise bad("source_dims", "needs one dimension per source")
        if self.method == "single" and len(self.sources) != 1:
            raise bad("sources", "method single uses exactly one source")
        if len(set(self.sources)) != len(self.sources):
            raise bad("sources", "a source is named twice")
        for key in ("proj_dim", "context_hidden", "hidden", "mlp_hidden", "batch_size", "epochs",
                    "patience"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        if self.checkpoint_steps < 0:
            raise bad("checkpoint_steps", "must be 0 (epoch ends only) or more")
        if not 0.0 < self.lr_decay <= 1.0:
            raise bad("lr_decay", "must be in (0, 1]")
        for key in ("lr", "grad_clip"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be above 0")
        if not 0.0 <= self.mix_dropout < 1.0:
            raise bad("mix_dropout", "must be in [0, 1)")
        if self.num_labels < 2:
            raise bad("num_labels", "a classifier needs at least 2 labels")

    @property
    def meta_dim(self) -> int:
        """D, the size of one meta-embedding."""
        return sum(self.source_dims) if self.method == "concat" else self.proj_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | Path | None = None) -> RunConfig:
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ConfigError(
                f"unknown config key(s): {', '.join(unknown)}", path=path,
                hint="the run was written by another metaprep version, or edited by hand",
            )
        for key, value in data.items():
            kinds: dict[str, type | tuple[type, ...]] = {
                "str": str, "int": int, "float": (int, float), "bool": bool
            }
            want = kinds.get(str(types[key]), list)
            ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
            if not ok:
                raise ConfigError(f"config key {key!r} has the wrong type: {value!r}", path=path)
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=path) from exc


@dataclass
class StoreRef:
    """Which store a run was trained on (saved as store.json)."""

    path: str
    sha256: str
    vocab_size: int
    case_policy: str

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | Path | None = None) -> StoreRef:
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"bad store reference: {exc}", path=path) from exc


# --- modules ------------------------------------------------------------------------------------
class Encoded(NamedTuple):
    meta: torch.Tensor  # (B,T,D) meta-embeddings, zeros at padding
    weights: torch.Tensor | None  # (B,T,S) mixing weights (dme/cdme), zeros at padding
    sentence: torch.Tensor  # (B,E) sentence vectors


def valid_mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,T) True at real tokens: before the length and not the padding id."""
    steps = torch.arange(ids.shape[1], device=ids.device)
    return (steps[None, :] < lengths[:, None]) & (ids != PAD_ID)


def _run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Bidirectional LSTM over the first ``lengths`` steps only (padding is never read).
    x (N,T,d) -> (N,T,2h), zeros after each length."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out


class MetaEmbedder(nn.Module):
    """ids (B,T) -> meta-embeddings (B,T,D) and per-source weights (B,T,S).

    Buffers (frozen, not in the state dict): ``table_{k}`` (V+2, d_k) for source k (rows 0 and 1,
    padding and UNK, are zeros) and ``present`` (V+2, S) bool. Parameters: ``proj[k]``
    Linear(d_k -> D) (not for concat), ``scorer`` Linear(D -> 1) (dme) or Linear(2h -> 1) (cdme),
    ``context`` BiLSTM(D -> h) (cdme), ``unk`` (D,), the vector of words no used source has.
    """

    present: torch.Tensor  # (V+2, S) bool buffer

    def __init__(
        self, cfg: RunConfig, tables: Sequence[torch.Tensor], present: torch.Tensor
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
        dim = cfg.meta_dim
        if cfg.method != "concat":
            self.proj = nn.ModuleList(nn.Linear(d, cfg.proj_dim) for d in cfg.source_dims)
        if cfg.method == "dme":
            self.scorer = nn.Linear(dim, 1)
        if cfg.method == "cdme":
            self.context = nn.LSTM(dim, cfg.context_hidden, batch_first=True, bidirectional=True)
            self.scorer = nn.Linear(2 * cfg.context_hidden, 1)
        self.unk = nn.Parameter(torch.randn(dim) * 0.1)
        self.dropout = nn.Dropout(cfg.mix_dropout)

    @property
    def num_sources(self) -> int:
        return len(self.cfg.sources)

    def table(self, k: int) -> torch.Tensor:
        return getattr(self, f"table_{k}")  # type: ignore[no-any-return]

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.cfg
        B, T = ids.shape
        valid = valid_mask(ids, lengths)  # (B,T)
        present = self.present[ids] & valid[..., None]  # (B,T,S) source k has this word
        known = present.any(-1)  # (B,T) some used source has it; otherwise the UNK vector
        use = present if cfg.mask_missing else valid[..., None].expand_as(present)
        raw = [F.embedding(ids, self.table(k)).float() for k in range(self.num_sources)]

        weights: torch.Tensor | None = None
        if cfg.method == "concat":
            meta = torch.cat([e * use[..., k : k + 1] for k, e in enumerate(raw)], -1)  # (B,T,D)
        else:
            proj = torch.stack([p(e) for p, e in zip(self.proj, raw, strict=True)], 2)  # (B,T,S,D)
            if cfg.method in ("sum", "single"):
                meta = (proj * use[..., None]).sum(2)  # (B,T,D)
            else:
                weights = self._weights(proj, lengths, use)  # (B,T,S)
                meta = (weights[..., None] * proj).sum(2)  # (B,T,D)

        meta = torch.where(known[..., None], meta, self.unk)  # (B,T,D)
        if cfg.mix_relu:
            meta = F.relu(meta)
        meta = self.dropout(meta) * valid[..., None]
        return meta, weights

    def _weights(
        self, proj: torch.Tensor, lengths: torch.Tensor, use: torch.Tensor
    ) -> torch.Tensor:
        B, T, S, D = proj.shape
        if self.cfg.method == "dme":
            scores = self.scorer(proj).squeeze(-1)  # (B,T,S)
        else:
            # each source's own projected sentence is one sequence: fold sources into the batch
            seqs = proj.permute(0, 2, 1, 3).reshape(B * S, T, D)  # (B*S,T,D), row b*S + s
            ctx = _run_lstm(self.context, seqs, lengths.repeat_interleave(S))  # (B*S,T,2h)
            scores = self.scorer(ctx).reshape(B, S, T).transpose(1, 2)  # (B,T,S)
        if self.cfg.gating == "sigmoid":
            return torch.sigmoid(scores) * use
        masked = torch.where(use, scores, torch.full_like(scores, _MASKED))
        return torch.softmax(masked, -1) * use  # exactly 0 where not used (incl. padding)


class BiLSTMMax(nn.Module):
    """meta (B,T,D) -> (B,2H): BiLSTM, then max over valid steps only."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(
        self, meta: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        out = _run_lstm(self.lstm, meta, lengths)  # (B,T,2H)
        return out.masked_fill(~valid[..., None], float("-inf")).max(1).values


class MaxMeanPool(nn.Module):
    """meta (B,T,D) -> (B,2D): [max, mean] over valid steps, no recurrence."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = 2 * dim

    def forward(
        self, meta: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        mx = meta.masked_fill(~valid[..., None], float("-inf")).max(1).values  # (B,D)
        count = valid.sum(1, keepdim=True).clamp(min=1).to(meta.dtype)  # (B,1)
        mean = (meta * valid[..., None]).sum(1) / count  # (B,D)
        return torch.cat([mx, mean], -1)


class Classifier(nn.Module):
    """features (B,F) -> logits (B,C): Linear ``hidden``, ReLU, Linear ``out``."""

    def __init__(self, in_dim: int, hidden: int, num_labels: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x)))  # type: ignore[no-any-return]


class MetaEmbeddingClassifier(nn.Module):
    """``front`` (MetaEmbedder) + ``encoder`` (BiLSTMMax or MaxMeanPool) + ``classifier``."""

    def __init__(
        self, cfg: RunConfig, tables: Sequence[torch.Tensor], present: torch.Tensor
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.front = MetaEmbedder(cfg, tables, present)
        self.encoder: BiLSTMMax | MaxMeanPool = (
            BiLSTMMax(cfg.meta_dim, cfg.hidden) if cfg.encoder == "bilstm"
            else MaxMeanPool(cfg.meta_dim)
        )
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
    store: Any, cfg: RunConfig, *, progress: bool = True
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Read the used sources from an open Store into (V+2, d_k) tables and the (V+2, S) mask.
    float16 sources stay float16 in memory (cast after the gather)."""
    from tqdm import tqdm

    if store.vocab_size != cfg.vocab_size:
        raise StoreError(
            f"the store has {store.vocab_size} words but the run expects {cfg.vocab_size}",
            path=store.path, hint="use the store the run was trained on",
        )
    tables: list[torch.Tensor] = []
    present = torch.zeros(cfg.vocab_size + ID_OFFSET, len(cfg.sources), dtype=torch.bool)
    for k, (name, dim) in enumerate(zip(cfg.sources, cfg.source_dims, strict=True)):
        if store.dim(name) != dim:  # store.dim names the store's sources when name is not one
            raise StoreError(
                f"source {name!r} has dimension {store.dim(name)}, the run expects {dim}",
                path=store.path,
            )
        ds = store.vectors(name)
        dtype = torch.float16 if ds.dtype == np.float16 else torch.float32
        table = torch.zeros(cfg.vocab_size + ID_OFFSET, dim, dtype=dtype)
        step = max(1, (64 << 20) // (dim * 4))  # ~64 MiB per read
        bar = tqdm(total=cfg.vocab_size, desc=f"loading {name}", unit="row",
                   disable=not progress, leave=False)
        for start in range(0, cfg.vocab_size, step):
            block = np.asarray(ds[start : start + step])
            table[start + ID_OFFSET : start + ID_OFFSET + len(block)] = torch.from_numpy(
                block.astype(np.float16 if dtype == torch.float16 else np.float32, copy=False)
            )
            bar.update(len(block))
        bar.close()
        tables.append(table)
        have = store.present(name)
        if cfg.use_derived:
            have = have | store.derived(name)
        present[ID_OFFSET:, k] = torch.from_numpy(have)
    return tables, present


def build_model(store: Any, cfg: RunConfig, *, progress: bool = True) -> MetaEmbeddingClassifier:
    """A freshly initialised model (seed it first) whose frozen tables come from the store."""
    tables, present = load_tables(store, cfg, progress=progress)
    return MetaEmbeddingClassifier(cfg, tables, present)


def weights_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable state (everything but the frozen tables), unwrapping DDP."""
    inner = getattr(model, "module", model)
    return {k: v.detach().clone().contiguous() for k, v in inner.state_dict().items()}


# --- the run directory --------------------------------------------------------------------------
def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    if not path.exists():
        raise ModelError(f"missing {path.name}", path=path.parent, hint="is this a run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable JSON: {exc}", path=path) from exc


def load_run(
    run_dir: str | Path,
    *,
    store_path: str | Path | None = None,
    weights: str = "best",
    verify_store: bool = True,
    progress: bool = False,
) -> tuple[MetaEmbeddingClassifier, RunConfig, list[str], TokenizerConfig]:
    """Rebuild a trained model: (model in eval mode, config, labels by class id, tokenizer).

    The store is the recorded one unless ``store_path`` is given; its sha256 must match the
    run's record (``verify_store=False`` skips hashing a multi-GB file you trust)."""
    from safetensors.torch import load_file

    from metaprep.prep.store import Store

    run = Path(run_dir)
    cfg, labels, tok, ref = read_run_info(run)
    spath = Path(store_path) if store_path is not None else Path(ref.path)
    with Store(spath) as store:
        if verify_store and store.sha256() != ref.sha256:
            raise StoreError(
                f"sha256 {store.sha256()[:12]}... differs from the run's store "
                f"({ref.sha256[:12]}...)", path=spath,
                hint="pass the store the run was trained on (--store)",
            )
        model = build_model(store, cfg, progress=progress)
    wpath = run / f"{weights}.safetensors"
    if not wpath.exists():
        raise ModelError(f"missing {wpath.name}", path=run, hint="did training finish an epoch?")
    try:
        state = load_file(str(wpath))
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"weights do not fit the config: {exc}", path=wpath) from exc
    model.eval()
    return model, cfg, labels, tok


def read_run_info(
    run_dir: str | Path,
) -> tuple[RunConfig, list[str], TokenizerConfig, StoreRef]:
    """The small files of a run: config, labels, tokenizer and store reference (no weights)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ModelError("no such run directory", path=run)
    cfg = RunConfig.from_dict(read_json(run / "config.json"), path=run / "config.json")
    labels = read_json(run / "labels.json")
    if not isinstance(labels, list) or len(labels) != cfg.num_labels:
        raise ModelError(f"expected a list of {cfg.num_labels} labels", path=run / "labels.json")
    try:
        tok = TokenizerConfig.from_dict(read_json(run / "tokenizer.json"))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"bad tokenizer config: {exc}", path=run / "tokenizer.json") from exc
    ref = StoreRef.from_dict(read_json(run / "store.json"), path=run / "store.json")
    return cfg, [str(x) for x in labels], tok, ref
