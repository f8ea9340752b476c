"""How the route may close a connection (spec section 1.2): the one list the wire checks share."""

from __future__ import annotations

from investigation.backend.route import (
    AUTH_FAILED_REASON,
    FACTORY_FAILED_REASON,
    INTERNAL_ERROR_REASON,
    STARTUP_INCOMPLETE_REASON,
)

#: Close code -> the reasons the spec allows with it.
ALLOWED_ENDINGS: dict[int, frozenset[str]] = {
    1008: frozenset({AUTH_FAILED_REASON}),
    1011: frozenset({FACTORY_FAILED_REASON, STARTUP_INCOMPLETE_REASON, INTERNAL_ERROR_REASON}),
}


def is_allowed_ending(close_code: int, close_reason: str | None) -> bool:
    """Whether a server close frame with this code and reason is one the spec allows."""
    return close_reason in ALLOWED_ENDINGS.get(close_code, frozenset())
