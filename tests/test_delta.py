"""Tests of ddmin and dd against hand-derived results and the properties of the 2002 paper."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from investigation.analysis.delta import (
    CachingTester,
    NotReproducedError,
    Outcome,
    dd,
    ddmin,
    split,
)

PASS, FAIL, UNRESOLVED = Outcome.PASS, Outcome.FAIL, Outcome.UNRESOLVED
Predicate = Callable[[tuple[int, ...]], Outcome]


def fails_if_contains(required: Collection[object]) -> Callable[[tuple[object, ...]], Outcome]:
    """FAIL iff the configuration contains every required element, PASS otherwise."""
    return lambda config: FAIL if set(required) <= set(config) else PASS


def small_configs_decide(config: tuple[int, ...]) -> Outcome:
    """Only the full 16 elements and configurations of at most 4 decide; 0 is the failure.

    With 0: FAIL if all 16 elements or at most 4 are present, else UNRESOLVED.
    Without 0: PASS if at most 4 are present, else UNRESOLVED.
    """
    decides = len(config) <= 4
    if 0 in config:
        return FAIL if decides or len(config) == 16 else UNRESOLVED
    return PASS if decides else UNRESOLVED


def ddmin_worst_case(size: int) -> int:
    """The paper's worst case (|c|² + 3|c|)/2, plus our two extra tests.

    The extra tests: reproducing the failing configuration, and testing the
    empty configuration when one element is left (the paper assumes it passes).
    """
    return (size * size + 3 * size) // 2 + 2


def dd_quadratic_bound(size: int) -> int:
    """A quadratic bound on dd's tests for |Δ| = size (+2 for reproducing both sides)."""
    return size * size + 7 * size + 2


# --- split ------------------------------------------------------------------


def test_split_makes_contiguous_nearly_equal_parts() -> None:
    assert split((0, 1, 2, 3, 4, 5, 6, 7), 2) == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert split((0, 1, 2, 3, 4, 5, 6), 3) == [(0, 1), (2, 3), (4, 5, 6)]
    assert split((3, 9), 2) == [(3,), (9,)]


# --- ddmin --------------------------------------------------------------------


def test_ddmin_finds_the_pair_1_and_7_of_8_with_the_hand_traced_tests() -> None:
    # Hand trace (P = pass, F = fail), elements 1..8:
    #  1 {1..8} F (reproduce)
    #  n=2: 2 {1,2,3,4} P   3 {5,6,7,8} P     (complements are the same sets: cached)
    #  n=4: 4 {1,2} P  5 {3,4} P  6 {5,6} P  7 {7,8} P
    #       8 {3..8} P  9 {1,2,5,6,7,8} F  -> c = {1,2,5,6,7,8}, n = 3
    #  n=3: subsets {1,2} {5,6} {7,8} cached P; complements {5,6,7,8} cached P,
    #       10 {1,2,7,8} F -> c = {1,2,7,8}, n = 2
    #  n=2: {1,2} {7,8} cached P -> n = 4: 11 {1} P 12 {2} P 13 {7} P 14 {8} P
    #       15 {2,7,8} P  16 {1,7,8} F -> c = {1,7,8}, n = 3
    #  n=3: {1} {7} {8} cached P; {7,8} cached P, 17 {1,8} P, 18 {1,7} F -> c = {1,7}
    #  n=2: {1} {7} cached P, n = |c|: done.
    result = ddmin([1, 2, 3, 4, 5, 6, 7, 8], fails_if_contains({1, 7}))
    assert result.minimal == (1, 7)
    assert result.minimal_indices == (0, 6)
    assert result.tests_run == 18


def test_ddmin_returns_to_granularity_2_after_reducing_to_a_subset() -> None:
    # Zeller & Hildebrandt: "reduce to subset" continues with n = 2. Elements 0..15:
    #  1 {0..15} F (reproduce)
    #  n=2: 2 {0..7} U  3 {8..15} U    (complements are the same sets: cached)
    #  n=4: 4 {0,1,2,3} F -> c = {0,1,2,3}, n = 2
    #  n=2: 5 {0,1} F -> c = {0,1}, n = 2
    #  n=2: 6 {0} F -> c = {0}; one element left: 7 {} P
    # (Keeping n = 4 after test 4 would test {0} next and run 6 tests.)
    calls: list[tuple[int, ...]] = []

    def test(config: tuple[int, ...]) -> Outcome:
        calls.append(config)
        return small_configs_decide(config)

    result = ddmin(list(range(16)), test)
    assert result.minimal == (0,)
    assert calls == [tuple(range(16)), tuple(range(8)), tuple(range(8, 16)), (0, 1, 2, 3), (0, 1), (0,), ()]
    assert result.tests_run == 7


def test_ddmin_reduces_the_mozilla_select_input_to_select() -> None:
    # The paper's Mozilla example: printing fails whenever the input contains "<SELECT".
    html = '<SELECT NAME="priority" MULTIPLE SIZE=7>'
    result = ddmin(list(html), lambda chars: FAIL if "<SELECT" in "".join(chars) else PASS)
    # Every failing subsequence contains "<SELECT"; 1-minimal means nothing else is left.
    assert "".join(result.minimal) == "<SELECT"
    assert result.tests_run <= ddmin_worst_case(len(html))


def test_ddmin_treats_unresolved_as_not_failing() -> None:
    # Element 5 needs element 4 (5 without 4 cannot be tested -> UNRESOLVED);
    # the failure needs 1 and 5. So every failing configuration contains {1, 4, 5},
    # and {1, 4, 5} itself fails: it is the only 1-minimal answer.
    def test(config: tuple[int, ...]) -> Outcome:
        if 5 in config and 4 not in config:
            return UNRESOLVED
        return FAIL if {1, 5} <= set(config) else PASS

    result = ddmin([1, 2, 3, 4, 5, 6, 7, 8], test)
    assert result.minimal == (1, 4, 5)
    assert result.tests_run <= ddmin_worst_case(8)


def test_ddmin_keeps_input_order_and_handles_duplicates() -> None:
    # Fails iff at least two "x" are present; "x" appears three times.
    result = ddmin(["x", "a", "x", "b", "x"], lambda c: FAIL if c.count("x") >= 2 else PASS)
    assert result.minimal == ("x", "x")
    assert len(set(result.minimal_indices)) == 2
    assert list(result.minimal_indices) == sorted(result.minimal_indices)


def test_ddmin_returns_empty_when_the_empty_configuration_fails() -> None:
    result = ddmin(["a", "b", "c"], lambda config: FAIL)
    assert result.minimal == ()


def test_ddmin_of_a_single_failing_element_is_that_element() -> None:
    result = ddmin(["only"], fails_if_contains({"only"}))
    assert result.minimal == ("only",)
    # reproduce + the empty configuration
    assert result.tests_run == 2


def test_ddmin_raises_when_the_failure_does_not_reproduce() -> None:
    with pytest.raises(NotReproducedError) as caught:
        ddmin([1, 2, 3], lambda config: PASS)
    assert caught.value.side == "failing"
    assert caught.value.outcome is PASS
    assert caught.value.expected is FAIL
    assert str(caught.value) == (
        "failing configuration not reproduced: test returned PASS, expected FAIL"
    )


def test_ddmin_rejects_a_test_that_does_not_return_an_outcome() -> None:
    with pytest.raises(TypeError, match="must return an Outcome"):
        ddmin([1, 2], lambda config: True)  # type: ignore[arg-type,return-value]


def test_ddmin_worst_case_all_unresolved_count() -> None:
    # Only the whole input fails, everything else is UNRESOLVED: ddmin refines to
    # granularity 4 and stops. Tests: 1 reproduce + 2 halves + 4 quarters + 4
    # complements of quarters = 11.
    def test(config: tuple[int, ...]) -> Outcome:
        return FAIL if len(config) == 4 else UNRESOLVED

    result = ddmin([0, 1, 2, 3], test)
    assert result.minimal == (0, 1, 2, 3)
    assert result.tests_run == 11


# --- caching --------------------------------------------------------------------


def test_caching_tester_runs_each_configuration_once() -> None:
    calls: list[tuple[str, ...]] = []

    def test(config: tuple[str, ...]) -> Outcome:
        calls.append(config)
        return FAIL if "b" in config else PASS

    tester = CachingTester(["a", "b", "c"], test)
    assert tester([0, 1]) is FAIL
    assert tester((1, 0)) is FAIL  # same set, other order: a cache hit
    assert tester([2]) is PASS
    assert tester.tests_run == 2
    assert calls == [("a", "b"), ("c",)]
    assert [record.indices for record in tester.history] == [(0, 1), (2,)]


def test_caching_tester_records_indices_sorted() -> None:
    # {1, 8} iterates as (8, 1) in a set of table size 8: the record must still be sorted
    tester = CachingTester(list(range(10)), fails_if_contains({8}))
    assert tester((8, 1)) is FAIL
    assert [record.indices for record in tester.history] == [(1, 8)]


def test_ddmin_tests_run_counts_real_calls_and_never_repeats_a_configuration() -> None:
    calls: list[frozenset[int]] = []

    def test(config: tuple[int, ...]) -> Outcome:
        calls.append(frozenset(config))
        return FAIL if {2, 9} <= set(config) else PASS

    result = ddmin(list(range(12)), test)
    assert result.minimal == (2, 9)
    assert result.tests_run == len(calls)
    assert len(set(calls)) == len(calls)


# --- dd -----------------------------------------------------------------------


def test_dd_isolates_3_given_5_with_the_hand_traced_tests() -> None:
    # Fails iff both 3 and 5 are present. passing = {}, failing = {0..7}.
    #  1 {0..7} F, 2 {} P (reproduce)
    #  n=2, Δ = {0..7}: 3 {0,1,2,3} P, 4 {4,5,6,7} P (no grown config fails);
    #       shrunk failing−{0..3} = {4..7} cached P -> case 2, passing = {4,5,6,7}
    #  Δ = {0,1,2,3}: 5 {0,1,4..7} P, 6 {2,3,4..7} F -> case 1, failing = {2,3,4..7}
    #  Δ = {2,3}: 7 {2,4..7} P, 8 {3,4..7} F -> failing = {3,4,5,6,7}; |Δ| = 1, done.
    result = dd([], [0, 1, 2, 3, 4, 5, 6, 7], fails_if_contains({3, 5}))
    assert result.passing == (4, 5, 6, 7)
    assert result.failing == (3, 4, 5, 6, 7)
    assert result.difference == (3,)
    assert result.difference_indices == (3,)
    assert result.tests_run == 8


def test_dd_returns_to_granularity_2_after_reducing_to_a_subset() -> None:
    # Case 1 of dd ("reduce to subset") continues with n = 2. passing = {}, failing = {0..15}:
    #  1 {0..15} F, 2 {} P (reproduce)
    #  n=2, Δ = {0..15}: 3 {0..7} U, 4 {8..15} U; shrunk configs are the same sets (cached U)
    #  n=4: 5 {0,1,2,3} F -> case 1, failing = {0,1,2,3}, n = 2
    #  Δ = {0,1,2,3}: 6 {0,1} F -> failing = {0,1}
    #  Δ = {0,1}: 7 {0} F -> failing = {0}; |Δ| = 1, done.
    # (Keeping n = 4 after test 5 would test {0} next and run 6 tests.)
    calls: list[tuple[int, ...]] = []

    def test(config: tuple[int, ...]) -> Outcome:
        calls.append(config)
        return small_configs_decide(config)

    result = dd([], list(range(16)), test)
    assert (result.passing, result.failing, result.difference) == ((), (0,), (0,))
    assert calls == [tuple(range(16)), (), tuple(range(8)), tuple(range(8, 16)), (0, 1, 2, 3), (0, 1), (0,)]
    assert result.tests_run == 7


def test_dd_returns_to_granularity_2_after_increasing_to_a_complement() -> None:
    # Case 2 of dd ("increase to complement") continues with n = 2. Only the empty
    # configuration and those of at least 12 elements decide (0 fails, else pass):
    #  1 {0..15} F, 2 {} P (reproduce)
    #  n=2, Δ = {0..15}: 3 {0..7} U, 4 {8..15} U; shrunk configs are the same sets (cached U)
    #  n=4: 5 {0..3} U, 6 {4..7} U, 7 {8..11} U, 8 {12..15} U;
    #       shrunk 9 {4..15} P -> case 2, passing = {4..15}, n = 2
    #  Δ = {0,1,2,3}: 10 {0,1,4..15} F -> case 1, failing = {0,1,4..15}
    #  Δ = {0,1}: 11 {0,4..15} F -> failing = {0,4..15}; |Δ| = 1, done.
    # (Keeping n = 4 after test 9 would test {0,4..15} next and run 10 tests.)
    def test(config: tuple[int, ...]) -> Outcome:
        if 0 in config:
            return FAIL if len(config) >= 12 else UNRESOLVED
        return PASS if len(config) >= 12 or not config else UNRESOLVED

    result = dd([], list(range(16)), test)
    assert result.passing == tuple(range(4, 16))
    assert result.failing == (0, *range(4, 16))
    assert result.difference == (0,)
    assert result.tests_run == 11


def test_dd_decreases_granularity_by_one_after_increasing_to_a_subset() -> None:
    # Case 3 of dd ("increase to subset") continues with n = max(n - 1, 2). Besides the two
    # given configurations only {12..15} passes and {0,12..15} <= c <= {0..3,12..15} fails:
    #  1 {0..15} F, 2 {} P (reproduce)
    #  n=2, Δ = {0..15}: 3 {0..7} U, 4 {8..15} U; shrunk configs are the same sets (cached U)
    #  n=4: grown 5 {0..3} U, 6 {4..7} U, 7 {8..11} U, 8 {12..15} P;
    #       shrunk 9 {4..15} U, 10 {0..3,8..15} U, 11 {0..7,12..15} U, 12 {0..11} U
    #       -> case 3, passing = {12..15}, n = 3
    #  n=3, Δ = {0..11}: 13 {0..3,12..15} F -> case 1, failing = {0..3,12..15}, n = 2
    #  Δ = {0..3}: 14 {0,1,12..15} F -> failing = {0,1,12..15}
    #  Δ = {0,1}: 15 {0,12..15} F -> failing = {0,12..15}; |Δ| = 1, done.
    # (n = 2 after test 12 would split Δ into {0..5} and {6..11} and run 16 tests.)
    everything, passes = tuple(range(16)), (12, 13, 14, 15)

    def test(config: tuple[int, ...]) -> Outcome:
        if config == everything or {0, *passes} <= set(config) <= {0, 1, 2, 3, *passes}:
            return FAIL
        return PASS if config in ((), passes) else UNRESOLVED

    result = dd([], list(everything), test)
    assert (result.passing, result.failing, result.difference) == (passes, (0, *passes), (0,))
    assert result.tests_run == 15


def test_dd_decreases_granularity_by_one_after_reducing_to_a_complement() -> None:
    # Case 4 of dd ("reduce to complement") continues with n = max(n - 1, 2). Besides the
    # given configurations {0..11}, {0..3,8..11}, {0} and {0,1} fail; everything else is U:
    #  1 {0..15} F, 2 {} P (reproduce)
    #  n=2, Δ = {0..15}: 3 {0..7} U, 4 {8..15} U; shrunk configs are the same sets (cached U)
    #  n=4: grown 5 {0..3} U, 6 {4..7} U, 7 {8..11} U, 8 {12..15} U;
    #       shrunk 9 {4..15} U, 10 {0..3,8..15} U, 11 {0..7,12..15} U, 12 {0..11} F
    #       -> case 4, failing = {0..11}, n = 3
    #  n=3, Δ = {0..11}: grown cached U; shrunk 13 {4..11} U, 14 {0..3,8..11} F, {0..7} cached U
    #       -> case 4, failing = {0..3,8..11}, n = 2
    #  n=2: {0..3} {8..11} cached U both ways -> n=4: 15 {0,1} F -> case 1, failing = {0,1}
    #  Δ = {0,1}: 16 {0} F -> failing = {0}; |Δ| = 1, done.
    # (n = 2 after test 12 would split Δ into {0..5} and {6..11} and run more tests.)
    failing = {tuple(range(16)), tuple(range(12)), (0, 1, 2, 3, 8, 9, 10, 11), (0,), (0, 1)}

    def test(config: tuple[int, ...]) -> Outcome:
        if config in failing:
            return FAIL
        return PASS if not config else UNRESOLVED

    result = dd([], list(range(16)), test)
    assert (result.passing, result.failing, result.difference) == ((), (0,), (0,))
    assert result.tests_run == 16


def test_dd_needs_both_halves_of_an_unresolved_pair() -> None:
    # 6 and 7 only make sense together (one without the other: UNRESOLVED), and
    # together they fail. So the 1-minimal difference is {6, 7}.
    #  1 {0..7} F, 2 {} P; n=2: 3 {0..3} P, 4 {4..7} F -> failing = {4..7}
    #  Δ = {4..7}: 5 {4,5} P, 6 {6,7} F -> failing = {6,7}
    #  Δ = {6,7}: 7 {6} U, 8 {7} U; shrunk {7}, {6} cached U; n = |Δ|: done.
    def test(config: tuple[int, ...]) -> Outcome:
        present = {6, 7} & set(config)
        if len(present) == 1:
            return UNRESOLVED
        return FAIL if present else PASS

    result = dd([], list(range(8)), test)
    assert result.passing == ()
    assert result.failing == (6, 7)
    assert result.difference == (6, 7)
    assert result.tests_run == 8


def test_dd_moves_the_passing_side_when_a_dependency_is_unresolved() -> None:
    # 6 fails, but 6 without its dependency 5 is UNRESOLVED.
    #  1 {0..7} F, 2 {} P; 3 {0..3} P, 4 {4..7} F -> failing = {4..7}
    #  Δ = {4..7}: 5 {4,5} P, 6 {6,7} U; shrunk {6,7} cached U, {4,5} cached P
    #       -> case 2, passing = {4,5}
    #  Δ = {6,7}: 7 {4,5,6} F -> failing = {4,5,6}; |Δ| = 1, done.
    def test(config: tuple[int, ...]) -> Outcome:
        if 6 in config and 5 not in config:
            return UNRESOLVED
        return FAIL if 6 in config else PASS

    result = dd([], list(range(8)), test)
    assert result.passing == (4, 5)
    assert result.failing == (4, 5, 6)
    assert result.difference == (6,)
    assert result.tests_run == 7


def test_dd_starts_from_a_nonempty_passing_configuration() -> None:
    failing = ["env=prod", "env.K_SERVICE=x", "clients=2", "startup=late"]
    passing = ["clients=2", "env=prod"]  # order does not matter; identity is by value
    result = dd(passing, failing, fails_if_contains({"env.K_SERVICE=x", "clients=2"}))
    assert result.difference == ("env.K_SERVICE=x",)
    assert set(result.passing) >= {"env=prod", "clients=2"}


def test_dd_matches_a_duplicated_passing_element_to_its_first_occurrence() -> None:
    # passing ("x",) is embedded as index 0 of ("x", "y", "x"): Δ = {1, 2};
    # grown {0, 1} = ("x", "y") fails -> failing = {0, 1}, difference {1}.
    result = dd(["x"], ["x", "y", "x"], fails_if_contains({"y"}))
    assert result.passing_indices == (0,)
    assert result.failing_indices == (0, 1)
    assert result.difference_indices == (1,)


def test_dd_raises_when_the_passing_side_fails() -> None:
    with pytest.raises(NotReproducedError) as caught:
        dd([1], [1, 2], lambda config: FAIL)
    assert (caught.value.side, caught.value.outcome) == ("passing", FAIL)


def test_dd_raises_when_the_failing_side_passes() -> None:
    with pytest.raises(NotReproducedError) as caught:
        dd([], [1, 2], lambda config: UNRESOLVED)
    assert (caught.value.side, caught.value.outcome) == ("failing", UNRESOLVED)


def test_dd_rejects_a_passing_configuration_outside_the_failing_one() -> None:
    with pytest.raises(ValueError, match="'z' is not in the failing configuration"):
        dd(["z"], ["a", "b"], fails_if_contains({"a"}))
    with pytest.raises(ValueError, match="not in the failing"):
        dd(["a", "a"], ["a", "b"], fails_if_contains({"b"}))


def test_not_reproduced_error_survives_pickling() -> None:
    error = NotReproducedError("passing", UNRESOLVED, PASS)
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.side, restored.outcome, restored.expected) == ("passing", UNRESOLVED, PASS)
    assert str(restored) == str(error)


def test_results_have_value_reprs() -> None:
    # tests: {a,b} F (reproduce), {a} P, {b} F, then {} P (one element left)
    result = ddmin(["a", "b"], fails_if_contains({"b"}))
    assert repr(result) == "DDResult(minimal=('b',), minimal_indices=(1,), tests_run=4)"
    assert repr(FAIL) == "Outcome.FAIL"


# --- properties ---------------------------------------------------------------

causes_strategy = st.integers(min_value=0, max_value=10).flatmap(
    lambda size: st.tuples(
        st.just(size),
        st.lists(
            st.frozensets(st.integers(0, max(size - 1, 0)), max_size=3), min_size=1, max_size=3
        ),
    )
)


def monotone_predicate(causes: list[frozenset[int]]) -> Predicate:
    """FAIL iff some cause is fully contained: adding elements never stops a failure."""
    return lambda config: FAIL if any(cause <= set(config) for cause in causes) else PASS


@settings(derandomize=True, max_examples=300, deadline=None)
@given(causes_strategy)
def test_ddmin_result_fails_and_is_1_minimal_for_monotone_failures(
    size_and_causes: tuple[int, list[frozenset[int]]],
) -> None:
    size, causes = size_and_causes
    causes = [cause for cause in causes if cause <= set(range(size))]
    test = monotone_predicate(causes or [frozenset()])
    result = ddmin(list(range(size)), test)
    assert test(result.minimal) is FAIL
    for removed in range(len(result.minimal)):
        smaller = result.minimal[:removed] + result.minimal[removed + 1 :]
        assert test(smaller) is not FAIL
    assert result.tests_run <= ddmin_worst_case(size)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=9), st.data())
def test_ddmin_is_1_minimal_for_arbitrary_outcomes(size: int, data: st.DataObject) -> None:
    outcomes: dict[frozenset[int], Outcome] = {frozenset(range(size)): FAIL}

    def test(config: tuple[int, ...]) -> Outcome:
        key = frozenset(config)
        if key not in outcomes:
            outcomes[key] = data.draw(st.sampled_from(Outcome))
        return outcomes[key]

    result = ddmin(list(range(size)), test)
    assert test(result.minimal) is FAIL
    for removed in range(len(result.minimal)):
        assert test(result.minimal[:removed] + result.minimal[removed + 1 :]) is not FAIL
    assert result.tests_run <= ddmin_worst_case(size)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=9), st.data())
def test_dd_difference_is_1_minimal_for_arbitrary_outcomes(size: int, data: st.DataObject) -> None:
    # 1-minimal difference (as defined in the paper): for every δ in the difference,
    # test(passing ∪ {δ}) is not PASS and test(failing − {δ}) is not FAIL.
    outcomes: dict[frozenset[int], Outcome] = {frozenset(range(size)): FAIL, frozenset(): PASS}

    def test(config: tuple[int, ...]) -> Outcome:
        key = frozenset(config)
        if key not in outcomes:
            outcomes[key] = data.draw(st.sampled_from(Outcome))
        return outcomes[key]

    result = dd([], list(range(size)), test)
    assert set(result.passing) <= set(result.failing)
    assert test(result.passing) is PASS
    assert test(result.failing) is FAIL
    assert result.difference == tuple(e for e in result.failing if e not in result.passing)
    for delta in result.difference:
        assert test(tuple(sorted(set(result.passing) | {delta}))) is not PASS
        assert test(tuple(e for e in result.failing if e != delta)) is not FAIL
    assert result.tests_run <= dd_quadratic_bound(size)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=64), st.data())
def test_dd_without_unresolved_isolates_one_element_in_logarithmic_tests(
    size: int, data: st.DataObject
) -> None:
    # Only PASS/FAIL: every round tests at most two configurations and halves Δ,
    # so dd ends with |Δ| = 1 after at most 2·⌈log2 |Δ|⌉ tests (+2 to reproduce).
    culprit = data.draw(st.integers(0, size - 1))
    result = dd([], list(range(size)), fails_if_contains({culprit}))
    assert result.difference == (culprit,)
    assert result.tests_run <= 2 + 2 * math.ceil(math.log2(size))
