"""Tests of the Ochiai and Tarantula formulas and the ranking, on hand-computed spectra."""

from __future__ import annotations

import math

import pytest

from investigation.analysis.sbfl import FORMULAS, RankedEvent, Spectrum, ochiai, rank, tarantula

# Four runs, two failing (F = 2) and two passing (P = 2):
#   r1 FAIL {a, b, c}   r2 FAIL {a, b}   r3 PASS {a, c}   r4 PASS {a, d}
# Counts per event (failed f, passed p):  a (2, 2)  b (2, 0)  c (1, 1)  d (0, 1)
# Ochiai f / sqrt(F (f + p)):
#   a 2/sqrt(2·4) = 1/sqrt(2) ≈ 0.7071   b 2/sqrt(2·2) = 1   c 1/sqrt(2·2) = 0.5   d 0
# Tarantula (f/F) / (f/F + p/P):
#   a 1/(1 + 1) = 0.5   b 1/(1 + 0) = 1   c 0.5/(0.5 + 0.5) = 0.5   d 0/(0 + 0.5) = 0
SPECTRA = [
    Spectrum({"a", "b", "c"}, failed=True, label="r1"),
    Spectrum({"a", "b"}, failed=True, label="r2"),
    Spectrum({"a", "c"}, failed=False, label="r3"),
    Spectrum({"a", "d"}, failed=False, label="r4"),
]


def test_ochiai_on_the_hand_computed_counts() -> None:
    assert ochiai(2, 2, 2) == pytest.approx(1 / math.sqrt(2))
    assert ochiai(2, 0, 2) == pytest.approx(1.0)
    assert ochiai(1, 1, 2) == pytest.approx(0.5)
    assert ochiai(0, 1, 2) == 0.0


def test_ochiai_is_zero_when_the_denominator_is_zero() -> None:
    assert ochiai(0, 0, 2) == 0.0  # event never covered
    assert ochiai(0, 3, 0) == 0.0  # no failing run


def test_tarantula_on_the_hand_computed_counts() -> None:
    assert tarantula(2, 2, 2, 2) == pytest.approx(0.5)
    assert tarantula(2, 0, 2, 2) == pytest.approx(1.0)
    assert tarantula(1, 1, 2, 2) == pytest.approx(0.5)
    assert tarantula(0, 1, 2, 2) == 0.0


def test_tarantula_guards_against_empty_totals() -> None:
    assert tarantula(0, 0, 2, 2) == 0.0  # never covered
    assert tarantula(1, 0, 1, 0) == 1.0  # no passing runs: covered by a failure -> 1
    assert tarantula(0, 2, 0, 2) == 0.0  # no failing runs
    assert tarantula(0, 0, 0, 0) == 0.0


def test_rank_with_ochiai_orders_by_score() -> None:
    ranked = rank(SPECTRA, ochiai)
    assert [item.event for item in ranked] == ["b", "a", "c", "d"]
    assert ranked[0] == RankedEvent(event="b", score=pytest.approx(1.0), failed=2, passed=0)
    assert ranked[1].score == pytest.approx(1 / math.sqrt(2))
    assert (ranked[1].failed, ranked[1].passed) == (2, 2)
    assert ranked[3] == RankedEvent(event="d", score=0.0, failed=0, passed=1)


def test_rank_with_tarantula_breaks_ties_by_event_ascending() -> None:
    ranked = rank(SPECTRA, tarantula)
    # a and c both score 0.5: a comes first.
    assert [(item.event, item.score) for item in ranked] == [
        ("b", pytest.approx(1.0)),
        ("a", pytest.approx(0.5)),
        ("c", pytest.approx(0.5)),
        ("d", 0.0),
    ]


def test_rank_is_independent_of_run_order() -> None:
    assert rank(list(reversed(SPECTRA)), ochiai) == rank(SPECTRA, ochiai)


def test_rank_orders_line_and_branch_events_deterministically() -> None:
    spectra = [
        Spectrum({("auth.py", 12), ("auth.py", 12, 15)}, failed=True),
        Spectrum({("auth.py", 3)}, failed=False),
    ]
    ranked = rank(spectra, ochiai)
    # both failure-only events score 1: (file, line) sorts before (file, line, to_line)
    assert [item.event for item in ranked] == [
        ("auth.py", 12),
        ("auth.py", 12, 15),
        ("auth.py", 3),
    ]


def test_rank_sorts_events_that_do_not_compare_by_type_then_repr() -> None:
    spectra = [Spectrum({1, "x"}, failed=True)]
    assert [item.event for item in rank(spectra, ochiai)] == [1, "x"]  # "int" < "str"


def test_rank_of_no_spectra_is_empty() -> None:
    assert rank([], tarantula) == []


def test_formulas_are_registered_by_name() -> None:
    assert FORMULAS == {"ochiai": ochiai, "tarantula": tarantula}


def test_spectrum_has_a_sorted_value_repr() -> None:
    spectrum = Spectrum(["b", "a"], failed=True, label="r1")
    assert repr(spectrum) == "Spectrum(events={'a', 'b'}, failed=True, label='r1')"
    assert spectrum == Spectrum({"a", "b"}, failed=True, label="r1")


def test_rank_breaks_an_exact_tie_by_event_not_by_failing_count() -> None:
    # r1 FAIL {a, b}  r2 FAIL {b}  r3 PASS {b}  r4 PASS {b}; F = 2
    # a (1, 0): 1/sqrt(2·1) = 1/sqrt(2);  b (2, 2): 2/sqrt(2·4) = 1/sqrt(2) -> a tie, a first
    spectra = [
        Spectrum({"a", "b"}, failed=True),
        Spectrum({"b"}, failed=True),
        Spectrum({"b"}, failed=False),
        Spectrum({"b"}, failed=False),
    ]
    ranked = rank(spectra, ochiai)
    assert [(item.event, item.failed, item.passed) for item in ranked] == [("a", 1, 0), ("b", 2, 2)]
    assert ranked[0].score == ranked[1].score == pytest.approx(1 / math.sqrt(2))


def test_rank_orders_close_scores_by_score_before_event() -> None:
    # F = 2, P = 8. b (1, 0): 1/sqrt(2·1) ≈ 0.7071;  z (1, 1): 1/sqrt(2·2) = 0.5
    # a (2, 7): 2/sqrt(2·9) ≈ 0.4714, just below z: z before a although only 0.03 apart
    spectra = [
        Spectrum({"a", "b", "z"}, failed=True),
        Spectrum({"a"}, failed=True),
        Spectrum({"a", "z"}, failed=False),
        *(Spectrum({"a"}, failed=False) for _ in range(6)),
        Spectrum(set(), failed=False),
    ]
    ranked = rank(spectra, ochiai)
    assert [(item.event, item.failed, item.passed) for item in ranked] == [("b", 1, 0), ("z", 1, 1), ("a", 2, 7)]
    assert [item.score for item in ranked] == [
        pytest.approx(1 / math.sqrt(2)), pytest.approx(0.5), pytest.approx(2 / math.sqrt(18))
    ]


def test_rank_counts_a_failing_run_that_covered_no_event_in_the_totals() -> None:
    # r1 FAIL {a}  r2 FAIL {}  r3 PASS {a}: F = 2, P = 1
    # Ochiai a (1, 1): 1/sqrt(2·2) = 0.5;  Tarantula a: (1/2) / (1/2 + 1/1) = 1/3
    spectra = [Spectrum({"a"}, failed=True), Spectrum(set(), failed=True), Spectrum({"a"}, failed=False)]
    assert rank(spectra, ochiai) == [RankedEvent(event="a", score=pytest.approx(0.5), failed=1, passed=1)]
    assert rank(spectra, tarantula)[0].score == pytest.approx(1 / 3)
