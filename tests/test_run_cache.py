"""The per-grid-run cache: one computation per key inside a run, none outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from investigation.run_cache import RUN_CACHE_ENV, run_cache_exported, shared


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, int]:
        self.calls += 1
        return {"value": 41 + self.calls}


def test_outside_a_run_everything_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_CACHE_ENV, raising=False)
    compute = Counter()
    assert shared("k", compute) == {"value": 42}
    assert shared("k", compute) == {"value": 43}
    assert compute.calls == 2


def test_inside_a_run_each_key_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_CACHE_ENV, raising=False)
    compute, other = Counter(), Counter()
    with run_cache_exported():
        first = shared("k", compute)
        again = shared("k", compute)
        different = shared("another key", other)
    assert first == again == {"value": 42}
    assert different == {"value": 42}
    assert (compute.calls, other.calls) == (1, 1)


def test_the_directory_lives_only_as_long_as_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_CACHE_ENV, "")
    with run_cache_exported() as directory:
        assert os.environ[RUN_CACHE_ENV] == str(directory)
        shared("k", Counter())
        assert any(path.suffix == ".pickle" for path in Path(directory).iterdir())
    assert not Path(directory).exists()
    assert os.environ[RUN_CACHE_ENV] == ""
