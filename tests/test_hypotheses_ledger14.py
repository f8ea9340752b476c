"""Audit 14 (worlds b/w1, b/w2, b/w4): claims about the 1011 factory close are not tested by auth refusals (1008)
nor by a profile that injects the ID generator's failure.

The worlds are the shipped local-debug (the ledger's reference) and small profiles under tests/worlds/ledger14 and
tests/worlds/ledger13; every expected value is derived from the spec and the profile files (comments).
"""

from __future__ import annotations

from pathlib import Path

from investigation.analysis.hypotheses import (
    HYPOTHESES,
    REFERENCE,
    Baseline,
    Finding,
    Verdict,
    baseline_of,
    has_no_failure,
    ledger_from,
)
from investigation.profiles import load_profile, load_profile_file
from investigation.trace import ConnectionResult, RunResult

WORLDS = Path(__file__).parent / "worlds"
AUTH_REFUSED_STAGING = WORLDS / "ledger13" / "auth-refused-staging.toml"
"""Cloud Run staging: an expired token presented twice (spec 5.3, refused 1008, spec 1 step 5), one valid user: its
run is ``1008 SSOT Auth failed 2, open 1``, no factory close."""
DEV_EXPIRED = WORLDS / "ledger14" / "dev-expired-token.toml"
"""ENVIRONMENT development off Cloud Run (a local profile): the same two refusals and one valid user, no factory
close: ``1008 SSOT Auth failed 2, open 1``."""
IDGEN_INJECTED = WORLDS / "ledger14" / "staging-idgen-injected-cap.toml"
"""Cloud Run staging with the ID generator's failure injected: one user's 6 connections within 5 minutes, so the
sixth meets the cap of 5 managers (spec 4.2; never released, spec 1 step 14; emergency cleanup frees none younger
than 5 minutes) and closes 1011 'Factory SSOT validation failed' on fallback ids (spec 3.2)."""
NO_FACTORY_CLOSE_IN_AUTH_REFUSED = "no factory close in auth-refused-staging (1008 SSOT Auth failed 2, open 1)"


def world(*files: Path) -> Baseline:
    return baseline_of([load_profile(REFERENCE), *(load_profile_file(path) for path in files)])


def finding_of(key: str, baseline: Baseline) -> Finding:
    return ledger_from(baseline, [next(h for h in HYPOTHESES if h.key == key)]).findings[0]


def refused(index: int) -> ConnectionResult:
    """Connection ``index`` closed 1008 'SSOT Auth failed' (spec 1 step 5: any auth failure)."""
    return ConnectionResult(index=index, client="c", instance=0, user_id="u", at_s=float(index), close_code=1008,
                            close_reason="SSOT Auth failed", decisions=(), cause_chain=())


def opened(index: int) -> ConnectionResult:
    return ConnectionResult(index=index, client="c", instance=0, user_id="u", at_s=float(index), close_code=None,
                            close_reason=None, decisions=(), cause_chain=())


def test_a_run_refused_at_authentication_only_tests_nothing_past_it() -> None:
    """Two 1008 refusals and nothing else: no connection reached what 'no failure' is about."""
    holds, evidence = has_no_failure(RunResult("x", "original", (refused(0), refused(1))), {})
    assert (holds, evidence) == (None, "no connection got past authentication (1008 SSOT Auth failed 2)")


def test_auth_refusals_beside_a_working_connection_are_no_failure() -> None:
    """One open connection and one refused token: the refusal is set aside, the open one worked."""
    holds, evidence = has_no_failure(RunResult("x", "original", (opened(0), refused(1))), {})
    assert (holds, evidence) == (True, "1008 SSOT Auth failed 1, open 1; the 1008 auth refusals aside")


def test_local_works_is_not_refuted_by_development_refusing_expired_tokens() -> None:
    """impact.local_works on local-debug, dev-expired-token and auth-refused-staging. Local profiles (off Cloud Run,
    ENVIRONMENT test or development): local-debug and dev-expired-token; failing: dev-expired-token and
    auth-refused-staging (their 1008s). Own traffic: local-debug open 1, held; dev-expired-token's valid user's
    connection works and its two refusals are set aside, held. Every replay is of a failing profile with no factory
    close (dev-expired-token in local-debug, auth-refused-staging in both): untested. So supported, on 2 of 2 runs."""
    finding = finding_of("impact.local_works", world(DEV_EXPIRED, AUTH_REFUSED_STAGING))
    by_run = {o.run: (o.holds, o.evidence) for o in finding.observations}
    assert by_run["dev-expired-token"] == (True, "1008 SSOT Auth failed 2, open 1; the 1008 auth refusals aside")
    assert by_run["auth-refused-staging traffic in dev-expired-token environment"] == (
        None, NO_FACTORY_CLOSE_IN_AUTH_REFUSED)
    assert by_run[f"dev-expired-token traffic in {REFERENCE} environment"] == (
        None, "no factory close in dev-expired-token (1008 SSOT Auth failed 2, open 1)")
    assert finding.held_on() == "prediction held on 2 of 2 runs"
    assert finding.verdict is Verdict.SUPPORTED


def test_readiness_and_logging_leave_untested_a_profile_refused_only_at_authentication() -> None:
    """auth-refused-staging is the one failing profile, by 1008 only: neither 'every service ready' (spec 1 steps
    9-10, after authentication) nor V1's log line (spec 8, in validation) is about its refusals, so each claim's
    one run is untested and the claims are inconclusive, not refuted."""
    baseline = world(AUTH_REFUSED_STAGING)
    for key in ("action.service_readiness", "next.enhanced_logging"):
        finding = finding_of(key, baseline)
        assert [(o.holds, o.evidence) for o in finding.observations] == [
            (None, NO_FACTORY_CLOSE_IN_AUTH_REFUSED)], key
        assert finding.verdict is Verdict.INCONCLUSIVE, key


def test_an_injected_id_generator_failure_does_not_show_that_staging_triggers_the_fallback() -> None:
    """staging-idgen-injected-cap's one failing connection closes 1011 on fallback ids, but only because the
    profile makes the generator raise (spec 3.2: it does not fail on its own): untested, and with no other failing
    profile why5.fallback_in_staging is inconclusive."""
    baseline = world(IDGEN_INJECTED)
    base = baseline.runs["staging-idgen-injected-cap"]
    assert [(c.close_code, c.outcome("context.id_generation")) for c in base.failures] == [(1011, "fallback")]
    finding = finding_of("why5.fallback_in_staging", baseline)
    assert [(o.run, o.holds) for o in finding.observations] == [("staging-idgen-injected-cap", None)]
    assert finding.observations[0].evidence.startswith(
        "the ID generator's failure is injected (startup.id_generator_fails; spec 3.2: it does not fail on its own)")
    assert finding.verdict is Verdict.INCONCLUSIVE


STAGING_NO_SECRET = WORLDS / "ledger14" / "staging-no-secret.toml"
"""Cloud Run staging with no JWT secret: the auth service raises its configuration error at every attempt and the
retries end in VALIDATION_FAILED, 1008 (spec 5.3); its one connection is refused at authentication."""


def test_the_local_traffic_refused_at_authentication_in_a_cloud_environment_does_not_test_why4() -> None:
    """why4 predicts the local debug traffic gets a factory close (1011) in every Cloud Run environment. In the
    no-secret staging its one connection (held 5 s) never gets past authentication: the staging retries (spec 5.3:
    waits of 0.5 + 1 + 2 + 4 + 5 s) outlast it, so the client has left before the VALIDATION_FAILED refusal and the
    connection ends with no close ("open"). That replay tests nothing about the factory: untested, not a run where
    the prediction failed."""
    finding = finding_of("why4.environment_makes_it_fail", world(STAGING_NO_SECRET))
    by_run = {o.run: (o.holds, o.evidence) for o in finding.observations}
    assert by_run[f"{REFERENCE} traffic in staging-no-secret environment"] == (
        None, "no connection got past authentication (open 1)")
