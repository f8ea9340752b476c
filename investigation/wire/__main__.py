"""Helpers for connecting a plain WebSocket client to `investigation serve`.

    python -m investigation.wire url staging-e2e --client e2e-process-1 --instance 0

prints ws://127.0.0.1:8765/ws?instance=0&token=<a token minted now> for clients
that can set neither headers nor subprotocols (the `websockets` CLI, a browser
address bar): the token travels as `?token=` (spec 5.1) and the instance as
`?instance=` (investigation.wire.app). The token is a test-only value signed
with the profile's test-only secret; it is printed because the client needs it.

`--token-kind auth_service` (the default) mints the auth service's access
token for the client's user; `--token-kind profile` mints the kind the profile
gives the client (the E2E suite's own token lacks token_type and passes only
through the E2E bypass, which needs the E2E headers a URL cannot carry).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlencode

from investigation.profiles import ProfileError, load_profile
from investigation.traffic import auth_environment, mint_token
from investigation.wire.server import LOOPBACK, ws_url

EXIT_BAD_INPUT = 2


def client_url(
    profile_name: str,
    client_name: str | None,
    host: str,
    port: int,
    instance: int | None,
    token_kind: str,
) -> str:
    """The URL with `?token=` (and `?instance=`) for one of the profile's clients."""
    profile = load_profile(profile_name)
    clients = {client.name: client for client in profile.clients}
    if not clients:
        raise ProfileError(profile_name, "clients", "the profile has no clients")
    client = clients[client_name] if client_name is not None else profile.clients[0]
    if token_kind != "profile":
        client = client.model_copy(update={"token": token_kind})
    env = auth_environment(profile.env, profile.process.pytest_loaded, profile.process.dotenv)
    token = mint_token(client, 0, env, time.time())
    query: dict[str, str] = {}
    if instance is not None:
        query["instance"] = str(instance)
    if token is not None:
        query["token"] = token
    return ws_url(host, port) + (f"?{urlencode(query)}" if query else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m investigation.wire", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    url = commands.add_parser("url", help="a ws:// URL carrying a client's token in the query")
    url.add_argument("profile")
    url.add_argument("--client", default=None, help="client name in the profile (default: the first)")
    url.add_argument("--host", default=LOOPBACK)
    url.add_argument("--port", type=int, default=8765)
    url.add_argument("--instance", type=int, default=None, help="pin the backend instance (?instance=)")
    url.add_argument(
        "--token-kind",
        default="auth_service",
        choices=("auth_service", "profile", "e2e_suite", "expired", "bad_signature", "alg_none"),
    )
    args = parser.parse_args(argv)
    try:
        print(client_url(args.profile, args.client, args.host, args.port, args.instance, args.token_kind))
    except (ProfileError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
