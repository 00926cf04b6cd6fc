"""A Triton Inference Server model repository entry for an exported model directory.

    REPO/NAME/config.pbtxt      onnxruntime backend, dynamic batching, CPU instance
    REPO/NAME/1/model.onnx      the classifier graph and its external data file(s)

``lengths`` is one number per sentence: declared ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }``
so the model sees (B,). Triton batches requests of the same padded length together, so clients
should pad ``ids`` to a few fixed lengths (e.g. 16, 32, 64, 128) to let dynamic batching work.

This entry is for a client that tokenizes itself, and has never been loaded by a real Triton
server. For raw text in, tested against a real server: ``metaprep triton`` (triton_python.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from metaprep.errors import ExportError, WriteError
from metaprep.exporter.modelcopy import copy_files
from metaprep.names import check_name
from metaprep.outputs import clear_stale
from metaprep.runtime.modeldir import Manifest

__all__ = ["CONFIG", "VERSION", "check_triton_name", "entry_failure", "entry_taken", "staging",
           "write_triton"]

# a Triton repository entry's layout: REPO/NAME/CONFIG, and the model's files in REPO/NAME/VERSION
CONFIG = "config.pbtxt"
VERSION = "1"


def check_triton_name(name: str) -> str:
    """The Triton model's name: its folder in the repository (export-onnx --triton-name)."""
    return check_name(name, "--triton-name",
                      hint="the model's folder in the repository: --triton-name sentiment")


def entry_taken(target: Path) -> bool:
    """REPO/NAME is taken by anything, a dangling symlink included (the new entry could not be
    renamed over it: the export used to end with "Not a directory" after writing the model)."""
    return target.exists() or target.is_symlink()


def entry_failure(target: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write the Triton model ({exc.strerror or exc}); nothing was "
                      "written", path=target, hint="check free space and permissions")


def staging(repo: Path, name: str) -> Path:
    """Where REPO/NAME is built before it is renamed into place. Triton loads every folder in
    its repository, a half-built one too (or one a killed run left), and then refuses to start:
    so the entry is built beside the repository, on its file system, and inside it
    (``.NAME.PID.tmp``) only when the repository is a mount point or its parent is read-only.
    What killed runs left beside it is cleared here (dead processes' only)."""
    repo.mkdir(parents=True, exist_ok=True)
    folder = repo.absolute()
    beside = folder.parent / f".{folder.name}.{name}.{os.getpid()}.tmp"
    try:
        usable = (os.stat(folder.parent).st_dev == os.stat(folder).st_dev
                  and os.access(folder.parent, os.W_OK))
    except OSError:
        usable = False
    if usable:
        clear_stale(folder.parent / f"{folder.name}.{name}")
        return beside
    return repo / f".{name}.{os.getpid()}.tmp"


def write_triton(model_dir: Path, repo: Path, name: str, manifest: Manifest) -> Path:
    """A Triton model repository: REPO/NAME/config.pbtxt and REPO/NAME/1/<graph + data>."""
    target = repo / check_triton_name(name)
    if entry_taken(target):
        raise ExportError("a Triton model of that name already exists", path=target,
                          hint="remove it or pass --triton-name")
    tmp = staging(repo, name)
    try:
        _fill(tmp, model_dir, name, manifest)
        os.replace(tmp, target)
    except OSError as exc:  # a full disk: name the entry, not its temporary folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise entry_failure(target, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _fill(tmp: Path, model_dir: Path, name: str, manifest: Manifest) -> None:
    tmp.mkdir()  # never one found in place (a symlink planted at the name leads elsewhere)
    (tmp / VERSION).mkdir()
    graph = manifest.graphs["model"]
    # hard links cost nothing for multi-GB tables (copies across file systems); each the listed
    # regular file, never a link, checked against the manifest
    copy_files(model_dir, tmp / VERSION, manifest, [graph.file, *graph.data_files], link=True)

    def tensor(n: str, dims: str, extra: str = "") -> str:
        dtype = "TYPE_INT64" if n.startswith(("ids", "lengths")) else "TYPE_FP32"
        return f'  {{ name: "{n}" data_type: {dtype} dims: [ {dims} ]{extra} }}'

    dims = {"ids": "-1", "ids_b": "-1", "lengths": "1", "lengths_b": "1",
            "logits": str(len(manifest.task.labels)),
            "probabilities": str(len(manifest.task.labels)),
            "sentence_embedding": str(manifest.task.sentence_dim)}
    scalar = " reshape: { shape: [ ] }"
    inputs = ",\n".join(tensor(n, dims[n], scalar if n.startswith("lengths") else "")
                        for n in graph.inputs)
    outputs = ",\n".join(tensor(n, dims[n]) for n in graph.outputs)
    (tmp / CONFIG).write_text(
        f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: 64\n'
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        "dynamic_batching { max_queue_delay_microseconds: 1000 }\n"
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
    )
