"""The plain-text helpers every chapter's sentences are built with."""

from __future__ import annotations

import pytest

from investigation.profiles import profile_from_dict
from investigation.report import (
    and_list,
    connection_table,
    markdown_table,
    ordinal,
    plural,
    share_text,
    short_text,
)
from investigation.simulate import simulate


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


def test_the_connection_table_names_a_user_only_where_authentication_established_one() -> None:
    """ENVIRONMENT=development, a valid auth-service token for "alice" (spec 5.3: a user) and a client with no
    token planned as "bob" (spec 5.1 refuses it 1008 before any user exists): bob's row shows no user."""
    run = simulate(profile_from_dict("two", {
        "description": "a user and a client without a token",
        "env": {"ENVIRONMENT": "development", "JWT_SECRET_KEY": "test-only-secret-0123456789abcdef-two"},
        "clients": [{"name": "alice-tab", "user_id": "alice"},
                    {"name": "bob-tab", "user_id": "bob", "token": "none", "start_s": 5.0}],
    }))
    rows = {line.split()[3]: line.split() for line in connection_table(run).splitlines() if "-tab" in line}
    assert rows["alice-tab"][4] == "alice"
    assert rows["bob-tab"][4:7] == ["never", "established", "1008"]
