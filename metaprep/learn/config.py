"""The run's configuration: everything needed to rebuild the model and repeat the training
(saved as ``config.json`` in the run directory, see docs/model.md). No torch here: the CLI, the
pipeline and the run directory read it without loading the model code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError
from metaprep.tokenize import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT

__all__ = ["ENCODERS", "FILLED", "LIMITS", "MAX_WEIGHTS", "METHODS", "NORMS", "PRESETS",
           "RANGES", "SEED_STEP", "RunConfig", "number_problem", "preset_values"]

NORMS = ("none", "center", "scale", "layernorm")  # source_norm (learn/levers.py)
METHODS = ("dme", "cdme", "concat", "sum", "single")
ENCODERS = ("bilstm", "pool", "cnn")
# keys train fills from the store and the data; a caller's value for them is not an option
FILLED = ("source_dims", "vocab_size", "num_labels", "pair")
# Upper bounds, so that a config.json edited by hand (or a typo on the command line) is refused
# before anything is allocated. Each is far above what any measured run used (the paper's sizes
# are 256-512; our largest store has 400k words and 57 labels).
LIMITS = {"proj_dim": 16384, "hidden": 16384, "cnn_filters": 16384, "mlp_hidden": 16384,
          "context_hidden": 1024, "batch_size": 65536, "epochs": 100_000, "patience": 100_000,
          "checkpoint_steps": 10**9, "num_labels": 1_000_000, "vocab_size": 2**31 - 3,
          "learned_dim": 65536, "learned_buckets": 2**31 - 1, "learned_subwords": 2**31 - 1,
          "members": 64, "teacher_members": 64, "seed": 2**32 - 1,
          "max_tokens": MAX_TOKENS_LIMIT}
# The range of every float option (low, high), both ends included but those the two sets below
# exclude; each must also be finite (a NaN passes no comparison; an infinite lr trains on NaN).
# The bounds are far beyond any useful value: they keep a typo from training on nonsense.
RANGES: dict[str, tuple[float, float]] = {
    "mix_dropout": (0.0, 1.0), "source_dropout": (0.0, 1.0), "learned_dropout": (0.0, 1.0),
    "mix_entropy": (-1000.0, 1000.0), "learned_weight_decay": (0.0, 1000.0),
    "learned_lr_scale": (0.0, 1e6), "pos_weight": (0.0, 1e6), "lr": (0.0, 10.0),
    "lr_decay": (0.0, 1.0), "min_lr": (0.0, 10.0), "grad_clip": (0.0, 1e6),
    "teacher_weight": (0.0, 1.0), "teacher_temperature": (0.0, 1000.0)}
_ABOVE_LOW = {"learned_lr_scale", "lr", "lr_decay", "grad_clip", "teacher_temperature"}
_BELOW_HIGH = {"mix_dropout", "source_dropout", "learned_dropout"}
_AT_LEAST_1 = ("proj_dim", "context_hidden", "hidden", "cnn_filters", "mlp_hidden",
               "batch_size", "epochs", "patience", "members", "max_tokens")
_AT_LEAST_0 = ("checkpoint_steps", "learned_dim", "learned_buckets", "learned_subwords",
               "seed", "vocab_size", "teacher_members")
SEED_STEP = 1000  # ensemble member k trains with seed + SEED_STEP k (learn/ensemble.py)
MAX_SOURCES = 64
MAX_CNN_WIDTH = 64  # tokens a filter spans: far beyond an n-gram worth a filter
MAX_SOURCE_DIM = 65536
# Trainable weights (the embedding tables are the store's, not counted): 500 M float32 weights
# are 2 GB, and training holds about four copies (weights, gradients, Adam's two moments).
MAX_WEIGHTS = 500_000_000


# Measured recipes (benchmarks/results/frontier-*.md) a user picks by purpose; the CLI's
# `--preset`, TrainOptions.preset and pipelines' `preset` key. Options given explicitly win; the
# saved config records the resolved values.
PRESETS: dict[str, dict[str, Any]] = {
    # serving speed first: one model, a sum of small projections and the pooled encoder, plus
    # the learned source with word bigrams (the words no pretrained source has); a per-source
    # LayerNorm (folded into the tables at export: no cost in serving) keeps the learned source
    # from swamping the pretrained ones on a small task (benchmarks/results/learned-sweep.md,
    # learned-mix.md); dropout 0.7 on the learned vectors, up to 15 epochs (early stopping on
    # dev; preset-sweep.md). It is taught by the `accurate` ensemble of its seed, which it
    # trains first (RUN/teacher; learn/teacher.py), learning from the ensemble's probabilities
    # softened at T 2 instead of the labels: 4x the training time, the serving cost of one
    # model. Taught against untaught, 3 seeds, test % (benchmarks/results/teacher.md):
    # Debian 78.5 +- 0.3 against 77.7 +- 0.0, fortunes 77.8 against 76.7.
    "fast": {"method": "sum", "encoder": "pool", "proj_dim": 64, "mlp_hidden": 256,
             "learned_dim": 64, "learned_buckets": 200_000, "learned_lr_scale": 30.0,
             "learned_dropout": 0.7, "lr": 1e-3, "source_norm": "layernorm", "epochs": 15,
             "teacher_members": 3, "teacher_weight": 1.0, "teacher_temperature": 2.0},
    # accuracy first: an ensemble of three such models untaught (learn/ensemble.py), their
    # probabilities averaged. 3 ensembles of 3 against the 9 models alone (test %, 2026-12-02,
    # benchmarks/results/ensembles.md): Debian 79.2 +- 0.3 against 77.8 +- 0.2, fortunes
    # 78.2 +- 1.8 against 76.3 +- 1.0; the most accurate system on both tasks of the frontier
    # (on Debian only level with TF-IDF + a linear SVM: 79.0 +- 0.2 against 79.0;
    # benchmarks/results/frontier-*.md), serving at about half `fast`'s sentences/s.
    "accurate": {"method": "sum", "encoder": "pool", "proj_dim": 64, "mlp_hidden": 256,
                 "learned_dim": 64, "learned_buckets": 200_000, "learned_lr_scale": 30.0,
                 "learned_dropout": 0.7, "lr": 1e-3, "source_norm": "layernorm", "epochs": 15,
                 "members": 3},
}


def number_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is no good for the number option ``key``, or None. The one check of every
    number a run takes: RunConfig.validate and the train stage's options (so a pipeline's
    [train] keys too, when its file is loaded) use it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # not a number: from_dict and the callers check types
    if key in RANGES:
        low, high = RANGES[key]
        above, below = key in _ABOVE_LOW, key in _BELOW_HIGH
        if not (math.isfinite(value) and (value > low if above else value >= low)
                and (value < high if below else value <= high)):
            span = f"{'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
            return f"must be a finite number in {span}, not {value!r}"
    elif key in _AT_LEAST_1 and value < 1:
        return f"must be at least 1, not {value!r}"
    elif key in _AT_LEAST_0 and value < 0:
        return f"must be 0 or more, not {value!r}"
    if key in LIMITS and value > LIMITS[key]:
        return f"must be at most {LIMITS[key]:,} (not {value:,})"
    return None


def preset_values(name: str | None) -> dict[str, Any]:
    """The option values of preset ``name`` (none: {}); an unknown name is a ConfigError."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


# keys whose default changed after runs were saved without them: such a run was trained with
# the old value, which a config.json lacking the key therefore means
PREDATES: dict[str, Any] = {"source_norm": "none", "feature_freq": "rank"}


@dataclass
class RunConfig:
    """Everything needed to rebuild the model and repeat the run (saved as config.json)."""

    # model structure
    # dme | cdme | concat | sum | single (one source's projection). dme, with the layernorm
    # source_norm below: the best front end by dev accuracy on both tasks of the ablation
    # (benchmarks/results/levers.md), level with sum and far ahead of concat with the pooled
    # encoder, level with concat with the BiLSTM (fortunes)
    method: str = "dme"
    sources: list[str] = field(default_factory=list)  # in this order; empty: all the store has
    source_dims: list[int] = field(default_factory=list)  # filled from the store, checked at load
    vocab_size: int = 0  # filled from the store (ids: 0 pad, 1 UNK, row + 2)
    proj_dim: int = 256  # d': the paper's projection size
    gating: str = "softmax"  # the paper's choice: weights that sum to 1 (sigmoid: each its own)
    context_hidden: int = 2  # CDME BiLSTM units per direction (2 in the paper: a tiny scorer)
    # absent sources get weight 0, since a zero vector is no evidence (False: as in the paper,
    # zero vectors mix in)
    mask_missing: bool = True
    use_derived: bool = True  # rows align derived from the word itself (subword, map) are real
    #                           estimates, so they count as present
    mix_relu: bool = False  # off as in the paper; its code has a ReLU after the mix as an option
    mix_dropout: float = 0.0  # dropout on the meta-embeddings; off unless asked, as in the paper
    # levers of the front end (learn/levers.py; measured in benchmarks/results/levers.md)
    # none | center | scale | layernorm, before each projection. layernorm: it raised dme by 4.3
    # (fortunes) and 1.3 (debian) points and sum by 0.6 and 0.8 (benchmarks/results/levers.md)
    source_norm: str = "layernorm"
    # the next three did not help by more than the seed spread on both tasks (levers.md): off
    word_features: bool = False  # FAME-style word features into the dme/cdme scorer
    # the word features' frequency bin: "train" counts of the train split (saved with the
    # weights), or "rank" the store row's rank (runs saved before "train" existed: the rank
    # counts the words of every file align read, dev and test included)
    feature_freq: str = "train"
    source_dropout: float = 0.0  # drop whole sources per token in training (dme/cdme/sum)
    mix_entropy: float = 0.0  # loss += this x the mean entropy of the mixing weights (dme/cdme)
    # BiLSTM-max as in the paper | pool (max and mean, no recurrence) | cnn (convolutions of
    # several widths, max over time)
    encoder: str = "bilstm"
    hidden: int = 512  # BiLSTM units per direction (InferSent / DME default)
    # cnn: filters per width, and the widths (tokens each filter spans). Short texts are the
    # norm (a Debian description has ~8 tokens), so uni- to trigrams rather than Kim's 3-5
    # (2,3,4 was no better on fortunes). 64 filters against 128, with the fast preset, 3 seeds:
    # fortunes 76.2 +- 0.6 vs 74.6 +- 0.6 %, Debian 77.6 +- 0.5 vs 77.4 +- 1.0 %, and served
    # 1.7-2x faster (benchmarks/results/encoders.md)
    cnn_filters: int = 64
    cnn_widths: list[int] = field(default_factory=lambda: [1, 2, 3])
    # the learned source (learn/learned.py): a table trained with the task over the words seen in
    # the train split, one more source in the mix. 0: off, as before it existed (the paper mixes
    # frozen sources only); words no pretrained source knows then carry nothing.
    learned_dim: int = 0
    # hashed word-bigram rows added to the learned source (fastText's trick); 0: none. A knob of
    # size: buckets x learned_dim floats are exported (fastText's 2M x 50 makes a 400 MB model).
    learned_buckets: int = 0
    # hashed character n-gram rows of the learned source (fastText's subwords: 3-6 characters of
    # the word in < >, learn/subwords.py); 0: none. A word's vector is then the mean of its row
    # (if seen in training) and its n-grams' rows, so words unseen in training get one too. Costs
    # nothing in serving (folded into the word table at export); subwords x learned_dim floats
    # are trained.
    learned_subwords: int = 0
    # the learned rows start from this store source (same dimension) where it has the word, the
    # rest small random; "random": all small random
    learned_init: str = "random"
    learned_dropout: float = 0.0  # dropout on the learned vectors: against memorising rare words
    learned_weight_decay: float = 0.0  # decoupled (AdamW) decay of the learned tables only
    # the learned tables' lr is lr x this: Adam moves a row about lr per update, and a rare word's
    # row gets few updates (fastText trains its tables at lr 0.1-1 by SGD)
    learned_lr_scale: float = 1.0
    mlp_hidden: int = 512  # classifier hidden layer, as wide as the encoder (InferSent)
    num_labels: int = 2  # filled from the training labels (2: the smallest classifier)
    pair: bool = False  # filled from the data: pairs get features [u, v, |u-v|, u*v]
    # single: softmax over the labels | multilabel: a sigmoid per label, any number of labels
    task: str = "single"
    label_sep: str = ","  # multilabel TSV/CSV: the separator inside the label column
    # multilabel: weight label j's positives by min(pos_weight, negatives_j / positives_j) in
    # the loss, so rare labels are not drowned by their negatives; 0: no weights
    pos_weight: float = 0.0
    # multilabel: the dev figure that picks the best epoch (single-label: accuracy); micro-F1
    # counts every (example, label) decision alike, as most multi-label reports do
    select_metric: str = "micro_f1"
    # the tokens kept of each text, from its start: training, evaluation, the export's checks
    # and the runtime all cut there (the model directory's max_tokens), so a long text is read
    # the same way everywhere
    max_tokens: int = DEFAULT_MAX_TOKENS
    # training
    lr: float = 4e-4  # Adam, as in the paper
    lr_decay: float = 0.2  # lr *= lr_decay when dev accuracy does not improve (InferSent: /5)
    min_lr: float = 1e-5  # stop once the lr decays below this: steps that small change nothing
    patience: int = 3  # epochs without dev improvement before stopping: by then the lr is /125
    epochs: int = 10  # an upper bound: early stopping usually ends the run before it
    batch_size: int = 64  # the paper's; small enough for CPU training
    grad_clip: float = 5.0  # max gradient norm: keeps the LSTMs from an exploding step
    seed: int = 0  # weights, batch order and dropout all derive from it: reruns are identical
    checkpoint_steps: int = 0  # also checkpoint every N steps inside an epoch; 0: at epoch ends
    #                            only, since a checkpoint of a large model costs seconds
    # an ensemble: this many models of this config, member k with seed seed + 1000 k, one after
    # another (members/K in the run directory, learn/ensemble.py) and served as one graph that
    # averages their probabilities; 1: one model (single-label tasks only for more)
    members: int = 1
    # distillation (learn/teacher.py): a trained run or ensemble directory on the same store whose
    # probabilities on the training texts the model learns from too; "": none. The loss is
    # (1 - teacher_weight) x the labels' cross-entropy + teacher_weight x T^2 x the KL divergence
    # from the teacher's probabilities, both softened by T = teacher_temperature.
    teacher: str = ""
    # with no teacher given: train one first, an ensemble of this many models of this config
    # (RUN/teacher, learn/ensemble.py), then this run with it as the teacher; 0: none
    teacher_members: int = 0
    teacher_weight: float = 0.5
    teacher_temperature: float = 1.0

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
        for f in fields(self):  # every number: finite, in range, below its limit
            why = number_problem(f.name, getattr(self, f.name))
            if why:
                raise bad(f.name, why)
        # each member (and teacher member) trains with its own seed, which must be valid too
        last = self.seed + SEED_STEP * (max(self.members, self.teacher_members, 1) - 1)
        if last > LIMITS["seed"]:
            raise bad("seed", f"must be at most {LIMITS['seed'] - (last - self.seed):,} with "
                      f"this many members (member seeds go up by {SEED_STEP})")
        widths = self.cnn_widths
        if not widths or len(widths) > 16 or len(set(widths)) != len(widths) or any(
                isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_CNN_WIDTH
                for w in widths):
            raise bad("cnn_widths", f"must be 1 to 16 different whole numbers from 1 to "
                      f"{MAX_CNN_WIDTH}, not {widths!r}")
        if self.feature_freq not in ("train", "rank"):
            raise bad("feature_freq", f"must be train or rank, not {self.feature_freq!r}")
        if self.source_norm not in NORMS:
            raise bad("source_norm", f"must be one of {', '.join(NORMS)}, not "
                      f"{self.source_norm!r}")
        init = self.learned_init
        if init != "random" and self.sources and init not in self.sources:
            raise bad("learned_init", f"{init!r} is not one of the sources (or random)")
        if self.task not in ("single", "multilabel"):
            raise bad("task", f"must be single or multilabel, not {self.task!r}")
        if self.members > 1 and self.task != "single":
            raise bad("members", "an ensemble needs a single-label task (its thresholds would "
                      "need tuning anew); train multi-label models one at a time")
        if (self.teacher or self.teacher_members) and self.task != "single":
            raise bad("teacher", "distillation needs a single-label task")
        if self.teacher_members < 0 or self.teacher_members == 1:
            raise bad("teacher_members", "must be 0 (none) or an ensemble of 2 or more")
        if self.teacher_members and self.members > 1:
            raise bad("teacher_members", "trains one model from an ensemble; an ensemble of "
                      "taught models is not supported (set members 1 or teacher_members 0)")
        if self.num_labels < (2 if self.task == "single" else 1):
            raise bad("num_labels", "a classifier needs at least 2 labels")
        if self.select_metric not in ("micro_f1", "macro_f1", "mean_auc"):
            raise bad("select_metric", "must be micro_f1, macro_f1 or mean_auc, not "
                      f"{self.select_metric!r}")
        if not self.label_sep or self.label_sep != self.label_sep.strip():
            raise bad("label_sep", "must be a non-empty separator without spaces")
        if self.learned_buckets and not self.learned_dim:
            raise bad("learned_buckets", "word bigrams need the learned source: set learned_dim")
        if self.learned_subwords and not self.learned_dim:
            raise bad("learned_subwords", "character n-grams need the learned source: set "
                      "learned_dim")
        if len(self.sources) > MAX_SOURCES:
            raise bad("sources", f"at most {MAX_SOURCES} sources")
        if any(not 0 <= d <= MAX_SOURCE_DIM for d in self.source_dims):  # 0: not filled yet
            raise bad("source_dims", f"each must be from 1 to {MAX_SOURCE_DIM}")
        if self.weight_count() > MAX_WEIGHTS:
            raise bad("hidden", f"these sizes make a model of about {self.weight_count():,} "
                      f"trainable weights, more than the {MAX_WEIGHTS:,} metaprep trains")

    def weight_count(self) -> int:
        """About how many trainable weights the model has (model.py's layers, biases included;
        the frozen embedding tables excluded, the learned source's included)."""
        dims, d = self.all_dims, self.meta_dim

        def lstm(inp: int, h: int) -> int:  # both directions, two bias vectors each
            return 2 * 4 * h * (inp + h + 2)

        front = d  # the UNK vector
        if self.learned_dim:  # its word rows (pad and UNK too), bigram and n-gram rows
            front += (self.vocab_size + 2 + self.learned_buckets
                      + self.learned_subwords) * self.learned_dim
        if self.method in ("dme", "cdme", "sum", "single"):
            front += sum((k + 1) * self.proj_dim for k in dims)
        if self.source_norm == "layernorm":  # a weight and a bias per store source dimension
            front += sum(2 * k for k in self.source_dims)
        if self.word_features and self.method in ("dme", "cdme"):  # Linear(F -> S)
            n = len(dims)
            front += (len(self.source_dims) + 18 + 1) * n  # F = S_store + 8 + 6 + 4 (levers.py)
        if self.method == "dme":
            front += d + 1
        elif self.method == "cdme":
            front += lstm(d, self.context_hidden) + 2 * self.context_hidden + 1
        encoder = 0
        if self.encoder == "bilstm":
            encoder = lstm(d, self.hidden)
        elif self.encoder == "cnn":  # a (filters, d, w) kernel and a bias per width
            encoder = sum(self.cnn_filters * (d * w + 1) for w in self.cnn_widths)
        encoded = self.sentence_dim
        features = 4 * encoded if self.pair else encoded
        mlp = (features + 1) * self.mlp_hidden + (self.mlp_hidden + 1) * self.num_labels
        return front + encoder + mlp

    @property
    def all_dims(self) -> list[int]:
        """The raw vector size of every source in the mix: the store's, then the learned one."""
        return [*self.source_dims, *([self.learned_dim] if self.learned_dim else [])]

    @property
    def sentence_dim(self) -> int:
        """E, the size of the encoder's sentence vector."""
        if self.encoder == "bilstm":
            return 2 * self.hidden
        if self.encoder == "cnn":
            return self.cnn_filters * len(self.cnn_widths)
        return 2 * self.meta_dim

    @property
    def meta_dim(self) -> int:
        """D, the size of one meta-embedding."""
        return sum(self.all_dims) if self.method == "concat" else self.proj_dim

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
            return cls(**{**PREDATES, **data})
        except ConfigError as exc:
            raise ConfigError(exc.message, path=path) from exc
