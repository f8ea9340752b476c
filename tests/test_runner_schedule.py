"""The runner starts the longest runs first; results keep the grid's order."""

from __future__ import annotations

from investigation.notebook_grid import EXPECTED_SECONDS, ISOLATE, POSTMORTEM, REPRODUCE
from investigation.suite.execute import _start_order


def test_costliest_items_start_first_and_ties_keep_their_order() -> None:
    seconds = {"a": 1.0, "b": 9.0, "c": 1.0, "d": 4.0}
    assert _start_order(["a", "b", "c", "d"], seconds.__getitem__) == [1, 3, 0, 2]


def test_without_costs_the_items_start_in_order() -> None:
    assert _start_order(["x", "y", "z"], None) == [0, 1, 2]


def test_isolation_and_postmortem_runs_are_expected_to_be_the_longest() -> None:
    assert min(EXPECTED_SECONDS[ISOLATE], EXPECTED_SECONDS[POSTMORTEM]) > 3 * EXPECTED_SECONDS[REPRODUCE]
