"""WebSocket authentication [unified_websocket_auth.py, unified_authentication_service.py].

    result = await authenticate_websocket(socket)
    result.success, result.user_context, result.error_code

Token extraction, the E2E bypass (with its latent failures), the auth service's
JWT validation (pyjwt, in process) with its retry ladder, and the building of the
user context after auth.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from jwt.algorithms import HMACAlgorithm

from investigation.backend import runtime
from investigation.backend.context import UserExecutionContext
from investigation.backend.environment import KNOWN_TEST_JWT_SECRET, IsolatedEnvironment, lowered_environment
from investigation.backend.factory import _validate_ssot_user_context_staging_safe
from investigation.backend.ids import connection_client_id, default_websocket_client_id, fallback_context_ids
from investigation.trace import decide, record_user

if TYPE_CHECKING:
    from investigation.backend.process import Backend

E2E_HEADER_MARKERS = ("e2e", "staging", "test", "true", "1")
E2E_ENV_FLAGS = ("E2E_TESTING", "PYTEST_RUNNING", "STAGING_E2E_TEST")
E2E_PERMISSIONS = ("user", "e2e_testing", "websocket_access")
ISSUER = "netra-auth-service"
DEPLOYED_AUDIENCES = frozenset({"netra-platform", "netra-services", "netra-backend", "netra-admin"})
VALID_AUDIENCES = frozenset(
    {"netra-platform", "netra-backend", "netra-auth", "netra-services", "netra-admin"}
)
DEVELOPMENT_AUDIENCES = frozenset({"test", "localhost", "development"})
DEVELOPMENT_ALLOWED_AUDIENCES = VALID_AUDIENCES | DEVELOPMENT_AUDIENCES
MAX_TOKEN_AGE_S = 24 * 3600
MIN_SECRET_LENGTH = 32
ID_OPERATION = "websocket_factory"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    base_delay_s: float
    max_delay_s: float

    def delay_after(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (0-based): exponential, capped."""
        return min(self.base_delay_s * (2**attempt), self.max_delay_s)


RETRY_POLICIES = {
    "staging": RetryPolicy(6, 0.5, 5.0),
    "production": RetryPolicy(4, 0.2, 2.0),
}
DEFAULT_RETRY_POLICY = RetryPolicy(3, 0.1, 1.0)


@dataclass
class AuthResult:
    """What authentication hands the route."""

    success: bool
    user_id: Any = None
    email: str | None = None
    permissions: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    user_context: UserExecutionContext | None = None
    error: BaseException | None = field(default=None, repr=False)


class AuthServiceConfigurationError(RuntimeError):
    """The auth service has no usable secret or algorithm in a deployed environment."""


# --- 5.1 token extraction -------------------------------------------------------------------


def extract_token(headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[str | None, str]:
    """(token, where it came from). First match wins; a blank bearer stops the search."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization[len("Bearer ") :].strip()
        return (token, "bearer") if token else (None, "bearer_blank")
    for entry in _offered_subprotocols(headers):
        if entry.startswith("jwt."):
            token = _decode_subprotocol_token(entry[len("jwt.") :])
            if token:
                return token, "subprotocol"
    if query.get("token"):
        return query["token"], "query"
    return None, "none"


def _offered_subprotocols(headers: Mapping[str, str]) -> list[str]:
    raw = headers.get("sec-websocket-protocol", "")
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


def _decode_subprotocol_token(encoded: str) -> str | None:
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        return base64.urlsafe_b64decode(padded).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


# --- 5.2 the E2E bypass ------------------------------------------------------------------------


def detect_e2e_bypass(headers: Mapping[str, str], env: IsolatedEnvironment) -> bool:
    """The auth layer's E2E detection: header substrings or env flags."""
    values = [value.lower() for name, value in headers.items() if "test" in name.lower() or "e2e" in name.lower()]
    joined = " ".join(values)
    if any(marker in joined for marker in E2E_HEADER_MARKERS):
        return True
    return env.derived(_e2e_bypass_environment)


def _e2e_bypass_environment(env: IsolatedEnvironment) -> bool:
    if any(env.get(flag) == "1" for flag in E2E_ENV_FLAGS):
        return True
    return env.get("E2E_OAUTH_SIMULATION_KEY") is not None or env.get("E2E_TEST_ENV") == "staging"


def extract_e2e_user_id(token: str, now_s: float) -> tuple[Any, str]:
    """(user id, how it was found) for a bypassed token; the original's latent bug kept."""
    try:
        lowered = token.lower()
        if "staging-e2e-user" in lowered:
            import re

            match = re.search(r"staging-e2e-user-(\d+)", lowered)
            if match:
                return f"staging-e2e-user-{match.group(1).zfill(3)}", "token_pattern"
        elif "test-user" in lowered:
            match = re.search(r"test-user-([0-9a-z]+)", lowered)
            if match:
                return f"test-user-{match.group(1)}", "token_pattern"
        if token.count(".") >= 2:
            claim = _unverified_identity_claim(token.split(".")[1])
            if claim:
                return claim, "payload_claim"
    except Exception:
        runtime.current().log("WARNING", "E2E user extraction failed; using time-based id")
    return f"staging-e2e-user-{int(now_s) % 1000:03d}", "time_based"


def _unverified_identity_claim(payload: str) -> Any:
    decoded = base64.b64decode(payload + "=" * (-len(payload) % 4))
    claims = json.loads(decoded)
    if not isinstance(claims, dict):
        return None
    return claims.get("sub") or claims.get("user_id") or claims.get("username")


# --- 5.3 the auth service -------------------------------------------------------------------------


def _usable_secret(env: IsolatedEnvironment, key: str) -> str | None:
    value = env.get(key)
    if value is not None and len(value.strip()) >= MIN_SECRET_LENGTH:
        return value.strip()
    return None


def resolve_jwt_secret(env: IsolatedEnvironment) -> str:
    """The auth service's signing secret, as it resolves it."""
    return env.derived(_resolve_jwt_secret)


def _resolve_jwt_secret(env: IsolatedEnvironment) -> str:
    environment = lowered_environment(env)
    if environment == "staging":
        candidates = ("JWT_SECRET_STAGING", "JWT_SECRET_KEY", "JWT_SECRET")
    else:
        candidates = (f"JWT_SECRET_{environment.upper()}", "JWT_SECRET_KEY")
    secret = next((s for s in (_usable_secret(env, key) for key in candidates) if s), None)
    if environment in {"test", "testing", "development", "dev", "local"}:
        if secret is None or secret == KNOWN_TEST_JWT_SECRET:
            return hashlib.sha256(f"netra-{environment}-jwt-secret".encode()).hexdigest()
    if secret is None:
        if environment in {"staging", "production"}:
            raise AuthServiceConfigurationError(f"JWT secret not configured for {environment} environment")
        return hashlib.sha256(f"netra-{environment}-jwt-secret".encode()).hexdigest()
    return secret


def resolve_jwt_algorithm(env: IsolatedEnvironment) -> str:
    return env.derived(_resolve_jwt_algorithm)


def _resolve_jwt_algorithm(env: IsolatedEnvironment) -> str:
    algorithm = env.get("JWT_ALGORITHM")
    if algorithm is None and lowered_environment(env) == "production":
        raise AuthServiceConfigurationError("JWT_ALGORITHM must be set in production")
    return algorithm or "HS256"


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    """The auth service's answer: valid with claims, or rejected with a reason."""

    valid: bool
    claims: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


def _rejected(reason: str) -> TokenVerdict:
    return TokenVerdict(False, reason=reason)


def validate_token_jwt(token: str, env: IsolatedEnvironment, now_s: float) -> TokenVerdict:
    """The auth service's checks, in order; raises only on its own misconfiguration."""
    if token.startswith("mock_"):
        return _rejected("mock tokens are not accepted")
    header_verdict = _check_header(token)
    if header_verdict is not None:
        return header_verdict
    secret = resolve_jwt_secret(env)
    algorithm = resolve_jwt_algorithm(env)
    try:
        claims = _decode_verified(token, secret, algorithm, now_s)
    except jwt.PyJWTError as error:
        return _rejected(f"{type(error).__name__}: {error}")
    return _check_claims(claims, env, now_s)


def _check_header(token: str) -> TokenVerdict | None:
    parts = token.split(".")
    if len(parts) != 3:
        return _rejected("token must have 3 parts")
    return _header_verdict(parts[0])


@functools.lru_cache(maxsize=256)
def _header_verdict(segment: str) -> TokenVerdict | None:
    """The header checks of one header segment; remembered, as a server sees few distinct
    headers (every token of one signer shares its header)."""
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return _rejected("header is not base64url JSON")
    if not isinstance(header, dict):
        return _rejected("header is not a JSON object")
    if header.get("alg") not in {"HS256", "RS256"}:
        return _rejected(f"algorithm {header.get('alg')!r} not allowed")
    return None


_TIME_FREE_OPTIONS: dict[str, Any] = {
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_aud": False,
    "require": ["exp", "iat", "sub"],
}


@functools.lru_cache(maxsize=16)
def _prepared_hmac_key(key: str | bytes) -> bytes:
    return HMACAlgorithm.prepare_key(_HMAC_SHA256, key)


class _HmacSha256KeyPreparedOnce(HMACAlgorithm):
    """pyjwt's HS256, with pyjwt's key preparation (the secret must not look like a PEM, SSH,
    DER or JWK key) done once per secret: pyjwt repeats it on every decode, though its
    outcome depends on the secret alone. A refused secret raises every time, as in pyjwt."""

    def prepare_key(self, key: str | bytes) -> bytes:
        return _prepared_hmac_key(key)


_HMAC_SHA256 = HMACAlgorithm(HMACAlgorithm.SHA256)
_DECODER = jwt.PyJWT()
_DECODER._jws.unregister_algorithm("HS256")
_DECODER._jws.register_algorithm("HS256", _HmacSha256KeyPreparedOnce(HMACAlgorithm.SHA256))


def _decode_verified(token: str, secret: str, algorithm: str, now_s: float) -> dict[str, Any]:
    """pyjwt's decode (signature, required claims, sub and jti types), with pyjwt's own
    iat, nbf and exp checks applied at the backend clock's "now" instead of the wall clock."""
    decoder = _DECODER
    claims: dict[str, Any] = decoder.decode(
        token, secret, algorithms=[algorithm], options=_TIME_FREE_OPTIONS  # type: ignore[arg-type]
    )
    decoder._validate_iat(claims, now_s, 0)
    if "nbf" in claims:
        decoder._validate_nbf(claims, now_s, 0)
    decoder._validate_exp(claims, now_s, 0)
    return claims


def _check_claims(claims: Mapping[str, Any], env: IsolatedEnvironment, now_s: float) -> TokenVerdict:
    if claims.get("token_type") != "access":
        return _rejected("token_type must be 'access'")
    missing = [name for name in ("sub", "iat", "exp", "iss", "jti") if name not in claims]
    if missing:
        return _rejected(f"missing claims: {missing}")
    if claims["iss"] != ISSUER:
        return _rejected(f"invalid issuer {claims['iss']!r}")
    if now_s - float(claims["iat"]) > MAX_TOKEN_AGE_S:
        return _rejected("token issued more than 24 h ago")
    audience_problem = _audience_problem(claims.get("aud"), lowered_environment(env))
    if audience_problem:
        return _rejected(audience_problem)
    return TokenVerdict(True, claims=claims)


def _audience_problem(audience: Any, environment: str) -> str | None:
    audiences = [audience] if not isinstance(audience, list) else audience
    audiences = ["netra-platform" if a is None else a for a in audiences]
    allowed = DEVELOPMENT_ALLOWED_AUDIENCES if environment == "development" else VALID_AUDIENCES
    for value in audiences:
        if environment in {"staging", "production"} and value not in DEPLOYED_AUDIENCES:
            return f"audience {value!r} not allowed in {environment}"
        if value not in allowed:
            return f"audience {value!r} not allowed"
    return None


# --- retries around the auth client ---------------------------------------------------------


def retry_policy(env: IsolatedEnvironment) -> RetryPolicy:
    return RETRY_POLICIES.get(lowered_environment(env), DEFAULT_RETRY_POLICY)


def classify_auth_error(text: str) -> str:
    """"retry" or "stop" for an auth-client exception, first match in the original's order."""
    lowered = text.lower()
    if any(word in lowered for word in ("connection", "timeout", "network")):
        return "retry"
    if "circuit" in lowered or "breaker" in lowered:
        return "retry"
    if any(code in lowered for code in ("500", "502", "503", "504")):
        return "retry"
    if any(code in lowered for code in ("400", "401", "403")):
        return "stop"
    if "invalid" in lowered and "token" in lowered:
        return "stop"
    return "retry"


def _has_valid_format(token: str) -> bool:
    bare = token[len("Bearer ") :] if token.startswith("Bearer ") else token
    parts = bare.split(".")
    return len(parts) == 3 and all(parts)


async def validate_token_with_retries(
    token: str, backend: Backend
) -> tuple[TokenVerdict | None, str, Exception | None]:
    """(verdict, outcome, error): outcome is valid / token_rejected / stopped / all_attempts_failed; error, when
    no attempt answered, is the exception the last attempt raised (only logged: the client is told the outcome)."""
    policy = retry_policy(backend.env)
    last_error: Exception | None = None
    for attempt in range(policy.attempts):
        try:
            verdict = validate_token_jwt(token, backend.env, backend.clock.now())
        except Exception as error:
            backend.log("WARNING", f"auth attempt {attempt + 1} failed: {error}")
            last_error = error
            if classify_auth_error(str(error)) == "stop":
                return None, "stopped", last_error
        else:
            return verdict, "valid" if verdict.valid else "token_rejected", None
        if attempt + 1 < policy.attempts:
            await backend.clock.sleep(policy.delay_after(attempt))
    return None, "all_attempts_failed", last_error


# --- 5.4 the user context after auth -------------------------------------------------------------


def create_defensive_user_execution_context(
    user_id: Any, websocket_client_id: str | None
) -> UserExecutionContext:
    """Validate the id, generate IDs (with fallback), build and validate the context."""
    backend = runtime.current()
    try:
        if not isinstance(user_id, str) or not user_id.strip():
            raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
        user_id = user_id.strip()
        thread_id, run_id, request_id = _generate_ids(user_id, backend)
        if websocket_client_id is None:
            websocket_client_id = default_websocket_client_id(user_id, backend.clock, backend.randomness)
        context = UserExecutionContext(
            user_id=user_id,
            thread_id=thread_id,
            run_id=run_id,
            request_id=request_id,
            websocket_client_id=websocket_client_id,
        )
        _validate_ssot_user_context_staging_safe(context)
        return context
    except Exception as error:
        raise ValueError(f"UserExecutionContext creation failed for user_id {user_id!r}: {error}") from error


def _generate_ids(user_id: str, backend: Backend) -> tuple[str, str, str]:
    try:
        ids = backend.ids.generate_user_context_ids(user_id, ID_OPERATION)
    except Exception as error:
        backend.log("WARNING", f"UnifiedIdGenerator failed, using fallback: {error}")
        decide("context.id_generation", "fallback")
        return fallback_context_ids(backend.clock, backend.randomness)
    decide("context.id_generation", "generator")
    return ids


def _context_for(user_id: Any) -> UserExecutionContext:
    backend = runtime.current()
    if not user_id:
        raise ValueError("AuthResult must have valid user_id to create UserExecutionContext")
    user_id = str(user_id).strip()
    if not user_id:
        raise ValueError("AuthResult must have valid user_id to create UserExecutionContext")
    client_id = connection_client_id(user_id, backend.clock, backend.randomness)
    return create_defensive_user_execution_context(user_id, client_id)


def _fallback_context_for(user_id: Any) -> UserExecutionContext:
    fallback_id = str(user_id or "fallback_user").strip() or "unknown_user"
    try:
        return create_defensive_user_execution_context(fallback_id, None)
    except Exception as error:
        raise ValueError("UserExecutionContext creation failed completely") from error


def build_user_context(user_id: Any) -> tuple[UserExecutionContext, str]:
    """Steps 1-4 of spec 5.4: one attempt, then one retry on the fallback identity.

    Returns the context and how it was made ("created" or "created_on_retry").
    """
    try:
        return _context_for(user_id), "created"
    except Exception as error:
        runtime.current().log("WARNING", f"context creation failed, retrying: {error}")
        return _fallback_context_for(user_id), "created_on_retry"


# --- the whole authentication step ----------------------------------------------------------------


async def authenticate_websocket(headers: Mapping[str, str], query: Mapping[str, str]) -> AuthResult:
    """Authenticate a connection and build its user context; failures become error codes."""
    backend = runtime.current()
    token, source = extract_token(headers, query)
    decide("auth.token_source", source)
    if token is None:
        return _failure("NO_TOKEN", "No authentication token provided")
    try:
        identity = await _identify(token, headers)
    except Exception as error:
        return _failure("UNEXPECTED_ERROR", f"Authentication error: {error}", error)
    if not identity.success:
        return identity
    record_user(str(identity.user_id))
    try:
        identity.user_context, how = build_user_context(identity.user_id)
        backend.log("INFO", f"context created for auth user {identity.user_id[:8]}")
    except Exception as error:
        decide("context.creation", "failed")
        return _failure("WEBSOCKET_AUTH_ERROR", f"WebSocket authentication error: {error}", error)
    decide("context.creation", how)
    decide("auth.result", "success")
    return identity


async def _identify(token: str, headers: Mapping[str, str]) -> AuthResult:
    backend = runtime.current()
    bypass = detect_e2e_bypass(headers, backend.env)
    if bypass and backend.variant.refuse_e2e_bypass_when_deployed:
        bypass = lowered_environment(backend.env) not in {"staging", "production"}
    decide("auth.e2e_bypass", "yes" if bypass else "no")
    if bypass:
        user_id, found_by = extract_e2e_user_id(token, backend.clock.now())
        decide("auth.bypass_user", found_by)
        return AuthResult(
            success=True,
            user_id=user_id,
            email=f"{user_id}@e2e-test.netra.com",
            permissions=E2E_PERMISSIONS,
        )
    if not _has_valid_format(token):
        decide("auth.token_validation", "invalid_format")
        return _failure("INVALID_FORMAT", "Token format is invalid")
    verdict, outcome, error = await validate_token_with_retries(token, backend)
    decide("auth.token_validation", outcome)
    if verdict is None or not verdict.valid:
        reason = verdict.reason if verdict is not None else "All validation attempts failed"
        return _failure("VALIDATION_FAILED", f"Token validation failed: {reason}", error)
    claims = verdict.claims
    return AuthResult(
        success=True,
        user_id=claims.get("sub"),
        email=claims.get("email"),
        permissions=tuple(claims.get("permissions") or ()),
    )


def _failure(code: str, message: str, error: BaseException | None = None) -> AuthResult:
    decide("auth.result", code)
    return AuthResult(success=False, error_code=code, error_message=message, error=error)
