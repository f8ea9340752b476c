"""Isolate what makes a failing profile fail, three ways, all computed from runs.

- **Failure-inducing difference** (``dd``): the configuration is a profile's
  flat factor view (:func:`~investigation.profiles.flatten_profile`). Each
  factor whose value differs between the passing and the failing profile is one
  *change* ``(factor, passing value, failing value)``. A test applies a subset of
  the changes to the passing profile's factors, builds the mixture with
  :func:`~investigation.profiles.unflatten_profile` and simulates it. ``dd`` then
  narrows the changes to a 1-minimal failure-inducing difference.
- **Minimal failing traffic** (``ddmin``): the elements are the planned
  connections of the failing profile; a subset is turned back into a profile
  (:func:`traffic_subset_profile`) and simulated. ``ddmin`` keeps a 1-minimal
  failing subset: removing any one kept connection makes the failure disappear;
  a smaller failing subset may exist. Connections kept need not fail themselves
  (most only fill the cap for the one that does).
- **First divergence**: the failing run's first failing connection is aligned
  with the *nearest* connection of the passing run (the one whose decision trace
  agrees with it longest) and the first decision point whose outcome differs is
  reported.

The failure oracle (:class:`FailureSignature`) is "the same failure": some
connection closes with the failing profile's first failure's close code and
innermost exception type (the last link of its cause chain), for an auth failure
the same auth error code (``auth.result``: NO_TOKEN is not VALIDATION_FAILED) and, for a refusal
at the per-user cap, the same mechanism (:class:`Mechanism`: the cap refusing a
concurrent connection, or managers outliving their connections). A run whose
failures are all different is UNRESOLVED, and so is a run with a connection the
route refused after its client had left (:func:`refused_without_close`); any
other run passes.

    isolation = isolate_profiles(load_profile("local-debug"), load_profile("staging-e2e"))
    isolation.minimal_difference   # (FactorChange(factor='clients[0].connections', ...),)
    print(isolation.to_text())
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from investigation.analysis.cap_refusals import Mechanism, UserAtRefusal, user_at_refusal
from investigation.analysis.delta import NotReproducedError, Outcome, TestRecord, dd, ddmin
from investigation.analysis.divergence import Divergence, RepeatDivergence, trace_divergence
from investigation.charts.divergence import visible_outcome
from investigation.profiles import (
    Client,
    Profile,
    ProfileError,
    flatten_profile,
    is_secret_factor,
    jsonable_factor_value,
    unflatten_profile,
)
from investigation.report import and_list, escape_controls, never_established_text, ordinal, short_text
from investigation.simulate import simulate
from investigation.trace import (
    POINT_ORDER,
    ConnectionResult,
    Decision,
    RunResult,
    identified_users,
)
from investigation.traffic import PlannedConnection, connection_plan, instance_for

if TYPE_CHECKING:
    from investigation.analysis.spectra import SuspiciousnessReport

MIXTURE_NAME = "mixture"
"""Profile name of every configuration dd builds (results never depend on it)."""
ENVIRONMENT_FACTOR_PREFIXES = ("env.", "process.", "startup.", "instances", "routing")
"""Factor paths that describe where the code runs (everything else is traffic)."""
ENVIRONMENT_FACTOR_KINDS = ", ".join(prefix.rstrip(".") for prefix in ENVIRONMENT_FACTOR_PREFIXES)
"""The environment factors in words: ``env, process, startup, instances, routing``."""


def is_environment_factor(path: str) -> bool:
    """Whether the factor at ``path`` describes where the code runs rather than its traffic."""
    return path.startswith(ENVIRONMENT_FACTOR_PREFIXES)


class IsolationError(ProfileError, ValueError):
    """The passing profile does not pass, or the failing one does not fail.

    ``str()`` is one line: ``"{profile}: {side}: {reason}"``. A ProfileError (bad input: the
    CLI exits 2) and a ValueError. In a notebook (IPython) it shows as that line alone: the side
    is notebook 04's parameter of the same name, and the traceback would only bury it.
    """

    def __init__(self, profile: str, side: str, reason: str) -> None:
        super().__init__(profile, side, reason)
        self.profile = profile
        self.side = side


class _Absent:
    """The value of a factor a profile does not set (shown as null)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()
"""Marks a factor that one side of a change does not set."""


@dataclass(frozen=True)
class ChangeSides:
    """The two profiles a change goes between: their names and their clients' names, by index."""

    passing: str
    failing: str
    passing_clients: tuple[str, ...]
    failing_clients: tuple[str, ...]

    @classmethod
    def of(cls, passing: Profile, failing: Profile) -> ChangeSides:
        return cls(passing.name, failing.name, tuple(c.name for c in passing.clients),
                   tuple(c.name for c in failing.clients))

    def client_of(self, index: int) -> str:
        """``client debug-script`` (both profiles name it so) or ``client user-e-mobile of staging-cloud-run``."""
        passing, failing = _nth(self.passing_clients, index), _nth(self.failing_clients, index)
        if passing is not None and passing == failing:
            return f"client {passing}"
        if passing is not None:
            return f"client {passing} of {self.passing}"
        return f"client {failing} of {self.failing}"

    def renamed(self, index: int) -> str:
        """``, the value of staging-e2e's client e2e-process-1 at the same index`` when the profiles name
        client ``index`` differently (the mixture's client stays the passing profile's, only the field changes)."""
        passing, failing = _nth(self.passing_clients, index), _nth(self.failing_clients, index)
        if None in (passing, failing) or passing == failing:
            return ""
        return f", the value of {self.failing}'s client {failing} at the same index"


def _nth(names: tuple[str, ...], index: int) -> str | None:
    return names[index] if index < len(names) else None


@dataclass(frozen=True)
class FactorChange:
    """One element of the difference: setting ``factor`` from its passing to its failing value.

    ``sides`` (not part of the change's identity) lets :meth:`describe` word it for a reader.
    """

    factor: str
    passing: object
    failing: object
    sides: ChangeSides | None = field(default=None, compare=False, repr=False)

    def to_json_dict(self) -> dict[str, object]:
        """Values JSON-safe, secrets redacted, an absent value as null."""
        return {
            "factor": self.factor,
            "passing": _json_value(self.factor, self.passing),
            "failing": _json_value(self.factor, self.failing),
        }

    def raw(self) -> str:
        """``factor: passing -> failing`` with redacted, JSON-style values (null: not set)."""
        passing = _json_value(self.factor, self.passing)
        failing = _json_value(self.factor, self.failing)
        return f"{self.factor}: {short_value(passing)} -> {short_value(failing)}"

    def describe(self) -> str:
        """The change in words, clients by name (without ``sides``: :meth:`raw`).

        ``client debug-script of local-debug: 12 connections instead of 1, as staging-e2e's client
        e2e-process-1``; ``client user-e-mobile of staging-cloud-run: 6 connections (absent from
        local-debug)``; ``ENVIRONMENT: unset -> 'staging'``. Secrets stay redacted.
        """
        if self.sides is None:
            return self.raw()
        match = _CLIENT_FACTOR.fullmatch(self.factor)
        if match is None:
            return f"{_factor_name(self.factor)}: {self._words(self.passing)} -> {self._words(self.failing)}"
        index, name, key = int(match[1]), match[2], match[3]
        return f"{self.sides.client_of(index)}: {self._client_change(index, name, key)}{self.sides.renamed(index)}"

    def _client_change(self, index: int, name: str, key: str | None) -> str:
        assert self.sides is not None
        label = "" if name == "connections" else f"{_FIELD_WORDS.get(name, name)}{f' {key}' if key else ''} "
        if self.passing is ABSENT:
            has_client = _nth(self.sides.passing_clients, index) is not None
            return f"{label}{self._words(self.failing)} ({'unset in' if has_client else 'absent from'} {self.sides.passing})"
        if self.failing is ABSENT:
            has_client = _nth(self.sides.failing_clients, index) is not None
            return (f"{label}{self._words(self.passing)} removed "
                    f"({'unset in' if has_client else 'absent from'} {self.sides.failing})")
        before = str(self.passing) if name == "connections" else self._words(self.passing)
        return f"{label}{self._words(self.failing)} instead of {before}"

    def _words(self, value: object) -> str:
        if value is ABSENT:
            return "unset"
        if self.factor.endswith("].connections") and isinstance(value, int):
            return f"{value} connection" if value == 1 else f"{value} connections"
        return short_value(_json_value(self.factor, value))


_CLIENT_FACTOR = re.compile(r"clients\[(\d+)\]\.(\w+)(?:\.(.+))?")
_FIELD_WORDS = {"headers": "header", "claims": "claim"}


def _factor_name(path: str) -> str:
    """``ENVIRONMENT`` for ``env.ENVIRONMENT``, ``.env K`` for ``process.dotenv.K``, else the path."""
    if path.startswith("env."):
        return path.removeprefix("env.")
    if path.startswith("process.dotenv."):
        return ".env " + path.removeprefix("process.dotenv.")
    return path


def _json_value(factor: str, value: object) -> object:
    return None if value is ABSENT else jsonable_factor_value(factor, value)


def short_value(value: object, limit: int = 60) -> str:
    """A factor value as tables show it: its repr (null for None), cut to `limit` characters."""
    return short_text("null" if value is None else repr(value), limit)


# ---------------------------------------------------------------------------
# The oracle


@dataclass(frozen=True)
class FailureSignature:
    """What "the same failure" means: a close code, the innermost exception type, and for a refusal at
    the per-user cap how the user came to be at it (:class:`Mechanism`; None for any other failure).

    The mechanism separates the cap refusing one more concurrent connection, as designed, from managers
    outliving their connections (spec 1 steps 12, 14): both close 1011 with the same exception.
    """

    close_code: int
    innermost_type: str | None
    mechanism: Mechanism | None = None
    auth_error: str | None = None
    """The auth error code of an auth failure (``auth.result``, spec 5: NO_TOKEN, VALIDATION_FAILED, ...): every
    auth failure closes 1008 with the same innermost type, so the code tells a missing token from an expired one."""

    @classmethod
    def of(cls, connection: ConnectionResult, run: RunResult) -> FailureSignature:
        """The signature of ``connection``, a failing connection of ``run`` (needed for the mechanism)."""
        assert connection.close_code is not None, "a failing connection has a close code"
        mechanism = user_at_refusal(run, connection).mechanism if refused_at_cap(connection) else None
        return cls(connection.close_code, connection.innermost_type(), mechanism, auth_error_code(connection))

    def matches(self, connection: ConnectionResult, run: RunResult) -> bool:
        """Whether ``connection`` (of ``run``) fails this way; the mechanism is computed only when needed."""
        if not connection.failed or connection.close_code != self.close_code:
            return False
        if (connection.innermost_type(), auth_error_code(connection)) != (self.innermost_type, self.auth_error):
            return False
        return FailureSignature.of(connection, run) == self

    def outcome(self, run: RunResult) -> Outcome:
        """FAIL if some connection fails this way; UNRESOLVED if only others fail, or if a connection was
        refused but its client left before the close (:func:`refused_without_close`); else PASS."""
        if any(self.matches(connection, run) for connection in run.connections):
            return Outcome.FAIL
        undecided = run.failures or any(refused_without_close(c) for c in run.connections)
        return Outcome.UNRESOLVED if undecided else Outcome.PASS

    def first_match(self, run: RunResult) -> ConnectionResult | None:
        return next((c for c in run.connections if self.matches(c, run)), None)

    def __str__(self) -> str:
        text = f"close {self.close_code}, innermost {self.innermost_type or '(no exception)'}"
        text = text if self.auth_error is None else f"{text}, auth error {self.auth_error}"
        return text if self.mechanism is None else f"{text}, {_MECHANISM_WORDS[self.mechanism]}"


def auth_error_code(connection: ConnectionResult) -> str | None:
    """The auth error code the connection was refused with (its ``auth.result`` other than success), else None."""
    result = connection.outcome("auth.result")
    return None if result in (None, "success") else result


_MECHANISM_WORDS = {
    Mechanism.CONCURRENT: "refused at the cap with as many connections open",
    Mechanism.OUTLIVED: "refused at the cap with managers outliving their connections",
    Mechanism.BELOW_CAP: "refused with the user below the cap",
}


FAILING_CLOSE_DECISIONS: dict[str, frozenset[str] | None] = {
    "auth.result": None,
    "factory.result": frozenset({"FactoryInitializationError", "ManagerCapacityError"}),
    "route.startup_gate": frozenset({"timeout"}),
}
"""Decisions the route follows with a failing close (spec 1 steps 5, 8, 9 and 1.2; V5's capacity close 1013):
any auth result but success (None: every outcome but ``success``), a FactoryInitializationError, the startup
gate's timeout.

Not ``trace.ADVERSE_OUTCOMES``, which holds the decisions that take a connection off its normal path, the cause
(``factory.manager_cap=exceeded``, a failed token validation) and those that close nothing (the emergency stub,
spec 1.2); these are where the route then decides the failing close. They must agree where both speak: the startup
gate's timeout is in both, and every connection refused here was first taken off its path by an adverse decision
at or before this one (tests/test_isolate.py)."""


def refusing_decision(connection: ConnectionResult) -> Decision | None:
    """The decision after which the route closes ``connection`` with a failure (FAILING_CLOSE_DECISIONS), if any."""
    for decision in connection.decisions:
        outcomes = FAILING_CLOSE_DECISIONS.get(decision.point, frozenset())
        if (decision.outcome != "success") if outcomes is None else decision.outcome in outcomes:
            return decision
    return None


def refused_without_close(connection: ConnectionResult) -> bool:
    """Whether the route decided to close ``connection`` with a failure but its client left before the close
    frame (no close code, no ``route.close``): refused all the same, so its run is no evidence of passing."""
    no_close = connection.close_code is None and connection.outcome("route.close") is None
    return no_close and refusing_decision(connection) is not None


def refused_at_cap(connection: ConnectionResult) -> bool:
    """Whether the backend refused ``connection`` at the per-user manager cap (spec 4.2)."""
    return any(d.point == "factory.manager_cap" and d.outcome == "exceeded" for d in connection.decisions)


# ---------------------------------------------------------------------------
# First divergence


@dataclass(frozen=True)
class AlignedDivergence:
    """The failing connection, the passing connection it is aligned with, and where they part."""

    passing_connection: ConnectionResult
    failing_connection: ConnectionResult
    divergence: Divergence | None


def _agreement_length(divergence: Divergence | None) -> int:
    """How far along the pipeline two traces agree (larger is nearer); a divergence in a repeat only comes after
    every point's first outcome agreed."""
    if divergence is None:
        return len(POINT_ORDER) + 2
    if isinstance(divergence, RepeatDivergence):
        return len(POINT_ORDER) + 1
    return POINT_ORDER.get(divergence.point, len(POINT_ORDER))


def align_with_nearest(passing_run: RunResult, failing_connection: ConnectionResult,
                       skip: frozenset[str] = frozenset()) -> AlignedDivergence:
    """Align ``failing_connection`` with the passing run's connection whose trace agrees longest.

    Ties go to the passing connection that started first. ``skip``: decision points left out of
    both traces before they are compared.

    Raises:
        ValueError: the passing run has no connection.
    """
    if not passing_run.connections:
        raise ValueError(f"passing run {passing_run.profile!r} has no connection to align with")

    def kept(connection: ConnectionResult) -> list[Decision]:
        return [d for d in connection.decisions if d.point not in skip]

    candidates = [(connection, trace_divergence(kept(connection), kept(failing_connection)))
                  for connection in passing_run.connections]
    nearest, divergence = max(candidates, key=lambda pair: _agreement_length(pair[1]))
    return AlignedDivergence(nearest, failing_connection, divergence)


# ---------------------------------------------------------------------------
# dd over factor changes


def factor_changes(
    passing: Mapping[str, object], failing: Mapping[str, object], sides: ChangeSides | None = None
) -> list[FactorChange]:
    """Every factor whose value differs (or that only one side sets), sorted by factor path.

    ``sides``: the two profiles, for wording the changes (:meth:`FactorChange.describe`).
    """
    paths = sorted(set(passing) | set(failing))
    return [
        FactorChange(path, passing.get(path, ABSENT), failing.get(path, ABSENT), sides)
        for path in paths
        if passing.get(path, ABSENT) != failing.get(path, ABSENT)
    ]


def apply_changes(base: Mapping[str, object], changes: Sequence[FactorChange]) -> dict[str, object]:
    """``base`` factors with each change's failing value set (or removed when absent)."""
    factors = dict(base)
    for change in changes:
        if change.failing is ABSENT:
            factors.pop(change.factor, None)
        else:
            factors[change.factor] = change.failing
    return factors


@dataclass
class _MixtureTester:
    """Builds and simulates mixtures of the passing factors with some changes; keeps the runs."""

    passing_factors: Mapping[str, object]
    failing_profile: Profile
    signature: FailureSignature
    variant: str
    runs: dict[frozenset[FactorChange], RunResult | None] = field(default_factory=dict)

    def __call__(self, changes: tuple[FactorChange, ...]) -> Outcome:
        run = self.run(changes)
        return Outcome.UNRESOLVED if run is None else self.signature.outcome(run)

    def run(self, changes: Sequence[FactorChange]) -> RunResult | None:
        """The mixture's run, or None when the mixture is not a valid profile."""
        key = frozenset(changes)
        if key not in self.runs:
            self.runs[key] = self._simulate(changes)
        return self.runs[key]

    def _simulate(self, changes: Sequence[FactorChange]) -> RunResult | None:
        factors = apply_changes(self.passing_factors, changes)
        try:
            mixture = unflatten_profile(MIXTURE_NAME, factors, base=self.failing_profile)
        except ProfileError:
            return None
        return simulate(mixture, self.variant)


@dataclass(frozen=True)
class ProfileIsolation:
    """Everything ``investigation isolate`` reports, plus what the notebook draws.

    ``first_divergence`` aligns the two profiles' runs; ``isolated_divergence``
    aligns the runs of dd's final passing and failing mixtures, which differ only
    in ``minimal_difference``.
    """

    passing: str
    failing: str
    variant: str
    factors: tuple[str, ...]
    differing: tuple[FactorChange, ...]
    minimal_difference: tuple[FactorChange, ...]
    tests_run: int
    history: tuple[TestRecord, ...]
    failure: ConnectionResult
    signature: FailureSignature
    first_divergence: AlignedDivergence
    isolated_divergence: AlignedDivergence | None
    mixture_clients: Mapping[str, str] = field(default_factory=dict)
    """Readable names of the failing mixture's placeholder clients (``client5``), see :func:`_mixture_clients`."""
    passing_mixture: tuple[FactorChange, ...] = ()
    """The changes dd's last passing mixture applies to ``passing`` (the isolated pair's shared part)."""
    failure_state: UserAtRefusal | None = None
    """What ``failure``'s user had on its instance when it was refused (see :func:`user_at_refusal`)."""
    mixture_failure_state: UserAtRefusal | None = None
    """The same for dd's final failing mixture's first same failure (None: no such run or failure)."""

    def to_json_dict(self) -> dict[str, Any]:
        """The ``isolate --json`` contract of docs/design.md."""
        divergence = self.first_divergence.divergence
        return {
            "passing": self.passing,
            "failing": self.failing,
            "factors": list(self.factors),
            "minimal_difference": [change.to_json_dict() for change in self.minimal_difference],
            "tests_run": self.tests_run,
            "failure": {
                "close_code": self.failure.close_code,
                "close_reason": self.failure.close_reason,
                "cause_chain": [{"type": link.type, "message": link.message} for link in self.failure.cause_chain],
            },
            "first_divergence": None
            if divergence is None
            else {"point": divergence.point, "passing": divergence.passing, "failing": divergence.failing},
        }

    def difference_in_words(self) -> str:
        """The minimal difference in words, with what dd's passing mixture already gives its clients:
        the difference alone is not the whole change from ``passing`` (see :func:`passing_mixture_context`)."""
        return self.changes_text() + passing_mixture_context(self)

    def changes_text(self, mark: str = "") -> str:
        """The minimal difference's changes in words, joined by "; ", each between ``mark``s (``(none)``)."""
        return "; ".join(f"{mark}{change.describe()}{mark}" for change in self.minimal_difference) or "(none)"

    def to_text(self) -> str:
        lines = [
            f"passing {self.passing}, failing {self.failing}, variant {self.variant}",
            f"failure: connection #{self.failure.index} of the failing run (client {self.failure.client}) closed "
            f"{self.failure.close_code} {self.failure.close_reason}",
        ]
        lines.extend(f"  cause: {link.type}: {link.message}" for link in self.failure.cause_chain)
        lines.append(
            f"factors: {len(self.factors)} considered, {len(self.differing)} differ; "
            f"dd ran {self.tests_run} tests"
        )
        lines.append("minimal failure-inducing difference:")
        lines.extend(f"  {change.describe()} [{change.raw()}]" for change in self.minimal_difference)
        if context := passing_mixture_context(self):
            lines.append(f"  {context.removeprefix(', ')}")
        lines.append(f"first divergence: {_describe_alignment(self.first_divergence)}")
        if self.isolated_divergence is not None:
            lines.append("first divergence of the isolated pair: "
                         f"{_describe_alignment(self.isolated_divergence, self.mixture_clients)}")
        return "\n".join(lines)


def _describe_alignment(aligned: AlignedDivergence, client_names: Mapping[str, str] | None = None,
                        failing_ordinals: Mapping[int, int] | None = None) -> str:
    """Where the aligned traces part, and which connections they are (``client_names``: readable names).

    ``#`` is the connection's place in its run's start order, from 0, not its place among its client's
    connections: ``connection #16 of its run (client e2e-process-2)``. ``failing_ordinals`` (run index -> the
    client's own count, from 1) gives the failing connection as ``connection #16 of its run (e2e-process-2's 6th)``.
    """
    names = client_names or {}
    divergence = aligned.divergence
    repeat = f", {ordinal(divergence.occurrence + 1)} outcome" if isinstance(divergence, RepeatDivergence) else ""
    where = (
        "traces identical"
        if divergence is None
        else f"{divergence.point}{repeat}: {_outcome_words(divergence.passing)} (passing) "
        f"vs {_outcome_words(divergence.failing)} (failing)"
    )
    passing, failing = aligned.passing_connection, aligned.failing_connection
    failing_name = names.get(failing.client, failing.client)
    nth = (failing_ordinals or {}).get(failing.index)
    failing_words = f"client {failing_name}" if nth is None else f"{failing_name}'s {ordinal(nth)}"
    return (
        f"{where} [passing: connection #{passing.index} of its run (client "
        f"{names.get(passing.client, passing.client)}); failing: connection #{failing.index} of its run "
        f"({failing_words})]"
    )


def _outcome_words(outcome: str | None) -> str:
    """An outcome of a divergence as shown: ``not reached`` for a point the connection never reached."""
    return "not reached" if outcome is None else visible_outcome(outcome)


def check_runs(passing: RunResult, failing: RunResult) -> ConnectionResult:
    """The failing run's first failure, after checking the passing run passes.

    Raises:
        IsolationError: the passing run has a failing connection, a connection refused whose client left
            before the close (refused_without_close), or none at all (there is nothing to align the failure
            with), or the failing run has no failing connection.
    """
    if not passing.connections:
        raise IsolationError(passing.profile, "passing", "opens no connection: nothing to compare the failure with")
    if passing.failures:
        first = passing.failures[0]
        raise IsolationError(
            passing.profile,
            "passing",
            f"does not pass under variant {passing.variant}: {len(passing.failures)} of "
            f"{len(passing.connections)} connections failed (first #{first.index} closed "
            f"{first.close_code} {first.close_reason})",
        )
    if refused := next((c for c in passing.connections if refused_without_close(c)), None):
        deciding = refusing_decision(refused)
        assert deciding is not None
        raise IsolationError(
            passing.profile,
            "passing",
            f"does not pass under variant {passing.variant}: connection #{refused.index} was refused "
            f"({deciding.point}={deciding.outcome}) but its client left before the close",
        )
    first_failure = failing.first_failure()
    if first_failure is None:
        raise IsolationError(
            failing.profile,
            "failing",
            f"does not fail under variant {failing.variant}: none of its "
            f"{len(failing.connections)} connections failed",
        )
    return first_failure


def isolate_profiles(
    passing: Profile, failing: Profile, variant: str = "original", runs: Mapping[str, RunResult] | None = None
) -> ProfileIsolation:
    """dd over the factor changes from ``passing`` to ``failing``, and the first divergence.

    ``runs``: runs already made under ``variant``, by profile name; a profile found there is
    not simulated again.

    Raises:
        IsolationError: ``passing`` has a failing connection or ``failing`` has none (also
            when a profile's behaviour does not survive the factor round trip).
    """
    passing_run, failing_run = run_of(passing, variant, runs), run_of(failing, variant, runs)
    failure = check_runs(passing_run, failing_run)
    signature = FailureSignature.of(failure, failing_run)
    passing_factors, failing_factors = flatten_profile(passing), flatten_profile(failing)
    changes = factor_changes(passing_factors, failing_factors, ChangeSides.of(passing, failing))
    tester = _MixtureTester(passing_factors, failing, signature, variant)
    try:
        result = dd([], changes, tester)
    except NotReproducedError as error:
        name = failing.name if error.side == "failing" else passing.name
        raise IsolationError(name, error.side, f"not reproduced from its factors: {error}") from None
    return ProfileIsolation(
        passing=passing.name,
        failing=failing.name,
        variant=variant,
        factors=tuple(sorted(set(passing_factors) | set(failing_factors))),
        differing=tuple(changes),
        minimal_difference=result.difference,
        tests_run=result.tests_run,
        history=_history(changes, tester, result),
        failure=failure,
        signature=signature,
        first_divergence=align_with_nearest(passing_run, failure),
        isolated_divergence=_isolated_divergence(tester, result.passing, result.failing),
        mixture_clients=_mixture_clients(passing, failing, result.failing),
        passing_mixture=tuple(result.passing),
        failure_state=user_at_refusal(failing_run, failure),
        mixture_failure_state=_mixture_failure_state(tester, result.failing),
    )


def _mixture_failure_state(tester: _MixtureTester, failing_changes: Sequence[FactorChange]) -> UserAtRefusal | None:
    """What the refused user had at dd's final failing mixture's first same failure (None: no such failure)."""
    run = tester.run(failing_changes)
    failure = None if run is None else tester.signature.first_match(run)
    return None if run is None or failure is None else user_at_refusal(run, failure)


def _mixture_clients(passing: Profile, failing: Profile, applied: Sequence[FactorChange]) -> dict[str, str]:
    """``{"client5": "user-e-mobile of staging-cloud-run, with only the fields dd's mixture sets"}``.

    A client only the failing profile has enters a mixture with just the fields the applied changes
    set; without its name it gets the placeholder ``client{i}`` (``unflatten_profile``).
    """
    named = {change.factor for change in applied}
    return {
        f"client{index}": f"{client.name} of {failing.name}, with only the fields dd's mixture sets"
        for index, client in enumerate(failing.clients)
        if index >= len(passing.clients) and f"clients[{index}].name" not in named
    }


def _history(changes: Sequence[FactorChange], tester: _MixtureTester, result: Any) -> tuple[TestRecord, ...]:
    """Every dd test as (indices into ``changes``, outcome), in the order run."""
    index_of = {change: index for index, change in enumerate(changes)}
    return tuple(
        TestRecord(tuple(sorted(index_of[c] for c in key)), tester.signature.outcome(run) if run is not None else Outcome.UNRESOLVED)
        for key, run in tester.runs.items()
    )


def _isolated_divergence(
    tester: _MixtureTester, passing_changes: Sequence[FactorChange], failing_changes: Sequence[FactorChange]
) -> AlignedDivergence | None:
    """The failing mixture's first same failure aligned with the nearest connection of the passing mixture.

    ``passing_changes`` is dd's last passing mixture, which need not be empty: when the failure
    needs changes from both halves of the difference, dd moves some of them to the passing side.
    None when a mixture is not a valid profile, the passing run has no connection, or the failing
    run has no connection failing the same way.
    """
    passing_run, failing_run = tester.run(passing_changes), tester.run(failing_changes)
    if passing_run is None or failing_run is None or not passing_run.connections:
        return None
    failure = tester.signature.first_match(failing_run)
    return None if failure is None else align_with_nearest(passing_run, failure)


# ---------------------------------------------------------------------------
# ddmin over the failing traffic


def traffic_subset_profile(profile: Profile, kept: Sequence[PlannedConnection], name: str | None = None) -> Profile:
    """The profile whose traffic is exactly the ``kept`` planned connections of ``profile``.

    Each kept connection becomes a one-connection client, a copy of its client
    (same user, token, headers, messages, hold) named ``"{client}#{number}"`` and
    starting at the connection's planned time. Each connection also keeps the
    backend instance it reached in the full run: the reduced profile routes
    sticky and places the copy at a client index equal to that instance modulo
    ``instances`` (idle clients with 0 connections fill the gaps). So removing a
    connection never moves the others to another instance, even under
    round-robin routing.
    """
    clients: list[dict[str, Any]] = []
    for planned in sorted(kept, key=lambda p: p.index):
        instance = instance_for(planned, profile.routing, profile.instances)
        while len(clients) % profile.instances != instance:
            clients.append({"name": f"idle{len(clients)}", "connections": 0})
        clients.append(_single_connection_client(planned))
    data = profile.model_dump(exclude={"name", "clients"})
    data.update(clients=clients, routing="sticky")
    return Profile.model_validate({**data, "name": name or profile.name})


def _single_connection_client(planned: PlannedConnection) -> dict[str, Any]:
    client = planned.client.model_dump()
    client.update(
        name=f"{planned.client.name}#{planned.number}", connections=1, start_s=planned.at_s, spacing_s=0.0
    )
    return client


@dataclass(frozen=True)
class TrafficReduction:
    """A 1-minimal failing subset of a profile's planned connections (what ddmin kept).

    Removing any one kept connection makes the failure disappear; a smaller failing subset
    may exist. In the reduced run only some kept connections fail (``failing_the_same_way``).
    """

    profile: str
    variant: str
    planned: tuple[PlannedConnection, ...]
    kept: tuple[PlannedConnection, ...]
    run: RunResult
    signature: FailureSignature
    tests_run: int

    @property
    def failing_the_same_way(self) -> tuple[ConnectionResult, ...]:
        """The connections of the reduced run that fail with the signature."""
        return tuple(c for c in self.run.connections if self.signature.matches(c, self.run))

    @property
    def failure_state(self) -> UserAtRefusal | None:
        """What the reduced run's first same failure's user had on its instance then (None: no such failure)."""
        failing = self.failing_the_same_way
        return user_at_refusal(self.run, failing[0]) if failing else None

    def description(self) -> str:
        """``6 of 36 planned connections (1 of them closes 1011)``: kept, and failing in the reduced run."""
        failing = len(self.failing_the_same_way)
        verb = "closes" if failing == 1 else "close"
        return (
            f"{len(self.kept)} of {len(self.planned)} planned connections "
            f"({failing} of them {verb} {self.signature.close_code})"
        )

    def summary(self) -> str:
        return (
            f"{self.profile}: 1-minimal failing traffic {self.description()}, {self.signature}; kept "
            + ", ".join(f"#{p.index} {p.client.name}@{p.at_s:g}s" for p in self.kept)
            + f" ({self.tests_run} tests)"
        )


def minimal_failing_traffic(profile: Profile, variant: str = "original") -> TrafficReduction:
    """ddmin over ``profile``'s planned connections with the same-failure oracle: a 1-minimal failing subset.

    Removing any one kept connection makes the failure disappear; a smaller failing subset may exist.

    Raises:
        IsolationError: the profile has no failing connection.
    """
    run = simulate(profile, variant)
    first_failure = run.first_failure()
    if first_failure is None:
        raise IsolationError(profile.name, "failing", f"does not fail under variant {variant}")
    signature = FailureSignature.of(first_failure, run)
    plan = connection_plan(profile)
    runs: dict[tuple[int, ...], RunResult] = {}

    def test(kept: tuple[PlannedConnection, ...]) -> Outcome:
        reduced = simulate(traffic_subset_profile(profile, kept), variant)
        runs[tuple(p.index for p in kept)] = reduced
        return signature.outcome(reduced)

    result = ddmin(plan, test)
    kept = tuple(result.minimal)
    return TrafficReduction(
        profile=profile.name,
        variant=variant,
        planned=tuple(plan),
        kept=kept,
        run=runs[tuple(p.index for p in kept)],
        signature=signature,
        tests_run=result.tests_run,
    )


# ---------------------------------------------------------------------------
# For the postmortem


def run_of(profile: Profile, variant: str, runs: Mapping[str, RunResult] | None = None) -> RunResult:
    """``runs[profile.name]`` when given (runs made under ``variant``), else a fresh simulation."""
    if runs is not None and profile.name in runs:
        return runs[profile.name]
    return simulate(profile, variant)


def failing_profiles(
    profiles: Sequence[Profile], variant: str = "original", runs: Mapping[str, RunResult] | None = None
) -> list[Profile]:
    """The profiles with at least one failing connection, in the given order (``runs``: see run_of)."""
    return [profile for profile in profiles if run_of(profile, variant, runs).failures]


def isolations_against(
    reference: str = "local-debug",
    profiles_dir: str | None = None,
    variant: str = "original",
    runs: Mapping[str, RunResult] | None = None,
) -> dict[str, ProfileIsolation]:
    """The isolation of every failing profile against ``reference``, by profile name (sorted).

    ``runs``: the profiles' runs under ``variant`` when already made (see run_of).
    """
    from investigation.profiles import list_profiles, load_profile

    passing = load_profile(reference, profiles_dir)
    return {
        profile.name: isolate_profiles(passing, profile, variant, runs)
        for profile in failing_profiles(list_profiles(profiles_dir), variant, runs)
    }


@dataclass(frozen=True)
class IsolationOverview:
    """The isolation of several failing profiles against one passing reference."""

    reference: str
    isolations: Mapping[str, ProfileIsolation]

    def __repr__(self) -> str:
        return f"IsolationOverview(reference={self.reference!r}, failing={sorted(self.isolations)!r})"


def isolation_overview(reference: str = "local-debug", profiles_dir: str | None = None,
                       variant: str = "original", runs: Mapping[str, RunResult] | None = None) -> IsolationOverview:
    """Every failing profile isolated against ``reference`` (for the postmortem; ``runs``: see run_of)."""
    return IsolationOverview(reference, isolations_against(reference, profiles_dir, variant, runs))


def isolation_verdicts(isolation: ProfileIsolation, reduction: TrafficReduction) -> object:
    """What the isolation found, as computed sentences."""
    from IPython.display import Markdown

    environmental = [c.factor for c in isolation.minimal_difference if is_environment_factor(c.factor)]
    lines = [
        f"- Failure-inducing difference ({isolation.tests_run} tests): {isolation.difference_in_words()}"
        f"{mixture_holds(isolation, '; ')}.",
        f"- Environment factors ({ENVIRONMENT_FACTOR_KINDS}) in it: {', '.join(environmental) or 'none'}.",
        f"- 1-minimal failing traffic (ddmin: removing any one kept connection makes the failure disappear; "
        f"a smaller failing subset may exist): {reduction.description()}, {_users_and_instances(reduction)}.",
        f"- First divergence of the profiles: "
        f"{_describe_alignment(isolation.first_divergence, failing_ordinals=_plan_ordinals(isolation, reduction))}.",
    ]
    if isolation.isolated_divergence is not None:
        lines.append("- First divergence of the isolated pair: "
                     f"{_describe_alignment(isolation.isolated_divergence, isolation.mixture_clients)}.")
    lines.append(f"- Innermost cause: {isolation.failure.cause_chain[-1].type}: "
                 f"{isolation.failure.cause_chain[-1].message}" if isolation.failure.cause_chain else "- No cause chain.")
    return Markdown("\n".join(lines))


def _plan_ordinals(isolation: ProfileIsolation, reduction: TrafficReduction) -> dict[int, int] | None:
    """Run index -> the client's own count of the connection (from 1), from the failing profile's plan, which
    ``reduction`` holds when it reduced that profile."""
    if reduction.profile != isolation.failing:
        return None
    return {planned.index: planned.number + 1 for planned in reduction.planned}


def isolation_lessons(isolation: ProfileIsolation, reduction: TrafficReduction, report: SuspiciousnessReport,
                      table_lines: int | None = None) -> object:
    """Chapter 04's lessons as computed sentences: the environment factors of the minimal difference,
    the two first divergences, the 1-minimal failing traffic, and the SBFL ranking's finding
    (``report.summary(table_lines)``; ``table_lines``: the count of the suspiciousness table shown)."""
    from IPython.display import Markdown

    mechanism = _mechanism_lesson(isolation, reduction)
    lines = [f"- {_difference_lesson(isolation)}", f"- {_divergence_lesson(isolation)}",
             f"- {_traffic_lesson(reduction)}", *([f"- {mechanism}"] if mechanism else []),
             f"- {report.summary(table_lines)}"]
    return Markdown("\n".join(lines))


def _difference_lesson(isolation: ProfileIsolation) -> str:
    changes = isolation.minimal_difference
    opening = f"The 1-minimal failure-inducing difference from {isolation.passing} to {isolation.failing} contains"
    environmental = [c for c in changes if is_environment_factor(c.factor)]
    words = "; ".join(c.describe() for c in changes)
    if not environmental:
        change_count = "1 change" if len(changes) == 1 else f"{len(changes)} changes"
        return (f"{opening} no environment factor ({ENVIRONMENT_FACTOR_KINDS}): {_environment_of_mixture(isolation)}, "
                f"{change_count} of the traffic {'produces' if len(changes) == 1 else 'produce'} "
                f"the same failure ({words}){passing_mixture_context(isolation)}.")
    names = ", ".join(_factor_name(c.factor) for c in environmental)
    held_words = mixture_holds(isolation, "; ")
    if len(environmental) == len(changes):
        what = "1 change, an environment factor" if len(changes) == 1 else f"{len(changes)} changes, all environment factors"
        return f"{opening} {what} ({names}): {words}{passing_mixture_context(isolation)}{held_words}."
    factor_count = "1 environment factor" if len(environmental) == 1 else f"{len(environmental)} environment factors"
    return (f"{opening} {factor_count} ({names}) among its {len(changes)} changes: "
            f"{words}{passing_mixture_context(isolation)}{held_words}.")


def held_environment_text(isolation: ProfileIsolation) -> str:
    """``JWT_SECRET_KEY, JWT_SECRET_STAGING and KUBERNETES_SERVICE_HOST unset, as in auth-staging-no-secret``;
    ``JWT_ALGORITHM = 'RS256' and JWT_SECRET_KEY set, as in auth-staging-alg-rs256``: the environment factors dd's
    last passing mixture already takes from the failing profile, with the values it takes (a secret only as set or
    unset, never its value); empty when it takes none."""
    held = [(_factor_name(c.factor), _held_state(c)) for c in isolation.passing_mixture
            if is_environment_factor(c.factor)]
    if not held:
        return ""
    states = {state for _, state in held}
    if len(states) == 1 and states <= _GROUPED_STATES:
        words = f"{and_list([name for name, _ in held])} {states.pop()}"
    else:
        words = and_list([f"{name} {state}" for name, state in held])
    return f"{words}, as in {isolation.failing}"


_GROUPED_STATES = frozenset({"unset", "set", "set to another secret"})
"""States that read after a list of names (``A and B unset``); a value (``= 'RS256'``) goes after each name."""


def _held_state(change: FactorChange) -> str:
    """The failing side's value of ``change`` in words: ``unset``; a secret (profiles.is_secret_factor) ``set``, or
    ``set to another secret`` when the passing side sets one too; any other value ``= 'RS256'``."""
    if change.failing is ABSENT:
        return "unset"
    if is_secret_factor(change.factor):
        return "set" if change.passing is ABSENT else "set to another secret"
    return f"= {short_value(_json_value(change.factor, change.failing))}"


def mixture_holds(isolation: ProfileIsolation, before: str = "") -> str:
    """``; dd's passing mixture already holds JWT_ALGORITHM = 'RS256', as in auth-staging-alg-rs256`` (``before``
    first), or empty when dd's passing mixture holds none of the failing profile's environment factors."""
    held = held_environment_text(isolation)
    return f"{before}dd's passing mixture already holds {held}" if held else ""


def _environment_of_mixture(isolation: ProfileIsolation) -> str:
    """``with local-debug's environment``, or, when dd's passing mixture holds some of the failing profile's
    environment factors, which: the difference produces the failure on top of those, not in the passing one's."""
    held = held_environment_text(isolation)
    if not held:
        return f"with {isolation.passing}'s environment"
    return f"on dd's passing mixture, which already holds {held} (otherwise {isolation.passing}'s environment)"


TIMING_FIELDS = ("start_s", "spacing_s", "hold_s")
"""A client's timing: what decides whether its earlier connections are still open at a refusal."""


def passing_mixture_context(isolation: ProfileIsolation) -> str:
    """``, applied to dd's passing mixture, which already gives that client staging-e2e's spacing_s 14 and
    hold_s 4 (and its headers, messages, name)``: the fields of the difference's clients that dd moved to the
    passing side, the timing ones with their values (empty when there are none)."""
    clients = {match[1] for c in isolation.minimal_difference if (match := _CLIENT_FACTOR.fullmatch(c.factor))}
    shared = [(match[2], c) for c in isolation.passing_mixture
              if (match := _CLIENT_FACTOR.fullmatch(c.factor)) and match[1] in clients
              and not _is_client_default(match[2], c.failing)]
    if not shared:
        return ""
    timing = [f"{field} {short_value(_json_value(c.factor, c.failing))}"
              for name in TIMING_FIELDS for field, c in shared if field == name]
    others = sorted({field for field, _ in shared} - set(TIMING_FIELDS))
    client_word = "that client" if len(clients) == 1 else "those clients"
    what = (f"{and_list(timing)} (and its {', '.join(others)})" if timing and others
            else and_list(timing) if timing else ", ".join(others))
    return f", applied to dd's passing mixture, which already gives {client_word} {isolation.failing}'s {what}"


def _is_client_default(name: str, value: object) -> bool:
    """Whether ``value`` is what a client has when its profile does not set field ``name`` (the schema's default):
    such a field is not something the failing profile gives the client."""
    field_info = Client.model_fields.get(name)
    return field_info is not None and not field_info.is_required() and field_info.get_default(call_default_factory=True) == value


def _divergence_lesson(isolation: ProfileIsolation) -> str:
    """Where the profiles first part against where the isolated pair does, and whether the
    profiles' difference there is needed for the failure (the isolated pair agrees there)."""
    profiles_point = _divergence_point(isolation.first_divergence)
    opening = f"The profiles first part at {profiles_point}"
    isolated = isolation.isolated_divergence
    if isolated is None:
        return (f"{opening}; dd's final mixtures give no pair of connections to align (a mixture is not "
                "a valid profile, or its run does not fail the same way), so where the isolated pair parts "
                "is not computed.")
    isolated_point = _divergence_point(isolated)
    if isolated_point == profiles_point:
        return f"The profiles and the isolated pair first part at the same point, {profiles_point}."
    profiles = isolation.first_divergence.divergence
    shared = _agree_at(isolated, profiles)
    if shared is None:
        return (f"{opening}; the isolated pair, which differs only in the minimal difference, "
                f"first parts at {isolated_point}.")
    assert profiles is not None
    if shared == profiles.passing:
        return (f"{opening}, but that difference is not needed for the failure: {_isolated_pair(isolation)} "
                f"first parts at {isolated_point}.")
    return (f"{opening} ({_outcome_words(profiles.passing)} vs {_outcome_words(profiles.failing)}); the isolated pair "
            f"takes {_outcome_words(shared)} there on both sides{_why_shared(isolation, shared == profiles.failing)}, "
            f"so dd does not show whether that difference is needed for the failure; the pair first parts at "
            f"{isolated_point}.")


def _why_shared(isolation: ProfileIsolation, as_failing: bool) -> str:
    """`` (dd's passing mixture already holds ENVIRONMENT = 'staging' and K_SERVICE = 'x', as in staging-e2e)``,
    else ``, as staging-e2e does``."""
    held = mixture_holds(isolation)
    if held:
        return f" ({held})"
    return f", as {isolation.failing} does" if as_failing else ""


def _divergence_point(aligned: AlignedDivergence) -> str:
    divergence = aligned.divergence
    return "no point (the aligned traces are identical)" if divergence is None else divergence.point


def _agree_at(aligned: AlignedDivergence, divergence: Divergence | None) -> str | None:
    """The outcome both connections of ``aligned`` take at ``divergence``'s point, None when they differ there
    or do not reach it."""
    if divergence is None:
        return None
    passing = _first_outcome(aligned.passing_connection, divergence.point)
    return passing if passing is not None and passing == _first_outcome(aligned.failing_connection, divergence.point) else None


def _first_outcome(connection: ConnectionResult, point: str) -> str | None:
    return next((decision.outcome for decision in connection.decisions if decision.point == point), None)


def _isolated_pair(isolation: ProfileIsolation) -> str:
    """The isolated pair and how its environment relates to the profiles' (for the divergence lesson)."""
    if any(is_environment_factor(c.factor) for c in isolation.minimal_difference):
        return "the isolated pair, which differs only in the minimal difference,"
    shared = held_environment_text(isolation)
    if shared:
        return f"with the same environment on both sides ({shared}, otherwise {isolation.passing}'s), the isolated pair"
    return f"with {isolation.passing}'s environment the isolated pair"


def _traffic_lesson(reduction: TrafficReduction) -> str:
    users, never_established = kept_users(reduction)
    who = f"{_count_of(users, 'user')} ({', '.join(users)})" if users else ""
    if never_established:
        who = f"{who}, besides {never_established}," if users else f"{never_established},"
    instances = sorted({str(c.instance) for c in reduction.run.connections})
    failing = len(reduction.failing_the_same_way)
    return (
        f"The failing traffic of {reduction.profile} shrinks to {len(reduction.kept)} of its "
        f"{len(reduction.planned)} planned connections (1-minimal: none of them can be left out), from "
        f"{who} on {_count_of(instances, 'instance')} "
        f"({', '.join(instances)}); in that reduced run {failing} of them "
        f"{'closes' if failing == 1 else 'close'} {reduction.signature.close_code}."
    )


def kept_users(reduction: TrafficReduction) -> tuple[list[str], str]:
    """The users the server established for the kept connections in the reduced run (``trace.identified_users``:
    after the strip of spec 5.4, so ``"  pat smith  "`` and ``"pat smith"`` are one user), sorted, and
    ``2 connections whose user the server never established`` ("" when there are none). A control character in an
    id is escaped (``line1\\nline2``): the sentences are Markdown, where a newline reads as a space."""
    connections = reduction.run.connections
    return sorted(escape_controls(user) for user in identified_users(connections)), never_established_text(connections)


def _mechanism_lesson(isolation: ProfileIsolation, reduction: TrafficReduction) -> str | None:
    """Whether dd's failing mixture is refused the way the failing profile is: the refused user's managers
    against its connections still open (:func:`user_at_refusal`), and whether ddmin's reduced traffic is.

    None when a state is missing or neither the mixture's nor the profile's failure is a refusal at the cap.
    """
    mixture, own = isolation.mixture_failure_state, isolation.failure_state
    if mixture is None or own is None or not (mixture.at_cap or own.at_cap):
        return None
    aligned = isolation.isolated_divergence
    mixture_client = "" if aligned is None else _client_and_user(aligned.failing_connection, isolation.mixture_clients)
    sentence = (f"In dd's failing mixture the refused connection{mixture_client} met {_state_words(mixture, True)}; "
                f"in {isolation.failing}'s own first failure the refused connection"
                f"{_client_and_user(isolation.failure, {})} met {_state_words(own, False)}.")
    reduced = reduction.failure_state
    reduced_words = ("" if reduced is None else f"at its refusal the user held {_managers(reduced.held)} with "
                     f"{reduced.open_connections} of its connections open")
    if mixture.mechanism is own.mechanism:
        if reduced is None:
            return f"{sentence} dd's mixture fails the same way."
        if reduced.mechanism is own.mechanism:
            return (f"{sentence} dd's mixture fails the same way; so does ddmin's reduced traffic (planned times "
                    f"kept): {reduced_words}.")
        return (f"{sentence} dd's mixture fails the same way; ddmin's reduced traffic (planned times kept) does "
                f"not: {reduced_words}.")
    what = "the leak" if own.mechanism is Mechanism.OUTLIVED else "the mechanism"
    conclusion = f"{sentence} The difference dd isolates therefore reproduces the close, not {what}"
    if reduced is None:
        return f"{conclusion}."
    does = "does" if reduced.mechanism is own.mechanism else "does not either"
    return f"{conclusion}; ddmin's reduced traffic (planned times kept) {does}: {reduced_words}."


def _client_and_user(connection: ConnectionResult, client_names: Mapping[str, str]) -> str:
    """`` (client debug-script, user test-user-12345)``; ``client_names``: readable names of placeholder clients."""
    return f" (client {client_names.get(connection.client, connection.client)}, user {connection.user_id})"


def _managers(count: int) -> str:
    return f"{count} manager" if count == 1 else f"{count} managers"


def _open_without_manager_words(state: UserAtRefusal) -> str:
    """The words 04 appends to the refused user's open connections for those of them whose manager was no longer
    registered (``UserAtRefusal.open_without_manager``): `` with their managers (and 5 more open whose managers were
    no longer registered)``; "" when every open connection still had its manager."""
    if not state.open_without_manager:
        return ""
    return f" with their managers (and {state.open_without_manager} more open whose managers were no longer registered)"


def _state_words(state: UserAtRefusal, first: bool) -> str:
    """``5 managers of its user on its instance and 5 of the user's connections still open there: ...``."""
    where = " of its user on its instance" if first else ""
    counts = (f"{_managers(state.held)}{where} and {state.open_connections} of the user's connections still open there"
              f"{_open_without_manager_words(state)}")
    if state.mechanism is Mechanism.CONCURRENT:
        return f"{counts}: the cap refused a {ordinal(state.open_connections + 1)} concurrent connection, as designed"
    if state.mechanism is Mechanism.OUTLIVED:
        return f"{counts}: managers outlived their connections"
    return f"{counts}: below the cap of {state.cap}, so not a refusal at the cap"



def _count_of(items: Sequence[str], noun: str) -> str:
    return f"one {noun}" if len(items) == 1 else f"{len(items)} {noun}s"


def _users_and_instances(reduction: TrafficReduction) -> str:
    """``users a, b, instance 1`` for the kept connections: the users and instances of the reduced run
    (:func:`kept_users`), the connections whose user the server never established said so."""
    users, never_established = kept_users(reduction)
    instances = sorted({c.instance for c in reduction.run.connections})
    user_word = "user" if len(users) == 1 else "users"
    who = f"{user_word} {', '.join(users)}" if users else never_established
    if users and never_established:
        who = f"{who} (besides {never_established})"
    instance_word = "instance" if len(instances) == 1 else "instances"
    return f"{who}, {instance_word} {', '.join(map(str, instances))}"


def isolation_key_result(isolation: ProfileIsolation, reduction: TrafficReduction) -> str:
    changes = "; ".join(c.describe() for c in isolation.minimal_difference)
    return (f"{isolation.passing} -> {isolation.failing}: {changes} ({isolation.tests_run} tests"
            f"{mixture_holds(isolation, '; ')}); "
            f"1-minimal failing traffic: {reduction.description()}")
