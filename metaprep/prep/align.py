"""Sources -> one vocabulary -> one HDF5 store, streaming (the library behind `metaprep align`).

    1. vocabulary: a target (word lists / task data) or the union / intersection of the
       sources' words (first source's order, then each next source's new words). A plain union
       (exact or lower case, no --max-vocab) grows during step 2; the others need a words-only
       pass first
    2. vectors: each source streamed in chunks (only wanted rows when the vocabulary is a target),
       matched to rows under the case policy, l2-normalised on the fly if asked, written straight
       to the store (RowSink turns scattered rows into sequential writes)
    3. normalisation that needs the source's mean (``center``), then the statistics OOV needs
    4. OOV rows filled per source (metaprep.oov), present masks and attributes written

Each source's sha256 is hashed by a background thread from the start (prep/sourcehash.py), so
it costs no pass of its own. The store appears at the output path only when every step
succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from metaprep import __version__
from metaprep.errors import ConfigError, FormatError, VocabError
from metaprep.prep.alignplan import (
    AlignOptions,
    Opener,
    SourceSpec,
    plan_from_options,
    validate,
)
from metaprep.prep.oov import (
    OovSpec,
    RowStats,
    fill_constant,
    fill_map,
    fill_random,
    fill_subword,
    l2_rows,
    present_stats,
    source_rng,
)
from metaprep.prep.readers.base import ReadOptions, Source
from metaprep.prep.sourcehash import SourceHashes
from metaprep.prep.store import StoreWriter, store_bytes
from metaprep.prep.store.writer import NonFiniteRows
from metaprep.prep.vocab import CaseMatcher, count_words, pool_vocab, target_vocab
from metaprep.taskdata import looks_like_task_data, read_word_list
from metaprep.tokenize import Tokenizer

_F16_MAX = float(np.finfo(np.float16).max)

__all__ = [
    "AlignOptions",
    "SourceSpec",
    "align",
    "plan_from_options",
]

# --- vocabulary --------------------------------------------------------------------------------
def _target_words(opt: AlignOptions) -> list[str]:
    listed: list[str] = []
    task: list[Path] = []
    for item in opt.vocab:
        p = Path(item)
        if not p.is_file():  # a pipe or device would block the read or never end
            raise VocabError("no such vocabulary file" if not p.exists() else
                             "the vocabulary file is not a regular file (a folder, pipe or "
                             "device)", path=p,
                             hint="--vocab takes union, intersection, a word list or task data")
        if looks_like_task_data(p, encoding=opt.data_encoding, columns=opt.columns):
            task.append(p)
        else:
            listed.extend(read_word_list(p, encoding=opt.data_encoding))
    if opt.min_count > 1 and not task:
        raise ConfigError("--min-count applies to task data; no task data file was given")
    counts = count_words(task, Tokenizer(opt.tokenizer), encoding=opt.data_encoding,
                         columns=opt.columns)
    return target_vocab(listed, counts, case_policy=opt.case, min_count=opt.min_count,
                        max_vocab=opt.max_vocab)


# --- the run -----------------------------------------------------------------------------------
def _default_opener(spec: SourceSpec, options: ReadOptions) -> Source:
    from metaprep.prep.readers import open_source

    return open_source(spec.path, fmt=spec.format, options=options)


def _stream(
    writer: StoreWriter, spec: SourceSpec, src: Source, matcher: CaseMatcher, wanted: Any,
    progress: bool, need_stats: bool,
) -> tuple[np.ndarray, RowStats | None]:
    """Write the source's rows; returns its present mask and, when every row is written once
    (exact / lower policies), the statistics of the rows as stored."""
    matcher.reset()
    sink = writer.row_sink(spec.name)
    stats = RowStats(src.dim) if need_stats and matcher.policy != "fallback" else None
    dtype = writer.vectors(spec.name).dtype
    try:
        for chunk in src.iter_chunks(wanted):
            if chunk.vectors.ndim != 2 or chunk.vectors.shape[1] != src.dim:
                raise FormatError(f"a chunk of {chunk.vectors.shape} vectors where dim is "
                                  f"{src.dim}", path=spec.path)
            if "\x00" in "".join(chunk.words):  # name the file (the vocabulary check cannot)
                bad = next(w for w in chunk.words if "\x00" in w)
                raise FormatError(f"the word {bad!r} holds a NUL character, which a store cannot "
                                  "hold", path=spec.path, hint="delete or fix that row")
            pos, rows = matcher.match(chunk.words)
            if not rows:
                continue
            writer.grow(len(matcher))  # a growing union may have added rows
            if matcher.policy != "fallback" and len(pos) == len(chunk.words):
                vecs = np.asarray(chunk.vectors, dtype=np.float32)  # every row, in order
            else:
                vecs = np.asarray(chunk.vectors[pos], dtype=np.float32)
            if spec.normalize == "l2":
                vecs = l2_rows(vecs)
            if dtype == np.float16 and len(vecs) and float(np.abs(vecs).max()) > _F16_MAX:
                raise ConfigError(
                    f"values up to {float(np.abs(vecs).max()):.4g} do not fit float16 "
                    f"(max {_F16_MAX:.0f})", path=spec.path,
                    hint="use --dtype float32, or --normalize l2")
            sink.write(np.asarray(rows), vecs)
            if stats is not None:  # of the values as stored (float16 rounds)
                stats.update(vecs.astype(dtype, copy=False))
        sink.finish(progress=progress)
    finally:
        sink.close()
    return np.asarray(matcher.matched(), dtype=bool), stats


def _check_vocab(words: Sequence[str], mode: str) -> None:
    if not words:
        raise VocabError(f"the {mode} vocabulary is empty",
                         hint="check --vocab, --min-count and the sources' case")
    if "\x00" in "".join(words):  # HDF5 strings end at a NUL: the store cannot hold the word
        bad = next(w for w in words if "\x00" in w)
        raise VocabError(f"the word {bad!r} (from a source or the --vocab data) holds a NUL "
                         "character, which a store cannot hold",
                         hint="delete that row or text; grep -aP '\\x00' finds it")


def _write_sources(
    writer: StoreWriter, sources: Sequence[SourceSpec], srcs: Sequence[Source],
    matcher: CaseMatcher, wanted: Any, oov: Mapping[str, OovSpec], hashes: SourceHashes,
    opt: AlignOptions, *, growing: bool,
) -> tuple[dict[str, np.ndarray], dict[str, RowStats | None]]:
    """Stream every source into the store, then write the present masks and attributes (after
    the last source: only then is a growing union's size known)."""
    present: dict[str, np.ndarray] = {}
    streamed: dict[str, RowStats | None] = {}
    steps: dict[str, dict[str, int]] = {}
    for s, src in zip(sources, srcs, strict=True):
        writer.add_source(s.name, src.dim, dtype=opt.dtype)
        present[s.name], streamed[s.name] = _stream(
            writer, s, src, matcher, wanted, opt.progress,
            need_stats=oov[s.name].kind in ("random", "mean"))
        steps[s.name] = matcher.step_counts()
    if growing:
        _check_vocab(matcher.words, "union")
        writer.set_vocab(matcher.words)
    for s, src in zip(sources, srcs, strict=True):
        mask = np.zeros(len(matcher), dtype=bool)  # rows added after the source are not in it
        mask[: len(present[s.name])] = present[s.name]
        present[s.name] = mask
        writer.set_present(s.name, mask)
        sha = hashes.digest(s.path)  # by now hashed alongside the parse
        writer.set_source_attrs(s.name, _source_attrs(s, src, sha, steps[s.name], mask,
                                                      oov[s.name]))
    return present, streamed


def align(
    sources: Sequence[SourceSpec],
    out: str | Path,
    options: AlignOptions | None = None,
    *,
    command: Mapping[str, Any] | None = None,
    opener: Opener | None = None,
) -> Path:
    """Align ``sources`` into a store at ``out`` (see the module docstring); returns its path.

    ``command`` (e.g. the CLI arguments) is stored as JSON in the root attributes; ``opener``
    replaces ``metaprep.readers.open_source`` (tests use in-memory sources).
    """
    opt = options or AlignOptions()
    out = Path(out)
    oov = validate(sources, out, opt)
    mode = opt.vocab[0] if tuple(opt.vocab) in (("union",), ("intersection",)) else "target"
    if mode == "target" and {"union", "intersection"} & set(opt.vocab):
        raise ConfigError("--vocab union/intersection cannot be combined with files")
    target = _target_words(opt) if mode == "target" else None
    read_opts = {s.name: ReadOptions(encoding_errors=opt.encoding_errors,
                                     on_bad_line=opt.on_bad_line, limit=opt.limit,
                                     progress=opt.progress, tensor=s.tensor,
                                     vocab_file=s.vocab_file) for s in sources}
    open_ = opener or _default_opener
    with ExitStack() as stack:
        # hashed by a background thread while the sources are read (see sourcehash)
        hashes = stack.enter_context(SourceHashes([s.path for s in sources]))
        srcs = [stack.enter_context(open_(s, read_opts[s.name])) for s in sources]
        _check_subwords(sources, srcs, oov)
        # a plain union grows while the vectors stream: no words-only pass over the sources
        growing = mode == "union" and opt.max_vocab is None and opt.case != "fallback"
        matcher = _matcher(srcs, target, mode, growing, opt)
        # a full union reads every row anyway; otherwise let readers skip unwanted numbers
        wanted = None if mode == "union" and opt.max_vocab is None else matcher.wanted()
        root = {
            "metaprep_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": dict(command) if command is not None else _options_json(sources, opt),
            "case_policy": opt.case,
            "tokenizer": opt.tokenizer.to_dict(),
            "vocab_mode": mode,
            "vocab_files": [str(Path(v).resolve()) for v in opt.vocab] if target else None,
            "seed": opt.seed,
        }
        with StoreWriter(out, None if growing else matcher.words, attrs=root,
                         expected_bytes=_room(matcher.words, srcs, opt.dtype, growing)) as writer:
            present, streamed = _write_sources(writer, sources, srcs, matcher, wanted, oov,
                                               hashes, opt, growing=growing)
            words = matcher.words
            transforms = {}
            for s in sources:
                with _overflow(s, words, f"normalizing it ({s.normalize})"):
                    transforms[s.name] = _normalize(writer, s, present[s.name], oov[s.name],
                                                    opt, streamed[s.name])
            for s, src in zip(sources, srcs, strict=True):
                with _overflow(s, words, f"filling its OOV rows ({oov[s.name]})"):
                    attrs = _fill_oov(writer, s, src, words, present, oov[s.name],
                                      transforms[s.name], opt, [x.name for x in sources])
                writer.set_source_attrs(s.name, attrs)
    return out


@contextmanager
def _overflow(s: SourceSpec, words: Sequence[str], what: str) -> Iterator[None]:
    """The writer refuses a row that would be stored as NaN or infinite: name the file and why
    (numpy's own overflow warnings would only add lines before the error)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            yield
    except NonFiniteRows as exc:
        word = words[exc.row] if exc.row < len(words) else exc.row
        raise FormatError(f"{what} gives NaN or infinite values (first for {word!r})",
                          path=s.path, hint="the file's values come near the largest float; "
                          "scale them down, or use another --oov / --normalize") from exc


def _check_subwords(sources: Sequence[SourceSpec], srcs: Sequence[Source],
                    oov: Mapping[str, OovSpec]) -> None:
    for s, src in zip(sources, srcs, strict=True):
        if oov[s.name].kind == "subword" and not src.has_subwords:
            raise ConfigError(
                f"--oov {s.name}=subword: this {src.format} file has no subword information",
                path=s.path, hint="subword needs a fastText .bin model or a matrix whose "
                "vocabulary has WordPiece ##pieces; use zero/mean/map")


def _matcher(srcs: Sequence[Source], target: list[str] | None, mode: str, growing: bool,
             opt: AlignOptions) -> CaseMatcher:
    """The vocabulary's matcher: a target's, a union still to grow, or a words-only pass."""
    if target is not None:
        matcher = CaseMatcher(target, opt.case)
    elif growing:
        return CaseMatcher.growing_union(opt.case)
    else:
        index = pool_vocab((src.iter_words() for src in srcs), mode=mode,
                           case_policy=opt.case, max_vocab=opt.max_vocab)
        matcher = CaseMatcher(list(index), opt.case, index=index)
    _check_vocab(matcher.words, mode)
    return matcher


def _room(words: Sequence[str], srcs: Sequence[Source], dtype: str, growing: bool) -> int:
    """The store's size, about: for a union still to grow, at least the largest source's rows."""
    dims = [src.dim for src in srcs]
    if not growing:
        return store_bytes(len(words), sum(len(w.encode("utf-8", "surrogatepass"))
                                           for w in words), dims, dtype)
    rows = max((src.declared_count or 0) for src in srcs)
    return store_bytes(rows, 8 * rows, dims, dtype)


def _options_json(sources: Sequence[SourceSpec], opt: AlignOptions) -> dict[str, Any]:
    return {"sources": [{k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()}
                        for s in sources],
            "options": {k: v for k, v in asdict(opt).items()}}


def _source_attrs(s: SourceSpec, src: Source, sha: str, steps: dict[str, int],
                  present: np.ndarray, spec: OovSpec) -> dict[str, Any]:
    st = src.stats
    return {
        "path": str(s.path.resolve()),
        "format": src.format,
        "sha256": sha,
        "tensor": s.tensor,
        "vocab_file": str(s.vocab_file) if s.vocab_file else None,
        "declared_count": src.declared_count,
        "rows_read": st.rows_read,
        "duplicates": st.duplicates,
        "bad_lines": st.bad_lines,
        "bad_line_examples": list(st.examples),
        "present_count": int(present.sum()),
        "oov_count": int((~present).sum()),
        "oov": str(spec),
        "normalize": s.normalize,
        "case_steps": steps,
    }


def _normalize(
    writer: StoreWriter, s: SourceSpec, present: np.ndarray, spec: OovSpec, opt: AlignOptions,
    streamed: RowStats | None,
) -> tuple[Callable[[np.ndarray], np.ndarray] | None, RowStats | None]:
    """Centre present rows if asked; returns (the transform new rows need, present statistics).
    Statistics gathered while streaming are used when centring did not change the rows."""
    stats = None if s.normalize == "center" else streamed
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    if s.normalize == "center":
        mean = present_stats(writer, s.name, present, progress=opt.progress).mean

        def transform(x: np.ndarray) -> np.ndarray:
            return l2_rows(x - mean.astype(np.float32))

        stats = present_stats(writer, s.name, present, transform=transform,
                              progress=opt.progress)
    elif s.normalize == "l2":
        transform = l2_rows
    if stats is None and spec.kind in ("random", "mean"):
        stats = present_stats(writer, s.name, present, progress=opt.progress)
    return transform, stats


def _fill_oov(
    writer: StoreWriter, s: SourceSpec, src: Source, words: Sequence[str],
    present: Mapping[str, np.ndarray], spec: OovSpec,
    norm: tuple[Callable[[np.ndarray], np.ndarray] | None, RowStats | None],
    opt: AlignOptions, names: Sequence[str],
) -> dict[str, Any]:
    transform, stats = norm
    mask = present[s.name]
    counts = {"zero": int((~mask).sum())}
    attrs: dict[str, Any] = {}
    if spec.kind == "mean" and stats is not None:
        counts = {"mean": fill_constant(writer, s.name, mask, stats.mean, progress=opt.progress)}
    elif spec.kind == "random" and stats is not None:
        n = fill_random(writer, s.name, mask, stats, source_rng(opt.seed, s.name),
                        progress=opt.progress)
        counts = {"random": n}
    elif spec.kind == "subword":
        n, zero = fill_subword(writer, s.name, mask, words, src, normalize=transform,
                               progress=opt.progress)
        counts = {"subword": n}
        attrs["subword_all_zero"] = zero
    elif spec.kind == "map":
        others = [spec.other] if spec.other else [n for n in names if n != s.name]
        fit = fill_map(writer, s.name, others, present, holdout=opt.map_holdout, seed=opt.seed,
                       progress=opt.progress)
        counts = {"map": fit["filled"], "zero": fit["unmapped"]}
        attrs["map_fit"] = fit
    if spec.kind in ("subword", "map"):
        derived = _nonzero_rows(writer, s.name, ~mask)
        writer.set_derived(s.name, derived)
        attrs["derived_count"] = int(derived.sum())
    attrs["oov_filled"] = {k: v for k, v in counts.items() if v}
    return attrs


def _nonzero_rows(writer: StoreWriter, name: str, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` hold a non-zero vector (a word with no known subword unit composes to
    zeros, an unmappable word stays zero: those carry no information)."""
    out = np.zeros(len(rows), dtype=bool)
    step = writer.block_rows(name)
    for start in range(0, len(rows), step):
        sel = rows[start : start + step]
        if sel.any():
            block = writer.read_block(name, start, start + len(sel))
            out[start : start + len(sel)] = sel & block.any(axis=1)
    return out
