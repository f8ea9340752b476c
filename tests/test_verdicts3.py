"""Verdicts where a candidate moves a failure onto a mechanism no candidate changes, and where a variant's harm
sits beside failures every variant makes alike; the postmortem of a world where only the long run fails.

The worlds are built here (profile_from_dict), so their outcomes follow from the spec:

- ``leak-cap``: Cloud Run staging whose startup never completes; one valid user connects 7 times, 35 s apart
  (0, 35, ..., 210 s), each held 60 s. Every connection gets its manager (spec 1, step 7) and then waits at the
  startup gate (step 9: 30 s of polling) and closes 1011 "Service startup incomplete", deciding decision
  route.startup_gate=timeout, leaving its manager registered (step 14). After 5 such managers (cap 5, spec 4.2;
  emergency cleanup frees none: the oldest is 175 s old, not more than 5 minutes) connections 6 and 7 (175 s,
  210 s) are refused by the cap: 1011 "Factory SSOT validation failed", factory.manager_cap=exceeded. V4 releases
  the manager on disconnect and V3 raises the cap to 20 (spec 8): no refusal, so all 7 close at the startup gate.
  V5 closes the two cap refusals 1013 (spec 8) and leaves the gate alone.
- ``gate-e2e``: Cloud Run staging whose startup never completes; user ``a`` (valid token) connects once at 10 s and
  closes at the startup gate (1011 "Service startup incomplete"); the E2E client (the E2E suite's token and
  headers) connects at 30 s and 50 s: route-level E2E detection skips the startup wait (spec 1, steps 2 and 9), so
  under the original both stay open. V5 refuses the E2E bypass in staging (spec 8): both close 1008
  "SSOT Auth failed" (spec 1, step 5). 3 connections in all.
"""

from __future__ import annotations

from typing import Any

import pytest

from investigation.analysis.hypotheses import Ledger
from investigation.analysis.isolate import IsolationOverview
from investigation.analysis.variants import (
    LONG_RUN_PROFILE,
    NO_EFFECT,
    REMOVED,
    REMOVES_EVERYWHERE,
    VariantReport,
    build_report,
    variant_lessons,
    variant_matrix,
)
from investigation.postmortem import (
    Evidence,
    _worse_text,
    action_items,
    detection_section,
    lessons,
    root_cause_section,
)
from investigation.profiles import Profile, profile_from_dict
from investigation.simulate import simulate
from tests.conftest import CLOUD_RUN_STAGING_ENV

STAGING_ENV = CLOUD_RUN_STAGING_ENV
E2E_HEADERS = {"X-Test-Type": "E2E", "X-Test-Environment": "staging", "X-E2E-Test": "true", "X-Test-Mode": "true"}


def world(name: str, clients: list[dict[str, Any]]) -> Profile:
    return profile_from_dict(name, {"description": name, "env": STAGING_ENV, "startup": {"complete": False},
                                    "duration_s": 600.0, "clients": clients})


def leak_cap() -> Profile:
    return world("leak-cap", [{"name": "u", "user_id": "109283746501928374650", "connections": 7,
                               "spacing_s": 35.0, "hold_s": 60.0}])


def gate_e2e() -> Profile:
    return world("gate-e2e", [
        {"name": "a", "user_id": "104729384756102938475", "start_s": 10.0, "hold_s": 60.0},
        {"name": "e2e", "user_id": "staging-e2e-user-001", "token": "e2e_suite", "headers": E2E_HEADERS,
         "connections": 2, "start_s": 30.0, "spacing_s": 20.0, "hold_s": 5.0},
    ])


def evidence_of(profiles: list[Profile], report: VariantReport) -> Evidence:
    """The postmortem's evidence of these profiles' runs; no claim ledger and no isolation (not under test here)."""
    runs = {p.name: simulate(p) for p in profiles}
    return Evidence("quiet", runs, Ledger((), 0), IsolationOverview("quiet", {}), None, report)


@pytest.fixture(scope="module")
def leak_world() -> VariantReport:
    return build_report(variant_matrix([leak_cap()], ("original", "V3", "V4", "V5")))


# --- defect 1: a removal that leaves the connection to a mechanism no candidate changes ---------------------


def test_a_cap_refusal_a_candidate_moves_to_the_startup_gate_counts_as_removed(leak_world: VariantReport) -> None:
    matrix = leak_world.matrix
    # connections 1-5 close at the gate under every variant (module docstring): set aside
    assert [f.index for f in matrix.untouched("leak-cap")] == [0, 1, 2, 3, 4]
    # V4 and V3 move connections 6 and 7 (indices 5, 6) from the cap's refusal to the gate
    assert [f.index for f in matrix.moved_aside("V4", "leak-cap")] == [5, 6]
    assert [f.index for f in matrix.moved_aside("V3", "leak-cap")] == [5, 6]
    # V5 still refuses them, with 1013: not the gate, so not moved aside, at the original's time
    assert matrix.moved_aside("V5", "leak-cap") == ()
    assert dict(leak_world.verdict_of("V4").effects) == {"leak-cap": REMOVED}
    assert leak_world.verdict_of("V4").failure == REMOVES_EVERYWHERE
    assert leak_world.verdict_of("V5").failure == NO_EFFECT
    # V3 and V4 both qualify with one switch each; the tie goes to V3, listed first in spec 8
    assert leak_world.recommended == "V3"


def test_the_resolution_says_the_moved_connections_then_fail_at_the_startup_gate(leak_world: VariantReport) -> None:
    assert leak_world.recommendation().endswith(
        "5 failing connections no candidate changes (closed alike under the original and every variant run, so the "
        "verdicts leave them aside): 1011 Service startup incomplete x5 on leak-cap; under V3 and V4, 2 connections "
        "of leak-cap the original closes 1011 Factory SSOT validation failed then fail at the startup gate, which "
        "no candidate changes, so the verdicts count their failure removed.")


def test_v4_is_deployed_not_rejected_when_its_removal_meets_the_startup_gate() -> None:
    profiles = [leak_cap()]
    report = build_report(variant_matrix(profiles, ("original", "V4", "V5")))
    items = action_items(evidence_of(profiles, report)).data
    assert report.recommended == "V4"
    assert "Deploy **V4**" in items
    assert "Do not ship **V4**" not in items
    # the five gate closes need their own fix, and under V4 the two cap refusals it removes close at the gate too
    # (module docstring): 7 gate closes under the recommended fix, not 5
    fix_own = next(line for line in items.splitlines() if "no candidate of chapter 05 changes on their own" in line)
    assert fix_own.endswith("Under V4, the recommended fix, 2 more connections fail that way (leak-cap): V4 removes "
                            "their original failure, and the mechanism above then closes them.")


# --- defect 2: a variant's harm is the connections it closes differently --------------------------------------


@pytest.fixture(scope="module")
def gate_world() -> VariantReport:
    return build_report(variant_matrix([gate_e2e()], ("original", "V5")))


def test_05_names_only_the_connections_v5_closes_differently(gate_world: VariantReport) -> None:
    # the gate's 1011 at 10 s is alike under both; V5 closes the 2 E2E connections (30 s, 50 s) of the 3: 1008
    lessons = variant_lessons(gate_world).data
    assert ("- V5 on gate-e2e: 1008 SSOT Auth failed closes 2 of the 3 connections (client e2e) from 30 s, which "
            "the original left open.") in lessons.splitlines()
    assert "where the original does not fail" not in lessons


def test_06_names_only_the_connections_v5_closes_differently(gate_world: VariantReport) -> None:
    assert _worse_text(gate_world, gate_world.verdict_of("V5")) == (
        '1008 "SSOT Auth failed" closes 2 of the 3 connections of gate-e2e (client e2e) from 30 s, which the '
        "original left open")


# --- defect 3: only the long run fails -------------------------------------------------------------------------


def test_root_cause_detection_and_lessons_state_the_long_runs_failure_when_no_profile_fails() -> None:
    # the long run stands in as one user (ENVIRONMENT=test) reconnecting 7 times, 10 s apart, each held 4 s: no
    # manager is released (spec 1, step 14), so the 5 managers of connections 1-5 fill the cap (spec 4.2: 5) and
    # connections 6 and 7 (at 50 s and 60 s) are refused: 1011 "Factory SSOT validation failed", deciding decision
    # factory.manager_cap=exceeded, innermost RuntimeError (the cap's). The profile "quiet" (one connection) passes.
    env = {"ENVIRONMENT": "test"}
    quiet = profile_from_dict("quiet", {"description": "quiet", "env": env,
                                        "clients": [{"name": "c", "user_id": "u-1"}]})
    long_run = profile_from_dict(LONG_RUN_PROFILE, {"description": "long", "env": env, "clients": [
        {"name": "c", "user_id": "u-1", "connections": 7, "spacing_s": 10.0, "hold_s": 4.0}]})
    evidence = evidence_of([quiet], build_report(variant_matrix([quiet, long_run], ("original", "V4"))))
    name = f"chapter 05's long E2E run {LONG_RUN_PROFILE}"
    assert root_cause_section(evidence).data.splitlines() == [
        f"- No connection failed under any profile; only {name} fails, so these lines state the mechanism of its "
        "run under the original (chapter 05's variant matrix).",
        "- Deciding decision of its 2 failing connections: factory.manager_cap=exceeded (2).",
        "- 2 of 2 failing connections were refused by the per-user manager cap (5 managers per user and instance, "
        "spec 4.2).",
        "- Innermost exception of its failing connections: RuntimeError (2).",
    ]
    assert detection_section(evidence).data == (
        f'- No connection failed under any profile. Only {name} fails: its clients saw 1011 "Factory SSOT '
        'validation failed" (2); the innermost causes behind those closes were RuntimeError (2). Its first failing '
        "connection is client c's at 50 s (virtual time).")
    assert lessons(evidence).data == (
        f"- No lesson here: these lessons are drawn from the failing profiles' runs and no profile fails; only "
        f"{name} does (2 of its 7 connections closed, the first at 50 s), and chapter 05's lessons cover it.")


def test_lessons_of_a_world_without_failure_say_why_they_are_empty() -> None:
    quiet = profile_from_dict("quiet", {"description": "quiet", "env": {"ENVIRONMENT": "test"},
                                        "clients": [{"name": "c", "user_id": "u-1"}]})
    evidence = evidence_of([quiet], build_report(variant_matrix([quiet], ("original", "V4"))))
    assert lessons(evidence).data == "- No lesson here: no connection failed under any profile."


def test_the_charts_vs_original_column_agrees_with_the_verdicts(leak_world: VariantReport) -> None:
    """The chart's table calls leak-cap under V3 and V4 what the verdicts count (removed: the two cap refusals are
    moved to the gate, the five gate closes set aside), not "same time" from the raw closes (audit 13)."""
    from investigation.charts.variants import chart_table

    vs_original = {tuple(line.split()[:2]): line.split()[-1] for line in chart_table(leak_world).splitlines()
                   if line.split()[:2] in (["V3", "leak-cap"], ["V4", "leak-cap"])}
    assert vs_original == {("V3", "leak-cap"): REMOVED, ("V4", "leak-cap"): REMOVED}
