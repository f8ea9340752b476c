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

from investigation.postmortem import (
    Evidence,
    action_items,
    detection_section,
    divergence_figure,
    gather_evidence,
    impact_table,
    lessons,
    postmortem_key_result,
    root_cause_chart,
    root_cause_section,
    summary_section,
    trigger_chart,
)
from investigation.profiles import profile_from_dict
from investigation.simulate import simulate


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    return gather_evidence("local-debug")


def reconnecting_runs(variant: str = "original") -> dict[str, object]:
    def profile(name: str, connections: int) -> object:
        return simulate(profile_from_dict(name, {
            "description": name, "env": {"ENVIRONMENT": "test"},
            "clients": [{"name": "tab", "user_id": "test-user-12345", "connections": connections,
                         "spacing_s": 10.0, "hold_s": 4.0}],
        }), variant)

    return {"local-debug": profile("local-debug", 1), "reconnects": profile("reconnects", 7)}


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
