"""Tests of first_divergence and the decision point x profile table."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from investigation.analysis.divergence import (
    Divergence,
    DivergenceRow,
    divergence_table,
    first_divergence,
)


@dataclass(frozen=True)
class Step:
    """Stands for trace.Decision: any object with .point and .outcome."""

    point: str
    outcome: str


LOCAL = [
    ("auth.token_source", "bearer"),
    ("factory.validation_mode", "strict"),
    ("route.close", "open"),
]


def test_identical_traces_do_not_diverge() -> None:
    assert first_divergence(LOCAL, list(LOCAL)) is None
    assert first_divergence([], []) is None


def test_first_differing_outcome_is_reported() -> None:
    staging = [
        ("auth.token_source", "bearer"),
        ("factory.validation_mode", "relaxed"),
        ("route.close", "1011"),
    ]
    assert first_divergence(LOCAL, staging) == Divergence(
        "factory.validation_mode", "strict", "relaxed"
    )


def test_objects_with_point_and_outcome_are_accepted() -> None:
    failing = [Step("auth.token_source", "subprotocol")]
    assert first_divergence([Step(*LOCAL[0])], failing) == Divergence(
        "auth.token_source", "bearer", "subprotocol"
    )


def test_point_only_in_passing_trace_has_no_failing_outcome() -> None:
    failing = [LOCAL[0], LOCAL[2]]
    assert first_divergence(LOCAL, failing) == Divergence("factory.validation_mode", "strict", None)


def test_point_only_in_failing_trace_has_no_passing_outcome() -> None:
    failing = [LOCAL[0], ("factory.manager_cap", "reached"), *LOCAL[1:]]
    assert first_divergence(LOCAL, failing) == Divergence("factory.manager_cap", None, "reached")


def test_a_shorter_trace_diverges_where_it_ends() -> None:
    expected = Divergence("factory.validation_mode", "strict", None)
    assert first_divergence(LOCAL, LOCAL[:1]) == expected
    assert first_divergence(LOCAL[:2], LOCAL) == Divergence("route.close", None, "open")


def test_repeated_points_align_by_occurrence() -> None:
    passing = [("route.message", "ok"), ("route.message", "ok"), ("route.message", "ok")]
    failing = [("route.message", "ok"), ("route.message", "error")]
    assert first_divergence(passing, failing) == Divergence("route.message", "ok", "error")
    assert first_divergence(passing, passing[:2]) == Divergence("route.message", "ok", None)


def test_a_point_only_the_passing_trace_reaches_is_reported_before_one_only_the_failing_reaches() -> None:
    # At the first mismatch each side is at a point the other never reaches: the docstring
    # reports the point the failing trace never reaches first.
    passing = [("auth.token_source", "bearer"), ("route.close", "normal")]
    failing = [("factory.manager_cap", "reached"), ("route.close", "normal")]
    assert first_divergence(passing, failing) == Divergence("auth.token_source", "bearer", None)


def test_reordered_points_report_the_passing_traces_point() -> None:
    failing = [LOCAL[1], LOCAL[0], LOCAL[2]]
    assert first_divergence(LOCAL, failing) == Divergence("auth.token_source", "bearer", "bearer")


def test_a_malformed_step_is_rejected() -> None:
    with pytest.raises(TypeError, match="must have .point and .outcome or be a pair"):
        first_divergence([("a", "b", "c")], [])


def test_divergence_has_a_value_repr() -> None:
    assert repr(Divergence("route.close", "open", None)) == (
        "Divergence(point='route.close', passing='open', failing=None)"
    )


POINTS = ("auth.token_source", "factory.validation_mode", "factory.manager_cap", "route.close")


def make_table_traces() -> dict[str, list[tuple[str, str]]]:
    return {
        "local": LOCAL,
        "staging": [
            ("auth.token_source", "bearer"),
            ("factory.validation_mode", "relaxed"),
            ("route.close", "1011"),
        ],
        "pytest": [("auth.token_source", "none"), ("auth.extra", "x")],
        "same": list(LOCAL),
    }


def test_divergence_table_rows_follow_point_order_with_dash_for_not_reached() -> None:
    table = divergence_table(make_table_traces(), reference="local", point_order=POINTS)
    assert table.profiles == ("local", "staging", "pytest", "same")
    assert table.rows == (
        DivergenceRow("auth.token_source", ("bearer", "bearer", "none", "bearer")),
        DivergenceRow("factory.validation_mode", ("strict", "relaxed", "-", "strict")),
        DivergenceRow("factory.manager_cap", ("-", "-", "-", "-")),
        DivergenceRow("route.close", ("open", "1011", "-", "open")),
        # not in point_order: appended in the order first reached
        DivergenceRow("auth.extra", ("-", "-", "x", "-")),
    )


def test_divergence_table_gives_each_profiles_first_divergence_from_the_reference() -> None:
    table = divergence_table(make_table_traces(), reference="local", point_order=POINTS)
    assert table.first_divergence_of("local") is None
    assert table.first_divergence_of("same") is None
    assert table.first_divergence_of("staging") == Divergence(
        "factory.validation_mode", "strict", "relaxed"
    )
    assert table.first_divergence_of("pytest") == Divergence("auth.token_source", "bearer", "none")
    with pytest.raises(KeyError):
        table.first_divergence_of("production")


def test_divergence_table_joins_repeated_outcomes() -> None:
    traces = {"a": [("route.message", "ok"), ("route.message", "error")]}
    table = divergence_table(traces, reference="a", point_order=["route.message"])
    assert table.rows == (DivergenceRow("route.message", ("ok, error",)),)


def test_divergence_table_markdown() -> None:
    traces = {"local": LOCAL[:1], "pytest": [("auth.token_source", "none")]}
    table = divergence_table(traces, reference="local", point_order=POINTS[:1])
    assert table._repr_markdown_() == (
        "| point | local | pytest |\n"
        "| --- | --- | --- |\n"
        "| auth.token_source | bearer | none |\n"
        "| first divergence | reference | auth.token_source |"
    )


def test_divergence_table_rejects_an_unknown_reference() -> None:
    with pytest.raises(ValueError, match="reference 'prod' is not among the traces"):
        divergence_table({"local": LOCAL}, reference="prod", point_order=POINTS)


def test_divergence_table_markdown_marks_a_profile_that_never_diverges() -> None:
    # Same word as notebook 02's verdict for a profile with no departure: "identical".
    traces = {"local": LOCAL, "same": list(LOCAL)}
    table = divergence_table(traces, reference="local", point_order=POINTS)
    assert table._repr_markdown_().splitlines()[-1] == "| first divergence | reference | identical |"


def test_undeclared_points_come_from_the_reference_first_then_the_others_in_first_seen_order() -> None:
    # The reference is the mapping's second trace. Undeclared points: the reference's x.c first,
    # then staging's x.b and x.a as staging reaches them, then pytest's x.d (its x.a is already
    # a row). The declared point keeps its place ahead of them all.
    traces = {
        "staging": [("x.b", "1"), ("auth.token_source", "bearer"), ("x.a", "2")],
        "local": [("auth.token_source", "bearer"), ("x.c", "3")],
        "pytest": [("x.a", "4"), ("x.d", "5")],
    }
    table = divergence_table(traces, reference="local", point_order=POINTS[:1])
    assert [row.point for row in table.rows] == ["auth.token_source", "x.c", "x.b", "x.a", "x.d"]
    assert table.rows[3] == DivergenceRow("x.a", ("2", "-", "4"))


def test_the_table_compares_a_retried_point_by_its_first_outcome_as_chapter_04_does() -> None:
    # The profile's context creation failed and was retried (spec 5.4), so context.id_generation was reached twice:
    # its first outcome is the reference's; where the two parted is context.creation (created against failed).
    reference = [("context.id_generation", "generator"), ("context.creation", "created")]
    retried = [("context.id_generation", "generator then generator"), ("context.creation", "failed")]
    table = divergence_table({"local": reference, "retried": retried}, "local", ["context.id_generation",
                                                                               "context.creation"])
    assert table.first_divergence_of("retried") == Divergence("context.creation", "created", "failed")
