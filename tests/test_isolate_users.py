"""Chapter 04 names the users of the minimal failing traffic as the server established them in the reduced run
(``trace.ConnectionResult.identified_user``), not by the ids its clients were planned with."""

from __future__ import annotations

from typing import Any

import pytest

from investigation.analysis.isolate import (
    FailureSignature,
    TrafficReduction,
    _traffic_lesson,
    _users_and_instances,
    minimal_failing_traffic,
)
from investigation.charts.isolation import planned_per_client_table, traffic_chart
from investigation.profiles import Profile, profile_from_dict
from investigation.simulate import simulate
from investigation.traffic import connection_plan
from tests.conftest import CLOUD_RUN_STAGING_ENV


def _staging(name: str, clients: list[dict[str, Any]]) -> Profile:
    return profile_from_dict(name, {"description": name, "env": CLOUD_RUN_STAGING_ENV, "clients": clients})


@pytest.fixture(scope="module")
def strip_collision() -> TrafficReduction:
    """Two clients whose ids differ only by surrounding spaces, 3 connections each, 10 s apart, held 5 s, on one
    staging instance. The server strips the id (spec 5.4 step 2): both are user ``pat smith``, one cap of 5
    (spec 4.2). Every connection leaves its manager behind (spec 1 step 14), so the 6th, at 22 s, is refused 1011
    and none of the 6 can be left out."""
    return minimal_failing_traffic(_staging("strip-collision", [
        {"name": "pat-padded", "user_id": "  pat smith  ", "connections": 3, "spacing_s": 10.0, "hold_s": 5.0},
        {"name": "pat-plain", "user_id": "pat smith", "connections": 3, "start_s": 2.0, "spacing_s": 10.0,
         "hold_s": 5.0},
    ]))


def test_the_traffic_lesson_counts_the_one_user_the_server_established(strip_collision: TrafficReduction) -> None:
    assert _traffic_lesson(strip_collision) == (
        "The failing traffic of strip-collision shrinks to 6 of its 6 planned connections (1-minimal: none of them "
        "can be left out), from one user (pat smith) on one instance (0); in that reduced run 1 of them closes 1011."
    )


def test_the_verdict_names_the_one_user(strip_collision: TrafficReduction) -> None:
    assert _users_and_instances(strip_collision) == "user pat smith, instance 0"


def _column(table: list[str], name: str) -> list[str]:
    """The cells of column ``name`` of a format_table (header, dashes, rows), cut at the header's offsets."""
    header = table[0]
    start = header.index(name)
    following = [header.index(other, start + len(name)) for other in header[start + len(name):].split()]
    end = min(following, default=None)
    return [row[start:end].rstrip() for row in table[2:]]


def test_the_traffic_tables_show_the_established_user(strip_collision: TrafficReduction) -> None:
    _, table = traffic_chart(strip_collision)
    kept_table, per_client = table.split("\n\n")
    # the 6 kept connections all run as the stripped id, whichever client planned them
    assert _column(kept_table.splitlines(), "user") == ["pat smith"] * 6
    per_client_lines = per_client.splitlines()[1:]
    assert planned_per_client_table(strip_collision) == per_client
    assert _column(per_client_lines, "client") == ["pat-padded", "pat-plain"]
    assert _column(per_client_lines, "user of the kept") == ["pat smith", "pat smith"]


@pytest.fixture(scope="module")
def expired_alone() -> TrafficReduction:
    """A valid client and one with an expired token (spec 5.3: rejected, 1008), one connection each: ddmin keeps
    the expired one alone, a connection whose user the server never established (no validated token)."""
    return minimal_failing_traffic(_staging("expired-alone", [
        {"name": "eve", "user_id": "eve-1"},
        {"name": "frank", "user_id": "frank-1", "token": "expired", "start_s": 1.0},
    ]))


def test_a_kept_connection_without_established_user_is_no_user(expired_alone: TrafficReduction) -> None:
    assert _traffic_lesson(expired_alone) == (
        "The failing traffic of expired-alone shrinks to 1 of its 2 planned connections (1-minimal: none of them "
        "can be left out), from 1 connection whose user the server never established, on one instance (0); in that "
        "reduced run 1 of them closes 1008."
    )
    assert _users_and_instances(expired_alone) == "1 connection whose user the server never established, instance 0"
    _, table = traffic_chart(expired_alone)
    assert "frank-1" not in table


def test_established_users_besides_unestablished_connections() -> None:
    """ann's 6 connections on one instance (the 6th refused at the cap, as above) and frank's expired one, all
    kept (a reduction built by hand: ddmin would drop frank's)."""
    profile = _staging("mixed", [
        {"name": "ann", "user_id": "ann-1", "connections": 6, "spacing_s": 10.0, "hold_s": 5.0},
        {"name": "frank", "user_id": "frank-1", "token": "expired", "start_s": 1.0},
    ])
    run = simulate(profile)
    refused = next(c for c in run.connections if c.close_code == 1011)
    plan = connection_plan(profile)
    reduction = TrafficReduction(profile.name, "original", tuple(plan), tuple(plan), run,
                                 FailureSignature.of(refused, run), 0)
    assert _traffic_lesson(reduction) == (
        "The failing traffic of mixed shrinks to 7 of its 7 planned connections (1-minimal: none of them can be left "
        "out), from one user (ann-1), besides 1 connection whose user the server never established, on one instance "
        "(0); in that reduced run 1 of them closes 1011."
    )
    assert _users_and_instances(reduction) == (
        "user ann-1 (besides 1 connection whose user the server never established), instance 0")


def test_a_newline_in_a_kept_user_id_is_escaped_in_the_sentences() -> None:
    """One user "line1\\nline2" reconnecting 6 times on one staging instance: the 6th is refused at the cap (spec 4.2,
    every manager left behind, spec 1 step 14). The sentences are Markdown, where a raw newline would read as a
    space ("line1 line2", an id that does not exist), so the id is written with its newline escaped."""
    reduction = minimal_failing_traffic(_staging("newline-user", [
        {"name": "tab", "user_id": "line1\nline2", "connections": 6, "spacing_s": 10.0, "hold_s": 5.0},
    ]))
    assert _users_and_instances(reduction) == "user line1\\nline2, instance 0"
    assert "from one user (line1\\nline2)" in _traffic_lesson(reduction)


def test_the_postmortems_reduction_line_counts_the_one_user_the_server_established(
        strip_collision: TrafficReduction) -> None:
    # 06's detection bullet on ddmin's traffic: the two clients' ids strip to one user (spec 5.4 step 2)
    from investigation.postmortem import _reduction_line

    assert "6 of the 6 planned connections, all of user pat smith:" in _reduction_line(strip_collision)
