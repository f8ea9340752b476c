"""Delta debugging: ddmin and dd after Zeller & Hildebrandt (2002).

"Simplifying and Isolating Failure-Inducing Input" (IEEE TSE 28(2)) defines two
algorithms over a configuration, a set of elements (characters of an input,
changes, or here ``(factor_path, value)`` pairs of a profile):

- ``ddmin`` shrinks a failing configuration to a 1-minimal failing one;
- ``dd`` narrows the difference between a passing and a failing configuration
  to a 1-minimal failure-inducing difference.

Elements are identified by their index, so duplicates are fine and the order
of the input is kept in every result. The test sees a configuration as a tuple
of elements in input order and answers PASS, FAIL or UNRESOLVED (the test
could not decide, e.g. an inconsistent configuration).

Usage::

    def test(config):
        return Outcome.FAIL if {"b", "g"} <= set(config) else Outcome.PASS

    result = ddmin(list("abcdefgh"), test)
    result.minimal         # ('b', 'g')
    isolation = dd(passing=[], failing=list("abcdefgh"), test=...)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)

Config = tuple[int, ...]
"""A configuration: sorted indices into the element sequence."""


class Outcome(enum.Enum):
    """What a test says about one configuration."""

    PASS = "PASS"
    FAIL = "FAIL"
    UNRESOLVED = "UNRESOLVED"

    def __repr__(self) -> str:
        return f"Outcome.{self.name}"


class NotReproducedError(Exception):
    """The configuration given as passing or failing does not behave so.

    Attributes:
        side: "passing" or "failing", the configuration that did not reproduce.
        outcome: what the test returned for it.
        expected: what it should have returned.
    """

    def __init__(self, side: str, outcome: Outcome, expected: Outcome) -> None:
        super().__init__(side, outcome, expected)
        self.side = side
        self.outcome = outcome
        self.expected = expected

    def __str__(self) -> str:
        return (
            f"{self.side} configuration not reproduced: "
            f"test returned {self.outcome.value}, expected {self.expected.value}"
        )


@dataclass(frozen=True)
class TestRecord:
    """One test actually run: the configuration (indices) and its outcome."""

    __test__ = False  # not a pytest test class despite the name

    indices: Config
    outcome: Outcome


class CachingTester(Generic[T]):
    """Runs ``test`` on configurations of ``elements``, once per distinct configuration.

    ``tests_run`` counts calls of the wrapped test; cache hits are not counted.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, elements: Sequence[T], test: Callable[[tuple[T, ...]], Outcome]) -> None:
        self._elements = tuple(elements)
        self._test = test
        self._cache: dict[frozenset[int], Outcome] = {}
        self._history: list[TestRecord] = []

    @property
    def tests_run(self) -> int:
        return len(self._history)

    @property
    def history(self) -> tuple[TestRecord, ...]:
        """Every test run, in order."""
        return tuple(self._history)

    def __call__(self, indices: Iterable[int]) -> Outcome:
        key = frozenset(indices)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        config = tuple(sorted(key))
        outcome = self._test(tuple(self._elements[i] for i in config))
        if not isinstance(outcome, Outcome):
            raise TypeError(f"test must return an Outcome, got {outcome!r}")
        self._cache[key] = outcome
        self._history.append(TestRecord(config, outcome))
        return outcome


@dataclass(frozen=True)
class DDResult(Generic[T]):
    """A 1-minimal failing configuration found by ``ddmin``."""

    minimal: tuple[T, ...]
    minimal_indices: Config
    tests_run: int


@dataclass(frozen=True)
class IsolationResult(Generic[T]):
    """A passing and a failing configuration whose difference is 1-minimal.

    ``passing`` is a subset of ``failing``; ``difference`` is ``failing``
    minus ``passing``. Indices refer to the ``failing`` sequence given to ``dd``.
    """

    passing: tuple[T, ...]
    failing: tuple[T, ...]
    difference: tuple[T, ...]
    passing_indices: Config
    failing_indices: Config
    difference_indices: Config
    tests_run: int


def split(config: Config, parts: int) -> list[Config]:
    """Split ``config`` into ``parts`` contiguous pieces of nearly equal size."""
    pieces: list[Config] = []
    start = 0
    for part in range(parts):
        size = (len(config) - start) // (parts - part)
        pieces.append(config[start : start + size])
        start += size
    return pieces


def _union(config: Config, extra: Config) -> Config:
    return tuple(sorted(set(config) | set(extra)))


def _minus(config: Config, removed: Config) -> Config:
    removed_set = set(removed)
    return tuple(i for i in config if i not in removed_set)


def _first_with(
    tester: CachingTester[T], configs: Iterable[Config], wanted: Outcome
) -> Config | None:
    """The first configuration whose test outcome is ``wanted`` (tests in order, stops early)."""
    for config in configs:
        if tester(config) is wanted:
            return config
    return None


def _require(tester: CachingTester[T], config: Config, side: str, expected: Outcome) -> None:
    outcome = tester(config)
    if outcome is not expected:
        raise NotReproducedError(side, outcome, expected)


def ddmin(elements: Sequence[T], test: Callable[[tuple[T, ...]], Outcome]) -> DDResult[T]:
    """Reduce the failing configuration ``elements`` to a 1-minimal failing one.

    Raises:
        NotReproducedError: ``test(elements)`` is not FAIL.
    """
    tester = CachingTester(elements, test)
    everything = tuple(range(len(elements)))
    _require(tester, everything, "failing", Outcome.FAIL)
    minimal = _ddmin_config(tester, everything)
    return DDResult(
        minimal=tuple(elements[i] for i in minimal),
        minimal_indices=minimal,
        tests_run=tester.tests_run,
    )


def _ddmin_config(tester: CachingTester[T], failing: Config) -> Config:
    """The ddmin loop: reduce to subset, reduce to complement, else refine granularity.

    UNRESOLVED counts as "not failing", as in the paper. The paper assumes the
    empty configuration passes; when a single element is left the empty
    configuration is tested too, so the result is 1-minimal without that assumption.
    """
    granularity = 2
    while len(failing) >= 2:
        subsets = split(failing, granularity)
        failing_subset = _first_with(tester, subsets, Outcome.FAIL)
        if failing_subset is not None:
            failing, granularity = failing_subset, 2
            continue
        complements = [_minus(failing, subset) for subset in subsets]
        failing_complement = _first_with(tester, complements, Outcome.FAIL)
        if failing_complement is not None:
            failing, granularity = failing_complement, max(granularity - 1, 2)
            continue
        if granularity >= len(failing):
            break
        granularity = min(2 * granularity, len(failing))
    if len(failing) == 1 and tester(()) is Outcome.FAIL:
        return ()
    return failing


def dd(
    passing: Sequence[H], failing: Sequence[H], test: Callable[[tuple[H, ...]], Outcome]
) -> IsolationResult[H]:
    """Isolate a 1-minimal failure-inducing difference between ``passing`` and ``failing``.

    ``passing`` must be a sub-multiset of ``failing``; the test sees
    configurations as tuples in ``failing`` order.

    Raises:
        ValueError: an element of ``passing`` is not in ``failing``.
        NotReproducedError: ``test(failing)`` is not FAIL or ``test(passing)`` is not PASS.
    """
    passing_config = _embed(passing, failing)
    tester = CachingTester(failing, test)
    everything = tuple(range(len(failing)))
    _require(tester, everything, "failing", Outcome.FAIL)
    _require(tester, passing_config, "passing", Outcome.PASS)
    passing_config, failing_config = _dd_configs(tester, passing_config, everything)
    difference = _minus(failing_config, passing_config)
    return IsolationResult(
        passing=tuple(failing[i] for i in passing_config),
        failing=tuple(failing[i] for i in failing_config),
        difference=tuple(failing[i] for i in difference),
        passing_indices=passing_config,
        failing_indices=failing_config,
        difference_indices=difference,
        tests_run=tester.tests_run,
    )


def _embed(passing: Sequence[H], failing: Sequence[H]) -> Config:
    """Indices into ``failing`` of the elements of ``passing`` (duplicates matched in order)."""
    free_positions: dict[H, list[int]] = {}
    for index, element in enumerate(failing):
        free_positions.setdefault(element, []).append(index)
    indices: list[int] = []
    for element in passing:
        positions = free_positions.get(element)
        if not positions:
            raise ValueError(f"passing element {element!r} is not in the failing configuration")
        indices.append(positions.pop(0))
    return tuple(sorted(indices))


def _dd_configs(
    tester: CachingTester[H], passing: Config, failing: Config
) -> tuple[Config, Config]:
    """The dd algorithm of the paper, its five cases in the paper's order.

    With Δ = failing − passing split into Δ1..Δn:
    1. reduce to subset:        passing ∪ Δi fails  -> failing := passing ∪ Δi, n := 2
    2. increase to complement:  failing − Δi passes -> passing := failing − Δi, n := 2
    3. increase to subset:      passing ∪ Δi passes -> passing := passing ∪ Δi, n := max(n − 1, 2)
    4. reduce to complement:    failing − Δi fails  -> failing := failing − Δi, n := max(n − 1, 2)
    5. increase granularity:    n < |Δ|             -> n := min(2n, |Δ|)
    otherwise the difference is 1-minimal. Cases 3 and 4 reuse cached outcomes of 1 and 2.
    """
    granularity = 2
    while True:
        difference = _minus(failing, passing)
        if len(difference) < 2:
            return passing, failing
        granularity = min(granularity, len(difference))
        parts = split(difference, granularity)
        grown = [_union(passing, part) for part in parts]
        shrunk = [_minus(failing, part) for part in parts]
        if (config := _first_with(tester, grown, Outcome.FAIL)) is not None:
            failing, granularity = config, 2
        elif (config := _first_with(tester, shrunk, Outcome.PASS)) is not None:
            passing, granularity = config, 2
        elif (config := _first_with(tester, grown, Outcome.PASS)) is not None:
            passing, granularity = config, max(granularity - 1, 2)
        elif (config := _first_with(tester, shrunk, Outcome.FAIL)) is not None:
            failing, granularity = config, max(granularity - 1, 2)
        elif granularity < len(difference):
            granularity = min(2 * granularity, len(difference))
        else:
            return passing, failing
