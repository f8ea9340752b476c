"""Stop-14 re-check (world b/w1): the environment dd's last passing mixture already takes from the failing profile
is said with its values, in 06's per-profile trigger bullets and in 04's verdict and key result, not only in 04's
lessons. A secret (profiles.is_secret_factor: a name with SECRET, PASSWORD, TOKEN, PRIVATE, CREDENTIAL or ending in
_KEY) shows as set or unset, never its value.

The isolations here are the startup-gate isolation of tests/test_isolate.py (gate_profile, derived there: dd's
difference is ENVIRONMENT test -> staging and its last passing mixture holds clients[0].hold_s 5 -> 60 and
startup.complete true -> false) with, where the wording is under test, a hand-made passing mixture in place of dd's.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, cast

import pytest

from investigation.analysis.isolate import (
    ABSENT,
    FactorChange,
    held_environment_text,
    isolate_profiles,
    isolation_key_result,
    isolation_verdicts,
    minimal_failing_traffic,
)
from investigation.postmortem import Evidence, trigger_section
from tests.test_isolate import SECRET, gate_profile

# auth-staging-alg-rs256 of world b/w1 against local-debug: dd's passing mixture took these three of the failing
# profile's env entries (local-debug sets none of them; the profile sets GOOGLE_CLOUD_PROJECT "netra-staging",
# JWT_ALGORITHM "RS256" and JWT_SECRET_KEY, a secret).
ALG_MIXTURE = (FactorChange("env.GOOGLE_CLOUD_PROJECT", ABSENT, "netra-staging"),
               FactorChange("env.JWT_ALGORITHM", ABSENT, "RS256"),
               FactorChange("env.JWT_SECRET_KEY", ABSENT, SECRET))
# staging-no-cloud-signal -> auth-staging-no-secret: the passing member sets both secrets and
# KUBERNETES_SERVICE_HOST "10.96.0.1"; the failing member sets none of them, which is what the mixture takes.
NO_SECRET_MIXTURE = (FactorChange("env.JWT_SECRET_KEY", SECRET, ABSENT),
                     FactorChange("env.JWT_SECRET_STAGING", SECRET, ABSENT),
                     FactorChange("env.KUBERNETES_SERVICE_HOST", "10.96.0.1", ABSENT))
ALG_HELD = ("dd's passing mixture already holds GOOGLE_CLOUD_PROJECT = 'netra-staging', JWT_ALGORITHM = 'RS256' and "
            "JWT_SECRET_KEY set, as in auth-staging-alg-rs256")


@pytest.fixture(scope="module")
def gate_isolation() -> Any:
    return isolate_profiles(gate_profile("gate-local", "test", True, 5.0),
                            gate_profile("gate-staging", "staging", False, 60.0))


@pytest.fixture(scope="module")
def alg_isolation(gate_isolation: Any) -> Any:
    return dataclasses.replace(gate_isolation, failing="auth-staging-alg-rs256", passing_mixture=ALG_MIXTURE)


def test_held_values_are_said_and_unset_ones_read_as_unset(gate_isolation: Any) -> None:
    no_secret = dataclasses.replace(gate_isolation, failing="auth-staging-no-secret", passing_mixture=NO_SECRET_MIXTURE)
    assert held_environment_text(no_secret) == (
        "JWT_SECRET_KEY, JWT_SECRET_STAGING and KUBERNETES_SERVICE_HOST unset, as in auth-staging-no-secret")
    alg = dataclasses.replace(gate_isolation, failing="auth-staging-alg-rs256", passing_mixture=ALG_MIXTURE)
    text = held_environment_text(alg)
    assert text == ("GOOGLE_CLOUD_PROJECT = 'netra-staging', JWT_ALGORITHM = 'RS256' and JWT_SECRET_KEY set, "
                    "as in auth-staging-alg-rs256")
    assert SECRET not in text


def test_a_secret_set_on_both_sides_is_another_secret_not_its_value(gate_isolation: Any) -> None:
    other = "test-only-other-secret-abcdefghijklmnopqrstuvwxyz"
    isolation = dataclasses.replace(gate_isolation, passing_mixture=(
        FactorChange("env.JWT_SECRET_STAGING", SECRET, other),))
    assert held_environment_text(isolation) == "JWT_SECRET_STAGING set to another secret, as in gate-staging"


def test_chapter_04_verdict_and_key_result_say_the_environment_dds_mixture_holds(gate_isolation: Any) -> None:
    # dd's mixture holds gate-staging's startup.complete false (and hold_s, a traffic factor, not said here); the
    # difference is ENVIRONMENT 'test' -> 'staging' (tests/test_isolate.py). short_value shows a value as its repr.
    reduction = minimal_failing_traffic(gate_profile("gate-staging", "staging", False, 60.0))
    first = isolation_verdicts(gate_isolation, reduction).data.splitlines()[0]
    assert first == (f"- Failure-inducing difference ({gate_isolation.tests_run} tests): ENVIRONMENT: 'test' -> "
                     "'staging'; dd's passing mixture already holds startup.complete = False, as in gate-staging.")
    assert isolation_key_result(gate_isolation, reduction).startswith(
        f"gate-local -> gate-staging: ENVIRONMENT: 'test' -> 'staging' ({gate_isolation.tests_run} tests; dd's passing "
        "mixture already holds startup.complete = False, as in gate-staging); 1-minimal failing traffic: ")


def test_chapter_04_verdict_does_not_blame_staging_alone_for_the_algorithm(alg_isolation: Any) -> None:
    reduction = minimal_failing_traffic(gate_profile("gate-staging", "staging", False, 60.0))
    first = isolation_verdicts(alg_isolation, reduction).data.splitlines()[0]
    assert first.endswith(f"ENVIRONMENT: 'test' -> 'staging'; {ALG_HELD}.")


def test_chapter_06_per_profile_bullet_says_the_environment_dds_mixture_holds(alg_isolation: Any) -> None:
    overview = SimpleNamespace(isolations={"auth-staging-alg-rs256": alg_isolation})
    evidence = Evidence(reference="gate-local", runs={}, ledger=cast(Any, None), isolation=cast(Any, overview),
                        reduction=None, variants=cast(Any, None))
    per_profile = [line for line in trigger_section(evidence).data.splitlines() if line.startswith("- Per profile")]
    assert per_profile == [f"- Per profile: auth-staging-alg-rs256: ENVIRONMENT: 'test' -> 'staging' ({ALG_HELD})."]
