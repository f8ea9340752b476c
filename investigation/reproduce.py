"""Running profiles for the notebooks, and the sentences notebook 01 states about a run.

    run = run_profile("staging-e2e")
    print(failure_trace(run))
    reproduce_verdicts(run)          # Markdown computed from the run

Profiles are looked up by name in data/profiles plus, when the environment
variable ``INVESTIGATION_PROFILES_DIR`` names a directory, the profiles there
(a name there wins): ``profiles.profile_paths`` falls back to that variable when
given no directory. ``investigation run --profiles-dir DIR`` sets it for the
kernels it starts, so every notebook sees the same profiles as the command line.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from IPython.display import Markdown

from investigation.analysis.cap_refusals import managers_held_before
from investigation.analysis.hypotheses import factory_reason_closes
from investigation.backend.factory import ULTRA_DEFENSIVE_ENVIRONMENTS
from investigation.backend.route import FACTORY_FAILED_REASON
from investigation.backend.variants import ORIGINAL_CLOUD_SIGNALS, ORIGINAL_E2E_FLAGS, Variant, get_variant
from investigation.charts.divergence import visible_outcome
from investigation.charts.timeline import UserInstanceSeries, count_at, timeline_series
from investigation.notebook_errors import checked_profile, checked_variant
from investigation.profiles import Profile, list_profiles, load_profile
from investigation.report import and_list, close_counts_text, close_summary, never_established_text, ordinal, plural
from investigation.simulate import simulate
from investigation.trace import (
    REPEAT_JOIN,
    ConnectionResult,
    RunResult,
    close_code_label,
    identified_users,
    is_adverse,
)

TRACE_WIDTH = 100

#: What each routing of a profile means (``profiles.Profile.routing``'s documented meaning).
ROUTING_TEXTS: dict[str, str] = {
    "sticky": "sticky routing (each client stays on one instance)",
    "round_robin": "round-robin routing (connection n goes to instance n mod instances)",
}

CAP_RULE = (
    "At the cap the factory refuses a new manager unless emergency cleanup frees a stale one (spec 4.2), "
    "so whether such traffic passes depends on its timing, not only on the environment (the timeline table)."
)


def load_named_profile(name: str) -> Profile:
    """The profile called ``name`` (extra profiles directory first, then data/profiles)."""
    return load_profile(name)


def profile_names() -> list[str]:
    """Every known profile name, sorted."""
    return [profile.name for profile in list_profiles()]


def run_profile(name: str, variant: str = "original") -> RunResult:
    """Simulate the profile called ``name`` under ``variant``.

    Raises:
        NotebookParameterError: naming ``profile`` or ``variant`` (notebook 01's parameters).
    """
    return simulate(checked_profile("profile", name), checked_variant("variant", variant))


def run_profiles(
    names: str | Sequence[str] | None = None, variant: str = "original", reference: str | None = None
) -> dict[str, RunResult]:
    """Simulate each named profile (None = every profile) and ``reference``, keyed and sorted by name.

    A single name may be given as a string. ``reference`` (notebook 02's parameter) is run
    even when ``names`` leaves it out, since every other profile is compared with it.

    Raises:
        NotebookParameterError: naming ``profiles``, ``reference`` or ``variant``.
    """
    chosen = profile_names() if names is None else [names] if isinstance(names, str) else list(names)
    profiles = {name: checked_profile("profiles", name) for name in chosen}
    if reference is not None and reference not in profiles:
        profiles[reference] = checked_profile("reference", reference)
    checked_variant("variant", variant)
    return {name: simulate(profiles[name], variant) for name in sorted(profiles)}


def run_overview(run: RunResult) -> Markdown:
    """What ran: clients, users, instances, connections and how they ended."""
    profile = load_named_profile(run.profile)
    end_s = max((c.ended_at_s for c in run.connections), default=0.0)
    return Markdown(
        f"Profile **{run.profile}** under variant **{run.variant}**: {profile.description}\n\n"
        f"The run opened **{plural(len(run.connections), 'connection')}** from {plural(len(profile.clients), 'client')} "
        f"({users_text(run.connections)}) on {plural(profile.instances, 'backend instance')} "
        f"with {ROUTING_TEXTS[profile.routing]}, over {end_s:g} s of virtual time. "
        f"Close codes: **{close_counts_text(run)}**."
    )


def users_text(connections: Sequence[ConnectionResult]) -> str:
    """``2 distinct users``, counted as authentication established them (``ConnectionResult.identified_user``),
    and the connections whose user it never established, when any."""
    text = plural(len(identified_users(connections)), "distinct user")
    if never_established := never_established_text(connections):
        text += f", besides {never_established}"
    return text


def shown_connection(run: RunResult) -> ConnectionResult | None:
    """The connection whose trace is shown: the first failing one, else the first."""
    return run.first_failure() or (run.connections[0] if run.connections else None)


def connection_in_run(run: RunResult, connection: ConnectionResult) -> str:
    """``#16 of the run (e2e-process-2's 6th)``: ``#`` is the place in the run's start order, from 0;
    the client's own count of its connections, from 1, follows in parentheses."""
    nth = sum(1 for other in run.connections if other.client == connection.client and other.index <= connection.index)
    return f"#{connection.index} of the run ({connection.client}'s {ordinal(nth)})"


def failure_trace(run: RunResult) -> str:
    """The decision trace and cause chain of the first failing connection (else the first)."""
    connection = shown_connection(run)
    if connection is None:
        return f"profile {run.profile}: no connection was opened"
    role = "first failing connection" if connection.failed else "no connection failed; first connection"
    close = close_code_label(connection.close_code)
    lines = [
        f"{role}: {connection_in_run(run, connection)}, {_user_words(connection)}, "
        f"instance {connection.instance}, started at {connection.at_s:g} s",
        f"close: {close} {connection.close_reason or ''}".rstrip(),
        "",
        "decision trace (pipeline order):",
    ]
    deciding = connection.deciding_decision()
    for number, decision in enumerate(connection.decisions, start=1):
        marker = "  <- deciding" if decision == deciding else ""
        lines.append(f"  {number:2d}. {decision.point} = {visible_outcome(decision.outcome)}{marker}")
    lines.append("")
    lines.append("cause chain (outermost first):" if connection.cause_chain else "cause chain: none")
    for link in connection.cause_chain:
        wrapped = textwrap.wrap(f"{link.type}: {link.message}", TRACE_WIDTH - 4)
        lines.extend(["  - " + wrapped[0], *("    " + rest for rest in wrapped[1:])])
    widened = validation_rule_widening(get_variant(run.variant))
    if widened:
        lines.extend(["", *textwrap.wrap(widened, TRACE_WIDTH)])
    return "\n".join(lines)


def validation_rule_widening(variant: Variant) -> str:
    """How ``variant`` widens the original's rule for relaxed validation (spec 8), computed from its switches;
    empty when it keeps the original's rule (the rule the chapter's text states)."""
    clauses = []
    extra_signals = [name for name in variant.cloud_signals if name not in ORIGINAL_CLOUD_SIGNALS]
    if extra_signals:
        clauses.append(f"{and_list(extra_signals)} non-empty also count as Cloud Run")
    extra_flags = [name for name in variant.e2e_flags if name not in ORIGINAL_E2E_FLAGS]
    if extra_flags:
        flags = "also counts as an E2E flag" if len(extra_flags) == 1 else "also count as E2E flags"
        clauses.append(f'{and_list(extra_flags)} equal to "1" {flags}')
    if variant.relax_for_staging_gcp_project:
        clauses.append('a GOOGLE_CLOUD_PROJECT containing "staging" relaxes it')
    if variant.ultra_defensive:
        *first, last = sorted(ULTRA_DEFENSIVE_ENVIRONMENTS)
        clauses.append(f"any GOOGLE_CLOUD_PROJECT, a PORT, or an ENVIRONMENT (lower-cased) of {', '.join(first)} "
                       f"or {last} relaxes it")
    if not clauses:
        return ""
    return f"validation mode under {variant.name}: the original's rule widened (spec 8): {'; '.join(clauses)}."


def _user_words(connection: ConnectionResult) -> str:
    """``user 2000...4``, or ``user never established by the server (planned as 2000...6)``: a client's planned
    id is no user (``ConnectionResult.identified_user``)."""
    user = connection.identified_user()
    return f"user {user}" if user is not None else f"user never established by the server (planned as {connection.user_id})"


def deciding_counts(connections: Sequence[ConnectionResult]) -> Counter[str]:
    """How many connections each deciding decision (``point=outcome``) decided."""
    return Counter(
        f"{d.point}={d.outcome}" for d in (c.deciding_decision() for c in connections) if d is not None
    )


def failures_at_cap(run: RunResult) -> int:
    """Failing connections that started while their user held the cap on their instance, not counting
    a connection's own manager (``cap_refusals.managers_held_before``)."""
    return sum(managers_held_before(run, c) >= run.max_managers_per_user for c in run.failures)


def _created_by_start_agent(connection: ConnectionResult) -> int:
    """Managers ``connection``'s start_agent messages created (``route.start_agent`` = manager_left_behind=n)."""
    return connection.tally("route.start_agent").get("manager_left_behind", 0)


def managers_created_by_start_agent(run: RunResult) -> int:
    """Managers created by start_agent messages (spec 1, step 12: the route never releases them).

    Cleanup may still release them later (spec 4.2); ``start_agent_managers_at_end`` says what the
    run's count history can tell about that.
    """
    return sum(_created_by_start_agent(connection) for connection in run.connections)


@dataclass(frozen=True)
class StartAgentManagers:
    """Managers start_agent messages created, and what the count history says of them at the run's end.

    The history records each release of a user's manager on an instance, not which manager went, so
    the managers still registered at the end are known only between two bounds: per user and
    instance, at least created minus released there, at most the smaller of created and the final count.
    """

    created: int
    released_there: int
    still_registered_min: int
    still_registered_max: int


def start_agent_managers_at_end(run: RunResult) -> StartAgentManagers:
    """start_agent managers created, releases of their users' managers on their instances, and the bounds."""
    created: Counter[tuple[str, int]] = Counter()
    for connection in run.connections:
        created[(str(connection.user_id), connection.instance)] += _created_by_start_agent(connection)
    released: Counter[tuple[str, int]] = Counter()
    final: dict[tuple[str, int], int] = {}
    for change in run.manager_counts:
        key = (change.user_id, change.instance)
        released[key] += change.count < final.get(key, 0)
        final[key] = change.count
    keys = [key for key, count in created.items() if count]
    return StartAgentManagers(
        created=sum(created[key] for key in keys),
        released_there=sum(released[key] for key in keys),
        still_registered_min=sum(max(0, created[key] - released[key]) for key in keys),
        still_registered_max=sum(min(created[key], final.get(key, 0)) for key in keys),
    )


def _still_registered_text(managers: StartAgentManagers) -> str:
    """``all 6 ...``, ``4 of them ...`` or ``between 0 and 4 of them were still registered when the run ended``."""
    low, high = managers.still_registered_min, managers.still_registered_max
    end = "still registered when the run ended"
    if low == high == managers.created:
        return f"it was {end}" if low == 1 else f"all {low} were {end}"
    if low == high:
        return f"none of them was {end}" if low == 0 else f"{low} of them {'was' if low == 1 else 'were'} {end}"
    return f"between {low} and {high} of them were {end}"


def start_agent_refusals(run: RunResult) -> Counter[str]:
    """start_agent messages the agent handler could not get a manager for, by the tallied outcome
    (``refused_<exception>``): the handler catches the error and closes nothing (spec 1, step 12)."""
    refused: Counter[str] = Counter()
    for connection in run.connections:
        refused.update({name: n for name, n in connection.tally("route.start_agent").items()
                        if name.startswith("refused_")})
    return refused


def start_agent_refusals_text(run: RunResult, *, more: bool = False) -> str:
    """``2 [more] were refused (`route.start_agent` = refused_FactoryInitializationError=2), which the handler
    catches without closing the connection`` (spec 1, step 12; the caller cites it)."""
    refused = start_agent_refusals(run)
    total = sum(refused.values())
    tallies = ", ".join(f"{name}={n}" for name, n in sorted(refused.items()))
    return (f"{total}{' more' if more else ''} {'was' if total == 1 else 'were'} refused (`route.start_agent` = "
            f"{tallies}), which the handler catches without closing the connection")


def _system_events(run: RunResult, event: str) -> list[dict[str, Any]]:
    """The data of every ``system_message`` frame of ``event`` the server sent in ``run``."""
    return [frame.get("data", {}) for connection in run.connections for frame in connection.frames
            if frame.get("type") == "system_message" and frame.get("data", {}).get("event") == event]


def fallback_answers(run: RunResult) -> int:
    """start_agent messages the fallback handler answered: each gets an ``agent_unavailable`` frame (spec 1, step 10)."""
    return len(_system_events(run, "agent_unavailable"))


def _missing_dependencies(run: RunResult) -> list[str]:
    """The dependencies the fallback handler's frames name as missing, sorted."""
    return sorted({name for data in _system_events(run, "fallback_handler") for name in data.get("missing", ())})


def _fallback_text(run: RunResult, answered: int) -> str:
    """``8 `start_agent` messages reached the fallback handler ... and were each answered "agent_unavailable"``."""
    missing = _missing_dependencies(run)
    why = f", installed because {and_list(missing)} {'was' if len(missing) == 1 else 'were'} missing" if missing else ""
    each = "was" if answered == 1 else "were each"
    return (f"{plural(answered, '`start_agent` message')} reached the fallback handler{why} (spec 1, step 10), "
            f"and {each} answered \"agent_unavailable\" without creating a manager")


def start_agent_text(run: RunResult, *, why: bool = True) -> str:
    """What start_agent messages did to the manager count, as far as the run's data tells.

    ``why``: say how the count history bounds the managers still registered at the end.
    """
    handled = any(c.tally("route.start_agent") for c in run.connections)
    answered = fallback_answers(run)
    if not handled and not answered:
        return "no `start_agent` message was handled"
    parts = [_agent_handler_text(run, why)] if handled else []
    return "; ".join(parts + ([_fallback_text(run, answered)] if answered else []))


def _agent_handler_text(run: RunResult, why: bool) -> str:
    """What the agent handler's start_agent messages did: managers created (and left), messages refused."""
    managers = start_agent_managers_at_end(run)
    if not managers.created:
        return f"`start_agent` messages created no manager: {start_agent_refusals_text(run)} (spec 1, step 12)"
    refused = f", and {start_agent_refusals_text(run, more=True)}" if start_agent_refusals(run) else ""
    head = (f"`start_agent` messages created {plural(managers.created, 'manager')} that the route never releases"
            f"{refused} (spec 1, step 12)")
    if not why:
        return f"{head}; {_still_registered_text(managers)}"
    if not managers.released_there:
        return f"{head}; no manager of their users was released on their instances, so {_still_registered_text(managers)}"
    released = plural(managers.released_there, "manager")
    return (
        f"{head}; {released} of the same users on the same instances {'was' if managers.released_there == 1 else 'were'} "
        f"released during the run, and the count history does not record which, so {_still_registered_text(managers)} "
        "(the timeline table)"
    )


def validation_by_mode(connections: Sequence[ConnectionResult]) -> dict[str, tuple[int, int]]:
    """Per ``factory.validation_mode``: connections whose SSOT validation ran in it, and how many it refused.

    Connections that never reached ``factory.validation`` are left out. Sorted by count, highest first, then mode.
    """
    ran: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for connection in connections:
        outcome = connection.outcome("factory.validation")
        if outcome is None:
            continue
        mode = connection.outcome("factory.validation_mode") or "unrecorded"
        ran[mode] += 1
        refused[mode] += is_adverse("factory.validation", outcome)
    ordered = sorted(ran, key=lambda mode: (-ran[mode], mode))
    return {mode: (ran[mode], refused[mode]) for mode in ordered}


def validation_mode_text(run: RunResult) -> str:
    """``SSOT validation ran strict on 21 of 21 connections and refused 0`` (modes, refusals, connections left out)."""
    total = len(run.connections)
    modes = validation_by_mode(run.connections)
    if not modes:
        return f"SSOT validation ran on 0 of {plural(total, 'connection')}: none reached it"
    reached = sum(ran for ran, _ in modes.values())
    if len(modes) == 1:
        (mode, (ran, refused)), = modes.items()
        text = f"SSOT validation ran {mode} on {ran} of {plural(total, 'connection')} and refused {refused}"
    else:
        parts = ", ".join(f"{mode} on {ran} (refused {refused})" for mode, (ran, refused) in modes.items())
        text = f"SSOT validation ran on {reached} of {plural(total, 'connection')}: {parts}"
    missed = total - reached
    if missed:
        text += f"; {plural(missed, 'connection')} never reached it and {'is' if missed == 1 else 'are'} left out"
    return text


def validation_passed(connections: Sequence[ConnectionResult]) -> list[ConnectionResult]:
    """Connections whose ``factory.validation`` (the SSOT validation) passed."""
    return [c for c in connections if c.outcome("factory.validation") == "pass"]


def validation_outcomes(connections: Sequence[ConnectionResult]) -> Counter[str]:
    """Outcomes of ``factory.validation`` (``not reached`` when a connection never got there)."""
    return Counter(c.outcome("factory.validation") or "not reached" for c in connections)


def validation_modes(connections: Sequence[ConnectionResult]) -> Counter[str]:
    """Outcomes of ``factory.validation_mode`` (``not reached`` when a connection never got there)."""
    return Counter(c.outcome("factory.validation_mode") or "not reached" for c in connections)


def _counter_text(counter: Counter[str]) -> str:
    """``key (count)`` per entry, joined by ", ": highest count first, equal counts by key ascending."""
    return ", ".join(f"{key} ({n})" for key, n in sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _deciding_text(connections: Sequence[ConnectionResult]) -> str:
    """``its deciding decision was X`` for one connection, ``their deciding decisions were X (n), ...`` else."""
    counts = deciding_counts(connections)
    if len(connections) == 1:
        return f"its deciding decision was {next(iter(counts), '-')}"
    return f"their deciding decisions were {_counter_text(counts)}"


def _failing_text(failures: Sequence[ConnectionResult], counter: Counter[str]) -> str:
    """``the one failing connection: X`` for one failure, ``the failing connections: X (n), ...`` else."""
    if len(failures) == 1:
        return f"the one failing connection: {next(iter(counter), '-')}"
    return f"the failing connections: {_counter_text(counter)}"


def _share_text(part: int, whole: int, noun: str) -> str:
    """``the one connection``, ``each of the 10 connections``, ``3 of the 10 connections``."""
    if part == whole == 1:
        return f"the one {noun}"
    return f"{'each' if part == whole else part} of the {plural(whole, noun)}"


def _reproduced_counts_text(factory_closes: int, failures: int, connections: int) -> str:
    """``10 of 36 connections``, with ``; 12 connections failed in all`` only when that count differs."""
    text = f"{factory_closes} of {plural(connections, 'connection')}"
    if failures == 0:
        return f"{text}; no connection failed"
    if failures != factory_closes:
        return f"{text}; {plural(failures, 'connection')} failed in all"
    return text


def cap_holds(run: RunResult) -> list[tuple[UserInstanceSeries, float, float | None]]:
    """Each time a user held the cap on an instance: (series, from, until or None), by start time."""
    holds = [
        (series, start, until)
        for series in timeline_series(run)
        for start, until in series.periods_at(run.max_managers_per_user)
    ]
    return sorted(holds, key=lambda hold: (hold[1], hold[0].user_id, hold[0].instance))


def _cap_lesson_without_failure(run: RunResult) -> str:
    """What the cap says about a run without a failure: who held it when, or how close anyone came."""
    cap = run.max_managers_per_user
    holds = cap_holds(run)
    if not holds:
        peak = max((series.peak for series in timeline_series(run)), default=0)
        return (f"No user reached the per-user cap of {plural(cap, 'manager')} on an instance "
                f"(the most held: {peak}; the timeline table).")
    spans = "; ".join(
        f"by user {series.user_id} on instance {series.instance} from {start:g} s "
        + ("until the run ended" if until is None else f"to {until:g} s ({_span_end_text(run, series, until)})")
        for series, start, until in holds
    )
    return " ".join(
        [f"No connection failed, yet the per-user cap of {plural(cap, 'manager')} was held: {spans}.",
         *_freed_at_cap_text(run), _cap_rule_text(run)]
    )


def _cap_rule_text(run: RunResult) -> str:
    """``CAP_RULE``, or, when start_agent messages were refused, that the refusal already happened unseen."""
    if not start_agent_refusals(run):
        return CAP_RULE
    return ("At the cap the factory refuses a new manager unless emergency cleanup frees a stale one (spec 4.2), "
            f"and this run's traffic was refused without a close: of its `start_agent` messages "
            f"{start_agent_refusals_text(run)} (spec 1, step 12; the Verdicts).")


def count_changes_at(run: RunResult, series: UserInstanceSeries, at_s: float) -> tuple[int, int, int]:
    """Managers released and created at the instant ``at_s`` for ``series``' user and instance, and the count left.

    Each change of the factory's count is one release (-1) or one creation (+1) (spec 4.2), so the
    raw history, before changes at one instant are collapsed, says how many of each happened.
    """
    before = count_at([step for step in series.steps if step[0] < at_s], at_s)
    released = created = 0
    for change in run.manager_counts:
        if (change.user_id, change.instance, change.at_s) == (series.user_id, series.instance, at_s):
            released += change.count < before
            created += change.count > before
            before = change.count
    return released, created, before


def _span_end_text(run: RunResult, series: UserInstanceSeries, until: float) -> str:
    """``4 managers released and 1 created at 920 s, leaving 2``."""
    released, created, left = count_changes_at(run, series, until)
    changes = plural(released, "manager") + " released" + (f" and {created} created" if created else "")
    return f"{changes} at {until:g} s, leaving {left}"


def _freed_at_cap_text(run: RunResult) -> list[str]:
    """The connections whose own manager was created after emergency cleanup freed room at the cap."""
    freed = [c.index for c in run.connections
             if "freed_by_emergency_cleanup" in (c.outcome("factory.manager_cap") or "").split(REPEAT_JOIN)]
    if not freed:
        return []
    names = ", ".join(f"#{index}" for index in freed)
    subject = f"Connection {names} met the cap and got" if len(freed) == 1 else (
        f"Connections {names} met the cap and each got")
    return [f"{subject} a manager after emergency cleanup freed a stale one "
            "(`factory.manager_cap` = freed_by_emergency_cleanup)."]


def reproduce_verdicts(run: RunResult) -> Markdown:
    """The computed verdicts of notebook 01 for one run, as Markdown bullets."""
    failures = run.failures
    factory_1011 = factory_reason_closes(failures)
    bullets = [
        f"**1011 \"{FACTORY_FAILED_REASON}\" reproduced: {'yes' if factory_1011 else 'no'}** "
        f"({_reproduced_counts_text(len(factory_1011), len(failures), len(run.connections))}).",
        f"{validation_mode_text(run)}.",
    ]
    if failures:
        one = len(failures) == 1
        whose = "its" if one else "their"
        bullets += [
            f"Deciding decision of {_failing_text(failures, deciding_counts(failures))}.",
            f"`factory.validation` outcome of {_failing_text(failures, validation_outcomes(failures))}.",
            f"`factory.validation_mode` of {_failing_text(failures, validation_modes(failures))}.",
            f"{failures_at_cap(run)} of {plural(len(failures), 'failing connection')} started while {whose} user "
            f"already held {run.max_managers_per_user} managers (the cap) on {whose} instance.",
        ]
    bullets.append(f"{start_agent_text(run)}.")
    return Markdown("\n".join(f"- {bullet}" for bullet in bullets))


def reproduce_lessons(run: RunResult) -> Markdown:
    """Lessons drawn from the computed facts above (each names the cell that backs it)."""
    failures = run.failures
    lessons: list[str] = []
    factory_closes = factory_reason_closes(failures)
    mislabelled = validation_passed(factory_closes)
    if mislabelled:
        lessons.append(
            f"The close reason says \"{FACTORY_FAILED_REASON}\", yet SSOT validation passed for "
            f"{_share_text(len(mislabelled), len(factory_closes), 'connection')} closed with it; "
            f"{_deciding_text(mislabelled)} (the Verdicts and the trace above)."
        )
    at_cap = bool(failures) and failures_at_cap(run) == len(failures)
    if failures and not mislabelled and not at_cap:
        lessons.append(_unexplained_failures_text(run))
    if at_cap:
        several_instances = len({c.instance for c in run.connections}) > 1
        lessons.append(
            f"{'The failing connection' if len(failures) == 1 else 'Every failing connection'} started while its "
            "user already held the per-user manager cap on its instance (the timeline chart)"
            + ("; that count is kept per backend instance, not per user across instances." if several_instances
               else ".")
        )
    if managers_created_by_start_agent(run) or start_agent_refusals(run):
        lessons.append(f"{start_agent_text(run, why=False)} (the Verdicts).")
    if not failures:
        lessons.append(
            f"This profile's traffic did not fail under variant {run.variant}: {plural(len(run.connections), 'connection')}, "
            f"close codes {close_counts_text(run)} (the connection table)."
        )
        lessons.append(_cap_lesson_without_failure(run))
    return Markdown("\n".join(f"- {lesson}" for lesson in lessons))


#: What SSOT validation did to a connection, per ``factory.validation`` outcome (``{}``: the count, or "it").
VALIDATION_WORDS: dict[str, str] = {"pass": "passed for {}", "fail": "refused {}", "not reached": "was not reached by {}"}


def _validation_clause(failures: Sequence[ConnectionResult]) -> str:
    """``SSOT validation passed for 2 and was not reached by 1`` (``... passed for it`` for one connection)."""
    outcomes = sorted(validation_outcomes(failures).items(), key=lambda item: (-item[1], item[0]))
    counts = [VALIDATION_WORDS.get(outcome, f"ended {outcome} for {{}}").format("it" if len(failures) == 1 else n)
              for outcome, n in outcomes]
    return f"SSOT validation {and_list(counts)}"


def _unexplained_failures_text(run: RunResult) -> str:
    """Failures neither lesson above explains: how many met the cap, what SSOT validation did, what decided them."""
    failures = run.failures
    at_cap = failures_at_cap(run)
    if len(failures) == 1:
        return (f"The one failing connection of this run did not start while its user held the per-user cap, and "
                f"{_validation_clause(failures)}; {_deciding_text(failures)} (the Verdicts).")
    cap = ("none started while its user held the per-user cap" if not at_cap
           else f"{at_cap} started while their user held the per-user cap")
    return (f"Of the {plural(len(failures), 'failing connection')} of this run, {cap}, and "
            f"{_validation_clause(failures)}; {_deciding_text(failures)} (the Verdicts).")


def reproduce_key_result(run: RunResult) -> str:
    """One line: how many connections closed how, and what decided the first failure."""
    first = run.first_failure()
    head = f"{run.profile}/{run.variant}: {close_summary(run)}"
    if first is None:
        return f"{head}; none failed"
    deciding = first.deciding_decision()
    decided = f"{deciding.point}={deciding.outcome}" if deciding else "-"
    return (
        f"{head}; first failure #{first.index} at {first.at_s:g} s: {first.close_code} "
        f"\"{first.close_reason}\", decided by {decided}"
    )
