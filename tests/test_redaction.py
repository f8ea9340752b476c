"""No artifact of the notebook suite holds a secret or a whole token.

The suite runs a small grid covering every notebook kind present (01 for two
profiles, 04 for its computed pair among them, every single-run notebook once)
into a temporary directory, then scans every file it wrote (executed
notebooks, HTML, index.html, manifest.json) for:

- every secret-like value (name containing SECRET, KEY, TOKEN, PASSWORD or
  CREDENTIAL) of every profile's env and .env, and the backend's built-in test secrets;
- every whole token the profiles' traffic mints (``traffic.mint_token`` over each
  profile's planned connections, at the virtual time each connection starts), as
  sent and as the base64url of a ``jwt.*`` subprotocol.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from investigation.backend import environment
from investigation.notebook_grid import run_notebook_suite
from investigation.profiles import Profile, list_profiles
from investigation.suite import scan_for_secrets
from investigation.traffic import (
    FOREIGN_SECRET,
    UNCONFIGURED_SECRET,
    auth_environment,
    b64url,
    connection_plan,
    mint_token,
)
from tests.conftest import EPOCH_S

SECRET_NAME = re.compile(r"SECRET|KEY|TOKEN|PASSWORD|CREDENTIAL")
GRID_PROFILES = ["local-debug", "staging-e2e"]


def profile_secrets(profile: Profile) -> set[str]:
    values = {**profile.env, **profile.process.dotenv}
    return {value for name, value in values.items() if SECRET_NAME.search(name) and value.strip()}


def minted_tokens(profile: Profile) -> set[str]:
    auth_env = auth_environment(profile)
    tokens = set()
    for planned in connection_plan(profile):
        token = mint_token(planned.client, planned.number, auth_env, EPOCH_S + planned.at_s)
        if token:
            tokens.update({token, b64url(token.encode())})
    return tokens


def forbidden_values() -> set[str]:
    values = {environment.KNOWN_TEST_JWT_SECRET, environment.TEST_E2E_OAUTH_SIMULATION_KEY,
              FOREIGN_SECRET, UNCONFIGURED_SECRET}
    for profile in list_profiles():
        values |= profile_secrets(profile) | minted_tokens(profile)
    return values


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("redaction") / "out"
    failed = run_notebook_suite(None, GRID_PROFILES, jobs=2, out_dir=out, profiles_dir=None, progress=False)
    assert failed == []
    return out


def test_the_scan_covers_secrets_and_tokens_of_every_profile() -> None:
    staging = next(p for p in list_profiles() if p.name == "staging-e2e")
    assert staging.env["JWT_SECRET_STAGING"] in profile_secrets(staging)
    assert len(minted_tokens(staging)) == 2 * sum(client.connections for client in staging.clients)


def test_the_grid_covers_every_notebook_kind(artifacts: Path) -> None:
    notebooks = sorted(path.stem for path in (Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    produced = sorted(path.name for path in artifacts.iterdir() if path.is_dir())
    assert produced == notebooks
    kinds = {path.suffix for path in artifacts.rglob("*") if path.is_file()}
    assert kinds == {".ipynb", ".html", ".json"}


def test_no_artifact_holds_a_secret_or_whole_token(artifacts: Path) -> None:
    assert scan_for_secrets(artifacts, sorted(forbidden_values())) == []
