"""The one exception tree of metaprep.

    MetaprepError                 anything a user should see as a one-line message (exit 2)
    ├── FormatError               an input file is malformed (carries path, line or byte offset)
    ├── VocabError                vocabulary / case-policy / task-data problems
    ├── StoreError                an HDF5 store is missing, unreadable or of the wrong version
    ├── ConfigError               a bad option or pipeline key (carries the key and file)
    ├── DataError                 task data (TSV/CSV/JSONL/fastText lines) is malformed
    ├── ModelError                a run directory or model directory is unusable
    ├── ExportError               ONNX export failed, including a failed parity gate
    └── WriteError                an output could not be written (disk full, a size limit...)

Every error carries the path it is about (and the line or offset where there is one) so the
message alone tells the user what to fix. Foreign errors are wrapped with ``raise ... from exc``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "FormatError",
    "MetaprepError",
    "ModelError",
    "StoreError",
    "VocabError",
    "WriteError",
]


class MetaprepError(Exception):
    """Base class: a message for the user, plus where the problem is."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.offset = offset
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            elif self.offset is not None:
                where += f" (byte {self.offset})"
            where += ": "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class FormatError(MetaprepError):
    """An embedding or vocabulary file does not parse."""


class VocabError(MetaprepError):
    """A vocabulary, word list or case policy problem."""


class StoreError(MetaprepError):
    """The HDF5 store is missing, unreadable, or of an unknown version."""


class ConfigError(MetaprepError):
    """A bad option, config key or pipeline file."""


class DataError(MetaprepError):
    """Task data (train/dev/test files) is malformed."""


class ModelError(MetaprepError):
    """A run directory or model directory is missing pieces or inconsistent."""


class ExportError(MetaprepError):
    """ONNX export failed, or its parity gate did not pass."""


class WriteError(MetaprepError):
    """An output could not be written: a full disk, a file-size limit, no permission. The
    temporary file is gone and the previous output is intact."""
