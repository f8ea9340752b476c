"""The variant verdicts and the postmortem sentences built on them, in small hand-built worlds.

Each world is a few profiles built here (profile_from_dict), so the expected outcome follows from the spec:

- ``reconnects``: one user reconnecting 7 times, 10 s apart, each held 4 s, to one instance (ENVIRONMENT=test).
  Nothing releases a manager on disconnect (spec 1, step 14), so the 5 managers of connections 1-5 fill the cap
  (spec 4.2: 5) and connections 6 and 7 (at 50 s and 60 s) close 1011 "Factory SSOT validation failed", innermost
  RuntimeError. V4 releases the manager on disconnect (spec 8): every connection passes.
- ``bad-tokens``: Cloud Run staging, one client with an expired token, 2 connections 10 s apart: auth fails, so
  each closes 1008 "SSOT Auth failed" (spec 1, step 5) under every variant (V1-V4 leave auth alone; V5 refuses
  only the E2E bypass, and this client sends no E2E header).
- ``startup-never``: Cloud Run staging whose startup never completes, one valid user connecting once: the startup
  gate (spec 1, step 9) polls 30 s and closes 1011 "Service startup incomplete" with no exception, deciding
  decision route.startup_gate=timeout; no variant touches the gate.
- ``quiet``: one connection, ENVIRONMENT=test: nothing fails under any variant.
"""

from __future__ import annotations

from typing import Any

import pytest

from investigation.analysis.hypotheses import Ledger
from investigation.analysis.isolate import IsolationOverview
from investigation.analysis.variants import (
    LONG_RUN_PROFILE,
    NO_EFFECT,
    NOTHING_TO_FIX,
    REMOVES_EVERYWHERE,
    REMOVES_SOMEWHERE,
    WORSE,
    FailingConnection,
    VariantReport,
    build_report,
    failure_verdict,
    variant_lessons,
    variant_matrix,
)
from investigation.postmortem import (
    Evidence,
    action_items,
    postmortem_key_result,
    root_cause_section,
    summary_section,
)
from investigation.profiles import Profile, profile_from_dict
from investigation.simulate import simulate
from tests.conftest import CLOUD_RUN_STAGING_ENV

STAGING_ENV = CLOUD_RUN_STAGING_ENV


def profile(name: str, env: dict[str, str], startup: dict[str, Any] | None = None, **client: Any) -> Profile:
    data: dict[str, Any] = {"description": name, "env": env, "clients": [{"name": "c", "user_id": "u-1", **client}]}
    if startup is not None:
        data["startup"] = startup
    return profile_from_dict(name, data)


def reconnects(name: str = "reconnects") -> Profile:
    return profile(name, {"ENVIRONMENT": "test"}, connections=7, spacing_s=10.0, hold_s=4.0)


def bad_tokens() -> Profile:
    return profile("bad-tokens", STAGING_ENV, token="expired", connections=2, spacing_s=10.0, hold_s=4.0)


def startup_never() -> Profile:
    return profile("startup-never", STAGING_ENV, {"complete": False}, hold_s=60.0)


def quiet() -> Profile:
    return profile("quiet", {"ENVIRONMENT": "test"})


def report_of(profiles: list[Profile], variants: tuple[str, ...] = ("original", "V4")) -> VariantReport:
    return build_report(variant_matrix(profiles, variants))


def evidence_of(profiles: list[Profile], report: VariantReport) -> Evidence:
    """The postmortem's evidence of these profiles' runs; no claim ledger and no isolation (not under test here)."""
    runs = {p.name: simulate(p) for p in profiles}
    return Evidence("quiet", runs, Ledger((), 0), IsolationOverview("quiet", {}), None, report)


@pytest.fixture(scope="module")
def auth_world() -> VariantReport:
    return report_of([bad_tokens(), reconnects()], ("original", "V4", "V5"))


# --- defect 1: refusals every variant makes alike are outside what the candidates change ----------


def test_refusals_every_variant_makes_alike_do_not_turn_a_removal_into_some_profiles_only(
        auth_world: VariantReport) -> None:
    # both expired-token connections close 1008 alike under original, V4 and V5 (module docstring), at 0 s and 10 s
    assert auth_world.matrix.untouched("bad-tokens") == (
        FailingConnection(0, "c", 0.0, "1008 SSOT Auth failed"), FailingConnection(1, "c", 10.0, "1008 SSOT Auth failed"))
    # reconnects: V5 closes the cap's refusals 1013 (spec 8), not 1011 as the original: not alike, so not set aside
    assert auth_world.matrix.untouched("reconnects") == ()
    # V4 removes the one failure it can change (reconnects); before, bad-tokens' 1008s made it "some profiles only"
    assert auth_world.verdict_of("V4").failure == REMOVES_EVERYWHERE != REMOVES_SOMEWHERE
    assert auth_world.recommended == "V4"
    # V5's own 1008s? none here; its 1013s at 50 s are at the original's time, so the verdict is not WORSE
    assert auth_world.verdict_of("V5").failure == NO_EFFECT


def test_the_resolution_reports_the_untouched_refusals_apart(auth_world: VariantReport) -> None:
    text = auth_world.recommendation()
    # the original fails on both profiles; V4 removes the failure on reconnects, bad-tokens' no candidate changes
    assert ("It removes the failure on 1 of the 2 profiles where the original fails (the other's failures no "
            "candidate changes),") in text
    assert text.endswith(" 2 failing connections no candidate changes (closed alike under the original and every "
                         "variant run, so the verdicts leave them aside): 1008 SSOT Auth failed x2 on bad-tokens.")


def test_a_refusal_only_the_original_makes_is_still_judged() -> None:
    # V5 refuses the E2E bypass in staging (spec 8): an E2E-header client with a valid E2E token passes under the
    # original (below the cap) and closes 1008 under V5, a failure V5 introduces, counted against it
    e2e = profile("e2e", STAGING_ENV, token="e2e_suite", user_id="staging-e2e-user-001",
                  headers={"X-Test-Type": "E2E", "X-E2E-Test": "true"})
    report = report_of([e2e, bad_tokens()], ("original", "V5"))
    assert report.matrix.untouched("e2e") == ()
    assert report.verdict_of("V5").failure == WORSE


# --- defect 2: nothing to fix ---------------------------------------------------------------------------


def test_a_matrix_where_the_original_never_fails_has_nothing_to_fix() -> None:
    assert failure_verdict({"a": "no failure", "b": "no failure"}) == NOTHING_TO_FIX
    report = report_of([quiet()])
    assert report.verdict_of("V4").failure == NOTHING_TO_FIX
    assert report.recommended is None
    assert report.key_result() == "no variant recommended | V4: no failure to fix, safety same"
    assert report.recommendation() == (
        "The original fails on none of the 1 profile: no connection is closed with a failure, so there is no "
        "failure to fix and no variant is recommended.")
    lessons = variant_lessons(report).data
    assert lessons.startswith("- The original refuses no connection in any run: there is no failure to fix.")
    assert "no effect on the failure" not in lessons


def test_the_postmortem_of_a_world_without_failure_says_so_and_asks_no_fix() -> None:
    profiles = [quiet()]
    evidence = evidence_of(profiles, report_of(profiles))
    summary = summary_section(evidence).data
    assert "deciding decision" not in summary
    assert summary.endswith("No connection fails in any run: there is no failure to fix.")
    key = postmortem_key_result(evidence)
    assert "decided by" not in key
    assert key.endswith("resolution none (no failure to fix)")
    assert "Do not ship" not in action_items(evidence).data


def test_failures_no_candidate_changes_leave_nothing_for_a_variant_to_fix() -> None:
    report = report_of([bad_tokens()])
    assert report.verdict_of("V4").failure == NOTHING_TO_FIX
    assert report.recommendation().startswith(
        "No candidate changes how any failing connection of the original ends: there is no failure a variant "
        "fixes, so none is recommended. 2 failing connections no candidate changes")


# --- defect 3: the long run failing alone -----------------------------------------------------------------


def test_the_summary_names_the_long_run_when_it_is_the_only_failing_run() -> None:
    # the long run stands in for reconnects: its connections 6 and 7 close 1011 at 50 s (module docstring)
    long_run = reconnects(LONG_RUN_PROFILE)
    report = report_of([quiet(), long_run])
    evidence = evidence_of([quiet()], report)
    summary = summary_section(evidence).data
    assert (f"Only chapter 05's long E2E run {LONG_RUN_PROFILE} fails: the original closed 2 of its 7 connections "
            '(1011 "Factory SSOT validation failed" (2)), the first at 50 s. ') in summary
    assert ("which removes the failure on the one run where the original fails, the long E2E run.") in summary
    assert f"; only chapter 05's long E2E run {LONG_RUN_PROFILE} fails; " in postmortem_key_result(evidence)


# --- defects 4 and 5: every deciding decision; failures without an exception; their own action item -----


@pytest.fixture(scope="module")
def startup_world() -> Evidence:
    profiles = [quiet(), reconnects(), startup_never()]
    return evidence_of(profiles, report_of(profiles))


def test_the_key_result_lists_every_deciding_decision_with_its_count(startup_world: Evidence) -> None:
    # reconnects: 2 refused at the cap; startup-never: 1 closed at the startup gate (module docstring)
    assert "; decided by factory.manager_cap=exceeded (2), route.startup_gate=timeout (1); " in postmortem_key_result(
        startup_world)


def test_the_root_cause_counts_failures_closed_without_an_exception(startup_world: Evidence) -> None:
    line = next(line for line in root_cause_section(startup_world).data.splitlines() if "Innermost exception" in line)
    assert line.startswith("- Innermost exception of the failing connections: RuntimeError (2), no exception (1); ")
    assert "their innermost cause RuntimeError (2), no exception (1). " in summary_section(startup_world).data


def test_an_action_item_names_the_failures_no_candidate_changes(startup_world: Evidence) -> None:
    items = [item.split(". ", 1)[1] for item in action_items(startup_world).data.splitlines()]
    # V4 removes the cap's refusals (reconnects), the one failure it changes: deploy it, then fix the gate's close
    deploy = next(n for n, item in enumerate(items) if item.startswith("Deploy **V4**"))
    assert items[deploy + 1] == (
        'Fix the 1 failing connection no candidate of chapter 05 changes on their own: 1 connection closed 1011 '
        '"Service startup incomplete", decided by route.startup_gate=timeout (on startup-never). Every variant '
        "closes it exactly as the original does.")


def test_refusals_by_rule_get_no_fix_item() -> None:
    # 1008 is the close of an auth failure (spec 1, step 5): the server refusing bad credentials is not a failure
    # to fix, so the untouched expired-token refusals are reported, not turned into an action item
    profiles = [quiet(), bad_tokens()]
    evidence = evidence_of(profiles, report_of(profiles))
    assert "Fix the" not in action_items(evidence).data
    assert summary_section(evidence).data.endswith(
        "No candidate change alters how any failing connection ends: no variant fixes the failure. 2 failing "
        "connections no candidate changes (closed alike under the original and every variant run, so the verdicts "
        "leave them aside): 1008 SSOT Auth failed x2 on bad-tokens.")
