"""What an align run is asked to do: the sources (SourceSpec), the settings (AlignOptions),
the NAME=VALUE forms the command line and pipelines use, and their validation. No I/O beyond
checking that the files exist."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError
from metaprep.ids import CASE_POLICIES
from metaprep.names import check_name, is_name
from metaprep.prep.oov import OovSpec, parse_oov
from metaprep.prep.readers.base import ReadOptions, Source
from metaprep.taskdata import Columns, task_columns
from metaprep.tokenize import TokenizerConfig

__all__ = [
    "DTYPES",
    "NORMALIZE",
    "AlignOptions",
    "SourceSpec",
    "per_source",
    "parse_source_args",
    "plan_from_options",
    "validate",
]

DTYPES = ("float32", "float16")
MAX_SEED = 2**63 - 1  # the store records the seed as an int64 attribute
NORMALIZE = ("none", "l2", "center")

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
    columns: Columns | None = None  # task data's column names [text, label, text_a, text_b]
    progress: bool = True  # tqdm bars on stderr


# --- argument parsing (shared with the CLI) ----------------------------------------------------
def _check_name(name: str, where: str) -> str:
    """A source name is its HDF5 group's name and part of a staging file's name."""
    return check_name(name, f"source name ({where})", hint="name it: NAME=PATH, e.g. glove=path")


def _exists(arg: str) -> bool:
    try:
        return Path(arg).exists()
    except OSError:  # a name too long for the file system: not a file
        return False


def parse_source_args(args: Sequence[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` or a bare ``PATH`` (named by its file stem); names must be unique."""
    out: list[tuple[str, Path]] = []
    for arg in args:
        name, sep, path = arg.partition("=")
        if sep and not _exists(arg) and (is_name(name) or "/" not in name):
            # NAME=PATH; a bad NAME is named as such ("my glove=g.txt" was "no such file")
            if not path.strip():  # Path("") would be ".", the folder the output sits in
                raise ConfigError(f"source {name!r} has no path", hint="give it as NAME=PATH")
            out.append((_check_name(name, "NAME=PATH"), Path(path)))
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


def per_source(values: Mapping[str, Any], option: str, names: Sequence[str], *,
               allow_all: bool = False) -> dict[str, str]:
    """A per-source table (``--oov``, ``--format``...) checked against the source names; with
    ``allow_all`` the key "*" sets every source."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if name not in names and not (allow_all and name == "*"):
            raise ConfigError(f"{option} {name}={value}: no source named {name!r}",
                              hint=f"sources are: {', '.join(names)}")
        out[str(name)] = str(value)
    return out


def plan_from_options(o: Any) -> tuple[list[SourceSpec], AlignOptions]:
    """SourceSpecs and settings from the align stage's options (``metaprep.stages.AlignOptions``):
    per-source tables checked against the source names."""
    from metaprep.patterncheck import pattern_problem
    from metaprep.tokenize import DEFAULT_PATTERN

    if not o.sources:
        raise ConfigError("no source given", hint="metaprep align NAME=PATH [NAME=PATH ...] -o OUT")
    names = [_check_name(str(n), str(p)) for n, p in o.sources.items()]
    for n, p in o.sources.items():
        if not str(p).strip():  # Path("") is "."
            raise ConfigError(f"source {n!r} has no path", hint="give it as NAME=PATH")

    def table(values: Mapping[str, Any], option: str, allow_all: bool = False) -> dict[str, str]:
        return per_source(values, option, names, allow_all=allow_all)

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
    problem = pattern_problem(tok.pattern) if tok.mode == "regex" else None
    if problem:  # the runtime refuses it too; here it would stall reading the task data
        raise ConfigError(f"--token-pattern {tok.pattern!r} {problem}",
                          hint="use a pattern without groups or nested repetition")
    vocab = (o.vocab,) if isinstance(o.vocab, (str, Path)) else tuple(o.vocab)
    settings = AlignOptions(
        vocab=tuple(str(v) for v in vocab) or ("union",), case=o.case, tokenizer=tok,
        data_encoding=o.data_encoding, min_count=o.min_count, max_vocab=o.max_vocab,
        dtype=o.dtype, seed=o.seed, limit=o.limit, on_bad_line=o.on_bad_line,
        encoding_errors=o.encoding_errors, progress=not o.quiet, columns=task_columns(o))
    return specs, settings


# --- validation --------------------------------------------------------------------------------
def _choice(value: str, allowed: Sequence[str], option: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")


def validate(specs: Sequence[SourceSpec], out: Path, opt: AlignOptions) -> dict[str, OovSpec]:
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
    if isinstance(opt.seed, bool) or not isinstance(opt.seed, int) or \
            not 0 <= opt.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be a whole number from 0 to {MAX_SEED:,}, not "
                          f"{opt.seed!r}")  # numpy's generators take no negative seed
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
