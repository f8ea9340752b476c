"""A fixed set of hostile inputs: tokens sent over the real route, user contexts injected at its manager step.

A candidate change that stops the 1011s by accepting more is not a fix if it
also accepts what it should refuse. This module names every hostile input once
and runs it under a variant:

- user contexts (invalid or placeholder fields, a foreign context class) are
  injected at the route's manager step (spec 1 step 8), those of the backend's
  class built with its constructor bypassed (the constructor refuses most of
  them, spec 2: see :func:`constructor_refuses`), in a backend process whose
  environment is taken from a shipped profile: a staging-like one
  (``staging-cloud-run``, relaxed validation in the original) and a strict one
  (``staging-no-cloud-signal``, strict validation in the original). A context
  is "accepted" when the route goes on with a manager: the factory's, or the
  emergency stub it falls back to when ``create_websocket_manager`` raises
  anything but FactoryInitializationError (1011) or ManagerCapacityError (1013)
  twice. What ``create_websocket_manager`` itself raised is kept next to it;
- tokens (bad signature, ``alg: none``, expired, forged E2E headers) go through
  a one-connection profile built from each deployed profile's environment (see
  :func:`token_environments`: every shipped profile that is not local, each
  distinct environment once) and are "accepted" when authentication succeeds.

    outcomes = adversarial_outcomes("V2")
    [o.member for o in outcomes if o.accepted]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from investigation.backend import route, runtime
from investigation.backend.context import InvalidContextError, UserExecutionContext
from investigation.backend.factory import create_websocket_manager
from investigation.backend.foreign_contexts import ModelsUserExecutionContext, SupervisorUserExecutionContext
from investigation.backend.process import Backend
from investigation.backend.variants import get_variant
from investigation.clock import EPOCH_MS, SeededRandomness, VirtualClock, outside_event_loop, virtual_loop
from investigation.profiles import DEFAULT_PROFILES_DIR, Profile, list_profiles, load_profile, profile_from_dict
from investigation.report import format_table
from investigation.simulate import simulate
from investigation.trace import recording

T = TypeVar("T")

#: Profiles whose process environment the context cases run in, and why.
CONTEXT_ENVIRONMENTS: dict[str, str] = {
    "staging-cloud-run": "staging-like (the original validates relaxed)",
    "staging-no-cloud-signal": "strict (the original validates strictly)",
}
#: A profile's traffic, not its environment: one_connection_profile replaces these fields, token_environments
#: ignores them when it compares environments.
TRAFFIC_FIELDS = frozenset({"name", "description", "clients", "instances", "routing", "duration_s"})

VICTIM_USER_ID = "104729384756102938475"
E2E_SUITE_HEADERS: dict[str, str] = {
    "X-Test-Type": "E2E",
    "X-Test-Environment": "staging",
    "X-E2E-Test": "true",
    "X-Test-Mode": "true",
}
VALID_CONTEXT_FIELDS: dict[str, Any] = {
    "user_id": VICTIM_USER_ID,
    "thread_id": "thread_websocket_factory_1757365610210_1_bed604d6",
    "run_id": "run_websocket_factory_1757365610210_2_c0335ab3",
    "request_id": "req_websocket_factory_1757365610210_3_a9dbe4f2",
    "websocket_client_id": "ws_10472938_1757365610_1a2b3c4d",
}


@dataclass(frozen=True)
class ContextCase:
    """A user context that manager creation should refuse."""

    name: str
    description: str
    build: Callable[[], Any]


@dataclass(frozen=True)
class TokenCase:
    """A connection whose authentication should fail."""

    name: str
    description: str
    token: str
    headers: Mapping[str, str]
    unsigned: bool = False


@dataclass(frozen=True)
class AdversarialOutcome:
    """What one member of the set (a case in one environment) got under one variant."""

    member: str
    case: str
    environment: str
    kind: str
    accepted: bool
    outcome: str
    unsigned: bool = False
    route_step: str = ""
    """Context members: the route's manager step, the manager it went on with ("factory",
    "factory_on_retry", "emergency_stub") or its close ("1011 Factory SSOT validation failed")."""
    constructor_refuses: bool = False
    """Context members: the backend's context constructor refuses the member's field values (spec 2)."""


def unchecked_context(**overrides: Any) -> UserExecutionContext:
    """A UserExecutionContext whose constructor checks never ran (as unpickling or copy.copy give).

    The constructor refuses blank and placeholder ids itself; the factory's validation is
    the last line of defence for a context that reached it some other way.
    """
    values: dict[str, Any] = {
        "db_session": None,
        "created_at": datetime.fromtimestamp(EPOCH_MS / 1000, UTC),
        "agent_context": {},
        "audit_metadata": {},
        "operation_depth": 0,
        "parent_request_id": None,
        **VALID_CONTEXT_FIELDS,
        **overrides,
    }
    context = object.__new__(UserExecutionContext)
    for field in fields(UserExecutionContext):
        object.__setattr__(context, field.name, values[field.name])
    return context


CONTEXT_CASES: tuple[ContextCase, ...] = (
    ContextCase("blank thread_id", "thread_id is whitespace", lambda: unchecked_context(thread_id="   ")),
    ContextCase("missing run_id", "run_id is None", lambda: unchecked_context(run_id=None)),
    ContextCase("empty request_id", "request_id is the empty string", lambda: unchecked_context(request_id="")),
    ContextCase(
        "blank websocket_client_id", "websocket_client_id is whitespace",
        lambda: unchecked_context(websocket_client_id="  "),
    ),
    ContextCase(
        "non-string user_id", "user_id is an int (a JSON number sub)",
        lambda: unchecked_context(user_id=int(VICTIM_USER_ID)),
    ),
    ContextCase(
        "placeholder ids", "ids the context constructor forbids: placeholder, default, registry, temp",
        lambda: unchecked_context(user_id="placeholder", thread_id="default", run_id="registry", request_id="temp"),
    ),
    ContextCase(
        "foreign class (supervisor)", "the supervisor package's UserExecutionContext",
        lambda: SupervisorUserExecutionContext(**VALID_CONTEXT_FIELDS),
    ),
    ContextCase(
        "foreign class (models)", "the models package's UserExecutionContext",
        lambda: ModelsUserExecutionContext(**VALID_CONTEXT_FIELDS),
    ),
)

TOKEN_CASES: tuple[TokenCase, ...] = (
    TokenCase("bad signature", "HS256 token signed with a foreign secret", "bad_signature", {}),
    TokenCase("alg none", "unsigned token (alg: none)", "alg_none", {}, unsigned=True),
    TokenCase("expired", "validly signed token that expired 15 minutes ago", "expired", {}),
    TokenCase(
        "forged E2E headers", "bad-signature token claiming a real user, sent with the E2E suite's headers",
        "bad_signature", E2E_SUITE_HEADERS,
    ),
    TokenCase(
        "alg none + E2E headers", "unsigned token claiming a real user, sent with the E2E suite's headers",
        "alg_none", E2E_SUITE_HEADERS, unsigned=True,
    ),
)


def context_outcome(environ: Mapping[str, str], variant: str, context_case: ContextCase) -> str:
    """"accepted" if create_websocket_manager returned a manager, else the exception's type name."""

    async def attempt() -> str:
        try:
            await create_websocket_manager(context_case.build())
            return "accepted"
        except Exception as error:
            return type(error).__name__

    return _in_fresh_backend(environ, variant, attempt)


@dataclass(frozen=True)
class ManagerStep:
    """What the route's manager step did with a context: the manager it went on with, or its close."""

    manager: str | None
    close: str | None

    @property
    def let_through(self) -> bool:
        return self.close is None and self.manager is not None


def route_manager_step(environ: Mapping[str, str], variant: str, context_case: ContextCase) -> ManagerStep:
    """The context through the route's manager step (spec 1 step 8) of a fresh process.

    The route's own code decides: FactoryInitializationError closes 1011, ManagerCapacityError
    1013, any other exception is retried once and then replaced by the emergency stub. An
    exception out of the step meets the endpoint's outer handler (spec 1 step 13), as in the route.
    """

    async def attempt() -> ManagerStep:
        socket = _ManagerStepSocket()
        with recording() as recorder:
            session = route._Session(socket, route.route_environment(), e2e=False)
            try:
                await session._create_manager(context_case.build())
            except Exception:
                await route._send_internal_error(socket)
        found = {decision.point: decision.outcome for decision in recorder.decisions}
        return ManagerStep(found.get("route.manager"), found.get("route.close"))

    return _in_fresh_backend(environ, variant, attempt)


class _ManagerStepSocket:
    """The socket of a connection that reached the manager step: frames and close are dropped."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.closed = False

    @property
    def connected(self) -> bool:
        return not self.closed

    async def accept(self, subprotocol: str | None) -> None:
        return None

    async def send_json(self, frame: dict[str, Any]) -> None:
        return None

    async def receive_text(self) -> str:
        raise route.ClientDisconnected(1006)

    async def close(self, code: int, reason: str) -> None:
        self.closed = True


def constructor_refuses(environ: Mapping[str, str], variant: str, context_case: ContextCase) -> bool:
    """Whether UserExecutionContext's constructor (spec 2) refuses the case's field values in a fresh process.

    False for a context of another class: its own constructor built it.
    """
    context = context_case.build()
    if type(context) is not UserExecutionContext:
        return False
    values = {field.name: getattr(context, field.name) for field in fields(UserExecutionContext) if field.init}

    async def attempt() -> bool:
        try:
            UserExecutionContext(**values)
        except InvalidContextError:
            return True
        return False

    return _in_fresh_backend(environ, variant, attempt)


def _in_fresh_backend(environ: Mapping[str, str], variant: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` inside a fresh backend process with `environ`, under `variant`."""
    clock = VirtualClock()
    event_loop = virtual_loop(clock)
    backend = Backend(environ, clock=clock, randomness=SeededRandomness(0), variant=get_variant(variant))

    async def inside() -> T:
        token = backend.activate()
        try:
            return await attempt()
        finally:
            runtime.deactivate(token)
            await backend.shutdown()

    try:
        return event_loop.run_until_complete(inside())
    finally:
        event_loop.close()


@cache
def token_environments() -> tuple[str, ...]:
    """The shipped profiles whose environment the token cases run in, sorted by name.

    Every profile of data/profiles that is not local (``Profile.runs_locally``): staging and
    production deployments, with ENVIRONMENT set right, mis-set or unset alike. Profiles
    whose environment (everything but their traffic) is identical count once, under the
    first name: staging-e2e runs in staging-cloud-run's environment.
    """
    kept: dict[str, dict[str, Any]] = {}
    for profile in sorted(list_profiles(DEFAULT_PROFILES_DIR), key=lambda p: p.name):
        environment = profile.model_dump(exclude=set(TRAFFIC_FIELDS))
        if not profile.runs_locally and environment not in kept.values():
            kept[profile.name] = environment
    return tuple(kept)


def one_connection_profile(environment: str, token_case: TokenCase) -> Profile:
    """The deployed profile `environment` with its traffic replaced by one hostile connection."""
    deployed = load_profile(environment)
    data = deployed.model_dump(exclude=set(TRAFFIC_FIELDS))
    data["description"] = f"{token_case.description}, against {environment}"
    data["clients"] = [
        {
            "name": "attacker",
            "user_id": VICTIM_USER_ID,
            "token": token_case.token,
            "headers": dict(token_case.headers),
            "hold_s": 2.0,
        }
    ]
    return profile_from_dict(f"{environment}-{token_case.name}", data, source="<adversarial>")


def token_outcome(environment: str, variant: str, token_case: TokenCase) -> str:
    """The auth result of the one hostile connection ("success" means accepted)."""
    run = simulate(one_connection_profile(environment, token_case), variant)
    return run.connections[0].outcome("auth.result") or "no auth result"


@cache
def adversarial_outcomes(variant: str) -> tuple[AdversarialOutcome, ...]:
    """Every member of the adversarial set under `variant`, sorted by member name."""
    return outside_event_loop(_run_members, variant)


def _run_members(variant: str) -> tuple[AdversarialOutcome, ...]:
    outcomes = [_context_member(environment, variant, case) for case in CONTEXT_CASES for environment in CONTEXT_ENVIRONMENTS]
    outcomes += [_token_member(environment, variant, case) for case in TOKEN_CASES for environment in token_environments()]
    return tuple(sorted(outcomes, key=lambda outcome: outcome.member))


def _context_member(environment: str, variant: str, case: ContextCase) -> AdversarialOutcome:
    environ = load_profile(environment).env
    step = route_manager_step(environ, variant, case)
    return AdversarialOutcome(
        member=f"context: {case.name} [{environment}]",
        case=case.name,
        environment=environment,
        kind="context",
        accepted=step.let_through,
        outcome=context_outcome(environ, variant, case),
        route_step=step.close or step.manager or "no manager step",
        constructor_refuses=constructor_refuses(environ, variant, case),
    )


def _token_member(environment: str, variant: str, case: TokenCase) -> AdversarialOutcome:
    outcome = token_outcome(environment, variant, case)
    return AdversarialOutcome(
        member=f"token: {case.name} [{environment}]",
        case=case.name,
        environment=environment,
        kind="token",
        accepted=outcome == "success",
        outcome=outcome,
        unsigned=case.unsigned,
    )


def accepted_members(variant: str) -> frozenset[str]:
    """Names of the members `variant` accepts."""
    return frozenset(outcome.member for outcome in adversarial_outcomes(variant) if outcome.accepted)


def unsigned_token_accepted(variant: str) -> bool:
    """Whether an unsigned (alg none) token authenticates in any staging or production environment."""
    return any(outcome.accepted and outcome.unsigned for outcome in adversarial_outcomes(variant))


def adversarial_table(variants: tuple[str, ...]) -> str:
    """Member x variant: "ACCEPTED", or the refusal (auth error code, or exception type and the route's close).

    A context the route lets through only after create_websocket_manager raised says so:
    ``ACCEPTED (ValueError, stub manager)``.
    """
    by_variant = {variant: {o.member: o for o in adversarial_outcomes(variant)} for variant in variants}
    members = sorted(by_variant[variants[0]])
    rows = [
        (member, *(_cell(by_variant[variant][member]) for variant in variants))
        for member in members
    ]
    totals = ("accepted", *(f"{len(accepted_members(v))} of {len(members)}" for v in variants))
    return format_table(("member", *variants), [*rows, totals])


ROUTE_MANAGERS: dict[str, str] = {"emergency_stub": "stub manager", "factory_on_retry": "manager on retry"}


def _cell(outcome: AdversarialOutcome) -> str:
    if outcome.kind != "context" or not outcome.route_step:
        return "ACCEPTED" if outcome.accepted else outcome.outcome
    if outcome.accepted:
        manager = ROUTE_MANAGERS.get(outcome.route_step)
        return f"ACCEPTED ({outcome.outcome}, {manager})" if manager else "ACCEPTED"
    return f"{outcome.outcome} (close {outcome.route_step.partition(' ')[0]})"
