"""The user contexts a run hands to the manager factory, each checked by the backend's strict validator.

    contexts = contexts_of(load_profile("staging-cloud-run"))
    sum(c.strict == "pass" for c in contexts)   # strict validation (spec 4.4) on what staging creates

The trace records decisions, not the contexts themselves: :func:`contexts_of` runs the profile again
(same code, same seeds, so the same run :func:`~investigation.simulate.simulate` makes) with the
factory's staging-safe validation wrapped to keep each context it is given before it runs unchanged.
The backend has no hook for this, so the wrapper replaces the module attribute for the run's duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from unittest import mock

from investigation.backend import factory
from investigation.backend.variants import get_variant
from investigation.clock import outside_event_loop
from investigation.profiles import Profile
from investigation.simulate import SimulationRun, run_on_virtual_time


@dataclass(frozen=True)
class CheckedContext:
    """A context that reached the factory's validation, and what strict validation (spec 4.4) says of it."""

    user_id: str
    thread_id: str
    run_id: str
    request_id: str
    websocket_client_id: str | None
    strict: str
    """``pass``, or the ValueError text strict validation raises."""


def strict_check(context: object) -> str:
    """The backend's strict validator (``_validate_ssot_user_context``) on ``context``: ``pass`` or its error."""
    try:
        factory._validate_ssot_user_context(context)
    except ValueError as error:
        return str(error)
    return "pass"


def contexts_of(profile: Profile, variant: str = "original") -> tuple[CheckedContext, ...]:
    """Every context ``profile``'s run hands to the factory's validation, checked by strict validation.

    The run is the one :func:`simulate` makes (same code, same seeds); the factory's staging-safe
    validation is wrapped only to keep the context it is given, then runs unchanged.
    """
    return outside_event_loop(_contexts_here, profile, variant)


def _contexts_here(profile: Profile, variant: str) -> tuple[CheckedContext, ...]:
    given: list[object] = []
    validate = factory._validate_ssot_user_context_staging_safe

    def keeping(context: object) -> None:
        given.append(context)
        validate(context)

    chosen = get_variant(variant)
    with mock.patch.object(factory, "_validate_ssot_user_context_staging_safe", keeping):
        run_on_virtual_time(lambda clock: SimulationRun(profile, chosen, clock))
    return tuple(CheckedContext(*(str(getattr(c, name, "")) for name in ("user_id", "thread_id", "run_id", "request_id")),
                                getattr(c, "websocket_client_id", None), strict_check(c)) for c in given)
