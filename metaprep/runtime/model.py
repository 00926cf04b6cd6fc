"""Serve a model directory with numpy and onnxruntime only: no torch, gensim or h5py.

    from metaprep.runtime import Model
    model = Model("model/", threads=2)
    model.predict(["a fine film", "dull"])       # [("pos", {"neg": 0.1, "pos": 0.9}), ...]
    #                                              (a read-only mapping per row; dict(p) copies)
    model.predict_proba(texts)                   # (N, C) float32
    model.embed(texts)                           # (N, E) float32 sentence vectors

Texts go through the exported tokenizer, the memory-mapped vocabulary with the exported case
policy (unknown words -> UNK), truncation at the manifest's ``max_tokens`` (counted in
``model.stats``), then length buckets of ``batch_size``, run ``threads`` at a time. With a text
graph (``text.onnx``) the tokenizer and the lookup run in onnxruntime too, giving the same ids
as the Python path (which stays for batches the graph cannot take exactly); with a serve graph
(``serve.onnx``) texts go in and the model's outputs come out of one run, proven at load to be
the two graphs joined (graphjoin). A large text graph is checked and loaded on a thread
(``ready``), the Python path serving meanwhile. An empty text is read as one padding token.
Sentence pairs are ``(text_a, text_b)`` tuples.

This module holds the sessions, the graphs' loading and the public calls; texts -> ids is
textpath.py, the batches and threads batching.py, reading input files inputs.py. Imports: the
standard library, numpy, onnxruntime and metaprep's pure modules (tested: no torch, gensim, h5py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import DataError, ModelError
from metaprep.ids import ID_OFFSET, UNK_ID
from metaprep.runtime.batching import BatchPool, batches, text_sides
from metaprep.runtime.inputs import Text
from metaprep.runtime.modeldir import (
    DEFERRABLE,
    TOKENIZER,
    VOCAB_TXT,
    Manifest,
    ModelDir,
    graph_bytes,
)
from metaprep.runtime.probabilities import (
    Probabilities,
    check_top_k,
    over_threshold,
    top_k_order,
)
from metaprep.runtime.runcheck import checked, checked_ids, new_session, one_line, ran
from metaprep.runtime.textpath import Encoded, TextPath
from metaprep.tokenize import Tokenizer

__all__ = ["MAX_BATCH", "MAX_THREADS", "WAIT_GRAPH_BYTES", "Model", "RunStats"]

# bounds of the options: far above any measured use, below what would exhaust the machine (a
# million threads, a batch holding a whole stream)
MAX_THREADS = 1024
MAX_BATCH = 1 << 16
# a text graph above this is checked and loaded on a thread by default: onnxruntime took 4.2 s
# to load a 3.5M-word one (48 MB), about 0.1 s a MB
WAIT_GRAPH_BYTES = 4 << 20


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
    benchmarks/results/text-path.md). ``wait``: whether the text and serve graphs are checked
    and loaded before the constructor returns (True), or on a thread while texts take the
    Python path, which gives the same ids (False); None (default): wait for a text graph up to
    WAIT_GRAPH_BYTES. A graph that fails its checks there refuses every call after it."""

    def __init__(self, model_dir: str | Path, *, threads: int | None = None,
                 batch_size: int = 64, verify: str = "fast", spin: bool = False,
                 wait: bool | None = None) -> None:
        if verify not in ("fast", "full", "none"):
            raise ValueError("verify must be fast, full or none")
        if wait not in (None, True, False):
            raise ValueError("wait must be None, True or False")
        if not _whole(batch_size, MAX_BATCH):
            raise ValueError(f"batch_size must be a whole number from 1 to {MAX_BATCH}")
        if threads is not None and not _whole(threads, MAX_THREADS):
            raise ValueError(f"threads must be None or a whole number from 1 to {MAX_THREADS}")
        self.path = Path(model_dir)
        if wait is None:
            wait = graph_bytes(self.path, "text") <= WAIT_GRAPH_BYTES
        # every check before onnxruntime; the deferred graphs' in _load_later
        self.dir = ModelDir.open(self.path, verify=verify, defer=() if wait else DEFERRABLE)
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
        self.text_ids = TextPath(self.tokenizer, self.vocab, self.max_tokens)  # texts -> ids
        self.stats = RunStats()
        # guards the statistics: threads may share one Model
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        # one per graph: a session being made on the loading thread holds up no other
        self._session_locks = {g: threading.Lock() for g in self.manifest.graphs}
        # each graph's file, for the errors of a batch (a Path built per batch cost 10%)
        self._paths = {g: self.dir.graph_path(g) for g in self.manifest.graphs}
        self._pool = BatchPool(self.workers)
        self._session("model")  # fail now, not at the first batch, if onnxruntime refuses it
        # where texts become ids: "onnxruntime" (the text graph) or "python"
        self.text_path = "python"
        self.text_note = ""
        self._text: Any = None
        self._serve: Any = None  # texts -> outputs in one graph (textgraph.serve_graph)
        self._refused: ModelError | None = None  # a deferred graph failed its checks
        self._loader: threading.Thread | None = None
        if not self.dir.deferred:
            self._load_text_graphs()
            return
        self.text_note = "text graph loading"
        self._loader = threading.Thread(target=self._load_later, daemon=True)
        self._loader.start()

    # --- sessions ------------------------------------------------------------------------------
    def load_graphs(self) -> None:
        """Create every graph's session now (the front end's is otherwise made at the first
        ``embed``; the text graph's beside a serve graph only then), after ``ready``: export
        opens what it wrote this way before it commits the directory."""
        self.ready()
        for graph in self.manifest.graphs:
            self._session(graph)

    def ready(self, timeout: float | None = None) -> bool:
        """Whether texts go through onnxruntime (a text or serve graph) yet, after waiting up to
        ``timeout`` seconds (None: as long as it takes) for the thread that checks and loads
        those graphs; their refusal if they failed a check (every call raises it then)."""
        if self._loader is not None:
            self._loader.join(timeout)
        if self._refused is not None:
            raise self._refused
        return self.text_path == "onnxruntime"

    def _load_text_graphs(self) -> None:
        """The serve graph if there is one, else the text graph; the text graph beside the
        serve graph only for a front end (embed): each holds the whole vocabulary's map (a
        3.5M-word one took 4 s and 0.7 GB to load)."""
        graphs = self.manifest.graphs
        if "serve" in graphs:
            self._load_text_graph("serve")
        if "text" in graphs and (self._serve is None or "front_end" in graphs):
            self._load_text_graph("text")

    def _load_later(self) -> None:
        """On the loading thread: the deferred graphs' checks, then their sessions and probes.
        Until it ends texts take the Python path; a failed check refuses the model."""
        try:
            self.dir.check_deferred()
            self._load_text_graphs()
            if self.text_path == "onnxruntime":
                self.text_note = ""
        except ModelError as exc:
            self.text_note = f"text graph refused: {exc}"
            self._refused = exc
        except Exception as exc:  # noqa: BLE001 - a thread's error would otherwise vanish
            self._refused = ModelError(f"loading the text graph failed: {one_line(exc)}")

    def _session(self, graph: str) -> Any:
        got = self._sessions.get(graph)
        if got is not None:
            return got
        with self._session_locks[graph]:  # threads calling embed() first would each build it
            return self._sessions.get(graph) or self._new_session(graph)

    def _new_session(self, graph: str) -> Any:
        if graph not in self._sessions:
            sess = new_session(self.dir.graph_path(graph), spin=self.spin)
            self.dir.check_outputs(graph, {o.name: o.shape for o in sess.get_outputs()})
            self._sessions[graph] = sess
        return self._sessions[graph]

    def _load_text_graph(self, graph: str) -> None:
        """Tokenize in onnxruntime when the model has a text (or serve) graph that loads and
        gives exactly the Python path's ids on the probes; else the Python path, with
        ``text_note`` saying why. The serve graph is proven the join of the text and model
        graphs (graphjoin): it gives what they give one after the other."""
        try:
            session = self._session(graph)
        except ModelError as exc:  # e.g. an onnxruntime build without the contrib ops
            self.text_note = f"text graph not used: {exc}"
            return
        path = self.dir.graph_path(graph)
        encode = self._encode_in_graph if graph == "text" else self._encode_in_serve
        self.text_ids.check_graph(session, encode, path, f"{TOKENIZER} and {VOCAB_TXT}",
                                  outputs=["ids", "missed"] if graph == "text" else None)
        if graph == "text":  # only now: batches on other threads may already run
            self._text = session
        else:
            self._serve = session
        self.text_path = "onnxruntime"

    # --- text -> ids ---------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Model ids of one text (truncated at max_tokens; counted in ``stats``)."""
        if not isinstance(text, str):
            raise DataError(f"encode takes one text (str), not {type(text).__name__}")
        self.ready(timeout=0)  # a deferred graph that failed its checks refuses the call
        ids, lengths, counts = self.text_ids.in_python([text])
        self._count(ids, lengths, counts)
        return ids[0, : lengths[0]].tolist()

    def _graph_run(self, graph: str, outputs: list[str] | None, texts: Sequence[str]
                   ) -> list[np.ndarray] | None:
        """The ``graph`` that reads text (text or serve) run on the texts, or None for a batch
        it cannot take exactly: a text so long that the Python path reads only its first
        tokens (TextPath.graph_texts), or a lone surrogate (UTF-8 has none)."""
        fed = self.text_ids.graph_texts(texts)
        if fed is None:
            return None
        try:
            return ran(self._sessions[graph], outputs, {"text": np.array(fed, dtype=object)},
                       self._paths[graph])
        except UnicodeEncodeError:
            return None

    def _serve_batch(self, texts: Sequence[str], output: str
                     ) -> tuple[np.ndarray, list[Encoded]] | None:
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

    def _encode_in_graph(self, texts: Sequence[str]) -> Encoded | None:
        """The text graph's ids, or None as _graph_run gives it."""
        got = self._graph_run("text", None, texts)
        if got is None:
            return None
        ids, missed = got
        return self.text_ids.from_graph(ids, missed, len(texts), self._paths["text"])

    def _encode_in_serve(self, texts: Sequence[str]) -> Encoded | None:
        """The serve graph's ids (cut at max_tokens), lengths and token counts."""
        got = self._graph_run("serve", ["ids", "counts"], texts)
        if got is None:
            return None
        empty = np.zeros(0, dtype=object)  # no token missed: ModelDir proved its map complete
        return (*self.text_ids.from_graph(got[0], empty, len(texts), self._paths["serve"])[:2],
                got[1])

    def _encode(self, texts: Sequence[str]) -> Encoded:
        """(ids (B, T>=1) right-padded with 0, lengths, token counts up to max_tokens + 1)"""
        got = self._encode_in_graph(texts) if self._text is not None else None
        return got if got is not None else self.text_ids.in_python(texts)

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

    # --- batches -------------------------------------------------------------------------------
    def _run(self, graph: str, texts: Sequence[Text], output: str, *, pair: bool) -> np.ndarray:
        self.ready(timeout=0)  # a deferred graph that failed its checks refuses the call
        sess = self._session(graph)
        sides = text_sides(texts, pair)
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

        def one(rows: np.ndarray) -> tuple[np.ndarray, list[Encoded]]:
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
        cut = batches(order, size[order], step)
        result: np.ndarray | None = None
        for rows, (out, encoded) in zip(cut, self._pool.map(one, cut), strict=True):
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
        check_top_k(top_k)
        probs = self.predict_proba(texts)
        if self.thresholds is not None:
            return [over_threshold(self.labels, p, self.thresholds, top_k) for p in probs]
        labels = self.labels
        if top_k is not None and top_k < len(labels):
            # (N, k): a per-row dict of k, built in C by tolist and dict(zip)
            order = top_k_order(probs, top_k)
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
