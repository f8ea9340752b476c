"""The `investigation` command: profiles listing, simulate --json contract, bad input exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from investigation.cli import main
from investigation.profiles import DEFAULT_PROFILES_DIR, list_profiles, load_profile
from investigation.traffic import auth_environment, b64url, mint_token
from tests.conftest import EPOCH_S

CONNECTION_KEYS = {"index", "client", "user_id", "at_s", "close_code", "close_reason", "decisions", "cause_chain"}


def test_profiles_lists_name_tab_description(capsys) -> None:
    assert main(["profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = [f"{p.name}\t{p.description}" for p in list_profiles()]
    assert lines == expected
    assert all(line.count("\t") == 1 for line in lines)


def test_profiles_dir_adds_and_overrides(tmp_path: Path, capsys) -> None:
    (tmp_path / "zz-extra.toml").write_text('description = "an extra one"\n')
    (tmp_path / "development.toml").write_text('description = "overridden"\n')
    assert main(["profiles", "--profiles-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "zz-extra\tan extra one" in lines
    assert "development\toverridden" in lines
    assert lines == sorted(lines, key=lambda line: line.split("\t")[0])


def test_simulate_json_matches_the_contract(capsys) -> None:
    assert main(["simulate", "staging-e2e", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"profile", "variant", "connections", "summary"}
    assert document["profile"] == "staging-e2e" and document["variant"] == "original"
    assert document["connections"]
    for connection in document["connections"]:
        assert set(connection) == CONNECTION_KEYS
        assert all(set(d) == {"point", "outcome"} for d in connection["decisions"])
        assert all(set(c) == {"type", "message"} for c in connection["cause_chain"])
        assert connection["close_code"] is None or isinstance(connection["close_code"], int)
    assert set(document["summary"]) == {"close_codes"}
    assert {"1011", "1008", "open"} <= set(document["summary"]["close_codes"])


def test_simulate_text_table(capsys) -> None:
    assert main(["simulate", "local-debug"]) == 0
    assert capsys.readouterr().out.startswith("profile local-debug, variant original")


def assert_bad_input(capsys, argv: list[str], *fragments: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_profile_is_bad_input(capsys) -> None:
    assert_bad_input(capsys, ["simulate", "no-such-profile"], "no-such-profile")


def test_bad_profile_file_is_bad_input(tmp_path: Path, capsys) -> None:
    (tmp_path / "broken.toml").write_text('description = "x"\ninstances = "many"\n')
    assert_bad_input(capsys, ["simulate", "broken", "--profiles-dir", str(tmp_path)], "broken.toml", "instances")


def test_unparseable_profile_file_is_bad_input(tmp_path: Path, capsys) -> None:
    (tmp_path / "garbled.toml").write_text("description = \n")
    assert_bad_input(capsys, ["simulate", "garbled", "--profiles-dir", str(tmp_path)], "garbled.toml")


def test_infinite_spacing_is_bad_input_not_a_hang(tmp_path: Path, capsys) -> None:
    (tmp_path / "endless.toml").write_text('description = "x"\n[[clients]]\nname = "a"\nspacing_s = inf\n')
    argv = ["simulate", "endless", "--profiles-dir", str(tmp_path)]
    assert_bad_input(capsys, argv, "endless.toml", "clients[0].spacing_s", "finite")


def test_datetime_claim_is_bad_input_not_a_traceback(tmp_path: Path, capsys) -> None:
    (tmp_path / "dated.toml").write_text(
        'description = "x"\n[[clients]]\nname = "a"\nclaims = {exp = 2026-01-01T00:00:00Z}\n'
    )
    argv = ["simulate", "dated", "--profiles-dir", str(tmp_path)]
    assert_bad_input(capsys, argv, "dated.toml", "clients[0].claims.exp", "JSON")


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_port_out_of_range_is_bad_input(capsys, port: str) -> None:
    assert_bad_input(capsys, ["serve", "local-debug", "--port", port], "--port", "0..65535", port)


def test_a_missing_argument_is_one_line(capsys) -> None:
    assert_bad_input(capsys, ["simulate"], "simulate", "required: profile")


def test_serve_on_a_port_in_use_is_bad_input(capsys) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_bad_input(capsys, ["serve", "local-debug", "--port", str(port)], "--host/--port", f"127.0.0.1:{port}")


@pytest.mark.timeout(30)  # a regression serves forever in-process; the check itself takes well under a second
def test_serve_on_an_empty_host_is_bad_input(capsys) -> None:
    # "" would listen on every interface (0.0.0.0) and announce the URL ws://:PORT/ws
    assert_bad_input(capsys, ["serve", "local-debug", "--host", "", "--port", "0"], "--host", "empty")


def test_serve_help_names_the_query_parameters_the_log_and_how_to_stop(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare words
    # README serve section: the profile-client shim, the instance selector, the log, the stop key
    # and the default port the README's example connects to (ws://127.0.0.1:8765/ws)
    for fragment in ("?client=NAME", "?instance=N", "Ctrl-C", "stderr", "--host HOST address to listen on",
                     "--port PORT default: 8765"):
        assert fragment in shown


def test_serve_on_an_unresolvable_host_is_bad_input(capsys) -> None:
    # .invalid is reserved (RFC 2606): it never resolves
    argv = ["serve", "local-debug", "--host", "no-such-host.invalid", "--port", "0"]
    assert_bad_input(capsys, argv, "--host/--port", "no-such-host.invalid")


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_run_with_fewer_than_one_job_is_bad_input(tmp_path: Path, capsys, jobs: str) -> None:
    out = tmp_path / "out"
    argv = ["run", "--notebook", "01", "--profile", "local-debug", "--jobs", jobs, "--out", str(out)]
    assert_bad_input(capsys, argv, "--jobs", f"got {jobs}")
    assert not out.exists()


def test_run_with_more_jobs_than_the_bound_is_bad_input(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["run", "--notebook", "01", "--profile", "local-debug", "--jobs", "100000", "--out", str(out)]
    assert_bad_input(capsys, argv, "--jobs", "at most 64", "got 100000")
    assert not out.exists()


@pytest.mark.parametrize("argv", [["profiles", "--profiles-dir", ""], ["run", "--notebook", "99", "--out", ""]])
def test_an_empty_path_is_bad_input_not_the_working_directory(capsys, argv: list[str]) -> None:
    # Path("") is ".": --profiles-dir "" read pyproject.toml as a profile, --out "" wrote into the working directory
    assert_bad_input(capsys, argv, f"argument {argv[-2]}", "empty path")


@pytest.mark.parametrize("below", ["", "sub"])
def test_run_out_through_an_existing_file_is_bad_input(tmp_path: Path, capsys, below: str) -> None:
    existing = tmp_path / "artifacts"
    existing.write_text("keep me")
    out = existing / below if below else existing
    argv = ["run", "--notebook", "01", "--profile", "local-debug", "--out", str(out)]
    assert_bad_input(capsys, argv, "--out", str(existing), "not a directory")
    assert existing.read_text() == "keep me"


DEVELOPMENT_SECRET = "test-only-development-secret-0123456789abcdef"


def subprotocol_profile(token: str) -> str:
    """development's setup with one tab presenting ``token`` only as a jwt.* subprotocol and in X-Auth-Token."""
    entry = f"jwt.{b64url(token.encode())}"
    return (
        'description = "token in the offered subprotocols"\n[env]\nENVIRONMENT = "development"\n'
        f'[process]\ndotenv = {{JWT_SECRET_KEY = "{DEVELOPMENT_SECRET}"}}\n'
        f'[[clients]]\nname = "tab"\ntoken = "none"\n'
        f'subprotocols = ["jwt-auth", "{entry}"]\nheaders = {{X-Auth-Token = "{token}"}}\n'
    )


def test_isolate_json_never_shows_a_token_from_subprotocols_or_headers(tmp_path: Path, capsys) -> None:
    development = load_profile("development")
    assert development.process.dotenv == {"JWT_SECRET_KEY": DEVELOPMENT_SECRET}
    auth_env = auth_environment(development)
    client = development.clients[0].model_copy(update={"name": "tab", "user_id": "tab"})
    valid = mint_token(client, 1, auth_env, EPOCH_S)
    forged = mint_token(client.model_copy(update={"token": "bad_signature"}), 1, auth_env, EPOCH_S)
    assert valid and forged and valid != forged
    (tmp_path / "sp-pass.toml").write_text(subprotocol_profile(valid))
    (tmp_path / "sp-fail.toml").write_text(subprotocol_profile(forged))
    argv = ["isolate", "--passing", "sp-pass", "--failing", "sp-fail", "--profiles-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    output = capsys.readouterr().out
    document = json.loads(output)
    assert document["failure"]["close_code"] == 1008
    changed = {change["factor"]: change for change in document["minimal_difference"]}
    assert changed["clients[0].subprotocols"]["failing"][0] == "jwt-auth"
    for token in (valid, forged):
        for shown in (token, b64url(token.encode()), token.split(".")[2]):
            assert shown not in output


@pytest.mark.parametrize("clients", ["", '[[clients]]\nname = "idle"\nconnections = 0\n'])
def test_isolate_from_a_profile_without_traffic_is_bad_input(tmp_path: Path, capsys, clients: str) -> None:
    # the passing run had nothing to align with: a ValueError traceback and exit 1
    (tmp_path / "quiet.toml").write_text(f'description = "no traffic"\n{clients}')
    argv = ["isolate", "--passing", "quiet", "--failing", "staging-e2e", "--profiles-dir", str(tmp_path)]
    assert_bad_input(capsys, argv, f"{tmp_path / 'quiet.toml'}: clients: the passing profile opens no connection")


def test_unknown_variant_is_bad_input(capsys) -> None:
    assert_bad_input(capsys, ["simulate", "local-debug", "--variant", "V9"], "V9", "variant")


@pytest.mark.parametrize("variant", ["original", "V1", "V2", "V3", "V4", "V5"])
def test_every_variant_runs(capsys, variant: str) -> None:
    assert main(["simulate", "local-debug", "--variant", variant, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == variant


def test_a_reader_that_leaves_early_ends_the_output_quietly() -> None:
    """`investigation simulate ... --json | head -c 10`: the JSON (about 77 kB) outgrows the pipe's buffer,
    so writing meets a closed pipe; that is the reader's choice, not a failed run (exit 0, nothing on stderr)."""
    command = [sys.executable, "-m", "investigation.cli", "simulate", "staging-e2e", "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(10) == b'{\n  "profi'
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 0
    assert stderr == b""


def test_python_dash_m_investigation_is_the_command() -> None:
    """`python -m investigation profiles` works where the venv's scripts are not on PATH, with the same output
    as the console script's entry point: one line per shipped profile, name first."""
    completed = subprocess.run([sys.executable, "-m", "investigation", "profiles"], capture_output=True, text=True,
                               timeout=60)
    assert (completed.returncode, completed.stderr) == (0, "")
    names = [line.split("\t")[0] for line in completed.stdout.splitlines()]
    assert names == sorted(path.stem for path in DEFAULT_PROFILES_DIR.glob("*.toml"))
