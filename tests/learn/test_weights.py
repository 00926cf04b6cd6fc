"""Best weights read back mapped from their file (learn/weights.py): the same tensors as
safetensors' own reader gives, backed by the file rather than by a copy in memory; a file whose
layout is unusual goes to safetensors, a damaged one is a ModelError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_scratch import mapping_of

from metaprep.errors import ModelError
from metaprep.learn.weights import load_weights, save_weights


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"words": torch.randn(300, 8, generator=g), "seen": torch.rand(300, generator=g) > 0.5,
            "half": torch.randn(3, 5, generator=g).half(), "count": torch.arange(7),
            "none": torch.zeros(0, 4)}


pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux /proc")


def test_weights_come_back_mapped_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "best.safetensors"
    save_weights(path, _state())
    got, theirs = load_weights(path), load_file(str(path))
    assert got.keys() == theirs.keys()
    for k, v in theirs.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v)
    assert str(mapping_of(got["words"].data_ptr())).endswith("best.safetensors")
    got["words"][0, 0] = 99.0  # copy-on-write: the file keeps its numbers
    assert load_weights(path)["words"][0, 0] != 99.0


def test_unusual_files_go_to_safetensors_and_damaged_ones_are_refused(tmp_path: Path) -> None:
    bf16 = tmp_path / "b.safetensors"
    save_file({"w": torch.randn(4, 4).bfloat16()}, str(bf16))  # no numpy dtype: theirs
    assert load_weights(bf16)["w"].dtype == torch.bfloat16
    path = tmp_path / "best.safetensors"
    save_weights(path, _state())
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(ModelError, match="unreadable weights") as err:
        load_weights(path)
    assert str(err.value.path) == str(path)
    path.write_bytes(b"\xff" * 8 + b"{}")  # a header length past the file
    with pytest.raises(ModelError, match="unreadable weights"):
        load_weights(path)


def test_tensors_sharing_bytes_are_refused(tmp_path: Path) -> None:
    import json

    path = tmp_path / "best.safetensors"
    save_file({"a": torch.ones(4), "b": torch.zeros(4)}, str(path))
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["b"]["data_offsets"] = header["a"]["data_offsets"]  # b read from a's bytes
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n  # the data stays where it was
    text = text.ljust(n)
    path.write_bytes(raw[:8] + text + raw[8 + n :])
    with pytest.raises(ModelError, match="unreadable weights") as err:
        load_weights(path)
    assert str(err.value.path) == str(path)
