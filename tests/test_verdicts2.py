"""Verdict fixes of the counterfactual audit E, in small worlds built here (profile_from_dict).

Worlds, and what the spec says of them:

- ``forgers`` (production, the E2E header ``X-E2E-Test: true``): one connection with a token signed with a foreign
  secret at 0 s, one with an alg none token (``header.payload.``, an empty signature part) at 10 s. Under the
  original the header turns on the E2E bypass in every environment (spec 5.2), so both get in. V5 refuses the
  bypass in production (spec 8), so real validation runs (spec 5.3): the first fails at the signature
  (pyjwt's InvalidSignatureError), the second already at the format (3 non-empty parts required: INVALID_FORMAT);
  both close 1008 "SSOT Auth failed" (spec 1, step 5). Both are forgeries refused.
- ``forgers-and-suite``: the same two, plus the E2E suite's own token (user staging-e2e-user-002) at 20 s. The
  suite's token carries ``type: access``, not ``token_type`` (traffic.py), so under V5 validation refuses it
  ("token_type must be 'access'", spec 5.3): a token the suite uses, refused, the one real cost.
- ``reconnects`` (ENVIRONMENT=test): one user, 7 connections 10 s apart, each held 4 s. Nothing releases a manager
  on disconnect (spec 1, step 14), so connections 6 and 7 (50 s, 60 s) meet the cap of 5 (spec 4.2) and close 1011
  "Factory SSOT validation failed" with a RuntimeError. V3 (cap 20) and V4 (release on disconnect) remove both.
- ``bad-tokens`` (Cloud Run staging): expired tokens, no E2E header: every connection closes 1008 under every
  variant (spec 5.3: exp verified), the same under V5 (no bypass to refuse). No candidate changes them.
"""

from __future__ import annotations

from typing import Any

import pytest

from investigation.analysis.hypotheses import Ledger
from investigation.analysis.isolate import IsolationOverview
from investigation.analysis.variants import (
    INTRODUCED,
    NEITHER_FAILS,
    NONE_IDENTIFIED,
    VariantReport,
    build_report,
    effects,
    matrix_table,
    variant_lessons,
    variant_matrix,
)
from investigation.postmortem import Evidence, _bypass_refusal_cost, _worse_text, action_items
from investigation.profiles import Profile, profile_from_dict
from investigation.simulate import simulate
from tests.conftest import CLOUD_RUN_STAGING_ENV

PRODUCTION_SECRET = "test-only-production-secret-0123456789abcdef"
PRODUCTION_ENV = {"ENVIRONMENT": "production", "K_SERVICE": "netra-backend", "JWT_SECRET_PRODUCTION": PRODUCTION_SECRET,
                  "JWT_SECRET_KEY": PRODUCTION_SECRET, "JWT_ALGORITHM": "HS256"}
STAGING_ENV = CLOUD_RUN_STAGING_ENV
E2E_HEADER = {"X-E2E-Test": "true"}


def world(name: str, env: dict[str, str], *clients: dict[str, Any]) -> Profile:
    return profile_from_dict(name, {"description": name, "env": env, "clients": list(clients)})


def forger_clients() -> list[dict[str, Any]]:
    return [
        {"name": "forger-signature", "user_id": "u-forged-1", "token": "bad_signature", "headers": E2E_HEADER,
         "start_s": 0.0, "hold_s": 5.0},
        {"name": "forger-none", "user_id": "u-forged-2", "token": "alg_none", "headers": E2E_HEADER,
         "start_s": 10.0, "hold_s": 5.0},
    ]


def forgers() -> Profile:
    return world("forgers", PRODUCTION_ENV, *forger_clients())


def forgers_and_suite() -> Profile:
    suite = {"name": "suite", "user_id": "staging-e2e-user-002", "token": "e2e_suite", "headers": E2E_HEADER,
             "start_s": 20.0, "hold_s": 5.0}
    return world("forgers-and-suite", PRODUCTION_ENV, *forger_clients(), suite)


def reconnects() -> Profile:
    return world("reconnects", {"ENVIRONMENT": "test"},
                 {"name": "c", "user_id": "u-1", "connections": 7, "spacing_s": 10.0, "hold_s": 4.0})


def bad_tokens(connections: int = 2) -> Profile:
    return world("bad-tokens", STAGING_ENV, {"name": "c", "user_id": "u-1", "token": "expired",
                                             "connections": connections, "spacing_s": 10.0, "hold_s": 4.0})


def evidence_of(profiles: list[Profile], report: VariantReport) -> Evidence:
    """The postmortem's evidence of these profiles' runs; no claim ledger and no isolation (not under test here)."""
    runs = {p.name: simulate(p) for p in profiles}
    return Evidence("quiet", runs, Ledger((), 0), IsolationOverview("quiet", {}), None, report)


def items_of(evidence: Evidence) -> list[str]:
    return [item.split(". ", 1)[1] for item in action_items(evidence).data.splitlines()]


@pytest.fixture(scope="module")
def forged_world() -> VariantReport:
    return build_report(variant_matrix([forgers(), forgers_and_suite()], ("original", "V5")))


# --- finding 1: refusing a forged token is the fix working, not a failure ----------------------------------


def test_refusing_only_forged_tokens_introduces_no_failure(forged_world: VariantReport) -> None:
    # forgers: the two forgeries get in under the original and are refused under V5 (module docstring)
    assert forged_world.matrix.cell("V5", "forgers").count("1008") == 2
    found = effects(forged_world.matrix, "V5")
    assert found["forgers"] == NEITHER_FAILS != INTRODUCED
    # forgers-and-suite: the suite's own token (20 s) is still a failure V5 introduces, the forgeries (0 s, 10 s) not
    assert found["forgers-and-suite"] == INTRODUCED
    assert forged_world.matrix.judged("V5", "forgers-and-suite").first_failure_s == 20.0


def test_the_forged_refusals_are_named_by_kind(forged_world: VariantReport) -> None:
    kinds = sorted((profile, f.forged) for profile, f in forged_world.matrix.forged_refusals("V5"))
    # per profile: the foreign-secret token (bad signature) and the alg none one (unsigned)
    assert kinds == [("forgers", "bad signature"), ("forgers", "unsigned"),
                     ("forgers-and-suite", "bad signature"), ("forgers-and-suite", "unsigned")]
    lesson = next(line for line in variant_lessons(forged_world).data.splitlines() if "forged" in line)
    assert lesson.startswith(
        "- V5 refuses 4 forged tokens the original lets in (forgers: 1 with a bad signature, 1 unsigned (alg none or "
        "no signature part); forgers-and-suite: 1 with a bad signature, 1 unsigned (alg none or no signature part)): "
        "a safety gain, not a failure")


def test_the_bypass_refusal_cost_counts_only_the_suites_own_tokens(forged_world: VariantReport) -> None:
    text = _bypass_refusal_cost(forged_world)
    # forgers: no cost at all; forgers-and-suite: 1 (the suite's token) of its 3 connections
    assert text.startswith(" First give the E2E suite tokens that pass real validation (under V5, which refuses the "
                           "bypass, 1 of the 3 connections of forgers-and-suite close 1008).")
    assert " Refusing the bypass is also a safety gain: V5 refuses 4 forged tokens the original lets in" in text


def test_the_do_not_ship_reason_counts_the_suites_refusal_from_its_start(forged_world: VariantReport) -> None:
    # the one failure V5 introduces is the suite's connection at 20 s (client suite), 1 of the profile's 3
    # connections; the two forgeries' refusals are not among the connections V5 closes differently
    assert _worse_text(forged_world, forged_world.verdict_of("V5")) == (
        '1008 "SSOT Auth failed" closes 1 of the 3 connections of forgers-and-suite (client suite) from 20 s, where '
        "the original does not fail")


# --- finding 6: users hit are users the server identified -------------------------------------------------


def test_users_hit_leaves_out_users_the_server_never_identified(forged_world: VariantReport) -> None:
    # every refusal under V5 is an auth failure (spec 1, step 5): no user identified
    assert forged_world.matrix.cell("V5", "forgers-and-suite").users_hit == ()
    row = next(line for line in matrix_table(forged_world.matrix).splitlines()
               if line.startswith("forgers-and-suite") and " V5 " in line)
    assert row.rstrip().endswith(NONE_IDENTIFIED)


# --- findings 2, 3, 5: a mixed world of cap refusals and untouched auth refusals ---------------------------


@pytest.fixture(scope="module")
def mixed_world() -> Evidence:
    profiles = [bad_tokens(5), reconnects()]
    return evidence_of(profiles, build_report(variant_matrix(profiles, ("original", "V4", "V5"))))


def test_the_own_close_item_stands_beside_an_unrelated_auth_refusal(mixed_world: Evidence) -> None:
    # 7 failing connections: 5 expired-token 1008s and reconnects' 2 cap refusals, closed 1011 with a RuntimeError
    item = next(item for item in items_of(mixed_world) if item.startswith("Give each cause its own close"))
    assert item.startswith('Give each cause its own close: 2 of the 7 failing connections closed 1011 "Factory SSOT '
                           'validation failed" although their innermost cause was RuntimeError (2).')
    # V5 closes the cap's refusals 1013 (spec 8)
    assert "V5's switch `capacity_close_1013` does that" in item


def test_the_removal_counts_the_runs_whose_failures_no_candidate_changes(mixed_world: Evidence) -> None:
    report = mixed_world.variants
    # the original fails on both profiles; V4 removes reconnects' failure, bad-tokens' no candidate changes
    assert "It removes the failure on 1 of the 2 profiles where the original fails (the other's failures no " \
           "candidate changes), and" in report.recommendation()
    deploy = next(item for item in items_of(mixed_world) if item.startswith("Deploy **V4**"))
    # the removed run first (reconnects, 1 profile), then of how many failing runs: the breakdown is of the removed
    assert ("(removed on 1 profile, 1 of the 2 failing runs; no candidate changes the failures of the other one)"
            in deploy)


def test_the_worst_profile_is_one_a_candidate_changes(mixed_world: Evidence) -> None:
    # bad-tokens has the most failing connections (5 > 2), all untouched auth refusals: reconnects is the incident
    assert mixed_world.worst_profile == "reconnects"


def test_the_worst_profile_falls_back_to_the_most_failures() -> None:
    # only untouched auth refusals fail: the profile with the most of them
    profiles = [bad_tokens(2), world("more-bad-tokens", STAGING_ENV, {"name": "c", "user_id": "u-2", "token": "expired",
                                                                       "connections": 3, "spacing_s": 10.0})]
    evidence = evidence_of(profiles, build_report(variant_matrix(profiles, ("original", "V4"))))
    assert evidence.worst_profile == "more-bad-tokens"


# --- finding 4: equally qualifying variants are named with the tie-break rule ------------------------------


def test_an_equally_qualifying_variant_is_named_with_the_rule() -> None:
    profiles = [reconnects()]
    evidence = evidence_of(profiles, build_report(variant_matrix(profiles, ("original", "V3", "V4"))))
    report = evidence.variants
    # V3 (cap 20) and V4 (release) both remove the 2 refusals, change one switch and leave auth alone (safety same);
    # spec 8 lists V3 first
    assert report.recommended == "V3"
    named = ("V4 (safety same, one switch) also qualifies: the rule recommends the smallest change (fewest "
             "switches), and of equally small ones the variant listed first in spec section 8.")
    assert named in report.recommendation()
    deploy = next(item for item in items_of(evidence) if item.startswith("Deploy **V3**"))
    assert deploy.endswith(named)


# --- audit round 3: a forgery is what the traffic declares; "at no cost" only without a cost; the printed label -----


def test_an_opaque_token_the_bypass_let_in_is_a_cost_not_a_forgery() -> None:
    """Cloud Run staging, the E2E header, the literal token ``staging-e2e-user-001``: the original's bypass takes the
    user from the token's "staging-e2e-user-(\\d+)" (spec 5.2) and lets the 2 connections in. V5 refuses the bypass
    in staging (spec 8); real validation then fails the format (3 non-empty dot parts, spec 5.3): INVALID_FORMAT,
    1008. No forged token kind is declared (a literal is taken at face value), so both refusals are a cost: V5
    introduces a failure there, and no forged refusal is named."""
    opaque = world("opaque-suite-token", STAGING_ENV, {
        "name": "suite", "user_id": "staging-e2e-user-001", "token": "literal", "token_literal": "staging-e2e-user-001",
        "headers": E2E_HEADER, "connections": 2, "spacing_s": 10.0, "hold_s": 4.0})
    report = build_report(variant_matrix([opaque], ("original", "V5")))
    assert report.matrix.cell("V5", "opaque-suite-token").count("1008") == 2
    assert report.matrix.cell("original", "opaque-suite-token").count("1008") == 0
    assert effects(report.matrix, "V5")["opaque-suite-token"] == INTRODUCED
    assert report.matrix.forged_refusals("V5") == ()


def test_the_safety_gain_is_at_no_cost_only_when_nothing_is_refused_besides_the_forgeries(
        forged_world: VariantReport) -> None:
    # forgers-and-suite: the suite's own token is refused (module docstring): a cost, so not "at no cost"
    assert ", at no cost" not in _bypass_refusal_cost(forged_world)
    # forgers alone: only the two forgeries are refused
    alone = build_report(variant_matrix([forgers()], ("original", "V5")))
    assert _bypass_refusal_cost(alone) == (" Refusing the bypass is also a safety gain: V5 refuses 2 forged tokens the "
                                           "original lets in (forgers: 1 with a bad signature, 1 unsigned (alg none or "
                                           "no signature part)), at no cost.")


def test_the_label_of_a_removal_beside_untouched_failures_does_not_say_every_profile(mixed_world: Evidence) -> None:
    # V4 removes reconnects' cap refusals; bad-tokens' 5 expired-token refusals no candidate changes (still failing),
    # so "on every profile" would be false: the label says where a candidate changes the failure
    report = mixed_world.variants
    v4 = report.verdict_of("V4")
    assert report.failure_label(v4) == "removes the failure wherever a candidate changes it"
    assert "| V4 | release the connection's manager on disconnect | removes the failure wherever a candidate changes " \
           "it |" in report.verdict_table()
    assert "V4: removes the failure wherever a candidate changes it" in report.key_result()
    # without untouched failures the label is the verdict's own
    alone = build_report(variant_matrix([reconnects()], ("original", "V4")))
    assert alone.failure_label(alone.verdict_of("V4")) == "removes the failure on every profile"


def test_the_lesson_on_an_introduced_failure_names_the_connections_not_a_set_aside_first_failure(
        forged_world: VariantReport) -> None:
    # forgers-and-suite under V5: the matrix's first failure is the forged token's refusal at 0 s (set aside); the
    # failure V5 introduces is the suite's token at 20 s, 1 of the 3 connections (module docstring)
    assert forged_world.matrix.cell("V5", "forgers-and-suite").first_failure_s == 0.0
    assert ("- V5 on forgers-and-suite: 1008 SSOT Auth failed closes 1 of the 3 connections (client suite) from 20 s, "
            "where the original does not fail.") in variant_lessons(forged_world).data.splitlines()


def expired_and_suite() -> Profile:
    """Cloud Run staging. "late-expired" presents an expired token at 5 s: 1008 under every variant (spec 5.3), a
    failure no candidate changes. "suite" is the E2E suite (bypass headers), 6 connections 10 s apart from 0 s, each
    leaving its manager behind (spec 1 step 14): the 6th, at 50 s, meets the cap of 5 and closes 1011 (spec 4.2).
    Under V5 the bypass is refused in staging and the suite's token fails validation: 1008 from 0 s."""
    return world("expired-and-suite", STAGING_ENV,
                 {"name": "late-expired", "user_id": "u-expired", "token": "expired", "start_s": 5.0, "hold_s": 4.0},
                 {"name": "suite", "user_id": "staging-e2e-user-002", "token": "e2e_suite", "headers": E2E_HEADER,
                  "connections": 6, "spacing_s": 10.0, "hold_s": 4.0})


def test_an_earlier_failure_names_the_set_aside_failures_that_came_sooner() -> None:
    # the original's judged first failure (the expired token's 1008 set aside) is the suite's 1011 at 50 s; its
    # first failure of all is the 1008 at 5 s: a reader of "first fails at 50 s" must learn why 5 s is not it
    report = build_report(variant_matrix([expired_and_suite()], ("original", "V5")))
    assert report.matrix.cell("original", "expired-and-suite").first_failure_s == 5.0
    assert report.matrix.judged("original", "expired-and-suite").first_failure_s == 50.0
    assert _worse_text(report, report.verdict_of("V5")) == (
        '1008 "SSOT Auth failed" closes 6 of the 7 connections of expired-and-suite (client suite) from 0 s, where '
        "the original first fails at 50 s (its failures no candidate changes, from 5 s, set aside)")
