"""Stop 14 audit findings on what tables and verdict sentences print (A2/B2, A3, A6, A7).

Every world is built here; expected values come from the spec (backend.md) and the profiles, worked out by hand.
"""

from __future__ import annotations

import pytest

from investigation.analysis.divergence import divergence_table
from investigation.analysis.variants import (
    MORE_FAILURES,
    NOTHING_TO_FIX,
    SET_ASIDE,
    WORSE,
    VariantReport,
    build_report,
    variant_matrix,
)
from investigation.charts.divergence import comparison_table, run_divergence
from investigation.charts.variants import chart_table
from investigation.divergence_findings import deciding_groups, divergence_verdicts, point_text, separating_points
from investigation.profiles import profile_from_dict
from investigation.report import connection_table, format_table
from investigation.simulate import simulate
from investigation.trace import ConnectionResult, Decision, RunResult
from tests.conftest import CLOUD_RUN_STAGING_ENV

# --- A2/B2: the chart table's "vs original" agrees with its own row -------------------------------------------


@pytest.fixture(scope="module")
def expired_world() -> VariantReport:
    """Two staging profiles (Cloud Run, K_SERVICE set, so no variant changes the environment's detection).

    expired-only: one client, 2 connections with an expired token. Spec 5.3: an expired token is refused
    (1008) in every environment, and no candidate of spec 8 touches token validation of a non-E2E client, so every
    variant refuses both connections alike: all failures are set aside, under the original as under each candidate.
    expired-and-suite: the same client, plus one E2E suite connection (E2E header) at 100 s. The original's E2E
    bypass (spec 5.2) lets it in; V5 (spec 8: no E2E bypass in staging/production) refuses it with 1008, so V5
    closes 3 connections where the original closes 2 (both set aside): more failures, not "introduced".
    """
    expired = {"name": "c", "user_id": "u-1", "token": "expired", "connections": 2, "spacing_s": 30.0}
    suite = {"name": "e2e", "user_id": "staging-e2e-user-002", "token": "e2e_suite",
             "headers": {"X-Test-Type": "E2E"}, "start_s": 100.0}
    profiles = [
        profile_from_dict("expired-only", {"description": "expired", "env": CLOUD_RUN_STAGING_ENV,
                                           "clients": [expired]}),
        profile_from_dict("expired-and-suite", {"description": "expired and suite", "env": CLOUD_RUN_STAGING_ENV,
                                                "clients": [expired, suite]}),
    ]
    return build_report(variant_matrix(profiles))


def _vs_original(report: VariantReport) -> dict[tuple[str, str], tuple[str, str]]:
    """(variant, profile) -> (refused, vs original) from the chart's text table."""
    title, header, _, *rows = chart_table(report).split("\n\n")[0].splitlines()
    start = header.index("vs original")
    return {tuple(line.split()[:2]): (line.split()[2], line[start:].strip()) for line in rows}


def test_a_cell_whose_failures_are_all_set_aside_says_so(expired_world: VariantReport) -> None:
    rows = _vs_original(expired_world)
    # expired-only: 2 refused under every variant (spec 5.3), none of them changed by a candidate
    for variant in ("original", "V1", "V2", "V3", "V4", "V5"):
        assert rows[(variant, "expired-only")] == ("2", SET_ASIDE)
    # the verdicts, from the judged cells, are unchanged: no variant has a failure to fix on it
    assert all(dict(v.effects)["expired-only"] == "no failure" for v in expired_world.verdicts)


def test_extra_refusals_where_the_original_fails_are_more_failures_not_introduced(
        expired_world: VariantReport) -> None:
    rows = _vs_original(expired_world)
    # V5 refuses the suite's connection too: 3 refused against the original's 2 (spec 8, V5; spec 5.2)
    assert rows[("V5", "expired-and-suite")] == ("3", MORE_FAILURES)
    assert rows[("original", "expired-and-suite")] == ("2", SET_ASIDE)
    assert rows[("V4", "expired-and-suite")] == ("2", SET_ASIDE)
    # the verdicts are the judged ones, unchanged: V5 fails more widely, the others have nothing to fix
    assert expired_world.verdict_of("V5").failure == WORSE
    assert expired_world.verdict_of("V4").failure == NOTHING_TO_FIX


# --- A3: a value point separates only when no branch does ------------------------------------------------------


def _run(name: str, environment: str, source: str, close: int | None) -> RunResult:
    """One connection: ENVIRONMENT read, where the token came from, then either a NO_TOKEN refusal or the manager."""
    decisions = [Decision("route.environment", environment), Decision("auth.token_source", source)]
    decisions.append(Decision("route.close", str(close)) if close else Decision("route.manager", "factory"))
    connection = ConnectionResult(index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=close,
                                  close_reason="SSOT Auth failed" if close else None, decisions=tuple(decisions),
                                  cause_chain=())
    return RunResult(name, "original", (connection,))


def _table(runs: dict[str, RunResult]):
    traces = {name: run.connections[0].decisions for name, run in runs.items()}
    return divergence_table(traces, "local", ["route.environment", "auth.token_source", "factory.validation_mode",
                                              "route.manager", "route.close"])


def test_a_branch_separates_before_the_environment_read() -> None:
    # blank: staging, a blank bearer token -> NO_TOKEN, 1008 (spec 5.1 in every environment); the passing
    # profiles run in test and development with a bearer token. route.environment (staging vs test, development)
    # and auth.token_source (bearer_blank vs bearer) both split them; the branch is the one to name.
    runs = {"local": _run("local", "test", "bearer", None), "dev": _run("dev", "development", "bearer", None),
            "blank": _run("blank", "staging", "bearer_blank", 1008)}
    table = _table(runs)
    assert [p.point for p in separating_points(runs, table)] == ["auth.token_source", "route.environment"]
    assert "**auth.token_source** (failing: bearer_blank; passing: bearer)" in divergence_verdicts(runs, table).data
    assert deciding_groups(runs, table)[0].separating.point == "auth.token_source"


def test_the_environment_read_separates_only_as_a_fallback_and_says_so() -> None:
    # same token source everywhere: only the ENVIRONMENT value read parts the failing profile from the passing ones
    runs = {"local": _run("local", "test", "bearer", None), "blank": _run("blank", "staging", "bearer", 1008)}
    table = _table(runs)
    found = separating_points(runs, table)
    assert [p.point for p in found] == ["route.environment"]
    assert point_text(found[0]) == ("**route.environment** (failing: staging; passing: test; a value read, not a "
                                    "branch: no branch taken separates, only a value no passing profile reads)")


# --- A6: a control character in a cell keeps its row on one line ------------------------------------------------


def test_format_table_escapes_control_characters_and_leaves_other_text() -> None:
    table = format_table(("user", "n"), [("line1\nline2", "1"), ('ユ-é "q" a|b', "2"), ("tab\there", "3")])
    # header, rule and three rows: five lines; the newline and tab written as \n and \t, so the first column is
    # as wide as "line1\nline2" (12 characters); the unicode, quotes and | cell (11 characters) is kept as it is
    assert table.splitlines() == [
        "user          n",
        "------------  -",
        "line1\\nline2  1",
        'ユ-é "q" a|b   2',
        "tab\\there     3",
    ]


def test_a_user_id_with_a_newline_keeps_one_line_per_connection() -> None:
    profile = profile_from_dict("odd-user", {"description": "odd", "env": {"ENVIRONMENT": "development"},
                                             "clients": [{"name": "nl", "user_id": "line1\nline2",
                                                          "connections": 2, "spacing_s": 10.0}]})
    lines = connection_table(simulate(profile)).splitlines()
    # title, header, rule, and one line for each of the 2 connections
    assert len(lines) == 5
    assert all("line1\\nline2" in line for line in lines[3:])


# --- A7: an empty outcome is not "not reached" -------------------------------------------------------------------


def test_the_comparison_table_shows_an_empty_environment_as_two_quotes() -> None:
    runs = {"local": _run("local", "test", "bearer", None), "empty": _run("empty", "", "bearer", None)}
    row = next(line for line in comparison_table(runs, run_divergence(runs, "local")).splitlines()
               if line.startswith("empty "))
    # the profile read ENVIRONMENT="" at route.environment, where the reference read "test": reached, not "-"
    # (the chapter's table, built from the compared traces, whose outcomes visible_outcome shows)
    assert row.split()[-3:] == ["route.environment", "test", "''"]
