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

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaprep import __version__
from metaprep.errors import ConfigError, FormatError, VocabError
from metaprep.ids import CASE_POLICIES
from metaprep.prep.oov import (
    OovSpec,
    RowStats,
    fill_constant,
    fill_map,
    fill_random,
    fill_subword,
    l2_rows,
    parse_oov,
    present_stats,
    source_rng,
)
from metaprep.prep.readers.base import ReadOptions, Source
from metaprep.prep.sourcehash import SourceHashes
from metaprep.prep.store import StoreWriter, store_bytes
from metaprep.prep.vocab import CaseMatcher, pool_vocab, target_vocab
from metaprep.taskdata import count_words, looks_like_task_data, read_word_list
from metaprep.tokenize import Tokenizer, TokenizerConfig

__all__ = [
    "DTYPES",
    "NORMALIZE",
    "AlignOptions",
    "SourceSpec",
    "align",
    "options_from_cli",
    "parse_assignments",
    "parse_source_args",
    "plan_from_options",
    "specs_from_cli",
]

DTYPES = ("float32", "float16")
NORMALIZE = ("none", "l2", "center")
_F16_MAX = float(np.finfo(np.float16).max)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")  # HDF5-safe: no '/', no leading '.'

Opener = Callable[["SourceSpec", ReadOptions], Source]


@dataclass(frozen=True)
class SourceSpec:
    name: str  # group name in the store
    path: Path
    format: str | None = None  # None: detect from the file
    tensor: str | None = None  # matrix formats: tensor name in a .safetensors file
    vocab_file: Path | None = None  # matrix formats: one token per line
    oov: str = "zero"  # see metaprep.oov
    normalize: str = "none"  # none | l2 | center (subtract the source's mean, then l2)


@dataclass(frozen=True)
class AlignOptions:
    vocab: tuple[str, ...] = ("union",)  # ("union",), ("intersection",) or word-list/data files
    case: str = "exact"  # exact | lower | fallback (see metaprep.vocab)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # for task data
    data_encoding: str = "utf-8"  # of word lists and task data
    min_count: int = 1  # task-data words seen fewer times are left out
    max_vocab: int | None = None  # keep the first N words of the vocabulary
    dtype: str = "float32"  # float16 halves the store
    seed: int = 0  # random OOV rows and the map's held-out split
    limit: int | None = None  # rows read per source
    on_bad_line: str = "error"  # error | skip
    encoding_errors: str = "strict"  # strict | replace
    map_holdout: float = 0.1  # share of shared words held out to score a map
    progress: bool = True  # tqdm bars on stderr


# --- argument parsing (shared with the CLI) ----------------------------------------------------
def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"source name {name!r} ({where}) is not usable as an HDF5 group name",
            hint="use letters, digits and _ . + - (e.g. glove=path/to/file), not starting with '.'",
        )
    return name


def parse_source_args(args: Sequence[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` or a bare ``PATH`` (named by its file stem); names must be unique."""
    out: list[tuple[str, Path]] = []
    for arg in args:
        name, sep, path = arg.partition("=")
        if sep and _NAME.match(name) and not Path(arg).exists():
            out.append((name, Path(path)))
        else:
            out.append((_check_name(Path(arg).stem, f"the stem of {arg}"), Path(arg)))
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"source name(s) given twice: {', '.join(dup)}",
                          hint="name each source explicitly: NAME=PATH")
    if not out:
        raise ConfigError("no source given", hint="metaprep align NAME=PATH [NAME=PATH ...] -o OUT")
    return out


def parse_assignments(
    values: Iterable[str], option: str, names: Sequence[str], *, allow_all: bool = False
) -> dict[str, str]:
    """``NAME=VALUE`` items of a repeated option; with ``allow_all`` a bare VALUE sets '*'."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            if not allow_all:
                raise ConfigError(f"{option} expects NAME=VALUE, got {item!r}")
            name, value = "*", item
        elif name not in names:
            raise ConfigError(f"{option} {item}: no source named {name!r}",
                              hint=f"sources are: {', '.join(names)}")
        out[name] = value
    return out


def specs_from_cli(kw: Mapping[str, Any]) -> list[SourceSpec]:
    """SourceSpecs from `metaprep align`'s parameters (positional sources plus NAME=VALUE
    options)."""
    pairs = parse_source_args(list(kw["sources"]))
    names = [n for n, _ in pairs]
    fmt = parse_assignments(kw.get("formats", ()), "--format", names)
    tensor = parse_assignments(kw.get("tensors", ()), "--tensor", names)
    vfile = parse_assignments(kw.get("vocab_files", ()), "--vocab-file", names)
    oov = parse_assignments(kw.get("oov", ()), "--oov", names)
    norm = parse_assignments(kw.get("normalize", ()), "--normalize", names, allow_all=True)
    default_oov = str(kw.get("oov_default", "zero"))
    return [
        SourceSpec(name=n, path=p, format=fmt.get(n), tensor=tensor.get(n),
                   vocab_file=Path(vfile[n]) if n in vfile else None,
                   oov=oov.get(n, default_oov), normalize=norm.get(n, norm.get("*", "none")))
        for n, p in pairs
    ]


def options_from_cli(kw: Mapping[str, Any]) -> AlignOptions:
    """AlignOptions from `metaprep align`'s parameters."""
    from metaprep.tokenize import DEFAULT_PATTERN

    try:
        tok = TokenizerConfig(mode="whitespace" if kw.get("whitespace") else "regex",
                              pattern=kw.get("token_pattern") or DEFAULT_PATTERN,
                              lowercase=bool(kw.get("lowercase")))
    except ValueError as exc:
        raise ConfigError(f"--token-pattern: {exc}") from exc
    return AlignOptions(
        vocab=tuple(kw.get("vocab") or ("union",)), case=kw.get("case", "exact"), tokenizer=tok,
        data_encoding=kw.get("data_encoding", "utf-8"), min_count=kw.get("min_count", 1),
        max_vocab=kw.get("max_vocab"), dtype=kw.get("dtype", "float32"),
        seed=kw.get("seed", 0), limit=kw.get("limit"),
        on_bad_line=kw.get("on_bad_line", "error"),
        encoding_errors=kw.get("encoding_errors", "strict"), progress=not kw.get("quiet"),
    )


def plan_from_options(o: Any) -> tuple[list[SourceSpec], AlignOptions]:
    """SourceSpecs and settings from the align stage's options (``metaprep.stages.AlignOptions``):
    per-source tables checked against the source names."""
    from metaprep.tokenize import DEFAULT_PATTERN

    if not o.sources:
        raise ConfigError("no source given", hint="metaprep align NAME=PATH [NAME=PATH ...] -o OUT")
    names = [_check_name(str(n), str(p)) for n, p in o.sources.items()]

    def table(values: Mapping[str, Any], option: str, allow_all: bool = False) -> dict[str, str]:
        return parse_assignments([f"{k}={v}" if k != "*" else str(v) for k, v in values.items()],
                                 option, names, allow_all=allow_all)

    fmt, tensor = table(o.format, "--format"), table(o.tensor, "--tensor")
    vfile, oov = table(o.vocab_file, "--vocab-file"), table(o.oov, "--oov")
    norm = table(o.normalize, "--normalize", allow_all=True)
    specs = [SourceSpec(name=n, path=Path(p), format=fmt.get(n), tensor=tensor.get(n),
                        vocab_file=Path(vfile[n]) if n in vfile else None,
                        oov=oov.get(n, o.oov_default), normalize=norm.get(n, norm.get("*", "none")))
             for n, p in zip(names, o.sources.values(), strict=True)]
    try:
        tok = TokenizerConfig(mode="whitespace" if o.whitespace else "regex",
                              pattern=o.token_pattern or DEFAULT_PATTERN, lowercase=o.lowercase)
    except ValueError as exc:
        raise ConfigError(f"--token-pattern: {exc}") from exc
    vocab = (o.vocab,) if isinstance(o.vocab, (str, Path)) else tuple(o.vocab)
    settings = AlignOptions(
        vocab=tuple(str(v) for v in vocab) or ("union",), case=o.case, tokenizer=tok,
        data_encoding=o.data_encoding, min_count=o.min_count, max_vocab=o.max_vocab,
        dtype=o.dtype, seed=o.seed, limit=o.limit, on_bad_line=o.on_bad_line,
        encoding_errors=o.encoding_errors, progress=not o.quiet)
    return specs, settings


# --- validation --------------------------------------------------------------------------------
def _choice(value: str, allowed: Sequence[str], option: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")


def _validate(specs: Sequence[SourceSpec], out: Path, opt: AlignOptions) -> dict[str, OovSpec]:
    names = [s.name for s in specs]
    for s in specs:
        _check_name(s.name, str(s.path))
        _choice(s.normalize, NORMALIZE, f"--normalize for {s.name}")
        if not s.path.is_file():
            what = "not a file" if s.path.exists() else "no such embedding file"
            raise ConfigError(what, path=s.path, hint=f"check the path given for source {s.name!r}")
        if out.resolve() == s.path.resolve():
            raise ConfigError("the output would overwrite an input", path=out)
    if len(set(names)) != len(names):
        raise ConfigError("source names must be unique", hint="name them: NAME=PATH")
    _choice(opt.case, CASE_POLICIES, "--case")
    _choice(opt.dtype, DTYPES, "--dtype")
    _choice(opt.on_bad_line, ("error", "skip"), "--on-bad-line")
    _choice(opt.encoding_errors, ("strict", "replace"), "--encoding-errors")
    if opt.limit is not None and opt.limit < 1:
        raise ConfigError("--limit must be at least 1")
    if opt.max_vocab is not None and opt.max_vocab < 1:
        raise ConfigError("--max-vocab must be at least 1")
    if not 0 < opt.map_holdout < 1:
        raise ConfigError("the map's held-out share must be between 0 and 1")
    oov: dict[str, OovSpec] = {}
    for s in specs:
        spec = parse_oov(s.oov, option=f"--oov {s.name}")
        if spec.other is not None and (spec.other not in names or spec.other == s.name):
            raise ConfigError(f"--oov {s.name}={s.oov}: no other source named {spec.other!r}",
                              hint=f"sources are: {', '.join(names)}")
        if spec.kind == "map" and len(specs) < 2:
            raise ConfigError(f"--oov {s.name}=map needs a second source to map from")
        oov[s.name] = spec
    return oov


# --- vocabulary --------------------------------------------------------------------------------
def _target_words(opt: AlignOptions) -> list[str]:
    listed: list[str] = []
    task: list[Path] = []
    for item in opt.vocab:
        p = Path(item)
        if not p.is_file():
            raise VocabError("no such vocabulary file", path=p,
                             hint="--vocab takes union, intersection, a word list or task data")
        if looks_like_task_data(p, encoding=opt.data_encoding):
            task.append(p)
        else:
            listed.extend(read_word_list(p, encoding=opt.data_encoding))
    if opt.min_count > 1 and not task:
        raise ConfigError("--min-count applies to task data; no task data file was given")
    counts = count_words(task, Tokenizer(opt.tokenizer), encoding=opt.data_encoding)
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
    oov = _validate(sources, out, opt)
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
        for s, src in zip(sources, srcs, strict=True):
            if oov[s.name].kind == "subword" and not src.has_subwords:
                raise ConfigError(
                    f"--oov {s.name}=subword: this {src.format} file has no subword information",
                    path=s.path, hint="subword needs a fastText .bin model or a matrix whose "
                    "vocabulary has WordPiece ##pieces; use zero/mean/map")
        # a plain union grows while the vectors stream: no words-only pass over the sources
        growing = mode == "union" and opt.max_vocab is None and opt.case != "fallback"
        if target is not None:
            matcher = CaseMatcher(target, opt.case)
        elif growing:
            matcher = CaseMatcher.growing_union(opt.case)
        else:
            index = pool_vocab((src.iter_words() for src in srcs), mode=mode,
                               case_policy=opt.case, max_vocab=opt.max_vocab)
            matcher = CaseMatcher(list(index), opt.case, index=index)
            del index
        if not growing:
            _check_vocab(matcher.words, mode)
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
                transforms[s.name] = _normalize(writer, s, present[s.name], oov[s.name], opt,
                                                streamed[s.name])
            for s, src in zip(sources, srcs, strict=True):
                attrs = _fill_oov(writer, s, src, words, present, oov[s.name], transforms[s.name],
                                  opt, [x.name for x in sources])
                writer.set_source_attrs(s.name, attrs)
    return out


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
