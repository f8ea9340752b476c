"""Re-check findings of stop 14 on the variant verdicts and two claims of the ledger.

Matrices and runs are built by hand (every value chosen here, not simulated): ``CAP`` is the manager cap's refusal
(spec 4.2), ``AUTH`` an auth refusal at token validation (spec 1 step 5, spec 5.3).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from investigation.analysis import hypotheses as module
from investigation.analysis.hypotheses import Baseline, has_factory_close_past_authentication
from investigation.analysis.variants import EARLIER, INTRODUCED, MORE_FAILURES, effect_label, effects
from investigation.profiles import load_profile
from investigation.trace import CauseLink, ConnectionResult, Decision, RunResult
from tests.test_hypotheses import auth_refused, hypothesis
from tests.test_review_rev1 import CAP, GATE, cell, failing, report_of

AUTH = ("1008 SSOT Auth failed", "auth.token_validation=token_rejected")


# --- finding 1: a close the candidate's own change causes is not moved aside ------------------------------------


def test_a_refusal_before_the_originals_failure_point_is_the_candidates_own_not_moved_aside() -> None:
    """Profile p, 3 connections. Connection 0 (client f, a foreign-signed token) is refused at token validation by
    every variant: untouched, so AUTH is a set-aside mechanism. Connection 1 (an E2E client the original lets in
    through the bypass, spec 5.2) is refused by the cap at 10 s under the original and V1; V5 refuses the bypass, so
    token validation (spec 5.3) refuses it at 10 s: the same (close, deciding decision) as connection 0."""
    foreign = failing(0, "f", 0.0, AUTH, forged="bad signature")
    report = report_of(("original", "V1", "V5"), [
        cell("p", "original", 3, foreign, failing(1, "e2e", 10.0, CAP), bypassed=(1,)),
        cell("p", "V1", 3, foreign, failing(1, "e2e", 10.0, CAP), bypassed=(1,)),
        cell("p", "V5", 3, foreign, failing(1, "e2e", 10.0, AUTH)),
    ])
    matrix = report.matrix
    assert [f.index for f in matrix.untouched("p")] == [0]
    # token validation comes before the manager cap in the pipeline (spec 1: step 5 authenticates, the factory
    # creates the manager after): the original never got connection 1 to token validation, V5's change sent it
    # there. Not a removal: moved_aside is empty, connection 1 is V5's change, and the verdict judges it.
    assert matrix.moved_aside("V5", "p") == ()
    assert [f.index for f in matrix.changed("V5", "p")] == [1]
    assert "under V5" not in report.untouched_text()
    # judged: the original first fails at 10 s (connection 1 by the cap), V5 at 10 s (connection 1 at validation)
    assert effects(matrix, "V5")["p"] == "same time"


def test_a_close_past_the_originals_failure_point_is_still_moved_aside() -> None:
    # Original: 0 at the gate (untouched), 1 refused by the cap at 5 s. V4 lets 1 past the cap (spec 4.2) and the
    # startup gate (spec 1 step 9, after the factory) closes it: moved aside, its failure counted removed.
    gate = failing(0, "g", 0.0, GATE)
    report = report_of(("original", "V3", "V4"), [
        cell("p", "original", 2, gate, failing(1, "u", 5.0, CAP)),
        cell("p", "V3", 2, gate, failing(1, "u", 5.0, CAP)),
        cell("p", "V4", 2, gate, failing(1, "u", 5.0, GATE)),
    ])
    assert [f.index for f in report.matrix.moved_aside("V4", "p")] == [1]
    assert dict(report.verdict_of("V4").effects) == {"p": "removed"}


# --- finding 6: the verdict table counts "more failures" as the per-profile tables label it --------------------


def test_the_verdict_table_counts_more_failures_apart_from_introduced() -> None:
    # Profile p: the original fails only on connection 0 at the gate, which every variant closes alike (set aside).
    # V5 adds a cap refusal of connection 1 at 20 s: the judged original does not fail, V5 does -> "introduced" by
    # failure_effect, which effect_label prints "more failures" (the original fails on p). Profile q: the original
    # fails nowhere and V5 refuses connection 0 at 1 s: introduced, labelled introduced.
    gate = failing(0, "g", 0.0, GATE)
    report = report_of(("original", "V1", "V5"), [
        cell("p", "original", 2, gate), cell("p", "V1", 2, gate),
        cell("p", "V5", 2, gate, failing(1, "u", 20.0, CAP)),
        cell("q", "original", 1), cell("q", "V1", 1), cell("q", "V5", 1, failing(0, "u", 1.0, CAP)),
    ])
    assert dict(report.verdict_of("V5").effects) == {"p": INTRODUCED, "q": INTRODUCED}
    assert effect_label(report.matrix, "V5", "p") == MORE_FAILURES
    assert effect_label(report.matrix, "V5", "q") == INTRODUCED
    lines = report.verdict_table().splitlines()
    assert "| removed / delayed / same / earlier / introduced / more failures |" in lines[0]
    v5 = next(line for line in lines if line.startswith("| V5 |"))
    # removed 0, delayed 0, same 0, earlier 0, introduced 1 (q), more failures 1 (p)
    assert "| 0 / 0 / 0 / 0 / 1 / 1 |" in v5
    assert effects(report.matrix, "V5")["p"] != EARLIER


# --- finding 4: the logging claim is about the factory closes ---------------------------------------------------


def closed(index: int, code: int, reason: str, decision: tuple[str, str], cause: str) -> ConnectionResult:
    return ConnectionResult(index=index, client="c", instance=0, user_id="u", at_s=float(index), close_code=code,
                            close_reason=reason, decisions=(Decision(*decision),),
                            cause_chain=(CauseLink("Error", cause),))


def test_the_logging_claim_judges_the_factory_closes_not_the_auth_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    # The original: connection 0 refused 1008 at token validation (cause "signature does not verify"), connection 1
    # closed 1011 by the cap (cause "maximum number of WebSocket managers"). V1's added line carries only the 1008's
    # cause: it names no cause of the one factory close the report is about -> does not hold.
    profile = load_profile("staging-e2e")
    original = RunResult(profile.name, "original", (
        closed(0, 1008, "SSOT Auth failed", ("auth.token_validation", "token_rejected"), "signature does not verify"),
        closed(1, 1011, "Factory SSOT validation failed", ("factory.manager_cap", "exceeded"),
               "maximum number of WebSocket managers"),
    ))
    monkeypatch.setattr(module, "added_log_lines", lambda *_: Counter({"auth: signature does not verify": 1}))
    holds, evidence = module.logging_names_the_refusal(profile, "V1")(original, {profile.name: original})
    assert holds is False
    assert "none carries the cause of the original's 1 factory close (decided at factory.manager_cap=exceeded;" in (
        evidence)


# --- finding 5: a production run refused at authentication tests nothing about the factory ---------------------


def test_production_impact_is_untested_on_a_run_refused_at_authentication_only() -> None:
    # Every connection closed 1008 (spec 1 step 5): none reached the factory, so "production gets factory closes"
    # is untested there (None), not "not met".
    refused = RunResult("production-cloud-run", "original", (auth_refused(0), auth_refused(1)))
    production = load_profile("production-cloud-run")
    trials = hypothesis("impact.production").design(Baseline({production.name: production}, {}))
    assert [t.predicate(refused, {})[0] for t in trials] == [None]
    assert has_factory_close_past_authentication(refused, {}) == (
        None, "no connection got past authentication (1008 SSOT Auth failed 2)")


def test_production_impact_still_judges_a_run_with_a_connection_past_authentication() -> None:
    # One 1008 and one connection left open (close None): the open one passed authentication and the factory
    # without a factory close -> not met (False).
    run = RunResult("production-cloud-run", "original", (auth_refused(0), ConnectionResult(
        index=1, client="c", instance=0, user_id="u", at_s=1.0, close_code=None, close_reason=None, decisions=(),
        cause_chain=())))
    assert has_factory_close_past_authentication(run, {})[0] is False


# --- finding 8: 05 defines the first failure by the failing connection's start -----------------------------------


def test_05_defines_the_first_failure_as_the_first_failing_connections_start() -> None:
    # cell_from_run dates the first failure by RunResult.first_failure().at_s, the connection's start; its 1008
    # comes later (spec 1 step 5, after the handshake). 05's definition must say so, not "when the first failure came".
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "05_variants.ipynb").read_text())
    text = " ".join("".join(c["source"]).replace("\n", " ") for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert "when the first failure came" not in text
    assert ("the virtual time at which the first failing connection opened (its close can come later: a failing "
            "connection is dated by its start") in text
