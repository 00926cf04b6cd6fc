"""Serve a model directory with numpy and onnxruntime only: no torch, gensim or h5py.

    from metaprep.runtime.model import Model
    model = Model("model/", threads=2)
    model.predict(["a fine film", "dull"])       # [("pos", {"neg": 0.1, "pos": 0.9}), ...]
    #                                              (a read-only mapping per row; dict(p) copies)
    model.predict_proba(texts)                   # (N, C) float32
    model.embed(texts)                           # (N, E) float32 sentence vectors

Texts go through the exported tokenizer, the memory-mapped vocabulary with the exported case
policy (unknown words -> UNK), truncation at the manifest's ``max_tokens`` (counted in
``model.stats``), then length buckets of ``batch_size``, run ``threads`` at a time. With a text
graph (``text.onnx``, exporter/textgraph.py) the tokenizer and the lookup run in onnxruntime too,
giving the same ids as the Python path (which stays for batches the graph cannot take exactly);
with a serve graph (``serve.onnx``, textgraph.serve_graph) texts go in and the model's outputs
come out of one run, proven at load to be the two graphs joined (graphjoin).
An empty text is a defined input: the model reads it as one padding token. Sentence pairs are
``(text_a, text_b)`` tuples.

Imports: the standard library, numpy, onnxruntime and metaprep's pure modules (errors, tokenize,
vocab, modeldir, probabilities). A test checks that using this module loads no torch, gensim or
h5py.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from metaprep.errors import DataError, ModelError
from metaprep.ids import ID_OFFSET, MISSED_ID, UNK_ID
from metaprep.runtime.modeldir import Manifest, ModelDir
from metaprep.runtime.probabilities import Probabilities
from metaprep.runtime.runcheck import checked, checked_ids, one_line, ran
from metaprep.tokenize import Tokenizer

__all__ = [
    "INPUT_FORMATS",
    "Model",
    "Probabilities",
    "RunStats",
    "Text",
    "chunked",
    "embed_stream",
    "pad_batch",
    "pad_flat",
    "predict_stream",
    "read_texts",
    "stats_notes",
]

Text = str | tuple[str, str]
# bounds of the options: far above any measured use, below what would exhaust the machine (a
# million threads, a batch holding a whole stream)
MAX_THREADS = 1024
MAX_BATCH = 1 << 16
INPUT_FORMATS = ("auto", "lines", "tsv", "jsonl")
# Longest input line read: memory stays bounded on a stream with no line ends (`yes | tr -d
# '\n'` would otherwise grow one line until the machine runs out). The tokenizer keeps at most
# max_tokens (default 512) tokens, found in far fewer bytes than this in any real text.
MAX_LINE_BYTES = 8 << 20
# one batch's (ids (B, T) int64, lengths (B,), token counts up to max_tokens + 1 (B,))
_Encoded = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class RunStats:
    """Counts over everything a Model has encoded (the CLI reports them once at the end)."""

    texts: int = 0
    tokens: int = 0
    unknown: int = 0  # tokens that became UNK
    empty: int = 0  # texts without a single token
    truncated: int = 0  # texts cut at max_tokens


class Model:
    """A loaded model directory. ``threads``: batches run at once, each on one onnxruntime
    thread (default: the machine's cores); texts become ids inside onnxruntime too when the
    directory has a text graph (``text_path`` says which path is used). ``verify``: "fast"
    (sizes of all files, sha256 of files up to 64 MiB), "full" (sha256 of everything: reads
    multi-GB tables once) or "none". ``spin``:
    let onnxruntime's worker threads busy-wait between batches (off: on a machine whose cores
    are shared, the spinning threads took the CPU from the text path; see
    benchmarks/results/text-path.md)."""

    def __init__(self, model_dir: str | Path, *, threads: int | None = None,
                 batch_size: int = 64, verify: str = "fast", spin: bool = False) -> None:
        if verify not in ("fast", "full", "none"):
            raise ValueError("verify must be fast, full or none")
        if not _whole(batch_size, MAX_BATCH):
            raise ValueError(f"batch_size must be a whole number from 1 to {MAX_BATCH}")
        if threads is not None and not _whole(threads, MAX_THREADS):
            raise ValueError(f"threads must be None or a whole number from 1 to {MAX_THREADS}")
        self.path = Path(model_dir)
        self.dir = ModelDir.open(self.path, verify=verify)  # every check before onnxruntime
        self.manifest: Manifest = self.dir.manifest
        self.labels: list[str] = list(self.dir.labels)
        self.pair: bool = self.manifest.task.pair
        # multi-label: a label is predicted where its probability reaches its threshold
        self.multilabel: bool = self.manifest.task.multilabel
        self.thresholds: np.ndarray | None = (
            np.asarray(self.manifest.task.thresholds, dtype=np.float32)
            if self.manifest.task.thresholds is not None else None)
        self.max_tokens: int = self.manifest.max_tokens
        self.batch_size = batch_size
        self.threads = threads
        self.workers: int = threads or os.cpu_count() or 1  # batches run at once
        self.spin = spin
        self.tokenizer = Tokenizer(self.dir.tokenizer)
        self.vocab = self.dir.vocab()
        self.stats = RunStats()
        # guards the statistics, the sessions and the pool: threads may share one Model
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        # each graph's file, for the errors of a batch (a Path built per batch cost 10%)
        self._paths = {g: self.dir.graph_path(g) for g in self.manifest.graphs}
        self._pool: ThreadPoolExecutor | None = None
        self._session("model")  # fail now, not at the first batch, if onnxruntime refuses it
        # where texts become ids: "onnxruntime" (the text graph) or "python"
        self.text_path = "python"
        self.text_note = ""
        self._text: Any = None
        self._serve: Any = None  # texts -> outputs in one graph (textgraph.serve_graph)
        if "text" in self.manifest.graphs:
            self._load_text_graph()
        if "serve" in self.manifest.graphs and self._text is not None:
            self._load_serve_graph()

    # --- sessions ------------------------------------------------------------------------------
    def load_graphs(self) -> None:
        """Create every graph's session now (the front end's is otherwise made at the first
        ``embed``): export opens what it wrote this way before it commits the directory."""
        for graph in self.manifest.graphs:
            self._session(graph)

    def _session(self, graph: str) -> Any:
        with self._lock:  # threads calling embed() first would each build the session
            return self._sessions.get(graph) or self._new_session(graph)

    def _new_session(self, graph: str) -> Any:
        if graph not in self._sessions:
            import onnxruntime as ort

            path = self.dir.graph_path(graph)
            opts = ort.SessionOptions()
            # one thread per batch; batches run on ``workers`` threads at once (_map): the text
            # path between two runs then overlaps another batch's run instead of idling cores
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning",
                                          "1" if self.spin else "0")
            opts.log_severity_level = 4  # its errors are ours to report, on one line
            try:
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime's errors are not typed
                raise ModelError(f"onnxruntime cannot load the graph: {one_line(exc)}",
                                 path=path) from exc
            self.dir.check_outputs(graph, {o.name: o.shape for o in sess.get_outputs()})
            self._sessions[graph] = sess
        return self._sessions[graph]

    def _load_text_graph(self) -> None:
        """Tokenize in onnxruntime when the model has a text graph that loads and gives exactly
        the Python path's ids on the probes; else the Python path, with ``text_note`` saying why."""
        try:
            self._text = self._session("text")
        except ModelError as exc:  # e.g. an onnxruntime build without the contrib ops
            self.text_note = f"text graph not used: {exc}"
            return
        path = self.dir.graph_path("text")
        ports = ([i.name for i in self._text.get_inputs()], [o.name for o in
                                                            self._text.get_outputs()])
        if ports != (["text"], ["ids", "missed"]):
            raise ModelError(f"text.onnx reads {ports[0]} and gives {ports[1]}, not text -> "
                             "ids, missed", path=path, hint="re-export the model directory")
        probes = self._probes()
        try:
            got = self._encode_in_graph(probes)
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime's errors are not typed
            raise ModelError(f"text.onnx fails on the probe texts: {exc}", path=path,
                             hint="re-export the model directory") from exc
        want = self._encode_in_python(probes)
        if got is None or not all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)):
            raise ModelError("text.onnx does not give the ids that tokenizer.json and vocab.txt "
                             "give", path=path, hint="re-export the model directory")
        self.text_path = "onnxruntime"

    def _load_serve_graph(self) -> None:
        """The serve graph: ModelDir.open proved it the join of the text graph and the model
        graph (graphjoin), so it gives what the two give one after the other."""
        self._serve = self._session("serve")

    def _probes(self) -> list[str]:
        """The probe texts (_probes) that the text graph takes: each at most max_tokens
        vocabulary words, so none is cut off, and within _graph_run's length."""
        words = [self.vocab.word(r) for r in range(min(200, len(self.vocab)))]
        return [p for p in _probes(words, self.max_tokens) if self._fits(p)]

    def _fits(self, text: str) -> bool:
        """Whether a text graph can take the text exactly: the Python path reads only the
        first max_tokens + 1 tokens of a longer one (no token is shorter than a character)."""
        return len(text.lower() if self.tokenizer.config.lowercase else text) <= \
            32 * (self.max_tokens + 1)

    # --- text -> ids ---------------------------------------------------------------------------
    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's tokens, at most max_tokens + 1 (one past the limit says "truncated"; a
        huge line is never tokenized whole)."""
        return self.tokenizer.tokenize_many(texts, self.max_tokens + 1)

    def encode(self, text: str) -> list[int]:
        """Model ids of one text (truncated at max_tokens; counted in ``stats``)."""
        if not isinstance(text, str):
            raise DataError(f"encode takes one text (str), not {type(text).__name__}")
        ids, lengths, counts = self._encode_in_python([text])
        self._count(ids, lengths, counts)
        return ids[0, : lengths[0]].tolist()

    def _encode_in_python(self, texts: Sequence[str]) -> _Encoded:
        lists = self._tokens(texts)
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        lengths = np.minimum(counts, self.max_tokens)
        for k in np.flatnonzero(counts > self.max_tokens).tolist():
            del lists[k][self.max_tokens :]
        ids, _ = pad_flat(self.vocab.encode_array(list(chain.from_iterable(lists))), lengths)
        return ids, lengths, counts

    def _graph_run(self, graph: str, outputs: list[str] | None, texts: Sequence[str]
                   ) -> list[np.ndarray] | None:
        """The ``graph`` that reads text (text or serve) run on the texts, or None for a batch
        it cannot take exactly: a text so long that the Python path reads only its first
        tokens, or a lone surrogate (UTF-8 has none)."""
        if self.tokenizer.config.lowercase:
            texts = list(map(str.lower, texts))
        if max(map(len, texts), default=0) > 32 * (self.max_tokens + 1):  # as _fits
            return None
        try:
            return ran(self._sessions[graph], outputs, {"text": np.array(texts, dtype=object)},
                       self._paths[graph])
        except UnicodeEncodeError:
            return None

    def _serve_batch(self, texts: Sequence[str], output: str
                     ) -> tuple[np.ndarray, list[_Encoded]] | None:
        """The serve graph's ``output`` and the ids it read (for the statistics), or None as
        _graph_run gives it."""
        got = self._graph_run("serve", [output, "ids", "counts"], texts)
        if got is None:
            return None
        out, ids, counts = got
        path = self._paths["serve"]
        checked_ids(ids, len(texts), len(self.vocab) + ID_OFFSET, path, counts=counts)
        out = checked(out, output, len(texts), self._width(output), path)
        return out, [(ids, np.minimum(counts, self.max_tokens), counts)]

    def _encode_in_graph(self, texts: Sequence[str]) -> _Encoded | None:
        """The text graph's ids, or None as _graph_run gives it."""
        got = self._graph_run("text", None, texts)
        if got is None:
            return None
        ids, missed = got
        checked_ids(ids, len(texts), len(self.vocab) + ID_OFFSET, self._paths["text"],
                    missed=missed)
        if missed.size:  # tokens the map lacks: the case policy's other forms, in Python
            ids[ids == MISSED_ID] = self.vocab.encode_array(missed.tolist())
        # counts as the Python path gives them: one past the limit says "truncated"
        counts = np.minimum(np.count_nonzero(ids, axis=1), self.max_tokens + 1)
        width = max(1, min(ids.shape[1], self.max_tokens))  # every text empty: one padding id
        ids = ids[:, :width] if ids.shape[1] >= width else np.zeros((len(texts), 1), np.int64)
        return np.ascontiguousarray(ids), np.minimum(counts, self.max_tokens), counts

    def _encode(self, texts: Sequence[str]) -> _Encoded:
        """(ids (B, T>=1) right-padded with 0, lengths, token counts up to max_tokens + 1)"""
        got = self._encode_in_graph(texts) if self._text is not None else None
        return got if got is not None else self._encode_in_python(texts)

    def _count(self, ids: np.ndarray, lengths: np.ndarray, counts: np.ndarray) -> None:
        # counted first, then added under the lock: threads sharing the model lost updates
        tokens, unknown = int(lengths.sum()), int(np.count_nonzero(ids == UNK_ID))
        empty = int(np.count_nonzero(counts == 0))
        truncated = int(np.count_nonzero(counts > self.max_tokens))
        with self._lock:
            st = self.stats
            st.texts += len(counts)
            st.tokens += tokens
            st.unknown += unknown
            st.empty += empty
            st.truncated += truncated

    def _sides(self, texts: Sequence[Text], pair: bool) -> list[Sequence[str]]:
        """The texts, or for pairs the first texts and the second texts."""
        if isinstance(texts, (str, bytes)):  # a sequence too: a prediction per character
            raise DataError(f"give a list of texts, not one {type(texts).__name__}: "
                            "model.predict([text])")
        if not isinstance(texts, (Sequence, np.ndarray)) or getattr(texts, "ndim", 1) != 1:
            # None, a number, a generator, or a set or dict (no order to give the rows back in)
            raise DataError(f"give a list of texts, not {type(texts).__name__}: "
                            "model.predict([text, ...])")
        if pair:
            if not all(isinstance(t, tuple) and len(t) == 2 for t in texts):
                raise DataError("this model reads sentence pairs: give (text_a, text_b)")
            if not all(isinstance(t[0], str) and isinstance(t[1], str) for t in texts):  # type: ignore[index]
                raise DataError("a sentence pair is two texts (str)")
            return [[t[0] for t in texts], [t[1] for t in texts]]  # type: ignore[index]
        if set(map(type, texts)) - {str} and not all(isinstance(t, str) for t in texts):
            other = next(t for t in texts if not isinstance(t, str))
            raise DataError("this model reads single texts (str), not pairs" if isinstance(
                other, tuple) else f"texts must be str, not {type(other).__name__}")
        return [texts]  # type: ignore[list-item]

    # --- batches -------------------------------------------------------------------------------
    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """fn over items, on ``workers`` threads when there is more than one batch."""
        if self.workers <= 1 or len(items) <= 1:
            return list(map(fn, items))
        # the calling thread is one of the workers, and each takes the next item when it is
        # free: a long batch then holds up one thread, not the items dealt to it in advance
        # (fortunes' 255-text call, 2 threads: 83-88k -> 89-92k texts/s against pool.map)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers - 1,
                                                thread_name_prefix="metaprep-batch")
        results: list[Any] = [None] * len(items)
        todo, lock = iter(enumerate(items)), threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    got = next(todo, None)
                if got is None:
                    return
                results[got[0]] = fn(got[1])

        helpers = [self._pool.submit(work) for _ in range(min(self.workers, len(items)) - 1)]
        try:
            work()
        finally:
            wait(helpers)  # no batch outlives the call, even when one failed
        for h in helpers:
            h.result()  # a helper's error, as the caller's would be
        return results

    def _run(self, graph: str, texts: Sequence[Text], output: str, *, pair: bool) -> np.ndarray:
        sess = self._session(graph)
        sides = self._sides(texts, pair)
        n = len(texts)
        # texts of like length share a batch (little padding): characters stand for tokens
        size = np.fromiter(map(len, sides[0]), dtype=np.int64, count=n)
        if pair:
            size = np.maximum(size, np.fromiter(map(len, sides[1]), dtype=np.int64, count=n))
        order = np.argsort(size, kind="stable")
        wanted = {i.name for i in sess.get_inputs()}
        fed = [(side, suffix) for side, suffix in zip(sides, ("", "_b"), strict=False)
               if f"ids{suffix}" in wanted]

        serve = graph == "model" and not pair and self._serve is not None

        def one(rows: np.ndarray) -> tuple[np.ndarray, list[_Encoded]]:
            if serve:  # texts in, outputs out: one run
                got = self._serve_batch([sides[0][k] for k in rows.tolist()], output)
                if got is not None:
                    return got
            feed: dict[str, np.ndarray] = {}
            encoded = []
            for side, suffix in fed:
                ids, lengths, counts = self._encode([side[k] for k in rows.tolist()])
                feed[f"ids{suffix}"], feed[f"lengths{suffix}"] = ids, lengths
                encoded.append((ids, lengths, counts))
            (out,) = ran(sess, [output], feed, self._paths[graph])
            return checked(out, output, len(rows), self._width(output),
                           self._paths[graph]), encoded

        # a call of fewer than workers x batch_size texts is cut finer, so every thread has some
        step = max(1, min(self.batch_size, -(-n // self.workers)))
        batches = _batches(order, size[order], step)
        result: np.ndarray | None = None
        for rows, (out, encoded) in zip(batches, self._map(one, batches), strict=True):
            if result is None:
                result = np.empty((n, *out.shape[1:]), dtype=np.float32)
            result[rows] = out
            for ids, lengths, counts in encoded:
                self._count(ids, lengths, counts)
        if result is None:  # no texts
            result = np.empty((0, self._width(output)), dtype=np.float32)
        return result

    def _width(self, output: str) -> int:
        """The columns of an output: the sentence vector's width, or one per label."""
        return self.manifest.task.sentence_dim if output == "sentence_embedding" \
            else len(self.labels)

    def predict_proba(self, texts: Sequence[Text]) -> np.ndarray:
        """(N, C) class probabilities; columns follow ``labels``. Multi-label: a sigmoid
        probability per label (rows need not sum to 1)."""
        return self._run("model", texts, "probabilities", pair=self.pair)

    def predict_ids(self, texts: Sequence[Text]) -> np.ndarray:
        """(N,) int64 class ids, indexes into ``labels``: the array API, no per-row objects.
        Multi-label: (N, C) bool, True where a label reaches its threshold."""
        probs = self.predict_proba(texts)
        if self.thresholds is not None:
            return probs >= self.thresholds[None, :]
        return np.argmax(probs, axis=1)

    def predict(self, texts: Sequence[Text], *,
                top_k: int | None = None) -> list[tuple[Any, Mapping[str, float]]]:
        """Per text, (label, {label: probability} over all labels, or over the ``top_k`` most
        probable, most probable first); multi-label: (the labels over their thresholds, most
        probable first, {label: probability} of those; ``top_k`` keeps at most that many).
        Over all labels the mapping is a read-only ``Probabilities`` view of the row (a dict
        of every label per row cost more than the model on many labels); ``dict(p)`` copies."""
        _check_top_k(top_k)
        probs = self.predict_proba(texts)
        if self.thresholds is not None:
            return [_over_threshold(self.labels, p, self.thresholds, top_k) for p in probs]
        labels = self.labels
        if top_k is not None and top_k < len(labels):
            # (N, k): a per-row dict of k, built in C by tolist and dict(zip)
            order = _top_k_order(probs, top_k)
            names = np.asarray(labels, dtype=object)[order].tolist()
            picked = np.take_along_axis(probs, order, axis=1).tolist()
            return [(row[0], dict(zip(row, ps, strict=True)))
                    for row, ps in zip(names, picked, strict=True)]
        best = np.argmax(probs, axis=1).tolist()
        index = {label: j for j, label in enumerate(labels)}
        return [(labels[k], Probabilities(row, index)) for k, row in zip(best, probs, strict=True)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, E) sentence vectors (the encoder's output, what the classifier reads)."""
        if "front_end" in self.manifest.graphs:
            graph = "front_end"
        elif not self.pair:
            graph = "model"
        else:
            raise ModelError("a sentence-pair model embeds single texts only with its front-end "
                             "graph", path=self.path, hint="re-export with --front-end")
        return self._run(graph, texts, "sentence_embedding", pair=False)


def _whole(value: object, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be a whole number of at least 1, not {top_k!r}")


def _top_k_order(probs: np.ndarray, k: int) -> np.ndarray:
    """(N, k) column indexes of each row's k largest values, largest first; ties keep the lower
    index first, as argmax does (a stable sort: a few dozen labels a row cost little)."""
    if k == 1:  # argmax alone: a sort of every row cost more than the model (57 labels)
        return np.argmax(probs, axis=1)[:, None]
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def _over_threshold(labels: Sequence[str], p: np.ndarray, thresholds: np.ndarray,
                    top_k: int | None = None) -> tuple[list[str], dict[str, float]]:
    picked = sorted((int(j) for j in np.flatnonzero(p >= thresholds)), key=lambda j: -p[j])
    picked = picked[:top_k]
    return [labels[j] for j in picked], {labels[j]: float(p[j]) for j in picked}


# the most padding a batch may hold, as a share of its cells: texts of a long-tailed length
# spread (fortunes: 2 to 500+ tokens) would otherwise pad the short ones of a batch to the
# longest one's length, the costliest part of serving them
MAX_PADDING = 0.25


def _batches(order: np.ndarray, sizes: np.ndarray, step: int) -> list[np.ndarray]:
    """``order`` (texts sorted by size, ``sizes`` in that order) cut into batches of at most
    ``step`` texts, each ending early where the next text would pad the batch beyond
    MAX_PADDING of its cells (sizes in characters stand for tokens)."""
    cuts, start, total = [0], 0, 0
    for i, c in enumerate((sizes // 6 + 1).tolist()):  # about 6 characters a token
        count = i - start + 1
        if count > step or (count > 1 and count * c - (total + c) > MAX_PADDING * count * c):
            cuts.append(i)
            start, total = i, 0
        total += c
    cuts.append(len(order))
    return [order[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


_PROBES = ["", "   ", "Hello, World!", "naïve café — “quotes” it's co-op l'été",
           "İstanbul ΑΣ Σα ΌΣΟΣ", "e\u0301 x² ½ 123_4 Ⅻ", "a\x00b \x1c\x1f c", "中文 日本語 😀👍🏽",
           "ﬁ ﬂ ŉ", "UPPER lower Title MiXeD"]


def _probes(words: Sequence[str], max_tokens: int) -> list[str]:
    """Texts the text graph must tokenize exactly as Python: hostile cases, and vocabulary
    words as written, upper- and title-cased (the case policy's lookups), max_tokens words a
    text so that truncation hides none of them (200 words in one text made every model with
    max_tokens up to 33 fail its own check)."""
    heads = [" ".join(words[i : i + max_tokens]) for i in range(0, len(words), max_tokens)]
    return [*_PROBES, *heads, *(h.upper() for h in heads), *(h.title() for h in heads)]


def pad_flat(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows laid end to end in ``flat`` -> right-padded ids (B,T) int64 (T >= 1), lengths."""
    width = max(1, int(lengths.max(initial=0)))
    ids = np.zeros((len(lengths), width), dtype=np.int64)
    ids[np.arange(width)[None, :] < lengths[:, None]] = flat
    return ids, lengths


def pad_batch(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad with id 0 -> ids (B,T) int64, lengths (B,) int64 (T >= 1)."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
    return pad_flat(flat, lengths)


# --- reading input texts -------------------------------------------------------------------------
def _detect(name: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = os.path.splitext(name)[1].lower()
    return {".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
            ".ndjson": "jsonl"}.get(suffix, "lines")


def _bounded_lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """(line, whether it was cut) for every line, each at most MAX_LINE_BYTES long: the rest of
    a longer line is read and dropped piece by piece."""
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw:
            return
        cut = False
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            rest = stream.readline(MAX_LINE_BYTES)
            cut = rest not in (b"", b"\n", b"\r\n")  # not just a line exactly that long
            while rest and not rest.endswith(b"\n"):
                rest = stream.readline(MAX_LINE_BYTES)
            if cut:
                raw = raw[: _char_end(raw)]
        yield raw, cut


def _char_end(raw: bytes) -> int:
    """Where ``raw`` ends without a UTF-8 character cut in two (a cut one is dropped)."""
    i = len(raw) - 1
    while i > len(raw) - 4 and raw[i] & 0xC0 == 0x80:  # continuation bytes
        i -= 1
    lead = raw[i]
    need = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return i if i + need > len(raw) else len(raw)


def read_texts(
    stream: BinaryIO,
    *,
    name: str = "<stdin>",
    fmt: str = "auto",
    columns: Sequence[str] = ("text",),
    warn: Callable[[str], None] | None = None,
) -> Iterator[tuple[int, Text | None, str | None]]:
    """(line number, text or pair, problem) for every input line, streamed.

    ``lines``: one text per line (pairs: ``text_a<TAB>text_b``); ``tsv``: a header naming the
    ``columns``; ``jsonl``: objects with those keys. Bytes that are not UTF-8 are replaced and
    reported through ``warn`` with the line number. A record that cannot be read (bad JSON, a
    missing key) yields ``None`` and the problem, so one bad line never stops a stream. Empty
    lines are empty texts (in jsonl, blank lines are skipped).
    """
    # one generator for the three formats: they share the decoding, the line count and the
    # record count, and a stream must not be read twice
    fmt = _detect(name, fmt)
    if fmt not in INPUT_FORMATS[1:]:
        raise DataError(f"unknown input format {fmt!r}", path=name,
                        hint=f"use one of {', '.join(INPUT_FORMATS)}")
    pair = len(columns) == 2
    index: list[int] | None = None
    for no, (raw, cut) in enumerate(_bounded_lines(stream), 1):
        if cut:
            if fmt != "lines":  # a cut record is not a record
                yield no, None, f"longer than {MAX_LINE_BYTES:,} bytes"
                continue
            if warn is not None:
                warn(f"{name}:{no}: longer than {MAX_LINE_BYTES:,} bytes; only those were read")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.decode("utf-8", errors="replace")
            if warn is not None:
                warn(f"{name}:{no}: not valid UTF-8 (byte {exc.start}); undecodable bytes "
                     "replaced by U+FFFD")
        line = line.rstrip("\n").rstrip("\r")
        if fmt == "lines":
            if not pair:
                yield no, line, None
            else:
                a, tab, b = line.partition("\t")
                yield (no, (a, b), None) if tab else (no, None, "no TAB between the two texts")
        elif fmt == "tsv":
            fields = line.split("\t")
            if index is None:
                missing = [c for c in columns if c not in fields]
                if missing:
                    raise DataError(f"no column {', '.join(missing)} in the header {fields}",
                                    path=name, line=no, hint="pass --column NAME")
                index = [fields.index(c) for c in columns]
                continue
            if max(index) >= len(fields):
                yield no, None, f"{len(fields)} fields, the header has more"
                continue
            vals = [fields[i] for i in index]
            yield no, (vals[0], vals[1]) if pair else vals[0], None
        else:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                vals = [obj[c] for c in columns]
            except (ValueError, KeyError, TypeError) as exc:
                yield no, None, f"not a JSON object with {', '.join(columns)} ({exc})"
                continue
            if not all(isinstance(v, str) for v in vals):
                yield no, None, f"{', '.join(columns)} must be strings"
                continue
            yield no, (vals[0], vals[1]) if pair else vals[0], None


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items, so a stream is processed (and written) as it arrives."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_stream(model: Model, records: Iterable[tuple[int, Text | None, str | None]], *,
                   chunk: int = 1024, top_k: int | None = None) -> Iterator[dict[str, Any]]:
    """One JSON-ready record per input record, in order: {"record", "line", "label",
    "probabilities"} (multi-label: "labels", the list over their thresholds), or {"record",
    "line", "error"} for a record that could not be read. ``top_k``: "probabilities" holds
    only the k most probable labels, most probable first (default: every label), and
    "labels" at most k labels.
    ``record`` counts records from 1 (a TSV header or a blank JSONL line is none); ``line`` is
    where the record starts in the input."""
    _check_top_k(top_k)
    number = 0
    for part in chunked(records, chunk):
        probs = model.predict_proba([t for _, t, _ in part if t is not None])
        cols = (_top_k_order(probs, top_k) if top_k is not None and top_k < len(model.labels)
                else None)
        at = 0
        for no, text, problem in part:
            number += 1
            if text is None:
                yield {"record": number, "line": no, "error": problem}
                continue
            p, at = probs[at], at + 1
            if cols is None:
                shown = {k: round(float(x), 6) for k, x in zip(model.labels, p, strict=True)}
            else:
                shown = {model.labels[j]: round(float(p[j]), 6) for j in cols[at - 1]}
            if model.thresholds is not None:  # top_k caps the label set too, as in predict()
                over = _over_threshold(model.labels, p, model.thresholds, top_k)[0]
                yield {"record": number, "line": no, "labels": over, "probabilities": shown}
            else:
                yield {"record": number, "line": no, "label": model.labels[int(np.argmax(p))],
                       "probabilities": shown}


def embed_stream(model: Model, records: Iterable[tuple[int, Text | None, str | None]], *,
                 chunk: int = 1024) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """(line, sentence vector or None, problem) per input record, in order."""
    for part in chunked(records, chunk):
        texts = [t for _, t, _ in part if t is not None]
        if any(not isinstance(t, str) for t in texts):
            raise DataError("embed reads single texts, one per record")
        vecs = iter(model.embed(texts))  # type: ignore[arg-type]
        for no, text, problem in part:
            yield (no, None, problem) if text is None else (no, next(vecs), None)


def stats_notes(model: Model) -> list[str]:
    """What a user should hear once, at the end: truncation, empty texts, unknown words."""
    st, notes = model.stats, []
    if st.truncated:
        notes.append(f"{st.truncated} text(s) longer than {model.max_tokens} tokens were "
                     f"truncated to the first {model.max_tokens}")
    if st.empty:
        notes.append(f"{st.empty} empty text(s) (no tokens): read as a single padding token")
    if st.tokens:
        notes.append(f"{st.unknown} of {st.tokens} tokens ({100 * st.unknown / st.tokens:.1f}%) "
                     "are in no vocabulary (UNK)")
    return notes
