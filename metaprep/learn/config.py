"""The run's configuration: everything needed to rebuild the model and repeat the training
(saved as ``config.json`` in the run directory, see docs/model.md). Each option is declared once,
as a field of ``RunConfig`` (learn/options.py says how); the CLI, the pipeline and the presets read
that declaration. No torch here: the CLI, the pipeline and the run directory read it without
loading the model code.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError
from metaprep.learn.options import option, value_problem
from metaprep.tokenize import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT

__all__ = ["COMBINERS", "ENCODERS", "MAX_WEIGHTS", "METHODS", "NORMS", "OPTIONS", "PRESETS",
           "SEED_STEP", "RunConfig", "check_option", "preset_values"]

NORMS = ("none", "center", "scale", "layernorm")  # source_norm (learn/sourcenorm.py)
METHODS = ("dme", "cdme", "concat", "sum", "single")
ENCODERS = ("bilstm", "pool", "cnn")
COMBINERS = ("mean", "sqrtn", "auto")  # the pool encoder's sum of word vectors: over n, sqrt(n)
# auto: sqrtn from this median train text length (tokens) on; sqrtn against mean: -0.2 on texts
# cut to 25 words, +2.1 to +6.7 from 50 on, -2.2 on fortunes (benchmarks/results/long-docs.md)
SQRTN_MIN_MEDIAN = 40
SEED_STEP = 1000  # ensemble member k trains with seed + SEED_STEP k (learn/ensemble.py)
MAX_SOURCES = 64
MAX_CNN_WIDTH = 64  # tokens a filter spans: far beyond an n-gram worth a filter
MAX_SOURCE_DIM = 65536
# Trainable weights (the embedding tables are the store's, not counted): 500 M float32 weights
# are 2 GB, and training holds about four copies (weights, gradients, Adam's two moments).
MAX_WEIGHTS = 500_000_000
AUTO_BATCH = (64, 256)  # batch_size 0: the range it is picked from


# Measured recipes (benchmarks/results/frontier-*.md) a user picks by purpose; the CLI's
# `--preset`, TrainOptions.preset and pipelines' `preset` key. Options given explicitly win; the
# saved config records the resolved values.
PRESETS: dict[str, dict[str, Any]] = {
    # serving speed first: one model, a sum of small projections and the pooled encoder, plus
    # the learned source with word bigrams (the words no pretrained source has) when the train
    # split has 100k tokens or more (below, it cost accuracy: learned_min_tokens); a per-source
    # LayerNorm (folded into the tables at export: no cost in serving) keeps the learned source
    # from swamping the pretrained ones on a small task (benchmarks/results/learned-sweep.md,
    # learned-mix.md); dropout 0.7 on the learned vectors. Trained at fastText's pace
    # (Debian, 3 seeds, test %, CPU seconds; benchmarks/results/frontier-debian.md): 8 epochs
    # with the lr falling linearly to 0, batches picked from the data's size (256 on Debian) and
    # label smoothing 0.1 reached 78.6 +- 0.3 in 60 CPU-s, against 78.5 +- 0.3 for the earlier
    # recipe (15 epochs at batch 64 taught by a 3-model ensemble: 4 models, ~10x the time). A
    # teacher on top of the new recipe gave nothing (77.5-78.4, 1-3 seeds). Label smoothing 0.3,
    # not 0.1 (benchmarks/results/long-docs.md; test %, one torch thread): long documents
    # (debian-long) 60.3 +- 1.7 against 59.5 +- 1.6 over 5 seeds (seeds 0-2: 61.0 +- 1.3
    # against 59.4 +- 1.5), fortunes 76.9 +- 2.1 against 75.9 +- 1.4 (5 seeds), Debian
    # 78.5 +- 0.2 against 78.5 +- 0.1 (3 seeds): ahead within the seed spread, never behind.
    # pool_combiner auto: sqrt(n) pooling on long texts, +2.7 on debian-long, +6.7 on pypi-long
    "fast": {"method": "sum", "encoder": "pool", "proj_dim": 64, "mlp_hidden": 256,
             "learned_dim": 64, "learned_buckets": 200_000, "learned_lr_scale": 30.0,
             "learned_dropout": 0.7, "lr": 1e-3, "source_norm": "layernorm", "epochs": 8,
             "lr_schedule": "linear", "batch_size": 0, "label_smoothing": 0.3,
             "learned_min_tokens": 100_000, "pool_combiner": "auto"},
    # accuracy first: an ensemble of three such models (learn/ensemble.py), their probabilities
    # averaged. With the earlier 15-epoch recipe, 3 ensembles of 3 against the 9 models alone
    # (test %, 2026-12-02, benchmarks/results/ensembles.md): Debian 79.2 +- 0.3 against
    # 77.8 +- 0.2, fortunes 78.2 +- 1.8 against 76.3 +- 1.0; frontier-*.md has it with the
    # members trained as `fast` is.
    "accurate": {"method": "sum", "encoder": "pool", "proj_dim": 64, "mlp_hidden": 256,
                 "learned_dim": 64, "learned_buckets": 200_000, "learned_lr_scale": 30.0,
                 "learned_dropout": 0.7, "lr": 1e-3, "source_norm": "layernorm", "epochs": 8,
                 "lr_schedule": "linear", "batch_size": 0, "label_smoothing": 0.1,
                 "learned_min_tokens": 100_000, "pool_combiner": "auto", "members": 3},
}


def preset_values(name: str | None) -> dict[str, Any]:
    """The option values of preset ``name`` (none: {}); an unknown name is a ConfigError."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


@dataclass
class RunConfig:
    """Everything needed to rebuild the model and repeat the run (saved as config.json). Each
    option is declared once, here: its type and default, then its help, group and bounds
    (learn/options.py); the comment above it says why the default is what it is."""

    # --- model structure
    # dme: the best front end by dev accuracy on both tasks of the ablation, with the layernorm
    # source_norm below (benchmarks/results/levers.md); level with sum, far ahead of concat with
    # the pooled encoder
    method: str = option("dme", "dme, cdme, concat, sum, or single:NAME (one source).",
                         group="model", flag=True, choices=METHODS)
    sources: list[str] = option([], "Store sources to use, in this order (comma-separated) "
                                "[default: all the store has].", group="model")
    source_dims: list[int] = option([], "", group="model", filled=True)  # from the store
    vocab_size: int = option(0, "", group="model", filled=True, low=0, high=2**31 - 3)
    proj_dim: int = option(256, "Size d' of the projected embeddings (the paper's 256).",
                           group="model", flag=True, low=1, high=16384)
    # the paper's choice: weights that sum to 1 (sigmoid helped on fortunes, hurt on Debian)
    gating: str = option("softmax", "dme/cdme: softmax over sources, or a sigmoid gate per "
                         "source.", group="model", choices=("softmax", "sigmoid"))
    context_hidden: int = option(2, "cdme: scorer BiLSTM units per direction (2 in the paper).",
                                 group="model", low=1, high=1024)
    # a zero vector is no evidence (False: as in the paper, zero vectors mix in)
    mask_missing: bool = option(True, "Give sources without a word zero weight.", group="model")
    use_derived: bool = option(True, "Count rows align derived from the word itself (--oov "
                               "subword or map) as present.", group="model")
    # layernorm raised dme by 4.3 (fortunes) and 1.3 (Debian) points and sum by 0.6 and 0.8
    source_norm: str = option("layernorm", "Normalise each source before its projection: "
                              "none, center, scale (unit mean norm) or layernorm.",
                              group="model", choices=NORMS)
    encoder: str = option("bilstm", "bilstm (BiLSTM-max, the paper's), pool (max and mean, no "
                          "recurrence) or cnn (convolutions, max over time).", group="model",
                          flag=True, choices=ENCODERS)
    # mean for runs written before the option (their config.json lacks it): the presets pick
    pool_combiner: str = option("mean", "pool: divide the summed word vectors by n (mean), by "
                                "sqrt(n) (sqrtn), or auto: sqrtn when the train split's median "
                                f"text has {SQRTN_MIN_MEDIAN}+ tokens.", group="model",
                                choices=COMBINERS)
    hidden: int = option(512, "bilstm: units per direction (InferSent's).", group="model",
                         low=1, high=16384)
    # 64 filters against 128 (fast preset, 3 seeds): as accurate and 1.7-2x faster to serve;
    # uni- to trigrams: a Debian description has ~8 tokens (benchmarks/results/encoders.md)
    cnn_filters: int = option(64, "cnn: filters per width.", group="model", low=1, high=16384)
    cnn_widths: list[int] = option([1, 2, 3], "cnn: filter widths in tokens, comma-separated.",
                                   group="model")
    # the learned source (learn/learned.py): 0 is off, as in the paper (frozen sources only)
    learned_dim: int = option(0, "Size of the learned source: a table trained with the task "
                              "over the train split's words, one more source in the mix (0: "
                              "none).", group="model", low=0, high=65536)
    # fastText's word-bigram trick; buckets x learned_dim floats are exported
    learned_buckets: int = option(0, "Hashed word-bigram rows of the learned source (0: none).",
                                  group="model", low=0, high=2**31 - 1)
    # +1.3 test points on fortunes over nine seeds, none beyond the spread on Debian, 1.7x the
    # training time (benchmarks/results/subwords.md): not in the presets
    learned_subwords: int = option(0, "Hashed character n-gram rows of the learned source "
                                   "(fastText's subwords), folded away at export (0: none).",
                                   group="model", low=0, high=2**31 - 1)
    learned_dropout: float = option(0.0, "Dropout on the learned vectors.", group="model",
                                    low=0.0, high=1.0, open_high=True)
    # Adam moves a row about lr per update, and a rare word's row gets few updates
    learned_lr_scale: float = option(1.0, "The learned tables' lr is lr times this.",
                                     group="training", low=0.0, high=1e6, open_low=True)
    # the learned source learns from the train split alone; 3 seeds each, test %, `fast` with
    # it and without: fortunes (25.6k train tokens) 76.3 +- 0.2 with, 79.1 +- 2.0 without;
    # debian-long (465k) 59.8 +- 1.8 with, 55.9 +- 1.1 without; Debian (316k) 78.5 +- 0.1 with,
    # 70.4 +- 0.3 without (benchmarks/results/learned-tokens.md)
    learned_min_tokens: int = option(0, "Leave the learned source out when the train split has "
                                     "fewer tokens than this (0: always keep it); config.json "
                                     "records what was used.", group="model", low=0,
                                     high=2**62)
    mlp_hidden: int = option(512, "Classifier hidden units.", group="model", low=1, high=16384)
    num_labels: int = option(2, "", group="model", filled=True, low=1, high=1_000_000)
    pair: bool = option(False, "", group="model", filled=True)  # pairs: [u, v, |u-v|, u*v]
    # 512: far more than a sentence or a package description; a long document keeps its start
    max_tokens: int = option(DEFAULT_MAX_TOKENS, "Tokens kept of each text, from its start: "
                             "training, evaluation and the exported model all cut there.",
                             group="model", flag=True, low=1, high=MAX_TOKENS_LIMIT)
    # --- the task
    task: str = option("single", "single (softmax) or multilabel (a sigmoid per label) "
                       "[default: detected from the train file, and said so].", group="data",
                       flag=True, choices=("single", "multilabel"))
    label_sep: str = option(",", "Multi-label TSV/CSV: the separator inside the label column.",
                            group="data")
    # rare labels are otherwise drowned by their negatives
    pos_weight: float = option(0.0, "Multi-label: weight a label's positives by min(THIS, "
                               "negatives/positives) in the loss (0: off).", group="training",
                               low=0.0, high=1e6)
    # micro-F1 counts every (example, label) decision alike, as most multi-label reports do
    select_metric: str = option("micro_f1", "Multi-label: the dev figure that picks the best "
                                "epoch.", group="training",
                                choices=("micro_f1", "macro_f1", "mean_auc"))
    # --- training
    lr: float = option(4e-4, "Adam learning rate (the paper's).", group="training", flag=True,
                       low=0.0, high=10.0, open_low=True)
    # linear: the lr falls to 0 over the epochs, as fastText's does; with larger batches it
    # reached plateau's accuracy in half the epochs (benchmarks/results/frontier-debian.md)
    lr_schedule: str = option("plateau", "plateau (multiply the lr by lr_decay when dev does not "
                              "improve) or linear (down to 0 over the epochs).",
                              group="training", choices=("plateau", "linear"))
    label_smoothing: float = option(0.0, "Single-label: move this much of each target's "
                                    "probability to the other labels.", group="training",
                                    low=0.0, high=0.5)
    lr_decay: float = option(0.2, "Multiply the lr by this when dev accuracy does not improve "
                             "(InferSent's /5).", group="training", low=0.0, high=1.0,
                             open_low=True)
    min_lr: float = option(1e-5, "Stop once the lr falls below this.", group="training",
                           low=0.0, high=10.0)
    patience: int = option(3, "Stop after this many epochs without dev improvement.",
                           group="training", low=1, high=100_000)
    epochs: int = option(10, "Passes over the training data at most (early stopping usually "
                         "ends sooner).", group="training", flag=True, low=1, high=100_000)
    # 0 (auto): larger batches with the lr scaled alike train in fewer steps; about N/200
    # matched the measured best on 48k texts (256); below 64, smaller batches measured no
    # better on 1.2k texts (32: 75.7 +- 1.4 against 76.6 +- 1.2 at 64, 3 and 9 seeds)
    batch_size: int = option(64, "Examples per optimizer step (batches are length-bucketed); 0: "
                             "picked from the training set's size N (a power of 2 near N/200, "
                             "64 to 256), lr then being the rate at 64 and scaled alike.",
                             group="training", flag=True, low=0, high=65536)
    grad_clip: float = option(5.0, "Max gradient norm.", group="training", low=0.0, high=1e6,
                              open_low=True)
    seed: int = option(0, "Seeds weights, batch order and dropout: a rerun is bit-identical.",
                       group="training", flag=True, low=0, high=2**32 - 1)
    # a checkpoint of a large model costs seconds: epoch ends only, unless asked
    checkpoint_steps: int = option(0, "Also checkpoint every N steps inside an epoch (0: at "
                                   "epoch ends only).", group="training", low=0, high=10**9)
    # a small model's checkpoint cost more than its epoch (fortunes: 0.25 s against 0.2 s); a
    # minute of training is little to lose to a kill
    checkpoint_seconds: float = option(60.0, "Checkpoint at an epoch's end only when this many "
                                       "seconds passed since the last checkpoint (0: every "
                                       "epoch); a kill loses at most about that much training.",
                                       group="training", low=0.0, high=1e9)
    # --- ensembles and teachers (learn/ensemble.py, learn/teacher.py)
    members: int = option(1, "Train an ensemble of this many models (seeds seed + 1000 k), "
                          "served as one model averaging their probabilities.", group="teacher",
                          flag=True, low=1, high=64)
    teacher: str = option("", "", group="teacher", filled=True)  # the --teacher run, absolute
    teacher_members: int = option(0, "Train an ensemble of this many models first, then this "
                                  "model taught by it (0: no teacher).", group="teacher",
                                  flag=True, low=0, high=64)
    # the loss: (1 - w) x the labels' cross-entropy + w x T^2 x KL(teacher_T || model_T)
    teacher_weight: float = option(0.5, "The teacher's share of the loss (0: labels only, 1: "
                                   "teacher only).", group="teacher", low=0.0, high=1.0)
    teacher_temperature: float = option(1.0, "Soften the teacher's and the model's "
                                        "probabilities by this temperature.", group="teacher",
                                        low=0.0, high=1000.0, open_low=True)

    def __post_init__(self) -> None:
        self.validate()

    def for_tokens(self, tokens: int) -> RunConfig:
        """This config without the learned source when the train split has fewer than
        ``learned_min_tokens`` tokens (a new run's config is resolved so before it is saved)."""
        if not self.learned_dim or tokens >= self.learned_min_tokens:
            return self
        return replace(self, learned_dim=0, learned_buckets=0, learned_subwords=0)

    def for_lengths(self, median: float) -> RunConfig:
        """This config with pool_combiner auto resolved for a median train text of ``median``
        tokens (a new run's config is resolved so before it is saved)."""
        if self.pool_combiner != "auto":
            return self
        return replace(self, pool_combiner="sqrtn" if median >= SQRTN_MIN_MEDIAN else "mean")

    def for_examples(self, n: int) -> RunConfig:
        """This config with batch_size 0 (auto) resolved for ``n`` training examples: the
        batch a power of 2 near n/200 in [64, 256], the lr scaled by batch/64."""
        if self.batch_size:
            return self
        near = 2 ** round(math.log2(max(n, 1) / 200))
        batch = int(min(AUTO_BATCH[1], max(AUTO_BATCH[0], near)))
        return replace(self, batch_size=batch, lr=self.lr * batch / 64)

    def validate(self, *, path: str | Path | None = None) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"config key {key!r}: {why}", path=path)

        for f in fields(self):  # each option as declared: type, choices, bounds, finite
            why = value_problem(f, getattr(self, f.name))
            if why:
                raise bad(f.name, why)
        # what one field alone cannot say
        if len(self.sources) != len(self.source_dims):
            raise bad("source_dims", "needs one dimension per source")
        if self.method == "single" and len(self.sources) != 1:
            raise bad("sources", "method single uses exactly one source")
        if len(set(self.sources)) != len(self.sources):
            raise bad("sources", "a source is named twice")
        if len(self.sources) > MAX_SOURCES:
            raise bad("sources", f"at most {MAX_SOURCES} sources")
        if any(not 0 <= d <= MAX_SOURCE_DIM for d in self.source_dims):  # 0: not filled yet
            raise bad("source_dims", f"each must be from 1 to {MAX_SOURCE_DIM}")
        # each member (and teacher member) trains with its own seed, which must be valid too
        most = 2**32 - 1
        last = self.seed + SEED_STEP * (max(self.members, self.teacher_members, 1) - 1)
        if last > most:
            raise bad("seed", f"must be at most {most - (last - self.seed):,} with this many "
                      f"members (member seeds go up by {SEED_STEP})")
        widths = self.cnn_widths
        if not widths or len(widths) > 16 or len(set(widths)) != len(widths) or any(
                not 1 <= w <= MAX_CNN_WIDTH for w in widths):
            raise bad("cnn_widths", f"must be 1 to 16 different whole numbers from 1 to "
                      f"{MAX_CNN_WIDTH}, not {widths!r}")
        if self.members > 1 and self.task != "single":
            raise bad("members", "an ensemble needs a single-label task (its thresholds would "
                      "need tuning anew); train multi-label models one at a time")
        if (self.teacher or self.teacher_members) and self.task != "single":
            raise bad("teacher", "distillation needs a single-label task")
        if self.teacher_members == 1:
            raise bad("teacher_members", "must be 0 (none) or an ensemble of 2 or more")
        if self.teacher_members and self.members > 1:
            raise bad("teacher_members", "trains one model from an ensemble; an ensemble of "
                      "taught models is not supported (set members 1 or teacher_members 0)")
        if self.num_labels < (2 if self.task == "single" else 1):
            raise bad("num_labels", "a classifier needs at least 2 labels")
        if not self.label_sep or self.label_sep != self.label_sep.strip():
            raise bad("label_sep", "must be a non-empty separator without spaces")
        if self.learned_buckets and not self.learned_dim:
            raise bad("learned_buckets", "word bigrams need the learned source: set learned_dim")
        if self.learned_subwords and not self.learned_dim:
            raise bad("learned_subwords", "character n-grams need the learned source: set "
                      "learned_dim")
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
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(
                f"unknown config key(s): {', '.join(unknown)}", path=path,
                hint="the run was written by another metaprep version, or edited by hand",
            )
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=path) from exc


# The options a user gives (command line, --set, pipelines, presets): every field but those
# filled from the store and the data.
OPTIONS: dict[str, Field[Any]] = {f.name: f for f in fields(RunConfig)
                                  if not f.metadata["spec"].filled}


def check_option(key: str, value: Any, *, where: str = "") -> Any:
    """``value`` for option ``key``, checked as RunConfig checks it (an int where a float is
    wanted becomes a float); a ConfigError naming the key otherwise."""
    name = where or f"option {key!r}:"
    f = OPTIONS.get(key)
    if f is None:
        raise ConfigError(f"{name} no such training option",
                          hint=f"the options are: {', '.join(sorted(OPTIONS))}")
    if str(f.type) == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, tuple):
        value = list(value)
    why = value_problem(f, value)
    if why:
        raise ConfigError(f"{name} {why}")
    return value
