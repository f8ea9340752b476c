"""Review round rev1: a variant's harm is named by the connections the verdicts judge, compared with the original's
judged first failure; the bypass's safety gain is told only for connections the original let in through it.

The matrices are built by hand (every value below is chosen here, not simulated); the closes are the spec's:
``GATE`` is the startup gate's timeout (spec 1, step 9), ``CAP`` the per-user manager cap's refusal (spec 4.2),
``AUTH`` an auth refusal (spec 1, step 5).
"""

from __future__ import annotations

from investigation.analysis.variants import (
    EARLIER,
    WORSE,
    FailingConnection,
    MatrixCell,
    SafetyRow,
    VariantMatrix,
    VariantReport,
    build_report,
    changed_share,
    refused_by_rule,
    variant_lessons,
    variant_matrix,
)
from investigation.postmortem import Evidence, _bypass_refusal_cost, _unforged_refusals, _worse_text
from tests.test_verdicts3 import evidence_of, leak_cap

GATE = ("1011 Service startup incomplete", "route.startup_gate=timeout")
CAP = ("1011 Factory SSOT validation failed", "factory.manager_cap=exceeded")
AUTH = ("1008 SSOT Auth failed", "auth.token_validation=invalid_signature")
UNAVAILABLE = ("1013 Service temporarily unavailable", "factory.manager_cap=exceeded")


def failing(index: int, client: str, at_s: float, close: tuple[str, str], forged: str = "") -> FailingConnection:
    return FailingConnection(index, client, at_s, close[0], deciding=close[1], forged=forged)


def cell(profile: str, variant: str, connections: int, *fails: FailingConnection,
         bypassed: tuple[int, ...] = ()) -> MatrixCell:
    codes: dict[str, int] = {}
    for f in fails:
        codes[f.code] = codes.get(f.code, 0) + 1
    codes["open"] = connections - len(fails)
    first = fails[0] if fails else None
    return MatrixCell(profile, variant, tuple(sorted(codes.items())), (), None if first is None else first.at_s,
                      None if first is None else first.close, failing=fails, bypassed=bypassed)


def report_of(variants: tuple[str, ...], cells: list[MatrixCell]) -> VariantReport:
    profiles = tuple(sorted({c.profile for c in cells}))
    safety = tuple(SafetyRow(v, (), 0, False) for v in variants)
    return build_report(VariantMatrix(variants, profiles, tuple(cells), safety))


def moved_world() -> VariantReport:
    """Profile p, 5 connections. Original: 0 at 0 s closes at the gate, 2 at 40 s is refused by the cap (client y).
    V3 closes exactly these. V4: 0 at the gate, 1 at 20 s refused by the cap (client x, which the original left
    open), 2 at 40 s at the gate.

    untouched = {0} (V3 and V4 close it alike); V4 moves 2 from the cap onto the gate (GATE is 0's mechanism), so the
    verdicts count 2 removed. Judged: the original first fails at 40 s (2), V4 at 20 s (1): earlier, so V4 is WORSE.
    """
    original = (failing(0, "g", 0.0, GATE), failing(2, "y", 40.0, CAP))
    return report_of(("original", "V3", "V4"), [
        cell("p", "original", 5, *original), cell("p", "V3", 5, *original),
        cell("p", "V4", 5, failing(0, "g", 0.0, GATE), failing(1, "x", 20.0, CAP), failing(2, "y", 40.0, GATE)),
    ])


def test_the_harm_leaves_out_a_connection_moved_onto_the_startup_gate() -> None:
    report = moved_world()
    assert dict(report.verdict_of("V4").effects)["p"] == EARLIER
    # V4 closes 1 and 2 otherwise than the original; 2 is moved aside, so only 1 (client x) is its harm:
    # one 1011 close of the 5 connections.
    assert [f.index for f in report.matrix.changed("V4", "p")] == [1]
    assert changed_share(report.matrix, "V4", "p", "1011") == ("1 of the 5", " (client x)")


def test_the_harm_compares_with_the_originals_judged_first_failure() -> None:
    # The original's judged first failure is connection 2 at 40 s (0, at 0 s, is untouched: set aside, and named as
    # the sooner failure the verdicts leave aside); V4's harm starts at 20 s.
    text = _worse_text(moved_world(), moved_world().verdict_of("V4"))
    assert text == '1011 "Factory SSOT validation failed" closes 1 of the 5 connections of p (client x) from 20 s, ' \
                   "where the original first fails at 40 s (its failures no candidate changes, from 0 s, set aside)"


def test_before_is_the_judged_first_failure_not_the_first_connection_closed_differently() -> None:
    """Profile q, 4 connections. Original: 2 at 40 s and 3 at 60 s refused by the cap. V3 closes none (so nothing is
    untouched). V4: 1 at 20 s refused by auth (client x), 2 as the original, 3 closed 1013 at 60 s.

    V4 closes 1 and 3 differently; of those the original fails only 3 (60 s), but its judged first failure, the one
    the verdict's "earlier" compares with, is 2 at 40 s.
    """
    original = (failing(2, "y", 40.0, CAP), failing(3, "z", 60.0, CAP))
    report = report_of(("original", "V3", "V4"), [
        cell("q", "original", 4, *original), cell("q", "V3", 4),
        cell("q", "V4", 4, failing(1, "x", 20.0, AUTH), original[0], failing(3, "z", 60.0, UNAVAILABLE)),
    ])
    assert _worse_text(report, report.verdict_of("V4")) == (
        '1008 "SSOT Auth failed" closes 1 of the 4 connections of q (client x) from 20 s, '
        "where the original first fails at 40 s")


def forged_world(bypassed: tuple[int, ...], harm: bool) -> VariantReport:
    """Profile f, 3 connections: V5 refuses 0 (client b, a bad signature), which the original lets in (through the
    bypass when ``bypassed`` holds 0). With ``harm``, profile h (2 connections): V5 closes 0 at 5 s with 1013, which
    the original left open: introduced, so V5 is WORSE, by no auth refusal."""
    cells = [cell("f", "original", 3, bypassed=bypassed),
             cell("f", "V5", 3, failing(0, "b", 10.0, AUTH, forged="bad signature"))]
    if harm:
        cells += [cell("h", "original", 2), cell("h", "V5", 2, failing(0, "c", 5.0, UNAVAILABLE))]
    return report_of(("original", "V5"), cells)


def test_the_bypass_is_named_only_for_connections_the_original_bypassed() -> None:
    lessons = variant_lessons(forged_world((), harm=False)).data
    assert ("V5 refuses 1 forged token the original lets in (f: 1 with a bad signature): a safety gain, not a "
            "failure (spec 5.3 refuses them), so the verdicts leave these refusals aside.") in lessons
    assert _bypass_refusal_cost(forged_world((), harm=False)) == ""


def test_refusing_the_bypass_is_at_no_cost_only_without_other_harm() -> None:
    gain = " Refusing the bypass is also a safety gain: V5 refuses 1 forged token the original lets in (f: 1 with a " \
           "bad signature)"
    assert _bypass_refusal_cost(forged_world((0,), harm=False)) == gain + ", at no cost."
    harmful = forged_world((0,), harm=True)
    assert harmful.verdict_of("V5").failure == WORSE
    assert _bypass_refusal_cost(harmful) == gain + "."
    assert "spec 5.3 refuses them; the original's E2E bypass, spec 5.2, skips the check)" in \
        variant_lessons(harmful).data


def test_the_incident_failures_are_the_judged_ones_auth_refusals_aside() -> None:
    """leak-cap (tests/test_verdicts3.py) under the original and V4: the 5 gate closes are untouched (V4 closes
    them alike); connections 6 and 7 (indices 5 and 6) are the cap's refusals, which V4 moves to the gate."""
    report = build_report(variant_matrix([leak_cap()], ("original", "V4")))
    assert [f.index for f in report.matrix.judged_failures("original", "leak-cap")] == [5, 6]
    evidence: Evidence = evidence_of([leak_cap()], report)
    assert [c.index for c in evidence.incident_failures("leak-cap")] == [5, 6]
    assert refused_by_rule("1008") and not refused_by_rule("1011")


def test_a_hand_built_cell_without_failing_connections_counts_its_auth_closes() -> None:
    # Two connections closed 1008 and one left open, no failing connection recorded: 2 auth refusals, none known forged.
    hand_built = MatrixCell("p", "V5", (("1008", 2), ("open", 1)), (), 1.0, "1008 SSOT Auth failed")
    assert _unforged_refusals(hand_built) == 2
