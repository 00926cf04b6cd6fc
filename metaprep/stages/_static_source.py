"""The static-source stage: a sentence-transformer -> a static embedding file `align` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaprep.errors import ConfigError
from metaprep.outputs import claim_outputs
from metaprep.stages._common import PathLike, input_field, output_field, required

__all__ = ["StaticSourceOptions", "StaticSourceResult", "static_source"]

MAX_THREADS = 256  # torch segfaults when asked for 100,000 (each thread is a stack)


@dataclass(frozen=True)
class StaticSourceOptions:
    model: PathLike | None = input_field()  # a BERT folder (config.json + model.safetensors), .onnx
    output: PathLike | None = output_field()  # the word2vec binary file to write (+ OUTPUT.json)
    words: PathLike | None = input_field()  # a word list to encode, not the tokenizer's vocabulary
    vocab_file: PathLike | None = input_field()  # the WordPiece vocab.txt [the model folder's]
    pca_dims: int | None = 256  # PCA to this many dimensions (None: keep all)
    zipf: bool = True  # scale rows by log(2 + rank): frequent entries count less
    batch_size: int = 256  # entries per forward pass
    threads: int | None = None  # torch CPU threads [torch's choice]
    quiet: bool = False  # no progress bar


@dataclass(frozen=True)
class StaticSourceResult:
    output: Path
    provenance: dict[str, Any]  # what OUTPUT.json holds: model, sha256, dims, PCA, date


def static_source(options: StaticSourceOptions) -> StaticSourceResult:
    """A sentence-transformer -> a static embedding file `align` reads (model2vec's recipe)."""
    import torch

    from metaprep.learn.staticsource import write_static_source

    o = options
    out = Path(required(o.output, "output", "static-source"))
    if o.threads is not None:
        if isinstance(o.threads, bool) or not isinstance(o.threads, int) or \
                not 1 <= o.threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be a whole number from 1 to {MAX_THREADS}, not "
                              f"{o.threads!r}")
        torch.set_num_threads(o.threads)
    with claim_outputs("static-source", o, {"output": out,
                                            "provenance": out.with_name(out.name + ".json")}):
        record = write_static_source(required(o.model, "model", "static-source"), out,
                                     words=o.words, vocab_file=o.vocab_file,
                                     pca_dims=o.pca_dims, zipf=o.zipf,
                                     batch_size=o.batch_size, progress=not o.quiet)
    return StaticSourceResult(out, record)
