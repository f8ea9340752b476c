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
import re
from typing import Any

import pytest

from investigation.analysis.adversarial import CONTEXT_ENVIRONMENTS, adversarial_outcomes
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
    assert 'closed 2 of 8 WebSocket connections with 1011 "Factory SSOT validation failed"; 1 distinct user hit.' \
        in summary
    assert "factory.manager_cap=exceeded (2)" in summary
    assert postmortem_key_result(hand).startswith("1 of 2 profiles fail (2 connections, 1 distinct user id)")


def test_detection_names_the_first_failure_and_the_local_evidence(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    text = detection_section(hand).data
    # one client, 7 connections: #5 in start order (from 0) is the client's 6th connection
    assert "reconnects: connection #5 of the run (tab's 6th) at 50 s" in text
    assert "(the report's evidence of \"works locally\"): 1." in text


def test_detection_counts_the_error_frames_that_named_the_cause(evidence: Evidence) -> None:
    # reconnects' 6th and 7th connections meet the cap (module docstring); spec 1 step 8 sends, before the 1011,
    # an error frame whose details.error_message is the FactoryInitializationError's full text, which wraps the
    # cap's RuntimeError "User test-user-12345 has reached the maximum number of WebSocket managers (5). ..."
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert ("- 2 of 2 failing connections were sent, before the close, an error frame whose details.error_message "
            "carried the innermost cause's full text (spec 1, step 8; e.g. \"User test-user-12345 has reached the "
            "maximum number of WebSocket managers (5)\"): the diagnosis reached every failing client; the close "
            "reason did not carry it.") in detection_section(hand).data.splitlines()
    # the real runs: all 13 failing connections are factory closes at the cap (root cause), so 13 of 13
    assert "- 13 of 13 failing connections were sent, before the close, an error frame" in detection_section(evidence).data
    stripped = {name: dataclasses.replace(run, connections=tuple(dataclasses.replace(c, frames=())
                                                                 for c in run.connections))
                for name, run in reconnecting_runs().items()}
    assert "No failing connection's error frame carried its innermost cause" in detection_section(
        dataclasses.replace(evidence, runs=stripped)).data


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
    # the auth bypass comes first: the original accepts alg none + E2E headers in production-cloud-run, whose
    # ENVIRONMENT is "production" (spec 5.2: the E2E bypass skips the signature check), so the deploy item is 2nd
    if recommended is None:
        assert not any(". Deploy" in item for item in items)
    else:
        assert items[1].startswith(f"2. Deploy **{recommended}**")
    not_shipped = [v.variant for v in evidence.variants.verdicts if v.variant != recommended
                   and v.failure != "removes the failure on every profile"]
    assert [item.split("**")[1] for item in items if "Do not ship" in item] == not_shipped


def test_close_reason_lesson_counts_only_connections_closed_with_the_factory_reason(evidence: Evidence) -> None:
    factory = lessons(dataclasses.replace(evidence, runs=reconnecting_runs())).data
    # spec 1 step 8: the error frame before each 1011 carries the exception's full text, which holds the cap's
    # RuntimeError message (spec 4.2), so both refused connections were told the cause
    assert ('"Factory SSOT validation failed" was sent for connections whose SSOT validation passed (2 of 2); the '
            "diagnosis was in the error frame sent before the close, whose details.error_message named the innermost "
            "cause for 2 of 2: read the frame, not the close reason (detection).") in factory
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
    assert ('closed 4 of 15 WebSocket connections: 2 with 1011 "Factory SSOT validation failed", '
            '2 with 1013 "Service temporarily unavailable"; 1 distinct user hit.') in summary_section(hand).data
    assert "1 distinct user id in 2 user-profile pairs (test-user-12345 in 2 profiles) hit." in impact_section(hand).data
    # the 1013s have their own close; the 2 factory-reason closes with a RuntimeError still do not (per close reason)
    assert item_starting(hand, "Give each cause").startswith(
        'Give each cause its own close: 2 of the 4 failing connections closed 1011 "Factory SSOT validation failed" '
        "although their innermost cause was RuntimeError (2).")
    assert item_starting(dataclasses.replace(evidence, runs=reconnecting_runs()), "Give each cause") == (
        'Give each cause its own close: every failing connection closed 1011 "Factory SSOT validation failed" '
        "although its innermost cause was RuntimeError (2). V5's switch `capacity_close_1013` does that: under V5 "
        'the cap\'s refusals close 1013 "Service temporarily unavailable".')
    # only the 2 factory-reason closes count (not V5's 1013s), both for validation passed and for the error frame
    assert "passed (2 of 2); the diagnosis was in the error frame" in lessons(hand).data
    assert "named the innermost cause for 2 of 2: read the frame" in lessons(hand).data


def test_impact_section_names_failing_and_passing_profiles(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert impact_section(hand).data == (
        "2 connections failed, in 1 profile (reconnects); 1 distinct user id hit. "
        "Profiles without a failing connection: local-debug."
    )


def test_root_cause_names_the_cap_as_the_earliest_separating_point(evidence: Evidence) -> None:
    # The 6th connection and the 1st follow the same path until the 6th finds the cap exceeded.
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert ("- Earliest decision point whose outcome separates failing from passing profiles: "
            "`factory.manager_cap` (failing: exceeded; passing: below).") in root_cause_section(hand).data.splitlines()


def test_lessons_skip_a_first_difference_that_is_the_cause_and_count_the_local_evidence(evidence: Evidence) -> None:
    # "reconnects": one user, one instance, cap 5 and nothing released: the 6th connection (50 s) is refused first.
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    text = lessons(hand).data
    assert "The first difference" not in text
    assert ("- The report's local evidence (`local-debug`) ran at most 1 connection per user and backend instance; "
            "in every profile's traffic no connection was refused before its user's 6th connection to one instance "
            "(the fewest: test-user-12345's 6th connection to instance 0 of reconnects, at 50 s): the failure "
            "needs repeated connections of one user to one instance, which the local evidence never made (trigger).") \
        in text.splitlines()


def test_first_difference_lesson_cites_where_the_isolated_pairs_part(evidence: Evidence) -> None:
    # Every failing profile sets ENVIRONMENT to something other than local-debug's "test", the first point
    # traced (route.environment, 4 profiles). dd isolates a number of connections of one client in each of the
    # 4 failing profiles, so each isolated pair runs one traffic but for extra connections of one user: their
    # traces agree until the extra connection meets the cap (factory.manager_cap, spec 4.2), in all 4 pairs.
    assert ("- The first difference between a failing profile and `local-debug` (route.environment (4)) is not "
            "where the failure is decided: with everything else held fixed, dd's isolated pairs first part at "
            "factory.manager_cap in 4 of 4 pairs (chapter 04). Comparing two environments names a difference, not a "
            "cause (root cause).") in lessons(evidence).data.splitlines()


def test_no_first_difference_lesson_without_an_isolated_pair(evidence: Evidence) -> None:
    # Without dd's evidence the earliest separating point is only a correlation over these profiles: no lesson.
    hand = dataclasses.replace(evidence, isolation=dataclasses.replace(evidence.isolation, isolations={}))
    assert "The first difference" not in lessons(hand).data


def test_the_earliest_refusal_lesson_is_not_the_size_of_the_1_minimal_traffic(evidence: Evidence) -> None:
    # ddmin's 6 connections are 1-minimal, not the fewest: staging-e2e-user-003's start_agent messages leak
    # managers (spec 1 step 12; 01 timeline on instance 0: 56:1 58:2 74:3 76:4 92:5), so its 4th connection
    # to instance 0 (110 s) is refused.
    # staging-e2e first fails at 81 s (detection), at a 6th connection: the fewest connections are not the earliest.
    text = lessons(evidence).data
    assert "smallest traffic" not in text
    assert ("no connection was refused before its user's 4th connection to one instance (the fewest: "
            "staging-e2e-user-003's 4th connection to instance 0 of staging-e2e, at 110 s)") in text
    # A start_agent refusal (no close) counts as refused too, and comes sooner: user-003 on instance 2 (01 timeline:
    # 2:1 4:2 20:3 22:4 38:5) reaches the cap with its 3rd connection's manager at 38 s, each earlier connection
    # and its start_agent leaving one; that connection's start_agent is refused (spec 4.2, cap 5; spec 1 step 12).
    assert text.count("no user was refused") == 0
    assert ("A start_agent message was refused sooner, without a close: on staging-e2e-user-003's 3rd connection to "
            "instance 2 of staging-e2e, started at 38 s.") in text
    first = evidence.runs["staging-e2e"].first_failure()
    assert first is not None and first.at_s < 110
    assert "earliest" not in text


def test_no_earliest_refusal_lesson_when_the_reference_made_as_many_connections(evidence: Evidence) -> None:
    # With "reconnects" as reference the reference itself made 7 connections of one user to one instance.
    hand = dataclasses.replace(evidence, reference="reconnects", runs=reconnecting_runs())
    assert "was refused before" not in lessons(hand).data
    assert "no connection was refused before" not in lessons(hand).data


def test_summary_and_key_result_count_refuted_and_supported_claims(evidence: Evidence) -> None:
    verdicts = [f.verdict for f in evidence.ledger.findings]
    refuted, supported = verdicts.count(Verdict.REFUTED), verdicts.count(Verdict.SUPPORTED)
    assert refuted != supported
    assert f"{refuted} are refuted, {supported} supported" in summary_section(evidence).data
    # a claim the spec gives no factor for (untestable_because) is not tested with runs
    tested = sum(1 for f in evidence.ledger.findings if not f.hypothesis.untestable_because)
    assert tested < len(verdicts)
    claims = f"{len(verdicts)} claims of the report ({tested} tested with runs)"
    assert f"Of {claims}, {refuted} are refuted, {supported} supported" in summary_section(evidence).data
    assert (f"report claims refuted {refuted} of {len(verdicts)} ({tested} tested with runs)"
            in postmortem_key_result(evidence))
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
    assert ("isolated 3 failure-inducing factors over 2 profiles, 2 distinct: `clients[0].connections` (2 profiles), "
            "`env.ENVIRONMENT` (1 profile)") in line
    assert line.endswith("among them: env.ENVIRONMENT.")


def test_trigger_counts_one_factor_per_profile_and_the_distinct_ones(evidence: Evidence) -> None:
    # 04: cloud-run-env-missing, staging-cloud-run and staging-env-whitespace each isolate to their sixth client's
    # connections (clients[5], absent in local-debug), staging-e2e to its first client's 12 connections.
    line = trigger_section(evidence).data.splitlines()[0]
    assert ("isolated one failure-inducing factor per profile over 4 profiles, 2 distinct: "
            "`clients[5].connections` (3 profiles), `clients[0].connections` (1 profile)") in line
    assert "in total" not in line


def test_trigger_names_the_timing_each_isolated_difference_is_applied_with(evidence: Evidence) -> None:
    # staging-cloud-run.toml: user-e-mobile starts at 1200 s, 30 s apart, each held 25 s; staging-e2e.toml:
    # e2e-process-1 14 s apart, held 4 s. dd's passing mixtures carry these, so the count is not the whole change.
    line = next(line for line in trigger_section(evidence).data.splitlines() if line.startswith("- Per profile: "))
    assert ("staging-cloud-run: client user-e-mobile of staging-cloud-run: 6 connections (absent from local-debug), "
            "applied to dd's passing mixture, which already gives that client staging-cloud-run's start_s 1200.0, "
            "spacing_s 30.0 and hold_s 25.0 (and its messages, name, subprotocols);") in line
    assert "staging-e2e's spacing_s 14.0 and hold_s 4.0" in line


def test_trigger_states_the_kept_traffic_and_its_users(evidence: Evidence) -> None:
    reduction = evidence.reduction
    assert reduction is not None
    # 1-minimal failing traffic: one user's 6 connections to one instance, one manager each (no start_agent):
    # the first five fill the cap of 5 (spec 4.2) and stay open, only the 6th is refused.
    # planned: staging-e2e's 3 test processes x 12 tests = 36 connections; kept: those 6.
    (user,) = {str(p.client.user_id) for p in reduction.kept}
    assert (len(reduction.kept), len(reduction.planned)) == (6, 36)
    assert [c.close_code for c in reduction.run.connections] == [None] * 5 + [1011]
    text = trigger_section(evidence).data
    assert (f"- A 1-minimal failing traffic of {reduction.profile} (ddmin over its planned connections: no single "
            f"connection of it can be left out): 6 of the 36 planned "
            f"connections, all of user {user}: 5 end with no close frame (open), and the 6th closes 1011 "
            '"Factory SSOT validation failed" (innermost RuntimeError).') in text.splitlines()
    assert "still fail the same way" not in text


def test_correcting_the_report_counts_refuted_of_all_claims_and_lists_at_most_five(evidence: Evidence) -> None:
    refuted = [f for f in evidence.ledger.findings if f.verdict is Verdict.REFUTED]
    others = [f for f in evidence.ledger.findings if f.verdict is not Verdict.REFUTED]
    assert others
    for shown in (5, 6):
        ledger = dataclasses.replace(evidence.ledger, findings=(*refuted[:shown], *others))
        item = next(line for line in action_items(dataclasses.replace(evidence, ledger=ledger)).data.splitlines()
                    if "Correct the incident report" in line)
        keys = ", ".join(f"`{f.key}`" for f in refuted[:5])
        tested = sum(1 for f in ledger.findings if not f.hypothesis.untestable_because)
        assert item.endswith(f"of {shown + len(others)} claims of the report ({tested} tested with runs), {shown} "
                             f"are refuted by runs ({keys}{', ...' if shown > 5 else ''}).")


def test_auth_bypass_item_follows_the_original_codes_safety(evidence: Evidence) -> None:
    original = evidence.variants.matrix.safety_of("original")
    assert original.unsigned_accepted
    assert any(line.split(". ", 1)[1].startswith("Close the auth bypass")
               for line in action_items(evidence).data.splitlines())


def item_starting(evidence: Evidence, start: str) -> str:
    return next(line.split(". ", 1)[1] for line in action_items(evidence).data.splitlines()
                if line.split(". ", 1)[1].startswith(start))


def item_number(evidence: Evidence, start: str) -> int:
    return next(int(line.split(". ", 1)[0]) for line in action_items(evidence).data.splitlines()
                if line.split(". ", 1)[1].startswith(start))


# Chapter 05's set: 8 hostile contexts x 2 environments (staging-cloud-run, staging-no-cloud-signal) + 5 hostile
# tokens x 5 deployed environments = 16 + 25 = 41. The deployed environments: the 9 profiles less the local
# development, local-debug and pytest, with staging-e2e's environment (staging-cloud-run's, key for key) once:
# cloud-run-env-missing, production-cloud-run, staging-cloud-run, staging-env-whitespace, staging-no-cloud-signal
# (test_variants pins "19 of 41" accepted by the original).
ADVERSARIAL_SET_SIZE = 41


def with_safety_row(evidence: Evidence, variant: str, **changes: Any) -> Evidence:
    """``evidence`` with ``variant``'s row of the safety table replaced by ``changes``."""
    matrix = evidence.variants.matrix
    safety = tuple(dataclasses.replace(row, **changes) if row.variant == variant else row for row in matrix.safety)
    return dataclasses.replace(evidence, variants=dataclasses.replace(
        evidence.variants, matrix=dataclasses.replace(matrix, safety=safety)))


def test_auth_bypass_item_names_the_unsigned_members_and_v5_s_gap(evidence: Evidence) -> None:
    # The token members: 5 cases x 5 deployed environments = 25 (see ADVERSARIAL_SET_SIZE). The original accepts
    # alg none + E2E headers and forged E2E headers in all 5 (the E2E bypass skips the signature check everywhere,
    # spec 5.2). V5 refuses the bypass where ENVIRONMENT as the route reads it (spec 1 step 1: lower-cased, not
    # stripped, "development" when unset) is staging or production (spec 8): staging-env-whitespace's 'staging '
    # is neither, nor is the unset ENVIRONMENT of cloud-run-env-missing and staging-no-cloud-signal, so the
    # unsigned token still authenticates in those 3.
    # Refusing the bypass closes every connection of staging-e2e (3 processes x 12 tests = 36) and of the long
    # E2E run (3 x 60 = 180) 1008.
    # The 25 are token/environment cases, not tokens: 10 accepted = 2 tokens (alg none + E2E headers, forged E2E
    # headers) x 5 environments; the unsigned one of them is a single token, accepted in the 5 environments.
    item = item_starting(evidence, "Close the auth bypass")
    assert item == (
        "Close the auth bypass: under the original, 10 of the 25 token/environment cases (5 tokens in 5 environments) "
        f"of the adversarial set ({ADVERSARIAL_SET_SIZE} fixed hostile inputs, chapter 05) authenticate; the one "
        "unsigned token that gets in (alg none + E2E headers) does so in 5 environments (cloud-run-env-missing, "
        "production-cloud-run, staging-cloud-run, staging-env-whitespace, staging-no-cloud-signal). First give the "
        "E2E suite tokens that pass real validation (under V5, which refuses the bypass, all 36 connections of "
        "staging-e2e and all 180 of staging-e2e-long close 1008). Make the check also treat ENVIRONMENT='staging ' "
        "and an unset ENVIRONMENT as deployed: V5 refuses the bypass only where ENVIRONMENT, lower-cased and not "
        "stripped, is staging or production, and reads an unset one as development, so it still accepts alg none + "
        "E2E headers in cloud-run-env-missing (ENVIRONMENT unset), staging-env-whitespace (ENVIRONMENT='staging ') "
        "and staging-no-cloud-signal (ENVIRONMENT unset).")


def test_the_adversarial_set_is_defined_once_where_first_used(evidence: Evidence) -> None:
    text = action_items(evidence).data
    definition = f"adversarial set ({ADVERSARIAL_SET_SIZE} fixed hostile inputs, chapter 05)"
    assert text.count(definition) == 1
    assert text.index(definition) < text.index("Refuse invalid user contexts")
    assert text.count("adversarial") == 1
    # without the auth-bypass item, the context item is the first to use the set and defines it
    no_bypass = with_safety_row(evidence, "original", unsigned_accepted=False)
    assert definition in item_starting(no_bypass, "Refuse invalid user contexts")


def test_context_members_have_their_own_item_by_environment(evidence: Evidence) -> None:
    # 8 context cases x 2 environments = 16 members. Neither relaxed validation (staging-cloud-run, spec 4.3) nor
    # strict validation (staging-no-cloud-signal, spec 4.4) checks placeholders, so placeholder ids get a manager
    # in both. Which other members get one follows chapter 05's outcomes (the counting rule may change there).
    # Relaxed validation (spec 4.3 item 4) only warns on the 4 blank/missing ids; strict validation (4.4) refuses
    # them, and an int user_id (4.4.3), with a 1011 close. So 9 of 16 get through: 4 blank ids + placeholder ids +
    # the 3 stubbed below in staging-cloud-run, placeholder ids alone in staging-no-cloud-signal; 6 with a manager.
    item = item_starting(evidence, "Refuse invalid user contexts")
    contexts = [o for o in adversarial_outcomes("original") if o.kind == "context"]
    accepted = [o for o in contexts if o.accepted]
    assert {o.environment for o in accepted if o.case == "placeholder ids"} == set(CONTEXT_ENVIRONMENTS)
    # Relaxed validation raises a plain "STAGING CRITICAL" ValueError (no "SSOT") for a foreign class and a
    # non-string user_id (spec 4.3 items 1, 3); the route retries, then goes on with the emergency stub (spec 1,
    # step 8). Those three are let through on the stub; every other accepted member gets a manager.
    stubbed = {(o.environment, o.case) for o in accepted if o.route_step == "emergency_stub"}
    assert stubbed == {("staging-cloud-run", case)
                       for case in ("foreign class (models)", "foreign class (supervisor)", "non-string user_id")}
    # The set's contexts are injected at the manager step, not brought by a connection. The backend's constructor
    # (spec 2) refuses, of the 9: blank thread_id, empty request_id, missing run_id (step 1: falsy or blank),
    # non-string user_id (step 1: not a str), placeholder ids in both environments (step 2) = 6; it does not
    # check websocket_client_id, and the two foreign classes are not its class.
    assert item == (
        "Refuse invalid user contexts in create_websocket_manager as defence in depth: injected at the route's manager "
        # 8 hostile contexts, each in 2 environments (relaxed and strict validation): 16 cases
        "step, the context constructor bypassed, 9 of the set's 16 context/environment cases (8 contexts in 2 "
        "environments) are let through by the route "
        "under the original (6 with a manager, 3 with the emergency stub after a plain ValueError): "
        "in staging-cloud-run (relaxed validation) blank thread_id, blank websocket_client_id, empty request_id, "
        "foreign class (models), foreign class (supervisor), missing run_id, non-string user_id, placeholder ids; "
        "in staging-no-cloud-signal (strict validation) placeholder ids. The context constructor itself refuses the "
        "ids of 6 of these 9 (spec 2), so no connection brings those.")


def test_do_not_ship_v5_says_where_it_fails_earlier_and_points_to_the_bypass_item(evidence: Evidence) -> None:
    # Original staging-e2e (and its long run): first failure at 81 s (user-002's 6th connection to instance 1,
    # 01 timeline); V5 refuses every E2E-suite connection 1008 from the first one at 0 s (36 and 180 connections).
    item = item_starting(evidence, "Do not ship **V5**")
    bypass = item_number(evidence, "Close the auth bypass")
    assert item == (
        "Do not ship **V5** (distinct closes: capacity 1013, no E2E bypass in staging/production) as a whole: it "
        'fails earlier or more widely; 1008 "SSOT Auth failed" closes all 36 connections of staging-e2e and all 180 '
        "of staging-e2e-long from 0 s, where the original first fails at 81 s. Ship its switch "
        f"`refuse_e2e_bypass_when_deployed` as item {bypass} says.")
    assert "first refusal" not in action_items(evidence).data


def test_do_not_ship_items_read_as_sentences(evidence: Evidence) -> None:
    # V1 changes three switches, none of which another item recommends (V4's release on disconnect, the bypass):
    # nothing of V1 is worth shipping, so not "as a whole"; its summary holds parentheses, which become commas
    # inside the item's own. V3 only moves the long run's failure (chapter 05: delays the failure).
    text = action_items(evidence).data
    assert item_starting(evidence, "Do not ship **V1**") == (
        "Do not ship **V1** (broader environment detection, the report's recommendation) as the fix: it has no "
        "effect on the failure.")
    assert item_starting(evidence, "Do not ship **V3**") == (
        "Do not ship **V3** (per-user manager cap raised from 5 to 20) as the fix: it only delays the failure.")
    v2 = evidence.variants.verdict_of("V2")
    assert item_starting(evidence, "Do not ship **V2**").startswith(
        "Do not ship **V2** (ultra-defensive: relaxed validation almost everywhere) as the fix: it has no effect "
        "on the failure" + (" and weakens safety." if v2.safety == "weaker" else ""))
    assert "((" not in text and "))" not in text and " is per-user" not in text


def test_trigger_states_any_mix_of_closes_in_the_reduced_run(evidence: Evidence) -> None:
    # "reconnects": one user, 7 connections to one instance: the first five end open, the 6th and 7th close 1011
    # at the cap (see the module docstring).
    from investigation.postmortem import _reduction_line

    reduction = evidence.reduction
    assert reduction is not None
    mixed = dataclasses.replace(reduction, run=reconnecting_run("reconnects", 7), kept=reduction.planned[:7])
    assert _reduction_line(mixed).endswith(
        "7 of the 36 planned connections, all of user test-user-12345: 5 end with no close frame (open), and 2 "
        'close 1011 "Factory SSOT validation failed" (innermost RuntimeError).')


def test_deploy_item_counts_the_failing_runs_as_profiles_and_the_long_run(evidence: Evidence) -> None:
    # The original fails on 4 of the 9 profiles and on the long E2E run chapter 05 builds from staging-e2e.
    item = item_starting(evidence, "Deploy **V4**")
    assert "(removed on 5 of 5 failing runs: 4 profiles and the long E2E run staging-e2e-long)" in item


def test_no_auth_bypass_item_when_the_original_code_refuses_unsigned_tokens(evidence: Evidence) -> None:
    text = action_items(with_safety_row(evidence, "original", unsigned_accepted=False)).data
    assert "Close the auth bypass" not in text
    # no item recommends V5's bypass switch then, so V5 is not shipped as the fix, and no item "below" is named
    v5 = next(line for line in text.splitlines() if "Do not ship **V5**" in line)
    assert "as the fix" in v5 and "Ship its switch" not in v5


def test_no_gap_sentence_when_the_bypass_refusing_variant_accepts_no_unsigned_token(evidence: Evidence) -> None:
    v5 = next(row for row in evidence.variants.matrix.safety if row.variant == "V5")
    hand = with_safety_row(evidence, "V5", unsigned_accepted=False, unsigned_in=(),
                           accepted=tuple(m for m in v5.accepted if "alg none" not in m))
    assert "Make the check also treat" not in item_starting(hand, "Close the auth bypass")
    assert "staging-env-whitespace" not in item_starting(hand, "Do not ship **V5**")


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


def test_root_cause_compares_managers_held_with_connections_open_at_each_refusal(evidence: Evidence) -> None:
    # One user, 7 connections 10 s apart, each held 25 s, one instance: the first five (0..40 s) fill the cap of 5
    # (spec 4.2). At 50 s the connections of 30 s and 40 s are open (until 55 s and 65 s), at 60 s only the one of
    # 40 s (the refused one of 50 s ended at once): 5 managers held against 1-2 open connections. No start_agent.
    long_held = simulate(profile_from_dict("long-held", {
        "description": "long-held", "env": {"ENVIRONMENT": "test"},
        "clients": [{"name": "tab", "user_id": "test-user-12345", "connections": 7, "spacing_s": 10.0,
                     "hold_s": 25.0}],
    }), "original")
    runs = {"local-debug": reconnecting_run("local-debug", 1), "long-held": long_held}
    lines = root_cause_section(dataclasses.replace(evidence, runs=runs)).data.splitlines()
    assert ("- At the 2 refused connections at the cap the refused user held 5 managers on its instance, with 1-2 of "
            "its connections still connected there and 0 managers created by its earlier `start_agent` messages there "
            "(min-max over those connections).") in lines
    assert ("- Managers outlive their connections: a connection's manager is not released when it closes "
            "(spec 1, step 14).") in lines


def test_root_cause_explains_the_managers_of_the_real_refusals(evidence: Evidence) -> None:
    # 01 timeline of staging-e2e: every refusal finds 5 managers and no open connection of the user there (tests
    # hold 4 s, spaced 14-18 s); user-003's start_agent leaves one manager per connection 2 s after it (56:1 58:2
    # 74:3 76:4 92:5 before its refusal at 110 s: 2), user-001 and -002 send none (0). The other profiles'
    # refused user (clients[5], 25 s holds 30 s apart) has none open at 1350 s and sends no start_agent.
    # The 13 are the refused connections (impact: 13 failing connections, all at the cap); the original also
    # refused 11 start_agent messages at the cap (chapter 05: 11 of 106), which close nothing and are not counted.
    lines = root_cause_section(evidence).data.splitlines()
    assert ("- At the 13 refused connections at the cap the refused user held 5 managers on its instance, with 0 of "
            "its connections still connected there and 0-2 managers created by its earlier `start_agent` messages "
            "there (min-max over those connections).") in lines
    assert "refusals at the cap" not in root_cause_section(evidence).data
    assert ("- Managers outlive their connections: a connection's manager is not released when it closes "
            "(spec 1, step 14), and each `start_agent` message leaves one more manager behind (spec 1, step 12).") \
        in lines


def test_key_result_names_every_deciding_decision_with_its_count(evidence: Evidence) -> None:
    # Two failures decided at the cap, one made-up failure decided by auth.result (alphabetically first): most
    # first, each with its count, as the summary lists them.
    rejected = ConnectionResult(index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=1008,
                                close_reason="Authentication failed",
                                decisions=(Decision("auth.result", "rejected"),), cause_chain=())
    runs = {**reconnecting_runs(), "rejected": RunResult("rejected", "original", (rejected,))}
    key_result = postmortem_key_result(dataclasses.replace(evidence, runs=runs))
    assert "; decided by factory.manager_cap=exceeded (2), auth.result=rejected (1); " in key_result


def test_ledger_table_shows_each_claims_evidence(evidence: Evidence) -> None:
    # impact.production is supported by failing profiles' traffic replayed in production's environment,
    # although production-cloud-run itself has no failing connection: the table must say so.
    from investigation.postmortem import ledger_table

    row = next(line for line in ledger_table(evidence).splitlines() if line.startswith("impact.production "))
    _, _, verdict, shown = re.split(r"\s{2,}", row.rstrip())
    assert verdict == "supported"
    # 5 runs (hypotheses' production-impact design): production-cloud-run's own traffic, which has no factory
    # close, and the 4 failing profiles' traffic replayed in its environment. The verdict is not repeated.
    assert shown.startswith("prediction held on 4 of 5 runs: with their own traffic (production-cloud-run) on 0 of 1 "
                            "run (no failure), with the failing profiles' traffic replayed there on 4 of 4 runs (")
    assert "traffic in production-cloud-run environment: 1011 Factory SSOT validation failed" in shown
    # one source for the table: the ledger's own rows under its summary
    assert ledger_table(evidence) == evidence.ledger.to_text()
    assert ledger_table(evidence).splitlines()[0] == evidence.ledger.summary()


def test_distinct_user_ids_are_counted_once_across_profiles(evidence: Evidence) -> None:
    # staging-e2e hits its 3 users; cloud-run-env-missing, staging-cloud-run and staging-env-whitespace each
    # hit the same Google subject id: 6 per-profile hits, 4 distinct user ids. 159 = the 9 profiles' planned
    # connections (data/profiles: 21 + 6 + 1 + 22 + 10 + 21 + 36 + 21 + 21).
    pairs = "4 distinct user ids in 6 user-profile pairs (106574839201746382910 in 3 profiles)"
    summary = summary_section(evidence).data
    assert ("13 of 159 WebSocket connections with 1011 \"Factory SSOT validation failed\" (11 of 96 failed in at "
            "least one environment, counting each of the 6 distinct client lists once: 4 profiles replay one); 4 "
            "distinct users hit.") in summary
    assert "user-profile pairs" not in summary
    assert f"; {pairs} hit." in impact_section(evidence).data
    assert "(13 connections, 4 distinct user ids in 6 user-profile pairs)" in postmortem_key_result(evidence)


def test_only_the_report_s_debug_run_is_called_its_works_locally_evidence(evidence: Evidence) -> None:
    # reference=pytest: the report's "works locally" rests on local-debug (seed report), not on pytest's runs
    runs = {**reconnecting_runs(), "pytest": reconnecting_run("pytest", 2)}
    text = detection_section(dataclasses.replace(evidence, reference="pytest", runs=runs)).data
    assert "- Connections of the reference `pytest` (the reference chosen for this postmortem; the report's " \
           "evidence of \"works locally\" is local-debug): 2." in text


# --- audit 4: the start_agent leak V4 leaves, the order of the action items, traffic counted once ----------


def test_start_agent_item_follows_the_deploy_item_with_the_hand_derived_counts(evidence: Evidence) -> None:
    # staging-e2e under V4 (derived in tests/test_variants.py::test_staging_e2e_start_agent_refusals_derived_by_hand):
    # user-003's 12 connections each send one start_agent; the 5th and 6th on instance 2 find the 4 managers
    # earlier start_agents left + their own = the cap of 5, so 2 of the 12 are refused, closing nothing
    item = item_starting(evidence, "Release or reuse the managers `start_agent` creates")
    assert item.startswith("Release or reuse the managers `start_agent` creates: under V4, the recommended fix, ")
    assert "(staging-e2e: 2 of 12; the long E2E run staging-e2e-long: " in item
    assert "still refused at the cap (no close: the agent silently does not start)" in item
    parts = [int(n) for n in re.findall(r"(\d+) of \d+", item.split("(staging-e2e:")[1])]
    total = int(item.split("fix, ")[1].split(" of ")[0])
    assert total == sum(parts)
    assert item_number(evidence, "Release or reuse") == item_number(evidence, "Deploy **V4**") + 1


def test_action_items_put_the_production_exposure_first_and_keep_references_right(evidence: Evidence) -> None:
    # production-cloud-run (ENVIRONMENT=production) accepts the unsigned token: the bypass item is 1st, V5 points to it
    assert item_number(evidence, "Close the auth bypass") == 1
    assert item_starting(evidence, "Do not ship **V5**").endswith("as item 1 says.")


def test_without_a_production_exposure_the_fix_comes_first(evidence: Evidence, monkeypatch: pytest.MonkeyPatch) -> None:
    # no profile's ENVIRONMENT equals the production name any more: the bypass item goes after the 4 do-not-ship
    # items (V1, V2, V3, V5), behind Deploy and the start_agent item: 1 + 1 + 4 + 1 = 7th, and V5 says so
    monkeypatch.setattr("investigation.postmortem.PRODUCTION", "no such environment")
    items = action_items(evidence).data.splitlines()
    assert items[0].startswith("1. Deploy **V4**")
    assert item_number(evidence, "Close the auth bypass") == 7
    assert item_starting(evidence, "Do not ship **V5**").endswith("as item 7 says.")


def test_impact_counts_a_traffic_replayed_in_other_environments_once(evidence: Evidence) -> None:
    # data/profiles: cloud-run-env-missing, staging-env-whitespace and staging-no-cloud-signal carry staging-cloud-run's
    # client list (21 connections each). 159 - 3 x 21 = 96 planned connections; staging-e2e's 10 failures plus the
    # one planned connection of 106574839201746382910 that fails in 3 of the 4 environments = 11; its users: the 3
    # E2E users and 106574839201746382910 = 4.
    text = impact_section(evidence).data
    assert text.endswith(
        " 4 profiles run one traffic (identical client lists) in their environments: cloud-run-env-missing, "
        "staging-cloud-run, staging-env-whitespace and staging-no-cloud-signal; counting each traffic once, 11 of 96 "
        "planned connections failed in at least one of the environments replaying them, for 4 distinct user ids.")
    # The summary comes before Impact defines a traffic: it says "client lists" (9 profiles - 3 replays = 6).
    # a planned connection counts as failed when it failed in any of the environments replaying it (the one
    # connection of 106574839201746382910 fails in 3 of its 4)
    assert (" (11 of 96 failed in at least one environment, counting each of the 6 distinct client lists once: 4 "
            "profiles replay one);"
            in summary_section(evidence).data)


def test_impact_says_nothing_of_shared_traffic_when_no_profiles_share_one(evidence: Evidence) -> None:
    hand = dataclasses.replace(evidence, runs=reconnecting_runs())
    assert "traffic" not in impact_section(hand).data
    assert "traffics" not in summary_section(hand).data


def test_trigger_says_nothing_of_mechanisms_when_dds_mixtures_leak_as_their_profiles_do(evidence: Evidence) -> None:
    """The failure signature includes the refusal's mechanism, so each of dd's failing mixtures keeps the failing
    client's spacing: e.g. staging-cloud-run's user-e-mobile, 30 s apart, held 25 s, meets 5 managers with 0 open
    at its 6th connection, as in the profile's own first failure (spec 1 step 14). No mismatch to report."""
    isolations = evidence.isolation.isolations
    assert isolations
    assert all(iso.mixture_failure_state == iso.failure_state for iso in isolations.values())
    assert not [line for line in trigger_section(evidence).data.splitlines() if line.startswith("- dd's failing")]


def test_trigger_says_a_concurrent_mixture_reproduces_the_close_not_the_leak(evidence: Evidence) -> None:
    """Were a mixture refused for concurrency (5 managers, 5 connections open: the cap as designed) while its
    profile leaked (5 managers, 0 open), the trigger says so; ddmin keeps the planned times, so its reduced run
    shows the leak: 5 held, 0 open."""
    from investigation.analysis.cap_refusals import UserAtRefusal
    from investigation.postmortem import _dd_mechanism_line

    concurrent = UserAtRefusal(held=5, open_connections=5, created_by_start_agent=0, cap=5)
    isolations = {name: dataclasses.replace(iso, mixture_failure_state=concurrent)
                  for name, iso in evidence.isolation.isolations.items()}
    (line,) = _dd_mechanism_line(isolations, evidence.reduction)
    assert line.startswith("- dd's failing mixtures for ")
    assert "the refused connection met 5 managers of its user on its instance and 5 of the user's connections" in line
    assert "the refused user had 0 open against 5 managers: managers outlived their connections" in line
    assert line.endswith("at its refusal the user held 5 managers with 0 of its connections open.")


def test_summary_says_what_the_recommended_fix_leaves_of_start_agent(evidence: Evidence) -> None:
    """V4 releases a connection's manager on disconnect but not the managers start_agent creates (spec 1,
    step 12; spec 8), so the summary's recommendation must not read as if nothing were left. staging-e2e
    under V4: user-003's start_agent managers pile up on instance 2 (one per connection); its 5th and 6th
    connections there find 4 left over plus their own and their start_agent is refused (2 of 12). Sent:
    12 per staging profile and production (5 x 12), staging-e2e 12, development 6, pytest 4, the long run's
    60: 142. The long run's refusals are read from its matrix cell (no hand count), every other profile's
    start_agent messages are served."""
    matrix = evidence.variants.matrix
    long_run = matrix.cell("V4", "staging-e2e-long").start_agent_refused
    refused, sent, _ = matrix.start_agent_totals("V4")
    assert matrix.cell("V4", "staging-e2e").start_agent_refused == 2
    assert (refused, sent) == (2 + long_run, 142) and long_run > 0
    # 142 counts the long run's messages, which the summary's profile counts do not: it says how many are there.
    # V4 as spec 8 words it: the route releases the connection's manager on disconnect.
    # The original fails on 4 profiles and the long run (impact; chapter 05), all of which V4 removes.
    assert (f"Recommended resolution: **V4** (release the connection's manager on disconnect), which removes the "
            f"failure on all 5 runs where the original fails, including the long E2E run; under it {refused} of 142 start_agent messages are still refused, without a "
            f"close ({long_run} of them in the long E2E run, chapter 05; action items).") in summary_section(evidence).data


def test_trigger_isolates_the_environment_within_the_shared_traffic(evidence: Evidence) -> None:
    """The four profiles replaying one traffic (identical client lists, data/profiles) differ in where connections
    land: staging-no-cloud-signal, the one that passes, routes round robin over 2 instances; staging-cloud-run and
    cloud-run-env-missing route sticky (3 instances); staging-env-whitespace runs 1 instance. Only sticky routing or
    a single instance puts all 6 of user-e-mobile's reconnections on one instance, where the 6th meets the cap of 5
    (spec 4.2): dd from the passing member isolates routing for the sticky pair, instances for the other."""
    isolations = evidence.traffic_isolations
    assert sorted(isolations) == ["cloud-run-env-missing", "staging-cloud-run", "staging-env-whitespace"]
    assert {iso.passing for iso in isolations.values()} == {"staging-no-cloud-signal"}
    assert [(c.factor, c.passing, c.failing) for c in isolations["staging-cloud-run"].minimal_difference] == [
        ("routing", "round_robin", "sticky")]
    assert [(c.factor, c.passing, c.failing) for c in isolations["staging-env-whitespace"].minimal_difference] == [
        ("instances", 2, 1)]
    (line,) = [line for line in trigger_section(evidence).data.splitlines() if line.startswith("- Within a traffic")]
    assert "passing member (the first passing member by name)" in line
    assert "staging-no-cloud-signal -> staging-cloud-run: `routing: 'round_robin' -> 'sticky'`" in line
    assert line.endswith("; environment factors among them: instances, routing.")


def test_lesson_says_the_environment_decides_whether_the_shared_traffic_fails(evidence: Evidence) -> None:
    """user-e-mobile's 6 connections, 30 s apart and held 25 s, never overlap: on one instance the first 5 leave 5
    managers (nothing released, spec 1 step 14) and the 6th is refused (cap 5, spec 4.2). The passing member's most
    connections per user and instance is counted here from its runs, independently of the postmortem's helper."""
    from collections import Counter

    passing = evidence.runs["staging-no-cloud-signal"].connections
    most = max(Counter((str(c.user_id), c.instance) for c in passing).values())
    text = lessons(evidence).data
    # dd isolated `instances` and `routing` (test above): both deployment topology, neither ENVIRONMENT nor another
    # variable (isolate.ENVIRONMENT_FACTOR_PREFIXES: env., process., startup. are the variables)
    assert ("In the traffic that cloud-run-env-missing, staging-cloud-run, staging-env-whitespace and "
            "staging-no-cloud-signal replay, the deployment topology (instances, routing), not an environment "
            "variable, decides whether it fails, though delta debugging from `local-debug` isolated traffic factors "
            "only (none of env, process, startup, instances, routing):") in text
    assert "the environment decides" not in text
    assert ": it fails in cloud-run-env-missing, staging-cloud-run and staging-env-whitespace and passes in " in text
    assert f"In staging-no-cloud-signal no user made more than {most} connections to one instance" in text
    assert ("in the failing members no connection was refused at the per-user cap before its user's 6th connection "
            "to one instance (the fewest: 106574839201746382910's, to instance") in text
    # Ranked 6th or later among a user's connections to one instance, in the failing members: user-e-mobile's 6th in
    # cloud-run-env-missing and staging-cloud-run (closed, 1350 s); in staging-env-whitespace (1 instance) its 6th
    # (closed), user-e-later at 2000 s (the same user's 7th), and user-b-desk at 600 s (user 117364829105738291046's
    # 6th, after 5 flaky connections at 200-400 s). The last two pass: their user's managers of 1200-1320 s and of
    # 200-250 s were created more than 5 minutes earlier and hold no connection, so emergency cleanup frees them
    # (spec 4.2). 5 connections, 3 closed at the cap, 2 passed.
    assert ("; of the 5 connections there ranked 6th or later among their user's to one instance, 3 closed at the cap "
            "and 2 passed: a connection that finds its user's managers at the cap is refused only when emergency cleanup "
            "finds none to free (spec 4.2: one inactive, idle more than 5 minutes, or created more than 5 minutes ago "
            "with no connection) (trigger).") in text
    alone = dataclasses.replace(evidence, traffic_isolations={})
    assert "decides whether one traffic fails" not in lessons(alone).data
    assert "- Within a traffic" not in trigger_section(alone).data


def test_the_postmortem_s_analyses_run_inside_a_running_event_loop(evidence: Evidence) -> None:
    """A notebook cell runs inside the kernel's event loop; gather_evidence calls the analyses without
    outside_event_loop because each simulation leaves a running loop itself. The shared-traffic isolations
    (dd, 27 simulations) made inside a loop equal those gathered outside one."""
    import asyncio

    from investigation.postmortem import shared_traffic_isolations

    async def inside() -> dict[str, Any]:
        return shared_traffic_isolations(evidence)

    made_inside = asyncio.run(inside())
    assert {name: iso.minimal_difference for name, iso in made_inside.items()} == {
        name: iso.minimal_difference for name, iso in evidence.traffic_isolations.items()}


def test_detection_says_a_connection_number_is_its_place_in_the_run(evidence: Evidence) -> None:
    """staging-e2e.toml: e2e-process-2 starts at 1 s, 16 s apart, so its connections start at 1, 17, ..., 81 s; the
    first failure starts at 81 s (its 6th, number 5 from 0), and the three clients interleave (e2e-process-1 at 0,
    14, ...; e2e-process-3 at 2, 20, ...) so that it is the run's #16: 6 of e2e-process-1 (0-70 s), 5 of
    e2e-process-3 (2-74 s) and e2e-process-2's 5 earlier ones start before it. e2e-process-2 has only 12."""
    text = detection_section(evidence).data
    assert "staging-e2e: connection #16 of the run (e2e-process-2's 6th) at 81 s" in text


def test_the_trigger_chart_prints_the_planned_connections_it_draws(evidence: Evidence) -> None:
    """staging-e2e.toml: 3 clients of 12 connections each (36 points in the chart). Round robin over 3 instances
    sends connection n to instance n mod 3; e2e-process-2's connections are #1, #4, ..., #16 of the run (it starts
    at 1 s, 16 s apart, between e2e-process-1 at 0 s and e2e-process-3 at 2 s), all on instance 1, and ddmin keeps
    6 of them (the cap of 5 plus the refused one, spec 4.2). The user is the one the server established for the kept
    connections in the reduced run (the E2E bypass takes the token's sub, e2e-process-2's id, spec 5.2); a client
    none of whose connections ddmin kept has none there."""
    _, table = trigger_chart(evidence)
    per_client = table.split("\n\n")[1].splitlines()
    assert per_client[0] == "planned connections per client (36 in all, the chart's points)"
    assert per_client[1].split() == ["client", "user", "of", "the", "kept", "planned", "kept", "instance", "of", "the",
                                     "kept"]
    assert [line.split() for line in per_client[3:]] == [
        ["e2e-process-1", "-", "12", "0", "-"],
        ["e2e-process-2", "staging-e2e-user-002", "12", "6", "1"],
        ["e2e-process-3", "-", "12", "0", "-"],
    ]


def test_the_divergence_table_names_the_connections_the_chart_labels(evidence: Evidence) -> None:
    """The chart labels each column with its compared connection and close ("#16 1011"). staging-e2e's is its first
    failure, #16 of the run (see the detection test); local-debug's is its only connection, #0, which the server
    never closes (open)."""
    markdown = divergence_figure(evidence)[1]._repr_markdown_().splitlines()
    header = [cell.strip() for cell in markdown[0].strip("|").split("|")]
    compared = [cell.strip() for cell in markdown[2].strip("|").split("|")]
    assert compared[0] == "compared connection, close"
    assert compared[header.index("staging-e2e")] == "#16 1011"
    assert compared[header.index("local-debug")] == "#0 open"


def test_the_shared_traffic_lesson_names_the_kinds_dd_isolated() -> None:
    from investigation.postmortem import _decider_text, _unsigned_tokens_text

    # instances and routing are where connections land (topology); env.* is a variable of where the code runs
    assert _decider_text({"routing"}) == "the deployment topology (routing), not an environment variable,"
    assert _decider_text({"env", "instances"}) == "where the code runs (env, instances)"
    # two unsigned cases, one in 1 environment and one in 2: each token named once with its environments
    unsigned = next(o for o in adversarial_outcomes("original") if o.unsigned)
    outcomes = [dataclasses.replace(unsigned, case=case, environment=env)
                for case, env in (("a", "p"), ("b", "q"), ("b", "r"))]
    assert _unsigned_tokens_text(outcomes) == ("; 2 unsigned tokens get in: a in 1 environment (p); b in 2 "
                                               "environments (q, r)")
    assert _unsigned_tokens_text([]) == ""
