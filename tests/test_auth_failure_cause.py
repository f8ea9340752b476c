"""The auth failure's recorded cause when the auth service itself fails (spec 5.3): the exception the retries
swallowed, not a restatement of the error frame, while frames, closes and logs stay as the spec says."""

from __future__ import annotations

import pytest

from investigation.backend import auth as auth_module
from investigation.profiles import profile_from_dict
from investigation.simulate import simulate
from investigation.trace import CauseLink, ConnectionResult, RunResult
from tests.conftest import CLOUD_RUN_STAGING_ENV, STAGING_SECRET

FRAME_MESSAGE = "Token validation failed: All validation attempts failed"
"""Spec 5.3: all attempts failing gives "All validation attempts failed", a VALIDATION_FAILED failure."""


def _one_client_run(env: dict[str, str]) -> RunResult:
    """One client with a valid-looking token (3 parts), one connection, on a deployed instance; it stays past the
    retries (staging: 0.5+1+2+4+5 = 12.5 s of waits, spec 5.3) so the server closes."""
    return simulate(profile_from_dict("auth-misconfigured", {"description": "auth service misconfigured", "env": env,
                                                                  "clients": [{"name": "c", "user_id": "u1", "hold_s": 60.0}]}))


def _only(run: RunResult) -> ConnectionResult:
    (connection,) = run.connections
    return connection


# (env, the auth service's own error, attempts): spec 5.3 -- staging or production with no usable secret is a
# hard error; JWT_ALGORITHM is required in production; staging tries 6 times, production 4.
MISCONFIGURED = [
    ({"ENVIRONMENT": "staging", "K_SERVICE": "svc"}, "JWT secret not configured for staging environment", 6),
    ({"ENVIRONMENT": "production", "K_SERVICE": "svc", "JWT_SECRET_KEY": STAGING_SECRET},
     "JWT_ALGORITHM must be set in production", 4),
]


@pytest.mark.parametrize(("env", "service_error", "attempts"), MISCONFIGURED)
def test_the_swallowed_service_error_is_the_auth_failures_cause(env: dict[str, str], service_error: str,
                                                                attempts: int) -> None:
    connection = _only(_one_client_run(env))
    # The route records AuthenticationFailure("<code>: <message>") (spec 1 step 5); its cause is the exception
    # the last attempt raised, whose text the client never sees.
    assert connection.cause_chain == (
        CauseLink("AuthenticationFailure", f"VALIDATION_FAILED: {FRAME_MESSAGE}"),
        CauseLink("AuthServiceConfigurationError", service_error),
    )


@pytest.mark.parametrize(("env", "service_error", "attempts"), MISCONFIGURED)
def test_frames_close_and_logs_do_not_change(env: dict[str, str], service_error: str, attempts: int) -> None:
    run = _one_client_run(env)
    connection = _only(run)
    # Spec 1 step 5 and 1.1: one error frame with the auth error code and message, then 1008.
    assert [(f["error_code"], f["error_message"]) for f in connection.frames] == [("VALIDATION_FAILED", FRAME_MESSAGE)]
    assert (connection.close_code, connection.outcome("auth.token_validation")) == (1008, "all_attempts_failed")
    # Each failed attempt is logged with the service's error (the only place the real cause went before).
    logged = [m for m in run.log_messages if m.startswith("auth attempt")]
    assert logged == [f"auth attempt {n} failed: {service_error}" for n in range(1, attempts + 1)]


def test_a_stopping_error_is_the_cause_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def answers_401(token: str, env: object, now_s: float) -> object:
        raise RuntimeError("auth service answered 401")

    monkeypatch.setattr(auth_module, "validate_token_jwt", answers_401)
    connection = _only(_one_client_run(CLOUD_RUN_STAGING_ENV))
    # Spec 5.3: "401" classifies as stop, so one attempt; the frame still says all attempts failed (its only wording
    # for no answer), the recorded cause is the auth client's error.
    assert connection.outcome("auth.token_validation") == "stopped"
    assert connection.cause_chain == (
        CauseLink("AuthenticationFailure", f"VALIDATION_FAILED: {FRAME_MESSAGE}"),
        CauseLink("RuntimeError", "auth service answered 401"),
    )
