"""The plain-text helpers every chapter's sentences are built with."""

from __future__ import annotations

import pytest

from investigation.report import and_list, markdown_table, ordinal, plural, share_text, short_text


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


def test_markdown_table_escapes_a_pipe_once_so_each_cell_stays_in_its_column() -> None:
    # GitHub-flavoured Markdown: a cell's "|" is written "\|"; a line break would end the row, so
    # it becomes a space. Two columns, so the separator row has two "---" cells.
    table = markdown_table(("factor", "value"), [("hold_s", "4.0"), ("headers", "a|b\nc")])
    assert table.splitlines() == [
        "| factor | value |",
        "| --- | --- |",
        "| hold_s | 4.0 |",
        "| headers | a\\|b c |",
    ]


def test_markdown_table_without_rows_is_its_header_and_separator() -> None:
    assert markdown_table(("point",), []) == "| point |\n| --- |"


@pytest.mark.parametrize(("number", "expected"), [
    (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"), (20, "20th"),
    (21, "21st"), (22, "22nd"), (23, "23rd"), (111, "111th"), (112, "112th"), (121, "121st"),
])
def test_ordinal_suffixes_with_the_teens_taking_th(number: int, expected: str) -> None:
    assert ordinal(number) == expected


def test_short_text_cuts_with_an_ellipsis_inside_the_limit() -> None:
    assert short_text("abcdef", 6) == "abcdef"
    assert short_text("abcdefg", 6) == "abc..."


def test_share_text_says_all_only_for_the_whole() -> None:
    assert share_text(36, 36) == "all 36"
    assert share_text(2, 5) == "2 of the 5"
    assert share_text(0, 5) == "0 of the 5"
