"""metaprep/distributed.py: a process's place in a torchrun launch, from its environment."""

from __future__ import annotations

import pytest

from metaprep.distributed import World, world
from metaprep.errors import ConfigError


def test_no_torchrun_is_one_process() -> None:
    assert world({}) == World(rank=0, size=1, local_rank=0)
    assert world({}).main and not world({}).distributed


def test_a_torchrun_rank() -> None:
    got = world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert got == World(rank=3, size=4, local_rank=1)
    assert got.distributed and not got.main


@pytest.mark.parametrize(("name", "value"), [("WORLD_SIZE", "0"), ("WORLD_SIZE", "two"),
                                             ("RANK", "-1"), ("LOCAL_RANK", "")])
def test_a_bad_variable_is_a_one_line_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"the environment variable {name} must be a whole "
                                          f"number from [01], not '{value}'") as e:
        world({name: value})
    assert "\n" not in str(e.value)


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert world() == World(rank=1, size=2, local_rank=0)
