"""The WebSocket manager factory and its validation [websocket_core/websocket_manager_factory.py].

    manager = await create_websocket_manager(ctx)   # FactoryInitializationError -> 1011

Quirks kept: the per-user count is never decremented on disconnect; emergency
cleanup frees only stale managers; every non-ValueError (the cap's RuntimeError
included) becomes "WebSocket factory initialization failed unexpectedly".
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from investigation.backend import runtime
from investigation.backend.context import UserExecutionContext
from investigation.backend.environment import IsolatedEnvironment, lowered_environment
from investigation.trace import decide, record_manager_key

if TYPE_CHECKING:
    from investigation.backend.process import Backend

CONNECTION_TIMEOUT_S = 1800.0
EMERGENCY_STALE_S = 300.0
HEALTH_CHECK_INTERVAL_S = 60.0
HEALTH_DETACH_AFTER_S = 1800.0

SSOT_FAILURE_SENTENCE = " This indicates a user context that does not meet SSOT requirements."
UNEXPECTED_FAILURE_SENTENCE = " This may indicate a configuration or resource problem."

KNOWN_ID_PATTERNS = (
    re.compile(r"^ws_(thread|run|req)_\d+_[0-9a-f]{8}$"),
    re.compile(r"^staging-e2e-user-\d+$"),
    re.compile(r"^test-user-[0-9a-f]+$"),
    re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
)


class FactoryInitializationError(Exception):
    """Manager creation failed; the route closes 1011 "Factory SSOT validation failed"."""


class ManagerCapacityError(RuntimeError):
    """The per-user cap refused a manager (raised as such only where a variant asks)."""


@dataclass(slots=True)
class ConnectionRecord:
    connection_id: str
    user_id: str
    connected_at: float


@dataclass(slots=True)
class IsolatedWebSocketManager:
    """One user context's manager: its connections and activity timestamps."""

    user_context: UserExecutionContext
    created_at: float
    last_activity: float
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    is_active: bool = True
    health_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def user_id(self) -> str:
        return self.user_context.user_id

    def add_connection(self, record: ConnectionRecord) -> None:
        if record.user_id != self.user_id:
            raise ValueError(
                f"Connection user {record.user_id!r} does not match manager user {self.user_id!r}"
            )
        self.connections[record.connection_id] = record
        self.last_activity = runtime.current().clock.now()

    def remove_connection(self, connection_id: str) -> None:
        if not self.is_active:
            raise RuntimeError("Manager is no longer active")
        if self.connections.pop(connection_id, None) is not None:
            self.last_activity = runtime.current().clock.now()

    def start_health_checks(self, backend: Backend) -> None:
        """The manager's health task: every 60 s, detach connections registered more than
        30 minutes ago (a timer chain on the event loop, one per manager)."""
        self._schedule_health_check(backend)

    def _schedule_health_check(self, backend: Backend) -> None:
        self.health_timer = backend.call_later(HEALTH_CHECK_INTERVAL_S, self._health_check, backend)

    def _health_check(self, backend: Backend) -> None:
        if not self.is_active:
            return
        now = backend.clock.now()
        for connection_id, record in sorted(self.connections.items()):
            if now - record.connected_at > HEALTH_DETACH_AFTER_S:
                del self.connections[connection_id]
        self._schedule_health_check(backend)

    async def shutdown(self) -> None:
        self.is_active = False
        self.connections.clear()
        if self.health_timer is not None:
            self.health_timer.cancel()
        await asyncio.sleep(0)


def isolation_key(ctx: UserExecutionContext) -> str:
    connection = ctx.websocket_connection_id or ctx.websocket_client_id
    return f"{ctx.user_id}:{connection}" if connection else f"{ctx.user_id}:{ctx.request_id}"


def cleanup_interval_s(environment: str) -> float:
    if environment in {"test", "testing", "ci"}:
        return 30.0
    if environment == "development":
        return 120.0
    return 300.0


class WebSocketManagerFactory:
    """One per backend process: managers by isolation key and per-user counts."""

    def __init__(self, max_managers_per_user: int = 5) -> None:
        self.max_managers_per_user = max_managers_per_user
        self.connection_timeout_seconds = CONNECTION_TIMEOUT_S
        self.managers: dict[str, IsolatedWebSocketManager] = {}
        self.user_manager_count: dict[str, int] = {}
        self.cleanup_interval: float | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self.count_history: list[tuple[float, str, int, str]] = []

    def _set_count(self, user_id: str, count: int, key: str) -> None:
        self.user_manager_count[user_id] = count
        self.count_history.append((runtime.current().clock.now(), user_id, count, key))

    async def create_manager(self, ctx: Any) -> IsolatedWebSocketManager:
        if self._cleanup_task is None:
            self._start_background_cleanup()
        if not isinstance(ctx, UserExecutionContext):
            raise ValueError("user_context must be a UserExecutionContext instance")
        key = record_manager_key(isolation_key(ctx))
        existing = self.managers.get(key)
        if existing is not None:
            if existing.is_active:
                decide("factory.isolation_key", "existing_active")
                return existing
            decide("factory.isolation_key", "released_inactive")
            await self._release(key)
        else:
            decide("factory.isolation_key", "new")
        await self._enforce_cap(ctx.user_id)
        return self._register(key, ctx)

    async def _enforce_cap(self, user_id: str) -> None:
        if self.user_manager_count.get(user_id, 0) < self.max_managers_per_user:
            decide("factory.manager_cap", "below")
            return
        await self._emergency_cleanup(user_id)
        if self.user_manager_count.get(user_id, 0) < self.max_managers_per_user:
            decide("factory.manager_cap", "freed_by_emergency_cleanup")
            return
        decide("factory.manager_cap", "exceeded")
        error_type = ManagerCapacityError if runtime.current().variant.capacity_close_1013 else RuntimeError
        raise error_type(
            f"User {user_id} has reached the maximum number of WebSocket managers "
            f"({self.max_managers_per_user}). Emergency cleanup attempted but limit still "
            "exceeded. This may indicate a resource leak or extremely high connection rate."
        )

    def _register(self, key: str, ctx: UserExecutionContext) -> IsolatedWebSocketManager:
        backend = runtime.current()
        now = backend.clock.now()
        manager = IsolatedWebSocketManager(user_context=ctx, created_at=now, last_activity=now)
        manager.start_health_checks(backend)
        self.managers[key] = manager
        self._set_count(ctx.user_id, self.user_manager_count.get(ctx.user_id, 0) + 1, key)
        return manager

    async def _release(self, key: str) -> None:
        manager = self.managers.pop(key)
        user_id = manager.user_id
        self._set_count(user_id, max(self.user_manager_count.get(user_id, 0) - 1, 0), key)
        await manager.shutdown()

    async def release_manager(self, manager: IsolatedWebSocketManager) -> None:
        """Remove a manager from the factory (only a variant's route calls this)."""
        for key, registered in list(self.managers.items()):
            if registered is manager:
                await self._release(key)
                return

    async def _emergency_cleanup(self, user_id: str) -> None:
        now = runtime.current().clock.now()
        for key, manager in sorted(self.managers.items()):
            if manager.user_id == user_id and _is_stale(manager, now):
                await self._release(key)

    def _start_background_cleanup(self) -> None:
        environment = lowered_environment(runtime.current().env)
        self.cleanup_interval = cleanup_interval_s(environment)
        # a process task: outside any connection's decision trace
        self._cleanup_task = runtime.current().spawn_background(self._background_cleanup(self.cleanup_interval))

    async def _background_cleanup(self, interval: float) -> None:
        clock = runtime.current().clock
        while True:
            await clock.sleep(interval)
            now, timeout = clock.now(), self.connection_timeout_seconds
            for key, manager in sorted(self.managers.items()):
                idle = now - manager.last_activity
                age = now - manager.created_at
                if idle > timeout or (age > timeout and not manager.is_active):
                    await self._release(key)


def _is_stale(manager: IsolatedWebSocketManager, now: float) -> bool:
    return (
        not manager.is_active
        or now - manager.last_activity > EMERGENCY_STALE_S
        or (now - manager.created_at > EMERGENCY_STALE_S and not manager.connections)
    )


# --- validation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvironmentDetection:
    current_env: str
    is_cloud_run: bool
    is_staging: bool
    is_e2e: bool
    relaxed: bool


UNKNOWN_ENVIRONMENT = EnvironmentDetection("unknown", False, False, False, False)


class _UnreadableEnvironment(Exception):
    """Reading the environment raised: the detection falls back to "unknown" (strict)."""


def detect_validation_environment() -> EnvironmentDetection:
    """The staging-safe validation's environment detection (exact compares, no strip),
    with the debug line V1 logs each time it runs."""
    backend = runtime.current()
    detection = validation_environment(backend)
    if detection is not UNKNOWN_ENVIRONMENT and backend.variant.relax_for_staging_gcp_project:
        backend.log(
            "INFO",
            f"VALIDATION ENV DEBUG: env={detection.current_env}, cloud_run={detection.is_cloud_run}, "
            f"staging={detection.is_staging}, e2e={detection.is_e2e}",
        )
    return detection


def validation_environment(backend: Backend) -> EnvironmentDetection:
    """The detection alone, logging nothing: what the decision trace records before the
    validation itself detects (and logs) again. `UNKNOWN_ENVIRONMENT` when a read raised."""
    variant = backend.variant
    try:
        return backend.env.derived(
            _detect,
            variant.cloud_signals,
            variant.e2e_flags,
            variant.relax_for_staging_gcp_project,
            variant.ultra_defensive,
        )
    except _UnreadableEnvironment:
        return UNKNOWN_ENVIRONMENT


def _detect(
    env: IsolatedEnvironment,
    cloud_signals: tuple[str, ...],
    e2e_flags: tuple[str, ...],
    relax_for_staging_gcp_project: bool,
    ultra_defensive: bool,
) -> EnvironmentDetection:
    try:
        current_env = (env.get("ENVIRONMENT", "unknown") or "").lower()
        is_cloud_run = any(bool(env.get(signal)) for signal in cloud_signals)
        is_staging = current_env == "staging"
        is_e2e = any(env.get(flag) == "1" for flag in e2e_flags) or (env.get("E2E_TEST_ENV") == "staging")
    except Exception as error:
        raise _UnreadableEnvironment from error
    relaxed = (
        is_staging
        or is_cloud_run
        or is_e2e
        or _variant_relaxes(env, current_env, relax_for_staging_gcp_project, ultra_defensive)
    )
    return EnvironmentDetection(current_env, is_cloud_run, is_staging, is_e2e, relaxed)


ULTRA_DEFENSIVE_ENVIRONMENTS = frozenset({"staging", "test", "testing", "dev", "development"})
"""The ENVIRONMENT values (lower-cased) that V2's ultra-defensive detection relaxes for (spec 8)."""


def _variant_relaxes(
    env: IsolatedEnvironment, current_env: str, relax_for_staging_gcp_project: bool, ultra_defensive: bool
) -> bool:
    project = env.get("GOOGLE_CLOUD_PROJECT") or ""
    if relax_for_staging_gcp_project and "staging" in project.lower():
        return True
    if ultra_defensive:
        return bool(project) or current_env in ULTRA_DEFENSIVE_ENVIRONMENTS or env.get("PORT") is not None
    return False


def _validate_ssot_user_context_staging_safe(user_context: Any) -> None:
    detection = detect_validation_environment()
    if detection.relaxed:
        _validate_relaxed(user_context)
    else:
        _validate_ssot_user_context(user_context)


def _validate_relaxed(user_context: Any) -> None:
    log = runtime.current().log
    if not isinstance(user_context, UserExecutionContext):
        raise ValueError(
            f"STAGING CRITICAL: Expected UserExecutionContext, got {type(user_context).__name__}"
        )
    user_id = getattr(user_context, "user_id", None)
    if not user_id:
        raise ValueError("STAGING CRITICAL: Missing user_id in UserExecutionContext")
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError(f"STAGING CRITICAL: Invalid user_id format: {user_id!r}")
    for name in ("thread_id", "run_id", "request_id", "websocket_client_id"):
        value = getattr(user_context, name, None)
        if isinstance(value, str) and value.strip():
            known = any(pattern.match(value) for pattern in KNOWN_ID_PATTERNS)
            log("INFO", f"STAGING: {name} accepted ({'known pattern' if known else 'non-empty string'})")
        else:
            log("WARNING", f"STAGING: {name} is blank or not a string: {value!r}")


_ABSENT = object()
STRICT_PRESENCE_FIELDS = ("user_id", "thread_id", "websocket_client_id", "run_id", "request_id")
STRICT_STRING_FIELDS = ("user_id", "thread_id", "run_id", "request_id")


def _validate_ssot_user_context(user_context: Any) -> None:
    if not isinstance(user_context, UserExecutionContext):
        expected = f"{UserExecutionContext.__module__}.UserExecutionContext"
        actual = f"{type(user_context).__module__}.{type(user_context).__name__}"
        raise ValueError(f"SSOT VIOLATION: Expected {expected}, got {actual}")
    try:
        errors = _strict_field_errors(user_context)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"SSOT VALIDATION ERROR: {error}") from error
    if errors:
        raise ValueError("SSOT CONTEXT VALIDATION FAILED: " + "; ".join(errors))


def _strict_field_errors(user_context: Any) -> list[str]:
    missing = []
    for name in STRICT_PRESENCE_FIELDS:  # a loop, not a comprehension: this runs twice per connection
        value = getattr(user_context, name, _ABSENT)
        if value is _ABSENT or (value is None and name != "websocket_client_id"):
            missing.append(name)
    if missing:
        raise ValueError(
            f"SSOT CONTEXT INCOMPLETE: UserExecutionContext missing required attributes: {missing}"
        )
    errors: list[str] = []
    for name in STRICT_STRING_FIELDS:
        value = getattr(user_context, name)
        if not isinstance(value, str):
            errors.append(f"{name} must be string, got {type(value).__name__}: {value!r}")
        elif not value.strip():
            errors.append(f"{name} must be non-empty string, got empty/whitespace: {value!r}")
    client_id = user_context.websocket_client_id
    if client_id is not None and not isinstance(client_id, str):
        errors.append(
            f"websocket_client_id must be None or string, got {type(client_id).__name__}: {client_id!r}"
        )
    elif client_id is not None and not client_id.strip():
        errors.append(
            f"websocket_client_id must be None or non-empty string, got empty/whitespace: {client_id!r}"
        )
    return errors


# --- the public entry point --------------------------------------------------------------


async def create_websocket_manager(user_context: Any) -> IsolatedWebSocketManager:
    """Validate, create, and map every failure the way the original does."""
    backend = runtime.current()
    detection = validation_environment(backend)
    decide("factory.validation_mode", "relaxed" if detection.relaxed else "strict")
    try:
        try:
            _validate_ssot_user_context_staging_safe(user_context)
        except Exception:
            decide("factory.validation", "fail")
            raise
        decide("factory.validation", "pass")
        manager = await backend.factory.create_manager(user_context)
    except ValueError as error:
        text = str(error)
        if "SSOT" in text or "factory" in text.lower():
            decide("factory.result", "FactoryInitializationError")
            raise FactoryInitializationError(
                "WebSocket factory SSOT validation failed: " + text + SSOT_FAILURE_SENTENCE
            ) from error
        decide("factory.result", "ValueError")
        raise
    except ManagerCapacityError:
        decide("factory.result", "ManagerCapacityError")
        raise
    except Exception as error:
        decide("factory.result", "FactoryInitializationError")
        raise FactoryInitializationError(
            "WebSocket factory initialization failed unexpectedly: "
            + str(error)
            + UNEXPECTED_FAILURE_SENTENCE
        ) from error
    decide("factory.result", "created")
    return manager
