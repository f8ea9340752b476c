"""The client side of a profile: tokens, headers and the schedule of connections.

    plan = connection_plan(profile)          # every connection, in start order
    request = build_request(plan[0], env, now_s=0.0)

Tokens are minted with pyjwt the way each kind of client really gets them (the
auth service's access token, the E2E suite's own token, broken ones for the
hostile cases), at the virtual time the connection starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt

from investigation.backend.auth import ISSUER, resolve_jwt_secret
from investigation.backend.environment import IsolatedEnvironment

ACCESS_TOKEN_LIFETIME_S = 900
FOREIGN_SECRET = "not-the-auth-service-secret-0123456789abcdef"
UNCONFIGURED_SECRET = "auth-service-has-no-secret-configured-000000"


@dataclass(frozen=True)
class PlannedConnection:
    """One connection a client will open."""

    index: int
    client_index: int
    client: Any
    number: int
    at_s: float


@dataclass(frozen=True)
class ConnectionRequest:
    """What the server sees of a connection attempt."""

    headers: dict[str, str]
    query: dict[str, str]
    subprotocols: tuple[str, ...]
    token: str | None


def connection_plan(profile: Any) -> list[PlannedConnection]:
    """Every connection of every client, sorted by start time, then client, then number."""
    planned = [
        (client.start_s + number * client.spacing_s, client_index, number, client)
        for client_index, client in enumerate(profile.clients)
        for number in range(client.connections)
    ]
    planned.sort(key=lambda item: (item[0], item[1], item[2]))
    return [
        PlannedConnection(index, client_index, client, number, at_s)
        for index, (at_s, client_index, number, client) in enumerate(planned)
    ]


def _jti(client_name: str, number: int) -> str:
    return hashlib.sha256(f"{client_name}:{number}".encode()).hexdigest()[:32]


def _base_claims(client: Any, number: int, issued_at: int) -> dict[str, Any]:
    return {
        "sub": client.user_id,
        "email": f"{client.user_id}@example.test",
        "permissions": ["user"],
        "iat": issued_at,
        "exp": issued_at + ACCESS_TOKEN_LIFETIME_S,
        "iss": ISSUER,
        "jti": _jti(client.name, number),
    }


def _auth_service_secret(env: IsolatedEnvironment) -> str:
    try:
        return resolve_jwt_secret(env)
    except Exception:
        return UNCONFIGURED_SECRET


def b64url(data: bytes) -> str:
    """Unpadded base64url text, as JWT parts and `jwt.*` subprotocols carry it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(client: Any, number: int, env: IsolatedEnvironment, now_s: float) -> str | None:
    """The token this client presents on its `number`-th connection, or None."""
    kind = client.token
    if kind == "none":
        return None
    if kind == "literal":
        return str(client.token_literal)
    issued_at = int(now_s)
    claims = _base_claims(client, number, issued_at)
    if kind == "e2e_suite":
        claims["type"] = "access"
    else:
        claims.update({"token_type": "access", "aud": "netra-platform"})
    if kind == "expired":
        claims.update({"iat": issued_at - 2 * ACCESS_TOKEN_LIFETIME_S, "exp": issued_at - ACCESS_TOKEN_LIFETIME_S})
    claims.update(dict(client.claims))
    if kind == "alg_none":
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{b64url(json.dumps(claims).encode())}."
    secret = FOREIGN_SECRET if kind == "bad_signature" else _auth_service_secret(env)
    return jwt.encode(claims, secret, algorithm="HS256")


def build_request(planned: PlannedConnection, env: IsolatedEnvironment, now_s: float) -> ConnectionRequest:
    """Headers, query and subprotocols of one connection attempt."""
    client = planned.client
    token = mint_token(client, planned.number, env, now_s)
    headers = {name.lower(): value for name, value in client.headers.items()}
    subprotocols = list(client.subprotocols)
    query: dict[str, str] = {}
    if token is not None and client.token_via == "bearer":
        headers["authorization"] = f"Bearer {token}"
    elif token is not None and client.token_via == "subprotocol":
        subprotocols.append(f"jwt.{b64url(token.encode())}")
    elif token is not None and client.token_via == "query":
        query["token"] = token
    if subprotocols:
        headers["sec-websocket-protocol"] = ", ".join(subprotocols)
    return ConnectionRequest(headers, query, tuple(subprotocols), token)


def instance_for(planned: PlannedConnection, routing: str, instances: int) -> int:
    """Which backend instance serves the connection."""
    if routing == "round_robin":
        return planned.index % instances
    return planned.client_index % instances


def auth_environment(profile: Any) -> IsolatedEnvironment:
    """The auth service's view of the profile's deployment environment (it shares the secrets):
    its variables, whether pytest is loaded, and its .env file."""
    return IsolatedEnvironment(profile.env, pytest_loaded=profile.process.pytest_loaded, dotenv=profile.process.dotenv)
