"""Other classes named UserExecutionContext in the original tree (supervisor and models
variants). An instance of either fails every type check of the factory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class UserExecutionContext:
    """The supervisor package's context: same field names, a different class."""

    user_id: str
    thread_id: str
    run_id: str
    request_id: str
    websocket_client_id: str | None = None


UserExecutionContext.__module__ = "netra_backend.app.agents.supervisor.user_execution_context"
SupervisorUserExecutionContext = UserExecutionContext


@dataclass
class ModelsUserExecutionContext:
    """The models package's context, under its original class name."""

    user_id: str
    thread_id: str
    run_id: str
    request_id: str
    websocket_client_id: str | None = None


ModelsUserExecutionContext.__name__ = "UserExecutionContext"
ModelsUserExecutionContext.__qualname__ = "UserExecutionContext"
ModelsUserExecutionContext.__module__ = "netra_backend.app.models.user_execution_context"
