"""What a model's ONNX graph is built from: its weights as plain numpy arrays, with everything
that depends on the word alone already computed (exporter/bake.py makes them from a torch model;
onnx_graph.py writes the graph). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FOLDABLE", "FrontSpec", "GraphSpec", "LSTMSpec"]

FOLDABLE = ("dme", "sum", "single", "concat")  # front ends that depend on the word alone


@dataclass
class LSTMSpec:
    """One bidirectional LSTM layer in ONNX layout (gates i, o, f, c; forward then reverse)."""

    W: np.ndarray  # (2, 4h, in)
    R: np.ndarray  # (2, 4h, h)
    B: np.ndarray  # (2, 8h): input bias then recurrent bias

    @property
    def hidden(self) -> int:
        return int(self.R.shape[2])


@dataclass
class FrontSpec:
    """ids -> meta-embeddings. Either ``folded`` (one (N,D) table: the whole front end per id) or
    the per-source pieces, with everything that depends on the word alone precomputed."""

    method: str  # dme | cdme | concat | sum | single
    dim: int  # D
    folded: np.ndarray | None = None  # (N, D); row 0 (padding) must be all zeros
    tables: list[np.ndarray] = field(default_factory=list)  # (N, D) projected (raw for concat)
    use: np.ndarray | None = None  # (N, S) float32: 1 where source k counts for the word
    known: np.ndarray | None = None  # (N,) bool: some source has the word (else the UNK vector)
    unk: np.ndarray | None = None  # (D,)
    gating: str = "softmax"
    scorer_w: np.ndarray | None = None  # (D or 2h, 1)
    scorer_b: np.ndarray | None = None  # (1,)
    context: LSTMSpec | None = None  # cdme
    # the learned source's word bigrams (learn/learned.py), added after the front end
    pair_table: np.ndarray | None = None  # (buckets, d), or (buckets, D) already mapped
    pair_map: np.ndarray | None = None  # (d, D) into meta space; None: the last d columns


@dataclass
class GraphSpec:
    front: FrontSpec
    encoder: str  # bilstm | pool | cnn
    encoder_lstm: LSTMSpec | None
    hidden_w: np.ndarray  # (F, H) (transposed torch weight: x @ W)
    hidden_b: np.ndarray
    out_w: np.ndarray  # (H, C)
    out_b: np.ndarray
    pair: bool = False
    table_dtype: str = "float32"  # float32 | float16 (cast to float32 after the gather)
    multilabel: bool = False  # probabilities: a sigmoid per label instead of a softmax
    # cnn: per width, the Conv kernel (C, D, w) and bias (C,)
    encoder_convs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    pool_combiner: str = "mean"  # pool: the sum over n words (mean) or over sqrt(n) (sqrtn)
