"""Tests of the timeline and divergence charts: the data they draw and the figures' labels.

Expected values are computed by hand from the spec (section 4.2: a cap of 5
managers per user, managers never released on disconnect, emergency cleanup
only frees managers older than 5 minutes) or from hand-built runs.
"""

from __future__ import annotations

import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from investigation.analysis.divergence import NOT_REACHED, first_divergence
from investigation.analysis.isolate import AlignedDivergence
from investigation.charts.divergence import (
    cell_class,
    column_order,
    compared_connection,
    comparison_table,
    divergence_chart,
    run_divergence,
    visible_outcome,
)
from investigation.charts.isolation import aligned_trace_table
from investigation.charts.timeline import (
    UserInstanceSeries,
    collapse_same_time,
    count_at,
    timeline_chart,
    timeline_series,
    timeline_table,
)
from investigation.profiles import profile_from_dict
from investigation.simulate import simulate
from investigation.trace import ConnectionResult, Decision, ManagerCount, RunResult

matplotlib.use("Agg")


def connection(index: int, at_s: float, close: int | None, user: str = "u", instance: int = 0,
               decisions: tuple[Decision, ...] = ()) -> ConnectionResult:
    return ConnectionResult(index=index, client="c", instance=instance, user_id=user, at_s=at_s,
                            close_code=close, close_reason=None, decisions=decisions, cause_chain=(),
                            ended_at_s=at_s + 4)


def reconnecting_client_run() -> RunResult:
    """One user reconnecting 7 times, 10 s apart, on one instance (ENVIRONMENT=test)."""
    profile = profile_from_dict("reconnects", {
        "description": "one user reconnecting",
        "env": {"ENVIRONMENT": "test"},
        "clients": [{"name": "tab", "user_id": "test-user-12345", "connections": 7, "spacing_s": 10.0,
                     "hold_s": 4.0}],
    })
    return simulate(profile)


# --- timeline -------------------------------------------------------------------------------


def test_count_at_takes_the_last_change_at_or_before_the_time() -> None:
    steps = [(0.0, 1), (14.0, 2)]
    assert [count_at(steps, t) for t in (-1.0, 0.0, 13.9, 14.0, 99.0)] == [0, 1, 1, 2, 2]


def test_changes_at_one_instant_collapse_to_the_last() -> None:
    steps = [(10.0, 1), (3300.0, 4), (3300.0, 3), (3300.0, 0)]
    assert collapse_same_time(steps) == [(10.0, 1), (3300.0, 0)]


def test_series_pair_each_user_and_instance_with_its_connections() -> None:
    """u's token was validated (spec 5.3: a user); v's connection was refused before any user was established,
    so its series is keyed by v's planned label, marked as no user."""
    valid = (Decision("auth.token_validation", "valid"),)
    run = RunResult(
        profile="p", variant="original",
        connections=(connection(0, 0.0, None, decisions=valid), connection(1, 10.0, 1011, decisions=valid),
                     connection(2, 5.0, 1008, user="v", instance=1)),
        manager_counts=(ManagerCount(0.0, 0, "u", 1), ManagerCount(10.0, 0, "u", 2)),
        max_managers_per_user=2,
    )
    series = timeline_series(run)
    assert [(s.user_id, s.instance) for s in series] == [("u", 0), ("v (planned; user never established)", 1)]
    assert [(m.index, m.managers_held, m.outcome) for m in series[0].connections] == [(0, 1, "open"), (1, 2, "1011")]
    assert series[0].first_at(2) == 10.0
    assert series[1].steps == () and series[1].connections[0].managers_held == 0
    rows = timeline_table(run, series).splitlines()
    assert rows[3].split() == ["u", "0", "2", "1011=1", "open=1", "2", "2", "10", "0:1", "10:2"]


def test_reconnecting_user_fills_the_cap_and_then_gets_1011() -> None:
    run = reconnecting_client_run()
    assert [c.close_code for c in run.connections] == [None] * 5 + [1011, 1011]
    (series,) = timeline_series(run)
    assert series.steps == ((0.0, 1), (10.0, 2), (20.0, 3), (30.0, 4), (40.0, 5))
    assert series.first_at(5) == 40.0
    assert [m.managers_held for m in series.connections] == [1, 2, 3, 4, 5, 5, 5]


def test_periods_at_the_cap_run_from_reaching_it_until_the_count_falls_below() -> None:
    # development's first user on instance 0 (its 01 timeline table): 5 at 900 s, 2 at 920 s,
    # back up to 4 by 1370 s; a second span that reaches 5 again and never falls stays open.
    steps = ((0.0, 1), (900.0, 5), (920.0, 2), (1370.0, 4))
    assert UserInstanceSeries("u", 0, steps, ()).periods_at(5) == ((900.0, 920.0),)
    again = (*steps, (1400.0, 5), (1500.0, 6))
    assert UserInstanceSeries("u", 0, again, ()).periods_at(5) == ((900.0, 920.0), (1400.0, None))
    assert UserInstanceSeries("u", 0, steps, ()).periods_at(6) == ()
    # a count that jumps over the level (collapsed same-time steps: 4 -> 6) is at it from that step
    jump = ((0.0, 4), (10.0, 6), (20.0, 3))
    assert UserInstanceSeries("u", 0, jump, ()).periods_at(5) == ((10.0, 20.0),)


def test_timeline_figure_has_a_labelled_panel_per_series_and_no_pyplot_figure() -> None:
    plt.close("all")
    figure, table = timeline_chart(reconnecting_client_run())
    assert isinstance(figure, Figure) and plt.get_fignums() == []
    (axes,) = figure.axes
    assert axes.get_xlabel() == "virtual time since the run started (s)"
    assert "cap of 5" in figure.get_suptitle()
    assert "test-user-12345" in table and "40:5" in table


def test_timeline_panels_grow_with_the_series() -> None:
    run = RunResult(
        profile="p", variant="original",
        connections=tuple(connection(i, float(i), None, user=f"user-{i}") for i in range(10)),
    )
    figure, _ = timeline_chart(run)
    assert len(figure.axes) == 10
    assert figure.get_figheight() >= 10 * 1.0


# --- divergence -----------------------------------------------------------------------------


def test_compared_connection_is_the_first_failing_else_the_first() -> None:
    passing = RunResult("a", "original", (connection(0, 0.0, None), connection(1, 1.0, None)))
    failing = RunResult("b", "original", (connection(0, 0.0, None), connection(1, 1.0, 1011),
                                          connection(2, 2.0, 1008)))
    assert compared_connection(passing).index == 0
    assert compared_connection(failing).index == 1
    assert compared_connection(RunResult("c", "original", ())) is None


def test_whitespace_in_an_outcome_is_made_visible() -> None:
    assert visible_outcome("staging ") == "'staging '"
    assert visible_outcome("staging") == "staging"
    assert visible_outcome("") == "''"  # ENVIRONMENT="" read as it is: shown, not a blank


@pytest.mark.parametrize(
    ("point", "outcome", "reference", "expected"),
    [
        ("route.environment", "test", "test", "same"),
        ("route.environment", "staging", "test", "different"),
        ("factory.manager_cap", "exceeded", "below", "adverse"),
        ("route.close", "1011 Factory SSOT validation failed", NOT_REACHED, "adverse"),
        ("route.close", "1000 bye", NOT_REACHED, "different"),
        ("auth.bypass_user", NOT_REACHED, "payload_claim", "not_reached"),
    ],
)
def test_cell_class(point: str, outcome: str, reference: str, expected: str) -> None:
    assert cell_class(point, outcome, reference) == expected


def two_profile_runs() -> dict[str, RunResult]:
    local = (Decision("route.environment", "test"), Decision("factory.manager_cap", "below"))
    staging = (Decision("route.environment", "staging"), Decision("factory.manager_cap", "exceeded"),
               Decision("route.close", "1011 Factory SSOT validation failed"))
    return {
        "staging": RunResult("staging", "original", (connection(0, 0.0, None, decisions=local),
                                                     connection(1, 1.0, 1011, decisions=staging))),
        "local": RunResult("local", "original", (connection(0, 0.0, None, decisions=local),)),
    }


def test_reference_column_comes_first() -> None:
    assert column_order(["b", "ref", "a"], "ref") == ["ref", "a", "b"]
    assert run_divergence(two_profile_runs(), "local").profiles == ("local", "staging")


def test_divergence_chart_frames_the_first_divergence() -> None:
    figure, table = divergence_chart(two_profile_runs(), "local")
    assert table.first_divergence_of("staging").point == "route.environment"
    (axes,) = figure.axes
    frames = [patch for patch in axes.patches if not patch.get_fill()]
    assert [(frame.get_x(), frame.get_y()) for frame in frames] == [(0.5, -0.5)]
    assert axes.get_ylabel() == "decision point (pipeline order)"
    assert [label.get_text() for label in axes.get_yticklabels()][:2] == ["route.environment", "route.e2e_detected"]


def test_comparison_table_names_the_compared_connection_and_divergence() -> None:
    runs = two_profile_runs()
    text = comparison_table(runs, run_divergence(runs, "local"))
    staging_row = next(line for line in text.splitlines() if line.startswith("staging"))
    assert staging_row.split() == ["staging", "#1", "failing", "1011", "factory.manager_cap=exceeded",
                                   "route.environment", "test", "staging"]


def test_comparison_table_says_identical_for_a_profile_that_never_departs_like_the_verdicts() -> None:
    runs = two_profile_runs()
    runs = {"local": runs["local"], "twin": dataclasses.replace(runs["local"], profile="twin")}
    text = comparison_table(runs, run_divergence(runs, "local"))
    twin_row = next(line for line in text.splitlines() if line.startswith("twin"))
    assert "identical" in twin_row.split() and "(none)" not in twin_row


def test_divergence_chart_widens_with_the_profiles() -> None:
    runs = {f"profile-{i:02d}": two_profile_runs()["staging"] for i in range(10)}
    figure, table = divergence_chart(runs, "profile-00")
    assert len(table.profiles) == 10
    assert figure.get_figwidth() >= 10 * 1.2


def test_unknown_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="^parameter reference: 'nowhere' is not among"):
        run_divergence(two_profile_runs(), "nowhere")


def _aligned(failing_environment: str) -> AlignedDivergence:
    def traced(index: int, environment: str, code: int | None) -> ConnectionResult:
        decisions = (Decision("route.environment", environment), Decision("auth.token_source", "bearer"))
        return ConnectionResult(index=index, client="c", instance=0, user_id="u", at_s=0.0, close_code=code,
                                close_reason=None, decisions=decisions, cause_chain=())

    passing, failing = traced(0, "test", None), traced(7, failing_environment, 1011)
    return AlignedDivergence(passing, failing, first_divergence(passing.decisions, failing.decisions))


def test_aligned_trace_table_shows_a_trailing_space_and_names_every_column() -> None:
    """ENVIRONMENT="staging " must not look like "staging"; the marker column has a header."""
    header, rule, first, second = aligned_trace_table(_aligned("staging ")).splitlines()
    assert header.split() == ["point", "passing", "#0", "failing", "#7", "divergence"]
    assert first.split("  ")[0] == "route.environment"
    assert "'staging '" in first and first.rstrip().endswith("<< first divergence")
    assert "<<" not in second


# --- chapter 04's isolation charts -----------------------------------------------------------


@pytest.fixture(scope="module")
def e2e_isolation():  # type: ignore[no-untyped-def]
    from investigation.analysis.isolate import isolate_profiles
    from investigation.profiles import load_profile

    return isolate_profiles(load_profile("local-debug"), load_profile("staging-e2e"))


def test_the_isolation_divergence_chart_draws_the_rows_its_tables_print(e2e_isolation) -> None:  # type: ignore[no-untyped-def]
    """local-debug's debug-script sends no start_agent and no connection of either pair validates a
    token (E2E bypass, spec 5.2), so neither point may be drawn when no table prints it; a white
    cell (a point neither connection of a pair reached) has a legend entry."""
    from investigation.charts.isolation import divergence_chart

    figure, text = divergence_chart(e2e_isolation)
    (axes,) = figure.axes
    drawn = [label.get_text() for label in axes.get_yticklabels()]
    profiles_table, isolated_table = text.split("\n\n")
    for table in (profiles_table, isolated_table):
        printed = [line.split()[0] for line in table.splitlines()[3:]]
        assert printed == drawn
    assert "route.start_agent" not in drawn and "auth.token_validation" not in drawn
    legend = [entry.get_text() for legend in figure.legends for entry in legend.get_texts()]
    assert "point reached by neither connection of the pair" in legend
    assert "first divergence" in legend


def test_the_dd_chart_title_agrees_with_one_inducing_factor(e2e_isolation) -> None:  # type: ignore[no-untyped-def]
    """dd isolates one change (a client's connection count, spec 4.2) among all the differing factors."""
    from investigation.charts.isolation import dd_tests_chart

    figure, _ = dd_tests_chart(e2e_isolation)
    total = len(e2e_isolation.differing)
    assert figure.axes[0].get_title() == (
        f"dd from local-debug to staging-e2e: 1 of {total} differing factors induces the failure"
    )


def test_the_traffic_chart_title_says_red_marks_every_kept_connection() -> None:
    """One user, 7 reconnections on one instance: ddmin keeps the cap fill and the 6th (spec 4.2),
    6 of 7; only the 6th closes 1011 in the reduced run."""
    from investigation.analysis.isolate import minimal_failing_traffic
    from investigation.charts.isolation import traffic_chart

    seven = profile_from_dict("seven", {
        "description": "one user reconnecting", "env": {"ENVIRONMENT": "test"},
        "clients": [{"name": "tab", "user_id": "test-user-12345", "connections": 7, "spacing_s": 10.0,
                     "hold_s": 4.0}],
    })
    figure, _ = traffic_chart(minimal_failing_traffic(seven))
    assert figure.axes[0].get_title() == (
        "seven, 7 planned connections; red: the 6 connections ddmin keeps (1 of them closes 1011)"
    )


def test_outline_cells_draws_lines_on_the_cell_edges_only() -> None:
    from investigation.charts.grid import outline_cells

    # A grid of 3 columns and 2 rows of unit cells centred on 0, 1, 2 (x) and 0, 1 (y), framed as
    # imshow frames it (x -0.5 to 2.5, y -0.5 to 1.5): 3 columns have 4 edges, -0.5, 0.5, 1.5, 2.5,
    # and 2 rows 3, -0.5, 0.5, 1.5. The labelled (major) ticks sit on the cell centres, as in the charts.
    axes = Figure().add_subplot(xlim=(-0.5, 2.5), ylim=(-0.5, 1.5), xticks=range(3), yticks=range(2))
    outline_cells(axes, columns=3, rows=2, colour="#9e9e9e")
    assert list(axes.get_xticks(minor=True)) == [-0.5, 0.5, 1.5, 2.5]
    assert list(axes.get_yticks(minor=True)) == [-0.5, 0.5, 1.5]
    ticks = axes.xaxis.get_minor_ticks() + axes.yaxis.get_minor_ticks()
    assert all(tick.gridline.get_visible() and tick.gridline.get_color() == "#9e9e9e" for tick in ticks)
    assert {tick.tick1line.get_markersize() for tick in ticks} == {0}
    assert not any(tick.gridline.get_visible() for tick in axes.xaxis.get_major_ticks())
