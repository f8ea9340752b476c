"""Spec section 6: the environment object, its cache, test context, .env, and the defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from investigation.backend.auth import _e2e_bypass_environment, _resolve_jwt_algorithm, _resolve_jwt_secret
from investigation.backend.environment import (
    IsolatedEnvironment,
    _environment_name,
    _lowered_environment,
    environment_name,
)
from investigation.backend.factory import _detect, detect_validation_environment
from investigation.backend.route import _route_e2e_environment, route_environment
from investigation.backend.variants import ORIGINAL, VARIANTS
from tests.conftest import ScriptedSocket, bearer, claims_for, mint, outcome, welcome_frames

# --- normal mode: first read cached, never stripped, set() cleans --------------------------------


def test_normal_mode_caches_the_first_read_of_a_key() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "staging"})
    assert env.get("ENVIRONMENT") == "staging"
    env._environ["ENVIRONMENT"] = "production"  # the process environment changes later
    assert env.get("ENVIRONMENT") == "staging"


def test_normal_mode_caches_absence_too() -> None:
    env = IsolatedEnvironment({})
    assert env.get("K_SERVICE") is None
    env._environ["K_SERVICE"] = "netra-backend-staging"
    assert env.get("K_SERVICE") is None
    assert env.get("K_SERVICE", "fallback") == "fallback"


def test_set_is_seen_after_a_cached_read() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "development"})
    assert env.get("ENVIRONMENT") == "development"
    env.set("ENVIRONMENT", "staging")
    assert env.get("ENVIRONMENT") == "staging"


def test_set_removes_control_characters_but_the_process_value_keeps_them() -> None:
    through_set = IsolatedEnvironment({})
    through_set.set("ENVIRONMENT", "staging\n")
    assert through_set.get("ENVIRONMENT") == "staging"
    from_process = IsolatedEnvironment({"ENVIRONMENT": "staging\n"})
    assert from_process.get("ENVIRONMENT") == "staging\n"


def test_values_read_are_never_stripped() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": " staging ", "K_SERVICE": " "})
    assert env.get("ENVIRONMENT") == " staging "
    assert env.get("K_SERVICE") == " "


def test_set_keeps_spaces_only_control_characters_go() -> None:
    env = IsolatedEnvironment({})
    env.set("X", " a\tb\r\n ")
    assert env.get("X") == " ab "


# --- test context ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {"TESTING": "1"},
        {"TESTING": "TRUE"},
        {"TEST_MODE": "yes"},
        {"TEST_MODE": "On"},
        {"PYTEST_CURRENT_TEST": "true"},
        {"ENVIRONMENT": "test"},
        {"ENVIRONMENT": "testing"},
    ],
)
def test_test_context_flags(environ: dict[str, str]) -> None:
    assert IsolatedEnvironment(environ).isolation_mode is True


@pytest.mark.parametrize(
    "environ",
    [
        {}, {"TESTING": "0"}, {"TESTING": "2"}, {"TEST_MODE": "y"}, {"TESTING": " 1"}, {"ENVIRONMENT": "staging"},
        {"ENVIRONMENT": "ci"}, {"ENVIRONMENT": "tests"}, {"PYTEST_CURRENT_TEST": "tests/x.py::t (call)"},
    ],
)
def test_not_a_test_context(environ: dict[str, str]) -> None:
    assert IsolatedEnvironment(environ).isolation_mode is False


def test_pytest_running_makes_a_test_context() -> None:
    assert IsolatedEnvironment({"ENVIRONMENT": "staging"}, pytest_loaded=True).isolation_mode is True


def test_test_context_is_decided_once_at_creation() -> None:
    env = IsolatedEnvironment({})
    env.set("TESTING", "1")
    assert env.isolation_mode is False
    assert env.get("E2E_OAUTH_SIMULATION_KEY") is None


def test_test_context_reads_live() -> None:
    env = IsolatedEnvironment({"TESTING": "1", "ENVIRONMENT": "test"})
    assert env.get("ENVIRONMENT") == "test"
    env._environ["ENVIRONMENT"] = "staging"  # the process environment changes later
    assert env.get("ENVIRONMENT") == "staging"


# --- derived values: remembered only where the reads behind them are fixed -----------------------


def test_derived_values_are_remembered_in_normal_mode() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "Staging"})
    calls: list[str] = []

    def compute(env: IsolatedEnvironment, suffix: str) -> str:
        calls.append(suffix)
        return _lowered_environment(env) + suffix

    assert env.derived(compute, "!") == "staging!"
    env._environ["ENVIRONMENT"] = "production"  # later process changes are not seen (cached reads)
    assert env.derived(compute, "!") == "staging!"
    assert env.derived(compute, "?") == "staging?"
    assert calls == ["!", "?"]


def test_set_forgets_derived_values() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "staging"})
    assert env.derived(_lowered_environment) == "staging"
    env.set("ENVIRONMENT", "Production")
    assert env.derived(_lowered_environment) == "production"


def test_test_context_derives_live() -> None:
    env = IsolatedEnvironment({"TESTING": "1", "ENVIRONMENT": "test"})
    assert env.derived(_lowered_environment) == "test"
    env._environ["ENVIRONMENT"] = "staging"  # the process environment changes later
    assert env.derived(_lowered_environment) == "staging"


def test_a_derivation_that_raises_is_not_remembered() -> None:
    env = IsolatedEnvironment({})
    attempts: list[int] = []

    def flaky(env: IsolatedEnvironment) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("unreadable")
        return "read"

    with pytest.raises(OSError):
        env.derived(flaky)
    assert env.derived(flaky) == "read"
    assert len(attempts) == 2


def test_test_context_defaults_fill_missing_keys() -> None:
    env = IsolatedEnvironment({}, pytest_loaded=True)
    assert env.get("ENVIRONMENT") == "test"
    assert env.get("TESTING") == "1"
    assert env.get("TEST_MODE") == "true"
    assert env.get("E2E_OAUTH_SIMULATION_KEY") is not None
    assert env.get("JWT_SECRET_KEY") is not None
    assert env.get("SOMETHING_ELSE", "d") == "d"


def test_test_defaults_do_not_override_present_values() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "staging"}, pytest_loaded=True)
    assert env.get("ENVIRONMENT") == "staging"


def test_normal_mode_has_no_test_defaults() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "development"})
    assert env.get("E2E_OAUTH_SIMULATION_KEY") is None
    assert env.get("JWT_SECRET_KEY") is None
    assert env.get("TESTING") is None


def test_test_default_simulation_key_switches_the_auth_bypass_on(harness) -> None:
    """Under pytest, a token that is not even a JWT is accepted through the E2E bypass."""
    under_pytest = harness({}, pytest_loaded=True)
    socket = ScriptedSocket(headers=bearer("not-a-jwt"), hold_s=1.0)
    recorder = under_pytest.connect(socket)
    assert outcome(recorder, "auth.e2e_bypass") == "yes"
    assert socket.close_code is None and len(welcome_frames(socket)) == 1

    plain = harness({"ENVIRONMENT": "development"})
    socket = ScriptedSocket(headers=bearer("not-a-jwt"), hold_s=1.0)
    plain.connect(socket)
    assert socket.close_code == 1008
    assert socket.frames[0]["error_code"] == "INVALID_FORMAT"


# --- .env -----------------------------------------------------------------------------------------


def test_dotenv_loaded_without_overriding_outside_deployments() -> None:
    env = IsolatedEnvironment({"A": "process"}, dotenv={"A": "dotenv", "B": "dotenv"})
    assert env.get("A") == "process"
    assert env.get("B") == "dotenv"


@pytest.mark.parametrize("environment", ["development", "dev", "qa"])
def test_dotenv_loaded_in_other_environments(environment: str) -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": environment}, dotenv={"B": "dotenv"})
    assert env.get("B") == "dotenv"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_dotenv_not_loaded_in_staging_or_production(environment: str) -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": environment}, dotenv={"B": "dotenv"})
    assert env.get("B") is None


def test_dotenv_not_loaded_under_pytest() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "development"}, pytest_loaded=True, dotenv={"B": "dotenv"})
    assert env.get("B") is None


# --- environment name and the three defaults -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("development", "development"),
        ("dev", "development"),
        ("local", "development"),
        ("DEV", "development"),
        ("test", "test"),
        ("testing", "test"),
        ("Testing", "test"),
        ("staging", "staging"),
        ("STAGING", "staging"),
        ("production", "production"),
        ("prod", "production"),
        ("staging ", "development"),
        ("qa", "development"),
    ],
)
def test_environment_name_mapping(value: str, name: str) -> None:
    assert environment_name(IsolatedEnvironment({"ENVIRONMENT": value})) == name


def test_absent_environment_defaults_differ_by_reader(harness) -> None:
    h = harness({})
    with h.active():
        assert route_environment() == "development"
        assert detect_validation_environment().current_env == "unknown"
        assert environment_name(h.backend.env) == "development"


def test_route_environment_is_lower_cased_not_stripped(harness) -> None:
    h = harness({"ENVIRONMENT": " Staging\n"})
    with h.active():
        assert route_environment() == " staging\n"


def test_process_value_with_newline_is_not_staging_anywhere(harness) -> None:
    """"staging\\n" from the process: no staging heartbeat and no relaxed validation."""
    h = harness({"ENVIRONMENT": "staging\n", "JWT_SECRET_KEY": SECRET_FOR_ENV})
    token = mint(claims_for("user-0001"), secret=SECRET_FOR_ENV)
    socket = ScriptedSocket(headers=bearer(token), hold_s=1.0)
    recorder = h.connect(socket)
    assert outcome(recorder, "factory.validation_mode") == "strict"
    assert welcome_frames(socket)[0]["data"]["config"]["heartbeat_interval"] == 45


SECRET_FOR_ENV = "environment-test-secret-0123456789abcdef"


# --- derived values equal computing afresh, whatever happens to the environment --------------

DERIVED_KEYS = (
    "ENVIRONMENT", "K_SERVICE", "K_REVISION", "E2E_TESTING", "E2E_TEST_ENV", "E2E_OAUTH_SIMULATION_KEY",
    "JWT_SECRET_KEY", "JWT_SECRET_STAGING", "JWT_ALGORITHM", "GOOGLE_CLOUD_PROJECT", "PORT", "TESTING",
)
DERIVED_VALUES = ("staging", "Staging", "staging ", "production", "development", "test", "1", "", "HS256",
                  "netra-staging", "s" * 40)
_BROAD = VARIANTS["V1"]
DERIVATIONS = (
    (_lowered_environment, ()),
    (_environment_name, ()),
    (_route_e2e_environment, ()),
    (_e2e_bypass_environment, ()),
    (_resolve_jwt_secret, ()),
    (_resolve_jwt_algorithm, ()),
    (_detect, (ORIGINAL.cloud_signals, ORIGINAL.e2e_flags, False, False)),
    (_detect, (_BROAD.cloud_signals, _BROAD.e2e_flags, True, True)),
)
_keys, _values = st.sampled_from(DERIVED_KEYS), st.sampled_from(DERIVED_VALUES)
_steps = st.one_of(
    st.tuples(st.just("set"), _keys, _values),  # the backend sets a value
    st.tuples(st.just("process"), _keys, _values),  # the process environment changes later
    st.tuples(st.just("derive"), st.integers(0, len(DERIVATIONS) - 1), st.just("")),
)


def _result(compute: Callable[..., object], env: IsolatedEnvironment, args: tuple[object, ...]) -> object:
    try:
        return compute(env, *args)
    except Exception as error:  # a derivation that raises must raise the same way both times
        return (type(error).__name__, str(error))


@settings(max_examples=300, deadline=None)
@given(
    environ=st.dictionaries(_keys, _values),
    steps=st.lists(_steps, max_size=25),
    pytest_loaded=st.booleans(),
)
@example(  # a test context reads live: a later process change must be seen
    environ={}, steps=[("derive", 0, ""), ("process", "ENVIRONMENT", "staging"), ("derive", 0, "")], pytest_loaded=True
)
@example(  # normal mode: set() must be seen by a value derived before it
    environ={"ENVIRONMENT": "staging"},
    steps=[("derive", 6, ""), ("set", "ENVIRONMENT", "production"), ("derive", 6, "")],
    pytest_loaded=False,
)
def test_derived_values_equal_computing_afresh(
    environ: dict[str, str], steps: list[tuple[str, Any, str]], pytest_loaded: bool
) -> None:
    remembering = IsolatedEnvironment(environ, pytest_loaded=pytest_loaded)
    afresh = IsolatedEnvironment(environ, pytest_loaded=pytest_loaded)
    for action, target, value in steps:
        if action == "set":
            remembering.set(target, value)
            afresh.set(target, value)
        elif action == "process":
            remembering._environ[target] = value
            afresh._environ[target] = value
        else:
            compute, args = DERIVATIONS[target]
            remembered = _result(lambda env, *a: env.derived(compute, *a), remembering, args)
            assert remembered == _result(compute, afresh, args)
