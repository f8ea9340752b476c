"""The process environment as the backend reads it [shared/isolated_environment.py].

Quirks kept: values read are never stripped; in normal mode the first read of a
key is cached (absence too); `set()` removes control characters; a test context
(decided once, at creation) reads live and falls back to built-in test defaults.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

TRUTHY_FLAGS = frozenset({"true", "1", "yes", "on"})
TEST_CONTEXT_FLAGS = ("TESTING", "TEST_MODE", "PYTEST_CURRENT_TEST")

#: A known default secret that test tooling ships; the auth service replaces it.
KNOWN_TEST_JWT_SECRET = "test-jwt-secret-key-32-characters-long-for-testing-only"
#: A test-only simulation key (the original ships one as a test default).
TEST_E2E_OAUTH_SIMULATION_KEY = "test-e2e-oauth-simulation-key-for-testing-only"

TEST_DEFAULTS: dict[str, str] = {
    "ENVIRONMENT": "test",
    "TESTING": "1",
    "TEST_MODE": "true",
    "E2E_OAUTH_SIMULATION_KEY": TEST_E2E_OAUTH_SIMULATION_KEY,
    "JWT_SECRET_KEY": KNOWN_TEST_JWT_SECRET,
}

_MISSING = object()


def _strip_control_characters(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cc")


def is_test_context(environ: Mapping[str, str], pytest_loaded: bool) -> bool:
    """Whether the environment object starts in isolation (test) mode."""
    if any(environ.get(flag, "").lower() in TRUTHY_FLAGS for flag in TEST_CONTEXT_FLAGS):
        return True
    return pytest_loaded or environ.get("ENVIRONMENT", "").lower() in {"test", "testing"}


def _loads_dotenv(environ: Mapping[str, str], pytest_loaded: bool) -> bool:
    deployed = environ.get("ENVIRONMENT", "").lower() in {"staging", "production"}
    return not deployed and not pytest_loaded


class IsolatedEnvironment:
    """One per process: `get` as the original's `get_env().get`."""

    def __init__(
        self,
        process_environ: Mapping[str, str],
        *,
        pytest_loaded: bool = False,
        dotenv: Mapping[str, str] | None = None,
    ) -> None:
        environ = dict(process_environ)
        if dotenv and _loads_dotenv(environ, pytest_loaded):
            environ = {**dotenv, **environ}
        self._environ = environ
        self._cache: dict[str, object] = {}
        self.isolation_mode = is_test_context(environ, pytest_loaded)

    def get(self, key: str, default: str | None = None) -> str | None:
        if self.isolation_mode:
            return self._environ.get(key, TEST_DEFAULTS.get(key, default))
        if key not in self._cache:
            self._cache[key] = self._environ.get(key, _MISSING)
        cached = self._cache[key]
        return default if cached is _MISSING else str(cached)

    def set(self, key: str, value: str) -> None:
        cleaned = _strip_control_characters(value)
        self._environ[key] = cleaned
        self._cache[key] = cleaned

    def __repr__(self) -> str:
        return f"IsolatedEnvironment(isolation_mode={self.isolation_mode})"


def environment_name(env: IsolatedEnvironment) -> str:
    """The canonical environment name the context's `test_` rule uses."""
    raw = (env.get("ENVIRONMENT", "development") or "development").lower()
    if raw in {"development", "dev", "local"}:
        return "development"
    if raw in {"test", "testing"}:
        return "test"
    if raw == "staging":
        return "staging"
    if raw in {"production", "prod"}:
        return "production"
    return "development"
