"""Spec section 6: the environment object, its cache, test context, .env, and the defaults."""

from __future__ import annotations

import pytest

from investigation.backend.environment import IsolatedEnvironment, environment_name
from investigation.backend.factory import detect_validation_environment
from investigation.backend.route import route_environment
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
    [{}, {"TESTING": "0"}, {"TESTING": "2"}, {"TEST_MODE": "y"}, {"TESTING": " 1"}, {"ENVIRONMENT": "staging"}],
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


def _lowered(env: IsolatedEnvironment) -> str:
    return (env.get("ENVIRONMENT", "development") or "").lower()


def test_derived_values_are_remembered_in_normal_mode() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "Staging"})
    calls: list[str] = []

    def compute(env: IsolatedEnvironment, suffix: str) -> str:
        calls.append(suffix)
        return _lowered(env) + suffix

    assert env.derived(compute, "!") == "staging!"
    env._environ["ENVIRONMENT"] = "production"  # later process changes are not seen (cached reads)
    assert env.derived(compute, "!") == "staging!"
    assert env.derived(compute, "?") == "staging?"
    assert calls == ["!", "?"]


def test_set_forgets_derived_values() -> None:
    env = IsolatedEnvironment({"ENVIRONMENT": "staging"})
    assert env.derived(_lowered) == "staging"
    env.set("ENVIRONMENT", "Production")
    assert env.derived(_lowered) == "production"


def test_test_context_derives_live() -> None:
    env = IsolatedEnvironment({"TESTING": "1", "ENVIRONMENT": "test"})
    assert env.derived(_lowered) == "test"
    env._environ["ENVIRONMENT"] = "staging"  # the process environment changes later
    assert env.derived(_lowered) == "staging"


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
