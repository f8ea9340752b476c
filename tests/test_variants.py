"""The candidate changes (spec section 8): each differs from the original exactly where the
spec says, the adversarial set, the verdict rules, the matrix, the chart.

Expected values come from spec/backend.md and hand computation (each scenario says how).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from investigation.analysis import adversarial
from investigation.analysis.adversarial import (
    CONTEXT_CASES,
    TOKEN_CASES,
    AdversarialOutcome,
    accepted_members,
    adversarial_outcomes,
    adversarial_table,
    context_outcome,
    token_environments,
    unchecked_context,
    unsigned_token_accepted,
)
from investigation.analysis.variants import (
    DELAYED,
    DELAYS,
    EARLIER,
    INTRODUCED,
    LONG_RUN_PROFILE,
    MIXED,
    NEITHER_FAILS,
    NO_EFFECT,
    REMOVED,
    REMOVES_EVERYWHERE,
    REMOVES_SOMEWHERE,
    SAFER,
    SAME,
    SAME_TIME,
    WEAKER,
    WORSE,
    MatrixCell,
    SafetyRow,
    VariantMatrix,
    VariantReport,
    VariantVerdict,
    build_report,
    cell_from_run,
    change_size,
    failure_effect,
    failure_verdict,
    long_run_profile,
    matrix_overview,
    recommend,
    safety_row,
    safety_verdict,
    selected_variants,
    variant_lessons,
    variant_matrix,
    variant_report,
)
from investigation.backend.context import UserExecutionContext
from investigation.backend.variants import VARIANTS
from investigation.charts.variants import variant_chart
from investigation.notebook_errors import NotebookParameterError
from investigation.profiles import Profile, list_profiles, load_profile, profile_from_dict
from investigation.simulate import simulate
from investigation.trace import CauseLink, ConnectionResult, Decision, RunResult
from tests.conftest import (
    CLOUD_RUN_STAGING_ENV,
    SECRET,
    STAGING_SECRET,
    ScriptedSocket,
    bearer,
    claims_for,
    log_messages,
    mint,
    welcome_frames,
)

STAGING_ENV = CLOUD_RUN_STAGING_ENV
REAL_USER = "117364829105738291046"
E2E_HEADERS = {"X-Test-Type": "E2E", "X-Test-Environment": "staging", "X-E2E-Test": "true", "X-Test-Mode": "true"}
CANDIDATES = ("V1", "V2", "V3", "V4", "V5")


def scenario(name: str, env: dict[str, str], **client: Any) -> Profile:
    """A one-client, one-instance profile built in code."""
    data = {
        "description": f"test scenario {name}",
        "env": env,
        "clients": [{"name": "client", "user_id": REAL_USER, **client}],
    }
    return profile_from_dict(name, data, source="<test>")


def observable(run: RunResult) -> list[tuple[Any, ...]]:
    """What a variant may change: per connection its user, close, decisions and cause chain."""
    return [(c.index, c.user_id, c.close_code, c.close_reason, c.decisions, c.cause_chain) for c in run.connections]


def differing_points(original: RunResult, candidate: RunResult) -> set[str]:
    """Decision points whose outcome differs between two runs of the same profile."""
    points: set[str] = set()
    for before, after in zip(original.connections, candidate.connections, strict=True):
        first, second = dict((d.point, d.outcome) for d in before.decisions), dict(
            (d.point, d.outcome) for d in after.decisions
        )
        points |= {point for point in first.keys() | second.keys() if first.get(point) != second.get(point)}
    return points


def until_traffic_ends(profile: Profile) -> Profile:
    """The profile without its cut-off, so every connection ends on its own.

    A connection whose client leaves exactly at ``duration_s`` (development's last one does)
    is recorded with or without its disconnect depending on the order the event loop runs
    simultaneous events in, and any extra ``await`` elsewhere shifts that order.
    """
    return profile.model_copy(update={"duration_s": None})


@pytest.fixture(scope="module")
def default_runs() -> dict[tuple[str, str], RunResult]:
    return {(p.name, v): simulate(until_traffic_ends(p), v) for p in list_profiles() for v in VARIANTS}


def _refused_in_start_agent(connection: ConnectionResult) -> bool:
    """A start_agent message whose manager creation raised (spec 1, step 12): its factory decisions are not
    recorded (the handler runs untraced), so a refusal at the cap shows only in this tally."""
    return "refused_" in (connection.outcome("route.start_agent") or "")


def _reaches_the_cap(run: RunResult) -> bool:
    return any(c.outcome("factory.manager_cap") not in {None, "below"} or _refused_in_start_agent(c)
               for c in run.connections)


def _bypasses_when_deployed(run: RunResult) -> bool:
    return any(
        c.outcome("auth.e2e_bypass") == "yes" and c.outcome("route.environment") in {"staging", "production"}
        for c in run.connections
    )


# --- each variant is identical to the original outside the changed behaviour -------------------


# Hand-derived from the profiles' env (spec 4.3, 6, 8): where the original validates strictly and
# the variant's extra signal is present. local-debug: ENVIRONMENT=test makes a test context, whose
# defaults include TESTING=1 (V1's new e2e flag) and ENVIRONMENT=test (V2's list). pytest: TESTING=1.
# development: ENVIRONMENT=development (V2). staging-env-whitespace and staging-no-cloud-signal: PORT
# is set (V2). Every other profile has K_SERVICE or ENVIRONMENT=staging: relaxed already.
VALIDATION_MODE_CHANGES = {
    "V1": {"local-debug", "pytest"},
    "V2": {"development", "local-debug", "pytest", "staging-env-whitespace", "staging-no-cloud-signal"},
}


@pytest.mark.parametrize("variant", ["V1", "V2"])
def test_detection_variants_change_only_the_validation_mode_where_spec_8_adds_a_signal(
    default_runs: dict[tuple[str, str], RunResult], variant: str
) -> None:
    changed = set()
    for profile in {name for name, _ in default_runs}:
        original, candidate = default_runs[(profile, "original")], default_runs[(profile, variant)]
        points = differing_points(original, candidate)
        assert points <= {"factory.validation_mode"}, (profile, points)
        if points:
            changed.add(profile)
            assert {c.outcome("factory.validation_mode") for c in original.connections} == {"strict"}
            assert {c.outcome("factory.validation_mode") for c in candidate.connections} == {"relaxed"}
        assert [c.close_code for c in original.connections] == [c.close_code for c in candidate.connections]
    assert changed == VALIDATION_MODE_CHANGES[variant]


def test_a_start_agent_refused_at_the_cap_counts_as_reaching_it() -> None:
    """One user, three connections of one client, each sending one start_agent: each connection holds a
    manager and leaves one more (spec 1, step 12), so the third connection's manager is the 5th and its
    start_agent asks for a 6th, which the cap refuses inside the handler (no close, no failing connection).
    No connection's own manager_cap decision says exceeded, yet V3/V4 change what happens there."""
    data = {
        "description": "one browser tab reconnecting three times, each time starting an agent",
        "env": {"ENVIRONMENT": "staging", "JWT_SECRET_KEY": "test-only-secret-at-least-32-characters"},
        "clients": [{"name": "tab", "user_id": "104729384756102938475", "connections": 3, "spacing_s": 60.0,
                     "hold_s": 45.0, "messages": [{"at_s": 20.0, "type": "start_agent"}]}],
    }
    run = simulate(profile_from_dict("tab-agents", data, source="<test>"))
    assert all(c.outcome("factory.manager_cap") == "below" for c in run.connections)
    assert [_refused_in_start_agent(c) for c in run.connections] == [False, False, True]
    assert _reaches_the_cap(run)


@pytest.mark.parametrize("variant", ["V3", "V4"])
def test_capacity_variants_are_identical_wherever_the_original_never_reaches_the_cap(
    default_runs: dict[tuple[str, str], RunResult], variant: str
) -> None:
    """V3 only moves the cap; V4 only lowers counts, which the cap alone reads (spec 4.2)."""
    for profile in sorted({name for name, _ in default_runs}):
        original, candidate = default_runs[(profile, "original")], default_runs[(profile, variant)]
        if not _reaches_the_cap(original):
            assert observable(candidate) == observable(original), profile
    assert observable(default_runs[("staging-e2e", variant)]) != observable(default_runs[("staging-e2e", "original")])


def test_v5_is_identical_wherever_no_cap_refusal_and_no_deployed_bypass(
    default_runs: dict[tuple[str, str], RunResult],
) -> None:
    for profile in sorted({name for name, _ in default_runs}):
        original, candidate = default_runs[(profile, "original")], default_runs[(profile, "V5")]
        exceeded = any(c.outcome("factory.manager_cap") == "exceeded" or _refused_in_start_agent(c)
                       for c in original.connections)
        if not exceeded and not _bypasses_when_deployed(original):
            assert observable(candidate) == observable(original), profile


# --- each variant differs in a scenario built to exercise its change ----------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"K_REVISION": "netra-backend-staging-00042-kx7"},
        {"TESTING": "1"},
        {"GOOGLE_CLOUD_PROJECT": "netra-staging"},
    ],
    ids=["K_REVISION only", "TESTING=1", "staging GCP project"],
)
def test_v1_relaxes_validation_for_its_broader_signals(env: dict[str, str]) -> None:
    """Original: no K_SERVICE, not staging, no E2E flag -> strict; V1 counts these (spec 8)."""
    blank_thread = CONTEXT_CASES[0]
    assert blank_thread.name == "blank thread_id"
    assert context_outcome(env, "original", blank_thread) == "FactoryInitializationError"
    assert context_outcome(env, "V1", blank_thread) == "accepted"
    assert context_outcome(env, "V2", blank_thread) == ("accepted" if "GOOGLE_CLOUD_PROJECT" in env or
                                                        "TESTING" in env else "FactoryInitializationError")


# Spec 8, V1: "cloud = any of" these six. The values name no staging project, so the staging
# GCP-project rule cannot be what relaxes; the original counts K_SERVICE alone (spec 4.3).
V1_CLOUD_SIGNALS = (
    "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "GOOGLE_CLOUD_PROJECT", "GAE_SERVICE", "CLOUD_RUN_INSTANCE_ID",
)


@pytest.mark.parametrize("signal", V1_CLOUD_SIGNALS)
def test_v1_relaxes_validation_for_each_of_its_six_cloud_signals(signal: str) -> None:
    env = {signal: "netra-backend-production"}
    original = "accepted" if signal == "K_SERVICE" else "FactoryInitializationError"
    assert context_outcome(env, "original", CONTEXT_CASES[0]) == original
    assert context_outcome(env, "V1", CONTEXT_CASES[0]) == "accepted"


@pytest.mark.parametrize("value", ["true", "yes", "on", "TRUE", "01", " 1"])
def test_v1_counts_testing_as_an_e2e_flag_only_when_it_equals_1(value: str) -> None:
    """Spec 8: e2e also TESTING == "1", an exact compare. "true", "yes", "on" make a test context
    (spec 6), whose ENVIRONMENT default "test" V1 does not relax for; no cloud signal is set."""
    assert context_outcome({"TESTING": value}, "V1", CONTEXT_CASES[0]) == "FactoryInitializationError"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_only_v1_adds_the_validation_env_debug_log(harness: Any, variant: str) -> None:
    """Spec 8: the extra logging belongs to V1 (the report's recommendation); the original and
    the other candidates validate the same staging connection without it."""
    h = harness({"ENVIRONMENT": "staging", "K_SERVICE": "netra-backend-staging", "JWT_SECRET_STAGING": SECRET},
                variant=VARIANTS[variant])
    socket = ScriptedSocket(headers=bearer(mint(claims_for())), hold_s=1.0)
    h.connect(socket)
    assert len(welcome_frames(socket)) == 1
    assert bool([text for text in log_messages(h) if "VALIDATION ENV DEBUG" in text]) is (variant == "V1")


def test_v1_is_still_strict_in_development() -> None:
    assert context_outcome({"ENVIRONMENT": "development"}, "V1", CONTEXT_CASES[0]) == "FactoryInitializationError"


def test_v1_connection_trace_differs_only_in_the_validation_mode() -> None:
    profile = scenario("k-revision", {"K_REVISION": "svc-00001-abc", "JWT_SECRET_KEY": STAGING_SECRET})
    original, v1 = simulate(profile), simulate(profile, "V1")
    assert original.connections[0].outcome("factory.validation_mode") == "strict"
    assert v1.connections[0].outcome("factory.validation_mode") == "relaxed"
    assert differing_points(original, v1) == {"factory.validation_mode"}


@pytest.mark.parametrize(
    ("env", "v2_outcome"),
    [
        ({"ENVIRONMENT": "production", "PORT": "8080"}, "accepted"),
        ({"ENVIRONMENT": "development"}, "accepted"),
        ({"ENVIRONMENT": "production"}, "FactoryInitializationError"),
    ],
    ids=["PORT set", "ENVIRONMENT=development", "production without PORT (last resort)"],
)
def test_v2_relaxes_for_port_and_development_and_stays_strict_otherwise(env: dict[str, str], v2_outcome: str) -> None:
    assert context_outcome(env, "original", CONTEXT_CASES[0]) == "FactoryInitializationError"
    assert context_outcome(env, "V2", CONTEXT_CASES[0]) == v2_outcome


@pytest.mark.parametrize("environment", ["test", "testing", "dev", "development"])
def test_v2_relaxes_for_each_listed_environment_the_original_validates_strictly(environment: str) -> None:
    """Spec 8: ENVIRONMENT in {staging, test, testing, dev, development}; staging is relaxed already
    (spec 4.3). No cloud signal, no E2E flag, no GCP project, no PORT: only the list can relax."""
    env = {"ENVIRONMENT": environment}
    assert context_outcome(env, "original", CONTEXT_CASES[0]) == "FactoryInitializationError"
    assert context_outcome(env, "V2", CONTEXT_CASES[0]) == "accepted"


def test_v2_relaxes_when_port_is_set_even_to_an_empty_value() -> None:
    """Spec 8: "PORT set" -- a variable set to "" is set."""
    env = {"ENVIRONMENT": "production", "PORT": ""}
    assert context_outcome(env, "V2", CONTEXT_CASES[0]) == "accepted"


def reconnects(count: int) -> Profile:
    """One staging user reconnecting `count` times, 2 s apart, each connection held 1 s."""
    return scenario("reconnects", STAGING_ENV, connections=count, spacing_s=2.0, hold_s=1.0)


def test_v3_accepts_the_6th_to_20th_manager_and_refuses_the_21st() -> None:
    """Counts never drop (spec 4.2) and nothing is 300 s stale within 42 s: cap 5 vs cap 20."""
    original, v3 = simulate(reconnects(21)), simulate(reconnects(21), "V3")
    assert [c.close_code for c in original.connections] == [None] * 5 + [1011] * 16
    assert [c.close_code for c in v3.connections] == [None] * 20 + [1011]
    assert "(20)" in v3.connections[20].cause_chain[-1].message
    assert observable(v3)[:5] == observable(original)[:5]


def test_v4_lets_one_user_reconnect_indefinitely() -> None:
    original, v4 = simulate(reconnects(10)), simulate(reconnects(10), "V4")
    assert [c.close_code for c in original.connections] == [None] * 5 + [1011] * 5
    assert [c.close_code for c in v4.connections] == [None] * 10


def test_v4_does_not_change_six_simultaneous_connections() -> None:
    """Release happens only on disconnect: six open at once still hit the cap of five."""
    together = scenario("six-tabs", STAGING_ENV, connections=6, spacing_s=1.0, hold_s=60.0)
    original, v4 = simulate(together), simulate(together, "V4")
    assert [c.close_code for c in v4.connections] == [None] * 5 + [1011]
    assert observable(v4) == observable(original)


def test_v4_releases_the_manager_of_a_connection_refused_at_the_startup_gate() -> None:
    """Spec 1 steps 7, 9, 14 and 8 V4: the manager is made before the startup gate refuses
    (1011 after 30 s of polling); the original keeps it, so the 6th connection meets the cap of 5,
    V4 releases it when the connection ends, so every connection reaches the gate. 35 s apart,
    no manager is 300 s old (spec 4.2's emergency cleanup frees nothing)."""
    data = {
        "description": "staging whose startup never completes",
        "env": STAGING_ENV,
        "startup": {"complete": False},
        "clients": [{"name": "client", "user_id": REAL_USER, "connections": 7, "spacing_s": 35.0, "hold_s": 34.0}],
    }
    profile = profile_from_dict("startup-never", data, source="<test>")
    gate, cap = "Service startup incomplete", "Factory SSOT validation failed"
    assert [c.close_reason for c in simulate(profile).connections] == [gate] * 5 + [cap] * 2
    assert [c.close_reason for c in simulate(profile, "V4").connections] == [gate] * 7


def test_v4_releases_only_the_disconnected_connections_manager() -> None:
    """Four tabs stay open, a fifth connection comes and goes, then two more tabs open. The
    original: count 5 stays, both later tabs refused. V4: the short one's manager is released
    (count 4), the 6th connection takes the 5th slot, the 7th meets the cap (four tabs and the
    6th still open, none stale)."""
    data = {
        "description": "four tabs, a short visit, two more tabs",
        "env": STAGING_ENV,
        "clients": [
            {"name": "tabs", "user_id": REAL_USER, "connections": 4, "spacing_s": 1.0, "hold_s": 100.0},
            {"name": "short", "user_id": REAL_USER, "start_s": 10.0, "hold_s": 1.0},
            {"name": "late", "user_id": REAL_USER, "connections": 2, "start_s": 20.0, "spacing_s": 1.0,
             "hold_s": 100.0},
        ],
    }
    profile = profile_from_dict("overlap", data, source="<test>")
    assert [c.close_code for c in simulate(profile).connections] == [None] * 5 + [1011] * 2
    assert [c.close_code for c in simulate(profile, "V4").connections] == [None] * 6 + [1011]


def test_v5_closes_a_capacity_refusal_with_1013() -> None:
    original, v5 = simulate(reconnects(6)), simulate(reconnects(6), "V5")
    assert (original.connections[5].close_code, original.connections[5].close_reason) == (
        1011, "Factory SSOT validation failed")
    assert (v5.connections[5].close_code, v5.connections[5].close_reason) == (1013, "Service temporarily unavailable")
    assert observable(v5)[:5] == observable(original)[:5]


@pytest.mark.parametrize("profile_name", ["staging-cloud-run", "production-cloud-run"])
def test_v5_refuses_the_e2e_bypass_in_staging_and_production(profile_name: str) -> None:
    env = dict(load_profile(profile_name).env)
    bypassing = scenario("e2e", env, user_id="staging-e2e-user-001", token="e2e_suite", headers=E2E_HEADERS)
    original, v5 = simulate(bypassing).connections[0], simulate(bypassing, "V5").connections[0]
    assert (original.outcome("auth.e2e_bypass"), original.outcome("auth.result")) == ("yes", "success")
    assert v5.outcome("auth.e2e_bypass") == "no"
    assert (v5.close_code, v5.close_reason) == (1008, "SSOT Auth failed")


def test_v5_keeps_the_bypass_in_development() -> None:
    env = {"ENVIRONMENT": "development", "JWT_SECRET_KEY": "test-only-development-secret-0123456789abcdef"}
    bypassing = scenario("e2e-dev", env, user_id="staging-e2e-user-001", token="e2e_suite", headers=E2E_HEADERS)
    assert observable(simulate(bypassing, "V5")) == observable(simulate(bypassing))
    assert simulate(bypassing, "V5").connections[0].outcome("auth.e2e_bypass") == "yes"


def test_change_sizes_follow_spec_8() -> None:
    """V1: cloud signals, e2e flags, staging GCP project; V2: one switch; V3, V4: one; V5: two."""
    assert {name: change_size(VARIANTS[name]) for name in VARIANTS} == {
        "original": 0, "V1": 3, "V2": 1, "V3": 1, "V4": 1, "V5": 2,
    }


# --- the adversarial set ------------------------------------------------------------------------


def outcomes_by_member(variant: str) -> dict[str, str]:
    return {o.member: o.outcome for o in adversarial_outcomes(variant)}


def test_unchecked_context_is_a_real_context_with_the_given_fields() -> None:
    context = unchecked_context(thread_id="   ")
    assert type(context) is UserExecutionContext
    assert context.thread_id == "   " and context.user_id == adversarial.VICTIM_USER_ID


def test_the_constructor_refuses_the_injected_contexts_whose_ids_it_checks() -> None:
    """Spec 2: the constructor refuses falsy, non-str or blank user/thread/run/request ids (step 1) and placeholder
    values such as "placeholder" (step 2); it never checks websocket_client_id, and a foreign class is built by its
    own constructor. So of the 8 context cases it refuses 5, in both environments."""
    refused = {o.case for o in adversarial_outcomes("original") if o.kind == "context" and o.constructor_refuses}
    kept = {o.case for o in adversarial_outcomes("original") if o.kind == "context" and not o.constructor_refuses}
    assert refused == {"blank thread_id", "missing run_id", "empty request_id", "non-string user_id", "placeholder ids"}
    assert refused.isdisjoint(kept)


# data/profiles holds 9 profiles. Local: development (ENVIRONMENT=development), local-debug (ENVIRONMENT=test),
# pytest (pytest loaded). The other 6 are deployed; staging-e2e's [env] table is staging-cloud-run's, key for key,
# and neither sets [process] or [startup], so one connection meets the same backend in both: counted once, under the
# first name. 5 environments, the two without ENVIRONMENT among them.
DEPLOYED_ENVIRONMENTS = ("cloud-run-env-missing", "production-cloud-run", "staging-cloud-run",
                         "staging-env-whitespace", "staging-no-cloud-signal")


def test_tokens_run_in_every_deployed_environment_once() -> None:
    assert token_environments() == DEPLOYED_ENVIRONMENTS


def test_adversarial_set_has_every_case_in_every_environment() -> None:
    # 8 contexts x 2 environments + 5 tokens x 5 deployed environments = 16 + 25 = 41
    expected = len(CONTEXT_CASES) * 2 + len(TOKEN_CASES) * len(DEPLOYED_ENVIRONMENTS)
    assert len(adversarial_outcomes("original")) == expected == 41


def test_original_relaxed_mode_only_warns_on_blank_ids_and_strict_mode_refuses_them() -> None:
    """Spec 4.3.4: relaxed never raises on thread/run/request/client ids; 4.4 refuses them."""
    found = outcomes_by_member("original")
    for case in ("blank thread_id", "missing run_id", "empty request_id", "blank websocket_client_id"):
        assert found[f"context: {case} [staging-cloud-run]"] == "accepted"
        assert found[f"context: {case} [staging-no-cloud-signal]"] == "FactoryInitializationError"


def steps_by_member(variant: str) -> dict[str, tuple[bool, str, str]]:
    """Member -> (accepted, create_websocket_manager's own result, the route's manager step)."""
    return {o.member: (o.accepted, o.outcome, o.route_step) for o in adversarial_outcomes(variant)}


RELAXED_VALUE_ERRORS = ("foreign class (supervisor)", "foreign class (models)", "non-string user_id")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_plain_value_error_in_relaxed_validation_gets_the_emergency_stub(variant: str) -> None:
    """staging-cloud-run (ENVIRONMENT=staging, K_SERVICE) validates relaxed under every variant (spec 4.3, 8).

    Relaxed validation raises a plain ValueError ("STAGING CRITICAL: Expected UserExecutionContext" for a
    foreign class, "Invalid user_id format" for an int), with neither "SSOT" nor "factory", so
    create_websocket_manager re-raises it unchanged (4.1). The route retries once, the retry raises the same,
    and the connection goes on with the emergency stub (1 step 8, 1.2): the member is let through.
    """
    found = steps_by_member(variant)
    for case in RELAXED_VALUE_ERRORS:
        assert found[f"context: {case} [staging-cloud-run]"] == (True, "ValueError", "emergency_stub")


@pytest.mark.parametrize("variant", ["original", "V1", "V3", "V4", "V5"])
def test_a_foreign_class_in_strict_validation_is_closed_1011(variant: str) -> None:
    """staging-no-cloud-signal has no ENVIRONMENT, K_SERVICE or E2E flag: strict (4.3); V1 adds cloud signals
    and TESTING it does not have, V3-V5 leave validation alone (8). Strict 4.4.1 raises "SSOT VIOLATION", which
    4.1 wraps into FactoryInitializationError: the route closes 1011 "Factory SSOT validation failed" (1 step 8).
    """
    found = steps_by_member(variant)
    for case in ("foreign class (supervisor)", "foreign class (models)"):
        assert found[f"context: {case} [staging-no-cloud-signal]"] == (
            False, "FactoryInitializationError", "1011 Factory SSOT validation failed")
    accepted, raw, step = found["context: non-string user_id [staging-no-cloud-signal]"]
    assert (accepted, raw, step.split()[0]) == (False, "FactoryInitializationError", "1011")


def test_v2_lets_every_foreign_class_and_non_string_user_id_through_on_the_stub() -> None:
    """V2 validates relaxed when PORT is set (spec 8), and staging-no-cloud-signal sets PORT=8080."""
    found = steps_by_member("V2")
    for case in RELAXED_VALUE_ERRORS:
        for environment in ("staging-cloud-run", "staging-no-cloud-signal"):
            assert found[f"context: {case} [{environment}]"] == (True, "ValueError", "emergency_stub")


def test_accepted_counts_follow_the_route() -> None:
    """Contexts: relaxed blank ids (4), placeholder ids in both environments (2), relaxed ValueErrors on the stub
    (3) = 9; V2 validates relaxed in both (PORT) and lets all 16 through. Tokens: the two E2E-header cases in the
    5 deployed environments (5.2: the bypass holds in every environment) = 10; V1-V4 leave authentication alone.
    V5 refuses the bypass where ENVIRONMENT, lower-cased and not stripped ("development" when unset, spec 1 step 1),
    is staging or production (8): production-cloud-run and staging-cloud-run refuse, leaving 2 cases x 3
    (cloud-run-env-missing and staging-no-cloud-signal unset, staging-env-whitespace 'staging ') = 6.
    original 9 + 10 = 19; V2 16 + 10 = 26; V5 9 + 6 = 15."""
    counts = {variant: len(accepted_members(variant)) for variant in VARIANTS}
    assert counts == {"original": 19, "V1": 19, "V2": 26, "V3": 19, "V4": 19, "V5": 15}


def test_the_table_shows_what_create_websocket_manager_raised_and_what_the_route_did() -> None:
    rows = {line.split("  ")[0].strip(): line for line in adversarial_table(("original",)).splitlines()}
    assert rows["context: foreign class (models) [staging-cloud-run]"].endswith("ACCEPTED (ValueError, stub manager)")
    assert rows["context: foreign class (models) [staging-no-cloud-signal]"].endswith(
        "FactoryInitializationError (close 1011)")
    assert rows["accepted"].endswith("19 of 41")  # test_accepted_counts_follow_the_route


def test_placeholder_ids_pass_the_factory_in_both_modes() -> None:
    """Neither 4.3 nor 4.4 looks at placeholder values (only the context constructor does)."""
    found = outcomes_by_member("original")
    assert found["context: placeholder ids [staging-cloud-run]"] == "accepted"
    assert found["context: placeholder ids [staging-no-cloud-signal]"] == "accepted"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bad_tokens_without_e2e_headers_are_refused_by_every_variant(variant: str) -> None:
    found = outcomes_by_member(variant)
    for environment in DEPLOYED_ENVIRONMENTS:
        assert found[f"token: bad signature [{environment}]"] == "VALIDATION_FAILED"
        assert found[f"token: expired [{environment}]"] == "VALIDATION_FAILED"
        assert found[f"token: alg none [{environment}]"] == "INVALID_FORMAT"  # empty signature part


def test_forged_e2e_headers_get_in_everywhere_under_the_original() -> None:
    """Spec 5.2: header detection bypasses the signature check in every environment."""
    found = outcomes_by_member("original")
    for environment in DEPLOYED_ENVIRONMENTS:
        assert found[f"token: forged E2E headers [{environment}]"] == "success"
        assert found[f"token: alg none + E2E headers [{environment}]"] == "success"
    assert unsigned_token_accepted("original")


def test_v5_refusal_keys_on_the_exact_environment_value() -> None:
    """V5 compares ENVIRONMENT as the route reads it (spec 1 step 1: lower-cased, not stripped, "development" when
    unset) with staging and production (8): "staging " is not refused, and neither is an unset ENVIRONMENT."""
    found = outcomes_by_member("V5")
    assert found["token: forged E2E headers [staging-cloud-run]"] == "VALIDATION_FAILED"
    assert found["token: forged E2E headers [production-cloud-run]"] == "VALIDATION_FAILED"
    for environment in ("staging-env-whitespace", "cloud-run-env-missing", "staging-no-cloud-signal"):
        assert found[f"token: forged E2E headers [{environment}]"] == "success"
        assert found[f"token: alg none + E2E headers [{environment}]"] == "success"
    assert unsigned_token_accepted("V5")


def test_the_original_accepts_exactly_the_members_its_outcomes_let_through() -> None:
    """Relaxed blank ids (4.3.4), placeholder ids (both modes), relaxed ValueErrors on the emergency stub
    (4.3.1, 4.3.3, 1 step 8) and every E2E-header token (5.2)."""
    blank_ids = ("blank thread_id", "missing run_id", "empty request_id", "blank websocket_client_id")
    expected = {f"context: {case} [staging-cloud-run]" for case in (*blank_ids, *RELAXED_VALUE_ERRORS)}
    expected |= {f"context: placeholder ids [{env}]" for env in ("staging-cloud-run", "staging-no-cloud-signal")}
    expected |= {f"token: {case} [{env}]" for case in ("forged E2E headers", "alg none + E2E headers")
                 for env in DEPLOYED_ENVIRONMENTS}
    assert accepted_members("original") == expected


def test_the_unsigned_cases_are_the_alg_none_tokens() -> None:
    assert [case.name for case in TOKEN_CASES if case.unsigned] == ["alg none", "alg none + E2E headers"]
    assert all((case.token == "alg_none") == case.unsigned for case in TOKEN_CASES)


def test_unsigned_token_accepted_needs_an_unsigned_member_that_was_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    refused_unsigned = AdversarialOutcome("token: alg none [s]", "alg none", "s", "token", False, "INVALID_FORMAT", True)
    accepted_signed = AdversarialOutcome("token: forged [s]", "forged", "s", "token", True, "success")
    accepted_unsigned = AdversarialOutcome("token: alg none [p]", "alg none", "p", "token", True, "success", True)
    sets = {"V8": (refused_unsigned, accepted_signed), "V9": (refused_unsigned, accepted_unsigned)}
    monkeypatch.setattr(adversarial, "adversarial_outcomes", lambda variant: sets[variant])
    assert not unsigned_token_accepted("V8")
    assert unsigned_token_accepted("V9")
    assert accepted_members("V8") == {"token: forged [s]"}
    table = adversarial_table(("V8",)).splitlines()
    assert [line.split() for line in table if line.startswith(("token", "accepted"))] == [
        ["token:", "alg", "none", "[s]", "INVALID_FORMAT"], ["token:", "forged", "[s]", "ACCEPTED"],
        ["accepted", "1", "of", "2"],
    ]


# --- verdict rules on hand-built cells ----------------------------------------------------------


def cell(variant: str, first: float | None, profile: str = "p") -> MatrixCell:
    return MatrixCell(profile, variant, (("open", 1),), (), first, None if first is None else "1011 x")


@pytest.mark.parametrize(
    ("original_first", "candidate_first", "effect"),
    [
        (None, None, NEITHER_FAILS),
        (10.0, None, REMOVED),
        (10.0, 20.0, DELAYED),
        (10.0, 10.0, SAME_TIME),
        (10.0, 0.0, EARLIER),
        (None, 5.0, INTRODUCED),
    ],
)
def test_failure_effect(original_first: float | None, candidate_first: float | None, effect: str) -> None:
    assert failure_effect(cell("original", original_first), cell("V9", candidate_first)) == effect


def test_overview_lists_a_profile_where_the_original_refuses_only_with_1008() -> None:
    refused = MatrixCell("p1", "original", (("1008", 2), ("open", 1)), ("u",), 1.0, "1008 x")
    passes = MatrixCell("p2", "original", (("open", 3),), (), None, None)
    matrix = VariantMatrix(("original",), ("p1", "p2"), (refused, passes), ())
    text = matrix_overview(VariantReport(matrix, (), None)).data
    assert text.startswith("2 profiles x 1 variant = 2 runs. ")
    assert "The original refuses connections on 1 profile (p1): 2 connections in all, 0 of them" in text


def test_overview_counts_one_refused_connection_in_the_singular() -> None:
    refused = MatrixCell("p1", "original", (("1011", 1),), ("u",), 1.0, "1011 x")
    matrix = VariantMatrix(("original",), ("p1",), (refused,), ())
    text = matrix_overview(VariantReport(matrix, (), None)).data
    assert text.startswith("1 profile x 1 variant = 1 run. ")
    assert "on 1 profile (p1): 1 connection in all, 0 of them" in text


def test_overview_counts_the_long_run_as_a_run_not_as_a_profile() -> None:
    # the long run is built by this chapter from staging-e2e; it is not a profile of data/profiles, so a
    # count that includes it counts runs, and says which of them is the long run
    refused = MatrixCell("p1", "original", (("1011", 2),), ("u",), 1.0, "1011 x")
    long_refused = MatrixCell(LONG_RUN_PROFILE, "original", (("1011", 3),), ("u",), 5.0, "1011 x")
    passes = MatrixCell("p2", "original", (("open", 3),), (), None, None)
    matrix = VariantMatrix(("original",), ("p1", "p2", LONG_RUN_PROFILE), (refused, passes, long_refused), ())
    text = matrix_overview(VariantReport(matrix, (), None)).data
    assert text.startswith(f"(2 profiles + the long E2E run {LONG_RUN_PROFILE}) x 1 variant = 3 runs. ")
    assert (f"The original refuses connections on 2 runs (1 profile: p1; and the long E2E run {LONG_RUN_PROFILE}): "
            "5 connections in all, 0 of them") in text
    assert "2 profiles (" not in text


def refused_connection(index: int, user: str, at_s: float, *causes: CauseLink) -> ConnectionResult:
    """A connection the factory refused: authenticated first (spec 1: auth precedes the manager step; its token
    validated, spec 5.3), so its user is one the server identified."""
    authenticated = (Decision("auth.token_validation", "valid"), Decision("auth.result", "success"))
    return ConnectionResult(index, "c", 0, user, at_s, 1011, "Internal error", authenticated, causes)


def test_cell_counts_a_cap_refusal_wherever_the_cap_message_sits_in_the_cause_chain() -> None:
    wrapped = CauseLink("FactoryInitializationError", "WebSocket manager creation failed")
    cap = CauseLink("RuntimeError", "User u1 has reached the maximum number of WebSocket managers (5)")
    other = CauseLink("ValueError", "invalid thread_id")
    run = RunResult("p", "original", (
        ConnectionResult(0, "c", 0, "u0", 1.0, None, None, (), ()),
        refused_connection(1, "u1", 2.0, wrapped, cap),
        refused_connection(2, "u2", 3.0, other),
    ))
    cell = cell_from_run(run)
    assert (cell.refused, cell.cap_refusals) == (2, 1)
    assert cell.users_hit == ("u1", "u2")
    assert cell.first_failure_s == 2.0


@pytest.mark.parametrize(
    ("effects", "verdict"),
    [
        ({"a": REMOVED, "b": NEITHER_FAILS}, REMOVES_EVERYWHERE),
        ({"a": REMOVED, "b": DELAYED}, DELAYS),
        ({"a": REMOVED, "b": SAME_TIME}, REMOVES_SOMEWHERE),
        ({"a": SAME_TIME, "b": NEITHER_FAILS}, NO_EFFECT),
        ({"a": REMOVED, "b": EARLIER}, WORSE),
        ({"a": REMOVED, "b": INTRODUCED}, WORSE),
    ],
)
def test_failure_verdict_rules(effects: dict[str, str], verdict: str) -> None:
    assert failure_verdict(effects) == verdict


@pytest.mark.parametrize(
    ("before", "after", "verdict"),
    [(("a", "b"), ("a", "b"), SAME), (("a", "b"), ("a",), SAFER), (("a",), ("a", "b"), WEAKER),
     (("a",), ("b",), MIXED), (("a", "b"), ("c",), MIXED)],  # fewer accepted but a new one: still mixed
)
def test_safety_verdict_compares_accepted_sets(before: tuple[str, ...], after: tuple[str, ...], verdict: str) -> None:
    assert safety_verdict(SafetyRow("original", before, 3, False), SafetyRow("V9", after, 3, False)) == verdict


def verdict(variant: str, failure: str, safety: str, size: int) -> VariantVerdict:
    return VariantVerdict(variant, failure, safety, (), 0, 0, False, size)


def test_recommend_needs_removal_without_weakening_and_prefers_the_smallest_change() -> None:
    assert recommend([verdict("V3", DELAYS, SAME, 1), verdict("V2", REMOVES_EVERYWHERE, WEAKER, 1)]) is None
    assert recommend([verdict("V1", REMOVES_EVERYWHERE, SAME, 3), verdict("V5", REMOVES_EVERYWHERE, SAFER, 2)]) == "V5"
    assert recommend([verdict("V4", REMOVES_EVERYWHERE, SAME, 1), verdict("V3", REMOVES_EVERYWHERE, SAME, 1)]) == "V3"


def test_failing_profiles_counts_the_profiles_where_the_original_fails() -> None:
    effects = (("a", REMOVED), ("b", DELAYED), ("c", INTRODUCED), ("d", NEITHER_FAILS))
    # the original fails on a and b only; on c only the candidate fails
    assert VariantVerdict("V9", WORSE, SAME, effects, 0, 0, False, 1).failing_profiles == 2


def test_recommend_refuses_a_variant_whose_safety_is_mixed() -> None:
    assert recommend([verdict("V4", REMOVES_EVERYWHERE, MIXED, 1)]) is None
    assert recommend([verdict("V4", REMOVES_EVERYWHERE, MIXED, 1), verdict("V5", REMOVES_EVERYWHERE, SAME, 2)]) == "V5"


# --- the matrix and its report ------------------------------------------------------------------


def test_long_run_is_staging_e2e_with_more_tests_per_process() -> None:
    base, long_run = load_profile("staging-e2e"), long_run_profile(60)
    assert long_run.name == LONG_RUN_PROFILE
    assert [c.connections for c in long_run.clients] == [60, 60, 60]
    assert [c.model_copy(update={"connections": 12}) for c in long_run.clients] == list(base.clients)
    assert (long_run.env, long_run.instances, long_run.routing) == (base.env, base.instances, base.routing)
    # staging-e2e's workers start at 0, 1, 2 s, every 14, 16, 18 s: the 60th tests start at
    # 0 + 59·14 = 826, 1 + 59·16 = 945 and 2 + 59·18 = 1064 s
    assert long_run.description.endswith("the last test starts at 1064 s.")


@pytest.fixture(scope="module")
def small_report() -> VariantReport:
    profiles = [load_profile("staging-e2e"), long_run_profile(30), load_profile("development")]
    return build_report(variant_matrix(profiles))


def test_matrix_cells_are_the_simulation_summaries(small_report: VariantReport) -> None:
    run = simulate(load_profile("staging-e2e"), "V3")
    found = small_report.matrix.cell("V3", "staging-e2e")
    assert dict(found.close_codes) == run.close_code_counts()
    assert found.users_hit == tuple(sorted({c.user_id for c in run.failures if c.user_id}))
    assert small_report.matrix.variants == tuple(VARIANTS)


def test_a_matrix_without_the_original_gets_it_as_its_first_variant() -> None:
    matrix = variant_matrix([load_profile("local-debug")], ["V3"])
    assert matrix.variants == ("original", "V3")
    assert [(cell.variant, cell.profile) for cell in matrix.cells] == [("original", "local-debug"), ("V3", "local-debug")]


def test_validation_only_variants_cannot_move_capacity_failures(small_report: VariantReport) -> None:
    """Every original refusal on these profiles is the cap's (cause chain), which V1/V2 leave alone."""
    for profile in ("staging-e2e", LONG_RUN_PROFILE):
        run = simulate(long_run_profile(30) if profile == LONG_RUN_PROFILE else load_profile(profile))
        assert all("maximum number of WebSocket managers" in c.cause_chain[-1].message for c in run.failures)
    assert small_report.verdict_of("V1").failure == NO_EFFECT
    assert small_report.verdict_of("V2").failure == NO_EFFECT


def test_the_recommended_variant_satisfies_the_rule(small_report: VariantReport) -> None:
    chosen = small_report.verdict_of(small_report.recommended or "")
    assert chosen.failure == REMOVES_EVERYWHERE and chosen.safety in {SAME, SAFER}
    assert all(
        v.change_size >= chosen.change_size
        for v in small_report.verdicts
        if v.failure == REMOVES_EVERYWHERE and v.safety in {SAME, SAFER}
    )
    assert f"Recommended: {chosen.variant}" in small_report.markdown()
    assert small_report.key_result().startswith(f"recommended {chosen.variant} |")
    assert "\n" not in small_report.key_result()


def test_the_recommendation_states_the_margin_to_the_cap(small_report: VariantReport) -> None:
    """V4 releases a connection's manager on disconnect but not start_agent's (spec 1 step 12, spec 8): on
    staging-e2e user-003's start_agent managers pile up on instance 2 until its 5th connection there finds 4 left
    over plus its own, 5 = the cap (spec 4.2). Reaching the cap is not a refusal: emergency cleanup first frees a
    manager that is inactive, idle more than 5 minutes, or older than 5 minutes with no connection (spec 4.2), which
    the counts the runs record cannot tell, so the sentence states the condition and claims no margin of none.
    local-debug's single connection holds 1 manager: 4 below the cap."""
    sentence = small_report.margin_sentence("V4")
    assert sentence.startswith(" Under V4 one user's managers on one instance still reach the cap of 5 on ")
    assert "staging-e2e" in sentence and "margin" not in sentence
    assert sentence.endswith("; a further manager there is refused unless emergency cleanup frees one (spec 4.2: one "
                             "inactive, idle more than 5 minutes, or created more than 5 minutes ago with no "
                             "connection).")
    assert sentence in small_report.recommendation()
    alone = build_report(variant_matrix([load_profile("local-debug")], ["V4"]))
    assert alone.margin_sentence("V4") == (" Its margin: under V4 no user holds more than 1 manager on one instance "
                                           "in any run, 4 below the cap of 5.")


def test_chart_returns_a_figure_and_the_numbers_it_draws(small_report: VariantReport) -> None:
    figure, table = variant_chart(small_report)
    assert isinstance(figure, Figure)
    original = small_report.matrix.cell("original", "staging-e2e")
    row = next(line for line in table.splitlines() if line.startswith("original  staging-e2e "))
    assert row.split()[2:4] == [str(original.count("1011") + original.count("1008") + original.count("1013")),
                                str(original.count("1011"))]
    assert "adversarial accepted" in table




def test_notebook_parameter_selects_one_variant_against_the_original() -> None:
    assert selected_variants("V3") == ("original", "V3")
    assert selected_variants("original") == ("original",)
    assert selected_variants("all") == tuple(VARIANTS)
    with pytest.raises(NotebookParameterError, match="known: all, original, V1, V2, V3, V4, V5$"):
        selected_variants("V9")


def test_lessons_name_the_postponed_failure(small_report: VariantReport) -> None:
    """V3 removes staging-e2e's refusals but the 30-test run still fails later (cap 20, counts never drop)."""
    v3 = small_report.verdict_of("V3")
    assert v3.failure == DELAYS
    assert f"V3 removes the failure on 1 profile, but on {LONG_RUN_PROFILE}" in variant_lessons(small_report).data


@pytest.mark.parametrize("tests_per_process", [0, -3, 2.5, True])
def test_a_long_run_needs_at_least_one_whole_test_per_process(tests_per_process: object) -> None:
    with pytest.raises(NotebookParameterError, match=r"^parameter tests_per_process: must be a whole number"):
        long_run_profile(tests_per_process)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tests_per_process", "head", "runs"),
    [
        (1, "staging-e2e with fewer tests than its own 12 per process (not a longer run)", "runs 1 test; "),
        (12, "staging-e2e with as many tests as its own 12 per process (not a longer run)", "runs 12 tests back"),
        (13, "staging-e2e run longer than its own 12 tests per process", "runs 13 tests back to back; "),
    ],
)
def test_the_long_run_description_says_whether_it_is_longer(tests_per_process: int, head: str, runs: str) -> None:
    # staging-e2e's three workers run 12 tests each (data/profiles/staging-e2e.toml)
    description = long_run_profile(tests_per_process).description
    assert description.startswith(head + ": ")
    assert runs in description


def test_the_long_run_description_counts_the_profiles_test_processes_and_claims_only_what_spec_7_says() -> None:
    # three clients, one per test process (data/profiles/staging-e2e.toml); spec 7 says tests run back to
    # back and nothing about which modules the suite holds. The 60th tests start at 0 + 59 x 14 = 826 s,
    # 1 + 59 x 16 = 945 s and 2 + 59 x 18 = 1064 s (each process's start_s and spacing_s): the last at 1064 s.
    assert long_run_profile(60).description == (
        "staging-e2e run longer than its own 12 tests per process: each of its 3 E2E test processes runs "
        "60 tests back to back; the last test starts at 1064 s."
    )


def e2e_profile_dir(directory: Path, processes: int) -> Path:
    """A staging-e2e of `processes` clients (one per test process), 12 tests each, 10 s apart from 0 s."""
    clients = "".join(
        f'[[clients]]\nname = "p{n}"\nuser_id = "staging-e2e-user-00{n}"\nconnections = 12\nspacing_s = 10.0\n\n'
        for n in range(1, processes + 1)
    )
    (directory / "staging-e2e.toml").write_text(f'description = "e2e"\n\n[env]\nENVIRONMENT = "staging"\n\n{clients}')
    return directory


@pytest.mark.parametrize(("processes", "subject"), [(2, "each of its 2 E2E test processes runs"),
                                                     (1, "its one E2E test process runs")])
def test_the_long_run_counts_the_test_processes_of_the_profile_it_is_built_from(
    tmp_path: Path, processes: int, subject: str
) -> None:
    description = long_run_profile(20, e2e_profile_dir(tmp_path, processes)).description
    # the last of 20 tests, 10 s apart from 0 s, starts at 19 x 10 = 190 s
    assert description == f"staging-e2e run longer than its own 12 tests per process: {subject} 20 tests back to back; " \
                          "the last test starts at 190 s."


def test_an_unknown_variant_names_the_parameter() -> None:
    with pytest.raises(NotebookParameterError, match=r"^parameter variant: unknown variant 'V7'; known: all, original"):
        selected_variants("V7")


def test_a_failure_only_the_candidate_has_is_not_called_earlier() -> None:
    # one E2E test per worker: 3 connections, below the cap (spec 4.2), so the original serves all;
    # V5 refuses the E2E bypass in staging (spec 8) and closes each 1008 from the first at 0 s
    report = build_report(variant_matrix([long_run_profile(1)], ["original", "V5"]))
    lessons = variant_lessons(report).data
    assert (f"- V5 on {LONG_RUN_PROFILE}: 1008 SSOT Auth failed closes all 3 connections from 0 s, where the original "
            "does not fail.") in lessons
    assert "introduced than" not in lessons


def test_the_recommendation_is_short_sentences_of_computed_facts(small_report: VariantReport) -> None:
    # small_report: staging-e2e, a 30-test long run and development. The original fails on staging-e2e (spec 4.2: a
    # 6th manager of one user) and on the long run built from it, not on development; V4 only releases managers
    # (spec 8, one switch), so it removes both and accepts exactly the original's adversarial members, which
    # include the unsigned token with E2E headers in every deployed environment (spec 5.2).
    assert small_report.recommended == "V4"
    # An unsigned (alg none) token has an empty third part, so real validation refuses it INVALID_FORMAT (spec 5.3:
    # exactly 3 non-empty dot parts); with the E2E suite's headers the bypass (spec 5.2: no signature check, in every
    # environment) takes the user from its payload, in each of the 5 deployed environments (DEPLOYED_ENVIRONMENTS).
    # V4 leaves start_agent's managers (spec 1, step 12): on staging-e2e 2 of its 12 messages are refused (derived
    # in test_staging_e2e_start_agent_refusals_derived_by_hand), so the last sentence says so
    text = small_report.recommendation()
    assert text.startswith(
        "Recommended: V4 (release the connection's manager on disconnect). It removes the failure on both runs "
        "where the original fails, including the long E2E run, and accepts exactly the adversarial inputs the "
        "original accepts. It does not close the unsigned-token hole: the set's \"alg none + E2E headers\" (unsigned "
        "token claiming a real user, sent with the E2E suite's headers) still authenticates in cloud-run-env-missing, "
        "production-cloud-run, staging-cloud-run, staging-env-whitespace and staging-no-cloud-signal; its \"alg none\" (unsigned token (alg: none)) is refused in "
        "every profile tried (INVALID_FORMAT) (see the safety table). It changes one switch of the original. Under V4, "
    )
    assert "(staging-e2e: 2 of 12; the long E2E run staging-e2e-long: " in text
    # the margin to the cap follows the start_agent sentence (see test_the_recommendation_states_the_margin_to_the_cap)
    assert text.split(" Under V4 one user's managers")[0].endswith(": V4 does not release the managers start_agent "
                                                                   "creates.")


def recommended_report(failing: tuple[str, ...], v4_accepted: tuple[str, ...], v4_unsigned: bool) -> VariantReport:
    """original fails on `failing` (of p1, p2 and the long run), V4 removes every failure; safety rows as given."""
    profiles = ("p1", "p2", LONG_RUN_PROFILE)
    cells = tuple(c for p in profiles for c in (cell("original", 10.0 if p in failing else None, p), cell("V4", None, p)))
    safety = (SafetyRow("original", ("a", "b"), 3, True), SafetyRow("V4", v4_accepted, 3, v4_unsigned))
    return build_report(VariantMatrix(("original", "V4"), profiles, cells, safety))


def test_the_recommendation_counts_profiles_without_the_long_run_and_says_what_a_safer_variant_refuses() -> None:
    report = recommended_report(("p1",), ("a",), False)
    assert report.recommended == "V4"
    # V4 is the one candidate of this matrix, so the sentence says it chose among the variants run
    assert report.recommendation() == (
        "Of the variants run (V4), recommended: V4 (release the connection's manager on disconnect). It removes the "
        "failure on the one "
        "profile where the original fails, and accepts 1 of the 2 adversarial inputs the original accepts and none "
        "it refuses. It accepts no unsigned token. It changes one switch of the original."
    )
    text = recommended_report(("p1", "p2", LONG_RUN_PROFILE), ("a", "b"), True).recommendation()
    assert "It removes the failure on all 3 runs where the original fails, including the long E2E run, and" in text


def test_lessons_that_differ_only_by_profile_are_one_sentence_naming_the_profiles() -> None:
    # hand-built: V5 fails at 0 s with the same close on p1 and p2, both earlier than the original (10 s)
    cells = tuple(c for p in ("p1", "p2") for c in (cell("original", 10.0, p), cell("V5", 0.0, p)))
    matrix = VariantMatrix(("original", "V5"), ("p1", "p2"), cells,
                           (SafetyRow("original", (), 0, False), SafetyRow("V5", (), 0, False)))
    lessons = variant_lessons(build_report(matrix)).data
    assert "- V5 on p1 and p2: first failure at 0 s (1011 x), earlier than the original." in lessons
    assert "V5 on p1:" not in lessons


def test_the_delay_lesson_counts_a_removed_long_run_as_a_run() -> None:
    # hand-built: V3 removes the failure on p1 and on the long run, and only delays it on p2
    cells = (cell("original", 10.0, "p1"), cell("V3", None, "p1"),
             cell("original", 10.0, LONG_RUN_PROFILE), cell("V3", None, LONG_RUN_PROFILE),
             cell("original", 10.0, "p2"), cell("V3", 50.0, "p2"))
    matrix = VariantMatrix(("original", "V3"), ("p1", "p2", LONG_RUN_PROFILE), cells,
                           (SafetyRow("original", (), 0, False), SafetyRow("V3", (), 0, False)))
    lessons = variant_lessons(build_report(matrix)).data
    assert (f"V3 removes the failure on 2 runs (1 profile and the long E2E run {LONG_RUN_PROFILE}), but on p2 "
            "the first failure only moves from 10 s to 50 s") in lessons


# staging-env-whitespace's ENVIRONMENT is 'staging '; cloud-run-env-missing and staging-no-cloud-signal set none
# (data/profiles), which the route reads as "development" (spec 1 step 1). V5 refuses the E2E bypass only for
# staging/production (spec 8), so the unsigned token with E2E headers still gets in in those 3 (sorted by name).
V5_UNSIGNED_IN = (
    ("alg none + E2E headers", "cloud-run-env-missing (ENVIRONMENT unset)"),
    ("alg none + E2E headers", "staging-env-whitespace (ENVIRONMENT='staging ')"),
    ("alg none + E2E headers", "staging-no-cloud-signal (ENVIRONMENT unset)"),
)
V5_UNSIGNED = ("alg none + E2E headers in cloud-run-env-missing (ENVIRONMENT unset), "
               "staging-env-whitespace (ENVIRONMENT='staging '), staging-no-cloud-signal (ENVIRONMENT unset)")


def test_the_safety_row_names_the_unsigned_members_behind_a_yes() -> None:
    v5, original = safety_row("V5"), safety_row("original")
    assert v5.unsigned_in == V5_UNSIGNED_IN
    assert v5.unsigned_text() == f"yes: {V5_UNSIGNED}"
    # the original lets the E2E bypass through in every deployed environment (spec 5.2), each case named once
    assert original.unsigned_text() == (
        "yes: alg none + E2E headers in cloud-run-env-missing (ENVIRONMENT unset), production-cloud-run "
        "(ENVIRONMENT='production'), staging-cloud-run (ENVIRONMENT='staging'), staging-env-whitespace "
        "(ENVIRONMENT='staging '), staging-no-cloud-signal (ENVIRONMENT unset)"
    )
    assert SafetyRow("V9", (), 3, False).unsigned_text() == "no"


def test_the_verdict_table_chart_table_and_lessons_name_the_unsigned_members(small_report: VariantReport) -> None:
    v5_row = next(line for line in small_report.verdict_table().splitlines() if line.startswith("| V5 |"))
    assert v5_row.endswith(f"| yes: {V5_UNSIGNED} |")
    # V1-V4 leave authentication alone (spec 8): the same unsigned members as the original, named once there
    v4_row = next(line for line in small_report.verdict_table().splitlines() if line.startswith("| V4 |"))
    assert v4_row.endswith("| yes: the same members as the original |")
    # the chart draws only whether an unsigned token got in
    _, table = variant_chart(small_report)
    safety = table.split("Safety: adversarial set per variant\n")[1].splitlines()
    assert [line.split()[-1] for line in safety[2:]] == ["yes"] * 6
    lessons = variant_lessons(small_report).data
    assert f"V5 ({V5_UNSIGNED})." in lessons


def test_connections_without_a_close_frame_keep_the_json_contracts_label_open(small_report: VariantReport) -> None:
    # docs/design.md: a connection that ended without a close frame from the server is "open" in every table
    header = [cell.strip() for cell in small_report.matrix.table().splitlines()[0].split("  ") if cell.strip()]
    assert header[2:6] == ["1011", "1008", "1013", "open"]
    _, table = variant_chart(small_report)
    chart_header = table.splitlines()[1].split()
    assert chart_header[3:7] == ["1011", "1008", "1013", "open"]
    assert "no close frame" not in table


def test_the_chart_calls_the_first_close_the_first_failure_as_the_matrix_does(small_report: VariantReport) -> None:
    # a failure is a close by the server with a code other than 1000; the matrix's column is "first failure"
    assert "first failure" in small_report.matrix.table().splitlines()[0]
    figure, table = variant_chart(small_report)
    legend = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    labels = [figure.get_suptitle(), *legend, *(axes.get_xlabel() for axes in figure.axes)]
    assert "time of the first failure" in figure.get_suptitle()
    assert "first failure s" in table.splitlines()[1]
    assert "first failure later" in legend
    assert not [label for label in [table, *labels] if "refusal" in label]


def test_with_the_original_alone_no_candidate_ran() -> None:
    report = build_report(variant_matrix([load_profile("local-debug")], ["original"]))
    assert report.key_result() == "no variant recommended | no candidate variant ran"
    assert report.recommendation() == "No candidate variant ran (the matrix holds the original only), so none is recommended."


# --- start_agent messages refused: no close, so the close-code columns miss them ------------------


def test_cell_counts_start_agent_messages_from_the_trace_tally() -> None:
    # route.start_agent is a tally: "manager_left_behind=2,refused_FactoryInitializationError=1" is three
    # messages on one connection, one of them refused (spec 1, step 12); a connection without the point sent none
    tallied = ConnectionResult(0, "c", 0, "u", 0.0, None, None, (
        Decision("route.start_agent", "manager_left_behind=2,refused_FactoryInitializationError=1"),), ())
    silent = ConnectionResult(1, "c", 0, "u", 9.0, None, None, (), ())
    found = cell_from_run(RunResult("p", "original", (tallied, silent)))
    assert (found.start_agent_sent, found.start_agent_refused) == (3, 1)
    assert found.refused == 0  # nothing closed


def test_start_agent_refusals_add_every_refused_outcome_of_the_tally() -> None:
    # two kinds of refusal (spec 1 step 12 tallies refused_<exception name>) and one manager left behind: 3 refused
    connection = ConnectionResult(0, "c", 0, "u", 0.0, None, None, (
        Decision("route.start_agent", "manager_left_behind=1,refused_FactoryInitializationError=2,refused_ValueError=1"),
    ), ())
    assert connection.start_agent_refusals() == 3


def test_staging_e2e_start_agent_refusals_derived_by_hand() -> None:
    """Only user-003 sends start_agent (one per connection, 2 s in); round robin over 3 instances puts its
    connections #2 #5 #8 #29 #32 #35 on instance 2, #12 #15 #18 #21 on 0, #25 #34 on 1 (the 01 timeline); the
    cap is 5, all within 300 s (no emergency cleanup releases anything, spec 4.2).
    Original (spec 1, steps 12 and 14: both managers stay): per instance each connection adds 2, so the 3rd
    connection's start_agent finds 5 and is refused, the 4th connection gets 1011: instance 2 sends 3 messages (1
    refused), instance 0 3 (1 refused), instance 1 2 (0): 2 of 8.
    V4 (the connection's manager released on disconnect): each connection leaves 1 (its start_agent's); the 5th
    and 6th connection on instance 2 find 4 left + their own = 5, and their start_agent is refused: 2 of 12.
    V3 (cap 20): at most 12 managers per instance, none refused: 0 of 12.
    """
    matrix = variant_matrix([load_profile("staging-e2e")], ("V3", "V4"))
    found = {cell.variant: (cell.start_agent_refused, cell.start_agent_sent, cell.start_agent_refused_at_cap)
             for cell in matrix.cells}
    assert found == {"original": (2, 8, 2), "V3": (0, 12, 0), "V4": (2, 12, 2)}
    rows = {line.split()[1]: line for line in matrix.table().splitlines()[2:]}
    assert "start_agent refused" in matrix.table().splitlines()[0]
    assert " 2 of 8 " in rows["original"] and " 2 of 12 " in rows["V4"] and " 0 of 12 " in rows["V3"]


def test_recommendation_says_what_the_recommended_variant_leaves_of_the_start_agent_leak() -> None:
    # V4 alone against staging-e2e: it removes the 1011s (recommended), but by the derivation above 2 of its 12
    # start_agent messages are refused and the other 10 each leave a manager behind
    report = build_report(variant_matrix([load_profile("staging-e2e")], ("V4",)))
    assert report.recommended == "V4"
    # user-003 reaches the cap on instance 2 by those managers (4 left over + its 5th connection's own = 5)
    assert report.recommendation().endswith(
        " Under V4, 2 of 12 start_agent messages are still refused at the cap (no close: the agent silently does "
        "not start), on 1 profile (staging-e2e: 2 of 12); the other 10 each left a manager behind (spec 1, step "
        "12): V4 does not release the managers start_agent creates. Under V4 one user's managers on one instance "
        "still reach the cap of 5 on 1 profile (staging-e2e); a further manager there is refused unless emergency "
        "cleanup frees one (spec 4.2: one inactive, idle more than 5 minutes, or created more than 5 minutes ago "
        "with no connection).")
    v4_row = next(line for line in report.verdict_table().splitlines() if line.startswith("| V4 |"))
    assert "| 2 of 12 |" in v4_row


def test_recommendation_is_silent_on_start_agent_when_nothing_is_refused() -> None:
    # V3 (cap 20) refuses none of staging-e2e's 12 start_agent messages (derivation above)
    report = build_report(variant_matrix([load_profile("staging-e2e")], ("V3",)))
    assert report.recommended == "V3"
    assert "start_agent" not in report.recommendation()


# --- what ran: one candidate (the notebook's variant parameter), and a long run that is not longer ---------------


def one_candidate_report(variant: str, first_failures: dict[str, float | None],
                         long_run_tests: tuple[int, int] | None = None) -> VariantReport:
    """original fails at 10 s on p1 and on the long run; `variant`'s first failure per profile as given."""
    profiles = ("p1", LONG_RUN_PROFILE)
    cells = tuple(c for p in profiles for c in (cell("original", 10.0, p), cell(variant, first_failures[p], p)))
    safety = (SafetyRow("original", ("a",), 3, False), SafetyRow(variant, ("a",), 3, False))
    return build_report(VariantMatrix(("original", variant), profiles, cells, safety), long_run_tests)


def test_with_one_candidate_the_recommendation_names_the_variants_run() -> None:
    # V3 removes p1's failure and only delays the long run's (10 s -> 50 s): it does not remove it everywhere, so it
    # does not qualify, and the sentence may speak only of V3, the one variant that ran
    text = one_candidate_report("V3", {"p1": None, LONG_RUN_PROFILE: 50.0}).recommendation()
    assert text == ("Of the variants run (V3), none qualifies: none removes the failure on every profile while keeping "
                    "safety the same or safer.")
    chosen = one_candidate_report("V4", {"p1": None, LONG_RUN_PROFILE: None}).recommendation()
    assert chosen.startswith("Of the variants run (V4), recommended: V4 (release the connection's manager")


def test_with_one_candidate_the_cause_lesson_counts_only_the_variants_run() -> None:
    # V3 removes p1's failure (no effect is not its verdict): of the one variant run, none had no effect
    lessons = variant_lessons(one_candidate_report("V3", {"p1": None, LONG_RUN_PROFILE: 50.0})).data
    assert "; of the variants run (V3), those with no effect on the failure: none." in lessons
    assert "variants with no effect on the failure: none" not in lessons


def test_with_the_original_alone_the_lessons_say_nothing_about_candidates() -> None:
    refused = MatrixCell("p1", "original", (("1011", 2),), ("u",), 1.0, "1011 x", cap_refusals=2)
    matrix = VariantMatrix(("original",), ("p1",), (refused,), (SafetyRow("original", (), 3, False),))
    lessons = variant_lessons(build_report(matrix)).data
    assert lessons.startswith("- 2 of the 2 connections the original refuses are refused by the per-user manager cap.\n")
    assert "no effect" not in lessons


def test_a_long_run_not_longer_than_staging_e2e_gets_a_caveat_and_is_not_called_long() -> None:
    # tests_per_process 1 against staging-e2e's own 12 (data/profiles/staging-e2e.toml): V4 removes both failures,
    # but a run of 1 test per process cannot show a failure that a change only postpones
    report = one_candidate_report("V4", {"p1": None, LONG_RUN_PROFILE: None}, (1, 12))
    text = report.recommendation()
    assert "It removes the failure on both runs where the original fails, including the E2E run, and" in text
    assert text.endswith(
        " With tests_per_process 1 the E2E run staging-e2e-long is not longer than staging-e2e's own 12 tests per "
        "process, so a change that only delays the failure can look like it removes it.")
    overview = matrix_overview(report).data
    assert overview.startswith(f"(1 profile + the E2E run {LONG_RUN_PROFILE}) x 2 variants")
    assert "long E2E run" not in text + overview
    # 12 tests is as many as staging-e2e's own: still not longer
    assert "is not longer than staging-e2e's own 12" in one_candidate_report(
        "V4", {"p1": None, LONG_RUN_PROFILE: None}, (12, 12)).recommendation()


def test_a_long_run_longer_than_staging_e2e_gets_no_caveat() -> None:
    text = one_candidate_report("V4", {"p1": None, LONG_RUN_PROFILE: None}, (13, 12)).recommendation()
    assert "including the long E2E run, and" in text
    assert "tests_per_process" not in text


def test_the_notebook_report_knows_the_long_runs_length() -> None:
    # the report of notebook 05's parameters carries (tests_per_process, staging-e2e's own 12 tests per process)
    assert variant_report(tests_per_process=1, variant="V4").long_run_tests == (1, 12)
    assert variant_report(tests_per_process=1, variant="V4").recommendation().endswith(
        "so a change that only delays the failure can look like it removes it.")


def test_a_long_run_that_never_reaches_the_recommended_variants_cap_gets_a_caveat() -> None:
    # hand-built: V3 (cap 20, spec 8) removes both failures, but on the long run one user's managers peak at 14: no
    # refusal could happen there, so the run cannot tell removal from postponement
    profiles = ("p1", LONG_RUN_PROFILE)
    v3_long = MatrixCell(LONG_RUN_PROFILE, "V3", (("open", 39),), (), None, None, peak_managers=14, managers_cap=20)
    cells = (cell("original", 10.0, "p1"), cell("V3", None, "p1"), cell("original", 10.0, LONG_RUN_PROFILE), v3_long)
    safety = (SafetyRow("original", (), 3, False), SafetyRow("V3", (), 3, False))
    matrix = VariantMatrix(("original", "V3"), profiles, cells, safety)
    assert build_report(matrix, (13, 12)).recommendation().endswith(
        " It changes one switch of the original. On the long E2E run staging-e2e-long one user's managers on an "
        "instance peak at 14 under V3, below its cap of 20: the run never reaches the cap, so it cannot tell a "
        "failure V3 removes from one it only postpones.")
    # at the cap (20 of 20) the run could have refused, and the caveat goes
    at_cap = (*cells[:3], MatrixCell(LONG_RUN_PROFILE, "V3", (("open", 39),), (), None, None, peak_managers=20,
                                     managers_cap=20))
    assert "never reaches" not in build_report(VariantMatrix(("original", "V3"), profiles, at_cap, safety),
                                               (13, 12)).recommendation()


def test_the_cell_records_the_peak_of_managers_and_the_variants_cap() -> None:
    # spec 4.2: a user holds at most 5 managers on an instance (V3: 20); six simultaneous connections of one user
    # on one instance fill the cap under the original (the 6th is refused), and stay below V3's
    six = reconnects(6).model_copy(update={"clients": [c.model_copy(update={"spacing_s": 0.0})
                                                       for c in reconnects(6).clients]})
    original, v3 = cell_from_run(simulate(six, "original")), cell_from_run(simulate(six, "V3"))
    assert (original.peak_managers, original.managers_cap) == (5, 5)
    assert v3.managers_cap == 20 and v3.peak_managers < 20


def test_at_13_tests_per_process_the_recommendation_says_the_long_run_never_reaches_v3s_cap() -> None:
    # audit D6: at 13 tests per process V3 is recommended; its cap is 20 (spec 8), which the run does not reach,
    # while at the default 60 V4 (cap 5) is refused at the cap on the long run (25 of its start_agent messages)
    text = variant_report(tests_per_process=13).recommendation()
    assert text.startswith("Recommended: V3 ")
    assert "under V3, below its cap of 20: the run never reaches the cap" in text
    assert "never reaches" not in variant_report().recommendation()
