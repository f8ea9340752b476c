"""Line spectra of the backend per connection, and their SBFL ranking.

coverage.py measures ``investigation/backend`` while a profile runs. Connections
of one run interleave on the event loop, so a measurement context per connection
needs a switch at every task step: the run uses an event loop whose task factory
wraps each coroutine so that every ``send``/``throw`` first switches coverage to
the dynamic context of the connection the task belongs to (a context variable
set when the connection starts and inherited by the tasks it creates). Process
tasks (cleanup, health checks) and the driver fall into the ``process`` context,
which no spectrum includes.

A connection *fails* when it closed 1011. Its spectrum is the set of backend
lines it executed.

    spectra = collect_spectra(sweep_profiles())
    ranking = rank_lines(spectra, "ochiai")[:10]   # RankedLine(file, line, function, source, ...)

Every 1011 close runs the route's refusal reporting (``REFUSAL_FUNCTIONS``) after
its failure is decided, so those lines tie at the top of any ranking; the summary
names the highest score outside them and the lines that share it, the chart shows them.

Coverage nests: when the test suite itself runs under coverage, the outer
measurement is paused while a spectrum is collected and resumes afterwards.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import functools
from collections import defaultdict
from collections.abc import Coroutine, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coverage

from investigation.analysis.sbfl import FORMULAS, RankedEvent, Spectrum, rank
from investigation.backend import variants as _variants
from investigation.backend.variants import get_variant
from investigation.clock import VirtualClock, outside_event_loop
from investigation.profiles import Profile, flatten_profile, list_profiles, unflatten_profile
from investigation.report import plural
from investigation.run_cache import shared
from investigation.simulate import SimulationRun, run_on_virtual_time
from investigation.trace import ConnectionResult
from investigation.traffic import PlannedConnection

BACKEND_DIR = Path(_variants.__file__).resolve().parent
REPO_ROOT = BACKEND_DIR.parents[1]
PROCESS_CONTEXT = "process"
FAILING_CLOSE_CODE = 1011

_connection_context: contextvars.ContextVar[str] = contextvars.ContextVar("coverage_connection", default=PROCESS_CONTEXT)

REFUSAL_FILE = "investigation/backend/route.py"
REFUSAL_FUNCTIONS = frozenset({
    "error_frame", "_close", "_send_internal_error", "_context_facts", "_Session._refuse_auth", "_Session._refuse_factory",
})
"""The route functions (qualified names in ``REFUSAL_FILE``) that build and send a refusal.

The error frame and its details, the close, and the senders of each refusal run only after
the failure was decided elsewhere (the factory, authentication, the startup gate), so every
failing connection executes them and no passing one does: they tie at the top of any ranking
and say nothing about the cause, as ``route.close`` says nothing about it among the decision
points (``CONSEQUENCE_POINTS`` in ``investigation.divergence_findings``). The reporting code
(:func:`refusal_reporting_lines`) is these functions, the ``except`` clauses that call them,
and the ``return`` (bare or ``False``) by which a function calling them ends the connection.
"""

Line = tuple[str, int]
"""A backend line: (file relative to the repository, line number)."""


@dataclass(frozen=True)
class ConnectionSpectrum:
    """What one connection executed and how it ended."""

    run: str
    index: int
    close_code: int | None
    lines: frozenset[Line]
    start_agent_refused: bool = False
    """Whether a ``start_agent`` message of the connection was refused (a ``route.start_agent``
    tally ``refused_*``): the handler catches the error without a close (spec 1 step 12)."""

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
    def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        return asyncio.Task(_SwitchingCoroutine(coro, switcher), loop=loop, **options)

    chosen = get_variant(variant)
    run = run_on_virtual_time(lambda clock: _MeasuredRun(profile, chosen, clock, switcher), task_factory)
    return run.results


def _new_measurement() -> coverage.Coverage:
    measurement = coverage.Coverage(
        data_file=None, branch=False, include=[str(BACKEND_DIR / "*.py")], config_file=False
    )
    measurement.set_option("run:disable_warnings", ["no-data-collected", "module-not-measured"])
    return measurement


def measure_profile(profile: Profile, variant: str = "original") -> list[ConnectionSpectrum]:
    """The executed backend lines of every connection of one run of ``profile``.

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
    """One spectrum per connection in ``results``: the lines measured in its context."""
    files = {path: _relative(path) for path in sorted(data.measured_files())}
    lines: dict[str, set[Line]] = defaultdict(set)
    for path, relative in files.items():
        for number, contexts in data.contexts_by_lineno(path).items():
            for context in contexts:
                lines[context].add((relative, number))
    return [
        ConnectionSpectrum(run, index, results[index].close_code, frozenset(lines[connection_context(index)]),
                           results[index].start_agent_refusals() > 0)
        for index in sorted(results)
    ]


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


def line_spectra(spectra: Sequence[ConnectionSpectrum]) -> list[Spectrum]:
    return [Spectrum(s.lines, failed=s.failed, label=s.label) for s in spectra]


@dataclass(frozen=True)
class RankedLine:
    """A line with its suspiciousness and where it is."""

    rank: int
    file: str
    line: int
    function: str
    source: str
    score: float
    failed: int
    passed: int

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


def rank_lines(spectra: Sequence[ConnectionSpectrum], formula: str = "ochiai") -> list[RankedLine]:
    """Every executed line, most suspicious first (ties: file, then line)."""
    return _located(rank(line_spectra(spectra), FORMULAS[formula]))


def _located(ranked: Sequence[RankedEvent]) -> list[RankedLine]:
    located = []
    for position, item in enumerate(ranked, start=1):
        file, line = item.event  # type: ignore[misc]
        located.append(
            RankedLine(
                rank=position, file=file, line=line,
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


def _qualified_functions(tree: ast.AST, prefix: str = "") -> Generator[tuple[str, ast.AST], None, None]:
    """Every function under ``tree`` with its qualified name (``_Session.run``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _qualified_functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _qualified_functions(node, f"{prefix}{node.name}.")


def _calls_refusal(node: ast.AST) -> bool:
    names = {name.rpartition(".")[2] for name in REFUSAL_FUNCTIONS}
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            callee = call.func
            name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
            if name in names:
                return True
    return False


def _span(node: ast.AST) -> range:
    start, end = node.lineno, node.end_lineno  # type: ignore[attr-defined]
    return range(start, (end or start) + 1)


@functools.cache
def refusal_reporting_lines() -> frozenset[Line]:
    """The lines of ``REFUSAL_FILE`` that only report a refusal (see ``REFUSAL_FUNCTIONS``)."""
    tree = ast.parse("\n".join(_source_lines(REFUSAL_FILE)))
    numbers: set[int] = set()
    for name, function in _qualified_functions(tree):
        if name in REFUSAL_FUNCTIONS:
            numbers.update(_span(function))
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ExceptHandler) and any(_calls_refusal(statement) for statement in node.body):
                numbers.update(_span(node))
        if _calls_refusal(function):
            numbers.update(node.lineno for node in ast.walk(function) if _ends_the_connection(node))
    return frozenset((REFUSAL_FILE, number) for number in numbers)


def _ends_the_connection(node: ast.AST) -> bool:
    """A bare ``return`` or ``return False``."""
    return isinstance(node, ast.Return) and (
        node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is False)
    )


def only_reports_a_refusal(ranked: RankedLine) -> bool:
    return (ranked.file, ranked.line) in refusal_reporting_lines()


def _places(lines: Sequence[RankedLine]) -> str:
    """``route.py: error_frame, _close; factory.py: _enforce_cap`` in rank order."""
    functions: dict[str, list[str]] = {}
    for ranked in lines:
        names = functions.setdefault(Path(ranked.file).name, [])
        if ranked.function not in names:
            names.append(ranked.function)
    return "; ".join(f"{file}: {', '.join(names)}" for file, names in functions.items())


@dataclass(frozen=True)
class SuspiciousnessReport:
    """Rankings of one sweep by both formulas, with the counts behind them."""

    connections: int
    failing: int
    ochiai: tuple[RankedLine, ...]
    tarantula: tuple[RankedLine, ...]
    start_agent_refusals: Mapping[Line, int] = field(default_factory=dict)
    """Per line, how many passing connections that ran it had a start_agent message refused."""

    def top_lines(self, count: int, skip_refusal_reporting: bool = False) -> tuple[RankedLine, ...]:
        """The ``count`` most suspicious lines by Ochiai, optionally outside the refusal reporting."""
        lines = [r for r in self.ochiai if not (skip_refusal_reporting and only_reports_a_refusal(r))]
        return tuple(lines[:count])

    def top_text(self, count: int = 10, skip_refusal_reporting: bool = False) -> str:
        """The table of ``top_lines``; when skipping, a first line says what was left out."""
        from investigation.report import format_table

        top = self.top_lines(count, skip_refusal_reporting)
        header = ("rank", "ochiai", "tarantula", "fail", "pass", "location", "function", "source")
        tarantula = {(r.file, r.line): r.score for r in self.tarantula}
        rows = [
            (str(r.rank), f"{r.score:.4f}", f"{tarantula[(r.file, r.line)]:.4f}", str(r.failed), str(r.passed),
             r.location, r.function, r.source[:70])
            for r in top
        ]
        table = format_table(header, rows)
        skipped = [r for r in self.ochiai[: top[-1].rank if top else 0] if only_reports_a_refusal(r)]
        if not skip_refusal_reporting or not skipped:
            return table
        return (f"left out: {plural(len(skipped), 'line')} among ranks 1-{top[-1].rank} that only report a "
                f"refusal ({_places(skipped)}); ranks count every line\n{table}")

    def summary(self, table_lines: int | None = None) -> str:
        """Two sentences: the top tie (its size and place), and the highest score outside the refusal reporting.

        ``table_lines``: the ``count`` of the table shown with it (``top_text(count, True)``), to say
        which of the tied lines it shows.
        """
        head = f"Of {self.connections} connections ({self.failing} closed 1011), "
        if not self.ochiai:
            return head + "no backend line was executed."
        return head + f"{self._top_tie()}. {self._highest_outside_reporting(table_lines)}."

    def _top_tie(self) -> str:
        top_score = self.ochiai[0].score
        tie = [r for r in self.ochiai if r.score == top_score]
        reporting = [r for r in tie if only_reports_a_refusal(r)]
        others = [r for r in tie if not only_reports_a_refusal(r)]
        parts = []
        if reporting:
            share = "all" if not others else f"{len(reporting)} of them"
            parts.append(f"{share} in code that only reports a refusal ({_places(reporting)})")
        if others:
            share = "all" if not reporting else f"{len(others)}"
            parts.append(f"{share} in {_places(others)}")
        held = "shared by" if len(tie) > 1 else "held by"
        return f"the top Ochiai score {top_score:.4f} is {held} {plural(len(tie), 'line')}, {', '.join(parts)}"

    def _highest_outside_reporting(self, table_lines: int | None) -> str:
        """The highest Ochiai score outside the refusal reporting, the lines sharing it, and the first of them."""
        outside = [r for r in self.ochiai if not only_reports_a_refusal(r)]
        if not outside:
            return "Every ranked line only reports a refusal"
        score = outside[0].score
        tie = [r for r in outside if r.score == score]
        first = tie[0]
        where = (f"{first.location} in {first.function}: {first.source} "
                 f"(fail {first.failed}, pass {first.passed}{self._passing_through_start_agent(first)})")
        opening = f"The highest score outside that code, {score:.4f}, is"
        shown = self._shown_of(tie, table_lines)
        if len(tie) == 1:
            hidden = "" if shown else " (not in the table)"
            return f"{opening} held by 1 line, rank {first.rank}{hidden}: {where}"
        low, high = tie[0].rank, tie[-1].rank
        ranks = f"ranks {low}-{high}" if high - low + 1 == len(tie) else f"among ranks {low}-{high}"
        table = "" if shown == len(tie) else f"; the table shows {f'the first {shown}' if shown else 'none of them'}"
        return (f"{opening} shared by {plural(len(tie), 'line')} ({ranks}: {_places(tie)}{table}); "
                f"the first in file order is {where}")

    def _shown_of(self, lines: Sequence[RankedLine], table_lines: int | None) -> int:
        """How many of ``lines`` the table of ``table_lines`` shows (all of them when no table is named)."""
        if table_lines is None:
            return len(lines)
        shown = {(r.file, r.line) for r in self.top_lines(table_lines, skip_refusal_reporting=True)}
        return sum(1 for r in lines if (r.file, r.line) in shown)

    def _passing_through_start_agent(self, ranked: RankedLine) -> str:
        """``: each of the 7 passing connections ... had a start_agent message refused ...`` when any did."""
        refused = self.start_agent_refusals.get((ranked.file, ranked.line), 0)
        if not refused:
            return ""
        if ranked.passed == 1:
            who = "the passing connection that ran it"
        elif refused == ranked.passed:
            who = f"each of the {ranked.passed} passing connections that ran it"
        else:
            who = f"{refused} of the {ranked.passed} passing connections that ran it"
        return (f": {who} had a start_agent message refused, an error its handler catches without a close; "
                "spec 1 step 12")


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
        start_agent_refusals=_start_agent_refusals(spectra),
    )


def _start_agent_refusals(spectra: Sequence[ConnectionSpectrum]) -> dict[Line, int]:
    """Per line, the passing connections that ran it and had a start_agent message refused."""
    counts: dict[Line, int] = defaultdict(int)
    for spectrum in spectra:
        if spectrum.start_agent_refused and not spectrum.failed:
            for line in spectrum.lines:
                counts[line] += 1
    return dict(sorted(counts.items()))
