"""Tests of investigation.divergence_findings: what notebook 02 states about the profiles' traces.

Four hand-made profiles, one connection each, every expected value worked out by hand:

============  =================  =======================  ===================  ======
profile       route.environment  factory.validation_mode  factory.manager_cap  close
============  =================  =======================  ===================  ======
local (ref)   test               strict                   below                open
dev           staging            strict                   below                open
staging       staging            relaxed                  exceeded             1011
e2e           staging            strict                   exceeded             1011
============  =================  =======================  ===================  ======

Every profile other than the reference first departs from it at route.environment, but
failing and passing profiles share "staging" there and "strict" at validation_mode; only
factory.manager_cap splits them (exceeded vs below), as the spec's cap refusal (4.2) does.
A passing connection goes on to route.manager (= factory), which a refused one never reaches
(spec 1 step 8 closes it): its outcomes differ ("-" against "factory"), but a failure cannot be
decided at a point it never reaches, so route.manager is no separating point.
"""

from __future__ import annotations

import pytest

from investigation.charts.divergence import run_divergence
from investigation.divergence_findings import (
    DecidingGroup,
    SeparatingPoint,
    close_code_overview,
    deciding_groups,
    divergence_key_result,
    divergence_lessons,
    divergence_verdicts,
    failing_profiles,
    first_divergence_counts,
    separating_points,
)
from investigation.trace import ConnectionResult, Decision, RunResult

REFERENCE = "local"


def run(name: str, environment: str, mode: str, cap: str) -> RunResult:
    decisions = [Decision("route.environment", environment), Decision("factory.validation_mode", mode),
                 Decision("factory.manager_cap", cap)]
    close = 1011 if cap == "exceeded" else None
    if close is None:
        decisions.append(Decision("route.manager", "factory"))
    else:
        decisions.append(Decision("route.close", "1011"))
    connection = ConnectionResult(index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=close,
                                  close_reason=None if close is None else "Factory SSOT validation failed",
                                  decisions=tuple(decisions), cause_chain=())
    return RunResult(name, "original", (connection,))


def four_runs() -> dict[str, RunResult]:
    return {
        "local": run("local", "test", "strict", "below"),
        "dev": run("dev", "staging", "strict", "below"),
        "staging": run("staging", "staging", "relaxed", "exceeded"),
        "e2e": run("e2e", "staging", "strict", "exceeded"),
    }


def lines(markdown: object) -> list[str]:
    return str(getattr(markdown, "data", "")).splitlines()


def test_the_cap_is_the_only_separating_point() -> None:
    """route.manager is not one: the failing connections never reach it (module docstring)."""
    runs = four_runs()
    assert failing_profiles(runs) == ["e2e", "staging"]
    assert separating_points(runs, run_divergence(runs, REFERENCE)) == [
        SeparatingPoint("factory.manager_cap", ("exceeded",), ("below",))
    ]


def test_no_separating_point_when_every_profile_fails_or_none_does() -> None:
    failing = {name: r for name, r in four_runs().items() if r.failures}
    assert separating_points(failing, run_divergence(failing, "e2e")) == []
    passing = {name: r for name, r in four_runs().items() if not r.failures}
    assert separating_points(passing, run_divergence(passing, REFERENCE)) == []


def test_every_profile_first_departs_at_the_environment() -> None:
    table = run_divergence(four_runs(), REFERENCE)
    assert first_divergence_counts(table, ["dev", "e2e", "local", "staging"]) == {"route.environment": 3}


def test_verdicts() -> None:
    runs = four_runs()
    assert lines(divergence_verdicts(runs, run_divergence(runs, REFERENCE))) == [
        "- **2 of 4 profiles fail**: e2e, staging.",
        "- First divergence from local, failing profiles: route.environment (2); "
        "passing profiles besides the reference: route.environment (1).",  # local passes: it is the reference
        "- Earliest decision point whose outcome separates failing from passing profiles: "
        "**factory.manager_cap** (failing: exceeded; passing: below); all separating points: factory.manager_cap "
        "(a point counts only where every failing profile's compared connection reaches it).",
        "- `factory.validation_mode` of the compared connections (the reference's included): failing profiles: "
        "relaxed (1), strict (1); passing profiles: strict (2).",
    ]


def test_lessons_name_the_first_difference_and_both_validation_modes() -> None:
    runs = four_runs()
    lessons = lines(divergence_lessons(runs, run_divergence(runs, REFERENCE)))
    assert len(lessons) == 2
    assert lessons[0].startswith("- Where a failing profile first departs from local (route.environment (2)) "
                                 "is not where failing and passing profiles part (factory.manager_cap)")
    assert lessons[1].startswith("- Failing profiles took both validation modes (relaxed (1), strict (1))")


def test_no_failing_profile_is_the_only_lesson() -> None:
    passing = {name: r for name, r in four_runs().items() if not r.failures}
    assert lines(divergence_lessons(passing, run_divergence(passing, REFERENCE))) == [
        "- No profile failed among 2 profiles (the close code table)."
    ]


def test_no_failing_profile_verdicts_use_one_word_for_no_departure_and_name_no_failing_side() -> None:
    # "same" takes every outcome local takes: no departure, called "identical" in the verdict and the table.
    runs = {"local": run("local", "test", "strict", "below"), "same": run("same", "test", "strict", "below")}
    table = run_divergence(runs, REFERENCE)
    verdicts = lines(divergence_verdicts(runs, table))
    assert verdicts[1] == ("- First divergence from local, failing profiles: none; passing profiles besides the "
                           "reference: identical (1).")
    assert verdicts[2] == ("- `factory.validation_mode` of the compared connections (the reference's included): "
                           "failing profiles: none; passing profiles: strict (2).")
    assert table._repr_markdown_().splitlines()[-1] == "| first divergence | reference | identical |"


def two_separating_runs() -> dict[str, RunResult]:
    """Failing profiles leave the reference's environment and exceed the cap; passing ones do neither."""
    return {
        "local": run("local", "test", "strict", "below"),
        "dev": run("dev", "test", "strict", "below"),
        "staging": run("staging", "staging", "relaxed", "exceeded"),
        "e2e": run("e2e", "production", "strict", "exceeded"),
    }


def test_separating_points_branches_first_then_the_environment_read_with_every_failing_outcome() -> None:
    # route.environment precedes factory.manager_cap in the pipeline, but it records the ENVIRONMENT value read,
    # not a branch taken (hypotheses.VALUE_POINTS): it separates here only because no passing profile runs in
    # staging or production, so the branch factory.manager_cap comes first and the value read after it; the
    # failing profiles' two environments both separate, listed sorted.
    runs = two_separating_runs()
    assert separating_points(runs, run_divergence(runs, REFERENCE)) == [
        SeparatingPoint("factory.manager_cap", ("exceeded",), ("below",)),
        SeparatingPoint("route.environment", ("production", "staging"), ("test",)),
    ]


def test_verdict_and_key_result_name_the_earliest_separating_branch() -> None:
    # the earliest branch that separates is the cap (the environment read is a value, listed after it)
    runs = two_separating_runs()
    table = run_divergence(runs, REFERENCE)
    assert ("- Earliest decision point whose outcome separates failing from passing profiles: "
            "**factory.manager_cap** (failing: exceeded; passing: below); all separating points: "
            "factory.manager_cap, route.environment (a point counts only where every failing profile's "
            "compared connection reaches it).") in lines(divergence_verdicts(runs, table))
    assert divergence_key_result(runs, table).endswith("earliest separating point: factory.manager_cap")


def test_no_first_difference_lesson_where_the_first_difference_separates_too() -> None:
    # Both failing profiles first depart at route.environment (staging, production against test), and that value
    # read separates failing from passing profiles as factory.manager_cap does (the separating points list it
    # after the branch): "the first difference is not where they part" would contradict the verdicts' list.
    runs = two_separating_runs()
    assert lines(divergence_lessons(runs, run_divergence(runs, REFERENCE))) == [
        "- Failing profiles took both validation modes (relaxed (1), strict (1)): the validation mode "
        "does not decide the failure (the verdicts)."
    ]


def test_only_the_reference_failing_gives_the_reason_there_is_no_lesson() -> None:
    """Neither lesson applies: dev, passing, first departs from the failing reference at route.environment,
    which separates the two (test against staging), as does factory.manager_cap; the failing side took a
    single mode. A Lessons section must not be silently empty, so it says why there is none."""
    runs = {"local": run("local", "test", "strict", "exceeded"), "dev": run("dev", "staging", "strict", "below")}
    table = run_divergence(runs, REFERENCE)
    assert lines(divergence_lessons(runs, table)) == [
        "- No profile besides the reference local fails, so a point separates failing from passing profiles "
        "wherever local reaches it and no passing profile shares its outcome (2 such points; the verdicts): this "
        "comparison alone cannot tell the cause from the other differences."
    ]
    assert lines(divergence_verdicts(runs, table))[1] == (
        "- First divergence from local, failing profiles besides the reference: none; "
        "passing profiles: route.environment (1).")


def test_only_the_reference_passing_gives_the_reason_there_is_no_lesson() -> None:
    # notebook 02 with profiles=[staging-e2e, local-debug]: e2e differs from local at every point it
    # reaches (environment, cap; route.close is left out), and each of those points separates the two.
    runs = {"local": run("local", "test", "strict", "below"), "e2e": run("e2e", "staging", "strict", "exceeded")}
    table = run_divergence(runs, REFERENCE)
    assert lines(divergence_lessons(runs, table)) == [
        "- No profile besides the reference local passes, so a point separates failing from passing profiles "
        "wherever some failing profile reaches it and none shares the reference's outcome (2 such points; "
        "the verdicts): this "
        "comparison alone cannot tell the cause from the other differences."
    ]
    assert lines(divergence_verdicts(runs, table))[1] == (
        "- First divergence from local, failing profiles: route.environment (1); "
        "passing profiles besides the reference: none.")


def failing_reference_runs() -> dict[str, RunResult]:
    """The reference local fails; e2e fails too; dev and dev2 pass.

    ======  =================  =======================  ===================
    profile route.environment  factory.validation_mode  factory.manager_cap
    ======  =================  =======================  ===================
    local   test               strict                   exceeded
    e2e     staging            relaxed                  exceeded
    dev     staging            strict                   below
    dev2    test               relaxed                  below
    ======  =================  =======================  ===================

    Both sides share test and staging, strict and relaxed: only factory.manager_cap separates them.
    """
    return {
        "local": run("local", "test", "strict", "exceeded"),
        "e2e": run("e2e", "staging", "relaxed", "exceeded"),
        "dev": run("dev", "staging", "strict", "below"),
        "dev2": run("dev2", "test", "relaxed", "below"),
    }


def test_a_failing_reference_sets_the_passing_profiles_departures_against_where_the_sides_part() -> None:
    # e2e (failing) departs from the failing local at route.environment: failing against failing shows no
    # passing/failing difference. The passing ones do cross: dev at route.environment, dev2 at
    # factory.validation_mode, and neither is factory.manager_cap.
    runs = failing_reference_runs()
    table = run_divergence(runs, REFERENCE)
    assert [point.point for point in separating_points(runs, table)] == ["factory.manager_cap"]
    assert lines(divergence_lessons(runs, table))[0] == (
        "- Where a passing profile first departs from the failing reference local (factory.validation_mode (1), "
        "route.environment (1)) is not where failing and passing profiles part (factory.manager_cap): the first "
        "difference in a trace is not the cause (the chart's black frames against its red cells).")


def test_a_failing_reference_whose_passing_profiles_depart_where_the_sides_part_gives_no_first_difference_lesson(
) -> None:
    # dev2 now passes with local's own environment and mode: it first departs at factory.manager_cap, which
    # is where the sides part, so the lesson does not apply (e2e's route.environment does not count).
    runs = failing_reference_runs()
    runs["dev2"] = run("dev2", "test", "strict", "below")
    del runs["dev"]
    table = run_divergence(runs, REFERENCE)
    text = lines(divergence_lessons(runs, table))
    assert not any(lesson.startswith("- Where") for lesson in text)
    assert text == ["- Failing profiles took both validation modes (relaxed (1), strict (1)): the validation mode "
                    "does not decide the failure (the verdicts)."]


@pytest.mark.parametrize(("failing", "departs_and_parts", "mode"), [
    # e2e runs in the reference's environment and first departs at factory.manager_cap, the earliest separating
    # point; the failing side is all strict
    (run("e2e", "test", "strict", "exceeded"), "factory.manager_cap", "strict"),
    # staging departs at route.environment, and every point where it departs separates (route.environment, the
    # validation mode, the cap), whichever of them the branches-first order names first: dev passes by the
    # reference's very path (test, strict, below), so the passing side is one trace. No "first difference is not
    # the cause" lesson; the one-mode failing side gives no other: the reason names where they part.
    (run("staging", "staging", "relaxed", "exceeded"), "route.environment", "relaxed"),
])
def test_first_difference_where_profiles_part_in_one_mode_gives_the_reason_there_is_no_lesson(
        failing: RunResult, departs_and_parts: str, mode: str) -> None:
    runs = {"local": run("local", "test", "strict", "below"), "dev": run("dev", "test", "strict", "below"),
            failing.profile: failing}
    assert lines(divergence_lessons(runs, run_divergence(runs, REFERENCE))) == [
        f"- Where failing profiles first depart from local ({departs_and_parts} (1)) includes where failing and "
        f"passing profiles part ({departs_and_parts}), and the failing profiles' compared connections share one "
        f"validation mode ({mode} (1)): no lesson beyond the verdicts."
    ]


def test_every_profile_failing_is_not_reported_as_none_failing() -> None:
    failing = {name: r for name, r in four_runs().items() if r.failures}
    assert lines(divergence_lessons(failing, run_divergence(failing, "e2e"))) == [
        "- Failing profiles took both validation modes (relaxed (1), strict (1)): the validation mode "
        "does not decide the failure (the verdicts)."
    ]


def test_overview_says_which_profiles_fail() -> None:
    rows = close_code_overview(four_runs()).splitlines()[2:]
    assert {row.split()[0]: row.split()[-1] for row in rows} == {
        "dev": "no", "e2e": "yes", "local": "no", "staging": "yes"}


def test_key_result_first_divergence_covers_every_profile_but_the_reference() -> None:
    # The line names no side, so its first divergence counts dev as well as the two failing profiles.
    runs = four_runs()
    assert divergence_key_result(runs, run_divergence(runs, REFERENCE)) == (
        "2 of 4 profiles fail; first divergence from local: route.environment (3); "
        "earliest separating point: factory.manager_cap")


def test_a_point_only_the_passing_profiles_reach_separates_nothing() -> None:
    """Failing and passing profiles share every outcome they both reach; the passing ones go on to
    route.manager, which the failing ones never reach. That difference does not decide the failure,
    so no point separates them, and the verdict says which points are not counted."""
    refused_before_the_cap = ConnectionResult(
        index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=1011, close_reason="x",
        decisions=(Decision("route.environment", "test"), Decision("factory.validation_mode", "strict"),
                   Decision("route.close", "1011")), cause_chain=())
    runs = {"local": run("local", "test", "strict", "below"), "dev": run("dev", "test", "strict", "below"),
            "e2e": RunResult("e2e", "original", (refused_before_the_cap,))}
    table = run_divergence(runs, REFERENCE)
    assert separating_points(runs, table) == []
    assert ("- No decision point's outcome separates failing from passing profiles (a point counts only where "
            "every failing profile's compared connection reaches it).") in lines(divergence_verdicts(runs, table))
    assert divergence_key_result(runs, table).endswith("earliest separating point: none")


def auth_refused_run(name: str) -> RunResult:
    """A connection refused at authentication (spec 1 step 5: 1008 after an expired token, 5.3), which never
    reaches the factory: its trace stops at auth.token_validation."""
    decisions = (Decision("route.environment", "staging"), Decision("auth.token_validation", "token_rejected"),
                 Decision("route.close", "1008"))
    connection = ConnectionResult(index=0, client="c", instance=0, user_id="anon", at_s=0.0, close_code=1008,
                                  close_reason="SSOT Auth failed", decisions=decisions, cause_chain=())
    return RunResult(name, "original", (connection,))


def two_mechanism_runs() -> dict[str, RunResult]:
    """e2e is refused at the cap, auth at authentication; local and dev pass (audit 13, audA_w2's shape)."""
    return {
        "local": run("local", "test", "strict", "below"),
        "dev": run("dev", "staging", "strict", "below"),
        "e2e": run("e2e", "staging", "strict", "exceeded"),
        "auth": auth_refused_run("auth"),
    }


def test_a_point_a_failing_profile_never_reaches_separates_nothing() -> None:
    """By hand, failing (e2e, auth) against passing (local, dev) outcomes per point:
    route.environment {staging} vs {test, staging}: shared; auth.token_validation {-, token_rejected}: e2e never
    reaches it; factory.validation_mode and factory.manager_cap {strict/exceeded, -}: auth never reaches them;
    route.manager: neither reaches it. So no single point separates; per deciding decision (the first adverse
    outcome, trace.ADVERSE_OUTCOMES): auth (token_rejected) against "-" at auth.token_validation, e2e (exceeded)
    against "below" at factory.manager_cap."""
    runs = two_mechanism_runs()
    table = run_divergence(runs, REFERENCE)
    assert separating_points(runs, table) == []
    assert deciding_groups(runs, table) == [
        DecidingGroup("auth.token_validation=token_rejected", ("auth",),
                      SeparatingPoint("auth.token_validation", ("token_rejected",), ("-",))),
        DecidingGroup("factory.manager_cap=exceeded", ("e2e",),
                      SeparatingPoint("factory.manager_cap", ("exceeded",), ("below",))),
    ]


def test_verdicts_key_result_and_lessons_report_the_separating_point_per_mechanism() -> None:
    runs = two_mechanism_runs()
    table = run_divergence(runs, REFERENCE)
    assert lines(divergence_verdicts(runs, table))[2] == (
        "- No single decision point separates every failing profile from the passing ones (a point counts only "
        "where every failing profile's compared connection reaches it): their compared connections were decided "
        "by 2 different decisions. Earliest separating point per deciding decision: "
        "`auth.token_validation=token_rejected` (auth): **auth.token_validation** (failing: token_rejected; "
        "passing: -); `factory.manager_cap=exceeded` (e2e): **factory.manager_cap** (failing: exceeded; "
        "passing: below).")
    assert divergence_key_result(runs, table).endswith(
        "earliest separating point: none shared; by deciding decision: "
        "auth.token_validation=token_rejected: auth.token_validation, factory.manager_cap=exceeded: "
        "factory.manager_cap")
    assert not any("is not where failing and passing profiles part" in lesson
                   for lesson in lines(divergence_lessons(runs, table)))


def test_a_point_reached_again_after_a_retry_separates_by_its_first_outcome() -> None:
    """A context refused for placeholder ids is built again once (spec 5.4 step 4), so its ID generator runs twice
    ("generator then generator"); a passing connection's ran once ("generator"). The generator's first run is the
    same on both sides, so context.id_generation does not separate them; context.creation (failed vs created) does."""
    def connection(generation: str, creation: str, close: int | None) -> ConnectionResult:
        decisions = (Decision("context.id_generation", generation), Decision("context.creation", creation))
        return ConnectionResult(index=0, client="c", instance=0, user_id="u", at_s=0.0, close_code=close,
                                close_reason=None if close is None else "SSOT Auth failed", decisions=decisions,
                                cause_chain=())

    runs = {"local": RunResult("local", "original", (connection("generator", "created", None),)),
            "placeholders": RunResult("placeholders", "original",
                                      (connection("generator then generator", "failed", 1008),))}
    points = separating_points(runs, run_divergence(runs, "local"))
    assert [point.point for point in points] == ["context.creation"]


def test_no_deciding_group_when_every_profile_fails() -> None:
    # no passing profile: nothing for a group to be separated from, so no "separates ... from the passing ones"
    failing = {name: r for name, r in four_runs().items() if r.failures}
    assert deciding_groups(failing, run_divergence(failing, "e2e")) == []
