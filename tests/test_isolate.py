"""Tests of investigation.analysis.isolate: dd over factor changes, ddmin over traffic,
the first divergence, the JSON contract, and faults injected into the backend.

Expected values come from spec/backend.md: a user's sixth manager in one process
exceeds the cap of 5 (4.2) because managers are never released on disconnect (14);
the capacity RuntimeError becomes a FactoryInitializationError and a 1011 close (4.1, 1.2).
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from investigation.analysis.delta import Outcome
from investigation.analysis.divergence import Divergence
from investigation.analysis.hypotheses import in_environment_of
from investigation.analysis.isolate import (
    ABSENT,
    FactorChange,
    FailureSignature,
    IsolationError,
    IsolationOverview,
    _MixtureTester,
    align_with_nearest,
    apply_changes,
    check_runs,
    factor_changes,
    failing_profiles,
    isolate_profiles,
    isolation_key_result,
    isolation_verdicts,
    minimal_failing_traffic,
    traffic_subset_profile,
)
from investigation.backend import factory, ids, route
from investigation.backend import runtime as backend_runtime
from investigation.postmortem import Evidence, trigger_section
from investigation.profiles import Profile, flatten_profile, load_profile, profile_from_dict, unflatten_profile
from investigation.simulate import simulate
from investigation.trace import CauseLink, ConnectionResult, Decision, RunResult
from investigation.traffic import connection_plan

JSON_KEYS = ["passing", "failing", "factors", "minimal_difference", "tests_run", "failure", "first_divergence"]
CAP = 5  # spec 4.2: max_managers_per_user


@pytest.fixture(scope="module")
def local_debug() -> Profile:
    return load_profile("local-debug")


@pytest.fixture(scope="module")
def staging_e2e() -> Profile:
    return load_profile("staging-e2e")


@pytest.fixture(scope="module")
def e2e_isolation(local_debug: Profile, staging_e2e: Profile) -> Any:
    return isolate_profiles(local_debug, staging_e2e)


def varied(profile: Profile, name: str, **changes: object) -> Profile:
    """``profile`` with factor values replaced (keys use __ for '.', e.g. env__REGION)."""
    factors = flatten_profile(profile)
    for key, value in changes.items():
        factors[_factor_path(key)] = value
    return unflatten_profile(name, factors, base=profile)


def _factor_path(key: str) -> str:
    path = key.replace("__", ".")
    return path.replace("clients0.", "clients[0].")


def connection(
    index: int, code: int | None, chain: tuple[str, ...] = (), decisions: tuple[tuple[str, str], ...] = ()
) -> ConnectionResult:
    return ConnectionResult(
        index=index, client="c", instance=0, user_id="u", at_s=float(index), close_code=code,
        close_reason=None if code is None else "reason", decisions=tuple(Decision(p, o) for p, o in decisions),
        cause_chain=tuple(CauseLink(kind, "m") for kind in chain),
    )


# --- the oracle -----------------------------------------------------------------------------


def test_oracle_is_pass_without_failures_fail_on_same_failure_unresolved_on_another() -> None:
    signature = FailureSignature(1011, "RuntimeError")
    same = connection(1, 1011, ("FactoryInitializationError", "RuntimeError"))
    other_cause = connection(2, 1011, ("FactoryInitializationError", "ValueError"))
    auth_failure = connection(3, 1008, ("AuthenticationFailure",))
    open_connection = connection(0, None)

    def run(*connections: ConnectionResult) -> RunResult:
        return RunResult("p", "original", connections)

    assert signature.outcome(run(open_connection)) is Outcome.PASS
    assert signature.outcome(run(open_connection, same)) is Outcome.FAIL
    assert signature.outcome(run(other_cause, auth_failure)) is Outcome.UNRESOLVED
    assert signature.outcome(run(auth_failure, same)) is Outcome.FAIL


def test_factor_changes_cover_values_that_differ_and_factors_only_one_side_sets() -> None:
    passing = {"env.A": "1", "env.B": "x", "seed": 0}
    failing = {"env.A": "1", "env.C": "y", "seed": 3}
    changes = factor_changes(passing, failing)
    assert changes == [
        FactorChange("env.B", "x", ABSENT),
        FactorChange("env.C", ABSENT, "y"),
        FactorChange("seed", 0, 3),
    ]
    assert apply_changes(passing, changes) == failing
    assert apply_changes(passing, []) == passing


def test_factor_changes_tell_a_factor_set_to_none_from_an_absent_one() -> None:
    # "that only one side sets": setting a factor to None is a change from not setting it
    assert factor_changes({"env.A": None}, {}) == [FactorChange("env.A", None, ABSENT)]
    assert factor_changes({}, {"env.A": None}) == [FactorChange("env.A", ABSENT, None)]


def traced(index: int, *decisions: tuple[str, str]) -> ConnectionResult:
    """Open connection ``index`` after ``decisions``."""
    return connection(index, None, decisions=decisions)


FAILING_TRACE = (("route.environment", "staging"), ("auth.token_source", "bearer"), ("factory.manager_cap", "reached"))


def test_align_with_nearest_prefers_the_longest_agreement_and_then_the_first_started() -> None:
    token_none = traced(0, ("route.environment", "staging"), ("auth.token_source", "none"))
    cap_ok = [traced(i, *FAILING_TRACE[:2], ("factory.manager_cap", "ok")) for i in (1, 2)]
    aligned = align_with_nearest(RunResult("p", "original", (token_none, *cap_ok)), traced(5, *FAILING_TRACE))
    # #1 and #2 agree up to factory.manager_cap, #0 only up to auth.token_source: #1 started first
    assert aligned.passing_connection.index == 1
    assert aligned.divergence == Divergence("factory.manager_cap", "ok", "reached")


def test_check_runs_refuses_a_passing_run_with_a_single_failing_connection() -> None:
    refused = connection(1, 1011)
    passing = RunResult("almost", "original", (connection(0, None), refused))
    failing = RunResult("failing", "original", (connection(0, None), refused))
    with pytest.raises(IsolationError, match="almost: passing: does not pass under variant original: 1 of 2"):
        check_runs(passing, failing)
    assert check_runs(RunResult("ok", "original", (connection(0, None),)), failing) == refused


def test_check_runs_refuses_a_passing_run_without_connections() -> None:
    """A passing profile with no traffic passes vacuously, but the first divergence needs a passing
    connection to align the failure with: one line naming the side, not align_with_nearest's ValueError."""
    failing = RunResult("failing", "original", (connection(0, 1011),))
    with pytest.raises(IsolationError, match="^idle: passing: opens no connection"):
        check_runs(RunResult("idle", "original", ()), failing)


def test_a_mixture_that_is_not_a_valid_profile_is_unresolved(local_debug: Profile) -> None:
    signature = FailureSignature(1011, "RuntimeError")
    tester = _MixtureTester(flatten_profile(local_debug), local_debug, signature, "original")
    assert tester((FactorChange("instances", 1, 0),)) is Outcome.UNRESOLVED  # instances must be >= 1
    assert tester(()) is Outcome.PASS


def test_align_with_nearest_prefers_an_identical_trace() -> None:
    cap_ok = traced(0, *FAILING_TRACE[:2], ("factory.manager_cap", "ok"))
    aligned = align_with_nearest(RunResult("p", "original", (cap_ok, traced(1, *FAILING_TRACE))), traced(5, *FAILING_TRACE))
    assert (aligned.passing_connection.index, aligned.divergence) == (1, None)


def test_a_change_shows_absent_as_null_and_redacts_secrets() -> None:
    secret = "test-only-staging-secret-0123456789abcdef"
    change = FactorChange("env.JWT_SECRET_KEY", ABSENT, secret)
    as_json = change.to_json_dict()
    assert as_json["passing"] is None
    assert secret not in json.dumps(as_json) and secret not in change.describe()


def test_a_client_change_names_the_client_of_each_profile(local_debug: Profile, staging_e2e: Profile) -> None:
    """local-debug's clients[0] is debug-script with 1 connection, staging-e2e's is e2e-process-1 with 12;
    staging-cloud-run's clients[5] is user-e-mobile with 6 connections, and local-debug has no clients[5]."""
    from investigation.analysis.isolate import ChangeSides

    e2e = ChangeSides.of(local_debug, staging_e2e)
    count = FactorChange("clients[0].connections", 1, 12, e2e)
    assert count.describe() == (
        "client debug-script of local-debug: 12 connections instead of 1, the value of staging-e2e's client "
        "e2e-process-1 at the same index"
    )
    cloud_run = ChangeSides.of(local_debug, load_profile("staging-cloud-run"))
    added = FactorChange("clients[5].connections", ABSENT, 6, cloud_run)
    assert added.describe() == "client user-e-mobile of staging-cloud-run: 6 connections (absent from local-debug)"
    same = ChangeSides.of(local_debug, varied(local_debug, "busy", clients0__connections=12))
    assert FactorChange("clients[0].connections", 1, 12, same).describe() == (
        "client debug-script: 12 connections instead of 1"
    )
    assert FactorChange("env.ENVIRONMENT", ABSENT, "staging", e2e).describe() == "ENVIRONMENT: unset -> 'staging'"
    assert count.raw() == "clients[0].connections: 1 -> 12"
    assert count == FactorChange("clients[0].connections", 1, 12)  # the sides only word the change


def test_a_readable_change_still_redacts_secrets(local_debug: Profile, staging_e2e: Profile) -> None:
    from investigation.analysis.isolate import ChangeSides

    token = "eyJhbGciOiJIUzI1NiJ9.test-only-payload.signature0123"
    change = FactorChange("clients[0].headers.Authorization", ABSENT, f"Bearer {token}",
                          ChangeSides.of(local_debug, staging_e2e))
    assert change.describe().startswith("client debug-script of local-debug: header Authorization '<redacted: ")
    assert token not in change.describe()


def test_chapter_04_texts_word_the_minimal_difference_by_client_name(e2e_isolation: Any) -> None:
    assert e2e_isolation.minimal_difference[0].describe() == (
        "client debug-script of local-debug: 12 connections instead of 1, the value of staging-e2e's client "
        "e2e-process-1 at the same index"
    )
    assert e2e_isolation.to_json_dict()["minimal_difference"] == [
        {"factor": "clients[0].connections", "passing": 1, "failing": 12}
    ]
    assert "  client debug-script of local-debug: 12 connections instead of 1, the value of staging-e2e's client " \
           "e2e-process-1 at the same index [clients[0].connections: 1 -> 12]" in e2e_isolation.to_text().splitlines()


def test_the_text_output_says_what_dds_passing_mixture_already_gives_the_client(e2e_isolation: Any) -> None:
    """12 connections at local-debug's spacing 0 are 12 concurrent ones (the cap as designed); the failure dd
    isolated has e2e-process-1's spacing_s 14 and hold_s 4 (staging-e2e.toml) on the passing side already."""
    lines = e2e_isolation.to_text().splitlines()
    difference = lines.index("minimal failure-inducing difference:")
    assert lines[difference + 2] == (
        "  applied to dd's passing mixture, which already gives that client staging-e2e's spacing_s 14.0 and "
        "hold_s 4.0 (and its headers, messages, name)")


def test_the_isolated_pair_names_a_mixture_client_by_the_profile_it_comes_from(local_debug: Profile) -> None:
    """A mixture whose clients[5] gets only staging-cloud-run's connection count (local-debug has no clients[5])
    names that client after user-e-mobile, not after the placeholder client5."""
    from investigation.analysis.isolate import _mixture_clients

    staging_cloud_run = load_profile("staging-cloud-run")
    count_only = [FactorChange("clients[5].connections", ABSENT, 6)]
    names = _mixture_clients(local_debug, staging_cloud_run, count_only)
    assert names["client5"] == "user-e-mobile of staging-cloud-run, with only the fields dd's mixture sets"
    # dd's passing mixture already carries user-e-mobile's name (and its timing, see
    # test_dd_keeps_the_profiles_spacing_on_the_passing_side): the pair is user-e-mobile's 1 connection at 1200 s
    # (#1 after debug-script's #0) against its 6th, #6 at 1350 s; they part at the cap (spec 4.2)
    isolation = isolate_profiles(local_debug, staging_cloud_run)
    text = isolation.to_text().splitlines()[-1]
    assert "client5" not in text
    # "#" is the place in the run's start order (from 0), so the text says "of its run": #6 is not user-e-mobile's
    # 7th connection but its 6th, after debug-script's #0
    assert text.endswith("factory.manager_cap: below (passing) vs exceeded (failing) [passing: connection #1 of its "
                         "run (client user-e-mobile); failing: connection #6 of its run (client user-e-mobile)]")


@pytest.fixture(scope="module")
def e2e_reduction(staging_e2e: Profile) -> Any:
    return minimal_failing_traffic(staging_e2e)


#: staging-e2e's mechanism lesson, derived by hand in
#: test_chapter_04_lessons_say_dds_mixture_refuses_concurrency_while_the_profile_leaks.
E2E_MECHANISM_LESSON = (
    "- In dd's failing mixture the refused connection (client e2e-process-1, user test-user-12345) met 5 managers "
    "of its user on its instance and 0 of the user's connections still open there: managers outlived their "
    "connections; in staging-e2e's own first failure the refused connection (client e2e-process-2, user "
    "staging-e2e-user-002) met 5 managers and 0 of the user's connections still open there: managers outlived "
    "their connections. dd's mixture fails the same way; so does ddmin's reduced traffic (planned times kept): "
    "at its refusal the user held 5 managers with 0 of its connections open."
)


def test_chapter_04_lessons_say_the_difference_has_no_environment_factor(e2e_isolation: Any, e2e_reduction: Any) -> None:
    """staging-e2e (golden notebook 04): dd isolates clients[0].connections 1 -> 12 alone; ddmin keeps 6 of
    the 36 planned connections (3 E2E processes x 12), all of one user on one instance: five managers fill
    the cap of 5 (spec 4.2) and the 6th is refused."""
    from investigation.analysis.isolate import isolation_lessons
    from investigation.analysis.spectra import SuspiciousnessReport

    # Which user and instance ddmin keeps, and how many tests dd runs, depend on their split order, not on a
    # rule one can work out by hand: they are read from the results, and only their shape is asserted.
    (user,) = {str(c.user_id) for c in e2e_reduction.run.connections}
    (instance,) = {c.instance for c in e2e_reduction.run.connections}
    tests = e2e_isolation.tests_run
    assert tests >= 1
    verdicts = isolation_verdicts(e2e_isolation, e2e_reduction).data.splitlines()
    assert verdicts[0] == (f"- Failure-inducing difference ({tests} tests): client debug-script of local-debug: "
                           "12 connections instead of 1, the value of staging-e2e's client e2e-process-1 at the "
                           "same index, applied to dd's passing mixture, which already gives that client "
                           # staging-e2e.toml: e2e-process-1 has spacing_s 14 and hold_s 4, local-debug's
                           # debug-script 0 and 5: without them the count alone is not the profile's failure
                           "staging-e2e's spacing_s 14.0 and hold_s 4.0 (and its headers, messages, name).")
    # staging-e2e.toml: e2e-process-2 starts at 1 s, 16 s apart; its 6th connection (81 s) is the run's #16, after
    # 6 of e2e-process-1 (0-70 s), 5 of e2e-process-3 (2-74 s) and its own 5: "#" is not the client's count
    assert verdicts[3].endswith("failing: connection #16 of its run (e2e-process-2's 6th)].")
    report = SuspiciousnessReport(0, 0, (), (), ())
    lessons = isolation_lessons(e2e_isolation, e2e_reduction, report).data.splitlines()
    assert lessons == [
        "- The 1-minimal failure-inducing difference from local-debug to staging-e2e contains no environment "
        "factor (env, process, startup, instances, routing): with local-debug's environment, 1 change of the "
        "traffic produces the same failure (client debug-script of local-debug: 12 connections instead of 1, "
        "the value of staging-e2e's client e2e-process-1 at the same index), applied to dd's passing mixture, "
        # the connection count alone opens all 12 at t=0 (the cap refusing concurrency): dd keeps the rest of
        # e2e-process-1's fields on the passing side, among them spacing_s 14 and hold_s 4 (staging-e2e.toml)
        "which already gives that client staging-e2e's spacing_s 14.0 and hold_s 4.0 (and its headers, messages, "
        "name).",
        # local-debug sets ENVIRONMENT=test, staging-e2e staging: the route reads it first (spec 1 step 1);
        # the isolated pair keeps local-debug's environment and parts at the cap (spec 4.2)
        "- The profiles first part at route.environment, but that difference is not needed for the failure: "
        "with local-debug's environment the isolated pair first parts at factory.manager_cap.",
        "- The failing traffic of staging-e2e shrinks to 6 of its 36 planned connections (1-minimal: none of "
        f"them can be left out), from one user ({user}) on one instance ({instance}); in that reduced run "
        "1 of them closes 1011.",
        E2E_MECHANISM_LESSON,
        "- " + report.summary(),
    ]


def test_chapter_04_lessons_name_the_environment_factors_of_the_difference(e2e_isolation: Any, e2e_reduction: Any) -> None:
    import dataclasses

    from investigation.analysis.isolate import ChangeSides, isolation_lessons
    from investigation.analysis.spectra import SuspiciousnessReport

    sides = ChangeSides.of(load_profile("local-debug"), load_profile("staging-e2e"))
    environment = FactorChange("env.ENVIRONMENT", "test", "staging", sides)
    isolation = dataclasses.replace(
        e2e_isolation, minimal_difference=(environment, *e2e_isolation.minimal_difference), passing_mixture=()
    )
    first = isolation_lessons(isolation, e2e_reduction, SuspiciousnessReport(0, 0, (), (), ())).data.splitlines()[0]
    assert first == (
        "- The 1-minimal failure-inducing difference from local-debug to staging-e2e contains 1 environment "
        "factor (ENVIRONMENT) among its 2 changes: ENVIRONMENT: 'test' -> 'staging'; client debug-script of "
        "local-debug: 12 connections instead of 1, the value of staging-e2e's client e2e-process-1 at the same "
        "index."
    )


# --- dd on the shipped profiles -------------------------------------------------------------


def test_isolate_json_has_exactly_the_contract_keys(e2e_isolation: Any) -> None:
    as_json = e2e_isolation.to_json_dict()
    assert list(as_json) == JSON_KEYS
    assert as_json["factors"] == sorted(as_json["factors"])
    assert {change["factor"] for change in as_json["minimal_difference"]} <= set(as_json["factors"])
    assert set(as_json["failure"]) == {"close_code", "close_reason", "cause_chain"}
    json.dumps(as_json)  # JSON-safe


def test_local_debug_vs_staging_e2e_isolates_one_connection_count_above_the_cap(e2e_isolation: Any) -> None:
    # The failing profile's first failure is the cap refusal: 1011, innermost RuntimeError (spec 4.1/4.2).
    assert e2e_isolation.failure.close_code == 1011
    assert e2e_isolation.failure.close_reason == "Factory SSOT validation failed"
    assert e2e_isolation.failure.cause_chain[-1].type == "RuntimeError"
    # Nothing environmental is needed: one client opening more than CAP connections suffices.
    (change,) = e2e_isolation.minimal_difference
    assert change.factor.endswith(".connections")
    assert isinstance(change.failing, int) and change.failing > CAP


def test_the_isolated_change_on_dds_passing_mixture_reproduces_the_failure_and_without_it_the_run_passes(
    local_debug: Profile, e2e_isolation: Any
) -> None:
    base = apply_changes(flatten_profile(local_debug), e2e_isolation.passing_mixture)
    with_change = simulate(unflatten_profile("with-change", apply_changes(base, e2e_isolation.minimal_difference),
                                             base=local_debug))
    assert e2e_isolation.signature.outcome(with_change) is Outcome.FAIL
    assert e2e_isolation.signature.outcome(simulate(unflatten_profile("without", base, base=local_debug))) is Outcome.PASS
    assert e2e_isolation.signature.outcome(simulate(local_debug)) is Outcome.PASS


def test_a_concurrent_only_mixture_is_not_the_profiles_failure(local_debug: Profile, e2e_isolation: Any) -> None:
    """local-debug's debug-script (spacing_s unset: 0, hold_s 5) with staging-e2e's 12 connections opens all 12 at
    t=0: the 6th meets 5 managers and 5 open connections, the cap refusing a concurrent connection as designed.
    staging-e2e's own first failure (e2e-process-2, connections 16 s apart, held 4 s) meets 5 managers with 0 open
    (spec 1 step 14). Same close code and exception, different mechanism: not the same failure."""
    from investigation.analysis.cap_refusals import Mechanism

    assert e2e_isolation.signature == FailureSignature(1011, "RuntimeError", Mechanism.OUTLIVED)
    count_only = apply_changes(flatten_profile(local_debug), [FactorChange("clients[0].connections", 1, 12)])
    run = simulate(unflatten_profile("count-only", count_only, base=local_debug))
    refused = [c for c in run.connections if c.failed]
    assert [c.close_code for c in refused] == [1011] * 7  # 12 at once, cap 5: the 6th to the 12th
    assert FailureSignature.of(refused[0], run) == FailureSignature(1011, "RuntimeError", Mechanism.CONCURRENT)
    assert not e2e_isolation.signature.matches(refused[0], run)
    assert e2e_isolation.signature.outcome(run) is Outcome.UNRESOLVED


def test_dd_keeps_the_profiles_spacing_on_the_passing_side(local_debug: Profile) -> None:
    """dd's 1-minimal difference is the connection count alone, relative to its last passing mixture, which
    already spaces the client's connections as the failing profile does. staging-cloud-run's user-e-mobile:
    6 connections 30 s apart from 1200 s, each held 25 s, so each ends (1225, 1255, ... s) before the next starts
    and leaves its manager (spec 1 step 14): the 6th, at 1350 s, meets 5 managers, 0 open. With only 1 connection
    the passing mixture holds 1 manager and passes."""
    isolation = isolate_profiles(local_debug, load_profile("staging-cloud-run"))
    assert [c.raw() for c in isolation.minimal_difference] == ["clients[5].connections: null -> 6"]
    shared = {c.factor: c.failing for c in isolation.passing_mixture}
    assert (shared["clients[5].spacing_s"], shared["clients[5].hold_s"]) == (30.0, 25.0)
    assert (isolation.failure_state.held, isolation.failure_state.open_connections) == (CAP, 0)
    assert isolation.mixture_failure_state == isolation.failure_state


def test_first_divergence_of_the_profiles_is_the_environment_and_of_the_isolated_pair_the_cap(
    e2e_isolation: Any,
) -> None:
    # local-debug sets ENVIRONMENT=test, staging-e2e ENVIRONMENT=staging: the route reads it first.
    assert e2e_isolation.to_json_dict()["first_divergence"] == {
        "point": "route.environment", "passing": "test", "failing": "staging",
    }
    isolated = e2e_isolation.isolated_divergence.divergence
    assert (isolated.point, isolated.passing, isolated.failing) == ("factory.manager_cap", "below", "exceeded")


def test_isolate_stays_within_the_test_budget(e2e_isolation: Any) -> None:
    assert e2e_isolation.tests_run <= 60


def test_no_secret_reaches_the_json(local_debug: Profile) -> None:
    staging = load_profile("staging-cloud-run")
    text = json.dumps(isolate_profiles(local_debug, staging).to_json_dict())
    for name, value in staging.env.items():
        if "SECRET" in name:
            assert value not in text


def test_a_passing_profile_that_fails_is_an_isolation_error(staging_e2e: Profile, local_debug: Profile) -> None:
    with pytest.raises(IsolationError) as raised:
        isolate_profiles(staging_e2e, local_debug)
    message = str(raised.value)
    assert message.startswith("staging-e2e: passing: does not pass") and "\n" not in message
    assert isinstance(raised.value, ValueError)
    assert str(pickle.loads(pickle.dumps(raised.value))) == message


def test_a_failing_profile_that_passes_is_an_isolation_error(local_debug: Profile) -> None:
    with pytest.raises(IsolationError, match=r"^development: failing: does not fail"):
        isolate_profiles(local_debug, load_profile("development"))


# --- ddmin over the traffic -------------------------------------------------------------------


def test_traffic_subset_keeps_each_connection_on_its_instance(staging_e2e: Profile) -> None:
    plan = connection_plan(staging_e2e)
    kept = [plan[4], plan[7], plan[9]]
    reduced = traffic_subset_profile(staging_e2e, kept)
    run = simulate(reduced)
    assert [c.at_s for c in run.connections] == [p.at_s for p in kept]
    # round robin: the n-th planned connection runs on instance n % 3
    assert [c.instance for c in run.connections] == [4 % 3, 7 % 3, 9 % 3]
    assert [c.user_id for c in run.connections] == [p.client.user_id for p in kept]
    assert traffic_subset_profile(staging_e2e, kept[::-1]) == reduced  # the kept set, in any order


def test_minimal_failing_traffic_is_cap_plus_one_connections_of_one_user_on_one_instance(
    staging_e2e: Profile,
) -> None:
    reduction = minimal_failing_traffic(staging_e2e)
    assert len(reduction.kept) == CAP + 1
    assert len({p.client.user_id for p in reduction.kept}) == 1
    assert len({c.instance for c in reduction.run.connections}) == 1
    assert reduction.run.connections[-1].close_code == 1011


def test_minimal_failing_traffic_builds_one_subset_profile_per_test(
    monkeypatch: pytest.MonkeyPatch, local_debug: Profile
) -> None:
    """Each ddmin test simulates one subset of the planned connections, so it needs one subset
    profile; the reduction keeps the run of the kept subset and builds no other profile."""
    from investigation.analysis import isolate

    built: list[int] = []

    def counting_subset_profile(profile: Profile, kept: Any) -> Profile:
        built.append(len(kept))
        return traffic_subset_profile(profile, kept)

    monkeypatch.setattr(isolate, "traffic_subset_profile", counting_subset_profile)
    reduction = minimal_failing_traffic(varied(local_debug, "busy", clients0__connections=CAP + 1))
    assert len(built) == reduction.tests_run


# --- faults injected into the backend (restored by monkeypatch after each test) ---------------


@pytest.fixture
def noisy_failing(local_debug: Profile) -> Any:
    """local-debug plus harmless differences and one trigger (a factor the profiles never set)."""

    def make(trigger_path: str, trigger_value: str) -> Profile:
        factors = flatten_profile(local_debug)
        factors.update({
            "seed": 7,
            "env.LOG_LEVEL": "debug",
            "env.FEATURE_BANNER": "on",
            "clients[0].hold_s": 8.0,
            "clients[0].headers.X-Client-Version": "4.2.0",
            "process.dotenv.SENTRY_DSN_HOST": "sentry.example.test",
            "clients[0].token_via": "subprotocol",
            "clients[0].subprotocols": ("jwt-auth",),
            trigger_path: trigger_value,
        })
        return unflatten_profile("faulty", factors, base=local_debug)

    return make


def _faulty_validation(original: Any) -> Any:
    def validate(user_context: Any) -> None:
        if backend_runtime.current().env.get("REGION") == "europe-west1":
            raise ValueError("SSOT VIOLATION: context pinned to another region")
        original(user_context)

    return validate


def test_injected_env_fault_is_isolated_to_its_env_var(
    monkeypatch: pytest.MonkeyPatch, local_debug: Profile, noisy_failing: Any
) -> None:
    monkeypatch.setattr(
        factory, "_validate_ssot_user_context_staging_safe",
        _faulty_validation(factory._validate_ssot_user_context_staging_safe),
    )
    isolation = isolate_profiles(local_debug, noisy_failing("env.REGION", "europe-west1"))
    assert [c.factor for c in isolation.minimal_difference] == ["env.REGION"]
    assert (isolation.signature.close_code, isolation.signature.innermost_type) == (1011, "ValueError")


def test_injected_header_fault_is_isolated_to_its_header(
    monkeypatch: pytest.MonkeyPatch, local_debug: Profile, noisy_failing: Any
) -> None:
    original = route._Session._check_dependencies

    async def check_dependencies(self: Any) -> None:
        if self.websocket.headers.get("x-trace-sampled") == "1":
            raise RuntimeError("trace exporter unavailable")
        await original(self)

    monkeypatch.setattr(route._Session, "_check_dependencies", check_dependencies)
    isolation = isolate_profiles(local_debug, noisy_failing("clients[0].headers.X-Trace-Sampled", "1"))
    assert [c.factor for c in isolation.minimal_difference] == ["clients[0].headers.X-Trace-Sampled"]
    # spec 1 step 13: an unhandled exception after setup closes 1011 "Internal error"
    assert isolation.failure.close_reason == "Internal error"
    assert isolation.signature.innermost_type == "RuntimeError"


def test_injected_dotenv_fault_is_isolated_to_its_dotenv_key(
    monkeypatch: pytest.MonkeyPatch, local_debug: Profile, noisy_failing: Any
) -> None:
    original = ids.UnifiedIdGenerator.generate_user_context_ids

    def generate(self: ids.UnifiedIdGenerator, user_id: str, operation: str) -> tuple[str, str, str]:
        thread_id, run_id, request_id = original(self, user_id, operation)
        if backend_runtime.current().env.get("ID_NAMESPACE"):
            return "", run_id, request_id
        return thread_id, run_id, request_id

    monkeypatch.setattr(ids.UnifiedIdGenerator, "generate_user_context_ids", generate)
    isolation = isolate_profiles(local_debug, noisy_failing("process.dotenv.ID_NAMESPACE", "tenant-a"))
    assert [c.factor for c in isolation.minimal_difference] == ["process.dotenv.ID_NAMESPACE"]
    # spec 2 + 5.4: a blank thread_id fails context creation, auth fails, close 1008
    assert isolation.failure.close_code == 1008


def test_injected_faults_are_restored_after_their_tests(local_debug: Profile) -> None:
    assert not simulate(local_debug).failures


# --- the command ----------------------------------------------------------------------------


def test_cli_isolate_prints_the_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    from investigation.cli import main

    assert main(["isolate", "--passing", "local-debug", "--failing", "staging-e2e", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == JSON_KEYS


def test_cli_isolate_exits_2_with_one_line_when_the_failing_profile_passes(capsys: pytest.CaptureFixture[str]) -> None:
    from investigation.cli import main

    assert main(["isolate", "--passing", "local-debug", "--failing", "development"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().count("\n") == 0 and "development: failing: does not fail" in captured.err


# --- what counts as an environment factor ----------------------------------------------------


def spread_profile(name: str, instances: int) -> Profile:
    """One user reconnecting 6 times, 10 s apart, spread round-robin over ``instances``."""
    return profile_from_dict(name, {
        "description": name, "env": {"ENVIRONMENT": "test"}, "instances": instances, "routing": "round_robin",
        "clients": [{"name": "tab", "user_id": "test-user-12345", "connections": 6, "spacing_s": 10.0, "hold_s": 4.0}],
    })


def test_chapters_04_and_06_count_an_instances_difference_as_environment() -> None:
    """Two instances take 3 connections each; one instance takes all 6 and the sixth exceeds the
    cap (spec 4.2, one factory per process). The only difference is ``instances``."""
    spread, single = spread_profile("spread", 2), spread_profile("single", 1)
    isolation = isolate_profiles(spread, single)
    assert [change.factor for change in isolation.minimal_difference] == ["instances"]
    reduction = minimal_failing_traffic(single)
    assert len(reduction.kept) == CAP + 1
    chapter_04 = isolation_verdicts(isolation, reduction).data
    assert "- Environment factors (env, process, startup, instances, routing) in it: instances." in chapter_04
    overview = IsolationOverview("spread", {"single": isolation})
    evidence = Evidence("spread", {}, None, overview, None, None)  # type: ignore[arg-type]
    chapter_06 = trigger_section(evidence).data
    assert "environment factors (env, process, startup, instances, routing) among them: instances." in chapter_06
    assert in_environment_of(single, spread).profile.instances == 2


def test_failing_profiles_use_the_runs_given_instead_of_simulating(local_debug: Profile) -> None:
    """A run handed in is the profile's run: local-debug passes when simulated, but is listed
    as failing when its given run has a 1011 close; a profile without a given run is simulated."""
    given = {local_debug.name: RunResult(local_debug.name, "original", (connection(0, 1011, ("RuntimeError",)),))}
    busy = varied(local_debug, "busy", clients0__connections=CAP + 1)
    assert failing_profiles([local_debug, busy]) == [busy]
    assert failing_profiles([local_debug, busy], runs=given) == [local_debug, busy]


def test_a_profile_whose_only_failure_is_a_1008_is_failing(local_debug: Profile) -> None:
    """Failing means any connection the server closed with a code other than 1000."""
    given = {local_debug.name: RunResult(local_debug.name, "original", (connection(0, 1008, ()),))}
    assert failing_profiles([local_debug], runs=given) == [local_debug]


def test_the_isolated_divergence_is_taken_from_dds_last_passing_mixture_not_the_empty_one() -> None:
    """The cap failure needs two changes (6 connections and a single instance, spec 4.2), and a
    third change (ENVIRONMENT) is harmless. The changes, sorted: [connections 3->6,
    ENVIRONMENT test->development, instances 2->1]. dd splits them into [connections] and
    [ENVIRONMENT, instances]: neither alone fails (6 connections spread 3+3, or 3 connections on
    one instance), and removing [connections] from the failing side passes, so the last passing
    mixture is {ENVIRONMENT, instances}, not empty. Its connections run with ENVIRONMENT
    development like the failing mixture's, so the pair first parts at the cap; the empty
    mixture (ENVIRONMENT test) would part already at route.environment."""
    passing = varied(spread_profile("three-spread", 2), "three-spread", clients0__connections=3)
    failing = varied(spread_profile("six-single", 1), "six-single", env__ENVIRONMENT="development")
    isolation = isolate_profiles(passing, failing)
    assert [(c.factor, c.passing, c.failing) for c in isolation.minimal_difference] == [
        ("clients[0].connections", 3, 6)
    ]
    assert isolation.to_json_dict()["first_divergence"] == {
        "point": "route.environment", "passing": "test", "failing": "development",
    }
    isolated = isolation.isolated_divergence
    assert isolated.divergence == Divergence("factory.manager_cap", "below", "exceeded")
    assert (isolated.failing_connection.index, isolated.failing_connection.close_code) == (CAP, 1011)


def test_a_notebook_shows_an_isolation_error_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # notebook 04 with passing=staging-e2e: that profile fails (spec 4.2's cap), so it cannot be the passing side
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance().run_cell(
        "from investigation.analysis.isolate import isolate_profiles\n"
        "from investigation.profiles import load_profile\n"
        "isolate_profiles(load_profile('staging-e2e'), load_profile('staging-cloud-run'))"
    )
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(shown) == 1
    assert shown[0].startswith("IsolationError: staging-e2e: passing: does not pass under variant original: ")


# --- what chapter 04 says about the reduction and the divergence -----------------------------


def test_a_trailing_space_in_a_divergent_outcome_is_visible() -> None:
    """ENVIRONMENT="staging " (trailing space) must not read as plain staging."""
    from investigation.analysis.isolate import AlignedDivergence, _describe_alignment

    passing, failing = connection(0, None), connection(3, 1011)
    aligned = AlignedDivergence(passing, failing, Divergence("route.environment", "test", "staging "))
    assert _describe_alignment(aligned).startswith("route.environment: test (passing) vs 'staging ' (failing) [")


def test_chapter_04_counts_the_kept_connections_that_fail_in_the_reduced_run() -> None:
    """One user, 7 reconnections on one instance: the 6th and 7th exceed the cap of 5 (spec 4.2).
    ddmin keeps 6 (the cap fill and one refused); in that reduced run only the 6th closes 1011,
    the other 5 are not failures. Both texts count 6 kept of 7 planned, 1 of them closing 1011."""
    spread = spread_profile("spread", 2)
    seven = varied(spread_profile("seven", 1), "seven", clients0__connections=CAP + 2)
    isolation = isolate_profiles(varied(spread, "spread", clients0__connections=CAP + 2), seven)
    reduction = minimal_failing_traffic(seven)
    assert [c.close_code for c in reduction.run.connections][-1] == 1011
    assert isolation_key_result(isolation, reduction).endswith(
        "; 1-minimal failing traffic: 6 of 7 planned connections (1 of them closes 1011)"
    )
    assert len(reduction.failing_the_same_way) == 1
    verdicts = isolation_verdicts(isolation, reduction).data
    assert ("- 1-minimal failing traffic (ddmin: removing any one kept connection makes the failure disappear; "
            "a smaller failing subset may exist): 6 of 7 planned connections (1 of them closes 1011), "
            "user test-user-12345, instance 0.") in verdicts.splitlines()


def test_ddmin_traffic_is_1_minimal_not_the_smallest_failing_subset(staging_e2e: Profile, e2e_reduction: Any) -> None:
    """staging-e2e's clients send start_agent, which leaks managers (spec 1 step 12): user-003's
    4th connection on its instance is already refused, so 4 connections fail although ddmin,
    which stops at a 1-minimal set, keeps 6. The texts say 1-minimal, never 'fewest'."""
    import investigation.analysis.isolate as isolate_module

    plan = connection_plan(staging_e2e)
    four = [p for p in plan if p.index in (12, 15, 18, 21)]
    assert {p.client.user_id for p in four} == {"staging-e2e-user-003"}
    run = simulate(traffic_subset_profile(staging_e2e, four))
    # all on one instance; each connection leaves its own manager (spec 1 step 14) and start_agent's
    # (step 12): 2 after the 1st, 4 after the 2nd, the 3rd takes the 5th slot (its start_agent is
    # refused inside the handler, no close); the 4th meets the cap of 5 (spec 4.2; emergency cleanup
    # frees nothing, every manager is under 5 minutes old) and closes 1011
    assert len({c.instance for c in run.connections}) == 1
    assert [c.close_code for c in run.connections] == [None, None, None, 1011]
    # user-003's connections start 18 s apart and are held 4 s: at the 4th, 5 managers and none open
    from investigation.analysis.cap_refusals import Mechanism

    assert FailureSignature(1011, "RuntimeError", Mechanism.OUTLIVED).outcome(run) is Outcome.FAIL
    # ddmin keeps cap + 1 = 6 (the cap fill and the refused one): more than the 4 above
    assert len(e2e_reduction.run.connections) == 6 > len(four)
    docs = [isolate_module.__doc__, isolate_module.TrafficReduction.__doc__, minimal_failing_traffic.__doc__]
    assert all("1-minimal" in doc and "fewest" not in doc for doc in docs)


# --- the lesson on the two first divergences -------------------------------------------------


def test_the_divergence_lesson_names_environment_factors_dd_moved_to_the_passing_side() -> None:
    """The case of the test above on dd's last passing mixture: that mixture takes six-single's
    ENVIRONMENT and instances, so the isolated pair does not have three-spread's environment. Both
    sides of the pair run with six-single's ENVIRONMENT (development), so dd never ran the failure
    with three-spread's (test): it cannot say the environment difference is not needed (audit 13)."""
    from investigation.analysis.isolate import _divergence_lesson

    passing = varied(spread_profile("three-spread", 2), "three-spread", clients0__connections=3)
    failing = varied(spread_profile("six-single", 1), "six-single", env__ENVIRONMENT="development")
    assert _divergence_lesson(isolate_profiles(passing, failing)) == (
        "The profiles first part at route.environment (test vs development); the isolated pair takes development "
        # six-single sets ENVIRONMENT 'development' and 1 instance: the values the mixture takes from it
        "there on both sides (dd's passing mixture already holds ENVIRONMENT = 'development' and instances = 1, as in "
        "six-single), so dd does "
        "not show whether that difference is needed for the failure; the pair first parts at factory.manager_cap."
    )


def test_the_divergence_lesson_says_when_both_pairs_part_at_the_same_point() -> None:
    """spread and single differ only in instances: both pairs part at the cap (spec 4.2)."""
    from investigation.analysis.isolate import _divergence_lesson

    isolation = isolate_profiles(spread_profile("spread", 2), spread_profile("single", 1))
    assert _divergence_lesson(isolation) == (
        "The profiles and the isolated pair first part at the same point, factory.manager_cap."
    )


def test_chapter_04_lessons_pass_the_table_size_to_the_ranking_summary(e2e_isolation: Any, e2e_reduction: Any) -> None:
    """The notebook shows ``top_lines`` ranked lines; the SBFL lesson must know how many."""
    from types import SimpleNamespace

    from investigation.analysis.isolate import isolation_lessons

    report = SimpleNamespace(summary=lambda table_lines=None: f"table of {table_lines}")
    lessons = isolation_lessons(e2e_isolation, e2e_reduction, report, 12).data.splitlines()  # type: ignore[arg-type]
    assert lessons[-1] == "- table of 12"


# --- what the refused user had on its instance at the refusal -------------------------------


def one_user_profile(name: str, spacing_s: float, hold_s: float) -> Profile:
    """One user opening 6 connections ``spacing_s`` apart, each held ``hold_s``, on one instance."""
    return profile_from_dict(name, {
        "description": name, "env": {"ENVIRONMENT": "test"}, "instances": 1,
        "clients": [{"name": "tab", "user_id": "u-1", "connections": 6, "spacing_s": spacing_s, "hold_s": hold_s}],
    })


def test_six_connections_at_once_meet_five_managers_and_five_open_connections() -> None:
    """All 6 at t=0 held 10 s: the first 5 each hold a manager (spec 4.2) and are still open at t=0
    when the 6th is refused: 5 managers, 5 open, the cap working as designed."""
    from investigation.analysis.cap_refusals import Mechanism, refusals_at_cap, user_at_refusal

    run = simulate(one_user_profile("at-once", 0.0, 10.0))
    (refused,) = run.failures
    state = user_at_refusal(run, refused)
    assert (state.held, state.open_connections, state.cap) == (5, 5, CAP)
    assert state.mechanism is Mechanism.CONCURRENT
    assert refusals_at_cap(run) == [state]


def test_six_reconnections_meet_five_managers_and_no_open_connection() -> None:
    """10 s apart, each held 4 s: at t=50 the 5 earlier connections ended (the last at 44 s) but their
    managers stay (spec 1 step 14, cleanup frees none under 5 minutes old): 5 managers, 0 open."""
    from investigation.analysis.cap_refusals import Mechanism, user_at_refusal

    run = simulate(one_user_profile("apart", 10.0, 4.0))
    (refused,) = run.failures
    state = user_at_refusal(run, refused)
    assert (refused.at_s, state.held, state.open_connections) == (50.0, 5, 0)
    assert state.mechanism is Mechanism.OUTLIVED


def test_a_refusal_below_the_cap_is_not_the_caps() -> None:
    """Held below the cap of 5 (spec 4.2): not the cap's refusal, whatever is open; at the cap with
    fewer open connections than the cap: managers outlived them."""
    from investigation.analysis.cap_refusals import Mechanism, UserAtRefusal

    assert UserAtRefusal(held=4, open_connections=4, created_by_start_agent=0, cap=CAP).mechanism is Mechanism.BELOW_CAP
    assert UserAtRefusal(held=5, open_connections=4, created_by_start_agent=0, cap=CAP).mechanism is Mechanism.OUTLIVED


def test_chapter_04_lessons_say_dds_mixture_leaks_as_the_profile_does(
    e2e_isolation: Any, e2e_reduction: Any
) -> None:
    """dd's failing mixture is local-debug's debug-script (test-user-12345, local-debug's single instance) with
    e2e-process-1's other fields (spacing_s 14, hold_s 4, a chat at 1 s; its name) and 12 connections: they start
    at 0, 14, ..., 70 s and each ends 4 s later, leaving its manager (spec 1 step 14); the 6th, at 70 s, meets
    5 managers and 0 open connections (the last ended at 60 s). The connection count alone (spacing 0) would
    meet 5 open: the signature's mechanism rules that mixture out (test_a_concurrent_only_mixture_...).
    staging-e2e's first failure is e2e-process-2's (staging-e2e-user-002) 6th connection on instance 1, at 81 s:
    its connections there start 16 s apart (1, 17, 33, 49, 65 s) and are held 4 s, so none is open (the last
    ended at 69 s) while their 5 managers stay (spec 1 step 14). ddmin keeps those 6 at their planned times:
    again 5 managers, 0 open."""
    from investigation.analysis.isolate import isolation_lessons
    from investigation.analysis.spectra import SuspiciousnessReport

    lessons = isolation_lessons(e2e_isolation, e2e_reduction, SuspiciousnessReport(0, 0, (), (), ())).data
    assert E2E_MECHANISM_LESSON in lessons.splitlines()


def test_chapter_04_lessons_say_when_dds_mixture_leaks_like_the_profile() -> None:
    """One user reconnecting 6 times 10 s apart, held 4 s, over two instances (passes) vs one (fails): dd isolates
    instances 2 -> 1, so its failing mixture is the failing profile; its 6th connection, at 50 s, meets 5
    managers with 0 open (the last ended at 44 s), as the profile's does: no 'not the leak'."""
    from investigation.analysis.isolate import isolation_lessons
    from investigation.analysis.spectra import SuspiciousnessReport

    passing, failing = spread_profile("spread", 2), spread_profile("one", 1)
    isolation = isolate_profiles(passing, failing)
    lessons = isolation_lessons(isolation, minimal_failing_traffic(failing),
                                SuspiciousnessReport(0, 0, (), (), ())).data
    line = next(text for text in lessons.splitlines() if text.startswith("- In dd's failing mixture"))
    assert "5 managers of its user on its instance and 0 of the user's connections still open there: managers " \
        "outlived their connections" in line
    assert "not the leak" not in line and "as designed" not in line
    assert line.endswith("dd's mixture fails the same way; so does ddmin's reduced traffic (planned times kept): "
                         "at its refusal the user held 5 managers with 0 of its connections open.")


def test_the_shared_refusal_state_matches_the_postmortems_root_cause_counts() -> None:
    """06's root cause says every refusal at the cap in staging-e2e met 0 open connections (06 golden)."""
    from investigation.analysis.cap_refusals import refusals_at_cap

    states = refusals_at_cap(simulate(load_profile("staging-e2e")))
    assert states and {(s.held, s.open_connections) for s in states} == {(CAP, 0)}


def test_the_passing_mixture_context_leaves_out_fields_the_profile_does_not_set(local_debug: Profile) -> None:
    """staging-env-whitespace.toml's user-e-mobile sets neither token nor token_literal: the schema's defaults
    (auth_service, "") are not something the profile gives that client."""
    from investigation.analysis.isolate import passing_mixture_context

    context = passing_mixture_context(isolate_profiles(local_debug, load_profile("staging-env-whitespace")))
    assert context.startswith(", applied to dd's passing mixture, which already gives that client ")
    assert "token," not in context and "token_literal" not in context
    assert "token_via" in context  # set in the profile: subprotocol


# --- audit 13: counterfactual worlds ---------------------------------------------------------


def test_a_divergence_at_a_point_the_failing_side_never_reached_reads_not_reached() -> None:
    """A startup-gate close (spec 1 step 9) ends the connection before the message loop, which the
    passing side reaches: the failing side's outcome there is None and reads "not reached"."""
    from investigation.analysis.isolate import AlignedDivergence, _describe_alignment

    aligned = AlignedDivergence(connection(0, None), connection(0, 1011),
                                Divergence("route.message_loop", "client_disconnected", None))
    assert _describe_alignment(aligned).startswith(
        "route.message_loop: client_disconnected (passing) vs not reached (failing) [")
    reversed_sides = AlignedDivergence(connection(0, None), connection(0, 1011),
                                       Divergence("route.close", None, "1011 Service startup incomplete"))
    assert _describe_alignment(reversed_sides).startswith(
        "route.close: not reached (passing) vs 1011 Service startup incomplete (failing) [")


SECRET = "test-only-staging-secret-0123456789abcdef"  # 41 chars: a usable staging secret (spec 5.3: >= 32)


def gate_profile(name: str, environment: str, startup_complete: bool, hold_s: float) -> Profile:
    """One real-token client; both sides carry the staging secret, so auth succeeds in either environment."""
    return profile_from_dict(name, {
        "description": "startup gate",
        "env": {"ENVIRONMENT": environment, "JWT_SECRET_KEY": SECRET, "JWT_SECRET_STAGING": SECRET},
        "startup": {"complete": startup_complete},
        "clients": [{"name": "user-a", "user_id": "104729384756102938475", "token": "auth_service",
                     "connections": 1, "hold_s": hold_s}],
    })


@pytest.fixture(scope="module")
def gate_isolation() -> Any:
    """Passing: ENVIRONMENT test, startup complete, client held 5 s. Failing: staging, startup never
    completes, held 60 s, so its connection closes 1011 "Service startup incomplete" after the gate's
    30 s of polling (spec 1 step 9)."""
    return isolate_profiles(gate_profile("gate-local", "test", True, 5.0),
                            gate_profile("gate-staging", "staging", False, 60.0))


def test_a_connection_refused_after_its_client_left_is_unresolved_not_passing() -> None:
    """The route decided the close (startup gate timeout, spec 1 step 9; an auth failure, step 5) but the
    client had left (the route then records client_disconnected, no close): not evidence of passing."""
    signature = FailureSignature(1011, None)
    gate_timeout = connection(0, None, decisions=(("route.startup_gate", "timeout"),
                                                  ("route.message_loop", "client_disconnected")))
    auth_refused = connection(1, None, decisions=(("auth.result", "VALIDATION_FAILED"),
                                                  ("route.message_loop", "client_disconnected")))
    served = connection(2, None, decisions=(("auth.result", "success"), ("route.startup_gate", "not_applicable"),
                                            ("route.message_loop", "client_disconnected")))
    assert signature.outcome(RunResult("p", "original", (served,))) is Outcome.PASS
    assert signature.outcome(RunResult("p", "original", (served, gate_timeout))) is Outcome.UNRESOLVED
    assert signature.outcome(RunResult("p", "original", (auth_refused,))) is Outcome.UNRESOLVED


def test_dd_does_not_count_a_gate_refusal_the_client_left_before_as_passing(gate_isolation: Any) -> None:
    """Changes, sorted: [clients[0].hold_s 5->60, env.ENVIRONMENT test->staging, startup.complete true->false].
    dd (n=2) tests {hold}: test environment, no gate -> PASS; {ENVIRONMENT, startup}: the gate times out at
    30 s, after the client left at 5 s -> UNRESOLVED (counted PASS before, which isolated hold_s alone).
    failing - [ENVIRONMENT, startup] = {hold} passes -> passing := {hold}; then {hold, ENVIRONMENT}: startup
    complete, no gate -> PASS; {hold, startup}: test environment -> PASS; failing - [ENVIRONMENT] =
    {hold, startup} passes -> passing := {hold, startup}: the difference is ENVIRONMENT alone."""
    assert [(c.factor, c.passing, c.failing) for c in gate_isolation.minimal_difference] == [
        ("env.ENVIRONMENT", "test", "staging")
    ]
    assert sorted(c.factor for c in gate_isolation.passing_mixture) == ["clients[0].hold_s", "startup.complete"]


def test_the_difference_lesson_names_the_environment_dds_passing_mixture_holds(gate_isolation: Any) -> None:
    """dd's passing mixture holds gate-staging's startup.complete (test above): the lesson says so."""
    from investigation.analysis.isolate import _difference_lesson

    assert _difference_lesson(gate_isolation) == (
        "The 1-minimal failure-inducing difference from gate-local to gate-staging contains 1 change, an "
        # gate-staging's startup never completes: startup.complete false (a value shows as its repr)
        "environment factor (ENVIRONMENT): ENVIRONMENT: 'test' -> 'staging'; dd's passing mixture already holds "
        "startup.complete = False, as in gate-staging."
    )


def test_a_traffic_difference_on_a_mixture_with_failing_environment_names_that_environment(
    gate_isolation: Any,
) -> None:
    """Swap the roles of the test above: a traffic-only minimal difference on a passing mixture that holds
    the failing side's ENVIRONMENT and startup.complete is not 'with gate-local's environment'."""
    import dataclasses

    from investigation.analysis.isolate import _difference_lesson

    hold, startup = sorted(gate_isolation.passing_mixture, key=lambda c: c.factor)
    environment = gate_isolation.minimal_difference[0]
    isolation = dataclasses.replace(gate_isolation, minimal_difference=(hold,), passing_mixture=(environment, startup))
    lesson = _difference_lesson(isolation)
    assert "with gate-local's environment" not in lesson
    assert lesson.startswith(
        "The 1-minimal failure-inducing difference from gate-local to gate-staging contains no environment factor "
        "(env, process, startup, instances, routing): on dd's passing mixture, which already holds ENVIRONMENT = "
        "'staging' and startup.complete = False, as in gate-staging (otherwise gate-local's environment), 1 change "
        "of the traffic produces the "
        "same failure (")


def test_a_passing_profile_whose_connection_is_refused_after_its_client_left_is_an_isolation_error() -> None:
    """Staging with startup incomplete, client held 5 s: refused at the gate's 30 s timeout (spec 1 step 9)."""
    with pytest.raises(IsolationError, match=r"^gate-early: passing: does not pass under variant original: "
                       r"connection #0 was refused \(route.startup_gate=timeout\) but its client left before"):
        isolate_profiles(gate_profile("gate-early", "staging", False, 5.0),
                         gate_profile("gate-staging", "staging", False, 60.0))


def auth_profile(name: str, clients: list[dict[str, object]]) -> Profile:
    """Cloud Run staging with a usable secret (spec 5.3), so a valid token passes and others are refused."""
    return profile_from_dict(name, {
        "description": "auth failures",
        "env": {"ENVIRONMENT": "staging", "K_SERVICE": "netra-backend-staging",
                "JWT_SECRET_KEY": SECRET, "JWT_SECRET_STAGING": SECRET},
        "clients": clients,
    })


def test_a_missing_token_is_not_the_same_failure_as_an_expired_one() -> None:
    """Both close 1008 with innermost AuthenticationFailure (spec 1 step 5), but the auth error codes differ:
    NO_TOKEN (spec 5.1) against VALIDATION_FAILED (an expired token, spec 5.3)."""
    def refused(index: int, code: str) -> ConnectionResult:
        return connection(index, 1008, ("AuthenticationFailure",), (("auth.result", code),))

    expired, anonymous = refused(0, "VALIDATION_FAILED"), refused(1, "NO_TOKEN")
    signature = FailureSignature.of(expired, RunResult("p", "original", (expired,)))
    assert signature == FailureSignature(1008, "AuthenticationFailure", None, "VALIDATION_FAILED")
    assert signature.outcome(RunResult("p", "original", (anonymous,))) is Outcome.UNRESOLVED
    assert signature.outcome(RunResult("p", "original", (anonymous, expired))) is Outcome.FAIL
    assert str(signature) == "close 1008, innermost AuthenticationFailure, auth error VALIDATION_FAILED"


def test_dd_isolates_the_expired_token_not_a_missing_one() -> None:
    """Passing: one valid user. Failing: a client with no token at t=5 (NO_TOKEN, spec 5.1) at index 0 and
    one presenting an expired token at t=0 at index 1, whose refusal is the first failure (VALIDATION_FAILED,
    spec 5.3). dd first tries the changes of client 0 (sorted paths: clients[0].* before clients[1].*): the
    NO_TOKEN refusal also closes 1008 with innermost AuthenticationFailure, and was taken for the same
    failure (audit 13: "auth.token_source" isolated). It is another failure: the difference is client 1's
    expired token (client 1 absent from the passing profile, so its token is unset there)."""
    valid = {"name": "user-a", "user_id": "104729384756102938475", "hold_s": 5.0}
    passing = auth_profile("auth-valid", [valid])
    failing = auth_profile("auth-refused", [{"name": "anonymous", "user_id": "anon", "token": "none", "start_s": 5.0},
                                            {**valid, "name": "stale-tab", "token": "expired"}])
    isolation = isolate_profiles(passing, failing)
    assert isolation.failure.outcome("auth.result") == "VALIDATION_FAILED"
    assert [(c.factor, c.passing, c.failing) for c in isolation.minimal_difference] == [
        ("clients[1].token", ABSENT, "expired")
    ]
    assert isolation.isolated_divergence.failing_connection.outcome("auth.result") == "VALIDATION_FAILED"


def test_a_point_reached_again_after_a_retry_is_not_the_divergence(local_debug: Profile) -> None:
    """user_id "demo" is a forbidden placeholder (spec 2, validation 2): context creation fails, the retry
    with the same id (spec 5.4 step 4) generates IDs again and fails again -> 1008 (spec 5.4 step 5). The ID
    generator succeeded both times ("generator then generator" against "generator"); the first point that
    decided differently is context.creation: created vs failed."""
    from investigation.analysis.isolate import _describe_alignment

    isolation = isolate_profiles(local_debug, varied(local_debug, "demo-user", clients0__user_id="demo"))
    assert isolation.failure.outcome("context.id_generation") == "generator then generator"
    assert isolation.first_divergence.divergence == Divergence("context.creation", "created", "failed")
    assert _describe_alignment(isolation.isolated_divergence).startswith(
        "context.creation: created (passing) vs failed (failing) [")


def test_a_divergence_only_in_a_repeated_outcome_names_its_position() -> None:
    """Every point's first outcome agrees; the failing side reached the ID generator a 2nd time and fell back
    (spec 3.2): the divergence is that 2nd outcome, which the passing side never had."""
    from investigation.analysis.isolate import (
        AlignedDivergence,
        RepeatDivergence,
        _describe_alignment,
        trace_divergence,
    )

    passing = (Decision("context.id_generation", "generator"), Decision("context.creation", "created_on_retry"))
    failing = (Decision("context.id_generation", "generator then fallback"),
               Decision("context.creation", "created_on_retry"))
    divergence = trace_divergence(passing, failing)
    assert divergence == RepeatDivergence("context.id_generation", None, "fallback", 1)
    aligned = AlignedDivergence(connection(0, None), connection(1, 1008), divergence)
    assert _describe_alignment(aligned).startswith(
        "context.id_generation, 2nd outcome: not reached (passing) vs fallback (failing) [")
    assert trace_divergence(passing, passing) is None


def test_the_cause_chain_of_a_close_no_exception_decided_reads_none(gate_isolation: Any, e2e_isolation: Any) -> None:
    """The startup gate closes 1011 "Service startup incomplete" without an exception (spec 1 step 9): no
    empty table headed "outermost exception first", but "cause chain: none" as chapter 01 says it. The cap
    refusal keeps its table: FactoryInitializationError caused by RuntimeError (spec 4.1, 4.2)."""
    from investigation.charts.isolation import cause_chain_table

    assert cause_chain_table(gate_isolation) == (
        "connection #0 of gate-staging closed 1011 Service startup incomplete; cause chain: none")
    lines = cause_chain_table(e2e_isolation).splitlines()
    assert lines[0].endswith(" of staging-e2e closed 1011 Factory SSOT validation failed; outermost exception first")
    assert [line.split()[:2] for line in lines[3:]] == [["0", "FactoryInitializationError"], ["1", "RuntimeError"]]


def test_the_failing_close_table_and_the_adverse_outcomes_agree_where_both_speak() -> None:
    """isolate.FAILING_CLOSE_DECISIONS (where the route decides a failing close) against trace.ADVERSE_OUTCOMES
    (what takes a connection off its normal path). The startup gate is in both, with its one failing outcome,
    timeout (spec 1 step 9). Every other entry is a close decided after a cause (spec 1 steps 5 and 8): a failed
    auth result follows no token (5.1), a refused token (5.3) or a failed context (5.4); a
    FactoryInitializationError, or V5's capacity error, follows a failed validation (4.3, 4.4) or the cap (4.2).
    So on every shipped profile under every variant, each refused connection's deciding decision is adverse and
    comes no later than the refusing one."""
    from investigation.analysis.isolate import FAILING_CLOSE_DECISIONS, refusing_decision
    from investigation.backend.variants import VARIANTS
    from investigation.profiles import list_profiles
    from investigation.trace import ADVERSE_OUTCOMES, is_adverse

    shared = set(FAILING_CLOSE_DECISIONS) & set(ADVERSE_OUTCOMES)
    assert shared == {"route.startup_gate"}
    assert FAILING_CLOSE_DECISIONS["route.startup_gate"] == ADVERSE_OUTCOMES["route.startup_gate"] == {"timeout"}
    refused = [c for profile in list_profiles() for variant in VARIANTS for c in simulate(profile, variant).connections
               if refusing_decision(c) is not None]
    assert refused  # the shipped profiles do refuse connections (01: staging's factory closes)
    for connection in refused:
        deciding, refusing = connection.deciding_decision(), refusing_decision(connection)
        assert deciding is not None and is_adverse(deciding.point, deciding.outcome), connection
        assert connection.decisions.index(deciding) <= connection.decisions.index(refusing), connection


def test_the_passing_mixture_context_without_timing_names_the_fields_once() -> None:
    """Only a non-timing field (user_id) of the difference's client is already in dd's passing mixture: the
    sentence names it plainly, "that client w's user_id", not "w's its user_id" (audit 13, all worlds)."""
    from types import SimpleNamespace

    from investigation.analysis.isolate import FactorChange, passing_mixture_context

    isolation = SimpleNamespace(
        failing="w", minimal_difference=(FactorChange("clients[0].connections", 1, 8),),
        passing_mixture=(FactorChange("clients[0].user_id", "local-user", "707070707070707070707"),))
    assert passing_mixture_context(isolation) == (  # type: ignore[arg-type]
        ", applied to dd's passing mixture, which already gives that client w's user_id")
