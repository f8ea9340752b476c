"""The contexts a run hands to the manager factory, and the backend's strict validation of them."""

from __future__ import annotations

import re

from investigation.analysis.contexts import contexts_of, strict_check
from investigation.profiles import load_profile
from investigation.simulate import simulate

# spec 3.1: thread_{op}_{ts}_{N}_{hex8}, run_{op}_{ts}_{N+1}_{hex8}, req_{op}_{ts}_{N+2}_{hex8}, op
# "websocket_factory" in the WebSocket path; the report's debug run shows thread_..._1_, run_..._2_, req_..._3_
GENERATED = r"{kind}_websocket_factory_(\d+)_{n}_[0-9a-f]{{8}}"


def test_the_local_debug_run_creates_the_ids_of_the_reports_debug_output() -> None:
    (context,) = contexts_of(load_profile("local-debug"))  # one connection, no start_agent
    stamps = {re.fullmatch(GENERATED.format(kind=kind, n=n), value)[1]  # type: ignore[index]
              for kind, n, value in (("thread", 1, context.thread_id), ("run", 2, context.run_id),
                                     ("req", 3, context.request_id))}
    assert len(stamps) == 1  # one timestamp for the three ids of one call
    assert context.strict == "pass"


def test_every_connection_that_reaches_the_factory_gives_a_context() -> None:
    profile = load_profile("staging-e2e")
    run = simulate(profile)
    reached = [c for c in run.connections if c.outcome("factory.validation") is not None]
    start_agents = sum(sum(c.tally("route.start_agent").values()) for c in run.connections)
    contexts = contexts_of(profile)
    # each connection's context, plus one per start_agent message (spec 1 step 12: each builds a context and
    # a manager, refused or not); staging-e2e.toml: only e2e-process-3 sends them, one 2 s into each connection
    assert start_agents > 0
    assert len(contexts) == len(reached) + start_agents
    assert {c.strict for c in contexts} == {"pass"}  # spec 4.4 passes generated ids and the e2e user ids


def test_strict_check_returns_the_validators_error_instead_of_raising() -> None:
    # spec 4.4 step 1: anything but a UserExecutionContext is an SSOT violation
    assert strict_check(object()).startswith("SSOT VIOLATION: Expected ")
