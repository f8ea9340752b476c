"""Which user authentication established for a connection, counted one way by 01 and 06 (audit 13).

Runs from profiles made here, outcomes derived from spec/backend.md:

- ``placeholder`` (ENVIRONMENT staging, a 32+ character JWT_SECRET_STAGING, spec 5.3):
  - ``demo-account`` (user ``demo``, an auth-service token, 0 s): the token is valid (5.3), so authentication
    established user ``demo``; building its context (5.4) fails: ``demo`` is a forbidden placeholder value
    (section 2, step 2), and the one retry (5.4 step 4) uses ``demo`` again and fails the same way ->
    WEBSOCKET_AUTH_ERROR, close 1008 (5.4 step 5);
  - ``stale-tab`` (user ``104729384756102938475``, an expired token, 5 s): exp is verified (5.3) -> VALIDATION_FAILED,
    close 1008: no user was established;
  - ``anonymous`` (user ``anon``, no token, 10 s): NO_TOKEN (5.1), close 1008: no user was established;
  - ``real-user`` (user ``112837465019283746501``, a valid token, 15 s): authenticated, its context built, served.
- ``bypass`` (staging; header ``X-E2E-Test: true``, whose name contains "e2e" and whose value contains "true",
  so the E2E bypass applies, 5.2): the tokens have two dots and their raw text contains neither
  "staging-e2e-user" nor "test-user", so the bypass user is the payload's ``sub``:
  - ``qa-runner`` (planned user ``qa-runner``, claims sub ``demo``, 0 s): bypass user ``demo``, refused at
    context creation as above -> 1008;
  - ``e2e-worker`` (planned user ``e2e-worker``, claims sub ``e2e-payload-user``, 5 s): bypass user
    ``e2e-payload-user``, which no validation refuses (no placeholder, relaxed mode in staging, 4.3): served.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from investigation.postmortem import Evidence, _users_hit_short, impact_section
from investigation.profiles import PROFILES_DIR_ENV, load_profile
from investigation.reproduce import run_overview
from investigation.simulate import simulate
from investigation.trace import RunResult, identified_users, unidentified

SECRET = "test-only-staging-secret-0123456789abcdef"
STAGING_ENV = f'[env]\nENVIRONMENT = "staging"\nJWT_SECRET_STAGING = "{SECRET}"\n'
REAL_USER = "112837465019283746501"
PLACEHOLDER_PROFILE = f"""description = "placeholder, expired and missing tokens next to a real user"
{STAGING_ENV}
[[clients]]
name = "demo-account"
user_id = "demo"
hold_s = 2.0

[[clients]]
name = "stale-tab"
user_id = "104729384756102938475"
token = "expired"
start_s = 5.0
hold_s = 2.0

[[clients]]
name = "anonymous"
user_id = "anon"
token = "none"
start_s = 10.0
hold_s = 2.0

[[clients]]
name = "real-user"
user_id = "{REAL_USER}"
start_s = 15.0
hold_s = 2.0
"""
BYPASS_PROFILE = f"""description = "E2E bypass users taken from the token payload"
{STAGING_ENV}
[[clients]]
name = "qa-runner"
claims = {{sub = "demo"}}
headers = {{"X-E2E-Test" = "true"}}
hold_s = 2.0

[[clients]]
name = "e2e-worker"
claims = {{sub = "e2e-payload-user"}}
headers = {{"X-E2E-Test" = "true"}}
start_s = 5.0
hold_s = 2.0
"""


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, RunResult]:
    """Both profiles (module docstring), from a directory exported as ``investigation run`` exports it."""
    (tmp_path / "placeholder.toml").write_text(PLACEHOLDER_PROFILE)
    (tmp_path / "bypass.toml").write_text(BYPASS_PROFILE)
    monkeypatch.setenv(PROFILES_DIR_ENV, str(tmp_path))
    return {name: simulate(load_profile(name), "original") for name in ("placeholder", "bypass")}


def by_client(run: RunResult) -> dict[str, Any]:
    return {connection.client: connection for connection in run.connections}


def test_a_placeholder_user_with_a_valid_token_is_identified_though_refused(runs: dict[str, RunResult]) -> None:
    connections = by_client(runs["placeholder"])
    demo = connections["demo-account"]
    assert demo.close_code == 1008 and demo.outcome("auth.result") == "WEBSOCKET_AUTH_ERROR"
    assert demo.identified_user() == "demo"
    assert connections["real-user"].identified_user() == REAL_USER


def test_a_rejected_or_missing_token_establishes_no_user(runs: dict[str, RunResult]) -> None:
    connections = by_client(runs["placeholder"])
    assert connections["stale-tab"].identified_user() is None
    assert connections["anonymous"].identified_user() is None
    # failing: demo (identified), stale-tab and anonymous (not)
    assert identified_users(runs["placeholder"].failures) == {"demo"}


def test_an_e2e_bypass_connection_is_identified_as_its_payload_user(runs: dict[str, RunResult]) -> None:
    connections = by_client(runs["bypass"])
    assert connections["qa-runner"].close_code == 1008
    assert connections["qa-runner"].identified_user() == "demo"
    assert connections["e2e-worker"].close_code is None
    assert connections["e2e-worker"].identified_user() == "e2e-payload-user"
    assert identified_users(runs["bypass"].connections) == {"demo", "e2e-payload-user"}


def test_the_one_rule_gives_the_users_established_and_the_connections_of_none(runs: dict[str, RunResult]) -> None:
    # placeholder (module docstring): demo (valid token, refused at its context) and the real user are established;
    # stale-tab (expired) and anonymous (no token) are nobody's, in run order (5 s, 10 s)
    placeholder = runs["placeholder"]
    assert identified_users(placeholder.connections) == {"demo", REAL_USER}
    assert [c.client for c in unidentified(placeholder.connections)] == ["stale-tab", "anonymous"]
    # bypass: both payload users established, no connection of nobody's
    assert identified_users(runs["bypass"].connections) == {"demo", "e2e-payload-user"}
    assert unidentified(runs["bypass"].connections) == []


def test_01_counts_the_users_authentication_established(runs: dict[str, RunResult]) -> None:
    # placeholder: demo and the real user (2); stale-tab and anonymous established none (2 connections).
    text = run_overview(runs["placeholder"]).data
    assert ("opened **4 connections** from 4 clients (2 distinct users, besides 2 connections whose user the "
            "server never established) on 1 backend instance") in text
    # bypass: demo and e2e-payload-user, the payloads' users, not the planned qa-runner and e2e-worker.
    assert "from 2 clients (2 distinct users) on" in run_overview(runs["bypass"]).data


def evidence_of(runs: dict[str, RunResult]) -> Evidence:
    """Evidence with only runs; the other analyses are not read by the sections under test."""
    isolation = cast(Any, SimpleNamespace(isolations={}))
    return Evidence(reference="local-debug", runs=runs, ledger=cast(Any, None), isolation=isolation,
                    reduction=None, variants=cast(Any, None))


def test_06_counts_identified_but_refused_users_and_words_the_others(runs: dict[str, RunResult]) -> None:
    # Failing: placeholder's demo (identified), stale-tab (VALIDATION_FAILED), anonymous (NO_TOKEN); bypass's
    # qa-runner as demo (identified). Distinct users hit: demo only (in 2 profiles); 2 connections established
    # no user.
    evidence = evidence_of(runs)
    assert _users_hit_short(evidence.failures) == (
        "1 distinct user hit, besides 2 failing connections whose user the server never established")
    assert impact_section(evidence).data.startswith(
        "4 connections failed, in 2 profiles (bypass, placeholder); 1 distinct user id in 2 user-profile pairs "
        "(demo in 2 profiles) hit, besides 2 failing connections whose user the server never established "
        "(authentication found no valid token: NO_TOKEN (1), VALIDATION_FAILED (1); the user ids their clients "
        "were planned with are not counted). ")
