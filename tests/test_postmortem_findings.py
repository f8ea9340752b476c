"""Postmortem sentences that only profile sets other than the shipped one expose (audit 13).

The evidence is built by hand, small and without the shipped analyses (no ledger, variants or isolation of
data/profiles): only what the sections under test read. Runs, from profiles made here (spec-derived outcomes):

- ``reconnects`` (ENVIRONMENT test): user test-user-12345 reconnects 7 times, 10 s apart, 4 s each, to one
  instance; nothing releases a manager on disconnect (spec 1 step 14), so with the cap of 5 (spec 4.2) the 6th
  and 7th connections (50 s, 60 s) close 1011 after a FACTORY_INIT_FAILED frame whose details.error_message holds
  the cap's RuntimeError text (spec 1 step 8).
- ``auth`` (ENVIRONMENT staging): client ``anonymous`` (planned user id ``anon``) sends no token at 0 s: NO_TOKEN
  (spec 5.1); client ``stale`` (planned user id ``stale-user``) sends an expired token at 5 s: VALIDATION_FAILED
  (spec 5.3, exp verified). Both close 1008 after an error frame whose error_code and error_message are the auth
  failure's (spec 1 step 5, 1.1); the server never identifies either user.
- the reference: one connection of test-user-12345, which passes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from investigation.analysis.isolate import IsolationOverview
from investigation.postmortem import (
    Evidence,
    _users_hit_short,
    detection_section,
    impact_section,
    impact_table,
    lessons,
    root_cause_section,
)
from investigation.profiles import profile_from_dict
from investigation.simulate import simulate
from investigation.trace import RunResult

USER = "test-user-12345"
STAGING = {"ENVIRONMENT": "staging", "JWT_SECRET_STAGING": "test-only-staging-secret-0123456789abcdef"}
"""Staging with a usable secret (spec 5.3: at least 32 characters), where no E2E flag lets a token bypass
validation (spec 5.2; a test environment's process does)."""


def profile_run(name: str, clients: list[dict[str, Any]], env: dict[str, str]) -> RunResult:
    return simulate(profile_from_dict(name, {"description": name, "env": env, "clients": clients}), "original")


def reconnects(name: str, connections: int, environment: str = "test") -> RunResult:
    return profile_run(name, [{"name": "tab", "user_id": USER, "connections": connections, "spacing_s": 10.0,
                               "hold_s": 4.0}], {"ENVIRONMENT": environment})


def auth_failures() -> RunResult:
    return profile_run("auth", [
        {"name": "anonymous", "user_id": "anon", "token": "none", "start_s": 0.0, "hold_s": 2.0},
        {"name": "stale", "user_id": "stale-user", "token": "expired", "start_s": 5.0, "hold_s": 2.0},
    ], STAGING)


def evidence_of(runs: dict[str, RunResult], reference: str = "local-debug", isolations: Any = None) -> Evidence:
    """Evidence with only runs (and, for the lessons, stand-in isolations); the other analyses are not read."""
    isolation = cast(IsolationOverview, SimpleNamespace(isolations=isolations or {}))
    return Evidence(reference=reference, runs=runs, ledger=cast(Any, None), isolation=isolation, reduction=None,
                    variants=cast(Any, None))


def two_mechanisms() -> Evidence:
    return evidence_of({"local-debug": reconnects("local-debug", 1), "reconnects": reconnects("reconnects", 7),
                        "auth": auth_failures()})


def test_detection_counts_the_auth_failures_frames_which_carry_their_cause_at_the_top_level() -> None:
    # 4 failing connections (module docstring): reconnects' 6th and 7th told in details.error_message (spec 1
    # step 8); auth's two told by error_code and error_message (spec 1 step 5): the recorded failure is
    # "<error_code>: <error_message>", "NO_TOKEN: No authentication token provided" (spec 5.1) for the first
    # (failures in profile-name order: auth before reconnects, then start order).
    text = detection_section(two_mechanisms()).data.splitlines()
    assert ("- 4 of 4 failing connections were sent, before the close, an error frame carrying the innermost "
            "cause's full text: 2 in its details.error_message (spec 1, step 8; e.g. \"User test-user-12345 has "
            "reached the maximum number of WebSocket managers (5)\") and 2 in its error_code and error_message "
            "(spec 1, step 5, and 1.1; e.g. \"NO_TOKEN: No authentication token provided\"): the diagnosis reached "
            "every failing client; the close reason did not carry it.") in text


def test_impact_counts_only_users_the_server_identified() -> None:
    # Users hit: test-user-12345 (the cap's two closes) only; anon and stale-user are the clients' planned ids,
    # which authentication never confirmed: 2 failing connections of an unidentified user.
    evidence = two_mechanisms()
    assert impact_section(evidence).data.startswith(
        "4 connections failed, in 2 profiles (auth, reconnects); 1 distinct user id hit, besides 2 failing "
        "connections whose user the server never established (authentication found no valid token: NO_TOKEN (1), "
        "VALIDATION_FAILED (1); the user ids their clients were planned with are not counted). ")
    # auth: 2 connections, 2 failing, no identified user, none hit
    auth_row = next(line for line in impact_table(evidence).splitlines() if line.startswith("auth "))
    assert auth_row.split()[:5] == ["auth", "2", "2", "0", "0"]


def test_root_cause_gives_the_separating_point_per_deciding_decision() -> None:
    # auth's compared connection (its first failing: anonymous, no token) is decided at auth.token_source=none
    # (spec 5.1, adverse in trace.ADVERSE_OUTCOMES) and never reaches the factory; reconnects' at
    # factory.manager_cap=exceeded. No point is reached by both with outcomes the passing local-debug (test,
    # bearer token, cap below) never takes: route.environment is test in reconnects too, the factory's points
    # auth never reaches. Per decision, the earliest branch (route.environment, the ENVIRONMENT value read, only
    # after the branches: divergence_findings.separating_points): route.e2e_detected for auth (no: staging without
    # an E2E flag, spec 4.3; yes in the test processes of local-debug and reconnects), and factory.manager_cap for
    # reconnects (exceeded against below: every earlier point it shares with local-debug).
    text = root_cause_section(two_mechanisms()).data.splitlines()
    assert text[-1] == (
        "- No single decision point separates every failing profile from the passing ones (a point counts only "
        "where every failing profile's compared connection reaches it): their compared connections were decided "
        "by 2 different decisions. Earliest separating point per deciding decision: `auth.token_source=none` "
        "(auth): `route.e2e_detected` (failing: no; passing: yes); `factory.manager_cap=exceeded` "
        "(reconnects): `factory.manager_cap` (failing: exceeded; passing: below).")


def stand_in_isolation(point: str) -> SimpleNamespace:
    """An isolated pair that first parts at ``point``, with no environment factor in its minimal difference."""
    return SimpleNamespace(isolated_divergence=SimpleNamespace(divergence=SimpleNamespace(point=point)),
                           minimal_difference=())


def test_the_first_difference_lesson_says_where_its_dd_ran() -> None:
    # Reference development (ENVIRONMENT development) against reconnects (test): they first part at
    # route.environment; the pair dd isolated parts at factory.manager_cap. Chapter 04 holds dd from local-debug
    # only (notebook_grid.ISOLATION_REFERENCE), so from development the dd is this notebook's own.
    isolations = {"reconnects": stand_in_isolation("factory.manager_cap")}
    runs = {"development": reconnects("development", 1, "development"), "reconnects": reconnects("reconnects", 7)}
    text = lessons(evidence_of(runs, "development", isolations)).data
    assert ("dd's isolated pairs first part at factory.manager_cap in 1 of 1 pair (the dd ran here from "
            "`development`; chapter 04 runs dd from `local-debug`).") in text
    runs = {"local-debug": reconnects("local-debug", 1, "development"), "reconnects": reconnects("reconnects", 7)}
    assert "factory.manager_cap in 1 of 1 pair (chapter 04)." in lessons(evidence_of(runs, "local-debug",
                                                                                     isolations)).data


def startup_never() -> RunResult:
    # Staging whose startup never completes: the one connection waits at the gate and closes 1011 "Service
    # startup incomplete" (spec 1 step 9), an error frame and a close with no exception behind them.
    return simulate(profile_from_dict("startup", {
        "description": "startup never completes", "env": STAGING, "startup": {"complete": False},
        "clients": [{"name": "tab", "user_id": USER, "start_s": 0.0, "hold_s": 60.0}]}), "original")


def test_detection_counts_the_failures_closed_without_an_exception() -> None:
    # reconnects: 2 cap refusals, innermost RuntimeError (spec 4.2); startup: 1 gate close, no cause chain.
    evidence = evidence_of({"local-debug": reconnects("local-debug", 1), "reconnects": reconnects("reconnects", 7),
                            "startup": startup_never()})
    first = detection_section(evidence).data.splitlines()[0]
    assert "the innermost causes behind that close were RuntimeError (2), no exception (1)," in first


def test_the_summary_counts_users_as_the_server_identified_them() -> None:
    # two_mechanisms: the cap's two closes are test-user-12345's (identified); auth's two closes never identified
    # a user (module docstring), so 1 user, and the 2 connections apart.
    assert _users_hit_short(two_mechanisms().failures) == (
        "1 distinct user hit, besides 2 failing connections whose user the server never established")
    assert _users_hit_short(reconnects("reconnects", 7).failures) == "1 distinct user hit"
