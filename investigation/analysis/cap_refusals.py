"""What a refused connection's user had on its instance at the moment of the refusal.

A refusal at the per-user cap (spec 4.2) happens two ways that close the same way: the user
really has ``cap`` connections open there at once, each with its own manager (the cap working as
designed), or the user's managers outlived their connections (spec 1, steps 12 and 14) and fewer
of its open connections still have their manager registered than it holds managers. A connection
still open does not count when its manager was released under it (emergency cleanup frees a
manager idle for 5 minutes, socket open or not, spec 4.2). :func:`user_at_refusal` counts both
sides, so the postmortem (06) and the isolation (04) tell them apart with one computation.

    state = user_at_refusal(run, run.failures[0])
    state.held, state.open_connections, state.mechanism   # 5, 0, Mechanism.OUTLIVED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from investigation.trace import ConnectionResult, RunResult


class Mechanism(enum.Enum):
    """How the refused user came to be at the cap, or that it was not."""

    CONCURRENT = "concurrent"
    """As many of its connections open there as the cap: the cap refused one more, as designed."""
    OUTLIVED = "outlived"
    """At the cap with fewer connections open than managers held: managers outlived their connections."""
    BELOW_CAP = "below cap"
    """The user held fewer managers than the cap: the refusal was not the cap's."""


@dataclass(frozen=True)
class UserAtRefusal:
    """At a refusal: the refused user's managers on its instance and its connections open there.

    ``open_connections``: the user's connections open there whose own manager is still registered;
    ``open_without_manager``: those open there whose manager had been released (or never registered).
    ``created_by_start_agent``: managers the user's connections that had ended there by then created
    with ``start_agent`` messages (an open connection's messages may still be to come).
    """

    held: int
    open_connections: int
    created_by_start_agent: int
    cap: int
    open_without_manager: int = 0

    @property
    def at_cap(self) -> bool:
        return self.held >= self.cap

    @property
    def mechanism(self) -> Mechanism:
        if not self.at_cap:
            return Mechanism.BELOW_CAP
        return Mechanism.CONCURRENT if self.open_connections >= self.cap else Mechanism.OUTLIVED


def managers_held_before(run: RunResult, connection: ConnectionResult) -> int:
    """The managers ``connection``'s user held on its instance when it started, its own manager left out.

    The managers registered for the user there once every change at or before ``connection.at_s`` is applied
    (:func:`registered_managers`), other connections' changes at that instant counting as before it; the
    connection's own manager (``manager_key``) is left out whenever it was registered, then or later, so a
    connection counts as at the cap only when the cap was already held without it (spec 4.2).
    """
    key = (str(connection.user_id), connection.instance)
    return len(registered_managers(run, key, connection.at_s) - {connection.manager_key})


def registered_managers(run: RunResult, key: tuple[str, int], at_s: float) -> set[str]:
    """The isolation keys of the managers registered for ``key`` (user, instance) once every change up to ``at_s``
    is applied: a change that raises the count registers its manager, one that lowers it releases it."""
    registered: set[str] = set()
    before = 0
    for change in run.manager_counts:
        if (change.user_id, change.instance) != key or change.at_s > at_s:
            continue
        if change.key is not None and change.count > before:
            registered.add(change.key)
        elif change.key is not None:
            registered.discard(change.key)
        before = change.count
    return registered


def user_at_refusal(run: RunResult, refused: ConnectionResult) -> UserAtRefusal:
    """What ``refused``'s user had on ``refused``'s instance when ``refused`` started.

    Managers held: :func:`managers_held_before` (a failing connection may have got its own manager
    before a later close; it is not counted). Open connections: the user's other connections there that
    started at or before the refusal and ended after it, split by whether the manager each asked for is
    still registered then (changes at the refusal's instant count as before it, as for the managers held).
    """
    key = (str(refused.user_id), refused.instance)
    there = [c for c in run.connections if c is not refused and (str(c.user_id), c.instance) == key]
    open_now = [c for c in there if c.at_s <= refused.at_s < c.ended_at_s]
    registered = registered_managers(run, key, refused.at_s)
    with_manager = sum(c.manager_key in registered for c in open_now)
    ended = tuple(c for c in there if c.ended_at_s <= refused.at_s)
    created = sum(c.tally("route.start_agent").get("manager_left_behind", 0) for c in ended)
    held = len(registered - {refused.manager_key})  # managers_held_before, from the set already in hand
    return UserAtRefusal(held, with_manager, created, run.max_managers_per_user, len(open_now) - with_manager)


def refusals_at_cap(run: RunResult) -> list[UserAtRefusal]:
    """Each failing connection of ``run`` that found its user at the cap on its instance, in run order."""
    states = (user_at_refusal(run, refused) for refused in run.failures)
    return [state for state in states if state.at_cap]
