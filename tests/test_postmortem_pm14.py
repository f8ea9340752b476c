"""Postmortem sentences the stop-14 audit worlds exposed: the startup gate's closes name their cause, a shared
traffic split by ENVIRONMENT gets its own lesson, dd's passing mixture is named beside an isolated pair, the bypass
refusal's cost counts only the refusals the original does not make, the Impact column says what it dates.

Hand-made worlds (spec-derived outcomes):

- ``gate-dev`` / ``gate-staging``: one traffic (user mia, 3 connections 60 s apart, held 40 s) whose app startup
  never completes. Only staging/production wait at the startup gate (spec 1, step 9), so gate-staging closes every
  connection 1011 "Service startup incomplete" after an error frame STARTUP_INCOMPLETE, with no exception behind the
  close; gate-dev (ENVIRONMENT dev) passes. They differ in ENVIRONMENT and in K_SERVICE (set in gate-staging only),
  which the gate does not read: dd's 1-minimal difference is ENVIRONMENT, and its last passing mixture already
  holds gate-staging's K_SERVICE.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from investigation.analysis.isolate import IsolationOverview
from investigation.postmortem import (
    Evidence,
    _bypass_refusal_cost,
    _shared_traffic_lessons,
    _shared_traffic_line,
    detection_section,
    impact_table,
    shared_traffic_isolations,
)
from investigation.reproduce import run_profiles
from tests.test_postmortem_findings import evidence_of, reconnects, startup_never
from tests.test_review_rev1 import AUTH, cell, failing, report_of

SECRET = "test-only-staging-secret-0123456789abcdef"
GATE_PROFILE = """description = "{name}: startup never completes, one user with 3 connections."
startup = {{complete = false}}
[env]
ENVIRONMENT = "{environment}"
{k_service}JWT_SECRET_KEY = "{secret}"
JWT_SECRET_STAGING = "{secret}"
JWT_SECRET_PRODUCTION = "{secret}"
JWT_ALGORITHM = "HS256"
[[clients]]
name = "mia"
user_id = "400000000000000000001"
connections = 3
spacing_s = 60.0
hold_s = 40.0
"""


# --- A9: the startup gate's close names its cause ----------------------------------------------------------


def test_detection_counts_the_startup_gate_closes_as_naming_their_cause() -> None:
    # reconnects: its 6th and 7th connections are refused at the cap (spec 4.2), each after an error frame whose
    # details.error_message holds the cap's RuntimeError (spec 1, step 8); startup: its one connection closes 1011
    # "Service startup incomplete" after an error frame STARTUP_INCOMPLETE (spec 1, step 9), no exception behind it.
    # Failures in profile-name order: reconnects' 2, then startup's 1: 3 failing clients, all told.
    evidence = evidence_of({"local-debug": reconnects("local-debug", 1), "reconnects": reconnects("reconnects", 7),
                            "startup": startup_never()})
    lines = detection_section(evidence).data.splitlines()
    assert ("- 2 of 3 failing connections were sent, before the close, an error frame whose details.error_message "
            "carried the innermost cause's full text (spec 1, step 8; e.g. \"User test-user-12345 has reached the "
            "maximum number of WebSocket managers (5)\"): the close reason did not carry it. The other one had no "
            "exception behind its close: an error frame STARTUP_INCOMPLETE and the close 1011 \"Service startup "
            "incomplete\" named the cause (spec 1, step 9). The diagnosis reached every failing client.") in lines


def test_detection_with_only_startup_gate_closes_does_not_say_the_clients_saw_the_reason_only() -> None:
    evidence = evidence_of({"local-debug": reconnects("local-debug", 1), "startup": startup_never()})
    lines = detection_section(evidence).data.splitlines()
    assert ("- 1 of 1 failing connections had no exception behind its close: an error frame STARTUP_INCOMPLETE and "
            "the close 1011 \"Service startup incomplete\" named the cause (spec 1, step 9). The diagnosis reached "
            "every failing client.") in lines


# --- A5 and B3: a traffic that ENVIRONMENT splits ------------------------------------------------------------


def shared_world(directory: Path, profiles: dict[str, str]) -> SimpleNamespace:
    """The evidence of these profiles (name: TOML), their dd within the shared traffic, and its lessons. dd from
    local-debug (not run here) stands in as having isolated ENVIRONMENT, so no lesson contrasts it."""
    for name, text in profiles.items():
        (directory / f"{name}.toml").write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INVESTIGATION_PROFILES_DIR", str(directory))
        runs = run_profiles(sorted(profiles))
        stand_in = SimpleNamespace(minimal_difference=(SimpleNamespace(factor="env.ENVIRONMENT"),))
        isolation = cast(IsolationOverview, SimpleNamespace(isolations={"stand-in": stand_in}))
        evidence = Evidence(reference="local-debug", runs=runs, ledger=cast(Any, None), isolation=isolation,
                            reduction=None, variants=cast(Any, None))
        evidence = dataclasses.replace(evidence, traffic_isolations=shared_traffic_isolations(evidence))
        return SimpleNamespace(evidence=evidence, lessons=_shared_traffic_lessons(evidence))


@pytest.fixture(scope="module")
def gate_world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return shared_world(tmp_path_factory.mktemp("gate"), {
        name: GATE_PROFILE.format(name=name, environment=environment, k_service=k_service, secret=SECRET)
        for name, environment, k_service in (("gate-dev", "dev", ""),
                                             ("gate-staging", "staging", 'K_SERVICE = "netra-backend-staging"\n'))})


def test_the_gate_world_runs_as_the_spec_says(gate_world: SimpleNamespace) -> None:
    runs = gate_world.evidence.runs
    assert [c.close_reason for c in runs["gate-staging"].connections] == ["Service startup incomplete"] * 3
    assert not runs["gate-dev"].failures


def test_a_traffic_split_by_environment_gets_its_own_lesson_naming_the_traffic_first(
        gate_world: SimpleNamespace) -> None:
    # The gate closes come on each of mia's connections, the 1st among them: before the fix the lesson was skipped
    # (its earliest failure no later than gate-dev's 3 connections per user and instance). No cap refusal: no
    # connection ranking. K_SERVICE alone does not make the gate wait (spec 1, step 9 reads ENVIRONMENT only).
    (lesson,) = gate_world.lessons
    assert lesson == ("In the traffic that gate-dev and gate-staging replay, where the code runs (env) decides "
                      "whether it fails: it fails in gate-staging and passes in gate-dev; dd between them isolates "
                      "`ENVIRONMENT: 'dev' -> 'staging'` (1 pair) (trigger).")


@pytest.fixture(scope="module")
def gate_world_two_passing(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return shared_world(tmp_path_factory.mktemp("gate2"), {
        name: GATE_PROFILE.format(name=name, environment=environment, k_service=k_service, secret=SECRET)
        for name, environment, k_service in (("gate-dev", "dev", ""), ("gate-prod", "prod", ""),
                                             ("gate-staging", "staging", 'K_SERVICE = "netra-backend-staging"\n'))})


def test_a_lesson_names_every_passing_member_and_the_one_dd_started_from(
        gate_world_two_passing: SimpleNamespace) -> None:
    # "prod" is not a deployed environment to the route (spec 1 step 9: staging or production, lower-cased, not
    # mapped), so gate-prod passes like gate-dev; dd starts from the first passing member by name, gate-dev.
    (lesson,) = gate_world_two_passing.lessons
    assert ": it fails in gate-staging and passes in gate-dev and gate-prod; dd from gate-dev to each failing member "
    "isolates `ENVIRONMENT: 'dev' -> 'staging'` (1 pair)" in lesson


SECRET_PROFILE = """description = "{name}"
[env]
{env}
[[clients]]
name = "mia"
user_id = "400000000000000000001"
hold_s = 60.0
token_via = "subprotocol"
subprotocols = ["jwt-auth"]
"""


@pytest.fixture(scope="module")
def secret_world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """secret-unset: ENVIRONMENT unset (development) with JWT_SECRET_KEY and JWT_SECRET_STAGING, passes;
    secret-staging: ENVIRONMENT staging and no secret, a hard auth error (spec 5.3), closed 1008. The failure needs all
    three changes: staging with either secret finds it; development without one derives a secret (spec 5.3). dd's
    first split, by factor name, is (ENVIRONMENT) against (the two secrets): each half alone passes, and dd keeps the
    secrets' removal as its passing mixture, ENVIRONMENT as the difference that fails on top of it."""
    return shared_world(tmp_path_factory.mktemp("secret"), {
        "secret-unset": SECRET_PROFILE.format(name="secret-unset", env=f'JWT_SECRET_KEY = "{SECRET}"\n'
                                                                         f'JWT_SECRET_STAGING = "{SECRET}"'),
        "secret-staging": SECRET_PROFILE.format(name="secret-staging", env='ENVIRONMENT = "staging"')})


def test_the_trigger_pair_names_the_environment_dds_passing_mixture_already_holds(
        secret_world: SimpleNamespace) -> None:
    (line,) = _shared_traffic_line(secret_world.evidence.traffic_isolations)
    isolation = secret_world.evidence.traffic_isolations["secret-staging"]
    assert (f"secret-unset -> secret-staging: `ENVIRONMENT: unset -> 'staging'` ({isolation.tests_run} tests; dd's "
            # secret-staging sets neither secret: the mixture holds them unset (fixture), not set
            "passing mixture already holds JWT_SECRET_KEY and JWT_SECRET_STAGING unset, as in secret-staging);") in line


def test_the_auth_refusal_traffic_gets_a_lesson_with_the_held_secrets(secret_world: SimpleNamespace) -> None:
    # The 1008 close comes on mia's 1st connection: before the fix no lesson
    (lesson,) = secret_world.lessons
    assert lesson == ("In the traffic that secret-staging and secret-unset replay, where the code runs (env) decides "
                      "whether it fails: it fails in secret-staging and passes in secret-unset; dd between them "
                      "isolates `ENVIRONMENT: unset -> 'staging'` (1 pair); dd's passing mixture already holds "
                      "JWT_SECRET_KEY and JWT_SECRET_STAGING unset, as in secret-staging (trigger).")


# --- B5: the bypass refusal's cost is the increase over the original ----------------------------------------


def test_the_bypass_refusal_cost_counts_only_the_refusals_the_original_does_not_make() -> None:
    # Profile t, 12 connections. The original refuses 0-4 (five expired tokens, 1008); V5 refuses those five and
    # 5-7 (the suite's bypass tokens): 3 more, 8 in all.
    original = [failing(i, "old", 10.0 * i, AUTH) for i in range(5)]
    refused = original + [failing(i, "suite", 10.0 * i, AUTH) for i in range(5, 8)]
    report = report_of(("original", "V5"), [cell("t", "original", 12, *original), cell("t", "V5", 12, *refused)])
    assert _bypass_refusal_cost(report).startswith(
        " First give the E2E suite tokens that pass real validation (under V5, which refuses the bypass, 3 of the 12 "
        "connections of t (besides 5 the original closes 1008 too) close 1008).")


# --- B6: the Impact column's definition -----------------------------------------------------------------------


def test_the_impact_definition_says_the_column_dates_the_first_failing_connection_by_its_start() -> None:
    # startup's one connection opens at 0 s and closes after the gate's 30 s of polling (spec 1, step 9): the
    # column gives 0, the connection's start, as the notebook's definition must say.
    row = next(line for line in impact_table(evidence_of({"startup": startup_never()})).splitlines()
               if line.startswith("startup "))
    assert row.split()[5] == "0"
    assert startup_never().failures[0].ended_at_s >= 30.0
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "06_postmortem.ipynb").read_text())
    impact = next("".join(c["source"]) for c in notebook["cells"]
                  if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Impact"))
    assert "the virtual time at which the first failing\nconnection opened" in impact
    assert "the virtual time of the first failure" not in impact
