"""A pipeline section -> the stage's options dataclass: keys checked against its fields, values
against their types, input paths resolved, outputs placed in the stage's own directory."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError
from metaprep.names import check_name
from metaprep.outputs import VOCAB_KEYWORDS

__all__ = ["StageSpec", "build_options", "stage_specs"]

_PLACEHOLDER = re.compile(r"\{(split|align|train|export|evaluate|predict)\}")


@dataclass(frozen=True)
class StageSpec:
    options: type  # the stage's options dataclass
    run: Callable[[Any], Any]  # the stage function (metaprep.stages)
    output: str  # where the stage writes, inside its directory ("" = the directory itself)
    wiring: Mapping[str, str]  # field -> default template over upstream stage directories


def stage_specs() -> dict[str, StageSpec]:
    from metaprep import stages

    return {
        "split": StageSpec(stages.SplitOptions, stages.split, "", {}),
        "align": StageSpec(stages.AlignOptions, stages.align, "store.h5", {}),
        "train": StageSpec(stages.TrainOptions, stages.train, "run", {
            "store": "{align}/store.h5", "train": "{split}/train.tsv",
            "dev": "{split}/dev.tsv", "test": "{split}/test.tsv"}),
        "export": StageSpec(stages.ExportOptions, stages.export, "model", {"run": "{train}/run"}),
        "evaluate": StageSpec(stages.EvaluateOptions, stages.evaluate, "", {
            "run": "{train}/run", "data": "{split}/test.tsv"}),
        "predict": StageSpec(stages.PredictOptions, stages.predict, "predictions.jsonl", {
            "model_dir": "{export}/model", "input": "{split}/test.tsv"}),
    }


# --- types ----------------------------------------------------------------------------------
def _check_type(value: Any, kind: Any, where: str, file: Path) -> Any:
    """``value`` as the field type ``kind`` wants it, or a ConfigError naming the key."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_type(value, option, where, file)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ConfigError(f"{where} must be a list", path=file)
        return tuple(_check_type(v, args[0], where, file) for v in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table (name = value, ...)", path=file)
        return {str(k): _check_type(v, args[1], f"{where}.{k}", file) for k, v in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}", path=file)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, not {value!r}", path=file)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, not {value!r}", path=file)
        if not math.isfinite(value):  # TOML has nan and inf: tolerance = inf passed any model
            raise ConfigError(f"{where} must be a finite number, not {value!r}", path=file)
        return float(value)
    if kind in (str, Path):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}", path=file)
        return value
    raise ConfigError(f"{where}: unsupported option type {kind}", path=file)


def _check_names(kind: str | None, value: Any, where: str, file: Path) -> None:
    """A value (or a table's keys) that becomes a folder or file name: checked at load, so a
    dry run catches ``triton_name = "../x"``."""
    if kind == "value" and value is not None:
        check_name(value, where, path=file, hint=f'e.g. {where.split()[-1]} = "sentiment"')
    elif kind == "keys" and isinstance(value, dict):
        for key in value:
            check_name(key, f"{where}: the name", path=file,
                       hint=f'e.g. {where.split()[0][:-1]}.{where.split()[-1]}] glove = "g.txt"')


def _wants_path(kind: Any) -> bool:
    """A field typed Path (or Path | None), where a plain string would not do."""
    args = typing.get_args(kind) or (kind,)
    return Path in args and str not in args


# --- paths ----------------------------------------------------------------------------------
def _package_path(value: str, where: str, file: Path) -> str:
    """``pkg:NAME/rel/path`` -> that path inside the installed top-level package NAME, found
    without importing (and so without running) the package."""
    package, _, rel = value[4:].partition("/")
    if not package.isidentifier():
        raise ConfigError(f"{where}: {package!r} is not the name of a top-level package "
                          "(pkg:NAME/path, NAME without dots)", path=file)
    spec = importlib.util.find_spec(package)  # a top-level name: nothing is imported
    if spec is None:
        raise ConfigError(f"{where}: package {package!r} is not installed", path=file,
                          hint=f"pip install {package}")
    if not spec.submodule_search_locations:  # os, a single-file module: no data files
        raise ConfigError(f"{where}: {package!r} is a module, not a package with data files",
                          path=file, hint="pkg: names an installed package's folder")
    if not rel or ".." in Path(rel).parts or os.path.isabs(rel):
        raise ConfigError(f"{where}: {value!r} must name a file inside the package, as "
                          f"pkg:{package}/a/relative/path without '..'", path=file)
    return str(Path(list(spec.submodule_search_locations)[0]) / rel)


def _input_path(value: str, where: str, file: Path, dirs: Mapping[str, Path],
                present: list[str], stage: str) -> str:
    if value in VOCAB_KEYWORDS:
        return value
    if value.startswith("pkg:"):
        return _package_path(value, where, file)
    for ref in _PLACEHOLDER.findall(value):
        order = list(dirs)
        if ref not in present or order.index(ref) >= order.index(stage):
            raise ConfigError(f"[{stage}] refers to {{{ref}}}, which is not an earlier stage "
                              "of this pipeline", path=file)
    if _PLACEHOLDER.search(value):  # a stage's folder: under the artifacts folder, as given
        return _PLACEHOLDER.sub(lambda m: str(dirs[m.group(1)]), value)
    if os.path.isabs(value):
        return value
    return os.path.normpath(file.resolve().parent / value)


def _output_path(value: str, where: str, file: Path, stage_dir: Path) -> str:
    """An output named in the file lands inside the stage's directory, never outside it."""
    target = Path(os.path.normpath(stage_dir / value))
    if os.path.isabs(value) or not target.is_relative_to(stage_dir):
        raise ConfigError(f"{where} = {value!r}: a pipeline writes only inside its stage "
                          f"directory ({stage_dir})", path=file,
                          hint="give a relative path without '..', or leave the key out")
    return str(target)


def _resolve(value: Any, resolve: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, resolve) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_resolve(v, resolve) for v in value)
    return resolve(value) if isinstance(value, str) else value


# --- the section ----------------------------------------------------------------------------
def _check_option(key: str, raw: Any, stage: str, file: Path) -> Any:
    """A training option's value, checked as its declaration says (learn/config.py)."""
    from metaprep.learn.config import check_option

    try:
        return check_option(key, raw, where=f"[{stage}] {key}")
    except ConfigError as exc:
        raise ConfigError(exc.message, path=file) from exc


def build_options(spec: StageSpec, stage: str, table: Mapping[str, Any], *, file: Path,
                  dirs: Mapping[str, Path], present: list[str]) -> Any:
    """The options dataclass for one pipeline section (nothing runs)."""
    hints = typing.get_type_hints(spec.options)
    known = {f.name: f for f in fields(spec.options)}
    values: dict[str, Any] = {}
    nested: dict[str, Any] = {}  # the train stage's training options (its ``config``)
    takes = getattr(spec.options, "takes", None)
    for key, raw in table.items():
        if key not in known and takes is not None and takes(key):
            nested[key] = _check_option(key, raw, stage, file)
            continue
        if key not in known or key == "config":
            more = sorted(known) + (["any training option (metaprep train --help)"]
                                    if takes is not None else [])
            raise ConfigError(f"[{stage}] unknown key {key!r}; `{stage}` takes: "
                              + ", ".join(more), path=file)
        value = _check_type(raw, hints[key], f"[{stage}] {key}", file)
        _check_names(known[key].metadata.get("name"), value, f"[{stage}] {key}", file)
        values[key] = value
    if nested:
        values["config"] = nested
    for name, template in spec.wiring.items():
        upstream = _PLACEHOLDER.findall(template)
        if name not in values and all(u in present for u in upstream):
            values[name] = template
    stage_dir = dirs[stage]
    for name, f in known.items():
        kind = f.metadata.get("path")
        where = f"[{stage}] {name}"
        if kind == "in" and name in values:
            def inp(v: str, w: str = where) -> str:
                return _input_path(v, w, file, dirs, present, stage)
            values[name] = _resolve(values[name], inp)
        elif kind == "out":
            if name in values and values[name] is not None:
                def out(v: str, w: str = where) -> str:
                    return _output_path(v, w, file, stage_dir)
                values[name] = _resolve(values[name], out)
            elif name == "output":
                values[name] = str(stage_dir / spec.output) if spec.output else str(stage_dir)
        if name not in values and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"[{stage}] needs {name}", path=file)
    for name, value in values.items():
        if isinstance(value, str) and _wants_path(hints[name]):
            values[name] = Path(value)
    try:
        return spec.options(**values)
    except ConfigError as exc:  # an option's own check (the train stage checks its options)
        raise ConfigError(f"[{stage}] {exc.message}", path=file, hint=exc.hint) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{stage}] {exc}", path=file) from exc
