"""The process the backend code runs in.

The original keeps process-wide singletons (the environment object, the ID
counter, the manager factory). Here they are state of one `Backend`; code that
in the original reached for a singleton asks `current()` for the backend whose
connection it is handling. Each run therefore starts clean.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from investigation.backend.process import Backend

_active: contextvars.ContextVar[Backend] = contextvars.ContextVar("active_backend")


def current() -> Backend:
    """The backend process whose code is running."""
    try:
        return _active.get()
    except LookupError:
        raise RuntimeError("no backend process is active; run inside Backend.activate()") from None


def activate(backend: Backend) -> contextvars.Token[Backend]:
    return _active.set(backend)


def deactivate(token: contextvars.Token[Backend]) -> None:
    _active.reset(token)
