"""The triton stage: a model directory -> a text-in model for Triton's python backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from metaprep.errors import ConfigError
from metaprep.names import check_name
from metaprep.stages._common import PathLike, input_field, name_field, output_field, required

if TYPE_CHECKING:
    from metaprep.exporter.triton_python import TritonResult

__all__ = ["TritonOptions", "triton"]

# upper bounds: a typo such as --instances 1000000 would have Triton start a million stub
# processes, and values past int32 make a config.pbtxt Triton cannot read
_BOUNDS = [("max_batch_size", 1, 65_536), ("instances", 1, 256), ("threads", 0, 1024),
           ("queue_delay_us", 0, 60_000_000)]  # a minute


@dataclass(frozen=True)
class TritonOptions:
    model: PathLike | None = input_field()  # the model directory `export-onnx` wrote
    output: PathLike | None = output_field()  # the Triton model repository (created if missing)
    name: str = name_field("metaprep")  # the model's name in the repository and in request URLs
    max_batch_size: int = 64  # rows Triton may gather into one execute(): one runtime call
    instances: int = 1  # stub processes; each holds its own copy of the model in memory
    threads: int = 0  # onnxruntime threads per instance; 0: cores // instances, at load time
    queue_delay_us: int = 1000  # how long Triton holds a request to fill a batch
    dynamic_batching: bool = True  # off: each request is one execute() of its own rows
    copy: bool = False  # copy the model directory into the repository (else its absolute path)
    verify: str = "fast"  # the manifest check when Triton loads the model (fast, full, none)
    numpy2: bool = False  # the serving Triton's python backend is 24.11 or newer (NumPy 2 safe)

    def validate(self) -> None:
        check_name(self.name, "--name",
                   hint="the model's folder in the repository: --name sentiment")
        for key, low, high in _BOUNDS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"--{key.replace('_', '-')} must be a whole number from {low} "
                                  f"to {high:,}, not {value!r}")
        if self.verify not in ("fast", "full", "none"):
            raise ConfigError(f"verify must be fast, full or none, got {self.verify!r}")


def triton(options: TritonOptions) -> TritonResult:
    """REPO/NAME for Triton's python backend over the model directory, built beside the
    repository and renamed into place (exporter/triton_python.py); the model directory is
    opened with every check first, so a broken one fails here, not in the server."""
    from metaprep.exporter.triton_python import write_python_model

    return write_python_model(required(options.model, "model", "triton"),
                              required(options.output, "output", "triton"), options)
