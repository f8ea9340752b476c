"""A refusal at the cap whose user still has connections open but whose managers were released under them.

Hand derivation (spec/backend.md) of tests/worlds/capopen/w1-released.toml: staging, one instance,
cap 5 (spec 4.2), one user. Five tabs open at 60 s (held until 960 s): count 1..5, each with its own
manager (spec 1 step 7). Two tabs open at 500 s (held 60 s): the first finds 5 and the cap runs
emergency cleanup (spec 4.2), which frees every manager of the user whose last activity is more than
5 minutes old, even with its socket open: the five 60 s managers (last activity 61 s, their one
message). The count history at 500 s: 4, 3, then the first late tab's own manager 4, then 3, 2, 1
(the rest of the five), then the second late tab's manager 2. The late tabs close at 560 s and keep
their managers (step 14: nothing is released on disconnect). Three tabs at 600 s (held 900 s): 3, 4, 5.
One more at 650 s finds 5 managers; emergency cleanup frees none (the oldest, at 500 s, is 150 s old)
and it is refused (1011, spec 4.1). At that refusal 8 of the user's connections are open (five from
60 s, three from 600 s), but only the three 600 s tabs still have their own manager registered; the
other 2 managers held belong to the two 500 s tabs, closed at 560 s: managers outlived their
connections, not the cap refusing a 6th concurrent connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from investigation.analysis.cap_refusals import Mechanism, refusals_at_cap, user_at_refusal
from investigation.analysis.isolate import FailureSignature
from investigation.profiles import load_profile_file, profile_from_dict
from investigation.simulate import simulate
from investigation.trace import RunResult

WORLD = Path(__file__).parent / "worlds" / "capopen" / "w1-released.toml"
CAP = 5  # spec 4.2: max_managers_per_user


@pytest.fixture(scope="module")
def released() -> RunResult:
    return simulate(load_profile_file(WORLD))


def test_the_world_runs_as_derived(released: RunResult) -> None:
    # the derivation above: the count history, and only the 650 s tab refused
    assert [(c.at_s, c.count) for c in released.manager_counts] == (
        [(60.0, n) for n in (1, 2, 3, 4, 5)] + [(500.0, n) for n in (4, 3, 4, 3, 2, 1, 2)]
        + [(600.0, n) for n in (3, 4, 5)])
    assert [(c.client, c.at_s, c.close_code) for c in released.failures] == [("u-extra", 650.0, 1011)]


def test_each_count_change_names_the_manager_it_registers_or_releases(released: RunResult) -> None:
    # the five 60 s tabs' managers are released at 500 s; each late tab's manager is registered then, and is never
    # released; each count change belongs to exactly one connection's manager
    owner = {c.manager_key: c.client for c in released.connections}
    changes = [(change.at_s, owner[change.key]) for change in released.manager_counts]
    tabs = {f"u-tab-{i}" for i in range(5)}
    assert {client for at_s, client in changes if at_s == 60.0} == tabs
    assert sorted(client for at_s, client in changes[5:12] if client in tabs) == sorted(tabs)
    assert {client for _, client in changes[5:12]} - tabs == {"u-late-0", "u-late-1"}
    assert [client for _, client in changes[12:]] == ["u-more-0", "u-more-1", "u-more-2"]


def test_the_refused_user_held_three_managers_of_open_connections_and_two_that_outlived_theirs(
    released: RunResult,
) -> None:
    (refused,) = released.failures
    state = user_at_refusal(released, refused)
    # 5 held; open with their own manager: the three 600 s tabs; open without one: the five 60 s tabs;
    # the 2 other managers (5 - 3) are the 500 s tabs', closed at 560 s
    assert (state.held, state.open_connections, state.open_without_manager) == (5, 3, 5)
    assert state.mechanism is Mechanism.OUTLIVED
    assert refusals_at_cap(released) == [state]
    assert FailureSignature.of(refused, released).mechanism is Mechanism.OUTLIVED


def test_seven_tabs_at_once_stay_concurrent() -> None:
    """7 tabs of one user at t=0, held 10 s: the first 5 each register a manager (spec 4.2), the 6th and 7th
    find 5 (emergency cleanup frees none: all active, none older than 5 minutes) and are refused; at each
    refusal the 5 managers are the 5 open tabs' own: the cap working as designed."""
    run = simulate(profile_from_dict("seven-at-once", {
        "description": "seven tabs at once", "env": {"ENVIRONMENT": "test"}, "instances": 1,
        "clients": [{"name": "tab", "user_id": "u-1", "connections": 7, "spacing_s": 0.0, "hold_s": 10.0}],
    }))
    states = refusals_at_cap(run)
    assert [(s.held, s.open_connections, s.open_without_manager) for s in states] == [(CAP, 5, 0)] * 2
    assert {s.mechanism for s in states} == {Mechanism.CONCURRENT}


def test_04_says_which_open_connections_still_had_their_managers(released: RunResult) -> None:
    # the derivation above: 5 managers, 3 open tabs with theirs, 5 open tabs whose managers were freed at 500 s
    from investigation.analysis.isolate import _state_words

    (refused,) = released.failures
    assert _state_words(user_at_refusal(released, refused), False) == (
        "5 managers and 3 of the user's connections still open there with their managers (and 5 more open whose "
        "managers were no longer registered): managers outlived their connections")


def test_06_counts_the_managers_against_the_connections_that_still_had_them(released: RunResult) -> None:
    # one refusal at the cap (650 s): 5 held, 3 connected with their managers, 5 connected without; no start_agent
    # message was sent (each tab sends one chat message), so 0 left behind; 5 held > 3: managers kept after close
    from types import SimpleNamespace

    from investigation.postmortem import _managers_against_connections

    evidence = SimpleNamespace(failing=["w1-released"], runs={"w1-released": released})
    first, rule = _managers_against_connections(evidence)  # type: ignore[arg-type]
    assert first.endswith(
        "held 5 managers on its instance, with 3 of its connections still connected there with their managers "
        "(5 more connected whose managers were no longer registered) and 0 managers created by its earlier "
        "`start_agent` messages there.")
    assert rule == ("- Managers outlive their connections: a connection's manager is not released when it closes "
                    "(spec 1, step 14).")
