"""Tests of investigation.analysis.spectra: per-connection coverage under interleaving,
the SBFL ranking of a cap failure, and coverage nesting.

Expected values from spec/backend.md: an auth failure sends an error frame and closes
1008 (1 step 5); a user's 6th and 7th connection in one process exceed the cap of 5
(4.2, 14) and close 1011 (1.2).
"""

from __future__ import annotations

from typing import Any

import coverage
import pytest

from investigation.analysis.spectra import (
    ConnectionSpectrum,
    _new_measurement,
    collect_spectra,
    enclosing_function,
    measure_profile,
    rank_lines,
    refusal_reporting_lines,
    source_line,
    suspiciousness,
    sweep_profiles,
)
from investigation.profiles import Profile, flatten_profile, load_profile, unflatten_profile

ROUTE = "investigation/backend/route.py"
FACTORY = "investigation/backend/factory.py"


def line_of(file: str, text: str) -> int:
    """The number of the first line of ``file`` containing ``text``."""
    from investigation.analysis.spectra import REPO_ROOT

    for number, line in enumerate((REPO_ROOT / file).read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {file}")


def varied(profile: Profile, name: str, factors: dict[str, object]) -> Profile:
    return unflatten_profile(name, {**flatten_profile(profile), **factors}, base=profile)


@pytest.fixture(scope="module")
def local_debug() -> Profile:
    return load_profile("local-debug")


def test_interleaved_connections_get_their_own_lines(local_debug: Profile) -> None:
    # Two clients at once: the first holds its connection open while the second is refused.
    factors = {
        "env.ENVIRONMENT": "development",  # no E2E bypass (spec 5.2, 6): the expired token is checked
        "clients[0].hold_s": 30.0,
        "clients[1].name": "expired-client", "clients[1].user_id": "user-expired-0001",
        "clients[1].token": "expired", "clients[1].start_s": 0.0, "clients[1].hold_s": 30.0,
    }
    spectra = measure_profile(varied(local_debug, "two-at-once", factors))
    by_code = {spectrum.close_code: spectrum for spectrum in spectra}
    assert set(by_code) == {None, 1008}
    refuse = (ROUTE, line_of(ROUTE, "async def _refuse_auth") + 1)
    register = (ROUTE, line_of(ROUTE, "self.established = True"))
    assert refuse in by_code[1008].lines and refuse not in by_code[None].lines
    assert register in by_code[None].lines and register not in by_code[1008].lines


def test_the_measurement_records_lines_only() -> None:
    # The rankings read executed lines only; measuring branches too made the sweep ~40% slower.
    assert _new_measurement().get_option("run:branch") is False


def test_cap_failure_ranks_the_cap_refusal_at_the_top(local_debug: Profile) -> None:
    busy = varied(local_debug, "seven-connections", {"clients[0].connections": 7})
    spectra = collect_spectra([local_debug, busy])
    assert sum(s.failed for s in spectra) == 2
    refusal = (FACTORY, line_of(FACTORY, 'decide("factory.manager_cap", "exceeded")'))
    for formula in ("ochiai", "tarantula"):
        ranked = rank_lines(spectra, formula)
        by_line = {(r.file, r.line): r for r in ranked}
        assert (by_line[refusal].failed, by_line[refusal].passed, by_line[refusal].score) == (2, 0, 1.0)
        assert ranked[0].score == 1.0
    top = suspiciousness(spectra)
    assert "exceeded" in top.top_text(count=len(top.ochiai))


def test_locations_name_function_and_source() -> None:
    line = line_of(ROUTE, '"recovery_suggestions": None')
    assert enclosing_function(ROUTE, line) == "error_frame"
    assert source_line(ROUTE, line) == '"recovery_suggestions": None,'
    assert enclosing_function(ROUTE, 1) == "<module>"


def test_a_line_of_a_nested_function_belongs_to_the_innermost_one() -> None:
    adversarial = "investigation/analysis/adversarial.py"  # context_outcome defines attempt inside
    assert enclosing_function(adversarial, line_of(adversarial, 'return "accepted"')) == "attempt"
    outer = line_of(adversarial, '""""accepted" if create_websocket_manager returned a manager')  # its docstring
    assert enclosing_function(adversarial, outer) == "context_outcome"


def test_the_sweep_doubles_every_clients_connections() -> None:
    profiles = {profile.name: profile for profile in sweep_profiles()}
    assert [c.connections for c in profiles["local-debug x2 connections"].clients] == [2]
    assert [c.connections for c in profiles["staging-e2e x2 connections"].clients] == [24, 24, 24]
    assert profiles["local-debug ID generator failing"].startup.id_generator_fails


def test_a_spectrum_fails_only_on_1011() -> None:
    def spectrum(code: int | None) -> ConnectionSpectrum:
        return ConnectionSpectrum("r", 0, code, frozenset())

    assert [spectrum(code).failed for code in (1011, 1008, None, 1013)] == [True, False, False, False]


def _after_inner_measurement() -> int:
    return 41 + 1


def test_suspiciousness_report_on_hand_made_spectra() -> None:
    # c0 closed 1011 (the one failure), c1 1000 and c2 1008 pass: F = 1, P = 2.
    # Line "cell" (f 1, p 0): Ochiai 1, Tarantula 1. Line 1 (f 1, p 2): Ochiai 1/sqrt(3) ≈ 0.5774,
    # Tarantula 1/(1 + 1) = 0.5.
    cell = line_of(ROUTE, '"recovery_suggestions": None')
    lines, module = frozenset({(ROUTE, 1), (ROUTE, cell)}), frozenset({(ROUTE, 1)})
    spectra = [
        ConnectionSpectrum("r", 0, 1011, lines),
        ConnectionSpectrum("r", 1, 1000, module),
        ConnectionSpectrum("r", 2, 1008, module),
    ]
    report = suspiciousness(spectra)
    assert (report.connections, report.failing) == (3, 1)
    assert [(r.rank, r.line, r.score, r.failed, r.passed) for r in report.ochiai] == [
        (1, cell, 1.0, 1, 0), (2, 1, 0.5774, 1, 2)
    ]
    assert [(r.line, r.score) for r in report.tarantula] == [(cell, 1.0), (1, 0.5)]
    assert report.ochiai[0].function == "error_frame"


def test_measuring_inside_another_coverage_keeps_both_working(local_debug: Profile) -> None:
    outer = coverage.Coverage(data_file=None, include=[__file__], config_file=False)
    outer.start()
    try:
        spectra = measure_profile(local_debug)
        _after_inner_measurement()
    finally:
        outer.stop()
    assert spectra and spectra[0].lines
    measured = outer.get_data().lines(__file__) or []
    assert line_of("tests/test_spectra.py", "return 41 + 1") in measured


def test_refusal_reporting_is_the_route_code_that_builds_and_sends_a_refusal() -> None:
    """Read from route.py by hand: error_frame (9 lines), _close (3), _send_internal_error (15),
    _Session._refuse_auth (7), _Session._refuse_factory (12), _context_facts (8); the except
    clauses that call them (websocket_endpoint's 5 lines, _create_manager's 2 + 4); and the
    returns that end the connection after them (3 bare ones in run, return False in
    _create_manager and _startup_gate): 70 lines."""
    reporting = {line for file, line in refusal_reporting_lines() if file == ROUTE}
    assert len(reporting) == 70
    for text in ('"recovery_suggestions": None', 'decide("route.close"', "except FactoryInitializationError",
                 "await self._refuse_factory(context, error)", 'error_frame("CAPACITY_EXCEEDED"',
                 "await _send_internal_error(websocket)", 'facts[f"has_{name}"]'):
        assert line_of(ROUTE, text) in reporting, text
    deciding = ('decide("route.environment", environment)', "self.manager = await create_websocket_manager(context)",
                'decide("route.startup_gate", "timeout")', "await self._retry_manager(context)",
                'decide("route.manager", "factory")')
    assert not {line_of(ROUTE, text) for text in deciding} & reporting


def hand_ranked_report(tied: bool = False, refused: bool = False) -> Any:
    """Connections c0, c1 close 1011 (F = 2); c2 closes 1000 after reaching the cap check
    (start_agent's manager, spec 1 step 12) and c3 closes 1000 (P = 2). Ochiai f/sqrt(F(f+p)):
    error_frame and run's `return` (f 2, p 0) 1.0; the cap check (f 2, p 1) 2/sqrt(6) = 0.8165;
    route.environment (f 2, p 2) 2/sqrt(8) = 0.7071. Ties keep line order: error_frame (route.py
    line < run's return) 1st, the return 2nd, the cap 3rd, route.environment 4th.

    ``tied``: c0, c1 and c2 also run the cap check's next line (_enforce_cap) and the factory's
    ``decide("factory.result", "FactoryInitializationError")`` (create_websocket_manager), so
    three factory.py lines tie at 0.8165 (ranks 3-5, factory.py before route.py) and
    route.environment is 6th.

    ``refused``: c2's start_agent message was refused (its spectrum says so)."""
    frame = (ROUTE, line_of(ROUTE, '"recovery_suggestions": None'))
    leave = (ROUTE, line_of(ROUTE, "if not await self._create_manager(context):") + 1)
    cap = (FACTORY, line_of(FACTORY, 'decide("factory.manager_cap", "exceeded")'))
    environment = (ROUTE, line_of(ROUTE, 'decide("route.environment", environment)'))
    cap_ties = {(FACTORY, cap[1] + 1), (FACTORY, line_of(FACTORY, 'decide("factory.result", "FactoryInitial'))}

    def spectrum(index: int, code: int, lines: set[tuple[str, int]], refused: bool = False) -> ConnectionSpectrum:
        return ConnectionSpectrum("r", index, code, frozenset(lines), refused)

    with_cap = {cap, *cap_ties} if tied else {cap}
    failing = {frame, leave, environment, *with_cap}
    return suspiciousness([spectrum(0, 1011, failing), spectrum(1, 1011, failing),
                           spectrum(2, 1000, {environment, *with_cap}, refused), spectrum(3, 1000, {environment})]), cap


def test_the_summary_sizes_the_top_tie_and_names_the_first_line_outside_the_refusal_reporting() -> None:
    report, cap = hand_ranked_report()
    assert [(r.rank, r.score) for r in report.ochiai] == [(1, 1.0), (2, 1.0), (3, 0.8165), (4, 0.7071)]
    assert report.summary() == (
        "Of 4 connections (2 closed 1011), the top Ochiai score 1.0000 is shared by 2 lines, "
        "all in code that only reports a refusal (route.py: error_frame, run). The highest score outside "
        f"that code, 0.8165, is held by 1 line, rank 3: {FACTORY}:{cap[1]} in _enforce_cap: "
        'decide("factory.manager_cap", "exceeded") (fail 2, pass 1).'
    )


def test_the_summary_says_when_the_highest_score_outside_the_refusal_reporting_is_tied() -> None:
    """Three factory.py lines share 0.8165 (ranks 3-5): the summary names the tie, not one line."""
    report, cap = hand_ranked_report(tied=True)
    assert [(r.rank, r.score) for r in report.ochiai] == [
        (1, 1.0), (2, 1.0), (3, 0.8165), (4, 0.8165), (5, 0.8165), (6, 0.7071)
    ]
    assert report.summary().endswith(
        "The highest score outside that code, 0.8165, is shared by 3 lines (ranks 3-5: factory.py: "
        f"_enforce_cap, create_websocket_manager); the first in file order is {FACTORY}:{cap[1]} in _enforce_cap: "
        'decide("factory.manager_cap", "exceeded") (fail 2, pass 1).'
    )
    assert "highest-ranked" not in report.summary()


def test_the_summary_says_how_many_of_the_tied_lines_the_table_shows() -> None:
    """A table of 2 lines outside the refusal reporting shows ranks 3 and 4: 2 of the 3 tied lines."""
    report, _ = hand_ranked_report(tied=True)
    assert "(ranks 3-5: factory.py: _enforce_cap, create_websocket_manager; the table shows the first 2); " in (
        report.summary(table_lines=2))
    assert "(ranks 3-5: factory.py: _enforce_cap, create_websocket_manager); " in report.summary(table_lines=3)


def test_the_summary_explains_passing_connections_at_the_cap_by_a_refused_start_agent() -> None:
    """c2 passes although it ran the cap check: its start_agent message was refused inside the
    handler, which does not close the connection (spec 1 step 12)."""
    report, _ = hand_ranked_report(refused=True)
    assert report.summary().endswith(
        '(fail 2, pass 1: the passing connection that ran it had a start_agent message refused, '
        "an error its handler catches without a close; spec 1 step 12)."
    )


def test_staging_e2e_connections_that_pass_after_running_the_cap_check_had_start_agent_refused() -> None:
    """staging-e2e's clients send start_agent, whose manager stays behind (spec 1 step 12): a
    connection holding the user's last slot gets its start_agent refused at the cap (4.2) and stays
    connected, so it runs the cap check and passes."""
    cap = (FACTORY, line_of(FACTORY, 'decide("factory.manager_cap", "exceeded")'))
    spectra = measure_profile(load_profile("staging-e2e"))
    passing_at_cap = [s for s in spectra if cap in s.lines and not s.failed]
    assert passing_at_cap
    assert all(s.start_agent_refused for s in passing_at_cap)
    assert not any(s.start_agent_refused for s in spectra if s.failed or cap not in s.lines)


def test_the_suspiciousness_chart_leaves_out_the_refusal_reporting_and_says_so() -> None:
    from investigation.charts.isolation import suspiciousness_chart

    report, cap = hand_ranked_report()
    figure, table = suspiciousness_chart(report, count=2)
    note, header, _, first, second = table.splitlines()
    assert note == ("left out: 2 lines among ranks 1-4 that only report a refusal (route.py: error_frame, run); "
                    "ranks count every line")
    rank, ochiai, tarantula, failed, passed, location = first.split()[:6]
    assert (rank, failed, passed, location) == ("3", "2", "1", f"{FACTORY}:{cap[1]}")
    # Printed at the 4 places the scores are kept to: 2/sqrt(6) = 0.81650 shows as 0.8165 (at 3
    # places of the kept 0.8165 it would round twice, to 0.817); Tarantula (2/2)/((2/2)+(1/2)) = 0.6667.
    assert (ochiai, tarantula) == ("0.8165", "0.6667")
    assert second.split()[0] == "4"
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    environment = line_of(ROUTE, 'decide("route.environment", environment)')
    assert labels == [f"factory.py:{cap[1]} _enforce_cap", f"route.py:{environment} websocket_endpoint"]
