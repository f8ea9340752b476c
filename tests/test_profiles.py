"""Tests of investigation.profiles: the shipped profiles, the loader's errors, factor paths."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from investigation.profiles import (
    DEFAULT_PROFILES_DIR,
    Message,
    ProfileError,
    flatten_profile,
    jsonable_factor_value,
    list_profiles,
    load_profile,
    load_profile_file,
    profile_from_dict,
    unflatten_profile,
)
from investigation.simulate import simulate
from investigation.traffic import auth_environment, b64url, mint_token
from tests.conftest import EPOCH_S

SHIPPED_NAMES = [
    "cloud-run-env-missing",
    "development",
    "local-debug",
    "production-cloud-run",
    "pytest",
    "staging-cloud-run",
    "staging-e2e",
    "staging-env-whitespace",
    "staging-no-cloud-signal",
]
REAL_USER_PROFILES = [
    "staging-cloud-run",
    "production-cloud-run",
    "cloud-run-env-missing",
    "staging-no-cloud-signal",
    "staging-env-whitespace",
]
# Spec 2 / 5.2: any of these env vars makes the backend treat the process as E2E.
E2E_ENV_FLAGS = ("E2E_TESTING", "PYTEST_RUNNING", "STAGING_E2E_TEST", "E2E_OAUTH_SIMULATION_KEY", "E2E_TEST_ENV")
GOOGLE_SUBJECT_ID = re.compile(r"\d{21}")


def write_profile(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    return caught.value


# --- the shipped profile set ---------------------------------------------------------


def test_shipped_profiles_are_exactly_the_agreed_set_sorted_by_name() -> None:
    assert [profile.name for profile in list_profiles()] == SHIPPED_NAMES


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_profile_loads_with_a_description_and_small_traffic(name: str) -> None:
    profile = load_profile(name)
    total_connections = sum(client.connections for client in profile.clients)
    assert profile.name == name
    assert len(profile.description) > 40
    assert 1 <= total_connections <= 300


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_every_message_is_sent_while_its_connection_is_open(name: str) -> None:
    for client in load_profile(name).clients:
        assert all(message.at_s < client.hold_s for message in client.messages), client.name


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_secrets_are_test_only_and_long_enough(name: str) -> None:
    profile = load_profile(name)
    secrets = {key: value for key, value in {**profile.env, **profile.process.dotenv}.items() if "SECRET" in key}
    for key, value in secrets.items():
        assert value.startswith("test-only-"), key
        assert len(value.strip()) >= 32, key


def test_local_debug_is_the_reports_debug_run() -> None:
    profile = load_profile("local-debug")
    assert profile.env == {"ENVIRONMENT": "test"}
    assert [(c.user_id, c.connections, c.token) for c in profile.clients] == [("test-user-12345", 1, "auth_service")]
    assert profile.instances == 1


def test_staging_cloud_run_matches_spec_section_7() -> None:
    profile = load_profile("staging-cloud-run")
    env = profile.env
    assert env["ENVIRONMENT"] == "staging"
    assert env["K_SERVICE"] == "netra-backend-staging"
    assert env["PORT"] == "8080"
    assert env["JWT_SECRET_KEY"] == env["JWT_SECRET_STAGING"]
    assert profile.instances in (2, 3) and profile.routing == "sticky"
    assert not any(flag in env for flag in E2E_ENV_FLAGS)


@pytest.mark.parametrize("name", REAL_USER_PROFILES)
def test_real_users_carry_google_subject_ids_and_valid_tokens(name: str) -> None:
    for client in load_profile(name).clients:
        assert GOOGLE_SUBJECT_ID.fullmatch(client.user_id), client.user_id
        assert client.token == "auth_service"
        assert client.token_via in ("bearer", "subprotocol")
        assert client.headers == {}


def test_staging_real_users_keep_tabs_open_and_reconnect_in_bursts() -> None:
    clients = load_profile("staging-cloud-run").clients
    assert any(client.hold_s > 1800 for client in clients)
    assert any(client.connections >= 3 and client.spacing_s <= 60 for client in clients)
    assert any(message.type == "start_agent" for client in clients for message in client.messages)


def test_staging_e2e_has_the_suites_headers_users_and_token() -> None:
    profile = load_profile("staging-e2e")
    assert profile.env == load_profile("staging-cloud-run").env
    assert sorted(client.user_id for client in profile.clients) == [
        "staging-e2e-user-001",
        "staging-e2e-user-002",
        "staging-e2e-user-003",
    ]
    for client in profile.clients:
        assert client.headers == {
            "X-Test-Type": "E2E",
            "X-Test-Environment": "staging",
            "X-E2E-Test": "true",
            "X-Test-Mode": "true",
        }
        assert client.token == "e2e_suite"
        assert 10 <= client.spacing_s <= 20 and client.hold_s < client.spacing_s


#: Spec 7: the E2E suite's JWT claims -- and no token_type.
E2E_TOKEN_CLAIMS = {"sub", "email", "permissions", "iat", "exp", "type", "iss", "jti"}


def test_staging_e2e_tokens_carry_the_suites_claims_for_the_process_user() -> None:
    """Spec 7: HS256; sub, email, permissions, iat, exp, type "access", iss "netra-auth-service",
    jti, no token_type; one test process always presents its one user (pid % 3)."""
    profile = load_profile("staging-e2e")
    auth_env = auth_environment(profile)
    for client in profile.clients:
        for number in range(client.connections):
            token = mint_token(client, number, auth_env, EPOCH_S + 14.0 * number)
            assert token is not None
            claims = jwt.decode(token, options={"verify_signature": False})
            assert jwt.get_unverified_header(token)["alg"] == "HS256"
            assert set(claims) == E2E_TOKEN_CLAIMS, client.name
            assert (claims["type"], claims["iss"]) == ("access", "netra-auth-service")
            assert claims["sub"] == client.user_id
            assert claims["exp"] > claims["iat"]


@pytest.mark.parametrize("name", ["staging-cloud-run", "staging-e2e", "cloud-run-env-missing",
                                  "staging-no-cloud-signal", "staging-env-whitespace"])
def test_staging_deployments_share_one_secret_as_key_and_staging_secret(name: str) -> None:
    """Spec 7: in staging JWT_SECRET_KEY and JWT_SECRET_STAGING are the same secret; the
    misconfigured staging variants change only what their description names."""
    env = load_profile(name).env
    assert env["JWT_SECRET_KEY"] == env["JWT_SECRET_STAGING"]


def test_local_debug_creates_one_context_only() -> None:
    """Spec 7: one context in a fresh process; a start_agent message would build another
    (spec 1 step 12), so the one connection sends none."""
    [client] = load_profile("local-debug").clients
    assert client.connections == 1
    assert not any(message.type == "start_agent" for message in client.messages)


def test_each_instance_has_its_own_factory_and_counts() -> None:
    """Spec 7: the factory and its counts live in each instance. One user reconnecting 12 times
    over two round-robin instances: 6 managers per instance, so each instance's 6th (connections
    11 and 12) meets the cap of 5 (spec 4.2); one shared factory would refuse from the 6th on."""
    data = {
        "description": "one user, two instances",
        "instances": 2,
        "routing": "round_robin",
        "env": load_profile("staging-cloud-run").env,
        "clients": [{"name": "c", "user_id": "104729384756102938475", "connections": 12, "spacing_s": 2.0,
                     "hold_s": 1.0}],
    }
    run = simulate(profile_from_dict("two-instances", data, source="<test>"))
    assert [c.instance for c in run.connections] == [0, 1] * 6
    assert [c.close_code for c in run.connections] == [None] * 10 + [1011] * 2


def test_misconfigured_deployments_differ_from_staging_where_named() -> None:
    missing = load_profile("cloud-run-env-missing").env
    no_signal = load_profile("staging-no-cloud-signal").env
    whitespace = load_profile("staging-env-whitespace").env
    assert "ENVIRONMENT" not in missing and missing["K_SERVICE"] and missing["JWT_SECRET_KEY"]
    assert "ENVIRONMENT" not in no_signal and "K_SERVICE" not in no_signal
    assert not any(flag in no_signal for flag in E2E_ENV_FLAGS)
    assert whitespace["ENVIRONMENT"] == "staging " and "K_SERVICE" not in whitespace


def test_pytest_and_production_profiles() -> None:
    pytest_profile = load_profile("pytest")
    production = load_profile("production-cloud-run")
    assert pytest_profile.process.pytest_loaded is True
    assert pytest_profile.env["TESTING"] == "1" and pytest_profile.env["PYTEST_CURRENT_TEST"]
    assert all(client.user_id.startswith("test-user-") for client in pytest_profile.clients)
    assert production.env["ENVIRONMENT"] == "production"
    assert production.env["K_SERVICE"] == "netra-backend"
    assert production.env["JWT_ALGORITHM"] == "HS256"
    assert production.env["JWT_SECRET_PRODUCTION"] == production.env["JWT_SECRET_KEY"]
    assert production.instances > 1


# --- errors: one line naming file, field and reason -------------------------------------


def test_unknown_key_names_its_dotted_path(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "typo", 'description = "d"\n[[clients]]\nname = "a"\ntokn = "x"\n')
    error = error_of(path)
    assert (error.file, error.field, error.reason) == (str(path), "clients[0].tokn", "unknown key")
    assert str(error) == f"{path}: clients[0].tokn: unknown key"


def test_wrong_type_names_field_and_expected_type(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "wrong", 'description = "d"\ninstances = "two"\n')
    error = error_of(path)
    assert error.field == "instances"
    assert "integer" in error.reason and "str" in error.reason


def test_missing_description_is_named(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "bare", "seed = 1\n")
    assert str(error_of(path)) == f"{path}: description: missing required field"


def test_malformed_toml_gives_line_and_column(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "broken", 'description = "d"\n[env\nA = "b"\n')
    error = error_of(path)
    assert error.field == "<toml>"
    assert "line 2" in error.reason and "column" in error.reason


def test_a_message_timed_after_its_connection_closes_is_refused(tmp_path: Path) -> None:
    """The client leaves at hold_s (45 s here), so a message at 50 s would silently never be sent."""
    late = '[[clients]]\nname = "a"\nhold_s = 45.0\nmessages = [{ at_s = 10.0, type = "chat" }, { at_s = 50.0, type = "chat" }]\n'
    error = error_of(write_profile(tmp_path, "late", 'description = "d"\n' + late))
    assert error.field == "clients[0]"
    assert error.reason.startswith("messages[1].at_s is 50 s, not before hold_s (45 s)")


def test_a_message_just_before_the_client_leaves_loads(tmp_path: Path) -> None:
    text = 'description = "d"\n[[clients]]\nname = "a"\nhold_s = 45.0\nmessages = [{ at_s = 44.9, type = "chat" }]\n'
    assert load_profile_file(write_profile(tmp_path, "inside", text)).clients[0].messages[0].at_s == 44.9


def test_env_value_as_toml_integer_is_an_error(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "port", 'description = "d"\n[env]\nPORT = 8080\n')
    error = error_of(path)
    assert error.field == "env.PORT"
    assert "string" in error.reason and "8080" in error.reason


def test_unknown_profile_lists_the_known_names() -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("staging-typo")
    error = caught.value
    assert (error.file, error.field) == (str(DEFAULT_PROFILES_DIR), "name")
    assert "staging-typo" in error.reason
    assert all(name in error.reason for name in SHIPPED_NAMES)


@pytest.mark.parametrize(
    ("text", "field", "reason_part"),
    [
        ('description = "d"\ninstances = 0\n', "instances", "greater than or equal to 1"),
        ('description = "d"\n[[clients]]\nname = "a"\nconnections = -1\n', "clients[0].connections", "greater"),
        ('description = "d"\n[[clients]]\nname = "a"\nstart_s = -0.5\n', "clients[0].start_s", "greater"),
        ('description = "d"\n[[clients]]\nname = "a"\n[[clients]]\nname = "a"\n', "clients", "unique"),
        ('description = "d"\nrouting = "random"\n', "routing", "'sticky' or 'round_robin'"),
        ('description = "d"\n[[clients]]\nname = "a"\ntoken_via = "cookie"\n', "clients[0].token_via", "bearer"),
        (
            'description = "d"\n[[clients]]\nname = "a"\nmessages = [{at_s = 1.0, type = "hello"}]\n',
            "clients[0].messages[0].type",
            "start_agent",
        ),
        ('description = "d"\n[process]\ndotenv = {DEBUG = true}\n', "process.dotenv.DEBUG", "string"),
        ('description = "d"\nname = "other"\n', "name", "unknown key"),
        ('description = "d"\n[startup]\ncomplete_after_s = -1\n', "startup.complete_after_s", "greater"),
        # infinite or NaN times: an infinite spacing or hold never lets the virtual clock reach the end
        ('description = "d"\n[[clients]]\nname = "a"\nspacing_s = inf\n', "clients[0].spacing_s", "finite"),
        ('description = "d"\n[[clients]]\nname = "a"\nhold_s = inf\n', "clients[0].hold_s", "finite"),
        ('description = "d"\n[[clients]]\nname = "a"\nstart_s = nan\n', "clients[0].start_s", "finite"),
        ('description = "d"\n[[clients]]\nname = "a"\nmessages = [{at_s = nan, type = "ping"}]\n',
         "clients[0].messages[0].at_s", "finite"),
        ('description = "d"\nduration_s = inf\n', "duration_s", "finite"),
        ('description = "d"\n[startup]\ncomplete_after_s = inf\n', "startup.complete_after_s", "finite"),
    ],
)
def test_invalid_values_name_field_and_reason(tmp_path: Path, text: str, field: str, reason_part: str) -> None:
    path = write_profile(tmp_path, "bad", text)
    error = error_of(path)
    assert error.field == field
    assert reason_part in error.reason
    assert "\n" not in str(error)


_CLIENT = 'description = "d"\n[[clients]]\nname = "a"\n'


@pytest.mark.parametrize(
    ("text", "field", "reason_part"),
    [
        # each of these loaded, then simulate hung (a 1e300 s hold) or ate gigabytes (10**8 connections)
        (_CLIENT + "connections = 100000000\n", "clients[0].connections", "less than or equal to 10000"),
        (_CLIENT + "connections = 9999999999999999999\n", "clients[0].connections", "less than or equal to 10000"),
        ('description = "d"\ninstances = 1000000000\n', "instances", "less than or equal to 1000"),
        (_CLIENT + "hold_s = 1e300\n", "clients[0].hold_s", "less than or equal to 1000000"),
        (_CLIENT + "start_s = 1e300\n", "clients[0].start_s", "less than or equal to 1000000"),
        (_CLIENT + "spacing_s = 1e300\n", "clients[0].spacing_s", "less than or equal to 1000000"),
        (_CLIENT + 'messages = [{at_s = 1e300, type = "ping"}]\n', "clients[0].messages[0].at_s", "1000000"),
        ('description = "d"\nduration_s = 1e300\n', "duration_s", "less than or equal to 1000000"),
        ('description = "d"\n[startup]\ncomplete_after_s = 1e300\n', "startup.complete_after_s", "1000000"),
        # every value within its bound, the schedule not: 1001 connections a 1000 s apart end at 1e6 s
        (_CLIENT + "connections = 1002\nspacing_s = 1000.0\n", "clients[0]", "last connection starts at 1.001e+06 s"),
        (_CLIENT + 'connections = 6000\n[[clients]]\nname = "b"\nconnections = 4001\n', "clients", "10001 connections"),
        (_CLIENT + "connections = 100\nhold_s = 200000.0\n", "clients", "2e+07 connection-seconds"),
    ],
)
def test_traffic_beyond_the_bounds_is_refused(tmp_path: Path, text: str, field: str, reason_part: str) -> None:
    error = error_of(write_profile(tmp_path, "huge", text))
    assert (error.field, "\n" in str(error)) == (field, False)
    assert reason_part in error.reason


def test_traffic_at_the_bounds_loads(tmp_path: Path) -> None:
    text = (
        'description = "d"\ninstances = 1000\nduration_s = 1000000.0\n'
        '[[clients]]\nname = "a"\nconnections = 5000\nspacing_s = 200.0\nhold_s = 1000.0\n'
        '[[clients]]\nname = "b"\nconnections = 5000\nstart_s = 1000000.0\nhold_s = 1000.0\n'
    )
    profile = load_profile_file(write_profile(tmp_path, "edge", text))
    assert sum(client.connections for client in profile.clients) == 10_000


@pytest.mark.parametrize(
    ("claims", "field", "kind"),
    [
        ("{exp = 2026-01-01T00:00:00Z}", "clients[0].claims.exp", "datetime"),
        ("{nbf = 2026-01-01}", "clients[0].claims.nbf", "date"),
        ("{ctx = {at = [07:32:00]}}", "clients[0].claims.ctx", "time"),
        ("{iat = inf}", "clients[0].claims.iat", "float inf"),
    ],
)
def test_claims_that_are_not_json_are_rejected(tmp_path: Path, claims: str, field: str, kind: str) -> None:
    # a JWT payload is JSON: jwt.encode raised TypeError on a TOML date deep inside simulate
    path = write_profile(tmp_path, "dated", f'description = "d"\n[[clients]]\nname = "a"\nclaims = {claims}\n')
    error = error_of(path)
    assert error.field == field
    assert "JSON" in error.reason and kind in error.reason


def test_claims_in_a_dict_need_string_keys() -> None:
    data = {"description": "d", "clients": [{"name": "a", "claims": {"ctx": {1: "one"}}}]}
    with pytest.raises(ProfileError) as caught:
        profile_from_dict("keys", data)
    assert caught.value.field == "clients[0].claims.ctx"


def test_error_never_echoes_a_long_string_value(tmp_path: Path) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"
    path = write_profile(tmp_path, "leak", f'description = "d"\n[[clients]]\nname = "a"\ntoken = "{token}"\n')
    assert token not in str(error_of(path))


def test_deeply_nested_toml_is_a_profile_error_not_a_traceback(tmp_path: Path) -> None:
    # tomllib parses nested arrays recursively: 5000 levels raised RecursionError through the CLI
    depth = 5000
    text = f'description = "d"\n[[clients]]\nname = "a"\nclaims = {{x = {"[" * depth}{"]" * depth}}}\n'
    error = error_of(write_profile(tmp_path, "deep", text))
    assert (error.field, error.reason) == ("<toml>", "arrays or tables nested too deeply to parse")


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("[env]\nJWT_SECRET_KEY = 918273645546372819\n", "env.JWT_SECRET_KEY"),
        ("[process.dotenv]\nDB_PASSWORD = 918273645546372819\n", "process.dotenv.DB_PASSWORD"),
        ('[[clients]]\nname = "a"\ntoken_literal = 918273645546372819\n', "clients[0].token_literal"),
        ('[[clients]]\nname = "a"\nheaders = {Authorization = 918273645546372819}\n', "clients[0].headers.Authorization"),
    ],
)
def test_error_never_echoes_a_secret_given_as_a_number(tmp_path: Path, table: str, field: str) -> None:
    # the number is the secret, quoted or not: "got int 918273645546372819" printed it whole
    error = error_of(write_profile(tmp_path, "numeric", f'description = "d"\n{table}'))
    assert error.field == field
    assert "918273645546372819" not in str(error)
    assert error.reason.endswith("got int (the value of a secret is not shown)")


def test_byte_order_mark_is_named_as_the_reason(tmp_path: Path) -> None:
    # tomllib reported an editor's BOM as "Invalid statement (at line 1, column 1)"
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfdescription = "d"\n')
    error = error_of(path)
    assert (error.field, error.reason) == ("<toml>", "starts with a byte-order mark (BOM); TOML is UTF-8 without one")


def test_literal_token_kind_needs_its_token(tmp_path: Path) -> None:
    # without token_literal the client silently sent an empty bearer token and closed 1008
    error = error_of(write_profile(tmp_path, "lit", _CLIENT + 'token = "literal"\n'))
    assert error.field == "clients[0]"
    assert error.reason == 'token = "literal" needs token_literal, the exact token sent ("" for an empty one)'
    profile = load_profile_file(write_profile(tmp_path, "empty", _CLIENT + 'token = "literal"\ntoken_literal = ""\n'))
    assert profile.clients[0].token_literal == ""


@pytest.mark.parametrize("description", ["first\\nsecond", "name\\tcolumn", "bell\\u0007"])
def test_description_is_one_line(tmp_path: Path, description: str) -> None:
    # `profiles` prints name<TAB>description, one profile a line: a newline or tab broke that
    error = error_of(write_profile(tmp_path, "lines", f'description = "{description}"\n'))
    assert error.field == "description"
    assert error.reason.startswith("must be one line without tabs or other control characters")


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    error = error_of(tmp_path / "absent.toml")
    assert error.field == "<file>"


def test_profile_error_pickles() -> None:
    error = ProfileError("data/profiles/x.toml", "clients[0].tokn", "unknown key")
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.file, restored.field, restored.reason) == (error.file, error.field, error.reason)
    assert str(restored) == "data/profiles/x.toml: clients[0].tokn: unknown key"


def test_a_notebook_shows_a_profile_error_as_its_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a notebook that loads a bad profile file: the line names file, field and reason; a traceback would bury it
    from IPython.core.interactiveshell import InteractiveShell

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = "x"\nunknown_key = 1\n')
    InteractiveShell.instance().run_cell(
        f"from investigation.profiles import load_profile_file\nload_profile_file({str(bad)!r})"
    )
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(shown) == 1
    assert shown[0].startswith(f"ProfileError: {bad}: ")


# --- --profiles-dir --------------------------------------------------------------------


def test_profiles_dir_adds_profiles_and_its_names_win(tmp_path: Path) -> None:
    write_profile(tmp_path, "local-debug", 'description = "overridden debug run"\n')
    write_profile(tmp_path, "extra", 'description = "an added profile"\n')
    profiles = {profile.name: profile for profile in list_profiles(tmp_path)}
    assert sorted(profiles) == sorted([*SHIPPED_NAMES, "extra"])
    assert profiles["local-debug"].description == "overridden debug run"
    assert load_profile("local-debug", tmp_path).description == "overridden debug run"
    assert load_profile("local-debug").env == {"ENVIRONMENT": "test"}


def test_unknown_name_with_profiles_dir_names_that_dir(tmp_path: Path) -> None:
    write_profile(tmp_path, "extra", 'description = "an added profile"\n')
    with pytest.raises(ProfileError) as caught:
        load_profile("nope", tmp_path)
    assert caught.value.file == str(tmp_path)
    assert "extra" in caught.value.reason and "local-debug" in caught.value.reason


def test_profiles_dir_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        list_profiles(tmp_path / "missing")
    assert caught.value.field == "profiles_dir"


# --- factors -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_flatten_unflatten_round_trip(name: str) -> None:
    profile = load_profile(name)
    factors = flatten_profile(profile)
    assert unflatten_profile(name, factors, base=profile) == profile
    assert all(hash(value) is not None for value in factors.values())
    assert "description" not in factors


def test_factor_paths_follow_the_profile_structure() -> None:
    e2e = flatten_profile(load_profile("staging-e2e"))
    missing = flatten_profile(load_profile("cloud-run-env-missing"))
    assert e2e["env.K_SERVICE"] == "netra-backend-staging"
    assert e2e["clients[0].headers.X-Test-Type"] == "E2E"
    assert e2e["clients[2].connections"] == 12
    assert e2e["startup.complete"] is True
    assert e2e["clients[2].messages"] == (
        Message(at_s=1.0, type="chat", text="E2E agent flow"),
        Message(at_s=2.0, type="start_agent"),
    )
    assert "env.ENVIRONMENT" not in missing


def test_unflatten_builds_a_mixture_by_client_index() -> None:
    passing = flatten_profile(load_profile("local-debug"))
    failing = flatten_profile(load_profile("staging-e2e"))
    mixture = {**passing, "env.K_SERVICE": failing["env.K_SERVICE"], "clients[0].hold_s": failing["clients[0].hold_s"]}
    mixture.update({key: value for key, value in failing.items() if key.startswith("clients[2].headers.")})
    mixture["clients[2].connections"] = 12
    profile = unflatten_profile("mix", mixture)
    assert profile.env == {"ENVIRONMENT": "test", "K_SERVICE": "netra-backend-staging"}
    assert (profile.clients[0].user_id, profile.clients[0].hold_s) == ("test-user-12345", 4.0)
    gap, partial = profile.clients[1], profile.clients[2]
    assert (gap.name, gap.connections) == ("client1", 0)
    assert (partial.name, partial.user_id, partial.connections) == ("client2", "client2", 12)
    assert partial.headers["X-E2E-Test"] == "true" and partial.token == "auth_service"


def test_unflatten_rejects_unknown_factor_paths() -> None:
    with pytest.raises(ProfileError) as caught:
        unflatten_profile("mix", {"clients[0].tokn": "x"})
    error = caught.value
    assert (error.file, error.field, error.reason) == ("<factors>", "clients[0].tokn", "unknown factor")


def test_claims_of_any_toml_shape_round_trip() -> None:
    data = {
        "description": "claims",
        "clients": [{"name": "a", "claims": {"aud": ["netra-backend", "x"], "sub": 12345, "ctx": {"k": [1, 2]}}}],
    }
    profile = profile_from_dict("claims", data)
    factors = flatten_profile(profile)
    assert factors["clients[0].claims.aud"] == ("netra-backend", "x")
    assert unflatten_profile("claims", factors, base=profile) == profile
    assert jsonable_factor_value("clients[0].claims.ctx", factors["clients[0].claims.ctx"]) == {"k": [1, 2]}


def test_jsonable_factor_value_redacts_secrets() -> None:
    factors = flatten_profile(load_profile("staging-cloud-run"))
    shown = jsonable_factor_value("env.JWT_SECRET_KEY", factors["env.JWT_SECRET_KEY"])
    assert isinstance(shown, str) and "test-only" not in shown and "41 chars" in shown
    assert jsonable_factor_value("env.K_SERVICE", "netra-backend-staging") == "netra-backend-staging"
    assert jsonable_factor_value("clients[0].messages", (Message(at_s=1.0, type="ping"),)) == [
        {"at_s": 1.0, "type": "ping", "text": ""}
    ]


def local_debug_token(kind: str) -> str:
    """A real token the shipped local-debug environment mints for a client presenting ``kind``."""
    profile = load_profile("local-debug")
    client = profile.clients[0].model_copy(update={"token": kind})
    auth_env = auth_environment(profile)
    token = mint_token(client, 1, auth_env, EPOCH_S)
    assert token is not None and token.count(".") == 2
    return token


@pytest.mark.parametrize("header", ["X-Auth-Token", "x-api-key", "X-Client-Secret", "Proxy-Authorization-Token"])
def test_headers_with_secret_like_names_are_redacted(header: str) -> None:
    token = local_debug_token("auth_service")
    shown = jsonable_factor_value(f"clients[0].headers.{header}", token)
    assert isinstance(shown, str) and token not in shown and "redacted" in shown
    assert jsonable_factor_value("clients[0].headers.X-Test-Type", "E2E") == "E2E"


def test_jwt_subprotocols_are_redacted_and_the_others_kept() -> None:
    token = local_debug_token("auth_service")
    offered = ("jwt-auth", f"jwt.{b64url(token.encode())}", f"jwt.{token}", "chat.v2")
    shown = jsonable_factor_value("clients[0].subprotocols", offered)
    assert isinstance(shown, list) and len(shown) == 4
    assert (shown[0], shown[3]) == ("jwt-auth", "chat.v2")
    assert all(entry.startswith("jwt.<redacted: ") for entry in shown[1:3])
    assert token not in repr(shown) and b64url(token.encode()) not in repr(shown)


def test_profile_model_is_frozen() -> None:
    profile = load_profile("local-debug")
    with pytest.raises(ValidationError, match="frozen"):
        profile.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(("env", "pytest_loaded", "local"), [
    ({"ENVIRONMENT": "test"}, False, True),  # the report's local debug run
    ({"ENVIRONMENT": "development"}, False, True),
    ({}, True, True),  # pytest (spec 6: a test context without ENVIRONMENT)
    ({"ENVIRONMENT": "staging"}, False, False),
    ({}, False, False),  # ENVIRONMENT unset off Cloud Run: staging-no-cloud-signal, a deployment
    ({"ENVIRONMENT": "development", "K_SERVICE": "svc"}, False, False),  # Cloud Run is never a developer's machine
])
def test_a_profile_runs_locally_off_cloud_run_with_a_local_environment_or_pytest(
        env: dict[str, str], pytest_loaded: bool, local: bool) -> None:
    base = load_profile("local-debug")
    profile = base.model_copy(update={"env": env, "process": base.process.model_copy(
        update={"pytest_loaded": pytest_loaded})})
    assert profile.runs_locally is local
