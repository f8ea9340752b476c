"""Tests of investigation.analysis.hypotheses: verdict rules, and verdicts that flip when the
runs are built so a claim's prediction holds or fails.

Expected verdicts come from spec/backend.md: the 1011 closes of the shipped profiles are
the per-user cap (4.2) refusing a sixth manager that is never released (14), which is a
RuntimeError, not a validation failure; V1 and V2 change only validation (8).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from investigation.analysis.hypotheses import (
    HYPOTHESES,
    REFERENCE,
    STAGING,
    Baseline,
    Finding,
    Hypothesis,
    Ledger,
    Observation,
    RunSpec,
    Trial,
    Verdict,
    baseline_of,
    build_ledger,
    evaluate,
    every_validation_passes,
    expected_validation_mode,
    failures_used_fallback,
    fallback_ids_rejected,
    finding_details,
    has_factory_close,
    has_no_factory_close,
    has_no_failure,
    has_validation_rejection,
    id_generation_changes,
    in_environment_of,
    ledger_from,
    ledger_lessons,
    ledger_verdicts,
    local_environment_removes_validation_failure,
    runs_strict_validation,
    same_path_as_reference,
    some_user_never_served,
    strict_runs_and_rejects,
    unchanged,
    verdict_of,
)
from investigation.backend import factory
from investigation.profiles import (
    Profile,
    flatten_profile,
    list_profiles,
    load_profile,
    load_profile_file,
    unflatten_profile,
)
from investigation.simulate import simulate
from investigation.trace import CauseLink, ConnectionResult, Decision, RunResult


def hypothesis(key: str) -> Hypothesis:
    return next(h for h in HYPOTHESES if h.key == key)


def varied(profile: Profile, name: str, factors: dict[str, object]) -> Profile:
    return unflatten_profile(name, {**flatten_profile(profile), **factors}, base=profile)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return build_ledger()


@pytest.fixture(scope="module")
def reference() -> Profile:
    return load_profile(REFERENCE)


@pytest.fixture(scope="module")
def staging() -> Profile:
    return load_profile(STAGING)


def only(ledger: Ledger, key: str) -> Verdict:
    return ledger.finding(key).verdict


# --- the verdict rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holds", "quantifier", "expected"),
    [
        ([True, True, None], "all", Verdict.SUPPORTED),
        ([True, False], "all", Verdict.REFUTED),
        ([None, None], "all", Verdict.INCONCLUSIVE),
        ([], "all", Verdict.INCONCLUSIVE),
        ([False, True], "any", Verdict.SUPPORTED),
        ([False, None, False], "any", Verdict.REFUTED),
        ([None], "any", Verdict.INCONCLUSIVE),
    ],
)
def test_verdict_rules(holds: list[bool | None], quantifier: Any, expected: Verdict) -> None:
    assert verdict_of(holds, quantifier) is expected


def test_hypothesis_keys_are_unique_and_every_testable_claim_has_runs(ledger: Ledger) -> None:
    keys = [h.key for h in HYPOTHESES]
    assert len(keys) == len(set(keys))
    for finding in ledger.findings:
        assert finding.observations or finding.hypothesis.untestable_because, finding.key


# --- synthetic runs: the verdict of Why #1 follows the decision traces ---------------------


def connection(
    index: int, *decisions: tuple[str, str], code: int | None = None, reason: str | None = None,
    causes: tuple[str, ...] = (),
) -> ConnectionResult:
    """Connection ``index`` (client "c", user "u", at ``index`` s) after ``decisions``, closed ``code``
    ``reason`` (open when ``code`` is None) by exceptions of the types ``causes``, outermost first."""
    return ConnectionResult(
        index=index, client="c", instance=0, user_id="u", at_s=float(index), close_code=code, close_reason=reason,
        decisions=tuple(Decision(p, o) for p, o in decisions),
        cause_chain=tuple(CauseLink(kind, "m") for kind in causes),
    )


FACTORY_FAILED = "Factory SSOT validation failed"
STRICT_FAIL = (("factory.validation_mode", "strict"), ("factory.validation", "fail"))
RELAXED_FAIL = (("factory.validation_mode", "relaxed"), ("factory.validation", "fail"))
STRICT_PASS = (("factory.validation_mode", "strict"), ("factory.validation", "pass"))


def factory_close(index: int, *decisions: tuple[str, str], causes: tuple[str, ...] = ()) -> ConnectionResult:
    """Connection ``index`` closed 1011 "Factory SSOT validation failed" after ``decisions``."""
    return connection(index, *decisions, code=1011, reason=FACTORY_FAILED, causes=causes)


AUTH_VALID = ("auth.token_validation", "valid")
"""The auth service validated the token (spec 5.3): the connection's user is one authentication established."""


def auth_refused(index: int = 0) -> ConnectionResult:
    """Connection ``index`` refused 1008 before any decision (spec 5.1, no token)."""
    return connection(index, code=1008, reason="SSOT Auth failed")


def test_why1_flips_with_what_preceded_the_factory_close(reference: Profile) -> None:
    why1 = hypothesis("why1.validation_raises")
    trials = why1.design(Baseline({reference.name: reference}, {}))
    name = reference.name
    rejected_close = factory_close(0, *STRICT_FAIL, causes=("FactoryInitializationError", "ValueError"))
    capacity_close = factory_close(0, *STRICT_PASS, causes=("FactoryInitializationError", "RuntimeError"))
    rejected = {name: RunResult(name, "original", (rejected_close,))}
    capacity = {name: RunResult(name, "original", (capacity_close,))}
    nothing = {name: RunResult(name, "original", ())}
    assert evaluate(why1, trials, rejected).verdict is Verdict.SUPPORTED
    assert evaluate(why1, trials, capacity).verdict is Verdict.REFUTED
    assert evaluate(why1, trials, nothing).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        # spec 1.2/table: 1011 "Service startup incomplete" is the startup gate, not a factory close
        (connection(0, ("route.startup_gate", "timeout"), code=1011, reason="Service startup incomplete",
                    causes=("RuntimeError",)), Verdict.INCONCLUSIVE),
        # a factory close whose trace never reached factory.validation did not follow a failed one
        (factory_close(0, ("factory.manager_cap", "exceeded"), causes=("RuntimeError",)), Verdict.REFUTED),
    ],
)
def test_why1_looks_only_at_factory_closes_and_at_a_recorded_validation_failure(
    reference: Profile, connection: ConnectionResult, expected: Verdict
) -> None:
    why1 = hypothesis("why1.validation_raises")
    trials = why1.design(Baseline({reference.name: reference}, {}))
    runs = {reference.name: RunResult(reference.name, "original", (connection,))}
    assert evaluate(why1, trials, runs).verdict is expected


@pytest.mark.parametrize(
    ("key", "closes", "expected"),
    [
        # Why #1, "every 1011 factory close follows factory.validation = fail": one that does not refutes it
        ("why1.validation_raises", (STRICT_FAIL, STRICT_FAIL), Verdict.SUPPORTED),
        ("why1.validation_raises", (STRICT_FAIL, STRICT_PASS), Verdict.REFUTED),
        # Why #2, "every 1011 factory close ran strict validation and failed it"
        ("why2.strict_validation_rejects", (STRICT_FAIL, STRICT_FAIL), Verdict.SUPPORTED),
        ("why2.strict_validation_rejects", (STRICT_FAIL, RELAXED_FAIL), Verdict.REFUTED),
        ("why2.strict_validation_rejects", (STRICT_PASS,), Verdict.REFUTED),
        ("why2.strict_validation_rejects", ((("factory.validation", "fail"),),), Verdict.REFUTED),
    ],
)
def test_why1_and_why2_need_every_factory_close_to_match(
    reference: Profile, key: str, closes: tuple[tuple[tuple[str, str], ...], ...], expected: Verdict
) -> None:
    claim = hypothesis(key)
    trials = claim.design(Baseline({reference.name: reference}, {}))
    connections = tuple(factory_close(0, *decisions, causes=("RuntimeError",)) for decisions in closes)
    runs = {reference.name: RunResult(reference.name, "original", connections)}
    assert evaluate(claim, trials, runs).verdict is expected


def test_why1_evidence_names_the_innermost_cause(reference: Profile) -> None:
    why1 = hypothesis("why1.validation_raises")
    trials = why1.design(Baseline({reference.name: reference}, {}))
    capacity_close = factory_close(0, *STRICT_PASS, causes=("FactoryInitializationError", "RuntimeError"))
    runs = {reference.name: RunResult(reference.name, "original", (capacity_close,))}
    assert evaluate(why1, trials, runs).observations[0].evidence == (
        "0 of 1 factory closes follow factory.validation=fail; innermost RuntimeError x1"
    )


def test_traffic_moved_into_an_environment_keeps_its_clients_and_takes_only_that_environment(
    reference: Profile, staging: Profile
) -> None:
    moved = in_environment_of(staging, reference).profile
    assert moved.env == reference.env
    assert moved.process == reference.process
    assert moved.instances == reference.instances
    assert moved.clients == staging.clients


LOCAL_CONTEXT = (("context.id_generation", "generator"), ("context.creation", "ok"))
def test_why3_refuted_though_the_auth_flow_differs_the_created_contexts_pass_strict_validation(ledger: Ledger) -> None:
    """Why #3: staging's auth flow creates contexts strict validation would reject. staging-cloud-run's
    browsers send the token as a jwt.* subprotocol and no test header (profile file), so the token source is
    "subprotocol" and no E2E bypass runs, where local-debug sends a bearer token and gets the bypass; every
    context is built by 5.4 from a non-blank user id and generator IDs, which spec 4.4 accepts."""
    finding = ledger.finding("why3.context_creation_differs")
    assert finding.verdict is Verdict.REFUTED
    evidence = next(o.evidence for o in finding.observations if o.run == STAGING)
    assert "auth.token_source (bearer locally; auth.token_source=subprotocol x1 here)" in evidence
    assert "auth.e2e_bypass (yes locally; auth.e2e_bypass=no x1 here)" in evidence
    passes = re.search(r"strict validation passes (\d+) of (\d+) contexts", evidence)
    assert passes is not None and passes[1] == passes[2]


def test_why3_flips_when_strict_validation_rejects_the_created_contexts(
    monkeypatch: pytest.MonkeyPatch, reference: Profile, staging: Profile
) -> None:
    why3 = [hypothesis("why3.context_creation_differs")]
    monkeypatch.setattr(factory, "_validate_ssot_user_context", _rejecting)
    busy = varied(reference, "busy-staging", {**{k: v for k, v in flatten_profile(staging).items() if k.startswith("env.")},
                                              "clients[0].connections": 6})
    assert only(ledger_from(baseline_of([reference, busy]), why3), "why3.context_creation_differs") is Verdict.SUPPORTED


def _rejecting(user_context: Any) -> None:
    raise ValueError("SSOT CONTEXT VALIDATION FAILED: rejected")


def test_close_predicates_tell_a_factory_close_from_any_failure() -> None:
    """A run whose only failure is a 1008 (spec 5.1, no token) has no factory close but has a failure; an auth
    refusal is no failure of the path past authentication, which this run never reached: 'no failure' is untested
    (audit 14, B4)."""
    run = RunResult("x", "original", (auth_refused(),))
    assert has_no_factory_close(run, {})[0] is True
    assert has_factory_close(run, {})[0] is False
    assert has_no_failure(run, {})[0] is None


# --- per-run predicates where SOME but not ALL connections have the property ----------------


LOCAL_RUNS = {REFERENCE: RunResult(REFERENCE, "original", (connection(0, *LOCAL_CONTEXT),))}


def run_of(*connections: ConnectionResult) -> RunResult:
    return RunResult("x", "original", connections)


def test_one_rejected_context_among_passing_ones_is_a_validation_rejection() -> None:
    """Why #5 startup/user-id/auth claims: "contexts rejected by validation" -- one rejection suffices."""
    run = run_of(connection(0, ("factory.validation", "pass")),
                 factory_close(1, ("factory.validation", "fail")))
    assert has_validation_rejection(run, {})[0] is True


@pytest.mark.parametrize(
    ("connections", "expected"),
    [
        # "some context with fallback IDs is rejected": one of two fallback contexts rejected
        ((factory_close(0, ("context.id_generation", "fallback"), ("factory.validation", "fail")),
          connection(1, ("context.id_generation", "fallback"), ("factory.validation", "pass"))), True),
        # the rejected context built its IDs with the generator: no fallback context is rejected
        ((connection(0, ("context.id_generation", "fallback"), ("factory.validation", "pass")),
          factory_close(1, ("context.id_generation", "generator"), ("factory.validation", "fail"))), False),
    ],
)
def test_fallback_ids_are_rejected_when_some_fallback_context_is(
    connections: tuple[ConnectionResult, ...], expected: bool
) -> None:
    assert fallback_ids_rejected(run_of(*connections), {})[0] is expected


def test_one_fallback_connection_is_counted_in_the_singular() -> None:
    run = run_of(connection(0, ("context.id_generation", "fallback"), ("factory.validation", "pass")))
    assert fallback_ids_rejected(run, {})[1].startswith("1 connection built fallback IDs, 0 rejected")


def test_failures_used_the_fallback_only_when_every_factory_close_did() -> None:
    """Why #5 (1): "the failing connections built their IDs with the fallback" -- one that used the generator refutes it."""
    run = run_of(factory_close(0, ("context.id_generation", "fallback")),
                 factory_close(1, ("context.id_generation", "generator")))
    assert failures_used_fallback(run, {})[0] is False


@pytest.mark.parametrize(
    "connections",
    [
        # one connection generates its IDs differently from local debug (generator), none rejected
        (connection(0, ("context.id_generation", "generator")),
         connection(1, ("context.id_generation", "fallback"))),
        # IDs generated as locally, but a context is rejected ("or gets the context rejected")
        (factory_close(0, ("context.id_generation", "generator"), ("factory.validation", "fail")),),
    ],
)
def test_id_generation_changes_when_some_connection_generates_differently_or_is_rejected(
    connections: tuple[ConnectionResult, ...]
) -> None:
    assert id_generation_changes(run_of(*connections), LOCAL_RUNS)[0] is True


MIXED_MODES = run_of(connection(0, ("factory.validation_mode", "relaxed")),
                     connection(1, ("factory.validation_mode", "strict")))


def test_validation_mode_is_as_expected_only_when_every_connection_uses_it() -> None:
    """Table: "every ENVIRONMENT=staging profile validates relaxed" -- one strict connection refutes it."""
    assert expected_validation_mode("relaxed")(MIXED_MODES, {})[0] is False
    assert expected_validation_mode("strict")(MIXED_MODES, {})[0] is False


def test_one_strict_connection_among_relaxed_ones_runs_strict_validation() -> None:
    """Critical finding: "some connection on a Cloud Run profile runs strict validation"."""
    assert runs_strict_validation(MIXED_MODES, {})[0] is True


@pytest.mark.parametrize(
    ("connections", "expected"),
    [
        # "strict validation rejects some context": one of two strict validations fails
        ((connection(0, *STRICT_PASS), factory_close(1, *STRICT_FAIL)), True),
        # a strict connection that passed validation and then failed (the cap) is no rejection
        ((factory_close(0, *STRICT_PASS, ("factory.manager_cap", "exceeded")),), False),
    ],
)
def test_strict_validation_rejects_when_some_strict_validation_fails(
    connections: tuple[ConnectionResult, ...], expected: bool
) -> None:
    assert strict_runs_and_rejects(run_of(*connections), {})[0] is expected


def test_validation_works_needs_every_validation_to_pass() -> None:
    """Executive summary: "factory validation works perfectly" -- a failed validation refutes it even
    when no connection closed, a close after a passed validation does not, and no validation tests nothing."""
    run = run_of(connection(0, ("factory.validation", "pass")), connection(1, ("factory.validation", "fail")))
    assert every_validation_passes(run, {})[0] is False
    closed = run_of(connection(0, ("factory.validation", "pass"), ("factory.manager_cap", "exceeded"), code=1011))
    assert every_validation_passes(closed, {})[0] is True
    assert every_validation_passes(run_of(connection(0, ("auth.result", "failure"))), {})[0] is None


def test_same_path_holds_for_an_identical_trace_and_is_untested_without_a_failure() -> None:
    decisions = (("route.environment", "test"), ("factory.manager_cap", "exceeded"))
    local = RunResult(REFERENCE, "original", (connection(0, *decisions),))
    assert same_path_as_reference(run_of(connection(1, *decisions, code=1011)), {REFERENCE: local})[0] is True
    assert same_path_as_reference(run_of(connection(1, *decisions)), {REFERENCE: local})[0] is None


@pytest.mark.parametrize(
    ("base_closes", "local_closes", "expected"),
    [
        # every factory close of the failing profile is a rejection, none in the local environment
        ((STRICT_FAIL, STRICT_FAIL), (), True),
        # one factory close passed validation (the cap): not every close is a rejection
        ((STRICT_FAIL, STRICT_PASS), (), False),
        # the local environment still closes one: it does not remove the failure
        ((STRICT_FAIL,), (STRICT_FAIL,), False),
        # the failing profile has no factory close at all: the run cannot test the conclusion (untested, as
        # why1, why3 and why5.fallback_in_staging mark a run without a factory close)
        ((), (), None),
    ],
)
def test_conclusion_needs_rejections_only_and_none_in_the_local_environment(
    base_closes: tuple[tuple[tuple[str, str], ...], ...],
    local_closes: tuple[tuple[tuple[str, str], ...], ...],
    expected: bool | None,
) -> None:
    base = RunResult(STAGING, "original",
                     (*(factory_close(i, *d) for i, d in enumerate(base_closes)), auth_refused(9)))
    local = run_of(*(factory_close(i, *d) for i, d in enumerate(local_closes)))
    predicate = local_environment_removes_validation_failure(STAGING)
    assert predicate(local, {STAGING: base})[0] is expected


@pytest.mark.parametrize(
    ("key", "quantifier"),
    [
        # definitive claims of the report (Why #1-#4, Why #5 (1), the table rows stated as facts, the
        # fixes, the executive summary, the conclusion) are about every case: "all"
        ("why1.validation_raises", "all"),
        ("why2.strict_validation_rejects", "all"),
        ("why3.context_creation_differs", "all"),
        ("why4.environment_makes_it_fail", "all"),
        ("why5.fallback_in_staging", "all"),
        ("table.environment_detection", "all"),
        ("fix.v1", "all"),
        ("action.service_readiness", "all"),
        ("action.permissive_staging_validation", "all"),
        ("summary.local_works", "all"),
        ("summary.identical_code_path", "all"),
        ("conclusion.root_cause", "all"),
        ("impact.staging_unavailable", "all"),
        # "may", "likely", "some ... shape/kind/value", "if ... not set": one case suffices: "any"
        ("why5.fallback_fails_validation", "any"),
        ("why5.startup_timing", "any"),
        ("why5.jwt_user_id_format", "any"),
        ("why5.auth_patterns", "any"),
        ("why5.env_vars_id_patterns", "any"),
        ("table.database", "any"),
        ("table.resource_limits", "any"),
        ("finding.detection_fails_in_gcp", "any"),
        ("finding.environment_not_set", "any"),
        ("impact.production", "any"),
    ],
)
def test_each_claim_has_the_quantifier_of_its_wording(key: str, quantifier: str) -> None:
    assert hypothesis(key).quantifier == quantifier


# --- which runs each design makes, on the shipped profiles with chosen failing ones ---------


def without(profile: Profile, name: str, *paths: str) -> Profile:
    factors = {path: value for path, value in flatten_profile(profile).items() if path not in paths}
    return unflatten_profile(name, factors, base=profile)


def shipped_with_failing(*failing: str, extra: tuple[Profile, ...] = ()) -> Baseline:
    """Every shipped profile (and ``extra``), where only ``failing`` have a failing run."""
    profiles = {profile.name: profile for profile in (*list_profiles(), *extra)}
    closed = (factory_close(0, *STRICT_FAIL),)
    runs = {name: RunResult(name, "original", closed if name in failing else ()) for name in profiles}
    return Baseline(profiles, runs)


def labels(key: str, baseline: Baseline) -> list[str]:
    return sorted(trial.run.label for trial in hypothesis(key).design(baseline))


def test_local_and_cloud_run_profiles_are_told_apart_by_environment_and_k_service(staging: Profile) -> None:
    """Spec 6: is_cloud_run = K_SERVICE non-empty; the summary's local profiles are test,
    development and pytest ones that are not on Cloud Run."""
    reference = load_profile(REFERENCE)
    test_on_cloud_run = varied(reference, "test-on-cloud-run", {"env.K_SERVICE": "svc"})
    service_only = without(staging, "service-only", "env.K_REVISION")
    revision_only = without(staging, "revision-only", "env.K_SERVICE")
    baseline = shipped_with_failing(extra=(test_on_cloud_run, service_only, revision_only))
    assert labels("summary.local_works", baseline) == ["development", REFERENCE, "pytest"]
    assert labels("finding.detection_fails_in_gcp", baseline) == [
        "cloud-run-env-missing", "production-cloud-run", "service-only", STAGING, "staging-e2e", "test-on-cloud-run"]


def test_why4_moves_each_failing_profile_local_and_local_debug_into_each_cloud_run_environment() -> None:
    baseline = shipped_with_failing(STAGING, "staging-env-whitespace")
    assert labels("why4.environment_makes_it_fail", baseline) == sorted([
        f"{STAGING} traffic in {REFERENCE} environment",
        f"staging-env-whitespace traffic in {REFERENCE} environment",
        *(f"{REFERENCE} traffic in {name} environment"
          for name in ("cloud-run-env-missing", "production-cloud-run", STAGING, "staging-e2e")),
    ])


def test_why4_judges_moved_traffic_by_its_factory_closes_only() -> None:
    """Why #4 is about validation failing in staging: traffic moved into the local environment
    holds the prediction when it gets no factory close, even if an auth refusal (1008) closes it; the local traffic
    moved into a Cloud Run environment and refused there at authentication never reached the factory, so that run
    tests nothing (None), rather than failing the prediction."""
    auth_refusal_only = RunResult("x", "original", (auth_refused(),))
    baseline = shipped_with_failing(STAGING)  # STAGING's own run has a factory close to make disappear
    trials = hypothesis("why4.environment_makes_it_fail").design(baseline)
    to_local = [t for t in trials if t.run.label.endswith(f"in {REFERENCE} environment")]
    to_cloud = [t for t in trials if not t.run.label.endswith(f"in {REFERENCE} environment")]
    assert to_local and to_cloud
    assert all(t.predicate(auth_refusal_only, baseline.runs)[0] is True for t in to_local)
    assert all(t.predicate(auth_refusal_only, baseline.runs)[0] is None for t in to_cloud)


def test_environment_values_are_tried_with_and_without_k_service() -> None:
    trials = hypothesis("why5.env_vars_id_patterns").design(shipped_with_failing())
    with_k_service: dict[object, set[bool]] = {}
    for trial in trials:
        env = trial.run.profile.env
        with_k_service.setdefault(env.get("ENVIRONMENT"), set()).add(bool(env.get("K_SERVICE")))
    assert len(with_k_service) > 1
    assert all(seen == {True, False} for seen in with_k_service.values())


def test_environment_not_set_runs_unset_or_mis_set_environments_on_cloud_run_or_not() -> None:
    trials = hypothesis("finding.environment_not_set").design(shipped_with_failing())
    names = [trial.run.label for trial in trials]
    # the shipped staging profiles with ENVIRONMENT mis-set or unset (profile files): the report's literal case
    # "ENVIRONMENT not set in GCP staging" is cloud-run-env-missing (K_SERVICE set, no ENVIRONMENT)
    assert {"cloud-run-env-missing", "staging-env-whitespace", "staging-no-cloud-signal"} <= set(names)
    assert any(name.startswith(f"{STAGING} with") for name in names)
    assert None in {trial.run.profile.env.get("ENVIRONMENT") for trial in trials if trial.run.label.startswith(STAGING)}
    for trial in trials:
        assert trial.run.profile.env.get("ENVIRONMENT") != "staging"


def test_strict_validation_never_running_does_not_meet_strict_runs_and_fails() -> None:
    relaxed_only = RunResult("x", "original", (connection(0, ("factory.validation_mode", "relaxed")),))
    assert strict_runs_and_rejects(relaxed_only, {}) == (
        False, "strict validation never ran (factory.validation_mode=relaxed x1)")


def test_v2_evidence_counts_the_failing_profiles_it_leaves_unchanged_and_how_their_failures_validated(
    ledger: Ledger,
) -> None:
    """V2 relaxes only where the original validated strictly (spec 8): of the 4 failing profiles only
    staging-env-whitespace (ENVIRONMENT 'staging ', no Cloud Run signal) validates strictly, so the other 3 run
    the same; the 13 failing connections (1 + 10 + 1 + 1: staging-e2e's and staging-cloud-run's derived in
    test_hand_derived_runs.py, the two others replay staging-cloud-run's traffic) are cap refusals after a passed
    validation."""
    evidence = ledger.finding("action.permissive_staging_validation").evidence()
    assert "V2's run equals the original's on 3 of 4 failing profiles" in evidence
    assert ("factory.validation rejected 0 of the original's 13 failing connections that reached it, so a more "
            "permissive check has nothing to accept") in evidence


def test_environment_not_set_leaves_out_staging_set_exactly_and_keeps_a_mis_set_staging(
    staging: Profile,
) -> None:
    """ENVIRONMENT exactly "staging" is set correctly (spec 4.3: is_staging), even off Cloud Run, so such a
    profile does not test the claim; 'Staging' with a capital is a mis-set staging value, so it does."""
    def off_cloud_run(name: str, environment: str) -> Profile:
        factors = {k: v for k, v in flatten_profile(staging).items() if k != "env.K_SERVICE"}
        return unflatten_profile(name, {**factors, "env.ENVIRONMENT": environment})

    exact, capital = off_cloud_run("zz-staging-exact", "staging"), off_cloud_run("zz-staging-capital", "Staging")
    names = labels("finding.environment_not_set", shipped_with_failing(extra=(exact, capital)))
    assert "zz-staging-capital" in names
    assert "zz-staging-exact" not in names


def test_resource_limits_cannot_be_tested_the_spec_has_no_resource_limit() -> None:
    """The report's table row blames Cloud Run's resource constraints (memory, CPU, request time). The spec's
    WebSocket path has none of them, so no run can test the claim (removing the Cloud Run variables tests
    detection, another claim): it is inconclusive with its reason, as table.database is."""
    claim = hypothesis("table.resource_limits")
    assert claim.design(shipped_with_failing(STAGING)) == []
    assert "no memory, CPU or request-time limit" in str(claim.untestable_because)


def test_readiness_makes_every_service_ready_including_the_id_generator(staging: Profile) -> None:
    broken = varied(staging, "broken-ids", {"startup.id_generator_fails": True, "startup.complete": False})
    trials = hypothesis("action.service_readiness").design(shipped_with_failing("broken-ids", extra=(broken,)))
    startup = trials[0].run.profile.startup
    assert (startup.complete, startup.agent_supervisor, startup.thread_service) == (True, True, True)
    assert startup.id_generator_fails is False


def test_fixes_run_their_own_variant_on_every_failing_profile() -> None:
    baseline = shipped_with_failing(STAGING, "staging-e2e")
    for key, variant in [("fix.v1", "V1"), ("action.permissive_staging_validation", "V2")]:
        trials = hypothesis(key).design(baseline)
        assert sorted((t.run.profile.name, t.run.variant) for t in trials) == [(STAGING, variant), ("staging-e2e", variant)]
    assert labels("fix.v1", baseline) == [f"{STAGING} [V1]", "staging-e2e [V1]"]


def test_identical_code_path_and_injected_id_failure_cover_more_than_one_profile() -> None:
    baseline = shipped_with_failing(STAGING, "staging-e2e")
    assert labels("summary.identical_code_path", baseline) == [STAGING, "staging-e2e"]
    injected = hypothesis("why5.fallback_fails_validation").design(baseline)
    names = {trial.run.label.split(" with ")[0] for trial in injected}
    assert {REFERENCE, STAGING} <= names
    assert all(trial.run.profile.startup.id_generator_fails for trial in injected)


def validation_mode_run(name: str, mode: str) -> RunResult:
    return RunResult(name, "original", (connection(0, ("factory.validation_mode", mode)),))


def test_detection_in_gcp_is_a_may_claim_supported_by_one_strict_cloud_run(staging: Profile) -> None:
    """"Environment detection *may* not be working in GCP": one Cloud Run run validating strictly
    supports it even though the other validates relaxed."""
    claim = hypothesis("finding.detection_fails_in_gcp")
    production = load_profile("production-cloud-run")
    baseline = Baseline({staging.name: staging, production.name: production}, {})
    trials = claim.design(baseline)
    assert sorted(t.run.label for t in trials) == ["production-cloud-run", STAGING]
    some = {STAGING: validation_mode_run(STAGING, "strict"), production.name: validation_mode_run(production.name, "relaxed")}
    none = {STAGING: validation_mode_run(STAGING, "relaxed"), production.name: validation_mode_run(production.name, "relaxed")}
    assert evaluate(claim, trials, some).verdict is Verdict.SUPPORTED
    assert evaluate(claim, trials, none).verdict is Verdict.REFUTED


@pytest.mark.parametrize(
    ("local_bypass", "holds", "divergence"),
    [("yes", True, "factory.manager_cap"), ("no", False, "auth.e2e_bypass")],
)
def test_same_path_compares_with_the_nearest_local_connection(local_bypass: str, holds: bool, divergence: str) -> None:
    """The failing trace is compared with the local connection that agrees with it longest: the
    claim holds when they part only at the decision that failed it (the cap here). route.environment
    records the value read, not a branch: "test" locally vs "staging" here parts no path."""
    failing = connection(1, ("route.environment", "staging"), ("auth.e2e_bypass", "yes"),
                         ("factory.manager_cap", "exceeded"), code=1011)
    local = RunResult(REFERENCE, "original", (
        connection(0, ("route.environment", "dev")),
        connection(1, ("route.environment", "test"), ("auth.e2e_bypass", local_bypass), ("factory.manager_cap", "below")),
    ))
    result, evidence = same_path_as_reference(RunResult("x", "original", (failing,)), {REFERENCE: local})
    assert result is holds
    assert evidence.startswith(f"first branch taken differently (route.environment, a value read, aside) at {divergence}:")


def test_the_summary_counts_each_run_once_though_it_tests_several_claims(reference: Profile) -> None:
    # two claims, both tested on local-debug alone: 2 observations, 1 distinct run (development, in the
    # baseline, tests neither claim)
    design: Any = lambda b: [Trial(RunSpec(REFERENCE, b.profiles[REFERENCE]), has_no_failure)]
    claims = [Hypothesis(key, "s", "claim", "prediction", "all", design) for key in ("a", "b")]
    ledger = ledger_from(baseline_of([reference, load_profile("development")]), claims)
    assert sum(len(finding.observations) for finding in ledger.findings) == 2
    assert ledger.summary() == (
        "2 claims of the report, 2 of them tested with 1 distinct run: 2 supported, 0 refuted, 0 inconclusive")


def test_the_summary_counts_apart_the_claims_no_run_tests(reference: Profile) -> None:
    # table.database has no run (the spec has no database factor): 2 claims, 1 tested with runs
    design: Any = lambda b: [Trial(RunSpec(REFERENCE, b.profiles[REFERENCE]), has_no_failure)]
    claims = [Hypothesis("a", "s", "claim", "prediction", "all", design), hypothesis("table.database")]
    ledger = ledger_from(baseline_of([reference]), claims)
    assert ledger.summary() == (
        "2 claims of the report, 1 of them tested with 1 distinct run: 1 supported, 0 refuted, 1 inconclusive")


def test_lessons_of_a_ledger_without_failing_profiles_claim_nothing_about_v1(reference: Profile) -> None:
    development = load_profile("development")
    ledger = ledger_from(baseline_of([reference, development]), [hypothesis("fix.v1")])
    assert ledger.finding("fix.v1").verdict is Verdict.INCONCLUSIVE
    text = ledger_lessons(ledger).data
    assert "V1" not in text
    assert text.startswith("- 0 of 1 claims are refuted")


# --- real runs built so the prediction holds or fails ---------------------------------------


def test_local_websocket_works_flips_when_a_local_profile_fails_but_local_validation_still_works(
        reference: Profile) -> None:
    claims = [hypothesis("impact.local_works"), hypothesis("summary.local_works")]
    assert only(ledger_from(baseline_of([reference]), claims), "impact.local_works") is Verdict.SUPPORTED
    # spec 4.2/14: a sixth connection of one user in one process exceeds the cap, locally too; its validation
    # passed before the cap refused it (spec 4.1: validation comes first)
    busy = varied(reference, "busy-local", {"clients[0].connections": 6})
    ledger = ledger_from(baseline_of([reference, busy]), claims)
    assert only(ledger, "impact.local_works") is Verdict.REFUTED
    assert only(ledger, "summary.local_works") is Verdict.SUPPORTED


def test_claims_about_one_environment_run_its_own_traffic_and_every_failing_profiles_traffic_in_it() -> None:
    baseline = shipped_with_failing(STAGING, "staging-e2e")
    local = ["development", REFERENCE, "pytest"]
    assert labels("summary.local_works", baseline) == sorted(
        [*local, *(f"{traffic} traffic in {name} environment" for name in local for traffic in (STAGING, "staging-e2e"))])
    assert labels("impact.local_works", baseline) == labels("summary.local_works", baseline)
    assert labels("impact.production", baseline) == sorted(
        ["production-cloud-run", *(f"{traffic} traffic in production-cloud-run environment"
                                   for traffic in (STAGING, "staging-e2e"))])


def test_an_environment_claims_evidence_counts_its_own_traffic_apart_from_the_replayed_traffic() -> None:
    """local-debug's own traffic held with no failure; staging's traffic replayed there did not (2 closes)."""
    observations = (Observation(REFERENCE, True, "fine"),
                    Observation(f"{STAGING} traffic in {REFERENCE} environment", False, "two closes",
                                ((FACTORY_CLOSES, 2),), replayed=True))
    finding = Finding(hypothesis("summary.local_works"), Verdict.REFUTED, observations)
    assert finding.evidence() == (
        f"prediction held on 1 of 2 runs: with their own traffic ({REFERENCE}) on 1 of 1 run (no failure), "
        f"with the failing profiles' traffic replayed there on 0 of 1 run ({FACTORY_CLOSES} x2); "
        f"e.g. {STAGING} traffic in {REFERENCE} environment: two closes")


def test_staging_unavailable_runs_each_cloud_run_staging_profile_and_needs_a_user_without_a_working_connection(
    staging: Profile,
) -> None:
    # K_SERVICE set and ENVIRONMENT exactly "staging" (profile files): cloud-run-env-missing has no ENVIRONMENT,
    # staging-env-whitespace no K_SERVICE
    renamed = varied(staging, "renamed", {})
    assert labels("impact.staging_unavailable", shipped_with_failing(extra=(renamed,))) == [
        "renamed", STAGING, "staging-e2e"]
    # every connection past auth (spec 1 steps 5-8: a 1011 factory close comes after auth succeeded), so each
    # user is one authentication established
    served = RunResult("x", "original", (factory_close(0, AUTH_VALID), connection(1, AUTH_VALID)))  # user "u": one works
    other = dataclasses.replace(factory_close(2, AUTH_VALID), user_id="v")  # user "v": its only connection fails
    assert some_user_never_served(served, {})[0] is False
    # "v" has no working connection and its one connection closed 1011: one user denied by the claimed failure
    assert some_user_never_served(dataclasses.replace(served, connections=(*served.connections, other)), {}) == (
        True, f"1 of 2 users had a working connection; 1 had none and got a 1011 close; 2 of 3 connections fail "
        f"({FACTORY_CLOSES} 2, open 1)")


def test_staging_is_not_made_unavailable_by_users_refused_for_a_bad_token() -> None:
    """The claim is that staging connections fail with 1011: auth-refused-staging's expired-token user is closed
    1008 twice (spec 5.3, 1 step 5) and its other user's connection stays open, so no user is denied by a 1011.
    The expired token establishes no user (5.3: exp verified -> VALIDATION_FAILED), so its two connections are
    nobody's: 1 user, the one served, besides those 2 connections."""
    run = simulate(load_profile_file(LEDGER13_WORLD / "auth-refused-staging.toml"))
    assert some_user_never_served(run, {}) == (
        False, "1 of 1 user (not counting 2 connections whose user the server never established) had a working "
        "connection; 0 had none and got a 1011 close; 2 of 3 connections fail (1008 SSOT Auth failed 2, open 1)")
    # a 1008 then a 1011 for one user, nothing working: the 1011 (past auth, spec 1 steps 5-8) denies that user
    refused_then_closed = run_of(auth_refused(0), factory_close(1, AUTH_VALID))
    assert some_user_never_served(refused_then_closed, {})[0] is True


def test_staging_is_not_unavailable_every_staging_user_had_a_working_connection(ledger: Ledger) -> None:
    """A user's first connection to an instance meets no manager of its own (spec 4.2: the cap is 5), so every
    user of staging-cloud-run (6 users, staging-cloud-run.toml) and staging-e2e (3 E2E processes, one user each)
    has a working connection, however long the traffic runs."""
    finding = ledger.finding("impact.staging_unavailable")
    assert finding.verdict is Verdict.REFUTED
    assert [o.evidence.split(";")[0] for o in finding.observations] == [
        "6 of 6 users had a working connection", "3 of 3 users had a working connection"]


def test_production_impact_flips_with_a_user_reconnecting_past_the_cap(reference: Profile, staging: Profile) -> None:
    impact = [hypothesis("impact.production")]
    production = load_profile("production-cloud-run")
    assert only(ledger_from(baseline_of([reference, production]), impact), "impact.production") is Verdict.REFUTED
    reconnecting = varied(production, "production-reconnects", {"clients[4].connections": 8, "clients[4].spacing_s": 20.0})
    ledger = ledger_from(baseline_of([reference, reconnecting]), impact)
    assert only(ledger, "impact.production") is Verdict.SUPPORTED


def test_production_impact_counts_failing_traffic_moved_into_production(reference: Profile, staging: Profile) -> None:
    """The report's "production likely similar": staging's failing traffic, run in production's
    environment (its env, instances and routing), fails the same way, though production's own
    traffic does not."""
    impact = [hypothesis("impact.production")]
    production = load_profile("production-cloud-run")
    ledger = ledger_from(baseline_of([reference, production, staging]), impact)
    assert only(ledger, "impact.production") is Verdict.SUPPORTED
    calm_staging = varied(staging, "calm-staging", {"clients[5].connections": 1})
    ledger = ledger_from(baseline_of([reference, production, calm_staging]), impact)
    assert only(ledger, "impact.production") is Verdict.REFUTED


def _reject_fallback_ids_at_manager_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A world where the report's Why #5 holds: the factory rejects fallback-format thread ids."""
    original = factory._validate_ssot_user_context_staging_safe

    def validate(user_context: Any) -> None:
        if str(getattr(user_context, "thread_id", "")).startswith("ws_thread_"):
            raise ValueError("SSOT CONTEXT VALIDATION FAILED: thread_id has the fallback format")
        original(user_context)

    monkeypatch.setattr(factory, "_validate_ssot_user_context_staging_safe", validate)


def test_fallback_claim_flips_when_the_factory_rejects_fallback_ids(
    monkeypatch: pytest.MonkeyPatch, reference: Profile, staging: Profile
) -> None:
    claims = [hypothesis("why5.fallback_fails_validation"), hypothesis("why1.validation_raises")]
    baseline = [reference, staging]
    before = ledger_from(baseline_of(baseline), claims)
    assert only(before, "why5.fallback_fails_validation") is Verdict.REFUTED
    _reject_fallback_ids_at_manager_creation(monkeypatch)
    after = ledger_from(baseline_of(baseline), claims)
    assert only(after, "why5.fallback_fails_validation") is Verdict.SUPPORTED


def test_v1_claim_flips_when_strict_validation_fails_where_v1_relaxes_it(
    monkeypatch: pytest.MonkeyPatch, reference: Profile, staging: Profile
) -> None:
    # A deployment with K_REVISION but no K_SERVICE: the original validates strictly, V1 relaxes (spec 8).
    revision_only = varied(reference, "revision-only", {"env.K_REVISION": "svc-00001-abc"})
    original = factory._validate_ssot_user_context

    def strict(user_context: Any) -> None:
        original(user_context)
        raise ValueError("SSOT CONTEXT VALIDATION FAILED: rejected by a stricter check")

    fix = [hypothesis("fix.v1")]
    assert only(ledger_from(baseline_of([reference, staging]), fix), "fix.v1") is Verdict.REFUTED
    monkeypatch.setattr(factory, "_validate_ssot_user_context", strict)
    # Context creation (auth) validates too; let it pass there so only the factory's check rejects.
    monkeypatch.setattr("investigation.backend.auth._validate_ssot_user_context_staging_safe", lambda ctx: None)
    ledger = ledger_from(baseline_of([revision_only]), fix)
    assert only(ledger, "fix.v1") is Verdict.SUPPORTED


# --- the shipped profiles ------------------------------------------------------------------


def test_default_verdicts_follow_from_the_spec(ledger: Ledger) -> None:
    assert only(ledger, "why1.validation_raises") is Verdict.REFUTED
    assert only(ledger, "why4.environment_makes_it_fail") is Verdict.REFUTED
    assert only(ledger, "fix.v1") is Verdict.REFUTED
    assert only(ledger, "action.permissive_staging_validation") is Verdict.REFUTED
    assert only(ledger, "table.environment_detection") is Verdict.SUPPORTED
    # the failing profiles' traffic replayed in a local environment still meets the per-user cap (spec 4.2)
    # after its validation passed (spec 4.1)
    assert only(ledger, "impact.local_works") is Verdict.REFUTED
    assert only(ledger, "summary.local_works") is Verdict.SUPPORTED
    assert only(ledger, "impact.production") is Verdict.SUPPORTED
    assert only(ledger, "table.database") is Verdict.INCONCLUSIVE
    assert only(ledger, "table.resource_limits") is Verdict.INCONCLUSIVE


def test_ledger_views_are_deterministic_and_name_every_claim(ledger: Ledger) -> None:
    again = build_ledger()
    assert again.to_text() == ledger.to_text()
    markdown = ledger._repr_markdown_()
    assert all(h.key in markdown for h in HYPOTHESES)
    assert sum(ledger.counts().values()) == len(HYPOTHESES)


def test_the_ledger_is_made_once_per_grid_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, reference: Profile, staging: Profile
) -> None:
    """Inside a grid run (RUN_CACHE_ENV set) a second notebook reads the first one's ledger."""
    from investigation.analysis import hypotheses
    from investigation.run_cache import RUN_CACHE_ENV

    monkeypatch.setenv(RUN_CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(hypotheses, "list_profiles", lambda profiles_dir=None: [reference, staging])
    first = build_ledger()

    def not_again(*args: Any, **kwargs: Any) -> Ledger:
        raise AssertionError("the ledger was computed twice")

    monkeypatch.setattr(hypotheses, "ledger_from", not_again)
    again = build_ledger()
    assert again.to_text() == first.to_text()
    assert again.finding("fix.v1").hypothesis is hypothesis("fix.v1")


# --- the evidence line shows the observations that decided the verdict ---------------------


def observed(quantifier: Any, *holds: bool | None) -> Finding:
    """A finding over runs r0, r1, ... whose prediction held (True), failed (False) or was not tested."""
    claim = Hypothesis("k", "s", "claim", "prediction", quantifier, lambda b: [])
    observations = tuple(Observation(f"r{n}", value, f"evidence {n}") for n, value in enumerate(holds))
    return Finding(claim, verdict_of(holds, quantifier), observations)


@pytest.mark.parametrize(
    ("quantifier", "holds", "line"),
    [
        # "all": refuted by the runs where it failed; the first of them (r1) is shown, and the run where
        # it held anyway (r0) is named with its evidence
        ("all", (True, False, None, False),
         "refuted: prediction held on 1 of 3 runs (held on r0: evidence 0); e.g. r1: evidence 1"),
        ("all", (True, False, True), "refuted: prediction held on 2 of 3 runs (held on r0, r2); e.g. r1: evidence 1"),
        ("all", (None, True, True), "supported: prediction held on 2 of 2 runs; e.g. r1: evidence 1"),
        # "any" (a "may" claim): supported by the runs where it held; the first of them (r1) is shown, and
        # the run where it did not happen (r0) is named with its evidence
        ("any", (False, True, None, True),
         "supported: prediction held on 2 of 3 runs (not met on r0: evidence 0); e.g. r1: evidence 1"),
        ("any", (False, True, False), "supported: prediction held on 1 of 3 runs (not met on r0, r2); e.g. r1: evidence 1"),
        ("any", (None, True), "supported: prediction held on 1 of 1 run; e.g. r1: evidence 1"),
        ("any", (None, False, False), "refuted: prediction held on 0 of 2 runs; e.g. r1: evidence 1"),
    ],
)
def test_evidence_line_names_the_first_deciding_run(quantifier: Any, holds: tuple[bool | None, ...], line: str) -> None:
    finding = observed(quantifier, *holds)
    assert f"{finding.verdict.value}: {finding.evidence()}" == line


def test_evidence_line_of_an_untested_claim_gives_the_reason() -> None:
    finding = observed("any", None, None)
    assert finding.verdict is Verdict.INCONCLUSIVE
    assert finding.deciding_observations() == finding.observations
    assert finding.evidence() == "no run reached what the claim is about"


# --- the ledger views, on hand-built findings ----------------------------------------------


def finding_of(key: str, *holds: bool | None) -> Finding:
    """The registered claim ``key`` observed on runs r0, r1, ... (evidence "<key> n")."""
    claim = hypothesis(key)
    observations = tuple(Observation(f"r{n}", value, f"{key} {n}") for n, value in enumerate(holds))
    return Finding(claim, verdict_of(holds, claim.quantifier), observations)


@pytest.fixture
def hand_ledger() -> Ledger:
    """why1 and fix.v1 refuted (fix.v1 held on r0, failed on r1), why2 supported, why3 inconclusive."""
    v1_runs = (Observation("r0", True, "fix.v1 0"), Observation("r1", False, "fix.v1 1", ((FACTORY_CLOSES, 1),)))
    findings = (finding_of("why1.validation_raises", False), finding_of("why2.strict_validation_rejects", True),
                finding_of("why3.context_creation_differs", None),
                Finding(hypothesis("fix.v1"), Verdict.REFUTED, v1_runs))
    return Ledger(findings, runs_made=5)


def test_lessons_name_the_first_refuted_claim_the_supported_ones_and_the_v1_runs_that_failed(hand_ledger: Ledger) -> None:
    lines = str(ledger_lessons(hand_ledger).data).splitlines()
    # 2 of the 4 are "all" claims that were refuted (why1, fix.v1); the 4 claims are not all about every case
    assert lines[0] == ("- 2 claims say something holds in every case; each was refuted by a run built to test it "
                        "(e.g. `why1.validation_raises`: prediction held on 0 of 1 run; r0: why1.validation_raises 0).")
    assert lines[1] == ("- 1 claim says something holds in every case; it held on every run that tested it: "
                        "`why2.strict_validation_rejects`.")
    assert lines[2] == ("- The recommended fix (V1) leaves 1 factory close (1011 Factory SSOT validation failed, what the "
                        "claim is judged on) over 1 run (r1).")


FACTORY_CLOSES = "1011 Factory SSOT validation failed"


def test_lessons_word_each_verdict_group_by_its_rule_and_sum_what_v1_leaves_over_every_run() -> None:
    """A "may" claim is refuted because no run made it happen, not by one run; V1's failures are summed
    over every run where they remain (r1: 1, r2: 10 + 2), not taken from the first one."""
    v1_runs = (Observation("r0", True, "fine"),
               Observation("r1", False, "one", ((FACTORY_CLOSES, 1),)),
               Observation("r2", False, "twelve", (("1008 SSOT Auth failed", 2), (FACTORY_CLOSES, 10))))
    ledger = Ledger((finding_of("why1.validation_raises", False),
                     finding_of("why5.startup_timing", False, False),
                     finding_of("impact.production", False, True),
                     Finding(hypothesis("fix.v1"), Verdict.REFUTED, v1_runs)), runs_made=8)
    assert str(ledger_lessons(ledger).data).splitlines() == [
        "- 2 claims say something holds in every case; each was refuted by a run built to test it "
        "(e.g. `why1.validation_raises`: prediction held on 0 of 1 run; r0: why1.validation_raises 0).",
        "- 1 claim says something can happen; none of the runs built to provoke it made it happen, so it was "
        "refuted (`why5.startup_timing`: prediction held on 0 of 2 runs; r0: why5.startup_timing 0).",
        "- 1 claim says something can happen; a run made it happen: `impact.production`.",
        # the factory closes are the claim's measure (1 + 10); r2's two 1008s are counted apart
        "- The recommended fix (V1) leaves 11 factory closes (1011 Factory SSOT validation failed, what the claim is "
        "judged on) over 2 runs (r1, r2); besides, 2 other failing connections on those runs (1008 SSOT Auth failed x2).",
    ]


def test_lessons_word_several_refuted_may_claims_each_by_its_own_runs() -> None:
    """Two "may" claims, neither provoked by its runs: each is refuted by its own runs, not one run for both."""
    ledger = Ledger((finding_of("why5.startup_timing", False, False), finding_of("why5.auth_patterns", False),
                     finding_of("fix.v1", None)), runs_made=3)
    assert str(ledger_lessons(ledger).data).splitlines()[0] == (
        "- 2 claims say something can happen; for each, none of the runs built to provoke it made it happen, "
        "so each was refuted (e.g. `why5.startup_timing`: prediction held on 0 of 2 runs; r0: why5.startup_timing 0)."
    )


def test_the_ledger_evidence_column_does_not_repeat_the_verdict(hand_ledger: Ledger) -> None:
    """The verdict has its own column; the evidence starts with what the runs showed."""
    rows = {key: (verdict, evidence) for key, _, verdict, evidence in hand_ledger.rows()}
    assert rows["fix.v1"] == ("refuted", "prediction held on 1 of 2 runs (held on r0: fix.v1 0); e.g. r1: fix.v1 1")
    assert rows["why3.context_creation_differs"][1] == "no run reached what the claim is about"
    assert hand_ledger.finding("fix.v1").evidence() == rows["fix.v1"][1]


def test_an_observation_counts_the_runs_failing_connections_by_close() -> None:
    run = run_of(connection(0), factory_close(1), factory_close(2), connection(3, code=1008, reason="SSOT Auth failed"))
    finding = evaluate(hypothesis("fix.v1"), [Trial(RunSpec("x", load_profile(REFERENCE)), has_no_failure)], {"x": run})
    assert finding.observations[0].failures == (("1008 SSOT Auth failed", 1), (FACTORY_CLOSES, 2))


def test_verdict_bullets_count_each_class(hand_ledger: Ledger) -> None:
    assert str(ledger_verdicts(hand_ledger).data).splitlines() == [
        "- **supported** (1): `why2.strict_validation_rejects`",
        "- **refuted** (2): `why1.validation_raises`, `fix.v1`",
        "- **inconclusive** (1): `why3.context_creation_differs`",
    ]


def test_finding_details_say_where_the_prediction_held_and_an_unknown_key_is_an_error(hand_ledger: Ledger) -> None:
    rows = finding_details(hand_ledger, "fix.v1").splitlines()
    assert rows[0] == "fix.v1: refuted"
    # "failure" is a connection closed with a code other than 1000; a prediction is "not met"
    assert [row.split()[:3] for row in rows[3:]] == [["r0", "held", "fix.v1"], ["r1", "not", "met"]]
    with pytest.raises(KeyError):
        hand_ledger.finding("no.such.claim")


REPORT = (Path(__file__).parent.parent / "docs" / "seed" / "incident-report.md").read_text()


@pytest.mark.parametrize(
    ("key", "quoted", "section", "source"),
    [
        # the report's words (in the claim), the section of the report that says them, and the claim's citation
        ("finding.environment_not_set", "or if the staging accommodation logic has other issues",
         "### Environment Detection Issues", "Environment detection issues"),
        ("why5.fallback_in_staging", "triggers the UnifiedIdGenerator UUID fallback",
         "3. **String Attribute Format Differences**", "Why #5 (3)"),
        ("why3.context_creation_differs", "creates UserExecutionContext with different attribute patterns",
         "### Why #3", "Why #3"),
        ("impact.staging_unavailable", "Core chat functionality unavailable in staging",
         "## Business Impact Assessment", "Business impact"),
    ],
)
def test_claims_quote_the_report_and_cite_where_it_says_it(key: str, quoted: str, section: str, source: str) -> None:
    claim = hypothesis(key)
    # the report says "Staging environment triggers UUID fallback"; the claim adds which generator
    said = "Staging environment triggers UUID fallback" if key == "why5.fallback_in_staging" else quoted
    assert REPORT.index(section) < REPORT.lower().index(said.lower())
    assert quoted.lower() in claim.claim.lower()
    assert claim.source.startswith(source)


def test_fallback_in_staging_cites_why5_point_3_and_v1_is_worded_from_the_report_and_spec_8() -> None:
    # Why #5 point (3) "ID Generation Fallback: Staging environment triggers UUID fallback" (report)
    assert hypothesis("why5.fallback_in_staging").source.startswith("Why #5 (3)")
    claim = hypothesis("fix.v1").claim
    # the report's fix code: is_cloud_run = bool(env.get("K_SERVICE")), no E2E_TEST_ENV, a VALIDATION ENV DEBUG line
    for words in ("K_SERVICE-only", "drops E2E_TEST_ENV == 'staging'", "VALIDATION ENV DEBUG", "spec 8's V1"):
        assert words in claim


def test_the_module_example_shows_the_shipped_ledgers_summary(ledger: Ledger) -> None:
    """The claim counts of the module's example (the run count grows with the profiles, so it is left out)."""
    from investigation.analysis import hypotheses

    claims = f'"{len(ledger.findings)} claims of the report, {ledger.tested()} of them tested with '
    assert claims in str(hypotheses.__doc__)


def test_the_local_debug_run_reproduces_the_reports_debug_output(ledger: Ledger) -> None:
    # report, Debug Test Results: thread_websocket_factory_1757365610210_1_..., run_..._2_..., req_..._3_...;
    # "Environment: test (uses NON-STAGING strict validation)"; "WebSocket manager created"
    finding = ledger.finding("debug.local_run")
    assert finding.verdict is Verdict.SUPPORTED
    assert "first context: thread_websocket_factory_" in finding.evidence()


def test_the_debug_output_is_not_reproduced_when_the_ids_come_from_the_fallback(reference: Profile) -> None:
    # spec 3.2: a failing generator gives ws_thread_{s}_{h}-style ids, not the report's thread_websocket_factory_
    broken = varied(reference, REFERENCE, {"startup.id_generator_fails": True})
    (trial,) = hypothesis("debug.local_run").design(baseline_of([broken]))
    run = simulate(broken)
    holds, evidence = trial.predicate(run, {REFERENCE: run})
    assert holds is False
    assert "first context: ws_thread_" in evidence


def test_v1s_logging_does_not_name_the_refusal(ledger: Ledger) -> None:
    # spec 8: V1 adds the report's 'VALIDATION ENV DEBUG: env=..., cloud_run=..., staging=..., e2e=...' line; the
    # failing connections are refused at the cap (spec 4.2), whose message ('has reached the maximum number of
    # WebSocket managers') no such line carries, and the backend logs no close (spec 1)
    finding = ledger.finding("next.enhanced_logging")
    assert finding.verdict is Verdict.REFUTED
    assert "V1 adds 'VALIDATION ENV DEBUG: env=" in finding.evidence()
    assert "none carries the cause" in finding.evidence()


def test_a_log_line_that_carries_the_cause_identifies_the_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from investigation.analysis import hypotheses as module

    profile = load_profile(STAGING)
    original = simulate(profile)
    cause = original.failures[0].cause_chain[-1].message
    monkeypatch.setattr(module, "added_log_lines", lambda *_: Counter({f"refused: {cause}": 1}))
    holds, evidence = module.logging_names_the_refusal(profile, "V1")(original, {STAGING: original})
    assert holds is True
    assert "one carries the cause" in evidence


def test_the_staging_auth_flows_client_ids_are_not_flagged(ledger: Ledger) -> None:
    # spec 5: the auth flow makes websocket_client_id ws_{user_id[:8]}_{s}_{uuid8}, a non-blank string, which
    # strict validation (spec 4.4 step 4) accepts: nothing to flag
    finding = ledger.finding("why5.client_id_format")
    assert finding.verdict is Verdict.REFUTED
    assert "strict validation flags websocket_client_id in 0" in finding.evidence()


def test_a_flagged_client_id_supports_the_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    from investigation.analysis import hypotheses as module
    from investigation.analysis.contexts import CheckedContext

    blank = CheckedContext("u-1", "t", "r", "q", " ", "SSOT CONTEXT VALIDATION FAILED: websocket_client_id must be "
                           "None or non-empty string, got empty/whitespace: ' '")  # spec 4.4 step 4
    monkeypatch.setattr(module, "contexts_of", lambda *_: (blank,))
    run = simulate(load_profile(STAGING))
    holds, evidence = module.client_id_flagged(load_profile(STAGING))(run, {STAGING: run})
    assert holds is True
    assert evidence.endswith("in 0 of 1 context; strict validation flags websocket_client_id in 1")


@pytest.mark.parametrize(("user_id", "client_id", "expected"), [
    ("staging-e2e-user-002", "ws_staging-_1757365610_e3e70682", True),  # spec 5: ws_{user_id[:8]}_{s}_{uuid8}
    ("staging-e2e-user-002", "ws_client_staging-_1757365610_e3e70682", False),  # spec 3: the default's form
    ("106574839201746382910", "ws_10657483_1757365610_e3e7068", False),  # 7 hex digits
])
def test_the_auth_flows_client_id_form(user_id: str, client_id: str, expected: bool) -> None:
    from investigation.analysis.contexts import CheckedContext
    from investigation.analysis.hypotheses import auth_client_id_format

    assert auth_client_id_format(CheckedContext(user_id, "t", "r", "q", client_id, "pass")) is expected


def _local_debug_context(**ids: str) -> Any:
    from investigation.analysis.contexts import CheckedContext

    fields = {"user_id": "test-user-12345", "thread_id": "thread_websocket_factory_1757365610210_1_bed604d6",
              "run_id": "run_websocket_factory_1757365610210_2_c0335ab3",
              "request_id": "req_websocket_factory_1757365610210_3_a9dbe4f2",  # the report's debug output
              "websocket_client_id": "ws_test-use_1757365610_e3e70682", "strict": "pass", **ids}
    return CheckedContext(**fields)


@pytest.mark.parametrize(
    ("ids", "decisions", "expected"),
    [
        ({}, (("factory.validation_mode", "strict"), ("factory.validation", "pass"), ("factory.result", "created")),
         True),
        # the report's debug run validated strictly ("Environment: test (uses NON-STAGING strict validation)")
        ({}, (("factory.validation_mode", "relaxed"), ("factory.validation", "pass"), ("factory.result", "created")),
         False),
        # one id out of the generator's order (spec 3.1: thread N, run N+1, req N+2)
        ({"run_id": "run_websocket_factory_1757365610210_3_c0335ab3"},
         (("factory.validation_mode", "strict"), ("factory.validation", "pass"), ("factory.result", "created")), False),
    ],
)
def test_the_debug_output_needs_every_id_format_and_strict_validation_and_a_manager(
        monkeypatch: pytest.MonkeyPatch, reference: Profile, ids: dict[str, str],
        decisions: tuple[tuple[str, str], ...], expected: bool) -> None:
    from investigation.analysis import hypotheses as module

    monkeypatch.setattr(module, "contexts_of", lambda *_: (_local_debug_context(**ids),))
    run = run_of(connection(0, *decisions))
    assert module.reproduces_local_debug_output(reference)(run, {REFERENCE: run})[0] is expected


def test_a_context_rejected_for_another_field_does_not_flag_the_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from investigation.analysis import hypotheses as module

    # spec 4.4 step 3: a blank thread_id is flagged by name; websocket_client_id is not named
    other = _local_debug_context(thread_id=" ", strict="SSOT CONTEXT VALIDATION FAILED: thread_id must be non-empty "
                                 "string, got empty/whitespace: ' '")
    monkeypatch.setattr(module, "contexts_of", lambda *_: (other,))
    run = run_of(factory_close(0))
    holds, evidence = module.client_id_flagged(load_profile(STAGING))(run, {STAGING: run})
    assert holds is False
    assert evidence.endswith("strict validation flags websocket_client_id in 0")


def test_the_auth_flow_differs_where_any_failing_connection_differs_from_the_local_one() -> None:
    from investigation.analysis.hypotheses import auth_flow_differences

    local = connection(0, ("auth.token_source", "bearer"), ("auth.e2e_bypass", "yes"))
    closes = [factory_close(1, ("auth.token_source", "bearer"), ("auth.e2e_bypass", "yes")),
              factory_close(2, ("auth.token_source", "bearer"), ("auth.e2e_bypass", "no"))]
    assert auth_flow_differences(closes, local) == [
        "auth.e2e_bypass (yes locally; auth.e2e_bypass=no x1, auth.e2e_bypass=yes x1 here)"]  # equal counts by name


def test_v2s_evidence_counts_the_failing_connections_that_passed_validation() -> None:
    from investigation.analysis.hypotheses import no_factory_close_though_unchanged

    passed = factory_close(0, ("factory.validation", "pass"))
    rejected = factory_close(1, ("factory.validation", "fail"))
    original = run_of(passed, rejected)
    under_v2 = run_of(connection(0), connection(1))
    _, evidence = no_factory_close_though_unchanged("V2", ["x"])(under_v2, {"x": original, "x [V2]": under_v2})
    # one failing connection was a validation rejection: a more permissive check would have something to accept
    assert evidence.endswith("V2's run equals the original's on 0 of 1 failing profile; factory.validation "
                             "rejected 1 of the original's 2 failing connections that reached it")


def test_v2s_evidence_counts_rejections_among_the_failing_connections_that_reached_validation() -> None:
    from investigation.analysis.hypotheses import no_factory_close_though_unchanged

    # a cap refusal after a passed validation (spec 4.2) and an auth refusal before any decision (spec 1 step 5):
    # neither was rejected by validation, and the second never reached it
    original = run_of(factory_close(0, ("factory.validation", "pass")), auth_refused(1))
    _, evidence = no_factory_close_though_unchanged("V2", ["x"])(original, {"x": original, "x [V2]": original})
    assert evidence.endswith("V2's run equals the original's on 1 of 1 failing profile; factory.validation "
                             "rejected 0 of the original's 1 failing connection that reached it, 1 other never "
                             "reached it, so a more permissive check has nothing to accept")


def test_a_replayed_run_is_marked_by_how_it_was_made_not_by_its_label(reference: Profile, staging: Profile) -> None:
    # a profile whose own name reads like a replay label is still its own traffic
    odd = varied(reference, "a traffic in b environment", {})
    assert in_environment_of(staging, reference).replayed is True
    assert unchanged(odd).replayed is False


# --- small counterfactual worlds (tests/worlds/ledger13, audit 13) ------------------------------------

LEDGER13_WORLD = Path(__file__).parent / "worlds" / "ledger13"


def world_baseline(*files: str) -> Baseline:
    """local-debug (shipped) and the profiles of ``files`` under tests/worlds/ledger13, run once each."""
    return baseline_of([load_profile(REFERENCE), *(load_profile_file(LEDGER13_WORLD / name) for name in files)])


def test_why4_leaves_untested_the_traffic_that_has_no_factory_close_to_make_disappear() -> None:
    """auth-refused-staging fails only by 1008 (expired token, spec 5.3 and 1 step 5): that its traffic gets no
    1011 locally says nothing about the environment. local-debug's one connection in its Cloud Run staging
    environment: the user's first manager (cap 5, spec 4.2), a context the auth flow builds, relaxed validation
    (spec 4.3, ENVIRONMENT staging), so no factory close: the one tested run does not hold."""
    baseline = world_baseline("auth-refused-staging.toml")
    finding = ledger_from(baseline, [hypothesis("why4.environment_makes_it_fail")]).findings[0]
    by_run = {o.run: o for o in finding.observations}
    moved = by_run[f"auth-refused-staging traffic in {REFERENCE} environment"]
    assert (moved.holds, moved.evidence) == (
        None, "no factory close in auth-refused-staging (1008 SSOT Auth failed 2, open 1)")
    assert by_run[f"{REFERENCE} traffic in auth-refused-staging environment"].holds is False
    assert finding.held_on() == "prediction held on 0 of 1 run"


def test_the_conclusion_leaves_untested_a_failing_profile_without_a_factory_close() -> None:
    """startup-never-staging's one connection closes 1011 'Service startup incomplete' at the startup gate
    (spec 1 step 9), not by the factory: no factory close whose cause the conclusion could name."""
    baseline = world_baseline("startup-never-staging.toml")
    finding = ledger_from(baseline, [hypothesis("conclusion.root_cause")]).findings[0]
    assert [(o.run, o.holds, o.evidence) for o in finding.observations] == [(
        f"startup-never-staging traffic in {REFERENCE} environment", None,
        "no factory close in startup-never-staging (1011 Service startup incomplete 1)")]
    assert finding.verdict is Verdict.INCONCLUSIVE


def test_a_failing_reference_is_refused_in_one_line_naming_it_and_why() -> None:
    """failing-reference/local-debug.toml: one user, 7 connections, managers never released (spec 1 step 14), cap
    5 (spec 4.2): connections 6 and 7 close 1011 'Factory SSOT validation failed', 5 stay open."""
    from investigation.notebook_errors import NotebookParameterError

    with pytest.raises(NotebookParameterError) as caught:
        build_ledger(str(LEDGER13_WORLD / "failing-reference"))
    assert str(caught.value) == (
        f"parameter profiles_dir: {REFERENCE}, the ledger's reference (the report's passing local debug run), fails "
        "under the original code (2 of 7 connections: 1011 Factory SSOT validation failed 2, open 5); the reference "
        "must be a profile whose connections all pass")


def test_no_design_compares_the_reference_with_itself() -> None:
    baseline = shipped_with_failing(REFERENCE, STAGING)
    assert labels("summary.identical_code_path", baseline) == [STAGING]
    assert labels("conclusion.root_cause", baseline) == [f"{STAGING} traffic in {REFERENCE} environment"]
    assert f"{REFERENCE} traffic in {REFERENCE} environment" not in labels("why4.environment_makes_it_fail", baseline)


def test_the_fixes_are_judged_on_the_factory_closes_not_on_refused_tokens() -> None:
    """auth-refused-staging fails only by 1008 (expired token, spec 5.3 and 1 step 5), which neither V1 (detection,
    spec 8) nor V2 (relaxed validation) touches: their claims are about the 1011 factory close, which that profile
    never has, so its runs under them test nothing (untested), and the claims stay inconclusive, not refuted."""
    baseline = world_baseline("auth-refused-staging.toml")
    ledger = ledger_from(baseline, [hypothesis("fix.v1"), hypothesis("action.permissive_staging_validation")])
    for finding in ledger.findings:
        assert [o.holds for o in finding.observations] == [None], finding.key
        assert finding.verdict is Verdict.INCONCLUSIVE, finding.key
