"""Spectrum-based fault localization: Ochiai and Tarantula over run spectra.

A spectrum is what one run covered (any hashable events: ``(file, line)``,
``(file, from_line, to_line)`` branches, decision outcomes) and whether the run
failed. Events covered mostly by failing runs are suspicious.

Usage::

    spectra = [Spectrum({"a", "b"}, failed=True), Spectrum({"a"}, failed=False)]
    rank(spectra, ochiai)[0]   # RankedEvent(event='b', score=1.0, failed=1, passed=0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class SuspiciousnessFormula(Protocol):
    """Maps the counts of one event to a suspiciousness score in [0, 1]."""

    def __call__(
        self, failed_e: int, passed_e: int, total_failed: int, total_passed: int
    ) -> float: ...


@dataclass(frozen=True)
class Spectrum:
    """The events one run covered and whether it failed; ``label`` names the run."""

    events: frozenset[Hashable]
    failed: bool
    label: str = ""

    def __init__(self, events: Iterable[Hashable], failed: bool, label: str = "") -> None:
        object.__setattr__(self, "events", frozenset(events))
        object.__setattr__(self, "failed", failed)
        object.__setattr__(self, "label", label)

    def __repr__(self) -> str:
        events = ", ".join(repr(event) for event in sort_events(self.events))
        return f"Spectrum(events={{{events}}}, failed={self.failed!r}, label={self.label!r})"


@dataclass(frozen=True)
class RankedEvent:
    """An event with its suspiciousness and the number of failing/passing runs covering it."""

    event: Hashable
    score: float
    failed: int
    passed: int


def ochiai(failed_e: int, passed_e: int, total_failed: int, total_passed: int = 0) -> float:
    """failed(e) / sqrt(total_failed · (failed(e) + passed(e))); 0 when the denominator is 0.

    ``total_passed`` is not used; it is accepted so every formula has one signature.
    """
    denominator = math.sqrt(total_failed * (failed_e + passed_e))
    if denominator == 0:
        return 0.0
    return failed_e / denominator


def tarantula(failed_e: int, passed_e: int, total_failed: int, total_passed: int) -> float:
    """(f/F) / ((f/F) + (p/P)), a ratio taken as 0 when its total is 0.

    An event no run covered scores 0; with no passing runs an event covered
    by a failing run scores 1; with no failing runs every event scores 0.
    """
    failed_ratio = failed_e / total_failed if total_failed else 0.0
    passed_ratio = passed_e / total_passed if total_passed else 0.0
    if failed_ratio + passed_ratio == 0:
        return 0.0
    return failed_ratio / (failed_ratio + passed_ratio)


FORMULAS: dict[str, SuspiciousnessFormula] = {"ochiai": ochiai, "tarantula": tarantula}
"""The formulas by name, for notebook parameters."""


def rank(spectra: Sequence[Spectrum], formula: SuspiciousnessFormula) -> list[RankedEvent]:
    """Every covered event, most suspicious first; ties broken by event, ascending."""
    failed_counts: Counter[Hashable] = Counter()
    passed_counts: Counter[Hashable] = Counter()
    for spectrum in spectra:
        (failed_counts if spectrum.failed else passed_counts).update(spectrum.events)
    total_failed = sum(1 for spectrum in spectra if spectrum.failed)
    total_passed = len(spectra) - total_failed
    ranked = [
        RankedEvent(
            event=event,
            score=formula(failed_counts[event], passed_counts[event], total_failed, total_passed),
            failed=failed_counts[event],
            passed=passed_counts[event],
        )
        for event in sort_events(set(failed_counts) | set(passed_counts))
    ]
    ranked.sort(key=lambda item: -item.score)  # stable: ties keep the event order
    return ranked


def sort_events(events: Iterable[Hashable]) -> list[Hashable]:
    """Events in ascending order; by type name and repr when they do not compare."""
    event_list = list(events)
    try:
        return sorted(event_list)  # type: ignore[type-var]
    except TypeError:
        return sorted(event_list, key=lambda event: (type(event).__name__, repr(event)))
