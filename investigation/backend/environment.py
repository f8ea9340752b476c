"""The process environment as the backend reads it [shared/isolated_environment.py].

Quirks kept: values read are never stripped; in normal mode the first read of a
key is cached (absence too); `set()` removes control characters; a test context
(decided once, at creation) reads live and falls back to built-in test defaults.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

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
Derived = TypeVar("Derived")


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
        self._derived: dict[Hashable, object] = {}
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
        self._derived.clear()

    def derived(self, compute: Callable[..., Derived], *args: Hashable) -> Derived:
        """`compute(self, *args)`, remembered until the next `set()` (a per-connection fast path).

        Exact, not an approximation: in normal mode every key is cached at its first read,
        so whatever is computed from reads cannot change until `set()`. In a test context
        reads are live (the process environment may change), so nothing is remembered.
        A computation that raises is not remembered either.
        """
        if self.isolation_mode:
            return compute(self, *args)
        key = (compute, *args) if args else compute
        try:
            return self._derived[key]  # type: ignore[return-value]
        except KeyError:
            pass  # computed outside the handler, so an error it raises carries no cache miss as its context
        value = self._derived[key] = compute(self, *args)
        return value

    def __repr__(self) -> str:
        return f"IsolatedEnvironment(isolation_mode={self.isolation_mode})"


def lowered_environment(env: IsolatedEnvironment) -> str:
    """ENVIRONMENT as the route, the auth service and the factory read it: lower-cased,
    never stripped, "development" when unset."""
    return env.derived(_lowered_environment)


def _lowered_environment(env: IsolatedEnvironment) -> str:
    return (env.get("ENVIRONMENT", "development") or "").lower()


def environment_name(env: IsolatedEnvironment) -> str:
    """The canonical environment name the context's `test_` rule uses."""
    return env.derived(_environment_name)


def _environment_name(env: IsolatedEnvironment) -> str:
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
