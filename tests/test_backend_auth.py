"""Spec section 5: token extraction, the E2E bypass, the auth service's validation with its
retry ladder, and the user context built after auth."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from investigation.backend import auth as auth_module
from investigation.backend.auth import (
    AuthServiceConfigurationError,
    _context_for,
    classify_auth_error,
    create_defensive_user_execution_context,
    detect_e2e_bypass,
    extract_e2e_user_id,
    extract_token,
    resolve_jwt_secret,
    validate_token_jwt,
)
from investigation.backend.environment import KNOWN_TEST_JWT_SECRET, IsolatedEnvironment
from tests.conftest import (
    ABSENT,
    EPOCH_S,
    SECRET,
    Harness,
    ScriptedSocket,
    bearer,
    claims_for,
    log_messages,
    mint,
    outcome,
    welcome_frames,
)

TIME_BASED_USER = f"staging-e2e-user-{int(EPOCH_S) % 1000:03d}"  # 1757365610 -> "610"
E2E_HEADERS = {"X-Test-Type": "E2E"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(payload_text: str) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{b64url(payload_text.encode())}.c2lnbmF0dXJl"


def connect(h: Harness, headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> tuple[ScriptedSocket, Any]:
    socket = ScriptedSocket(headers=headers, query=query, hold_s=20.0)
    recorder = h.connect(socket)
    return socket, recorder


def error_code(socket: ScriptedSocket) -> str:
    assert socket.close_code == 1008 and socket.close_reason == "SSOT Auth failed"
    return socket.frames[0]["error_code"]


# --- 5.1 token extraction -------------------------------------------------------------------------


def subprotocol_entry(token: str) -> str:
    return "jwt." + b64url(token.encode())


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"authorization": "Bearer  tok-a  "}, {"token": "tok-q"}, "tok-a"),
        ({"authorization": "bearer tok-a", "sec-websocket-protocol": subprotocol_entry("tok-s")}, {}, "tok-s"),
        ({"authorization": "Token tok-a"}, {"token": "tok-q"}, "tok-q"),
        ({"sec-websocket-protocol": f"jwt-auth, {subprotocol_entry('tok-s')}"}, {"token": "tok-q"}, "tok-s"),
        ({"sec-websocket-protocol": f"jwt.%%%, jwt.\u00ff, {subprotocol_entry('tok-s')}"}, {}, "tok-s"),
        ({"sec-websocket-protocol": "jwt.%%%"}, {"token": "tok-q"}, "tok-q"),
        ({"sec-websocket-protocol": "jwt." + b64url(b"\xff\xfe")}, {"token": "tok-q"}, "tok-q"),
        ({"sec-websocket-protocol": "jwtx" + b64url(b"tok-s")}, {"token": "tok-q"}, "tok-q"),  # "jwt." only
        ({}, {"token": "tok-q"}, "tok-q"),
        ({}, {}, None),
    ],
)
def test_token_extraction_order(headers: dict[str, str], query: dict[str, str], expected: str | None) -> None:
    assert extract_token(headers, query)[0] == expected


def test_subprotocol_token_is_decoded_with_the_url_safe_alphabet() -> None:
    token = "tok-s??>"
    encoded = b64url(token.encode())
    assert "_" in encoded  # precondition: the standard alphabet would read this entry differently
    assert extract_token({"sec-websocket-protocol": "jwt." + encoded}, {"token": "tok-q"})[0] == token


def test_blank_bearer_gives_no_token_without_looking_further(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    headers = {"Authorization": "Bearer    ", "Sec-WebSocket-Protocol": subprotocol_entry("x.y.z")}
    socket, _ = connect(h, headers, query={"token": "a.b.c"})
    assert error_code(socket) == "NO_TOKEN"


def test_no_token_at_all(harness) -> None:
    socket, recorder = connect(harness({"ENVIRONMENT": "development"}))
    assert error_code(socket) == "NO_TOKEN"
    assert outcome(recorder, "auth.e2e_bypass") is None  # the E2E check runs only after a token


def test_token_via_subprotocol_and_query_authenticate(harness) -> None:
    h = harness({"ENVIRONMENT": "development", "JWT_SECRET_KEY": SECRET})
    token = mint(claims_for("user-0001"))
    socket, _ = connect(h, {"Sec-WebSocket-Protocol": f"jwt-auth, {subprotocol_entry(token)}"})
    assert socket.close_code is None and welcome_frames(socket)[0]["data"]["user_id"] == "user-0001"
    socket, _ = connect(h, query={"token": mint(claims_for("user-0002"))})
    assert socket.close_code is None and welcome_frames(socket)[0]["data"]["user_id"] == "user-0002"


# --- 5.2 the E2E bypass -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detected"),
    [
        ({"X-Test-Type": "E2E"}, True),
        ({"x-e2e-anything": "yes-STAGING"}, True),
        ({"X-My-Test-Header": "v10"}, True),  # "1" is a substring
        ({"X-TEST": "TRUE"}, True),
        ({"X-Latest": "nothing"}, False),  # the name matches ("latest"), the value has no marker
        ({"X-Client": "e2e"}, False),  # name without test/e2e
        ({"X-Test-Type": "unit"}, False),
        ({"X-Test-Kind": "contest"}, True),  # "test" alone is a marker
        ({"X-Test-A": "tr", "X-Test-B": "ue"}, False),  # joined with a space: "tr ue"
        ({"X-Test-A": "no", "X-Test-B": "way"}, False),
        ({}, False),
    ],
)
def test_bypass_header_detection(headers: dict[str, str], detected: bool) -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "staging"})
    assert detect_e2e_bypass(headers, env) is detected


@pytest.mark.parametrize(
    ("environ", "detected"),
    [
        ({"E2E_TESTING": "1"}, True),
        ({"E2E_TESTING": "true"}, False),
        ({"PYTEST_RUNNING": "1"}, True),
        ({"STAGING_E2E_TEST": "1"}, True),
        ({"STAGING_E2E_TEST": "yes"}, False),
        ({"E2E_OAUTH_SIMULATION_KEY": ""}, True),  # presence is enough
        ({"E2E_OAUTH_SIMULATION_KEY": "k"}, True),
        ({"E2E_TEST_ENV": "staging"}, True),
        ({"E2E_TEST_ENV": "STAGING"}, False),
        ({"TESTING": "0"}, False),
        ({"TESTING": "1"}, True),  # a test context: its default E2E_OAUTH_SIMULATION_KEY is present
    ],
)
def test_bypass_env_detection(environ: dict[str, str], detected: bool) -> None:
    assert detect_e2e_bypass({}, IsolatedEnvironment({"ENVIRONMENT": "staging", **environ})) is detected


@pytest.mark.parametrize(
    ("token", "user_id"),
    [
        ("staging-e2e-user-7", "staging-e2e-user-007"),
        ("staging-e2e-user-0002", "staging-e2e-user-0002"),
        ("staging-e2e-user-12345", "staging-e2e-user-12345"),
        ("xx.STAGING-E2E-USER-2.yy", "staging-e2e-user-002"),
        ("test-user-abc123", TIME_BASED_USER),
        ("TEST-USER-1", TIME_BASED_USER),
        ("no-dots-here", TIME_BASED_USER),
        ("one.dot", TIME_BASED_USER),
        ("hdr." + b64url(b'{"sub": "alice"}'), TIME_BASED_USER),  # one dot: the payload is not read
        ("a.b.c", TIME_BASED_USER),  # payload "b" is not JSON
    ],
)
def test_bypass_user_id_from_token_text(harness, token: str, user_id: str) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    with h.active():
        assert extract_e2e_user_id(token, h.clock.now())[0] == user_id


def test_test_user_token_payload_is_never_decoded(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    header, payload, _ = unsigned_token(json.dumps({"sub": "real-person"})).split(".")
    token = f"{header}.{payload}.test-user-1"
    with h.active():
        assert extract_e2e_user_id(token, h.clock.now())[0] == TIME_BASED_USER


@pytest.mark.parametrize(
    ("payload", "user_id"),
    [
        ({"sub": "alice", "user_id": "u2", "username": "u3"}, "alice"),
        ({"user_id": "u2", "username": "u3"}, "u2"),
        ({"sub": "", "user_id": None, "username": "u3"}, "u3"),
        ({"username": 42}, 42),
        ({"sub": "", "user_id": 0}, TIME_BASED_USER),
        ({"email": "x@y"}, TIME_BASED_USER),
    ],
)
def test_bypass_user_id_from_payload_claims(harness, payload: dict[str, Any], user_id: Any) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    with h.active():
        assert extract_e2e_user_id(unsigned_token(json.dumps(payload)), h.clock.now())[0] == user_id


def test_bypass_payload_not_an_object_falls_to_time_based(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    with h.active():
        assert extract_e2e_user_id(unsigned_token("[1, 2]"), h.clock.now())[0] == TIME_BASED_USER


def test_bypass_payload_decoded_with_the_standard_alphabet(harness) -> None:
    """'-' and '_' of a base64url payload are dropped, so such a payload does not parse."""
    payload = json.dumps({"sub": "a??"})
    assert "_" in b64url(payload.encode())  # precondition: the url-safe text has a '_'
    clean = json.dumps({"sub": "abc??"})
    assert "_" not in b64url(clean.encode()) and "-" not in b64url(clean.encode())
    h = harness({"ENVIRONMENT": "staging"})
    with h.active():
        assert extract_e2e_user_id(unsigned_token(payload), h.clock.now())[0] == TIME_BASED_USER
        assert extract_e2e_user_id(unsigned_token(clean), h.clock.now())[0] == "abc??"


#: {"sub": "alice"} in the standard alphabet, unpadded.
ALICE_PAYLOAD = base64.b64encode(b'{"sub": "alice"}').decode().rstrip("=")


@pytest.mark.parametrize(
    ("payload", "user_id"),
    [
        # 22 standard characters need "=="; the original length 23 gets one "=": decoding fails
        ("-" + ALICE_PAYLOAD, TIME_BASED_USER),
        # 22 + 3 dropped characters: length 25 gets "===", enough for the 22 that remain
        (ALICE_PAYLOAD + "-_-", "alice"),
    ],
)
def test_bypass_payload_padding_computed_from_the_original_length(harness, payload: str, user_id: str) -> None:
    assert len(ALICE_PAYLOAD) == 22
    h = harness({"ENVIRONMENT": "staging"})
    with h.active():
        assert extract_e2e_user_id(f"hdr.{payload}.sig", h.clock.now())[0] == user_id


def test_time_based_id_truncates_the_seconds(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    h.advance_to(395.5)  # 1757365610.21 + 395.5 = 1757366005.71: int() gives ...005, not ...006
    with h.active():
        assert extract_e2e_user_id("opaque", h.clock.now())[0] == "staging-e2e-user-005"


def test_time_based_id_uses_the_clock(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    h.advance_to(395.0)  # int(1757365610.21 + 395) = 1757366005
    with h.active():
        assert extract_e2e_user_id("opaque", h.clock.now())[0] == "staging-e2e-user-005"


@pytest.mark.parametrize("environment", ["staging", "production", "development"])
def test_bypass_succeeds_in_every_environment(harness, environment: str) -> None:
    h = harness({"ENVIRONMENT": environment, "K_SERVICE": "svc"})
    socket, recorder = connect(h, {**E2E_HEADERS, "Authorization": "Bearer staging-e2e-user-3"})
    assert outcome(recorder, "auth.e2e_bypass") == "yes"
    assert socket.close_code is None
    assert welcome_frames(socket)[0]["data"]["user_id"] == "staging-e2e-user-003"


@pytest.fixture
def identified(monkeypatch) -> list[Any]:
    """Every AuthResult the auth step's `_identify` returns during the test, in order."""
    results: list[Any] = []
    original = auth_module._identify

    async def spy(token: str, headers: Any) -> Any:
        results.append(await original(token, headers))
        return results[-1]

    monkeypatch.setattr(auth_module, "_identify", spy)
    return results


def test_bypass_result_email_and_permissions(harness, identified) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    connect(h, {**E2E_HEADERS, "Authorization": "Bearer staging-e2e-user-1"})
    assert identified[0].email == "staging-e2e-user-001@e2e-test.netra.com"
    assert list(identified[0].permissions) == ["user", "e2e_testing", "websocket_access"]


def test_non_string_bypass_claim_fails_later_with_websocket_auth_error(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    socket, _ = connect(h, {**E2E_HEADERS, "Authorization": "Bearer " + unsigned_token('{"username": 42}')})
    assert error_code(socket) == "WEBSOCKET_AUTH_ERROR"


# --- 5.3 real validation ----------------------------------------------------------------------------


DEV = {"ENVIRONMENT": "development", "JWT_SECRET_KEY": SECRET}


def verdict(claims: dict[str, Any], environ: dict[str, str] | None = None, now_s: float = EPOCH_S, **mint_options: Any):
    env = IsolatedEnvironment(environ or DEV)
    return validate_token_jwt(mint(claims, **mint_options), env, now_s)


def test_valid_token_passes() -> None:
    result = verdict(claims_for("user-0001"))
    assert result.valid and result.claims["sub"] == "user-0001"


@pytest.mark.parametrize(
    "claims",
    [
        claims_for(exp=int(EPOCH_S) - 1),
        claims_for(exp=int(EPOCH_S)),  # exp equal to now is expired
        claims_for(iat=int(EPOCH_S) + 1),  # iat in the future, no leeway
        claims_for(sub=42),
        claims_for(jti=7),
        claims_for(sub=ABSENT),
        claims_for(exp=ABSENT),
        claims_for(iat=ABSENT),
        claims_for(token_type=ABSENT),  # the E2E suite's tokens carry "type" only
        claims_for(token_type=ABSENT, type="access"),
        claims_for(token_type="refresh"),
        claims_for(jti=ABSENT),
        claims_for(iss=ABSENT),
        claims_for(iss="someone-else"),
        claims_for(iat=int(EPOCH_S) - 24 * 3600 - 1, exp=int(EPOCH_S) + 60),
        claims_for(aud="elsewhere"),
    ],
)
def test_rejected_tokens(claims: dict[str, Any]) -> None:
    assert verdict(claims).valid is False


@pytest.mark.parametrize(("nbf_offset_s", "valid"), [(-60, True), (0, True), (1, False), (60, False)])
def test_not_before_is_checked_at_the_backend_clock(nbf_offset_s: int, valid: bool) -> None:
    """The virtual "now" (2025) is before the wall clock: a token not valid until one minute
    after the virtual now would pass a wall-clock check, and must not pass."""
    claims = claims_for(nbf=int(EPOCH_S) + nbf_offset_s)
    assert verdict(claims, now_s=float(int(EPOCH_S))).valid is valid


def test_token_issued_exactly_24h_ago_is_accepted() -> None:
    assert verdict(claims_for(iat=int(EPOCH_S) - 24 * 3600, exp=int(EPOCH_S) + 60), now_s=float(int(EPOCH_S))).valid


def test_bad_signature_rejected() -> None:
    assert verdict(claims_for(), secret="another-secret-0123456789abcdef-0123").valid is False


def test_mock_prefix_rejected() -> None:
    env = IsolatedEnvironment(DEV)
    assert validate_token_jwt("mock_" + mint(claims_for()), env, EPOCH_S).valid is False


def test_alg_none_and_rs256_rejected() -> None:
    env = IsolatedEnvironment(DEV)
    payload = b64url(json.dumps(claims_for()).encode())
    none_token = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{payload}."
    assert validate_token_jwt(none_token, env, EPOCH_S).valid is False
    rs256_token = f"{b64url(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{payload}.c2ln"
    assert validate_token_jwt(rs256_token, env, EPOCH_S).valid is False


def test_configured_algorithm_decides_decoding() -> None:
    hs512 = {**DEV, "JWT_ALGORITHM": "HS512"}
    assert verdict(claims_for(), hs512).valid is False  # header HS256 but decoder allows HS512 only


AUDIENCES = (
    "netra-platform", "netra-backend", "netra-auth", "netra-services", "netra-admin", "test", "localhost",
    "development", "elsewhere",
)
#: Spec 5.3: staging and production accept only these four; every environment accepts the five
#: valid ones, development adds three more.
DEPLOYED_ALLOWED = {"netra-platform", "netra-services", "netra-backend", "netra-admin"}
VALID_EVERYWHERE = {"netra-platform", "netra-backend", "netra-auth", "netra-services", "netra-admin"}
ALLOWED_BY_ENVIRONMENT = {
    "staging": DEPLOYED_ALLOWED,
    "production": DEPLOYED_ALLOWED,
    "development": VALID_EVERYWHERE | {"test", "localhost", "development"},
    "test": VALID_EVERYWHERE,
}


def audience_verdict(environment: str, aud: Any) -> bool:
    environ = {"ENVIRONMENT": environment, "JWT_SECRET_KEY": SECRET, "JWT_ALGORITHM": "HS256"}
    return verdict(claims_for(aud=aud), environ).valid


@pytest.mark.parametrize("environment", sorted(ALLOWED_BY_ENVIRONMENT))
@pytest.mark.parametrize("aud", AUDIENCES)
def test_every_audience_in_every_environment(environment: str, aud: str) -> None:
    assert audience_verdict(environment, aud) is (aud in ALLOWED_BY_ENVIRONMENT[environment])


@pytest.mark.parametrize("environment", sorted(ALLOWED_BY_ENVIRONMENT))
def test_a_missing_audience_counts_as_netra_platform(environment: str) -> None:
    assert audience_verdict(environment, ABSENT) is True


def test_header_algorithm_must_be_hs256_or_rs256_even_when_configured_otherwise() -> None:
    """JWT_ALGORITHM=HS512 and a token signed with HS512: decoding would accept it, but the
    header check allows only HS256 and RS256."""
    long_secret = "hs512-secret-" + "0123456789abcdef" * 4  # 64+ bytes, as HS512 wants
    hs512 = {"ENVIRONMENT": "development", "JWT_SECRET_KEY": long_secret, "JWT_ALGORITHM": "HS512"}
    assert verdict(claims_for(), hs512, algorithm="HS512", secret=long_secret).valid is False


# --- secret resolution ------------------------------------------------------------------------------

LONG_A = "a" * 32
LONG_B = "b" * 40
LONG_C = "c" * 33


@pytest.mark.parametrize(
    ("environ", "secret"),
    [
        ({"ENVIRONMENT": "staging", "JWT_SECRET_STAGING": LONG_A, "JWT_SECRET_KEY": LONG_B}, LONG_A),
        ({"ENVIRONMENT": "staging", "JWT_SECRET_STAGING": "a" * 31, "JWT_SECRET_KEY": LONG_B}, LONG_B),
        ({"ENVIRONMENT": "staging", "JWT_SECRET_STAGING": "  " + "a" * 31 + "  ", "JWT_SECRET": LONG_C}, LONG_C),
        ({"ENVIRONMENT": "staging", "JWT_SECRET_KEY": f"  {LONG_B}\n"}, LONG_B),
        ({"ENVIRONMENT": "staging", "JWT_SECRET": LONG_C}, LONG_C),
        ({"ENVIRONMENT": "production", "JWT_SECRET_PRODUCTION": LONG_A, "JWT_SECRET_KEY": LONG_B}, LONG_A),
        ({"ENVIRONMENT": "production", "JWT_SECRET_KEY": LONG_B, "JWT_SECRET": LONG_C}, LONG_B),
        ({"ENVIRONMENT": "development", "JWT_SECRET_DEVELOPMENT": LONG_A, "JWT_SECRET_KEY": LONG_B}, LONG_A),
    ],
)
def test_secret_resolution_order(environ: dict[str, str], secret: str) -> None:
    assert resolve_jwt_secret(IsolatedEnvironment(environ)) == secret


@pytest.mark.parametrize(
    "environ",
    [
        {"ENVIRONMENT": "production", "JWT_SECRET": LONG_C},  # JWT_SECRET not consulted outside staging
        {"ENVIRONMENT": "production", "JWT_SECRET_KEY": "short"},
        {"ENVIRONMENT": "staging"},
        {"ENVIRONMENT": "staging", "JWT_SECRET_KEY": " " * 40},
    ],
)
def test_deployed_without_usable_secret_is_a_hard_error(environ: dict[str, str]) -> None:
    with pytest.raises(AuthServiceConfigurationError):
        resolve_jwt_secret(IsolatedEnvironment(environ))


def test_test_and_development_derive_a_secret_from_the_environment_name() -> None:
    development = resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "development"}))
    development_known = resolve_jwt_secret(
        IsolatedEnvironment({"ENVIRONMENT": "development", "JWT_SECRET_KEY": KNOWN_TEST_JWT_SECRET})
    )
    test = resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "test"}))
    test_known = resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "test", "JWT_SECRET_KEY": KNOWN_TEST_JWT_SECRET}))
    assert development == development_known
    assert test == test_known
    assert development != test
    assert KNOWN_TEST_JWT_SECRET not in {development, test}
    assert resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "development"})) == development  # deterministic
    assert resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "development", "JWT_SECRET_KEY": LONG_B})) == LONG_B


@pytest.mark.parametrize("environment", ["testing", "dev", "local"])
def test_known_test_secret_replaced_in_every_test_or_development_name(environment: str) -> None:
    """The known test secret is treated as no usable secret: the same secret derived from the name."""
    environ = {"ENVIRONMENT": environment, "JWT_SECRET_KEY": KNOWN_TEST_JWT_SECRET}
    derived = resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": environment}))
    assert resolve_jwt_secret(IsolatedEnvironment(environ)) == derived != KNOWN_TEST_JWT_SECRET


def test_jwt_secret_ignored_in_development() -> None:
    derived = resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "development"}))
    assert resolve_jwt_secret(IsolatedEnvironment({"ENVIRONMENT": "development", "JWT_SECRET": LONG_C})) == derived


# --- the retry ladder -------------------------------------------------------------------------------


def attempt_times(h: Harness, monkeypatch, error_text: str | None) -> list[float]:
    """Connect with a well-formed token; record the virtual time of every auth-service attempt."""
    times: list[float] = []
    original = auth_module.validate_token_jwt

    def spy(token: str, env: Any, now_s: float) -> Any:
        times.append(round(h.now, 6))
        if error_text is not None:
            raise RuntimeError(error_text)
        return original(token, env, now_s)

    monkeypatch.setattr(auth_module, "validate_token_jwt", spy)
    socket, _ = connect(h, bearer(mint(claims_for())))
    assert error_code(socket) == "VALIDATION_FAILED"
    assert socket.events[-1][0] == pytest.approx(times[-1] + 0.1)  # close 0.1 s after the frame
    return times


@pytest.mark.parametrize(
    ("environment", "times"),
    [
        ("staging", [0.0, 0.5, 1.5, 3.5, 7.5, 12.5]),
        ("production", [0.0, 0.2, 0.6, 1.4]),
        ("development", [0.0, 0.1, 0.3]),
        ("qa", [0.0, 0.1, 0.3]),
    ],
)
def test_retry_ladder_per_environment(harness, monkeypatch, environment: str, times: list[float]) -> None:
    h = harness({"ENVIRONMENT": environment})
    assert attempt_times(h, monkeypatch, "connection reset") == times


def test_retry_delay_capped_at_max(harness, monkeypatch) -> None:
    """Staging: base 0.5 s doubling, capped at 5 s (the 5th wait would be 8 s)."""
    h = harness({"ENVIRONMENT": "staging"})
    times = attempt_times(h, monkeypatch, "timeout")
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.5, 1.0, 2.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("text", "attempts"),
    [
        ("401 timeout", 3),
        ("Network unreachable", 3),
        ("circuit open", 3),
        ("breaker tripped", 3),
        ("HTTP 503", 3),
        ("HTTP 401", 1),
        ("403 forbidden", 1),
        ("400 bad request", 1),
        ("Invalid Token", 1),
        ("invalid signature", 3),
        ("something odd", 3),
    ],
)
def test_retry_classification(harness, monkeypatch, text: str, attempts: int) -> None:
    h = harness({"ENVIRONMENT": "development"})
    assert len(attempt_times(h, monkeypatch, text)) == attempts


@pytest.mark.parametrize(
    ("text", "decision"),
    [("401 timeout", "retry"), ("Circuit 401", "retry"), ("500 401", "retry"), ("401 invalid token", "stop"),
     ("token invalid", "stop"), ("TOKEN", "retry")],
)
def test_classify_first_match_order(text: str, decision: str) -> None:
    assert classify_auth_error(text) == decision


RETRY_WORDS = ("connection", "timeout", "network", "circuit", "breaker", "500", "502", "503", "504")


@pytest.mark.parametrize("word", RETRY_WORDS)
def test_each_retry_word_wins_over_a_later_stop_code(word: str) -> None:
    assert classify_auth_error(f"{word} 401 invalid token") == "retry"


@pytest.mark.parametrize("code", ["400", "401", "403"])
def test_each_stop_code_stops(code: str) -> None:
    assert classify_auth_error(f"HTTP {code}") == "stop"


@pytest.mark.parametrize(("text", "decision"), [("invalid", "retry"), ("token", "retry"), ("an invalid token", "stop")])
def test_invalid_token_needs_both_words(text: str, decision: str) -> None:
    assert classify_auth_error(text) == decision


def test_rejected_token_is_a_result_not_a_retry(harness, monkeypatch) -> None:
    h = harness({"ENVIRONMENT": "staging", "JWT_SECRET_KEY": SECRET})
    times: list[float] = []
    original = auth_module.validate_token_jwt

    def spy(token: str, env: Any, now_s: float) -> Any:
        times.append(h.now)
        return original(token, env, now_s)

    monkeypatch.setattr(auth_module, "validate_token_jwt", spy)
    socket, recorder = connect(h, bearer(mint(claims_for(), secret="wrong-secret-0123456789abcdef-0123")))
    assert error_code(socket) == "VALIDATION_FAILED"
    assert times == [0.0]
    assert outcome(recorder, "auth.token_validation") == "token_rejected"


def test_staging_without_secret_retries_then_validation_failed(harness) -> None:
    h = harness({"ENVIRONMENT": "staging", "K_SERVICE": "svc"})
    socket, recorder = connect(h, bearer(mint(claims_for())))
    assert error_code(socket) == "VALIDATION_FAILED"
    assert outcome(recorder, "auth.token_validation") == "all_attempts_failed"
    assert "All validation attempts failed" in socket.frames[0]["error_message"]
    assert socket.events[-1][0] == pytest.approx(12.5 + 0.1)


def test_production_requires_jwt_algorithm(harness) -> None:
    h = harness({"ENVIRONMENT": "production", "JWT_SECRET_KEY": SECRET})
    socket, _ = connect(h, bearer(mint(claims_for())))
    assert error_code(socket) == "VALIDATION_FAILED"
    ok = harness({"ENVIRONMENT": "production", "JWT_SECRET_KEY": SECRET, "JWT_ALGORITHM": "HS256"})
    socket, _ = connect(ok, bearer(mint(claims_for())))
    assert socket.close_code is None


def test_format_check_strips_a_second_bearer_prefix(harness) -> None:
    """The token taken from "Bearer Bearer .b.c" is "Bearer .b.c"; the format check strips
    "Bearer " again, which leaves ".b.c" with an empty first part."""
    socket, _ = connect(harness({"ENVIRONMENT": "development"}), {"Authorization": "Bearer Bearer .b.c"})
    assert error_code(socket) == "INVALID_FORMAT"


@pytest.mark.parametrize("token", ["a.b", "a..c", "a.b.c.d", "onlyone"])
def test_invalid_format(harness, token: str) -> None:
    socket, _ = connect(harness({"ENVIRONMENT": "development"}), bearer(token))
    assert error_code(socket) == "INVALID_FORMAT"


def test_exception_in_the_authentication_step_is_unexpected_error(harness, monkeypatch) -> None:
    def broken(headers: Any, env: Any) -> bool:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(auth_module, "detect_e2e_bypass", broken)
    socket, _ = connect(harness({"ENVIRONMENT": "development"}), bearer("a.b.c"))
    assert error_code(socket) == "UNEXPECTED_ERROR"


# --- 5.4 the context after auth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub", "user_id"),
    [("  padded-user  ", "padded-user"), ("", "fallback_user"), ("   ", "unknown_user")],
)
def test_context_user_after_auth(harness, sub: str, user_id: str) -> None:
    h = harness(DEV)
    socket, recorder = connect(h, bearer(mint(claims_for(sub))))
    assert socket.close_code is None
    assert welcome_frames(socket)[0]["data"]["user_id"] == user_id
    expected_how = "created" if sub.strip() else "created_on_retry"
    assert outcome(recorder, "context.creation") == expected_how


@pytest.mark.parametrize("sub", ["test", "null", "mock_user"])
def test_context_failing_twice_is_an_auth_failure(harness, sub: str) -> None:
    socket, recorder = connect(harness(DEV), bearer(mint(claims_for(sub))))
    assert error_code(socket) == "WEBSOCKET_AUTH_ERROR"
    assert "UserExecutionContext creation failed completely" in socket.frames[0]["error_message"]


def test_websocket_client_id_format_after_auth(harness) -> None:
    h = harness(DEV)
    socket, _ = connect(h, bearer(mint(claims_for("104729384756102938475"))))
    connection_id = welcome_frames(socket)[0]["data"]["connection_id"]
    prefix = f"ws_10472938_{int(EPOCH_S)}_"
    assert connection_id.startswith(prefix) and len(connection_id) == len(prefix) + 8


def test_real_validation_result_is_sub_email_and_permissions(harness, identified) -> None:
    claims = claims_for("user-0001", user_id="someone-else", email="a@b.test", permissions=["user", "admin"])
    connect(harness(DEV), bearer(mint(claims)))
    assert identified[0].success and identified[0].user_id == "user-0001"
    assert identified[0].email == "a@b.test"
    assert list(identified[0].permissions) == ["user", "admin"]


def test_client_id_built_from_the_stripped_user_id(harness) -> None:
    socket, _ = connect(harness(DEV), bearer(mint(claims_for("  padded-user  "))))
    connection_id = welcome_frames(socket)[0]["data"]["connection_id"]
    assert connection_id.startswith(f"ws_padded-u_{int(EPOCH_S)}_")


def test_context_built_after_auth_runs_the_staging_safe_validation(harness) -> None:
    """Relaxed mode logs "accepted" per non-blank id on each validation: once when the context
    is built after auth (5.4 step 3), once more when the manager is created (4.1)."""
    h = harness({"ENVIRONMENT": "staging"})
    socket, _ = connect(h, {**E2E_HEADERS, "Authorization": "Bearer staging-e2e-user-1"})
    assert socket.close_code is None
    accepted = [text for text in log_messages(h, "INFO") if "thread_id" in text and "accepted" in text]
    assert len(accepted) == 2


def test_retry_context_gets_the_default_websocket_client_id(harness) -> None:
    """The retry passes websocket_client_id None, so the default `ws_client_{user_id[:8]}_{s}_{uuid8}`
    (spec 3) is used for "fallback_user", not the `ws_{user_id[:8]}_...` of the first attempt."""
    socket, _ = connect(harness(DEV), bearer(mint(claims_for(""))))
    connection_id = welcome_frames(socket)[0]["data"]["connection_id"]
    prefix = f"ws_client_fallback_{int(EPOCH_S)}_"
    assert connection_id.startswith(prefix) and len(connection_id) == len(prefix) + 8


@pytest.mark.parametrize("user_id", [None, "", 0])
def test_falsy_auth_user_id_message(harness, user_id: Any) -> None:
    h = harness(DEV)
    with h.active(), pytest.raises(ValueError) as caught:
        _context_for(user_id)
    assert str(caught.value) == "AuthResult must have valid user_id to create UserExecutionContext"


@pytest.mark.parametrize(("user_id", "shown"), [(17, "17"), ("   ", "'   '")])
def test_defensive_context_failure_names_the_user_id_repr(harness, user_id: Any, shown: str) -> None:
    h = harness(DEV)
    with h.active(), pytest.raises(ValueError) as caught:
        create_defensive_user_execution_context(user_id, "ws_client_1")
    assert str(caught.value).startswith(f"UserExecutionContext creation failed for user_id {shown}: ")
