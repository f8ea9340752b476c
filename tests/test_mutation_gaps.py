"""Rules a mutation review found untested (stop 13): each test below fails when its rule is removed.

The matrices are built by hand with the helpers of tests/test_review_rev1.py (every value is chosen here, not
simulated); ``GATE`` is the startup gate's timeout (spec 1, step 9), ``CAP`` the manager cap's refusal (spec 4.2),
``AUTH`` an auth refusal (spec 1, step 5).
"""

from __future__ import annotations

from investigation.analysis.hypotheses import Finding, Ledger, Observation, Verdict, ledger_lessons
from investigation.analysis.isolate import IsolationOverview, refused_without_close
from investigation.analysis.variants import (
    EARLIER,
    LONG_RUN_PROFILE,
    FailingConnection,
    MatrixCell,
    VariantMatrix,
    effects,
    forged_token,
)
from investigation.postmortem import Evidence, _untouched_items, summary_section
from investigation.reproduce import reproduce_lessons
from investigation.trace import ConnectionResult, Decision, RunResult
from tests.test_hypotheses import FACTORY_CLOSES, hypothesis
from tests.test_review_rev1 import AUTH, CAP, GATE, cell, failing, report_of


def test_a_forged_client_closed_1011_is_no_forgery_refusal() -> None:
    # forged_token: only an auth refusal (close 1008, spec 1 step 5) can be a forgery's refusal. Client f declares
    # an alg-none token, but the server closed its connection 1011 (an internal error): "" (not a forgery refusal).
    connection = ConnectionResult(index=0, client="f", instance=0, user_id=None, at_s=1.0, close_code=1011,
                                  close_reason="Internal error", decisions=(), cause_chain=())
    assert forged_token(connection, {"f": "unsigned"}) == ""


def test_with_only_the_original_in_the_matrix_nothing_is_untouched() -> None:
    # No candidate: nothing "closes alike under every candidate" can be claimed, so untouched is () even though the
    # original fails connection 1 at the gate.
    original = cell("p", "original", 3, failing(1, "a", 1.0, GATE))
    matrix = VariantMatrix(("original",), ("p",), (original,), ())
    assert matrix.untouched("p") == ()


def test_a_failure_one_candidate_removes_is_not_untouched() -> None:
    # The original fails f1; V1 leaves it open; V2 fails it identically. Untouched = closed alike under EVERY
    # candidate: V1 changes it, so untouched == ().
    f1 = failing(1, "a", 1.0, GATE)
    matrix = VariantMatrix(("original", "V1", "V2"), ("p",), (
        cell("p", "original", 3, f1), cell("p", "V1", 3), cell("p", "V2", 3, f1)), ())
    assert matrix.untouched("p") == ()


def test_a_new_failure_on_a_set_aside_mechanism_is_not_moved_aside() -> None:
    # Original: f1 (index 1) at the gate at 1.0 s, f2 (index 2) refused by the cap at 2.0 s. V2: identical.
    # V1: f1 the same, leaves 2 open, closes 3 (which the original left open) at the gate at 0.5 s.
    # untouched = {f1} (V1 changes f2), so the set-aside mechanism is GATE. V1's close of 3 is on GATE, but the
    # original did not fail 3: nothing was removed there, so it is not moved aside -> moved_aside("V1") == ().
    # Judged: the original's first failure is f2 at 2.0 s, V1's is 3 at 0.5 s: EARLIER.
    f1, f2 = failing(1, "a", 1.0, GATE), failing(2, "b", 2.0, CAP)
    matrix = VariantMatrix(("original", "V1", "V2"), ("p",), (
        cell("p", "original", 4, f1, f2), cell("p", "V2", 4, f1, f2),
        cell("p", "V1", 4, failing(3, "c", 0.5, GATE), f1)), ())
    assert matrix.moved_aside("V1", "p") == ()
    assert effects(matrix, "V1")["p"] == EARLIER


def test_a_forged_refusal_the_original_already_made_is_not_the_variants() -> None:
    # Connection 0 (client f, forged unsigned token) is refused 1008 by the original AND by V1: V1 gains nothing
    # there, so forged_refusals("V1") == () (only refusals on connections the original lets in count).
    refused = failing(0, "f", 1.0, AUTH, forged="unsigned")
    matrix = VariantMatrix(("original", "V1"), ("p",), (
        cell("p", "original", 2, refused), cell("p", "V1", 2, refused)), ())
    assert matrix.forged_refusals("V1") == ()


def test_a_connection_whose_close_the_route_recorded_is_not_refused_without_close() -> None:
    # The startup gate timed out (a failing-close decision, spec 1 step 9) and the route recorded its close
    # (route.close, spec 1 step 9's 1011), but the client saw no close code (it left first). The route did close
    # it: refused_without_close is only for a refusal with neither close code nor route.close -> False.
    connection = ConnectionResult(
        index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=None, close_reason=None,
        decisions=(Decision("route.startup_gate", "timeout"),
                   Decision("route.close", "1011 Service startup incomplete")), cause_chain=())
    assert refused_without_close(connection) is False


def test_v1_lesson_sums_only_the_runs_that_refuted_it() -> None:
    # fix.v1 says V1 removes the factory closes on every run ("all"): refuted by r1 (1 factory close) and r2 (10).
    # r3 did not test it (holds None) though it records 5 factory closes: not summed -> 1 + 10 = 11 over 2 runs.
    v1_runs = (Observation("r1", False, "one", ((FACTORY_CLOSES, 1),)),
               Observation("r2", False, "ten", ((FACTORY_CLOSES, 10),)),
               Observation("r3", None, "untested", ((FACTORY_CLOSES, 5),)))
    ledger = Ledger((Finding(hypothesis("fix.v1"), Verdict.REFUTED, v1_runs),), runs_made=3)
    assert str(ledger_lessons(ledger).data).splitlines()[-1] == (
        "- The recommended fix (V1) leaves 11 factory closes (1011 Factory SSOT validation failed, what the claim is "
        "judged on) over 2 runs (r1, r2).")


def test_start_agent_refusals_without_a_created_manager_still_get_the_lesson() -> None:
    # One open connection whose 2 start_agent messages were both refused by the factory (tally
    # refused_FactoryInitializationError=2) and created no manager. The handler catches the error without a close
    # (spec 1, step 12), so nothing else in the lessons says it: the start_agent lesson must name the 2 refusals.
    connection = ConnectionResult(
        index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=None, close_reason=None,
        decisions=(Decision("route.start_agent", "refused_FactoryInitializationError=2"),), cause_chain=())
    lessons = str(reproduce_lessons(RunResult("x", "original", (connection,), ())).data).splitlines()
    assert [line for line in lessons if "start_agent" in line] == [
        "- `start_agent` messages created no manager: 2 were refused (`route.start_agent` = "
        "refused_FactoryInitializationError=2), which the handler catches without closing the connection "
        "(spec 1, step 12) (the Verdicts)."]


def closed(f: FailingConnection) -> ConnectionResult:
    """The run's connection behind a hand-built failing connection: same index, client, time and close."""
    code, _, reason = f.close.partition(" ")
    return ConnectionResult(index=f.index, client=f.client, instance=0, user_id="u", at_s=f.at_s,
                            close_code=int(code), close_reason=reason, decisions=(), cause_chain=())


def evidence_from(cells_by_profile: dict[str, tuple[FailingConnection, ...]], report_cells: list[MatrixCell]) -> Evidence:
    """Evidence whose runs close exactly the original's failing connections given per profile."""
    runs = {profile: RunResult(profile, "original", tuple(closed(f) for f in fails))
            for profile, fails in cells_by_profile.items()}
    report = report_of(("original", "V1"), report_cells)
    return Evidence("quiet", runs, Ledger((), 0), IsolationOverview("quiet", {}), None, report)


def test_the_worst_profile_leaves_out_untouched_failures_and_auth_refusals() -> None:
    # a: 3 gate closes V1 closes alike -> untouched, 0 incident failures.
    # b: 1 cap refusal V1 removes -> 1 incident failure.
    # c: 3 auth refusals (not forged) V1 removes -> judged, but auth refusals are no failure to fix: 0.
    # worst = the most incident failures = b (counting untouched, a would win 3-1; counting 1008s, c would).
    a = tuple(failing(i, "g", float(i), GATE) for i in range(3))
    b = (failing(0, "y", 1.0, CAP),)
    c = tuple(failing(i, "t", float(i), AUTH) for i in range(3))
    evidence = evidence_from({"a": a, "b": b, "c": c}, [
        cell("a", "original", 3, *a), cell("a", "V1", 3, *a), cell("b", "original", 1, *b), cell("b", "V1", 1),
        cell("c", "original", 3, *c), cell("c", "V1", 3)])
    assert evidence.worst_profile == "b"


def test_untouched_items_rank_closes_by_descending_count() -> None:
    # Untouched on p (V1 closes them alike): 1 cap refusal at 1.0 s, then 2 gate closes at 2.0 and 3.0 s.
    # Most first: the gate's 2 before the cap's 1, whatever the run's or the alphabet's order
    # ("1011 Factory..." sorts before "1011 Service...").
    fails = (failing(0, "y", 1.0, CAP), failing(1, "g", 2.0, GATE), failing(2, "g", 3.0, GATE))
    report = report_of(("original", "V1"), [cell("p", "original", 3, *fails), cell("p", "V1", 3, *fails)])
    [item] = _untouched_items(report)
    assert item.index("2 connections closed 1011 \"Service startup incomplete\"") < item.index(
        "1 connection closed 1011 \"Factory SSOT validation failed\"")


def test_the_summary_does_not_call_the_long_run_the_only_failing_run_when_a_profile_fails() -> None:
    # Profile p fails (one gate close) and chapter 05's long run fails too: the long run is not the one failing
    # run, so the summary must not say "Only chapter 05's ...".
    fail = failing(0, "g", 1.0, GATE)
    evidence = evidence_from({"p": (fail,)}, [
        cell("p", "original", 1, fail), cell("p", "V1", 1),
        cell(LONG_RUN_PROFILE, "original", 1, fail), cell(LONG_RUN_PROFILE, "V1", 1)])
    assert evidence.failing == ["p"]
    assert "Only chapter 05's" not in str(summary_section(evidence).data)
