"""simulate(): every shipped profile runs and prints the same bytes twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from investigation.profiles import list_profiles, load_profile, profile_from_dict
from investigation.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
PROFILE_NAMES = [profile.name for profile in list_profiles()]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_simulate_is_deterministic(name: str) -> None:
    profile = load_profile(name)
    first = json.dumps(simulate(profile).to_json_dict(), indent=2)
    second = json.dumps(simulate(profile).to_json_dict(), indent=2)
    assert first == second
    run = simulate(profile)
    assert sum(run.summary()["close_codes"].values()) == len(run.connections)
    assert [c.index for c in run.connections] == list(range(len(run.connections)))


def test_simulate_json_identical_across_processes() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "investigation.cli", "simulate", "staging-e2e", "--json"]
    outputs = [subprocess.run(command, capture_output=True, env=env, cwd=REPO, check=True).stdout for _ in range(2)]
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["profile"] == "staging-e2e"


def sixth_connection_profile(spacing_s: float) -> dict[str, object]:
    return {
        "description": "one developer reconnecting six times",
        "env": {"ENVIRONMENT": "development", "JWT_SECRET_KEY": "simulate-test-secret-0123456789abcdef"},
        "clients": [{"name": "dev", "user_id": "user-0001", "connections": 6, "spacing_s": spacing_s, "hold_s": 1.0}],
    }


def test_simulated_reconnects_hit_the_cap_within_five_minutes() -> None:
    """Spec 1 step 14 + 4.2: managers are never released, so the 6th connection within
    5 minutes gets 1011; spaced 61 s apart the first manager is stale (> 300 s) by the 6th."""
    quick = simulate(profile_from_dict("quick", sixth_connection_profile(2.0)))
    assert [c.close_code for c in quick.connections] == [None] * 5 + [1011]
    assert quick.connections[-1].close_reason == "Factory SSOT validation failed"
    spaced = simulate(profile_from_dict("spaced", sixth_connection_profile(61.0)))
    assert [c.close_code for c in spaced.connections] == [None] * 6


def test_simulated_bad_token_closes_1008() -> None:
    data = sixth_connection_profile(1.0)
    data["clients"] = [{"name": "c", "user_id": "user-0001", "token": "bad_signature"}]
    run = simulate(profile_from_dict("bad", data))
    assert (run.connections[0].close_code, run.connections[0].close_reason) == (1008, "SSOT Auth failed")
    assert run.summary() == {"close_codes": {"1008": 1, "1011": 0, "open": 0}}


def test_the_module_docstring_shows_what_staging_e2e_gives() -> None:
    """The usage example in simulate's docstring states staging-e2e's summary: it must be the run's."""
    import investigation.simulate as module

    example = next(line for line in (module.__doc__ or "").splitlines() if "run.summary()" in line)
    stated = json.loads(example.partition("#")[2])
    assert stated == simulate(load_profile("staging-e2e")).summary()


def test_a_run_on_virtual_time_makes_its_tasks_with_the_given_factory() -> None:
    """local-debug plans 1 connection (its profile: connections = 1): run_plan starts it as a task
    of its own, so the factory makes at least that task, and the run's result holds connection 0."""
    import asyncio

    from investigation.backend.variants import get_variant
    from investigation.simulate import SimulationRun, run_on_virtual_time

    coroutines: list[str] = []

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        coroutines.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **options)

    profile = load_profile("local-debug")
    run = run_on_virtual_time(lambda clock: SimulationRun(profile, get_variant("original"), clock), counting_factory)
    assert "SimulationRun._connect" in coroutines
    assert sorted(run.results) == [0]


def test_simulate_runs_from_inside_a_running_event_loop() -> None:
    """A notebook cell runs inside the kernel's event loop: simulate leaves it by itself (its
    callers need no wrapper) and gives the run it gives outside one."""
    import asyncio

    profile = load_profile("staging-e2e")

    async def in_a_cell() -> dict[str, Any]:
        return simulate(profile).to_json_dict()

    assert asyncio.run(in_a_cell()) == simulate(profile).to_json_dict()
