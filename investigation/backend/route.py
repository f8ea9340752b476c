"""The `/ws` route and its close codes [routes/websocket.py].

    await websocket_endpoint(socket)   # inside Backend.handle()

The route talks to a `ServerSocket`: the in-process simulation and the real
ASGI app (wire mode) both provide one, so one route serves both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette import status

from investigation.backend import runtime
from investigation.backend.auth import (
    _offered_subprotocols,
    authenticate_websocket,
    create_defensive_user_execution_context,
)
from investigation.backend.context import UserExecutionContext
from investigation.backend.environment import IsolatedEnvironment, lowered_environment
from investigation.backend.factory import (
    ConnectionRecord,
    FactoryInitializationError,
    ManagerCapacityError,
    create_websocket_manager,
)
from investigation.backend.ids import connection_client_id
from investigation.trace import decide, not_recording, record_failure, record_user, tally

AUTH_FAILED_REASON = "SSOT Auth failed"
FACTORY_FAILED_REASON = "Factory SSOT validation failed"
STARTUP_INCOMPLETE_REASON = "Service startup incomplete"
INTERNAL_ERROR_REASON = "Internal error"
CAPACITY_REASON = "Service temporarily unavailable"
WS_1013_TRY_AGAIN_LATER = 1013

FACTORY_INIT_MESSAGE = (
    "WebSocket factory initialization failed due to SSOT validation error. "
    "This indicates a system configuration issue."
)
ROUTE_E2E_HEADERS: dict[str, frozenset[str]] = {
    "x-test-type": frozenset({"e2e", "integration"}),
    "x-test-environment": frozenset({"staging", "test"}),
    "x-e2e-test": frozenset({"true", "1", "yes"}),
    "x-test-mode": frozenset({"true", "1", "test"}),
}
ROUTE_E2E_ENV_FLAGS = ("E2E_TESTING", "PYTEST_RUNNING", "STAGING_E2E_TEST")
DEPLOYED = frozenset({"staging", "production"})
HEARTBEAT_INTERVALS_S = {"staging": 30.0, "production": 25.0}
DEFAULT_HEARTBEAT_S = 45.0
MAX_MESSAGE_SIZE = 8192
STARTUP_POLL_S = 0.5
STARTUP_WAIT_S = 30.0
DEPENDENCY_POLLS = 3
MAX_ROUTING_FAILURES = 5
AGENT_DEPENDENCIES = ("agent_supervisor", "thread_service")


class ClientDisconnected(Exception):
    """The client went away (the socket's receive or send saw it)."""

    def __init__(self, code: int = 1006) -> None:
        super().__init__(f"client disconnected ({code})")
        self.code = code


class AuthenticationFailure(Exception):
    """Auth failed; the message carries the auth error code."""


class ServerSocket(Protocol):
    """What the route needs of a WebSocket."""

    headers: Mapping[str, str]
    query: Mapping[str, str]

    @property
    def connected(self) -> bool: ...

    async def accept(self, subprotocol: str | None) -> None: ...

    async def send_json(self, frame: dict[str, Any]) -> None: ...

    async def receive_text(self) -> str: ...

    async def close(self, code: int, reason: str) -> None: ...


class EmergencyStubManager:
    """The in-route stand-in when the factory fails twice with a non-factory error."""

    is_active = True

    def __init__(self, user_context: UserExecutionContext) -> None:
        self.user_context = user_context

    def add_connection(self, record: ConnectionRecord) -> None:
        return None

    def remove_connection(self, connection_id: str) -> None:
        return None


def route_environment() -> str:
    return lowered_environment(runtime.current().env)


def detect_route_e2e(headers: Mapping[str, str]) -> bool:
    """The route's own E2E detection (only used to skip the startup wait)."""
    for name, accepted in ROUTE_E2E_HEADERS.items():
        if headers.get(name, "").lower() in accepted:
            return True
    return runtime.current().env.derived(_route_e2e_environment)


def _route_e2e_environment(env: IsolatedEnvironment) -> bool:
    if any(env.get(flag) == "1" for flag in ROUTE_E2E_ENV_FLAGS):
        return True
    return env.get("E2E_OAUTH_SIMULATION_KEY") is not None or env.get("E2E_TEST_ENV") == "staging"


def error_frame(error_code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "error_message",
        "error_code": error_code,
        "error_message": message,
        "details": details or {},
        "timestamp": runtime.current().clock.now(),
        "recovery_suggestions": None,
    }


async def _close(websocket: ServerSocket, code: int, reason: str) -> None:
    decide("route.close", f"{code} {reason}")
    await websocket.close(code, reason)


async def websocket_endpoint(websocket: ServerSocket) -> None:
    """Accept, authenticate, create the manager, gate, register, then serve messages."""
    backend = runtime.current()
    environment = route_environment()
    decide("route.environment", environment)
    e2e = detect_route_e2e(websocket.headers)
    decide("route.e2e_detected", "yes" if e2e else "no")
    subprotocol = "jwt-auth" if "jwt-auth" in _offered_subprotocols(websocket.headers) else None
    decide("route.subprotocol", subprotocol or "none")
    await websocket.accept(subprotocol)
    session = _Session(websocket, environment, e2e)
    try:
        await session.run()
    except ClientDisconnected as gone:
        backend.log("INFO", f"WebSocket disconnected: {gone.code}")
        decide("route.message_loop", "client_disconnected")
    except Exception as error:
        backend.log("ERROR", f"Unhandled WebSocket error: {type(error).__name__}: {error}")
        record_failure(error)
        if websocket.connected:
            await _send_internal_error(websocket)
    finally:
        await session.finish()


async def _send_internal_error(websocket: ServerSocket) -> None:
    frame = {
        "type": "error",
        "data": {
            "error": "Internal server error",
            "message": "An unexpected error occurred. Please reconnect.",
            "code": "INTERNAL_ERROR",
        },
    }
    try:
        await websocket.send_json(frame)
        await runtime.current().clock.sleep(0.1)
        await _close(websocket, status.WS_1011_INTERNAL_ERROR, INTERNAL_ERROR_REASON)
    except ClientDisconnected:
        runtime.current().log("INFO", "client gone before the internal-error close")


class _Session:
    """One connection's journey through the route."""

    def __init__(self, websocket: ServerSocket, environment: str, e2e: bool) -> None:
        self.websocket = websocket
        self.environment = environment
        self.e2e = e2e
        self.backend = runtime.current()
        self.manager: Any = None
        self.connection_id: str | None = None
        self.established = False
        self.heartbeat_timer: asyncio.TimerHandle | None = None
        self.heartbeat: asyncio.Task[None] | None = None
        self.pong_received = True
        self.agent_handler = False
        self.deployed = environment in DEPLOYED
        self.heartbeat_interval = HEARTBEAT_INTERVALS_S.get(environment, DEFAULT_HEARTBEAT_S)

    async def run(self) -> None:
        auth = await authenticate_websocket(self.websocket.headers, self.websocket.query)
        if not auth.success or auth.user_context is None:
            await self._refuse_auth(auth.error_code, auth.error_message, auth.error)
            return
        context = auth.user_context
        record_user(context.user_id)
        if not await self._create_manager(context):
            return
        if not await self._startup_gate():
            return
        await self._check_dependencies()
        await self._register(context)
        await self._message_loop(context)

    async def _refuse_auth(self, code: str | None, message: str | None, error: BaseException | None) -> None:
        failure = AuthenticationFailure(f"{code or 'AUTH_FAILED'}: {message}")
        failure.__cause__ = error
        record_failure(failure)
        await self.websocket.send_json(error_frame(code or "AUTH_FAILED", message or "Authentication failed"))
        await self.backend.clock.sleep(0.1)
        await _close(self.websocket, status.WS_1008_POLICY_VIOLATION, AUTH_FAILED_REASON)

    async def _create_manager(self, context: UserExecutionContext) -> bool:
        try:
            self.manager = await create_websocket_manager(context)
            decide("route.manager", "factory")
            return True
        except FactoryInitializationError as error:
            await self._refuse_factory(context, error)
        except ManagerCapacityError as error:
            record_failure(error)
            await self.websocket.send_json(error_frame("CAPACITY_EXCEEDED", str(error)))
            await _close(self.websocket, WS_1013_TRY_AGAIN_LATER, CAPACITY_REASON)
        except Exception as error:
            self.backend.log("WARNING", f"manager creation failed, retrying once: {error}")
            await self._retry_manager(context)
            return True
        return False

    async def _retry_manager(self, context: UserExecutionContext) -> None:
        try:
            self.manager = await create_websocket_manager(context)
            decide("route.manager", "factory_on_retry")
        except Exception as error:
            self.backend.log("ERROR", f"manager retry failed, using emergency stub: {error}")
            self.manager = EmergencyStubManager(context)
            decide("route.manager", "emergency_stub")

    async def _refuse_factory(self, context: UserExecutionContext, error: FactoryInitializationError) -> None:
        record_failure(error)
        details = {
            "error_type": type(error).__name__,
            "error_message": str(error),
            "user_id": f"{context.user_id[:8]}...",
            "environment": self.environment,
            "ssot_compliance_issue": True,
            "prevention_measures": _context_facts(context),
        }
        await self.websocket.send_json(error_frame("FACTORY_INIT_FAILED", FACTORY_INIT_MESSAGE, details))
        await _close(self.websocket, status.WS_1011_INTERNAL_ERROR, FACTORY_FAILED_REASON)

    async def _startup_gate(self) -> bool:
        if self.backend.startup_complete() or not self.deployed:
            decide("route.startup_gate", "not_applicable")
            return True
        if self.e2e:
            decide("route.startup_gate", "skipped_e2e")
            return True
        waited = 0.0
        while waited < STARTUP_WAIT_S and not self.backend.startup_complete():
            await self.backend.clock.sleep(STARTUP_POLL_S)
            waited += STARTUP_POLL_S
        if self.backend.startup_complete():
            decide("route.startup_gate", "completed_while_waiting")
            return True
        decide("route.startup_gate", "timeout")
        await self.websocket.send_json(error_frame("STARTUP_INCOMPLETE", "Service startup incomplete"))
        await _close(self.websocket, status.WS_1011_INTERNAL_ERROR, STARTUP_INCOMPLETE_REASON)
        return False

    async def _check_dependencies(self) -> None:
        absent = [name for name in AGENT_DEPENDENCIES if not self.backend.dependency_present(name)]
        missing = [name for name in absent if not await self._arrives_while_polling(name)]
        if missing:
            decide("route.dependencies", "fallback_handler")
            await self.websocket.send_json(
                {"type": "system_message", "data": {"event": "fallback_handler", "missing": missing}}
            )
            return
        decide("route.dependencies", "agent_handler")
        self.agent_handler = True

    async def _arrives_while_polling(self, name: str) -> bool:
        """An absent dependency: deployed, the route polls for it before giving up."""
        if self.deployed:
            for _ in range(DEPENDENCY_POLLS):
                await self.backend.clock.sleep(STARTUP_POLL_S)
                if self.backend.dependency_present(name):
                    return True
        return False

    async def _register(self, context: UserExecutionContext) -> None:
        clock = self.backend.clock
        self.connection_id = context.websocket_client_id
        record = ConnectionRecord(str(self.connection_id), context.user_id, clock.now())
        self.manager.add_connection(record)
        self.established = True
        if self.deployed:
            await clock.sleep(0.1)
            if not self.websocket.connected:
                await clock.sleep(0.05)
        await self._send_ping()
        self.heartbeat_timer = self.backend.call_later(self.heartbeat_interval, self._heartbeat_due)
        await self.websocket.send_json(self._welcome(context))
        if self.deployed:
            await clock.sleep(0.05)
        if not self.websocket.connected:
            decide("route.registration", "disconnected")
            raise ClientDisconnected(1006)
        decide("route.registration", "registered")

    def _welcome(self, context: UserExecutionContext) -> dict[str, Any]:
        now = self.backend.clock.now()
        return {
            "type": "system_message",
            "data": {
                "event": "connection_established",
                "connection_id": self.connection_id,
                "user_id": context.user_id,
                "server_time": datetime.fromtimestamp(now, UTC).isoformat(),
                "connection_ready": True,
                "environment": self.environment,
                "startup_complete": self.backend.startup_complete(),
                "config": {"heartbeat_interval": self.heartbeat_interval, "max_message_size": MAX_MESSAGE_SIZE},
                "factory_pattern_enabled": True,
            },
            "timestamp": now,
            "server_id": None,
            "correlation_id": None,
        }

    async def _send_ping(self) -> None:
        self.pong_received = False
        await self.websocket.send_json({"type": "ping", "data": {"timestamp": self.backend.clock.now()}})

    def _heartbeat_due(self) -> None:
        """The heartbeat's first interval is a process timer: a connection that ends before
        it never starts the heartbeat task (most connections of a short-lived client)."""
        self.heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        """After the first ping (sent at registration): one every interval while pongs come back."""
        try:
            while self.websocket.connected and self.pong_received:
                await self._send_ping()
                await self.backend.clock.sleep(self.heartbeat_interval)
        except ClientDisconnected:
            return

    async def _message_loop(self, context: UserExecutionContext) -> None:
        failures = 0
        while failures < MAX_ROUTING_FAILURES:
            try:
                async with asyncio.timeout(self.heartbeat_interval):
                    text = await self.websocket.receive_text()
            except TimeoutError:
                continue
            routed = await self._route_message(text, context)
            failures = 0 if routed else failures + 1
        decide("route.message_loop", "routing_failures")
        self.backend.log("WARNING", "too many routing failures; ending the connection")

    async def _route_message(self, text: str, context: UserExecutionContext) -> bool:
        try:
            message = json.loads(text)
        except ValueError:
            return False
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            return False
        if kind == "pong":
            self.pong_received = True
            return True
        if kind in {"user_message", "chat"}:
            await self.websocket.send_json({"type": "ack", "data": {"received_type": kind}})
            return True
        if kind == "ping":
            await self.websocket.send_json({"type": "pong", "data": {"timestamp": self.backend.clock.now()}})
            return True
        if kind == "start_agent":
            return await self._start_agent(context)
        return False

    async def _start_agent(self, context: UserExecutionContext) -> bool:
        if not self.agent_handler:
            await self.websocket.send_json(
                {"type": "system_message", "data": {"event": "agent_unavailable"}}
            )
            return True
        client_id = connection_client_id(context.user_id, self.backend.clock, self.backend.randomness)
        try:
            with not_recording():
                agent_context = create_defensive_user_execution_context(context.user_id, client_id)
                await create_websocket_manager(agent_context)
            tally("route.start_agent", "manager_left_behind")
        except Exception as error:
            tally("route.start_agent", f"refused_{type(error).__name__}")
            self.backend.log("ERROR", f"start_agent failed: {error}")
        return False

    async def finish(self) -> None:
        if self.heartbeat_timer is not None:
            self.heartbeat_timer.cancel()
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if self.established and self.manager is not None:
            try:
                self.manager.remove_connection(str(self.connection_id))
            except RuntimeError as error:
                self.backend.log("WARNING", f"remove_connection failed: {error}")
        if self.backend.variant.release_manager_on_disconnect and self.manager is not None and not isinstance(
            self.manager, EmergencyStubManager
        ):
            await self.backend.factory.release_manager(self.manager)


def _context_facts(context: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "context_type": type(context).__name__,
        "context_module": type(context).__module__,
    }
    for name in ("user_id", "websocket_client_id", "thread_id", "run_id", "request_id"):
        facts[f"has_{name}"] = hasattr(context, name)
    return facts
