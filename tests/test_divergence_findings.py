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
"""

from __future__ import annotations

from investigation.charts.divergence import run_divergence
from investigation.divergence_findings import (
    SeparatingPoint,
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
    if close is not None:
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
        "passing profiles: route.environment (1).",
        "- Earliest decision point whose outcome separates failing from passing profiles: "
        "**factory.manager_cap** (failing: exceeded; passing: below); all separating points: factory.manager_cap.",
        "- `factory.validation_mode` of the compared connections: failing profiles relaxed (1), strict (1); "
        "passing profiles strict (2).",
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
