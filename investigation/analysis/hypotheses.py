"""The hypothesis ledger: every causal claim of the incident report as an experiment.

Each :class:`Hypothesis` quotes a claim of docs/seed/incident-report.md (a "why", a
row of its environment table, a finding, its recommended fix), states what the
claim predicts, and designs the runs that test it: shipped profiles and
controlled variations of them (environment variables, user-id shapes, token
kinds, an injected ID-generator failure, startup timing, a variant of the
code). Each run yields an :class:`Observation` (does the prediction hold on this
run? with the evidence); the verdict is computed from the observations:

- a claim about *every* case (``quantifier="all"``) is refuted by one run where
  the prediction fails, supported when it holds on every run that tests it;
- a claim that something *can* happen ("may", ``quantifier="any"``) is
  supported by one run where it happens, refuted when no run makes it happen;
- with no run that tests the prediction the verdict is inconclusive.

No verdict is written anywhere by hand.

    ledger = build_ledger()
    ledger.summary()        # "27 claims of the report, 25 of them tested with 98 distinct runs: ..." (shipped profiles)
    ledger.finding("fix.v1").verdict
"""

from __future__ import annotations

import enum
import pickle
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from investigation.analysis.contexts import CheckedContext, contexts_of
from investigation.analysis.isolate import align_with_nearest, auth_error_code, is_environment_factor
from investigation.analysis.run_logs import added_log_lines
from investigation.analysis.variants import refused_by_rule
from investigation.backend.route import FACTORY_FAILED_REASON
from investigation.notebook_errors import NotebookParameterError
from investigation.profiles import Profile, flatten_profile, list_profiles, unflatten_profile
from investigation.report import and_list, format_table, markdown_table, never_established_text, plural, short_text
from investigation.run_cache import shared
from investigation.simulate import simulate
from investigation.trace import (
    POINT_ORDER,
    ConnectionResult,
    RunResult,
    close_code_label,
    identified_users,
)

REFERENCE = "local-debug"
"""The report's passing run: its local debug script."""
STAGING = "staging-cloud-run"
"""The environment the report calls GCP staging."""
CLOUD_RUN_VARIABLES = ("K_SERVICE", "K_REVISION", "K_CONFIGURATION", "GOOGLE_CLOUD_PROJECT", "PORT")


class Verdict(enum.Enum):
    SUPPORTED = "supported"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"

    def __repr__(self) -> str:
        return f"Verdict.{self.name}"


Holds = bool | None
"""Whether the prediction holds on one run; None: the run does not test it."""
Predicate = Callable[[RunResult, Mapping[str, RunResult]], tuple[Holds, str]]
"""(this run, every run by label) -> (holds, evidence)."""


@dataclass(frozen=True)
class RunSpec:
    """A run to make: a profile (possibly a controlled variation) under a variant."""

    label: str
    profile: Profile
    variant: str = "original"
    replayed: bool = False
    """The profile's traffic moved into another profile's environment (:func:`in_environment_of`)."""


@dataclass(frozen=True)
class Trial:
    """One run and what the claim predicts for it."""

    run: RunSpec
    predicate: Predicate


@dataclass(frozen=True)
class Observation:
    run: str
    holds: Holds
    evidence: str
    failures: tuple[tuple[str, int], ...] = ()
    """The run's failing connections by close (e.g. ``("1011 Factory SSOT validation failed", 10)``), sorted."""
    replayed: bool = False
    """Run on another profile's traffic (:attr:`RunSpec.replayed`)."""


@dataclass(frozen=True)
class Baseline:
    """The shipped profiles and their runs under the original code."""

    profiles: Mapping[str, Profile]
    runs: Mapping[str, RunResult]

    def failing(self) -> list[str]:
        return [name for name, run in self.runs.items() if run.failures]

    def failing_besides_reference(self) -> list[str]:
        """The failing profiles other than the reference: a comparison with it never pairs it with itself."""
        return [name for name in self.failing() if name != REFERENCE]

    def where(self, condition: Callable[[Profile], bool]) -> list[str]:
        return [name for name, profile in self.profiles.items() if condition(profile)]


@dataclass(frozen=True)
class Hypothesis:
    """A claim of the report, what it predicts, and the experiment that tests it."""

    key: str
    source: str
    claim: str
    prediction: str
    quantifier: Literal["all", "any"]
    design: Callable[[Baseline], Sequence[Trial]]
    untestable_because: str = ""
    by_traffic: bool = False
    """The claim is about one environment's outcome: its evidence counts the environment's own traffic
    apart from the failing profiles' traffic replayed in it (:func:`_design_environment_outcome`)."""

    def __reduce__(self) -> tuple[Callable[[str], Hypothesis], tuple[str]]:
        """Pickled by key (a ledger shared between notebooks, see run_cache): designs are lambdas.

        Raises:
            pickle.PicklingError: the hypothesis is not one of HYPOTHESES.
        """
        if not any(registered is self for registered in HYPOTHESES):
            raise pickle.PicklingError(f"hypothesis {self.key!r} is not one of HYPOTHESES")
        return registered_hypothesis, (self.key,)


@dataclass(frozen=True)
class Finding:
    """A hypothesis with its computed verdict and the observations behind it."""

    hypothesis: Hypothesis
    verdict: Verdict
    observations: tuple[Observation, ...]

    @property
    def key(self) -> str:
        return self.hypothesis.key

    def deciding_observations(self) -> tuple[Observation, ...]:
        """The observations that decided the verdict (all of them when inconclusive)."""
        wanted = {
            ("all", Verdict.REFUTED): False, ("all", Verdict.SUPPORTED): True,
            ("any", Verdict.SUPPORTED): True, ("any", Verdict.REFUTED): False,
        }.get((self.hypothesis.quantifier, self.verdict))
        if wanted is None:
            return self.observations
        return tuple(o for o in self.observations if o.holds is wanted)

    def evidence(self) -> str:
        """The first deciding run and the tested runs that went the other way, computed.

        A claim can be decided although some runs went against its verdict: an "any" claim supported
        on 4 of 5 runs, an "all" claim refuted though it held on some. Those runs are named (with
        their evidence when there is one), so the line never reads as if every run agreed.
        """
        tested = [o for o in self.observations if o.holds is not None]
        if not tested:
            return self.hypothesis.untestable_because or "no run reached what the claim is about"
        first = self.deciding_observations()[0]
        if self.hypothesis.by_traffic:
            return f"{self.held_on()}: {self._by_traffic(tested)}; e.g. {first.run}: {first.evidence}"
        return f"{self.held_on()}{self._other_way(tested)}; e.g. {first.run}: {first.evidence}"

    def _by_traffic(self, tested: Sequence[Observation]) -> str:
        """``with their own traffic (a and b) on 2 of 2 runs (no failure), with the failing profiles' traffic
        replayed there on 0 of 4 runs (1011 Factory SSOT validation failed x4)``."""
        own = [o for o in tested if not o.replayed]
        replayed = [o for o in tested if o.replayed]
        return (f"with their own traffic ({and_list([o.run for o in own])}) {_held_count(own)}, "
                f"with the failing profiles' traffic replayed there {_held_count(replayed)}")

    def held_on(self) -> str:
        """``prediction held on 0 of 4 runs`` (the runs that tested the claim)."""
        tested = [o for o in self.observations if o.holds is not None]
        return f"prediction held on {sum(1 for o in tested if o.holds)} of {plural(len(tested), 'run')}"

    def _other_way(self, tested: Sequence[Observation]) -> str:
        """`` (failed on r0: evidence)``: the tested runs whose outcome differs from the deciding ones."""
        deciding = self.deciding_observations()
        if not deciding:
            return ""
        against = [o for o in tested if o.holds is not deciding[0].holds]
        if not against:
            return ""
        outcome = "held" if against[0].holds else "not met"
        shown = f"{against[0].run}: {against[0].evidence}" if len(against) == 1 else ", ".join(o.run for o in against)
        return f" ({outcome} on {shown})"


def _held_count(observations: Sequence[Observation]) -> str:
    """``on 0 of 4 runs (1011 Factory SSOT validation failed x4)``: where the prediction held, and the
    runs' failing connections by close (``no failure`` when they have none)."""
    totals: Counter[str] = Counter()
    for observation in observations:
        totals.update(dict(observation.failures))
    failures = ", ".join(f"{close} x{n}" for close, n in sorted(totals.items())) or "no failure"
    held = sum(1 for o in observations if o.holds)
    return f"on {held} of {plural(len(observations), 'run')} ({failures})"


def verdict_of(holds: Iterable[Holds], quantifier: Literal["all", "any"]) -> Verdict:
    """The verdict a set of per-run outcomes gives a claim of this quantifier."""
    tested = [value for value in holds if value is not None]
    if not tested:
        return Verdict.INCONCLUSIVE
    if quantifier == "all":
        return Verdict.SUPPORTED if all(tested) else Verdict.REFUTED
    return Verdict.SUPPORTED if any(tested) else Verdict.REFUTED


def evaluate(hypothesis: Hypothesis, trials: Sequence[Trial], runs: Mapping[str, RunResult]) -> Finding:
    """The finding of ``hypothesis`` from the runs of its ``trials`` (looked up by label)."""
    observations = []
    for trial in trials:
        run = runs[trial.run.label]
        holds, evidence = trial.predicate(run, runs)
        observations.append(Observation(trial.run.label, holds, evidence, failure_counts(run), trial.run.replayed))
    verdict = verdict_of((o.holds for o in observations), hypothesis.quantifier)
    return Finding(hypothesis, verdict, tuple(observations))


# ---------------------------------------------------------------------------
# What runs show


def factory_reason_closes(connections: Sequence[ConnectionResult]) -> list[ConnectionResult]:
    """Connections closed 1011 with the factory's reason "Factory SSOT validation failed" (spec 1.2)."""
    return [c for c in connections if c.close_code == 1011 and c.close_reason == FACTORY_FAILED_REASON]


def factory_closes(run: RunResult) -> list[ConnectionResult]:
    """The run's connections closed 1011 "Factory SSOT validation failed"."""
    return factory_reason_closes(run.connections)


def validation_rejections(run: RunResult) -> list[ConnectionResult]:
    """Factory closes that followed a failed SSOT validation (the mechanism the report names)."""
    return [c for c in factory_closes(run) if c.outcome("factory.validation") == "fail"]


def is_auth_refusal(connection: ConnectionResult) -> bool:
    """Closed 1008 "SSOT Auth failed" (spec 1 step 5): the server refusing the client's credentials, e.g. an expired,
    not-yet-valid or foreign-signed token, or a missing secret (the project's policy: ``variants.refused_by_rule``);
    not the 1011 factory close the report is about."""
    return connection.close_code is not None and refused_by_rule(close_code_label(connection.close_code))


def failure_counts(run: RunResult) -> tuple[tuple[str, int], ...]:
    """The run's failing connections counted by close code and reason, sorted."""
    return tuple(sorted(Counter(f"{c.close_code} {c.close_reason}" for c in run.failures).items()))


def close_tally(run: RunResult) -> str:
    """How the run's connections ended, e.g. ``"open 20, 1011 Factory SSOT validation failed 1"``."""
    counts = Counter(
        "open" if c.close_code is None else f"{c.close_code} {c.close_reason}" for c in run.connections
    )
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def outcome_tally(connections: Sequence[ConnectionResult], point: str) -> str:
    counts = Counter(c.outcome(point) or "not reached" for c in connections)
    return ", ".join(f"{point}={outcome} x{n}" for outcome, n in sorted(counts.items()))


def innermost(connection: ConnectionResult) -> str:
    return connection.innermost_type() or "(none)"


# ---------------------------------------------------------------------------
# Controlled variations


def vary(profile: Profile, label: str, set_factors: Mapping[str, object] | None = None,
         drop: Callable[[str], bool] | None = None) -> Profile:
    """``profile`` with factors dropped (``drop(path)`` true) and then set; named ``label``."""
    factors = {path: value for path, value in flatten_profile(profile).items() if not (drop and drop(path))}
    factors.update(set_factors or {})
    return unflatten_profile(label, factors, base=profile)


REPLAY_LABEL = "{traffic} traffic in {environment} environment"
"""The label of a run of one profile's traffic in another profile's environment."""


def in_environment_of(traffic: Profile, environment: Profile) -> RunSpec:
    """``traffic``'s clients run where ``environment`` runs (env, process, startup, instances)."""
    label = REPLAY_LABEL.format(traffic=traffic.name, environment=environment.name)
    moved = {path: value for path, value in flatten_profile(environment).items() if is_environment_factor(path)}
    return RunSpec(label, vary(traffic, label, moved, drop=is_environment_factor), replayed=True)


def variation(profile: Profile, change: str, set_factors: Mapping[str, object] | None = None,
              drop: Callable[[str], bool] | None = None) -> RunSpec:
    label = f"{profile.name} with {change}"
    return RunSpec(label, vary(profile, label, set_factors, drop))


def variant_label(name: str, variant: str) -> str:
    """The label of profile ``name``'s run under ``variant``: ``staging-e2e [V2]``, or the name for the original."""
    return name if variant == "original" else f"{name} [{variant}]"


def unchanged(profile: Profile, variant: str = "original") -> RunSpec:
    return RunSpec(variant_label(profile.name, variant), profile, variant)


# ---------------------------------------------------------------------------
# Predicates


def closes_follow_validation_failure(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    closes = factory_closes(run)
    if not closes:
        return None, f"no factory close ({close_tally(run)})"
    rejected = validation_rejections(run)
    inner = Counter(innermost(c) for c in closes)
    return len(rejected) == len(closes), (
        f"{len(rejected)} of {len(closes)} factory closes follow factory.validation=fail; innermost "
        + ", ".join(f"{kind} x{n}" for kind, n in sorted(inner.items()))
    )


def closes_follow_strict_rejection(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    closes = factory_closes(run)
    if not closes:
        return None, f"no factory close ({close_tally(run)})"
    strict = [c for c in validation_rejections(run) if c.outcome("factory.validation_mode") == "strict"]
    return len(strict) == len(closes), (
        f"{outcome_tally(closes, 'factory.validation_mode')}; {outcome_tally(closes, 'factory.validation')}"
    )


AUTH_FLOW_POINTS = tuple(point for point in POINT_ORDER if point.startswith("auth.") and point != "auth.result")
"""The decisions of the authentication flow before the context is built (spec 5)."""


def auth_flow_differences(connections: Sequence[ConnectionResult], reference: ConnectionResult) -> list[str]:
    """``auth.e2e_bypass (yes locally; auth.e2e_bypass=no x1 here)`` per auth point where ``connections`` differ."""
    return [f"{point} ({reference.outcome(point) or 'not reached'} locally; {outcome_tally(connections, point)} here)"
            for point in AUTH_FLOW_POINTS if any(c.outcome(point) != reference.outcome(point) for c in connections)]


def contexts_fail_strict_validation(profile: Profile) -> Predicate:
    """Why #3: the contexts ``profile`` creates would be rejected by strict validation (spec 4.4)."""

    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        closes = factory_closes(run)
        if not closes:
            return None, "no factory close"
        differences = auth_flow_differences(closes, runs[REFERENCE].connections[0])
        contexts = contexts_of(profile, run.variant)
        passed = sum(1 for context in contexts if context.strict == "pass")
        flow = f"auth flow differs at {'; '.join(differences)}" if differences else "auth flow as locally"
        return passed < len(contexts), (
            f"{flow}; strict validation passes {passed} of {plural(len(contexts), 'context')} it created")

    return predicate


def auth_client_id_format(context: CheckedContext) -> bool:
    """Whether the context's websocket_client_id has the auth flow's form ``ws_{user_id[:8]}_{s}_{uuid8}`` (spec 5)."""
    pattern = rf"ws_{re.escape(context.user_id[:8])}_\d+_[0-9a-f]{{8}}"
    return context.websocket_client_id is not None and re.fullmatch(pattern, context.websocket_client_id) is not None


def client_id_flagged(profile: Profile) -> Predicate:
    """Why #5 (3): validation flags the websocket_client_id of some context ``profile``'s auth flow creates."""

    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        contexts = contexts_of(profile, run.variant)
        if not contexts:
            return None, "no context reached the factory"
        flagged = sum(1 for c in contexts if "websocket_client_id" in c.strict)
        formed = sum(1 for c in contexts if auth_client_id_format(c))
        return flagged > 0, (
            f"websocket_client_id of the form ws_<first 8 of the user id>_<s>_<8 hex> in {formed} of "
            f"{plural(len(contexts), 'context')}; strict validation flags websocket_client_id in {flagged}")

    return predicate


GENERATED_ID = r"{kind}_websocket_factory_\d+_{n}_[0-9a-f]{{8}}"
"""Spec 3.1's ids in the WebSocket path, ``{kind}`` thread, run or req and ``{n}`` the ID counter."""


def reproduces_local_debug_output(profile: Profile) -> Predicate:
    """The report's debug run: its first context's ids come from the generator with counters 1, 2, 3, strict
    validation runs and passes, and the factory creates a manager."""

    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        first = contexts_of(profile, run.variant)[0]
        ids = (("thread", 1, first.thread_id), ("run", 2, first.run_id), ("req", 3, first.request_id))
        formats = all(re.fullmatch(GENERATED_ID.format(kind=kind, n=n), value) for kind, n, value in ids)
        points = ("factory.validation_mode", "factory.validation", "factory.result")
        outcomes = tuple(run.connections[0].outcome(point) for point in points)
        shown = "; ".join(f"{point}={outcome}" for point, outcome in zip(points, outcomes, strict=True))
        return formats and outcomes == ("strict", "pass", "created"), (
            f"first context: {first.thread_id}, {first.run_id}, {first.request_id}; {shown}")

    return predicate


def has_no_factory_close(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    return not factory_closes(run), close_tally(run)


def has_factory_close(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    return bool(factory_closes(run)), close_tally(run)


def refused_at_authentication_only(run: RunResult) -> bool:
    """Whether the run has connections and none got past authentication: each was refused there
    (:func:`is_auth_refusal`) or its authentication failed before its client left, with no close to show for it
    (the retries of spec 5.3 can outlast a short connection): it tests nothing past authentication, the factory
    among it."""
    return bool(run.connections) and all(is_auth_refusal(c) or auth_error_code(c) is not None for c in run.connections)


def every_connection_refused_at_authentication(run: RunResult) -> str:
    """Why a run refused at authentication only (:func:`refused_at_authentication_only`) is untested."""
    return f"no connection got past authentication ({close_tally(run)})"


def has_factory_close_past_authentication(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    """:func:`has_factory_close`, untested on a run whose every connection is refused at authentication: no
    connection reached the factory, so the run says nothing of whether it closes connections."""
    if refused_at_authentication_only(run):
        return None, every_connection_refused_at_authentication(run)
    return has_factory_close(run, runs)


def has_no_failure(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    """No connection fails, auth refusals (:func:`is_auth_refusal`) aside: refusing a bad token is no failure of the
    WebSocket path; a run whose every connection is refused at authentication tests nothing past it (untested)."""
    if refused_at_authentication_only(run):
        return None, every_connection_refused_at_authentication(run)
    refused = sum(1 for c in run.connections if is_auth_refusal(c))
    others = [c for c in run.failures if not is_auth_refusal(c)]
    aside = "; the 1008 auth refusals aside" if refused else ""
    return not others, close_tally(run) + aside


def has_validation_rejection(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    reached = [c for c in run.connections if c.outcome("factory.validation") is not None]
    if not reached:
        return None, f"no connection reached factory validation ({close_tally(run)})"
    rejected = validation_rejections(run)
    return bool(rejected), f"{len(rejected)} of {len(reached)} validated contexts rejected; {close_tally(run)}"


def fallback_ids_rejected(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    fallback = [c for c in run.connections if c.outcome("context.id_generation") == "fallback"]
    if not fallback:
        return None, "no connection used fallback IDs"
    rejected = [c for c in validation_rejections(run) if c in fallback]
    return bool(rejected), (
        f"{plural(len(fallback), 'connection')} built fallback IDs, {len(rejected)} rejected by validation; "
        f"{outcome_tally(fallback, 'factory.validation')}"
    )


def failures_used_fallback(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    closes = factory_closes(run)
    if not closes:
        return None, "no factory close"
    return all(c.outcome("context.id_generation") == "fallback" for c in closes), outcome_tally(
        closes, "context.id_generation"
    )


def id_generation_changes(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    expected = runs[REFERENCE].connections[0].outcome("context.id_generation")
    reached = [c for c in run.connections if c.outcome("context.id_generation") is not None]
    if not reached:
        return None, f"ID generation not reached ({close_tally(run)})"
    changed = [c for c in reached if c.outcome("context.id_generation") != expected]
    return bool(changed or validation_rejections(run)), (
        f"{outcome_tally(reached, 'context.id_generation')} (locally {expected}); "
        f"{len(validation_rejections(run))} validation rejections"
    )


def expected_validation_mode(mode: str) -> Predicate:
    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        reached = [c for c in run.connections if c.outcome("factory.validation_mode") is not None]
        if not reached:
            return None, "no connection reached the factory"
        return all(c.outcome("factory.validation_mode") == mode for c in reached), outcome_tally(
            reached, "factory.validation_mode"
        )

    return predicate


def runs_strict_validation(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    reached = [c for c in run.connections if c.outcome("factory.validation_mode") is not None]
    if not reached:
        return None, "no connection reached the factory"
    return any(c.outcome("factory.validation_mode") == "strict" for c in reached), outcome_tally(
        reached, "factory.validation_mode"
    )


def strict_runs_and_rejects(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    """"Strict validation runs and fails": a run where strict validation never ran does not meet it."""
    strict = [c for c in run.connections if c.outcome("factory.validation_mode") == "strict"]
    if not strict:
        return False, f"strict validation never ran ({outcome_tally(run.connections, 'factory.validation_mode')})"
    rejected = [c for c in strict if c.outcome("factory.validation") == "fail"]
    return bool(rejected), f"strict validation ran {len(strict)} times, rejected {len(rejected)}; {close_tally(run)}"


def every_validation_passes(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    """Factory validation works: every connection that reached it passed (closes for other reasons aside)."""
    validated = [c for c in run.connections if c.outcome("factory.validation") is not None]
    if not validated:
        return None, "no connection reached factory validation"
    passed = [c for c in validated if c.outcome("factory.validation") == "pass"]
    return len(passed) == len(validated), f"{len(passed)} of {len(validated)} validations pass; {close_tally(run)}"


VALUE_POINTS = frozenset({"route.environment"})
"""Decision points that record a value read (spec 1 step 1: ENVIRONMENT as read), not a branch taken: the
path only parts where a later point's outcome differs. Every other point records the branch its connection took."""


def same_path_as_reference(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    failure = run.first_failure()
    if failure is None:
        return None, "no failing connection"
    deciding = failure.deciding_decision()
    decided_at = POINT_ORDER.get(deciding.point, len(POINT_ORDER)) if deciding else len(POINT_ORDER)
    nearest = align_with_nearest(runs[REFERENCE], failure, skip=VALUE_POINTS).divergence
    if nearest is None:
        return True, "decision traces identical"
    agrees = POINT_ORDER.get(nearest.point, len(POINT_ORDER)) >= decided_at
    return agrees, (
        f"first branch taken differently (route.environment, a value read, aside) at {nearest.point}: "
        f"{nearest.passing} locally vs {nearest.failing} here "
        f"(failure decided at {deciding.point if deciding else '-'})"
    )


def no_factory_close_though_unchanged(variant: str, failing: Sequence[str]) -> Predicate:
    """A permissive-validation fix: no factory close under ``variant`` (untested for a profile without one under the
    original, as :func:`removes_factory_closes_of`); the evidence counts the failing
    profiles whose run under it equals the original's, and the validation rejections among the original's failing
    connections that reached validation (a connection refused before it, e.g. 1008 at auth, was not rejected)."""

    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        same = [name for name in failing if runs[variant_label(name, variant)].connections == runs[name].connections]
        failures = [c for name in failing for c in runs[name].failures]
        reached = [c for c in failures if c.outcome("factory.validation") is not None]
        rejected = sum(1 for c in reached if c.outcome("factory.validation") == "fail")
        unreached = len(failures) - len(reached)
        never = f", {plural(unreached, 'other')} never reached it" if unreached else ""
        nothing = ", so a more permissive check has nothing to accept" if not rejected else ""
        holds = not factory_closes(run) if factory_closes(runs[run.profile]) else None
        return holds, (
            f"{close_tally(run)}; {variant}'s run equals the original's on {len(same)} of "
            f"{plural(len(failing), 'failing profile')}; factory.validation rejected {rejected} of the original's "
            f"{plural(len(reached), 'failing connection')} that reached it{never}{nothing}")

    return predicate


def logging_names_the_refusal(profile: Profile, variant: str) -> Predicate:
    """The report's next step 1: a log line ``variant`` adds carries the cause of the original's factory closes (their
    innermost exception's message), so the added logging identifies the failure point. Its other failures (e.g.
    1008 auth refusals of foreign-signed tokens) are not the 1011 the report is about."""

    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        if not factory_closes(runs[profile.name]):
            return None, no_factory_close_in(profile.name, runs[profile.name])
        failures = factory_closes(runs[profile.name])
        causes = sorted({c.cause_chain[-1].message for c in failures if c.cause_chain})
        added = added_log_lines(run, runs[profile.name])
        named = [line for line in added if any(cause in line for cause in causes)]
        shown = "; ".join(f"'{line}' x{count}" for line, count in sorted(added.items())) or "nothing"
        deciding = sorted({f"{d.point}={d.outcome}" for c in failures if (d := c.deciding_decision())})
        return bool(named), (
            f"{variant} adds {shown}; {'one carries' if named else 'none carries'} the cause of the original's "
            f"{plural(len(failures), 'factory close')} (decided at {', '.join(deciding)}; innermost: "
            f"{short_text(causes[0]) if causes else '-'})")

    return predicate


def some_user_never_served(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
    """Some user of the run is denied by the failures the claim is about: none of its connections works (each
    closes other than 1000) and one of them closed 1011 (the report: "connections fail with 1011 errors"). A user
    refused only for another reason (a bad token: 1008) does not count. Unlike a share of failing connections,
    this does not grow with the length of the traffic. Users are those authentication established
    (``trace.identified_users``): a connection whose user it never established is nobody's, served or denied."""
    if not run.connections:
        return None, "no connection"
    users = identified_users(run.connections)
    served = identified_users(c for c in run.connections if not c.failed)
    denied = identified_users(c for c in run.connections if c.close_code == 1011) - served
    return bool(denied), (f"{len(served)} of {plural(len(users), 'user')}{_not_counted(run.connections)} had a "
                          "working connection; "
                          f"{len(denied)} had none and got a 1011 close; "
                          f"{len(run.failures)} of {plural(len(run.connections), 'connection')} fail "
                          f"({close_tally(run)})")


def _not_counted(connections: Sequence[ConnectionResult]) -> str:
    """`` (not counting 2 connections whose user the server never established)``, when any."""
    never_established = never_established_text(connections)
    return f" (not counting {never_established})" if never_established else ""


def no_factory_close_in(base: str, base_run: RunResult) -> str:
    """Why a run of ``base``'s traffic moved elsewhere tests nothing about its factory closes: it has none."""
    return f"no factory close in {base} ({close_tally(base_run)})"


def given_factory_closes_in(base: str, predicate: Predicate) -> Predicate:
    """``predicate`` on a run of ``base``'s traffic changed (moved elsewhere, run under a variant or with every
    service ready), untested when ``base`` has no factory close itself: its other failures, e.g. 1008 auth refusals
    of expired or foreign-signed tokens, are not the failure the claims are about."""

    def guarded(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        if not factory_closes(runs[base]):
            return None, no_factory_close_in(base, runs[base])
        return predicate(run, runs)

    return guarded


def removes_factory_closes_of(base: str) -> Predicate:
    """The run of ``base``'s traffic, changed (moved to the local debug environment for Why #4, run under a variant
    for a fix), gets no factory close; untested when ``base`` has none itself (:func:`given_factory_closes_in`)."""
    return given_factory_closes_in(base, has_no_factory_close)


INJECTED_ID_FAILURE = ("the ID generator's failure is injected (startup.id_generator_fails; spec 3.2: it does not "
                       "fail on its own), so its fallback says nothing of what the environment triggers")


def unless_id_failure_injected(profile: Profile, predicate: Predicate) -> Predicate:
    """``predicate``, untested on a profile that injects the ID generator's failure (:data:`INJECTED_ID_FAILURE`)."""

    def guarded(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        if profile.startup.id_generator_fails:
            return None, INJECTED_ID_FAILURE
        return predicate(run, runs)

    return guarded


def local_environment_removes_validation_failure(base: str) -> Predicate:
    """The conclusion: the base run's closes are validation rejections and the local environment removes them."""

    def predicate(run: RunResult, runs: Mapping[str, RunResult]) -> tuple[Holds, str]:
        base_run = runs[base]
        closes, rejected = factory_closes(base_run), validation_rejections(base_run)
        if not closes:
            return None, no_factory_close_in(base, base_run)
        holds = len(rejected) == len(closes) and not factory_closes(run)
        return holds, (
            f"{base}: {len(rejected)} of {len(closes)} factory closes are validation rejections; "
            f"in the local environment: {close_tally(run)}"
        )

    return predicate


# ---------------------------------------------------------------------------
# The experiments


def _each(baseline: Baseline, names: Iterable[str], predicate: Predicate, variant: str = "original") -> list[Trial]:
    return [Trial(unchanged(baseline.profiles[name], variant), predicate) for name in names]


def _is_cloud_run_staging(profile: Profile) -> bool:
    """Deployed by Cloud Run (K_SERVICE set) as staging (ENVIRONMENT exactly "staging"), spec 7."""
    return profile.on_cloud_run and profile.env.get("ENVIRONMENT") == "staging"


def _probes(baseline: Baseline) -> list[Profile]:
    """The reference's single connection locally and in the staging environment."""
    reference, staging = baseline.profiles[REFERENCE], baseline.profiles[STAGING]
    return [reference, in_environment_of(reference, staging).profile]


USER_ID_SHAPES: dict[str, str] = {
    "a 21-digit Google subject id": "104729384756102938475",
    "a UUID": "5f0c2a9e-3b7d-4e61-9a2f-8c1d0e7b4a53",
    "an e-mail address": "jane.doe@example.com",
    "surrounding whitespace": "  padded-user-7  ",
    "a tab inside": "user\t42",
    "non-ASCII letters": "jürgen-müller-ßø",
    "300 characters": "u" * 300,
    "digits only": "12345",
}
TOKEN_SHAPES: dict[str, dict[str, object]] = {
    "an auth-service token via subprotocol": {"clients[0].token_via": "subprotocol", "clients[0].subprotocols": ("jwt-auth",)},
    "an auth-service token via query": {"clients[0].token_via": "query"},
    "the E2E suite's token": {"clients[0].token": "e2e_suite"},
    "the E2E suite's token and headers": {
        "clients[0].token": "e2e_suite", "clients[0].headers.X-Test-Type": "E2E",
        "clients[0].headers.X-E2E-Test": "true",
    },
    "an expired token": {"clients[0].token": "expired"},
    "a token of another issuer's key": {"clients[0].token": "bad_signature"},
    "an alg=none token": {"clients[0].token": "alg_none"},
}
ENVIRONMENT_VALUES: dict[str, str | None] = {
    "development": "development", "staging": "staging", "production": "production",
    "'staging '": "staging ", "Staging": "Staging", "unset": None,
}
STARTUP_STATES: dict[str, dict[str, object]] = {
    "startup completing after 10 s": {"startup.complete": False, "startup.complete_after_s": 10.0},
    "startup never completing": {"startup.complete": False},
    "no agent supervisor": {"startup.agent_supervisor": False},
    "no thread service": {"startup.thread_service": False},
}


def _shape_trials(baseline: Baseline, shapes: Mapping[str, Mapping[str, object]], predicate: Predicate) -> list[Trial]:
    return [
        Trial(variation(probe, change, factors), predicate)
        for probe in _probes(baseline)
        for change, factors in shapes.items()
    ]


def _design_environment_swap(baseline: Baseline) -> list[Trial]:
    reference = baseline.profiles[REFERENCE]
    to_local = [Trial(in_environment_of(baseline.profiles[name], reference), removes_factory_closes_of(name))
                for name in baseline.failing_besides_reference()]
    to_cloud = [Trial(in_environment_of(reference, baseline.profiles[name]), has_factory_close_past_authentication)
                for name in baseline.where(lambda p: p.on_cloud_run)]
    return to_local + to_cloud


def _design_user_ids(baseline: Baseline) -> list[Trial]:
    shapes = {f"user id {shape}": {"clients[0].user_id": value} for shape, value in USER_ID_SHAPES.items()}
    return _shape_trials(baseline, shapes, has_validation_rejection)


def _design_environment_values(baseline: Baseline) -> list[Trial]:
    """The staging probe (which has the staging secrets) under other ENVIRONMENT values, with and
    without K_SERVICE."""
    probe = _probes(baseline)[1]
    trials = []
    for shown, value in ENVIRONMENT_VALUES.items():
        for cloud in (True, False):
            change = f"ENVIRONMENT {shown}" + ("" if cloud else " and no K_SERVICE")
            factors: dict[str, object] = {"env.ENVIRONMENT": value} if value is not None else {}
            dropped = {"env.ENVIRONMENT"} | (set() if cloud else {"env.K_SERVICE"})
            trials.append(Trial(variation(probe, change, factors, drop=dropped.__contains__), id_generation_changes))
    return trials


def _design_environment_not_set(baseline: Baseline) -> list[Trial]:
    staging = baseline.profiles[STAGING]
    is_detection_signal = lambda p: p == "env.ENVIRONMENT" or p in {f"env.{v}" for v in CLOUD_RUN_VARIABLES}  # noqa: E731
    changes: dict[str, dict[str, object]] = {
        "ENVIRONMENT and Cloud Run variables unset": {},
        "ENVIRONMENT 'staging ' and no Cloud Run variables": {"env.ENVIRONMENT": "staging "},
        "ENVIRONMENT 'Staging\\n' and no Cloud Run variables": {"env.ENVIRONMENT": "Staging\n"},
    }
    varied = [Trial(variation(staging, change, factors, drop=is_detection_signal), strict_runs_and_rejects)
              for change, factors in changes.items()]
    shipped = _each(baseline, baseline.where(_staging_environment_unset_or_mis_set), strict_runs_and_rejects)
    return shipped + varied


def _staging_environment_unset_or_mis_set(profile: Profile) -> bool:
    """Not a local profile, and ENVIRONMENT unset or a staging value the detection's exact compare misses
    ('staging ', 'Staging\n'); ENVIRONMENT exactly "staging" is set correctly. Cloud Run or not."""
    if profile.runs_locally:
        return False
    environment = profile.env.get("ENVIRONMENT")
    return environment is None or (environment != "staging" and environment.strip().lower() == "staging")


def _design_readiness(baseline: Baseline) -> list[Trial]:
    ready = {"startup.complete": True, "startup.agent_supervisor": True, "startup.thread_service": True,
             "startup.id_generator_fails": False}
    return [Trial(variation(baseline.profiles[name], "every service ready at startup", ready),
                  given_factory_closes_in(name, has_no_failure))
            for name in baseline.failing()]


def _design_conclusion(baseline: Baseline) -> list[Trial]:
    reference = baseline.profiles[REFERENCE]
    return [Trial(in_environment_of(baseline.profiles[name], reference), local_environment_removes_validation_failure(name))
            for name in baseline.failing_besides_reference()]


def _design_environment_outcome(
    baseline: Baseline, environments: Sequence[str], predicate: Predicate,
    replayed: Callable[[str], Predicate] | None = None,
) -> list[Trial]:
    """A claim about an environment's outcome: each environment's own traffic, and every failing
    profile's traffic replayed in it (the environment alone, not its usual traffic, decides);
    ``replayed(failing)`` judges the replays when given (else ``predicate``)."""
    trials = _each(baseline, environments, predicate)
    for name in environments:
        environment = baseline.profiles[name]
        trials += [Trial(in_environment_of(baseline.profiles[failing], environment),
                         replayed(failing) if replayed else predicate)
                   for failing in baseline.failing() if failing != name]
    return trials


def _design_production_impact(baseline: Baseline) -> list[Trial]:
    """Production's own traffic, and every failing profile's traffic where production runs."""
    productions = baseline.where(lambda p: p.env.get("ENVIRONMENT") == "production")
    return _design_environment_outcome(baseline, productions, has_factory_close_past_authentication)


def _design_injected_id_failure(baseline: Baseline) -> list[Trial]:
    inject = {"startup.id_generator_fails": True}
    names = [REFERENCE, STAGING, *baseline.where(lambda p: not p.on_cloud_run and not p.runs_locally)]
    return [Trial(variation(baseline.profiles[name], "the ID generator failing", inject), fallback_ids_rejected)
            for name in dict.fromkeys(names)]


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis(
        "why1.validation_raises", "Why #1",
        "The 1011 'Factory SSOT validation failed' closes come from _validate_ssot_user_context_staging_safe() "
        "throwing validation errors (FactoryInitializationError caused by SSOT validation failure).",
        "Every 1011 factory close follows factory.validation = fail.",
        "all", lambda b: _each(b, b.profiles, closes_follow_validation_failure),
    ),
    Hypothesis(
        "why2.strict_validation_rejects", "Why #2",
        "Strict validation rejects the UserExecutionContext in staging (type, missing attributes or string checks).",
        "Every 1011 factory close ran strict validation and failed it.",
        "all", lambda b: _each(b, b.profiles, closes_follow_strict_rejection),
    ),
    Hypothesis(
        "why3.context_creation_differs", "Why #3",
        "The authentication service in staging GCP creates UserExecutionContext with different attribute "
        "patterns than expected by strict factory validation.",
        "The contexts each failing profile creates (handed to the factory's validation) are rejected by the "
        "backend's strict validation (spec 4.4), run on them directly: no condition of the spec forces strict "
        "mode without changing the authentication too.",
        "all", lambda b: [Trial(unchanged(b.profiles[name]), contexts_fail_strict_validation(b.profiles[name]))
                          for name in b.failing()],
    ),
    Hypothesis(
        "why4.environment_makes_it_fail", "Why #4",
        "GCP Cloud Run environment differences make the identical context creation fail validation in staging.",
        "A failing profile's traffic gets no factory close (1011) in the local debug environment, and the "
        "local debug traffic gets one in every Cloud Run environment.",
        "all", _design_environment_swap,
    ),
    Hypothesis(
        "why5.fallback_in_staging", "Why #5 (3) and its Evidence, table: ID Generation",
        "Staging triggers the UnifiedIdGenerator UUID fallback (it may time out there).",
        "The failing connections built their IDs with the fallback (untested where the profile injects the "
        "generator's failure).",
        "all", lambda b: [Trial(unchanged(b.profiles[name]),
                                unless_id_failure_injected(b.profiles[name], failures_used_fallback))
                          for name in b.failing()],
    ),
    Hypothesis(
        "why5.fallback_fails_validation", "Why #5 (3) and its Evidence",
        "The fallback creates IDs of a different format that may fail strict validation.",
        "With the ID generator failing (injected), some context with fallback IDs is rejected by validation.",
        "any", _design_injected_id_failure,
    ),
    Hypothesis(
        "why5.startup_timing", "Why #5 (1), table: Service Init",
        "Service dependency initialization timing in Cloud Run (async, timing-dependent) makes validation fail.",
        "Late or missing startup or dependencies lead to contexts rejected by validation.",
        "any", lambda b: _shape_trials(b, STARTUP_STATES, has_validation_rejection),
    ),
    Hypothesis(
        "why5.jwt_user_id_format", "Why #5 (2, 3), table: User ID Format",
        "Real JWT user ids with different formats, characters, encoding or whitespace fail string validation.",
        "Some user-id shape makes validation reject the context (locally or in staging).",
        "any", _design_user_ids,
    ),
    Hypothesis(
        "why5.auth_patterns", "Why #5 (2), table: Auth Flow",
        "Real GCP JWT authentication / service-account patterns differ from local test tokens and lead to "
        "contexts that fail validation.",
        "Some token kind or token transport makes validation reject the context.",
        "any", lambda b: _shape_trials(b, TOKEN_SHAPES, has_validation_rejection),
    ),
    Hypothesis(
        "why5.env_vars_id_patterns", "Why #5 (2)",
        "Different environment variable values affect ID generation patterns.",
        "Some ENVIRONMENT value (with or without K_SERVICE) changes how IDs are generated or gets the context "
        "rejected.",
        "any", _design_environment_values,
    ),
    Hypothesis(
        "why5.client_id_format", "Why #5 (3)",
        "Websocket Client ID: format inconsistencies between the staging auth flow and validation expectations.",
        "In some failing profile, validation run on the contexts its auth flow creates (strict, spec 4.4) flags "
        "their websocket_client_id.",
        "any", lambda b: [Trial(unchanged(b.profiles[name]), client_id_flagged(b.profiles[name])) for name in b.failing()],
    ),
    Hypothesis(
        "debug.local_run", "Debug Test Results (local)",
        "Locally the context is created with ids thread_websocket_factory_<ms>_1_<hex8>, run_..._2_ and "
        "req_..._3_; environment test selects strict validation, which passes; the factory creates a manager.",
        "local-debug's first connection: its context's ids have those formats, strict validation passes and "
        "factory.result is created.",
        "all", lambda b: [Trial(unchanged(b.profiles[REFERENCE]), reproduces_local_debug_output(b.profiles[REFERENCE]))],
    ),
    Hypothesis(
        "table.database", "Why #5 (1), table: Database",
        "Database: direct local connection vs service-to-service through GCP.",
        "A difference in database connectivity changes the outcome.",
        "any", lambda b: [],
        untestable_because="no run can test it: the WebSocket path (spec) has no database factor",
    ),
    Hypothesis(
        "table.resource_limits", "Why #5 (1), table: Resource Limits",
        "GCP Cloud Run constraints (no limits locally) contribute to the failure.",
        "A resource limit (memory, CPU, request time) changes the outcome.",
        "any", lambda b: [],
        untestable_because="no run can test it: the WebSocket path (spec) has no memory, CPU or request-time "
        "limit; removing the Cloud Run variables would test detection, which finding.detection_fails_in_gcp does",
    ),
    Hypothesis(
        "table.environment_detection", "Table: Environment Detection",
        "Locally 'test' selects strict validation; staging selects the staging accommodation.",
        "local-debug validates strictly; every ENVIRONMENT=staging profile validates relaxed.",
        "all", lambda b: [Trial(unchanged(b.profiles[REFERENCE]), expected_validation_mode("strict"))]
        + _each(b, b.where(lambda p: p.env.get("ENVIRONMENT") == "staging"), expected_validation_mode("relaxed")),
    ),
    Hypothesis(
        "finding.detection_fails_in_gcp", "Critical finding",
        "Environment detection may not be working in GCP staging, so strict validation runs instead of the "
        "staging accommodation.",
        "Some connection on a Cloud Run profile runs strict validation.",
        "any", lambda b: _each(b, b.where(lambda p: p.on_cloud_run), runs_strict_validation),
    ),
    Hypothesis(
        "finding.environment_not_set", "Environment detection issues",
        "If `ENVIRONMENT` variable is not set correctly in staging, or if the staging accommodation logic has "
        "other issues, strict validation runs and fails.",
        "With ENVIRONMENT unset or mis-set in a staging deployment, strict validation runs and rejects some "
        "context (strict validation never running does not meet it); 'other issues' names no condition a run "
        "can set.",
        "any", _design_environment_not_set,
    ),
    Hypothesis(
        "fix.v1", "Specific Code Fix Recommendation (variant V1)",
        "The immediate fix, enhanced environment detection with logging (the report's code keeps the K_SERVICE-only "
        "Cloud Run check, drops E2E_TEST_ENV == 'staging' from the E2E check and adds a 'VALIDATION ENV DEBUG' log "
        "line), will restore WebSocket functionality; tested as spec 8's V1 (Cloud Run also from K_REVISION, "
        "K_CONFIGURATION, GOOGLE_CLOUD_PROJECT, GAE_SERVICE or CLOUD_RUN_INSTANCE_ID; E2E also TESTING == '1'; "
        "relaxed also for a GOOGLE_CLOUD_PROJECT containing 'staging'; with the log line).",
        "Every failing profile has no factory close (1011 Factory SSOT validation failed) under V1.",
        "all", lambda b: [Trial(unchanged(b.profiles[name], "V1"), removes_factory_closes_of(name))
                          for name in b.failing()],
    ),
    Hypothesis(
        "action.service_readiness", "Immediate action 3",
        "Ensuring UnifiedIdGenerator and its dependencies are ready before WebSocket handling removes the failure.",
        "With every service ready at startup, the failing profiles with a factory close have no failing "
        "connection (1008 auth refusals aside).",
        "all", _design_readiness,
    ),
    Hypothesis(
        "action.permissive_staging_validation", "Immediate action 2 (variant V2)",
        "More permissive staging validation that handles GCP-specific ID formats removes the failure.",
        "Every failing profile has no factory close (1011 Factory SSOT validation failed) under V2 (relaxed "
        "validation almost everywhere).",
        "all", lambda b: _each(b, b.failing(), no_factory_close_though_unchanged("V2", b.failing()), variant="V2"),
    ),
    Hypothesis(
        "summary.local_works", "Executive summary",
        "In the local/dev environment factory validation works perfectly.",
        "In every local profile (test, development, pytest) every factory validation passes, on its own traffic "
        "and on every failing profile's traffic replayed in it.",
        "all", lambda b: _design_environment_outcome(b, b.where(lambda p: p.runs_locally), every_validation_passes),
        by_traffic=True,
    ),
    Hypothesis(
        "summary.identical_code_path", "Executive summary (evidence)",
        "The local debug run exercises the identical code path that fails in staging.",
        "The failing connection's decision trace agrees with the local debug run's up to the decision that "
        "failed it.",
        "all", lambda b: _each(b, b.failing_besides_reference(), same_path_as_reference),
    ),
    Hypothesis(
        "impact.local_works", "Business impact",
        "Local/Dev: WebSocket functionality works perfectly.",
        "No connection of a local profile (test, development, pytest) fails (1008 auth refusals aside), on its "
        "own traffic and on the traffic of every failing profile with a factory close replayed in it.",
        "all", lambda b: _design_environment_outcome(b, b.where(lambda p: p.runs_locally), has_no_failure,
                                                     lambda failing: given_factory_closes_in(failing, has_no_failure)),
        by_traffic=True,
    ),
    Hypothesis(
        "impact.production", "Business impact",
        "Production likely has similar issues to staging.",
        "The production profile, or the traffic of a failing profile run in production's environment, "
        "shows 1011 'Factory SSOT validation failed' closes.",
        "any", _design_production_impact, by_traffic=True,
    ),
    Hypothesis(
        "impact.staging_unavailable", "Business impact",
        "Staging: WebSocket connections fail with 1011 errors; core chat functionality unavailable in staging.",
        "In each Cloud Run staging profile some user gets no working connection and a 1011 close (the most "
        "generous reading of 'unavailable': unavailable to one user at least, by the failures the claim names; a "
        "user refused for another reason, e.g. a bad token, does not count).",
        "all", lambda b: _each(b, b.where(_is_cloud_run_staging), some_user_never_served),
    ),
    Hypothesis(
        "conclusion.root_cause", "Conclusion",
        "Definitive root cause: GCP staging environment differences create contexts that fail strict SSOT "
        "validation.",
        "Each failing profile's factory closes are validation rejections, and its traffic in the local "
        "environment has none.",
        "all", _design_conclusion,
    ),
    Hypothesis(
        "next.enhanced_logging", "Next steps 1 (V1's log line)",
        "Immediate: add enhanced logging to staging validation to identify the exact failure point.",
        "For each failing profile with a factory close, a log line V1 (the report's fix with its 'VALIDATION ENV "
        "DEBUG' line) adds to the run carries the cause of the original's failing connections.",
        "all", lambda b: [Trial(unchanged(b.profiles[name], "V1"), logging_names_the_refusal(b.profiles[name], "V1"))
                          for name in b.failing()],
    ),
)


# ---------------------------------------------------------------------------
# The ledger


LEDGER_COLUMNS = ("claim", "source in the report", "verdict", "evidence")


@dataclass(frozen=True)
class Ledger:
    """Every hypothesis of the report with its verdict, in the report's order."""

    findings: tuple[Finding, ...]
    runs_made: int
    """Distinct runs the claims were tested on (one run can test several claims)."""

    def finding(self, key: str) -> Finding:
        for finding in self.findings:
            if finding.key == key:
                return finding
        raise KeyError(key)

    def counts(self) -> dict[str, int]:
        counts = Counter(f.verdict.value for f in self.findings)
        return {verdict.value: counts.get(verdict.value, 0) for verdict in Verdict}

    def tested(self) -> int:
        """Claims tested with at least one run (a claim no run can test is counted apart)."""
        return sum(1 for f in self.findings if any(o.holds is not None for o in f.observations))

    def claims_text(self) -> str:
        """``N claims of the report (M tested with runs)``: a claim no run can test is counted apart."""
        return f"{plural(len(self.findings), 'claim')} of the report ({self.tested()} tested with runs)"

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"{plural(len(self.findings), 'claim')} of the report, {self.tested()} of them tested with "
            f"{plural(self.runs_made, 'distinct run')}: " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
        )

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(f.key, f.hypothesis.source, f.verdict.value, f.evidence()) for f in self.findings]

    def to_text(self) -> str:
        """:meth:`summary` over the table of :meth:`rows` (notebook 06 prints it)."""
        return self.summary() + "\n" + format_table(LEDGER_COLUMNS, self.rows())

    def _repr_markdown_(self) -> str:
        return markdown_table(LEDGER_COLUMNS, self.rows())

    def __repr__(self) -> str:
        return f"Ledger({self.summary()})"


def run_all(specs: Iterable[RunSpec], done: Mapping[str, RunResult]) -> dict[str, RunResult]:
    """``done`` plus a run of every spec whose label is not in it yet.

    Raises:
        ValueError: two specs share a label but differ.
    """
    runs = dict(done)
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.label in seen and seen[spec.label] != spec:
            raise ValueError(f"two different runs are labelled {spec.label!r}")
        seen[spec.label] = spec
        if spec.label not in runs:
            runs[spec.label] = simulate(spec.profile, spec.variant)
    return runs


def baseline_of(profiles: Sequence[Profile]) -> Baseline:
    by_name = {profile.name: profile for profile in profiles}
    return Baseline(by_name, {name: simulate(profile) for name, profile in by_name.items()})


def with_passing_reference(baseline: Baseline) -> Baseline:
    """``baseline``, refused when its reference (the report's passing local debug run) fails: the claims compare
    the failing profiles with it (same path, its environment, its auth flow).

    Raises:
        NotebookParameterError: naming ``profiles_dir`` (notebook 03's parameter), the profile set that makes it fail.
    """
    run = baseline.runs.get(REFERENCE)
    if run is not None and run.failures:
        raise NotebookParameterError(
            "profiles_dir", f"{REFERENCE}, the ledger's reference (the report's passing local debug run), fails under "
            f"the original code ({len(run.failures)} of {plural(len(run.connections), 'connection')}: "
            f"{close_tally(run)}); the reference must be a profile whose connections all pass")
    return baseline


def ledger_from(baseline: Baseline, hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> Ledger:
    """Design every hypothesis's experiment on ``baseline``, make the runs, compute the verdicts."""
    designs = [(hypothesis, tuple(hypothesis.design(baseline))) for hypothesis in hypotheses]
    runs = run_all((trial.run for _, trials in designs for trial in trials), baseline.runs)
    findings = tuple(evaluate(hypothesis, trials, runs) for hypothesis, trials in designs)
    tested_on = {trial.run.label for _, trials in designs for trial in trials}
    return Ledger(findings, runs_made=len(tested_on))


def registered_hypothesis(key: str) -> Hypothesis:
    """The hypothesis of HYPOTHESES with this key."""
    return next(hypothesis for hypothesis in HYPOTHESES if hypothesis.key == key)


def build_ledger(profiles_dir: str | None = None, hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> Ledger:
    """The ledger over the shipped profiles (plus those of ``profiles_dir``, else of
    ``INVESTIGATION_PROFILES_DIR``); the one of HYPOTHESES is made once per grid run (run_cache).

    Raises:
        NotebookParameterError: the profiles make the reference fail (:func:`with_passing_reference`).
    """
    profiles = list_profiles(profiles_dir)
    if hypotheses is not HYPOTHESES:
        return ledger_from(with_passing_reference(baseline_of(profiles)), hypotheses)
    key = "build_ledger:" + "\n".join(profile.model_dump_json() for profile in profiles)
    return shared(key, lambda: ledger_from(with_passing_reference(baseline_of(profiles))))


# ---------------------------------------------------------------------------
# Sentences for notebooks (built from the ledger, never typed)


def _markdown(text: str) -> object:
    from IPython.display import Markdown

    return Markdown(text)


def ledger_verdicts(ledger: Ledger) -> object:
    """One bullet per verdict class listing its claims."""
    lines = []
    for verdict in Verdict:
        keys = [f"`{f.key}`" for f in ledger.findings if f.verdict is verdict]
        lines.append(f"- **{verdict.value}** ({len(keys)}): " + (", ".join(keys) if keys else "none"))
    return _markdown("\n".join(lines))


CLAIM_SAYS = {"all": "something holds in every case", "any": "something can happen"}
"""What a lesson says the claims of each quantifier claim."""
WHY_REFUTED = {
    "all": ("each was refuted by a run built to test it", "a run built to test it refuted it"),
    "any": ("for each, none of the runs built to provoke it made it happen, so each was refuted",
            "none of the runs built to provoke it made it happen, so it was refuted"),
}
"""Per quantifier, why its refuted claims were refuted: (several claims, one claim)."""
WHY_SUPPORTED = {
    "all": ("each held on every run that tested it", "it held on every run that tested it"),
    "any": ("for each, a run made it happen", "a run made it happen"),
}
"""Per quantifier, why its supported claims were supported: (several claims, one claim)."""


def _group(findings: Sequence[Finding], verdict: Verdict, quantifier: str) -> list[Finding]:
    return [f for f in findings if f.verdict is verdict and f.hypothesis.quantifier == quantifier]


def _group_head(count: int, quantifier: str, why: tuple[str, str]) -> str:
    """``11 claims say something holds in every case; each was refuted by a run built to test it``."""
    says = "claim says" if count == 1 else "claims say"
    return f"{count} {says} {CLAIM_SAYS[quantifier]}; {why[1] if count == 1 else why[0]}"


def _example(finding: Finding) -> str:
    """```why1.validation_raises`: prediction held on 0 of 4 runs; r0: <its evidence>``."""
    first = finding.deciding_observations()[0]
    return f"`{finding.key}`: {finding.held_on()}; {first.run}: {first.evidence}"


def _refuted_lines(ledger: Ledger) -> list[str]:
    """One line per quantifier with refuted claims, worded by that quantifier's rule, with its first claim."""
    lines = []
    for quantifier in ("all", "any"):
        group = _group(ledger.findings, Verdict.REFUTED, quantifier)
        if group:
            example = f"({'' if len(group) == 1 else 'e.g. '}{_example(group[0])})"
            lines.append(f"- {_group_head(len(group), quantifier, WHY_REFUTED[quantifier])} {example}.")
    return lines or [f"- 0 of {len(ledger.findings)} claims are refuted."]


def _supported_lines(ledger: Ledger) -> list[str]:
    """One line per quantifier with supported claims, worded by that quantifier's rule."""
    lines = []
    for quantifier in ("all", "any"):
        group = _group(ledger.findings, Verdict.SUPPORTED, quantifier)
        if group:
            keys = ", ".join(f"`{f.key}`" for f in group)
            lines.append(f"- {_group_head(len(group), quantifier, WHY_SUPPORTED[quantifier])}: {keys}.")
    return lines or ["- Claims the runs support: none."]


def _v1_line(finding: Finding) -> str:
    """The factory closes V1 leaves (the claim's measure), summed over every run where its prediction failed, and
    the other failing connections of those runs apart."""
    failing = finding.deciding_observations()
    totals: Counter[str] = Counter()
    for observation in failing:
        totals.update(dict(observation.failures))
    factory_close = f"1011 {FACTORY_FAILED_REASON}"
    kept = totals.pop(factory_close, 0)
    others = (f"; besides, {plural(sum(totals.values()), 'other failing connection')} on those runs ("
              + ", ".join(f"{close} x{n}" for close, n in sorted(totals.items())) + ")") if totals else ""
    return (f"- The recommended fix (V1) leaves {plural(kept, 'factory close')} ({factory_close}, what the claim is "
            f"judged on) over {plural(len(failing), 'run')} ({', '.join(o.run for o in failing)}){others}.")


def ledger_lessons(ledger: Ledger) -> object:
    """Lessons computed from the ledger: which parts of the report's chain held, each by its claim's rule."""
    lines = [*_refuted_lines(ledger), *_supported_lines(ledger)]
    if ledger.finding("fix.v1").verdict is Verdict.REFUTED:
        lines.append(_v1_line(ledger.finding("fix.v1")))
    return _markdown("\n".join(lines))


def ledger_key_result(ledger: Ledger) -> str:
    return ledger.summary()


def finding_details(ledger: Ledger, key: str) -> str:
    """Every observation of one claim, as a text table."""
    finding = ledger.finding(key)
    rows = [(o.run, {True: "held", False: "not met", None: "untested"}[o.holds], o.evidence)
            for o in finding.observations]
    return f"{key}: {finding.verdict.value}\n" + format_table(("run", "prediction", "evidence"), rows)
