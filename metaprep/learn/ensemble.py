"""Ensembles: ``members`` models of one config but the seed (member k: seed + 1000 k, so the
ensembles of nearby seeds share no member), trained one after another and served as one model
that averages their class probabilities.

    RUN/ensemble.json      {"members": K, "config": {...}}   written first: marks the directory
    RUN/members/0 ... K-1  each an ordinary run directory (config members = 1)
    RUN/metrics.json       the ensemble's dev and test metrics, and each member's

Averaging the probabilities of models that differ only in their seed is the cheapest accuracy a
classifier of this kind can buy: on both frontier tasks three `fast` models averaged beat any one
of them by more than the seed spread (benchmarks/results/ensembles.md), at three times the serving
cost. A member is an ordinary run (evaluate, inspect and export it alone); the directory as a whole
is exported by ``export-onnx`` into one graph (exporter/onnx_graph.py). A resume trains the members
that are missing or unfinished and leaves finished ones alone.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaprep.errors import ConfigError, ModelError
from metaprep.learn.config import SEED_STEP, RunConfig
from metaprep.learn.pace import RunPace
from metaprep.learn.rundir import CONFIG, ENSEMBLE, MEMBERS, METRICS, Run, scratch_folder
from metaprep.learn.runfiles import check_run_file, read_json, write_json

__all__ = ["ENSEMBLE", "MEMBERS", "Ensemble", "check_subfolder", "ensemble_metrics",
           "is_ensemble", "load_members", "member_dirs", "member_seed", "train_ensemble"]


def member_seed(seed: int, k: int) -> int:
    """Member k's seed: apart from every member of the ensembles of seeds seed +- 999."""
    return seed + SEED_STEP * k


def is_ensemble(path: str | Path) -> bool:
    return (Path(path) / ENSEMBLE).is_file()


def _read(path: Path) -> dict[str, Any]:
    """ensemble.json, checked: "members" 2-64, "config" an object, "inputs" (if present) an
    object of paths or nulls; a damaged file is a ModelError."""
    data = read_json(path)
    count = data.get("members") if isinstance(data, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= 64:
        raise ModelError(f"members must be a whole number from 2 to 64, not {count!r}",
                         path=path, hint="the file was damaged or edited by hand")
    inputs = data.get("inputs", {})
    if not isinstance(data.get("config"), dict) or not isinstance(inputs, dict) or not all(
            v is None or isinstance(v, str) for v in inputs.values()):
        raise ModelError("needs a config object and an inputs object of paths", path=path,
                         hint="the file was damaged or edited by hand")
    return data  # type: ignore[no-any-return]


def check_subfolder(path: Path) -> None:
    """A folder a run or ensemble holds (members, members/K, a run's teacher) must be a real
    folder inside it: a link to a run elsewhere would be read (and, on a resume, trained into)
    as if the directory held it. Absent is fine (not trained yet)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ModelError(f"{path.name} is a link or not a folder: it must be a folder inside "
                         f"{path.parent}", path=path,
                         hint="refusing to read or train outside the directory; the directory "
                         "was damaged or edited")


def _member_dir(root: Path, k: int) -> Path:
    check_subfolder(root / MEMBERS)
    check_subfolder(root / MEMBERS / str(k))
    return root / MEMBERS / str(k)


def member_dirs(path: str | Path) -> list[Path]:
    """The member run directories an ensemble directory lists, checked to exist, each a real
    folder inside it (never a link to a run elsewhere)."""
    root = Path(path)
    count = _read(root / ENSEMBLE)["members"]
    dirs = [_member_dir(root, k) for k in range(count)]
    for d in dirs:
        check_run_file(d / CONFIG)
        if not (d / CONFIG).is_file():
            raise ModelError("a member of the ensemble is missing or unfinished", path=d,
                             hint=f"finish training it: metaprep train --resume -o {root}")
    return dirs


def ensemble_metrics(path: str | Path) -> dict[str, Any] | None:
    """An ensemble's metrics.json (None until its members are trained and scored)."""
    found = Path(path) / METRICS
    if not found.exists():
        return None
    data = read_json(found)
    if not isinstance(data, dict):
        raise ModelError("expected a JSON object", path=found)
    return data


class Ensemble(nn.Module):
    """Members' mean class probabilities; ``forward`` returns their log (so argmax and softmax
    read as for one model: softmax(log p) = p, since the rows sum to 1)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def probabilities(self, ids: torch.Tensor, lengths: torch.Tensor,
                      ids_b: torch.Tensor | None = None,
                      lengths_b: torch.Tensor | None = None) -> torch.Tensor:
        probs = [m(ids, lengths, ids_b, lengths_b).float().softmax(-1) for m in self.members]
        return torch.stack(probs).mean(0)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                ids_b: torch.Tensor | None = None,
                lengths_b: torch.Tensor | None = None) -> torch.Tensor:
        # floored as the exported graph's logits are: a probability that underflows gives no -inf
        tiny = torch.finfo(torch.float32).tiny
        return self.probabilities(ids, lengths, ids_b, lengths_b).clamp_min(tiny).log()


def _figures(result: Any, where: Path) -> dict[str, Any]:
    """A member's dev and test accuracy and best epoch, from its metrics (a finished member's
    are read back from its metrics.json, which may have been edited)."""
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    try:
        dev, best = result["dev"]["accuracy"], result["best_epoch"]
        test = None if not result.get("test") else result["test"]["accuracy"]
        ok = number(dev) and number(best) and (test is None or number(test))
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ModelError("the member's metrics lack its dev accuracy, test accuracy or best "
                         "epoch", path=where / METRICS, hint="the file was damaged or "
                         f"edited; delete {where} and resume the ensemble to train it again")
    return {"dev": dev, "test": test, "best_epoch": best}


def _same_but_seed(a: RunConfig, b: RunConfig) -> list[str]:
    da, db = asdict(a), asdict(b)
    return sorted(k for k in da if k not in ("seed", "members") and da[k] != db[k])


def _train_sha(run: Run) -> str | None:
    return None if run.data.train is None else run.data.train.sha256


def load_members(dirs: list[Path], *, store: str | Path | None = None,
                 verify_store: bool = True, progress: bool = False) -> tuple[list[Run], list[Any]]:
    """Open the member runs and load their models; the members must be one config but the
    seed, over one store (whose frozen tables they then share: one copy in memory)."""
    from metaprep.learn.model import load_tables
    from metaprep.learn.scratch import Scratch

    runs: list[Run] = []
    models: list[Any] = []
    tables = None
    try:
        for d in dirs:
            run = Run.open(d, store=store, verify_store=verify_store and not runs)
            runs.append(run)
            first = runs[0]
            if run is not first:
                differ = _same_but_seed(first.config, run.config)
                if (differ or run.labels != first.labels or run.tokenizer != first.tokenizer
                        or run.store_ref.sha256 != first.store_ref.sha256
                        or _train_sha(run) != _train_sha(first)):
                    what = ", ".join(differ) or "labels, tokenizer, store or train file"
                    raise ModelError(f"this member differs from {first.path} ({what})",
                                     path=d, hint="members must be one config but the seed, "
                                     "trained on one store and one train file")
            if tables is None:
                with Scratch.beside(*scratch_folder(first.path, os.getpid())) as scratch:
                    tables = load_tables(first.store(), first.config, progress=progress,
                                         scratch=scratch)
            models.append(run.load_model(progress=progress, tables=tables))
    except BaseException:
        for run in runs:
            run.close()
        raise
    return runs, models


def train_ensemble(cfg: RunConfig | None, out: Path, *, inputs: dict[str, Any],
                   overrides: dict[str, Any], train_one: Any, score: Any,
                   progress: bool, check: Any = None, pace: RunPace | None = None
                   ) -> dict[str, Any]:
    """Train (``cfg``) or resume (None) the members into ``out``/members/k with ``train_one(
    member_cfg or None, dir, inputs)`` -> that run's metrics, then score their average
    (``score(member dirs)`` -> {"dev": metrics, "test": metrics or None}) and write
    metrics.json. A resume checks ``overrides`` against the saved options and takes the
    saved inputs for members not started yet. A new ensemble calls ``check(member 0's config,
    inputs)`` first, which raises if the inputs do not make a run: nothing is written before."""
    marker = out / ENSEMBLE
    if cfg is not None and not marker.is_file() and out.is_dir() and any(out.iterdir()):
        raise ConfigError("is a folder that holds other files, not an ensemble: train writes "
                          "an ensemble only into a new or empty folder", path=out,
                          hint="choose another -o")
    if cfg is not None and not marker.is_file() and check is not None:
        check(replace(cfg, members=1, seed=member_seed(cfg.seed, 0)), inputs)
    out.mkdir(parents=True, exist_ok=True)
    if cfg is None:
        if not marker.is_file():
            raise ConfigError("holds no ensemble to resume", path=out, hint="drop --resume")
        record = _read(marker)
        saved = record["config"]
        cfg = RunConfig.from_dict(saved, path=marker)
        changed = [k for k, v in json.loads(json.dumps(overrides)).items()
                   if k in saved and saved[k] != v]
        if changed:
            raise ConfigError(f"the options differ from the ensemble's saved ones "
                              f"({', '.join(sorted(changed))})", path=marker,
                              hint="resume with the options it was started with, or none")
        inputs = {k: v if v is not None else record.get("inputs", {}).get(k)
                  for k, v in inputs.items()}
    elif marker.is_file():
        raise ConfigError("already holds an ensemble", path=out,
                          hint="continue it with --resume, or choose another -o")
    else:
        write_json(marker, {"members": cfg.members, "config": json.loads(json.dumps(asdict(cfg))),
                            "inputs": {k: None if v is None else str(Path(v).resolve())
                                       for k, v in inputs.items()}})
    wheres, figures = [], []
    if pace is not None:  # the members are models of the whole run (a taught run's too)
        pace.total = max(pace.total, pace.done + cfg.members)
    for k in range(cfg.members):
        where = _member_dir(out, k)
        if progress:
            print(f"member {k + 1} of {cfg.members} (seed {member_seed(cfg.seed, k)}): {where}",
                  file=sys.stderr)
        started = (where / CONFIG).is_file()
        member = None if started else replace(cfg, members=1, seed=member_seed(cfg.seed, k))
        wheres.append(str(where))
        figures.append(_figures(train_one(member, where, inputs), where))
    metrics = {"run_dir": str(out), "members": wheres, **score(member_dirs(out)),
               "member_metrics": figures}
    metrics["best_dev_accuracy"] = metrics["dev"]["accuracy"]
    if metrics.get("test") is not None:
        metrics["test_accuracy"] = metrics["test"]["accuracy"]
    write_json(out / METRICS, metrics)
    return metrics
