"""Tests of investigation.analysis.cap_refusals: what a refused user held at its refusal.

Hand derivation (spec/backend.md) of ``startup_leak_profile``: Cloud Run staging whose startup never
completes, one real user (no E2E header) connecting every 35 s from 0 s, 7 times, on one instance.
Each connection creates its manager (spec 1 step 7) and then waits 30 s at the startup gate (step 9)
and is closed 1011 "Service startup incomplete"; the manager stays registered and active (step 14).
Nothing frees one before 210 s: the background sweep (300 s interval in staging, 4.2) first runs at
300 s, and emergency cleanup frees only managers older than 5 minutes or inactive (4.2). So the
user's count is 1, 2, 3, 4, 5 after the connections at 0, 35, 70, 105, 140 s; the one at 140 s found
4 before its own manager (factory.manager_cap=below); those at 175 s and 210 s find 5 and are refused
(exceeded -> 1011 "Factory SSOT validation failed", spec 4.1, 1 step 8).
"""

from __future__ import annotations

import pytest

from investigation.analysis.cap_refusals import (
    Mechanism,
    managers_held_before,
    refusals_at_cap,
    user_at_refusal,
)
from investigation.profiles import Profile, profile_from_dict
from investigation.simulate import simulate
from investigation.trace import ConnectionResult, Decision, ManagerCount, RunResult
from tests.conftest import CLOUD_RUN_STAGING_ENV

STAGING_ENV = CLOUD_RUN_STAGING_ENV


def startup_leak_profile() -> Profile:
    return profile_from_dict("startup-leak", {
        "description": "startup never completes; one user retries every 35 s",
        "env": STAGING_ENV,
        "startup": {"complete": False},
        "clients": [{"name": "retrying-user", "user_id": "109283746501928374650", "connections": 7,
                     "start_s": 0.0, "spacing_s": 35.0, "hold_s": 60.0}],
    })


@pytest.fixture(scope="module")
def startup_leak() -> RunResult:
    return simulate(startup_leak_profile())


def test_the_startup_gate_closes_leave_their_managers_and_the_cap_refuses_the_6th_and_7th(
    startup_leak: RunResult,
) -> None:
    # the derivation above: 5 startup-gate closes, then 2 cap refusals, every connection failing
    reasons = [c.close_reason for c in startup_leak.connections]
    assert reasons == ["Service startup incomplete"] * 5 + ["Factory SSOT validation failed"] * 2
    assert startup_leak.connections[4].outcome("factory.manager_cap") == "below"


def test_a_connection_s_own_manager_is_not_counted_as_held_before_it(startup_leak: RunResult) -> None:
    # held before each connection: 0, 1, 2, 3, 4 (its own manager left out), then 5 and 5 (refused, none of its own)
    assert [managers_held_before(startup_leak, c) for c in startup_leak.connections] == [0, 1, 2, 3, 4, 5, 5]


def test_only_the_refused_connections_count_as_refusals_at_the_cap(startup_leak: RunResult) -> None:
    # #4 at 140 s got the 5th manager itself: not at the cap; #5 and #6 met 5 managers and no open
    # connection (each earlier one was closed 30 s after it started, spec 1 step 9): managers outlived them
    states = refusals_at_cap(startup_leak)
    assert [(s.held, s.open_connections) for s in states] == [(5, 0), (5, 0)]
    assert {s.mechanism for s in states} == {Mechanism.OUTLIVED}
    assert user_at_refusal(startup_leak, startup_leak.connections[4]).mechanism is Mechanism.BELOW_CAP


def _registering(index: int, at_s: float, key: str) -> ConnectionResult:
    """A connection of user u on instance 0 whose manager (isolation key ``key``) the factory registered."""
    return ConnectionResult(index=index, client=f"c{index}", instance=0, user_id="u", at_s=at_s, close_code=None,
                            close_reason=None, decisions=(Decision("factory.manager_cap", "below"),), cause_chain=(),
                            ended_at_s=100.0, manager_key=key)


def test_a_manager_another_connection_registers_at_the_same_instant_counts_as_held() -> None:
    """Two connections of u start at 10 s. b's manager is registered at 10 s; a's auth met the retry ladder
    (spec 5.3, staging: a first wait of 0.5 s), so a's own manager is registered only at 10.5 s. Three older
    managers (0, 1, 2 s) are held by connections still open. Held before a: those registered at or before 10 s,
    m0, m1, m2 and b's = 4 (a's own comes later, so there is nothing of a's to leave out). Held before b: m0, m1,
    m2 = 3 (its own, registered at its instant, left out)."""
    older = [_registering(i, float(i), f"u:m{i}") for i in range(3)]
    a, b = _registering(3, 10.0, "u:a"), _registering(4, 10.0, "u:b")
    changes = [ManagerCount(float(i), 0, "u", i + 1, f"u:m{i}") for i in range(3)]
    changes += [ManagerCount(10.0, 0, "u", 4, "u:b"), ManagerCount(10.5, 0, "u", 5, "u:a")]
    run = RunResult("hand-built", "original", (*older, a, b), tuple(changes))
    assert (managers_held_before(run, a), managers_held_before(run, b)) == (4, 3)
