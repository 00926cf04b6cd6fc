"""Task data for training and evaluation: label maps, text -> ids, length-bucketed batches.

Files are read by ``metaprep.taskdata`` (TSV/CSV/JSONL/fastText lines); this module tokenizes with
the store's tokenizer, maps tokens through the store's vocabulary and case policy, and batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from metaprep.errors import DataError, StoreError
from metaprep.ids import PAD_ID, VocabIndex
from metaprep.learn.rows import Example, ExampleRows, RowsBuilder
from metaprep.taskdata import Columns
from metaprep.tokenize import Tokenizer, TokenizerConfig

__all__ = [
    "Batch",
    "Example",
    "LabelMap",
    "MAX_CELLS",
    "TaskData",
    "TextEncoder",
    "bucket_batches",
    "collate",
    "load_labelsets",
    "load_task",
    "shard_batches",
    "token_counts",
]


# Scores held per file: training, evaluation and a teacher keep an (examples x labels) float32
# table of a whole file (logits, probabilities, multi-label targets), so their product is
# bounded (1 GiB); a label column that is really an id column would otherwise fill memory.
MAX_CELLS = 1 << 28


def _check_cells(path: Path, examples: int, labels: int) -> None:
    if examples * labels > MAX_CELLS:
        raise DataError(f"{examples:,} examples x {labels:,} labels is more than the "
                        f"{MAX_CELLS:,} scores metaprep holds in memory for one file",
                        path=path, hint="is the label column right (--label-column)? Else "
                        "split the file, or merge rare labels")


class LabelMap:
    """Label strings <-> class ids; class id = position in the sorted training labels."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        if len(self.index) != len(self.labels):
            raise ValueError("labels must be unique")

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> LabelMap:
        return cls(sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, label: str, *, path: str | Path, line: int) -> int:
        i = self.index.get(label)
        if i is None:
            shown = ", ".join(repr(x) for x in self.labels[:10])
            raise DataError(
                f"label {label!r} does not occur in the training data (known: {shown})",
                path=path, line=line, hint="fix the label or add examples of it to the train file",
            )
        return i


class TextEncoder:
    """Text -> model ids with the store's tokenizer, vocabulary and case policy."""

    def __init__(
        self, words: Sequence[str], *, case_policy: str, tokenizer: TokenizerConfig
    ) -> None:
        self.tokenizer = Tokenizer(tokenizer)
        self.vocab = VocabIndex(words, case_policy=case_policy)

    @classmethod
    def from_store(cls, store: Any, *, max_tokens: int | None = None) -> TextEncoder:
        """The store's tokenizer, cutting each text at ``max_tokens`` (a run's limit)."""
        try:
            config = TokenizerConfig.from_dict(store.tokenizer)
            return cls(store.vocab, case_policy=store.case_policy,
                       tokenizer=replace(config, max_tokens=max_tokens))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"bad tokenizer or case policy: {exc}", path=store.path) from exc

    def tokens(self, text: str) -> list[str]:
        return self.tokenizer(text)

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokenizer(text))


@dataclass
class TaskData:
    path: Path
    # held in flat arrays (rows.py); a list of Examples given is packed into them
    examples: ExampleRows
    pair: bool
    targets: np.ndarray | None = None  # multi-label: (N, C) float32 0/1 (labels are then -1)

    def __post_init__(self) -> None:
        if not isinstance(self.examples, ExampleRows):
            self.examples = ExampleRows.of(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def lengths(self) -> np.ndarray:
        """Per example, the longer sentence's length (what the batch is padded to)."""
        rows = self.examples
        return rows.lengths(0) if len(rows.sides) == 1 else np.maximum(rows.lengths(0),
                                                                        rows.lengths(1))

    def flat(self, side: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ids of every example end to end (int32), start of each example (N+1,)) of sentence
        ``side`` (0, or 1 for a pair's second): a batch is two numpy gathers."""
        if side < len(self.examples.sides):
            return self.examples.sides[side]
        return np.zeros(0, np.int32), np.zeros(len(self) + 1, np.int64)


def load_task(
    path: str | Path,
    encoder: TextEncoder,
    *,
    labels: LabelMap | None = None,
    encoding: str = "utf-8",
    progress: bool = True,
    columns: Columns | None = None,
    folder: Path | None = None,
) -> tuple[TaskData, LabelMap]:
    """Read and encode a task file, one example at a time (no text is held). Without
    ``labels`` the map is built from this file (train); with it, an unknown label is a
    DataError naming the line. With ``folder`` (a scratch folder, learn/scratch.py) the
    encoded examples are memory-mapped from files written there (rows.RowsBuilder)."""
    from tqdm import tqdm

    from metaprep.taskdata import read_examples

    path = Path(path)
    found: dict[str, int] = {}  # train: labels in order of first use, sorted at the end
    examples = RowsBuilder(folder)
    try:
        pair: bool | None = None
        for text, label, line in tqdm(read_examples(path, encoding=encoding, columns=columns),
                                      desc=f"reading {path.name}", unit=" ex",
                                      disable=not progress, leave=False):
            if pair is None:
                pair = isinstance(text, tuple)
            if isinstance(text, tuple) != pair:
                raise DataError(
                    "mixes single sentences and sentence pairs", path=path, line=line,
                    hint="use either text,label or text_a,text_b,label throughout",
                )
            encoded = []
            for t in text if isinstance(text, tuple) else (text,):
                ids = encoder.encode(t)
                if not ids:
                    raise DataError("empty text (no tokens)", path=path, line=line,
                                    hint="remove the line or give it some text")
                encoded.append(ids)
            if labels is not None:
                label_id = labels.encode(str(label), path=path, line=line)
            elif (label_id := found.setdefault(str(label), len(found))) == len(found) - 1:
                _check_cells(path, len(examples) + 1, len(found))  # a new label: so far
            examples.append(encoded[0], encoded[1] if pair else None, label_id, line)
        if pair is None:
            raise DataError("no examples", path=path,
                            hint="the file is empty or has only a header")
        relabel = None
        if labels is None:
            labels = LabelMap.from_labels(found)
            if len(labels) < 2:
                raise DataError(
                    f"only one label ({labels.labels[0]!r}) in the training data", path=path,
                    hint="a classifier needs at least two classes",
                )
            relabel = np.array([labels.index[k] for k in found], dtype=np.int64)
        _check_cells(path, len(examples), len(labels))
    except BaseException:
        examples.discard()
        raise
    return TaskData(path, examples.build(relabel), pair), labels


def load_labelsets(
    path: str | Path,
    encoder: TextEncoder,
    *,
    labels: LabelMap | None = None,
    label_sep: str = ",",
    encoding: str = "utf-8",
    progress: bool = True,
    columns: Columns | None = None,
) -> tuple[TaskData, LabelMap]:
    """``load_task`` for multi-label data: ``targets`` holds each example's label set (an
    example may have none). Without ``labels`` the map is built from this file (train)."""
    from tqdm import tqdm

    from metaprep.labelsets import read_labelsets

    path = Path(path)
    raw = list(tqdm(read_labelsets(path, label_sep=label_sep, encoding=encoding,
                                   columns=columns),
                    desc=f"reading {path.name}", unit=" ex", disable=not progress, leave=False))
    if not raw:
        raise DataError("no examples", path=path, hint="the file is empty or has only a header")
    if labels is None:
        labels = LabelMap.from_labels(x for ex in raw for x in ex.labels)
        if len(labels) < 1:
            raise DataError("no example in the training data has a label", path=path)
    pair = isinstance(raw[0].text, tuple)
    _check_cells(path, len(raw), len(labels))
    targets = np.zeros((len(raw), len(labels)), dtype=np.float32)
    examples = RowsBuilder()
    for i, ex in enumerate(raw):
        if isinstance(ex.text, tuple) != pair:
            raise DataError("mixes single sentences and sentence pairs", path=path,
                            line=ex.line)
        encoded = []
        for t in ex.text if isinstance(ex.text, tuple) else (ex.text,):
            ids = encoder.encode(t)
            if not ids:
                raise DataError("empty text (no tokens)", path=path, line=ex.line,
                                hint="remove the line or give it some text")
            encoded.append(ids)
        for label in ex.labels:
            targets[i, labels.encode(label, path=path, line=ex.line)] = 1.0
        examples.append(encoded[0], encoded[1] if pair else None, -1, ex.line)
    return TaskData(path, examples.build(), pair, targets), labels


def token_counts(data: TaskData) -> Counter[int]:
    """How often each id occurs in the data (both sentences of pairs)."""
    counts: Counter[int] = Counter()
    for flat, _ in data.examples.sides:
        ids, n = np.unique(flat, return_counts=True)
        counts.update(dict(zip(ids.tolist(), n.tolist(), strict=True)))
    return counts


# --- batches ------------------------------------------------------------------------------------
def bucket_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int | None = None, epoch: int = 0
) -> list[np.ndarray]:
    """Example indices grouped into batches of similar length (little padding).

    With a seed: ties broken at random, batch order shuffled, all from (seed, epoch) alone, so a
    resumed run sees the same batches. Without: sorted by length, for evaluation."""
    n = len(lengths)
    if seed is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    order = np.lexsort((rng.permutation(n), lengths))  # by length, random among equal lengths
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def shard_batches(batches: list[np.ndarray], rank: int, world: int) -> list[np.ndarray]:
    """Rank ``rank``'s share: every ``world``-th batch, the list first padded by repeating its
    start so each rank takes the same number of steps (as DistributedSampler does)."""
    if world <= 1:
        return batches
    short = -len(batches) % world
    padded = batches + [batches[i % len(batches)] for i in range(short)]
    return padded[rank::world]


class Batch(NamedTuple):
    ids: torch.Tensor  # (B,T) int64, PAD_ID after each length
    lengths: torch.Tensor  # (B,) int64
    ids_b: torch.Tensor | None  # (B,T') for pairs
    lengths_b: torch.Tensor | None
    labels: torch.Tensor  # (B,) int64; multi-label: (B, C) float32 0/1

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(self.ids.to(device), self.lengths.to(device), move(self.ids_b),
                     move(self.lengths_b), self.labels.to(device))

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])


def _pad(seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    ids = torch.full((len(seqs), int(lengths.max())), PAD_ID, dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.int64)
    return ids, lengths


def _gather(data: TaskData, index: np.ndarray, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B,T) and lengths (B,) of ``index``'s sentences, from the flat arrays."""
    flat, starts = data.flat(side)
    first, lengths = starts[index], starts[index + 1] - starts[index]
    steps = np.arange(max(1, int(lengths.max(initial=0))))
    inside = steps[None, :] < lengths[:, None]  # (B,T)
    ids = np.where(inside, flat[np.minimum(first[:, None] + steps, len(flat) - 1)], PAD_ID) \
        if len(flat) else np.zeros(inside.shape, dtype=np.int64)
    return torch.from_numpy(ids.astype(np.int64, copy=False)), torch.from_numpy(lengths)


def collate(data: TaskData, index: np.ndarray) -> Batch:
    index = np.asarray(index, dtype=np.int64)
    ids, lengths = _gather(data, index, 0)
    ids_b = lengths_b = None
    if data.pair:
        ids_b, lengths_b = _gather(data, index, 1)
    if data.targets is not None:
        labels = torch.from_numpy(data.targets[index])
    else:
        labels = torch.from_numpy(data.examples.labels[index])
    return Batch(ids, lengths, ids_b, lengths_b, labels)
