"""Tests of the postmortem sections: every statement follows the evidence it is given.

The sections are checked on the real evidence (one gathering per module) and on
the same evidence with its runs swapped for hand-made ones whose outcome follows
from the spec: one user reconnecting 7 times, 10 s apart, to one instance holds 5
managers after the 5th connection (spec 4.2, cap 5, nothing released on
disconnect), so connections 6 and 7 (at 50 s and 60 s) close 1011. Under V5 (spec 8) the
same two close 1013 "Service temporarily unavailable" instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from investigation.analysis.hypotheses import Verdict
from investigation.analysis.isolate import FactorChange
from investigation.postmortem import (
    Evidence,
    action_items,
    detection_section,
    divergence_figure,
    gather_evidence,
    impact_section,
    impact_table,
    lessons,
    postmortem_key_result,
    root_cause_chart,
    root_cause_section,
    summary_section,
    trigger_chart,
    trigger_section,
)
from investigation.profiles import profile_from_dict
from investigation.simulate import simulate
from investigation.trace import CauseLink, ConnectionResult, Decision, RunResult


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    return gather_evidence("local-debug")


def reconnecting_run(name: str, connections: int, variant: str = "original") -> RunResult:
    """One user reconnecting ``connections`` times, 10 s apart, to one instance (see the module docstring)."""
    return simulate(profile_from_dict(name, {
        "description": name, "env": {"ENVIRONMENT": "test"},
        "clients": [{"name": "tab", "user_id": "test-user-12345", "connections": connections,
                     "spacing_s": 10.0, "hold_s": 4.0}],
    }), variant)


def reconnecting_runs(variant: str = "original") -> dict[str, RunResult]:
    return {"local-debug": reconnecting_run("local-debug", 1, variant),
            "reconnects": reconnecting_run("reconnects", 7, variant)}


def table_row(table: str, first_cell: str) -> list[str]:
    return next(line for line in table.splitlines() if line.startswith(first_cell + " ")).split()


def test_impact_counts_follow_the_runs(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    table = impact_table(hand)
    assert table_row(table, "reconnects")[:6] == ["reconnects", "7", "2", "1", "1", "50"]
    assert table_row(table, "local-debug")[:6] == ["local-debug", "1", "0", "1", "0", "-"]
    assert table_row(table, "all")[:5] == ["all", "profiles", "8", "2", "-"]


def test_summary_and_key_result_count_what_failed(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    summary = summary_section(hand).data
    assert "**1 of 2 environment profiles**" in summary
    assert "2 of 8 connections, 1 user" in summary
    assert "factory.manager_cap=exceeded (2)" in summary
    assert postmortem_key_result(hand).startswith("1 of 2 profiles fail (2 connections, 1 user)")


def test_detection_names_the_first_failure_and_the_local_evidence(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    text = detection_section(hand).data
    assert "reconnects: #5 at 50 s" in text
    assert "(the report's evidence of \"works locally\"): 1." in text


def test_no_failure_means_no_root_cause_figure(evidence: Evidence) -> None:
    passing = {"local-debug": reconnecting_runs()["local-debug"]}
    hand = dataclasses.replace(evidence, runs=passing, reduction=None)
    assert hand.worst_profile is None
    _, table = root_cause_chart(hand)
    assert table == "no failing profile: no timeline to draw"
    assert trigger_chart(hand)[1] == "no failing profile: no traffic to reduce"


def test_real_impact_matches_the_profiles(evidence: Evidence) -> None:
    # staging-e2e: three test processes x 12 tests, one connection each (data/profiles/staging-e2e.toml)
    assert table_row(impact_table(evidence), "staging-e2e")[:2] == ["staging-e2e", "36"]
    failing = sorted(name for name, run in evidence.runs.items() if run.failures)
    assert evidence.failing == failing
    assert postmortem_key_result(evidence).startswith(f"{len(failing)} of {len(evidence.runs)} profiles fail")


def test_action_items_follow_the_variant_verdicts(evidence: Evidence) -> None:
    items = action_items(evidence).data.splitlines()
    recommended = evidence.variants.recommended
    if recommended is None:
        assert not any(item.startswith("1. Deploy") for item in items)
    else:
        assert items[0].startswith(f"1. Deploy **{recommended}**")
    not_shipped = [v.variant for v in evidence.variants.verdicts if v.variant != recommended
                   and v.failure != "removes the failure on every profile"]
    assert [item.split("**")[1] for item in items if "Do not ship" in item] == not_shipped


def test_close_reason_lesson_counts_only_connections_closed_with_the_factory_reason(evidence: Evidence) -> None:
    factory = lessons(dataclasses.replace(evidence, runs=reconnecting_runs())).data
    assert ('"Factory SSOT validation failed" was sent for connections whose SSOT validation passed '
            "(2 of 2; detection)") in factory
    capacity = lessons(dataclasses.replace(evidence, runs=reconnecting_runs("V5"))).data
    assert "A close reason is a label" not in capacity


def test_the_divergence_chart_is_drawn_once_per_evidence(evidence: Evidence, monkeypatch: pytest.MonkeyPatch) -> None:
    from investigation import postmortem

    drawn: list[str] = []
    original = postmortem.divergence_chart

    def counting(runs: Any, reference: str) -> Any:
        drawn.append(reference)
        return original(runs, reference)

    monkeypatch.setattr(postmortem, "divergence_chart", counting)
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    root_cause_section(hand)
    lessons(hand)
    assert divergence_figure(hand)[1].profiles == ("local-debug", "reconnects")
    assert drawn == ["local-debug"]


def test_worst_profile_is_the_one_with_most_failing_connections(evidence: Evidence) -> None:
    # "a-few" reconnects 6 times (only the 6th fails), "reconnects" 7 times (two fail): the worst is the
    # latter although it sorts last.
    runs = {**reconnecting_runs(), "a-few": reconnecting_run("a-few", 6)}
    hand = dataclasses.replace(evidence, runs=runs)
    assert hand.failing == ["a-few", "reconnects"]
    assert hand.worst_profile == "reconnects"
    _, table = root_cause_chart(hand)
    assert table_row(table, "test-user-12345")[:3] == ["test-user-12345", "0", "7"]


def test_the_traffic_reduced_is_the_worst_profiles(evidence: Evidence) -> None:
    # "the failing profile with the most failing connections (ties: by name)"
    most = sorted(evidence.failing, key=lambda name: (-len(evidence.runs[name].failures), name))[0]
    assert evidence.reduction is not None
    assert evidence.reduction.profile == most


def test_mixed_closes_are_all_summarised_and_not_called_one_close(evidence: Evidence) -> None:
    # Original code: 2 closes 1011 with the factory reason; V5: the same two close 1013 (spec 8).
    runs = {**reconnecting_runs(), "capacity": reconnecting_run("capacity", 7, "V5")}
    hand = dataclasses.replace(evidence, runs=runs)
    assert ("closed WebSocket connections with 1011 Factory SSOT validation failed (2), "
            "1013 Service temporarily unavailable (2): 4 of 15 connections, 1 user.") in summary_section(hand).data
    assert "Give each cause its own close" not in action_items(hand).data
    assert "(2 of 2; detection)" in lessons(hand).data


def test_impact_section_names_failing_and_passing_profiles(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert impact_section(hand).data == (
        "2 connections failed, in 1 profile (reconnects); 1 distinct user hit. "
        "Profiles without a failing connection: local-debug."
    )


def test_root_cause_names_the_cap_as_the_earliest_separating_point(evidence: Evidence) -> None:
    # The 6th connection and the 1st follow the same path until the 6th finds the cap exceeded.
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert ("- Earliest decision point whose outcome separates failing from passing profiles: "
            "`factory.manager_cap` (failing: exceeded; passing: below).") in root_cause_section(hand).data.splitlines()


def test_lessons_skip_a_first_difference_that_is_the_cause_and_count_the_local_evidence(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert hand.reduction is not None
    text = lessons(hand).data
    assert "The first difference" not in text
    assert (f"- The local evidence ran 1 connection; the smallest traffic that fails needs "
            f"{len(hand.reduction.kept)} (trigger).") in text.splitlines()
    assert len(hand.reduction.kept) < len(hand.reduction.planned)


def test_summary_and_key_result_count_refuted_and_supported_claims(evidence: Evidence) -> None:
    verdicts = [f.verdict for f in evidence.ledger.findings]
    refuted, supported = verdicts.count(Verdict.REFUTED), verdicts.count(Verdict.SUPPORTED)
    assert refuted != supported
    assert f"{refuted} are refuted, {supported} supported" in summary_section(evidence).data
    assert f"report claims refuted {refuted} of {len(verdicts)}" in postmortem_key_result(evidence)
    recommended = evidence.variants.recommended
    assert recommended is not None
    assert f"Recommended resolution: **{recommended}**" in summary_section(evidence).data


def test_trigger_counts_every_isolated_factor_and_lists_only_environment_ones(evidence: Evidence) -> None:
    # Two profiles isolated to the same traffic factor, one of them also to an env variable:
    # three factors in total, one environment factor.
    first, second = sorted(evidence.isolation.isolations)[:2]
    traffic = FactorChange("clients[0].connections", 1, 12)
    environment = FactorChange("env.ENVIRONMENT", "test", "staging")
    isolations = {
        first: dataclasses.replace(evidence.isolation.isolations[first], minimal_difference=(traffic, environment)),
        second: dataclasses.replace(evidence.isolation.isolations[second], minimal_difference=(traffic,)),
    }
    hand = dataclasses.replace(evidence, isolation=dataclasses.replace(evidence.isolation, isolations=isolations))
    line = trigger_section(hand).data.splitlines()[0]
    assert "isolated 3 failure-inducing factors in total over 2 profiles" in line
    assert line.endswith("among them: env.ENVIRONMENT.")


def test_trigger_states_the_kept_traffic_and_its_users(evidence: Evidence) -> None:
    reduction = evidence.reduction
    assert reduction is not None
    # 1-minimal failing traffic: one user's connections past the cap on one instance (spec 4.2)
    (user,) = {str(p.client.user_id) for p in reduction.kept}
    assert 1 < len(reduction.kept) < len(reduction.planned)
    assert (f"{len(reduction.kept)} of {len(reduction.planned)} connections, 1 user ({user}), still fail") in (
        trigger_section(evidence).data)


def test_correcting_the_report_counts_refuted_of_all_claims_and_lists_at_most_five(evidence: Evidence) -> None:
    refuted = [f for f in evidence.ledger.findings if f.verdict is Verdict.REFUTED]
    others = [f for f in evidence.ledger.findings if f.verdict is not Verdict.REFUTED]
    assert others
    for shown in (5, 6):
        ledger = dataclasses.replace(evidence.ledger, findings=(*refuted[:shown], *others))
        item = next(line for line in action_items(dataclasses.replace(evidence, ledger=ledger)).data.splitlines()
                    if "Correct the incident report" in line)
        keys = ", ".join(f"`{f.key}`" for f in refuted[:5])
        assert item.endswith(f"{shown} of its {shown + len(others)} claims are refuted by runs "
                             f"({keys}{', ...' if shown > 5 else ''}).")


def test_auth_bypass_item_follows_the_original_codes_safety(evidence: Evidence) -> None:
    original = evidence.variants.matrix.safety_of("original")
    assert original.unsigned_accepted
    assert any(line.split(". ", 1)[1].startswith("Close the auth bypass")
               for line in action_items(evidence).data.splitlines())


def test_no_auth_bypass_item_when_the_original_code_refuses_unsigned_tokens(evidence: Evidence) -> None:
    matrix = evidence.variants.matrix
    safety = tuple(dataclasses.replace(row, unsigned_accepted=False) if row.variant == "original" else row
                   for row in matrix.safety)
    variants = dataclasses.replace(evidence.variants, matrix=dataclasses.replace(matrix, safety=safety))
    assert "Close the auth bypass" not in action_items(dataclasses.replace(evidence, variants=variants)).data


# A made-up factory close caused by a validation ValueError, not by the cap.
VALIDATION_ERROR_CLOSE = ConnectionResult(
    index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=1011,
    close_reason="Factory SSOT validation failed", decisions=(),
    cause_chain=(CauseLink("ValueError", "SSOT validation failed"),))


def test_no_own_close_item_when_the_factory_close_had_a_validation_error(evidence: Evidence) -> None:
    # The only failing connection closed "validation failed" because validation raised ValueError:
    # its close does name its cause, so no action asks for a separate close.
    runs = {**reconnecting_runs(), "invalid": RunResult("invalid", "original", (VALIDATION_ERROR_CLOSE,))}
    runs.pop("reconnects")
    assert "Give each cause its own close" not in action_items(dataclasses.replace(evidence, runs=runs)).data


def test_root_cause_counts_only_failures_that_started_at_the_cap(evidence: Evidence) -> None:
    # Connections 6 and 7 of "reconnects" start with 5 managers held; the made-up failing connection
    # of "invalid" starts with none.
    runs = {**reconnecting_runs(), "invalid": RunResult("invalid", "original", (VALIDATION_ERROR_CLOSE,))}
    text = root_cause_section(dataclasses.replace(evidence, runs=runs)).data
    assert "- 2 of 3 failing connections started while their user already held the per-user cap" in text


def test_key_result_names_the_decision_that_decided_most_failures(evidence: Evidence) -> None:
    # Two failures decided at the cap, one made-up failure decided by auth.result (alphabetically first).
    rejected = ConnectionResult(index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=1008,
                                close_reason="Authentication failed",
                                decisions=(Decision("auth.result", "rejected"),), cause_chain=())
    runs = {**reconnecting_runs(), "rejected": RunResult("rejected", "original", (rejected,))}
    key_result = postmortem_key_result(dataclasses.replace(evidence, runs=runs))
    assert "; decided by factory.manager_cap=exceeded; " in key_result


def test_only_the_report_s_debug_run_is_called_its_works_locally_evidence(evidence: Evidence) -> None:
    # reference=pytest: the report's "works locally" rests on local-debug (seed report), not on pytest's runs
    runs = {**reconnecting_runs(), "pytest": reconnecting_run("pytest", 2)}
    text = detection_section(dataclasses.replace(evidence, reference="pytest", runs=runs)).data
    assert "- Connections of the reference `pytest` (the reference chosen for this postmortem; the report's " \
           "evidence of \"works locally\" is local-debug): 2." in text
