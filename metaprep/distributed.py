"""Which process of a torchrun launch this is: the one module that reads torchrun's variables.

torchrun starts one process per rank and tells each, through its environment, its ``RANK``
(0 .. size - 1, over every machine), ``LOCAL_RANK`` (its GPU on this machine) and
``WORLD_SIZE``. Without torchrun none is set: one process, rank 0 of 1. Only rank 0 writes files
and prints; the training loop joins the process group when the size is above 1. Pure: no torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from metaprep.errors import ConfigError

__all__ = ["World", "world"]


@dataclass(frozen=True)
class World:
    rank: int = 0  # this process's rank over the whole launch
    size: int = 1  # processes in the launch
    local_rank: int = 0  # this process's rank on its machine (its GPU)

    @property
    def main(self) -> bool:
        """The process that writes and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world(environ: Mapping[str, str] | None = None) -> World:
    """This process's place in a torchrun launch, from ``environ`` [os.environ]."""
    env = os.environ if environ is None else environ

    def read(name: str, default: int, low: int) -> int:
        text = env.get(name, str(default))
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise ConfigError(f"the environment variable {name} must be a whole number from "
                              f"{low}, not {text!r}", hint="torchrun sets it; unset it to train "
                              "in one process")
        return value

    size = read("WORLD_SIZE", 1, 1)
    return World(read("RANK", 0, 0), size, read("LOCAL_RANK", 0, 0))
