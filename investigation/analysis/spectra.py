"""Line and branch spectra of the backend per connection, and their SBFL ranking.

coverage.py measures ``investigation/backend`` while a profile runs. Connections
of one run interleave on the event loop, so a measurement context per connection
needs a switch at every task step: the run uses an event loop whose task factory
wraps each coroutine so that every ``send``/``throw`` first switches coverage to
the dynamic context of the connection the task belongs to (a context variable
set when the connection starts and inherited by the tasks it creates). Process
tasks (cleanup, health checks) and the driver fall into the ``process`` context,
which no spectrum includes.

A connection *fails* when it closed 1011. Its spectrum is the set of backend
lines it executed and the branches it took, where a branch is an arc out of a
line that the sweep saw leave in two or more directions.

    spectra = collect_spectra(sweep_profiles())
    ranking = rank_lines(spectra, "ochiai")[:10]   # RankedLine(file, line, function, source, ...)

Coverage nests: when the test suite itself runs under coverage, the outer
measurement is paused while a spectrum is collected and resumes afterwards.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import functools
from collections import defaultdict
from collections.abc import Coroutine, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coverage

from investigation.analysis.sbfl import FORMULAS, RankedEvent, Spectrum, rank
from investigation.backend import variants as _variants
from investigation.backend.variants import get_variant
from investigation.clock import VirtualClock, outside_event_loop, virtual_loop
from investigation.profiles import Profile, flatten_profile, list_profiles, unflatten_profile
from investigation.run_cache import shared
from investigation.simulate import SimulationRun
from investigation.trace import ConnectionResult
from investigation.traffic import PlannedConnection

BACKEND_DIR = Path(_variants.__file__).resolve().parent
REPO_ROOT = BACKEND_DIR.parents[1]
PROCESS_CONTEXT = "process"
FAILING_CLOSE_CODE = 1011

_connection_context: contextvars.ContextVar[str] = contextvars.ContextVar("coverage_connection", default=PROCESS_CONTEXT)

Line = tuple[str, int]
"""A backend line: (file relative to the repository, line number)."""
Branch = tuple[str, int, int]
"""A branch taken: (file, from line, to line); a negative "to" leaves the function."""


@dataclass(frozen=True)
class ConnectionSpectrum:
    """What one connection executed and how it ended."""

    run: str
    index: int
    close_code: int | None
    lines: frozenset[Line]
    arcs: frozenset[Branch]

    @property
    def label(self) -> str:
        return f"{self.run}#{self.index}"

    @property
    def failed(self) -> bool:
        return self.close_code == FAILING_CLOSE_CODE


# ---------------------------------------------------------------------------
# Measuring


class _ContextSwitcher:
    """Switches coverage's dynamic context, only when it changes."""

    def __init__(self, measurement: coverage.Coverage) -> None:
        self._measurement = measurement
        self._current: str | None = None

    def switch(self, context: str) -> None:
        if context != self._current:
            self._measurement.switch_context(context)
            self._current = context


class _SwitchingCoroutine(Coroutine[Any, Any, Any]):
    """A task's coroutine that switches to its connection's context before every step."""

    def __init__(self, inner: Coroutine[Any, Any, Any], switcher: _ContextSwitcher) -> None:
        self._inner = inner
        self._switcher = switcher

    def send(self, value: Any) -> Any:
        self._switcher.switch(_connection_context.get())
        return self._inner.send(value)

    def throw(self, *args: Any) -> Any:
        self._switcher.switch(_connection_context.get())
        return self._inner.throw(*args)

    def close(self) -> None:
        self._inner.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._inner.__await__()


def connection_context(index: int) -> str:
    return f"connection-{index:05d}"


class _MeasuredRun(SimulationRun):
    """A simulation run whose connections each get their own coverage context."""

    def __init__(self, profile: Profile, variant: Any, clock: VirtualClock, switcher: _ContextSwitcher) -> None:
        super().__init__(profile, variant, clock)
        self._switcher = switcher

    async def _connect(self, planned: PlannedConnection) -> None:
        context = connection_context(planned.index)
        _connection_context.set(context)
        self._switcher.switch(context)
        await super()._connect(planned)


def _measured_run(profile: Profile, variant: str, switcher: _ContextSwitcher) -> dict[int, ConnectionResult]:
    clock = VirtualClock()
    loop = virtual_loop(clock)

    def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        return asyncio.Task(_SwitchingCoroutine(coro, switcher), loop=loop, **options)

    loop.set_task_factory(task_factory)
    run = _MeasuredRun(profile, get_variant(variant), clock, switcher)
    try:
        loop.run_until_complete(run.execute())
    finally:
        loop.close()
    return run.results


def _new_measurement() -> coverage.Coverage:
    measurement = coverage.Coverage(
        data_file=None, branch=True, include=[str(BACKEND_DIR / "*.py")], config_file=False
    )
    measurement.set_option("run:disable_warnings", ["no-data-collected", "module-not-measured"])
    return measurement


def measure_profile(profile: Profile, variant: str = "original") -> list[ConnectionSpectrum]:
    """The executed backend lines and arcs of every connection of one run of ``profile``.

    From inside a running event loop (a notebook kernel) the measured run happens in a worker thread.
    """
    return outside_event_loop(_measure_here, profile, variant)


def _measure_here(profile: Profile, variant: str) -> list[ConnectionSpectrum]:
    measurement = _new_measurement()
    switcher = _ContextSwitcher(measurement)
    measurement.start()
    try:
        switcher.switch(PROCESS_CONTEXT)
        results = _measured_run(profile, variant, switcher)
    finally:
        measurement.stop()
    return _spectra_from(measurement.get_data(), profile.name, results)


def _spectra_from(data: coverage.CoverageData, run: str, results: dict[int, ConnectionResult]) -> list[ConnectionSpectrum]:
    """One spectrum per connection in ``results``: the lines and arcs measured in its context.

    Arcs whose start line is not positive are dropped: coverage.py records entering a code
    object as an arc from minus its first line, which no line executed. Arcs to a negative
    line (leaving a function) are kept.
    """
    files = {path: _relative(path) for path in sorted(data.measured_files())}
    lines: dict[str, set[Line]] = defaultdict(set)
    for path, relative in files.items():
        for number, contexts in data.contexts_by_lineno(path).items():
            for context in contexts:
                lines[context].add((relative, number))
    spectra = []
    for index in sorted(results):
        context = connection_context(index)
        data.set_query_contexts([f"^{context}$"])
        arcs = {(relative, a, b) for path, relative in files.items() for a, b in data.arcs(path) or () if a > 0}
        spectra.append(
            ConnectionSpectrum(run, index, results[index].close_code, frozenset(lines[context]), frozenset(arcs))
        )
    data.set_query_contexts(None)
    return spectra


def _relative(path: str) -> str:
    return Path(path).resolve().relative_to(REPO_ROOT).as_posix()


def collect_spectra(profiles: Iterable[Profile], variant: str = "original") -> list[ConnectionSpectrum]:
    """The spectra of every connection of every profile, in profile then connection order."""
    return [spectrum for profile in profiles for spectrum in measure_profile(profile, variant)]


def sweep_profiles(profiles_dir: str | None = None) -> list[Profile]:
    """The shipped profiles plus, for each, twice its connections and an injected ID-generator failure."""
    profiles = list_profiles(profiles_dir)
    return profiles + [_doubled(p) for p in profiles] + [_with_failing_id_generator(p) for p in profiles]


def _doubled(profile: Profile) -> Profile:
    factors = flatten_profile(profile)
    for path, value in list(factors.items()):
        if path.endswith(".connections") and isinstance(value, int):
            factors[path] = 2 * value
    return unflatten_profile(f"{profile.name} x2 connections", factors, base=profile)


def _with_failing_id_generator(profile: Profile) -> Profile:
    factors = {**flatten_profile(profile), "startup.id_generator_fails": True}
    return unflatten_profile(f"{profile.name} ID generator failing", factors, base=profile)


# ---------------------------------------------------------------------------
# Ranking


def branch_points(spectra: Sequence[ConnectionSpectrum]) -> set[Line]:
    """Lines the sweep saw leave in two or more directions."""
    destinations: dict[Line, set[int]] = defaultdict(set)
    for spectrum in spectra:
        for file, source, target in spectrum.arcs:
            destinations[(file, source)].add(target)
    return {line for line, targets in destinations.items() if len(targets) > 1}


def line_spectra(spectra: Sequence[ConnectionSpectrum]) -> list[Spectrum]:
    return [Spectrum(s.lines, failed=s.failed, label=s.label) for s in spectra]


def branch_spectra(spectra: Sequence[ConnectionSpectrum]) -> list[Spectrum]:
    points = branch_points(spectra)
    return [
        Spectrum({arc for arc in s.arcs if (arc[0], arc[1]) in points}, failed=s.failed, label=s.label)
        for s in spectra
    ]


@dataclass(frozen=True)
class RankedLine:
    """A line (or the branch from it to ``to_line``) with its suspiciousness and where it is."""

    rank: int
    file: str
    line: int
    to_line: int | None
    function: str
    source: str
    score: float
    failed: int
    passed: int

    @property
    def location(self) -> str:
        arrow = f"->{self.to_line}" if self.to_line is not None else ""
        return f"{self.file}:{self.line}{arrow}"


def rank_lines(spectra: Sequence[ConnectionSpectrum], formula: str = "ochiai") -> list[RankedLine]:
    """Every executed line, most suspicious first (ties: file, then line)."""
    return _located(rank(line_spectra(spectra), FORMULAS[formula]))


def rank_branches(spectra: Sequence[ConnectionSpectrum], formula: str = "ochiai") -> list[RankedLine]:
    """Every branch taken at a branch point, most suspicious first."""
    return _located(rank(branch_spectra(spectra), FORMULAS[formula]))


def _located(ranked: Sequence[RankedEvent]) -> list[RankedLine]:
    located = []
    for position, item in enumerate(ranked, start=1):
        file, line, *rest = item.event  # type: ignore[misc]
        located.append(
            RankedLine(
                rank=position, file=file, line=line, to_line=rest[0] if rest else None,
                function=enclosing_function(file, line), source=source_line(file, line),
                score=round(item.score, 4), failed=item.failed, passed=item.passed,
            )
        )
    return located


@functools.cache
def _source_lines(file: str) -> tuple[str, ...]:
    return tuple((REPO_ROOT / file).read_text(encoding="utf-8").splitlines())


def source_line(file: str, line: int) -> str:
    lines = _source_lines(file)
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


@functools.cache
def _function_spans(file: str) -> tuple[tuple[int, int, str], ...]:
    tree = ast.parse("\n".join(_source_lines(file)))
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans.append((node.lineno, node.end_lineno or node.lineno, node.name))
    return tuple(sorted(spans))


def enclosing_function(file: str, line: int) -> str:
    """The innermost function whose body holds ``line``; "<module>" outside any."""
    inside = [(start, name) for start, end, name in _function_spans(file) if start <= line <= end]
    return max(inside)[1] if inside else "<module>"


@dataclass(frozen=True)
class SuspiciousnessReport:
    """Rankings of one sweep by both formulas, with the counts behind them."""

    connections: int
    failing: int
    ochiai: tuple[RankedLine, ...]
    tarantula: tuple[RankedLine, ...]
    ochiai_branches: tuple[RankedLine, ...]

    def top_text(self, count: int = 10) -> str:
        from investigation.report import format_table

        header = ("rank", "ochiai", "tarantula", "fail", "pass", "location", "function", "source")
        tarantula = {(r.file, r.line): r.score for r in self.tarantula}
        rows = [
            (str(r.rank), f"{r.score:.3f}", f"{tarantula[(r.file, r.line)]:.3f}", str(r.failed), str(r.passed),
             r.location, r.function, r.source[:70])
            for r in self.ochiai[:count]
        ]
        return format_table(header, rows)

    def summary(self) -> str:
        top = self.ochiai[0] if self.ochiai else None
        where = f"{top.location} in {top.function}: {top.source}" if top else "(nothing executed)"
        return f"most suspicious of {self.connections} connections ({self.failing} closed 1011): {where}"


def sweep_suspiciousness(profiles_dir: str | None = None) -> SuspiciousnessReport:
    """The ranking over the sweep of `sweep_profiles`; made once per grid run (`run_cache`)."""
    profiles = sweep_profiles(profiles_dir)
    key = "sweep_suspiciousness:" + "\n".join(p.model_dump_json() for p in profiles)
    return shared(key, lambda: suspiciousness(collect_spectra(profiles)))


def suspiciousness(spectra: Sequence[ConnectionSpectrum]) -> SuspiciousnessReport:
    return SuspiciousnessReport(
        connections=len(spectra),
        failing=sum(1 for s in spectra if s.failed),
        ochiai=tuple(rank_lines(spectra, "ochiai")),
        tarantula=tuple(rank_lines(spectra, "tarantula")),
        ochiai_branches=tuple(rank_branches(spectra, "ochiai")),
    )
