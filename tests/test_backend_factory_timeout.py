"""Spec 4.2: the factory's connection_timeout_seconds (1800) is what its background cleanup sweeps by."""

from __future__ import annotations

from tests.test_backend_factory import context, create


def test_the_factory_timeout_is_the_spec_value(harness) -> None:
    assert harness({}).backend.factory.connection_timeout_seconds == 1800.0  # spec 4.2


def test_the_background_cleanup_sweeps_by_the_factory_timeout(harness) -> None:
    """A factory whose timeout is 600 s (development: 120 s interval, spec 4.2) sweeps at 120,
    240, ..., 600, 720: idle exactly 600 at 600 is not more, so the manager made at 0 goes at 720."""
    h = harness({"ENVIRONMENT": "development"})
    h.backend.factory.connection_timeout_seconds = 600.0
    create(h, context(h))
    h.advance_to(719.0)
    assert len(h.backend.factory.managers) == 1
    h.advance_to(721.0)
    assert h.backend.factory.managers == {}
