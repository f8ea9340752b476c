"""The plain-text helpers every chapter's sentences are built with."""

from __future__ import annotations

import pytest

from investigation.report import and_list, plural


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["a"], "a"),
        (["a", "b"], "a and b"),
        (["start_s 1200", "spacing_s 30", "hold_s 25"], "start_s 1200, spacing_s 30 and hold_s 25"),
    ],
)
def test_and_list_joins_the_last_item_with_and_the_others_with_commas(items: list[str], expected: str) -> None:
    assert and_list(items) == expected


@pytest.mark.parametrize(("count", "expected"), [(0, "0 runs"), (1, "1 run"), (2, "2 runs")])
def test_plural_is_singular_for_one_only(count: int, expected: str) -> None:
    assert plural(count, "run") == expected
