"""The postmortem, Google SRE shape, every statement computed from the other analyses.

    evidence = gather_evidence()          # runs, hypothesis ledger, isolation, variant matrix
    summary_section(evidence)             # Markdown
    impact_table(evidence)                # str

Sections: summary, impact, trigger, root cause, detection, resolution, action
items, lessons. Each function takes the :class:`Evidence` gathered once and
returns Markdown or a text table; nothing here states a result that the
evidence does not contain.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from IPython.display import Markdown
from matplotlib.figure import Figure

from investigation.analysis.adversarial import AdversarialOutcome, adversarial_outcomes
from investigation.analysis.cap_refusals import Mechanism, UserAtRefusal, refusals_at_cap
from investigation.analysis.divergence import DivergenceTable
from investigation.analysis.hypotheses import Ledger, Verdict, build_ledger, factory_reason_closes
from investigation.analysis.isolate import (
    ENVIRONMENT_FACTOR_KINDS,
    ENVIRONMENT_FACTOR_PREFIXES,
    IsolationOverview,
    ProfileIsolation,
    TrafficReduction,
    held_environment_text,
    is_environment_factor,
    isolate_profiles,
    isolation_overview,
    kept_users,
    minimal_failing_traffic,
    mixture_holds,
    refused_at_cap,
)
from investigation.analysis.variants import (
    DELAYS,
    EARLIER,
    INTRODUCED,
    LONG_RUN_PROFILE,
    MIXED,
    NEITHER_FAILS,
    NO_EFFECT,
    NOTHING_TO_FIX,
    REMOVED,
    REMOVES_EVERYWHERE,
    SAFER,
    SAME,
    WEAKER,
    WORSE,
    MatrixCell,
    VariantReport,
    VariantVerdict,
    changed_share,
    changed_switches,
    first_changed,
    forged_refusals_text,
    refused_by_rule,
    refused_by_the_cap,
    start_agent_left,
    variant_report,
)
from investigation.backend.route import FACTORY_FAILED_REASON, STARTUP_INCOMPLETE_REASON
from investigation.backend.variants import ORIGINAL, VARIANTS
from investigation.charts.divergence import compared_connection, divergence_chart
from investigation.charts.isolation import traffic_chart
from investigation.charts.timeline import timeline_chart
from investigation.charts.variants import variant_chart
from investigation.divergence_findings import (
    deciding_groups,
    first_divergence_counts,
    per_group_text,
    point_text,
    separating_points,
)
from investigation.notebook_grid import ISOLATION_REFERENCE
from investigation.profiles import ProfileError
from investigation.report import and_list, format_table, never_established_text, ordinal, plural, share_text
from investigation.reproduce import (
    connection_in_run,
    deciding_counts,
    failures_at_cap,
    load_named_profile,
    run_profiles,
    validation_outcomes,
    validation_passed,
)
from investigation.trace import ConnectionResult, RunResult, close_code_label, identified_users, unidentified

Chart = tuple[Figure, object]

REFERENCE = "local-debug"
BYPASS_SWITCH = "refuse_e2e_bypass_when_deployed"


@dataclass(frozen=True)
class Evidence:
    """Everything the postmortem draws on, computed once."""

    reference: str
    runs: Mapping[str, RunResult]
    ledger: Ledger
    isolation: IsolationOverview
    reduction: TrafficReduction | None
    variants: VariantReport
    traffic_isolations: Mapping[str, ProfileIsolation] = dataclasses.field(default_factory=dict)
    """dd within each shared traffic, by failing member (see :func:`shared_traffic_isolations`)."""

    @property
    def failing(self) -> list[str]:
        return sorted(name for name, run in self.runs.items() if run.failures)

    @property
    def failures(self) -> list[ConnectionResult]:
        return [c for name in self.failing for c in self.runs[name].failures]

    @property
    def worst_profile(self) -> str | None:
        """The failing profile with the most failing connections of the incident (:meth:`incident_failures`); when
        no profile has one, the one with the most failing connections. Ties: by name."""
        ranked = sorted(self.failing, key=lambda name: (-len(self.incident_failures(name)),
                                                        -len(self.runs[name].failures), name))
        return ranked[0] if ranked else None

    def incident_failures(self, profile: str) -> list[ConnectionResult]:
        """The profile's failing connections the verdicts judge (VariantMatrix.judged_failures of the original), auth
        refusals aside (variants.refused_by_rule): the failures the action items ask to fix. A profile outside
        chapter 05's matrix has no verdict: its failing connections, auth refusals aside."""
        matrix = self.variants.matrix
        failures = self.runs[profile].failures
        if profile in matrix.profiles:
            judged = {f.index for f in matrix.judged_failures(ORIGINAL.name, profile)}
            failures = [c for c in failures if c.index in judged]
        return [c for c in failures if not refused_by_rule(close_code_label(c.close_code))]

    @cached_property
    def divergence(self) -> Chart:
        """Notebook 02's chart and table of the runs against the reference, drawn once."""
        return divergence_chart(self.runs, self.reference)

    def __repr__(self) -> str:
        return f"Evidence(reference={self.reference!r}, profiles={len(self.runs)}, failing={self.failing!r})"


def gather_evidence(reference: str = REFERENCE) -> Evidence:
    """Run every analysis: all profiles, the ledger, isolation against ``reference``, the variants.

    Profiles come from data/profiles plus ``INVESTIGATION_PROFILES_DIR`` when set; the
    isolation reuses the profiles' runs. Every run leaves a running event loop (a kernel's) by itself
    (simulate, measure_profile, adversarial_outcomes, simulate_wire), so no call here needs outside_event_loop.
    """
    runs = run_profiles(None)
    evidence = Evidence(
        reference=reference,
        runs=runs,
        ledger=build_ledger(),
        isolation=isolation_overview(reference, None, "original", runs),
        reduction=None,
        variants=variant_report(),
    )
    evidence = dataclasses.replace(evidence, traffic_isolations=shared_traffic_isolations(evidence))
    if evidence.worst_profile is None:
        return evidence
    reduction = minimal_failing_traffic(load_named_profile(evidence.worst_profile))
    return dataclasses.replace(evidence, reduction=reduction)


def _counts_text(counter: Counter[str]) -> str:
    return ", ".join(f"{key} ({n})" for key, n in sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def innermost_causes(connections: Sequence[ConnectionResult]) -> Counter[str]:
    """The innermost exception type of each connection's cause chain."""
    return Counter(c.cause_chain[-1].type for c in connections if c.cause_chain)


def innermost_causes_text(connections: Sequence[ConnectionResult]) -> str:
    """``RuntimeError (15), no exception (10)``: the innermost exception types, connections closed without one
    (an empty cause chain, e.g. at the startup gate) counted as "no exception"."""
    causes = innermost_causes(connections)
    bare = sum(1 for c in connections if not c.cause_chain)
    return _counts_text(causes + Counter({"no exception": bare}))


IN_DETAILS = "details.error_message"
"""Where the factory close's error frame carries the cause (spec 1, step 8; its top-level message is fixed)."""
AT_TOP_LEVEL = "error_code and error_message"
"""Where the other error frames carry it (spec 1.1): the auth failure's (spec 1, step 5) holds the auth error
code and message, the two the route records as the failure (``<error_code>: <error_message>``)."""


def cause_frame_place(connection: ConnectionResult) -> str | None:
    """Where an error frame the server sent the connection carries its innermost cause's full text:
    ``IN_DETAILS``, ``AT_TOP_LEVEL`` (its error_message, or ``<error_code>: <error_message>``), or None."""
    if not connection.cause_chain:
        return None
    cause = connection.cause_chain[-1].message
    frames = [frame for frame in connection.frames if frame.get("type") == "error_message"]
    if any(cause in str(frame.get("details", {}).get("error_message", "")) for frame in frames):
        return IN_DETAILS
    if any(cause in f"{frame.get('error_code')}: {frame.get('error_message')}" for frame in frames):
        return AT_TOP_LEVEL
    return None


def cause_in_error_frame(connection: ConnectionResult) -> bool:
    """Whether an error frame the server sent the connection carries its innermost cause's full text, wherever the
    spec puts it (``cause_frame_place``)."""
    return cause_frame_place(connection) is not None


def _diagnosis_text(failures: Sequence[ConnectionResult]) -> str:
    """How many failing clients were told the cause before their close: by an error frame carrying the innermost
    cause (and where in it), or, with no exception behind the close, by an error frame and close naming the cause
    (``close_names_cause``)."""
    told = [c for c in failures if cause_in_error_frame(c)]
    named = [c for c in failures if close_names_cause(c)]
    if not told and not named:
        return ("- No failing connection's error frame carried its innermost cause, in details.error_message or at "
                "its top level: the clients saw the close reason only.")
    reached = len(told) + len(named)
    reach = "every failing client" if reached == len(failures) else f"{reached} of the failing clients"
    if not named:
        return f"- {_told_text(told, failures)}: the diagnosis reached {reach}; the close reason did not carry it."
    told_part = f"{_told_text(told, failures)}: the close reason did not carry it. " if told else ""
    subject = (f"The other {'one' if len(named) == 1 else len(named)}" if told and reached == len(failures)
               else f"{len(named)} of {len(failures)} failing connections")
    return f"- {told_part}{subject} {_named_text(named)} The diagnosis reached {reach}."


def _told_text(told: Sequence[ConnectionResult], failures: Sequence[ConnectionResult]) -> str:
    """``13 of 25 failing connections were sent, before the close, an error frame whose ... carried ...``."""
    by_place = {place: [c for c in told if cause_frame_place(c) == place] for place in (IN_DETAILS, AT_TOP_LEVEL)}
    places = [(place, told_there) for place, told_there in by_place.items() if told_there]
    if len(places) == 1:
        ((place, told_there),) = places
        where = f"whose {place} carried the innermost cause's full text ({_frame_place_source(place, told_there)})"
    else:
        where = "carrying the innermost cause's full text: " + " and ".join(
            f"{len(told_there)} in its {place} ({_frame_place_source(place, told_there)})"
            for place, told_there in places)
    return f"{len(told)} of {len(failures)} failing connections were sent, before the close, an error frame {where}"


#: The spec's place for a close that names its cause with no exception behind it, by close reason.
NAMED_CLOSE_SOURCES = {STARTUP_INCOMPLETE_REASON: "spec 1, step 9"}


def _naming_frame(connection: ConnectionResult) -> dict[str, object] | None:
    """The connection's first error frame whose error_message is its close reason, if any."""
    return next((frame for frame in connection.frames if frame.get("type") == "error_message"
                 and connection.close_reason and frame.get("error_message") == connection.close_reason), None)


def close_names_cause(connection: ConnectionResult) -> bool:
    """Whether a failing connection with no exception behind its close (an empty cause chain) was sent, before the
    close, an error frame whose error_message is the close reason: the close names the cause itself (the startup
    gate's STARTUP_INCOMPLETE frame and 1011 "Service startup incomplete", spec 1, step 9)."""
    return connection.failed and not connection.cause_chain and _naming_frame(connection) is not None


def _named_text(named: Sequence[ConnectionResult]) -> str:
    """``had no exception behind their close: an error frame STARTUP_INCOMPLETE and the close 1011 "Service
    startup incomplete" named the cause (spec 1, step 9).``, each kind with its count when there are several."""
    kinds = Counter((str((_naming_frame(c) or {}).get("error_code")), c.close_code, c.close_reason) for c in named)
    ways = []
    for (error_code, code, reason), n in sorted(kinds.items(), key=lambda item: (-item[1], str(item[0]))):
        notes = ([str(n)] if len(kinds) > 1 else []) + (
            [NAMED_CLOSE_SOURCES[reason]] if reason in NAMED_CLOSE_SOURCES else [])
        note = f" ({'; '.join(notes)})" if notes else ""
        ways.append(f"an error frame {error_code} and the close {_quoted_close(code, reason)} named the cause{note}")
    return f"had no exception behind {'its' if len(named) == 1 else 'their'} close: {'; '.join(ways)}."


def _frame_place_source(place: str, told: Sequence[ConnectionResult]) -> str:
    """``spec 1, step 8; e.g. "<the first told connection's cause, up to its first sentence end>"``."""
    if place == IN_DETAILS:
        source = "spec 1, step 8"
    else:
        source = "spec 1, step 5, and 1.1" if all(c.close_code == 1008 for c in told) else "spec 1.1"
    example = told[0].cause_chain[-1].message.split(". ")[0]
    return f"{source}; e.g. \"{example}\""


def close_reasons(connections: Sequence[ConnectionResult]) -> Counter[str]:
    return Counter(f"{c.close_code} {c.close_reason}" for c in connections)


def _quoted_close(code: int | str | None, reason: str | None) -> str:
    """``1011 "Factory SSOT validation failed"``, or the code alone without a reason."""
    return f'{code} "{reason}"' if reason else str(code)


def _closed_text(failures: Sequence[ConnectionResult], connections: int) -> str:
    """``closed 13 of 159 WebSocket connections with 1011 "..."``, or each close with its count when they differ."""
    if not failures:
        return f"closed none of {plural(connections, 'WebSocket connection')} with a failing close"
    closes = Counter(_quoted_close(c.close_code, c.close_reason) for c in failures)
    head = f"closed {len(failures)} of {plural(connections, 'WebSocket connection')}"
    if len(closes) == 1:
        return f"{head} with {next(iter(closes))}"
    ranked = sorted(closes.items(), key=lambda item: (-item[1], item[0]))
    return f"{head}: " + ", ".join(f"{n} with {close}" for close, n in ranked)


def users_hit_text(evidence: Evidence, detail: bool = True) -> str:
    """Distinct user ids hit as the server identified them, and the user-profile pairs (the impact table's
    "users hit" column sums those).

    ``detail`` adds which user ids were hit in more than one profile.
    """
    pairs = Counter(user for name in evidence.failing for user in identified_users(evidence.runs[name].failures))
    distinct = plural(len(pairs), "distinct user id")
    if sum(pairs.values()) == len(pairs):
        return distinct
    text = f"{distinct} in {sum(pairs.values())} user-profile pairs"
    repeated = sorted((user, n) for user, n in pairs.items() if n > 1)
    if not detail:
        return text
    return text + " (" + ", ".join(f"{user} in {n} profiles" for user, n in repeated) + ")"


# --- summary -------------------------------------------------------------------------------


def summary_section(evidence: Evidence) -> Markdown:
    """Two or three sentences: what failed, why, what fixes it."""
    failures = evidence.failures
    connections = sum(len(run.connections) for run in evidence.runs.values())
    counts = evidence.ledger.counts()
    deciding = (f"The deciding decision of the failing connections was {_counts_text(deciding_counts(failures))}; "
                f"their innermost cause {innermost_causes_text(failures)}. " if failures else "")
    text = (
        f"Under the code as deployed, **{len(evidence.failing)} of {len(evidence.runs)} environment profiles** "
        f"{_closed_text(failures, connections)}{_traffic_once_note(evidence)}; "
        f"{_users_hit_short(failures)}. {_long_run_alone_text(evidence)}{deciding}"
        f"Of {evidence.ledger.claims_text()}, {counts.get(Verdict.REFUTED.value, 0)} are refuted, "
        f"{counts.get(Verdict.SUPPORTED.value, 0)} supported and {counts.get(Verdict.INCONCLUSIVE.value, 0)} "
        f"inconclusive. "
    )
    return Markdown(text + _resolution_summary(evidence.variants))


def _long_run_failing_alone(evidence: Evidence) -> MatrixCell | None:
    """The original's cell of chapter 05's long E2E run when it fails and no profile does, else None."""
    matrix = evidence.variants.matrix
    if evidence.failing or LONG_RUN_PROFILE not in matrix.profiles:
        return None
    cell = matrix.cell(ORIGINAL.name, LONG_RUN_PROFILE)
    return cell if cell.fails else None


def _long_run_run_name(report: VariantReport) -> str:
    return f"chapter 05's {'long ' if report.long_run_is_longer else ''}E2E run {LONG_RUN_PROFILE}"


def _long_run_alone_text(evidence: Evidence) -> str:
    """``Only chapter 05's long E2E run staging-e2e-long fails: ...`` when it is the one failing run, else empty."""
    cell = _long_run_failing_alone(evidence)
    if cell is None:
        return ""
    closes = Counter(_quoted_close(f.code, f.reason) for f in cell.failing)
    return (f"Only {_long_run_run_name(evidence.variants)} fails: the original closed {len(cell.failing)} of its "
            f"{plural(cell.connections, 'connection')} ({_counts_text(closes)}), the first at "
            f"{cell.first_failure_s:g} s. ")


def _resolution_summary(report: VariantReport) -> str:
    """The recommended variant and where it removes the failure; else why none is; then the failing connections
    no candidate changes."""
    untouched = report.untouched_text()
    tail = f" {untouched}." if untouched else ""
    recommended = report.recommended
    if recommended:
        return (f"Recommended resolution: **{recommended}** ({_inner_summary(recommended)}), which removes the "
                f"failure on {report.removed_where(recommended)}{_agent_refusals_left(report, recommended)}.{tail}")
    if report.nothing_to_fix and not report.original_fails:
        included = ", chapter 05's long E2E run included" if LONG_RUN_PROFILE in report.matrix.profiles else ""
        return f"No connection fails in any run{included}: there is no failure to fix."
    if report.nothing_to_fix:
        return f"No candidate change alters how any failing connection ends: no variant fixes the failure.{tail}"
    return f"No candidate change removes the failure on every failing run without weakening safety.{tail}"


def _agent_refusals_left(report: VariantReport, variant: str) -> str:
    """``; under it 27 of 142 start_agent messages are still refused, without a close (25 of them in the long E2E
    run, chapter 05; action items)`` when any are: the totals count the long run too, the summary's profiles not."""
    refused, sent, _ = report.matrix.start_agent_totals(variant)
    if not refused:
        return ""
    in_long_run = (report.matrix.cell(variant, LONG_RUN_PROFILE).start_agent_refused
                   if LONG_RUN_PROFILE in report.matrix.profiles else 0)
    where = f"{in_long_run} of them in the long E2E run, chapter 05; " if in_long_run else ""
    return (f"; under it {refused} of {sent} start_agent messages are still refused, without a close "
            f"({where}action items)")


# --- impact --------------------------------------------------------------------------------


def impact_table(evidence: Evidence) -> str:
    """Per profile: connections, failing connections, users hit, and when the first failing connection opened
    (column "first failure (s)": its start, in virtual time, not its close)."""
    header = ("profile", "connections", "failing", "users", "users hit", "first failure (s)", "failing closes")
    rows = []
    for name, run in sorted(evidence.runs.items()):
        failures = run.failures
        first = run.first_failure()
        rows.append((
            name,
            str(len(run.connections)),
            str(len(failures)),
            str(len(identified_users(run.connections))),
            str(len(identified_users(failures))),
            "-" if first is None else f"{first.at_s:g}",
            _counts_text(close_reasons(failures)) or "-",
        ))
    total = [c for run in evidence.runs.values() for c in run.connections]
    failures = evidence.failures
    rows.append(("all profiles", str(len(total)), str(len(failures)), "-", "-", "-", "-"))
    return format_table(header, rows)


def impact_section(evidence: Evidence) -> Markdown:
    failures = evidence.failures
    return Markdown(
        f"{len(failures)} connections failed, in {plural(len(evidence.failing), 'profile')} "
        f"({', '.join(evidence.failing) or 'none'}); {users_hit_text(evidence)} hit{_unidentified_text(evidence)}. "
        f"Profiles without a failing connection: "
        f"{', '.join(sorted(set(evidence.runs) - set(evidence.failing))) or 'none'}.{_traffic_once_text(evidence)}"
    )


def _users_hit_short(failures: Sequence[ConnectionResult]) -> str:
    """``2 distinct users hit``, counted as authentication established them, and the failing connections whose
    user it never established, when any."""
    text = f"{plural(len(identified_users(failures)), 'distinct user')} hit"
    if never_established := never_established_text(failures, "failing connection"):
        text += f", besides {never_established}"
    return text


def _unidentified_text(evidence: Evidence) -> str:
    """``, besides 7 failing connections whose user the server never established (...)``, with their auth
    results, when any."""
    unestablished = unidentified(evidence.failures)
    if not unestablished:
        return ""
    results = Counter(c.outcome("auth.result") or "no auth result" for c in unestablished)
    return (f", besides {never_established_text(unestablished, 'failing connection')} "
            f"(authentication found no valid token: {_counts_text(results)}; the user ids their clients were "
            "planned with are not counted)")


def shared_traffic(evidence: Evidence) -> list[list[str]]:
    """Groups of two or more profiles whose client lists are identical (one traffic in several environments).

    Each group sorted by name, groups sorted; a run whose profile cannot be loaded is a traffic of its own.
    """
    by_clients: dict[str, list[str]] = {}
    for name in sorted(evidence.runs):
        try:
            clients = json.dumps([client.model_dump() for client in load_named_profile(name).clients], sort_keys=True)
        except ProfileError:
            clients = f"<run {name}>"
        by_clients.setdefault(clients, []).append(name)
    return sorted(group for group in by_clients.values() if len(group) > 1)


def _traffic_once(evidence: Evidence) -> tuple[int, int, int]:
    """Counting each traffic once: planned connections, those that failed in any of its environments, their users.

    A planned connection is its client and start time; a traffic's connections are those of its first profile.
    """
    groups = [*shared_traffic(evidence)]
    grouped = {name for group in groups for name in group}
    groups += [[name] for name in sorted(evidence.runs) if name not in grouped]
    planned = failed = 0
    users: set[str] = set()
    for group in groups:
        planned += len(evidence.runs[group[0]].connections)
        failures = [c for name in group for c in evidence.runs[name].failures]
        failed += len({(c.client, c.at_s) for c in failures})
        users |= identified_users(failures)
    return planned, failed, len(users)


def _traffic_once_text(evidence: Evidence) -> str:
    """`` a, b and c run one traffic (identical client lists) in 3 environments; counting each traffic once, ...``."""
    groups = shared_traffic(evidence)
    if not groups:
        return ""
    planned, failed, users = _traffic_once(evidence)
    same = "; ".join(f"{len(group)} profiles run one traffic (identical client lists) in their environments: "
                     f"{and_list(group)}" for group in groups)
    return (f" {same}; counting each traffic once, {failed} of {plural(planned, 'planned connection')} failed in at "
            f"least one of the environments replaying {'it' if planned == 1 else 'them'}, for "
            f"{plural(users, 'distinct user id')}.")


#: How the passing member of a shared traffic is chosen for dd against its failing members.
PASSING_MEMBER_RULE = "the first passing member by name"


def shared_traffic_isolations(evidence: Evidence) -> dict[str, ProfileIsolation]:
    """dd within each shared traffic that has passing and failing members, by failing member's name.

    Each failing member is isolated against its traffic's passing member chosen by PASSING_MEMBER_RULE; the
    evidence's runs are reused. Two members of one traffic differ only in their environment, so every factor
    isolated here is one.
    """
    isolations = {}
    for group in shared_traffic(evidence):
        passing = [name for name in group if not evidence.runs[name].failures]
        if not passing:
            continue
        reference = load_named_profile(passing[0])
        for name in group:
            if evidence.runs[name].failures:
                isolations[name] = isolate_profiles(reference, load_named_profile(name), "original", evidence.runs)
    return isolations


def _traffic_once_note(evidence: Evidence) -> str:
    """`` (11 of 96 failed in at least one environment, counting each of the 6 distinct client lists once: 4
    profiles replay one)``, or empty when
    none is shared (the summary comes before Impact, which calls a client list a traffic)."""
    groups = shared_traffic(evidence)
    if not groups:
        return ""
    planned, failed, _ = _traffic_once(evidence)
    traffics = len(evidence.runs) - sum(len(group) - 1 for group in groups)
    shared = "; ".join(f"{len(group)} profiles replay one" for group in groups)
    return (f" ({failed} of {planned} failed in at least one environment, counting each of the {traffics} distinct "
            f"client lists once: {shared})")


# --- trigger -------------------------------------------------------------------------------


def trigger_section(evidence: Evidence) -> Markdown:
    """What delta debugging isolated: the failure-inducing difference and the 1-minimal failing traffic."""
    isolations = evidence.isolation.isolations
    factors = [c.factor for iso in isolations.values() for c in iso.minimal_difference]
    environmental = sorted({f for f in factors if is_environment_factor(f)})
    lines = [
        f"- Delta debugging from `{evidence.reference}` to each failing profile isolated "
        f"{_factor_counts_text(isolations)}; "
        f"environment factors ({ENVIRONMENT_FACTOR_KINDS}) among them: "
        f"{', '.join(environmental) or 'none'}.",
        "- Per profile: " + "; ".join(
            f"{name}: {iso.difference_in_words()}{_held_in_parentheses(iso)}" for name, iso in sorted(isolations.items())
        ) + "." if isolations else "- No failing profile to isolate.",
    ]
    lines[2:2] = _shared_traffic_line(evidence.traffic_isolations)
    lines.extend(_dd_mechanism_line(isolations, evidence.reduction))
    if evidence.reduction is not None:
        lines.append(_reduction_line(evidence.reduction))
    return Markdown("\n".join(lines))


def _held_in_parentheses(isolation: ProfileIsolation) -> str:
    """`` (dd's passing mixture already holds JWT_ALGORITHM = 'RS256', as in b)`` (isolate.mixture_holds), or empty:
    the isolated difference fails on top of those, not in the passing profile's environment alone."""
    held = mixture_holds(isolation)
    return f" ({held})" if held else ""


def _dd_mechanism_line(isolations: Mapping[str, ProfileIsolation], reduction: TrafficReduction | None) -> list[str]:
    """Whether dd's failing mixtures are refused the way their profiles are (cap_refusals.user_at_refusal)."""
    differ = {name: (iso.mixture_failure_state, iso.failure_state) for name, iso in sorted(isolations.items())
              if iso.mixture_failure_state is not None and iso.failure_state is not None
              and iso.mixture_failure_state.mechanism is Mechanism.CONCURRENT
              and iso.failure_state.mechanism is Mechanism.OUTLIVED}
    if not differ:
        return []
    mixtures: list[UserAtRefusal] = [mixture for mixture, _ in differ.values()]
    owns: list[UserAtRefusal] = [own for _, own in differ.values()]
    one = len(differ) == 1
    line = (f"- dd's failing {'mixture' if one else 'mixtures'} for {', '.join(differ)}: the refused connection met "
            f"{_span([m.held for m in mixtures])} managers of its user on its instance and "
            f"{_span([m.open_connections for m in mixtures])} of the user's connections still open there, the cap "
            f"refusing one more concurrent connection as designed; in {'its' if one else 'their'} profile's own "
            f"first failure the refused user had {_span([o.open_connections for o in owns])} open against "
            f"{_span([o.held for o in owns])} managers: managers outlived their connections. The "
            f"{'difference dd isolates reproduces' if one else 'differences dd isolates reproduce'} the close, "
            "not the leak")
    reduced = None if reduction is None or reduction.profile not in differ else reduction.failure_state
    if reduction is not None and reduced is not None and reduced.mechanism is Mechanism.OUTLIVED:
        line += (f"; ddmin's reduced traffic of {reduction.profile} (planned times kept) does: at its refusal the "
                 f"user held {reduced.held} managers with {reduced.open_connections} of its connections open")
    return [line + "."]


def _shared_traffic_line(isolations: Mapping[str, ProfileIsolation]) -> list[str]:
    """dd between members of one traffic (impact): each pair's isolated difference and its environment factors."""
    if not isolations:
        return []
    pairs = "; ".join(f"{iso.passing} -> {name}: {iso.changes_text('`')} ({plural(iso.tests_run, 'test')}"
                      f"{_held_pairs_text([iso])})" for name, iso in sorted(isolations.items()))
    environmental = sorted({c.factor for iso in isolations.values() for c in iso.minimal_difference
                            if is_environment_factor(c.factor)})
    return [f"- Within a traffic replayed in several environments (impact), delta debugging from a passing member "
            f"({PASSING_MEMBER_RULE}) to each failing member isolated: {pairs}; environment factors among them: "
            f"{', '.join(environmental) or 'none'}."]


def _held_pairs_text(isolations: Sequence[ProfileIsolation]) -> str:
    """``; dd's passing mixture already holds JWT_SECRET_KEY and JWT_SECRET_STAGING unset, as in b``: the environment
    factors dd's last passing mixture of each pair already takes from its failing member, with their values (chapter
    04's isolate.held_environment_text), on top of which the isolated difference fails; empty when no pair's mixture
    holds one."""
    held = [text for iso in isolations if (text := held_environment_text(iso))]
    if not held:
        return ""
    holds = "mixture already holds" if len(held) == 1 else "mixtures already hold"
    return f"; dd's passing {holds} {and_list(held)}"


def _factor_counts_text(isolations: Mapping[str, ProfileIsolation]) -> str:
    """How many factors over how many profiles, and the distinct factors with the profiles that isolated each."""
    per_profile = [len(iso.minimal_difference) for iso in isolations.values()]
    profiles = plural(len(isolations), "profile")
    if per_profile and all(n == 1 for n in per_profile):
        head = f"one failure-inducing factor per profile over {profiles}"
    else:
        head = f"{plural(sum(per_profile), 'failure-inducing factor')} over {profiles}"
    by_factor = Counter(factor for iso in isolations.values() for factor in {c.factor for c in iso.minimal_difference})
    if not by_factor:
        return head
    ranked = sorted(by_factor.items(), key=lambda item: (-item[1], item[0]))
    return f"{head}, {len(by_factor)} distinct: " + ", ".join(
        f"`{factor}` ({plural(n, 'profile')})" for factor, n in ranked)


def _reduction_line(reduction: TrafficReduction) -> str:
    """ddmin's 1-minimal failing traffic and how its connections ended in the reduced run."""
    users, never_established = kept_users(reduction)
    whose = f"all of user {users[0]}" if len(users) == 1 else f"{plural(len(users), 'user')} ({', '.join(users)})"
    if never_established:
        whose = f"{whose}, besides {never_established}" if users else never_established
    return (
        f"- A 1-minimal failing traffic of {reduction.profile} (ddmin over its planned connections: no single "
        f"connection of it can be left out): {len(reduction.kept)} of the {len(reduction.planned)} planned "
        f"connections, {whose}: {_endings_text(reduction.run.connections)}."
    )


def _endings_text(connections: Sequence[ConnectionResult]) -> str:
    """``5 end with no close frame (open), and the 6th closes 1011 "..." (innermost RuntimeError)``.

    One group per way of ending, in the order of each group's first connection; a group of one names its
    connection's place in start order, a group of failing connections its innermost causes.
    """
    ordered = sorted(connections, key=lambda c: (c.at_s, c.index))
    groups: dict[tuple[int | None, str | None], list[int]] = {}
    for place, connection in enumerate(ordered, start=1):
        groups.setdefault((connection.close_code, connection.close_reason), []).append(place)
    parts = []
    for (code, reason), places in groups.items():
        one = len(places) == 1
        subject = f"the {ordinal(places[0])}" if one else str(len(places))
        if code is None:
            parts.append(f"{subject} {'ends' if one else 'end'} with no close frame (open)")
            continue
        ended = [c for c in ordered if (c.close_code, c.close_reason) == (code, reason)]
        causes = innermost_causes([c for c in ended if c.failed])
        cause = f" (innermost {', '.join(causes) if len(causes) == 1 else _counts_text(causes)})" if causes else ""
        parts.append(f"{subject} {'closes' if one else 'close'} {_quoted_close(code, reason)}{cause}")
    return ", and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else "".join(parts)


# --- root cause ----------------------------------------------------------------------------


def root_cause_section(evidence: Evidence) -> Markdown:
    """The mechanism the runs show, and where it sits in the pipeline."""
    failures = evidence.failures
    if not failures:
        long_run = _long_run_failing_alone(evidence)
        if long_run is not None:
            return Markdown("\n".join(_long_run_mechanism_lines(evidence, long_run)))
        return Markdown("- No connection failed under any profile; there is no root cause to state.")
    validation = validation_outcomes(failures)
    at_cap = sum(failures_at_cap(evidence.runs[name]) for name in evidence.failing)
    separating = separating_points(evidence.runs, evidence.divergence[1])
    lines = [
        f"- Deciding decision of the {len(failures)} failing connections: {_counts_text(deciding_counts(failures))}.",
        f"- `factory.validation` (the SSOT validation the report blames) of the failing connections: "
        f"{_counts_text(validation)}.",
        f"- {at_cap} of {len(failures)} failing connections started while their user already held "
        f"the per-user cap of managers on their backend instance.",
        *_managers_against_connections(evidence),
        f"- Innermost exception of the failing connections: {innermost_causes_text(failures)}; "
        f"example: {next((c.cause_chain[-1].message for c in failures if c.cause_chain), '-')}",
    ]
    if separating:
        lines.append(f"- Earliest decision point whose outcome separates failing from passing profiles: "
                     f"{point_text(separating[0], '`')}.")
    elif len(groups := deciding_groups(evidence.runs, evidence.divergence[1])) > 1:
        lines.append(f"- {per_group_text(groups, '`')}")
    return Markdown("\n".join(lines))


def _long_run_mechanism_lines(evidence: Evidence, cell: MatrixCell) -> list[str]:
    """The root cause when only the long run fails: its failing connections' deciding decisions, refusals by the
    cap and innermost causes, from the original's cell of chapter 05's matrix."""
    failing = cell.failing
    return [
        f"- No connection failed under any profile; only {_long_run_run_name(evidence.variants)} fails, so these "
        "lines state the mechanism of its run under the original (chapter 05's variant matrix).",
        f"- Deciding decision of its {len(failing)} failing connections: "
        f"{_counts_text(Counter(f.deciding for f in failing))}.",
        f"- {cell.cap_refusals} of {len(failing)} failing connections were refused by the per-user manager cap "
        f"({cell.managers_cap} managers per user and instance, spec 4.2).",
        f"- Innermost exception of its failing connections: {_counts_text(Counter(f.innermost for f in failing))}.",
    ]


def _span(values: Sequence[int]) -> str:
    """``5`` when every value is 5, else ``min-max``."""
    return str(min(values)) if min(values) == max(values) else f"{min(values)}-{max(values)}"


def _connected_without_manager_text(refusals: Sequence[UserAtRefusal]) -> str:
    """`` with their managers (5 more connected whose managers were no longer registered)``; "" when none was."""
    unregistered = [r.open_without_manager for r in refusals]
    if not max(unregistered):
        return ""
    return f" with their managers ({_span(unregistered)} more connected whose managers were no longer registered)"


def _managers_against_connections(evidence: Evidence) -> list[str]:
    """Why a refused user holds the cap: managers held against connections open, and the rules behind the gap."""
    refusals = [r for name in evidence.failing for r in refusals_at_cap(evidence.runs[name])]
    if not refusals:
        return []
    held = [r.held for r in refusals]
    left = [r.created_by_start_agent for r in refusals]
    over = " (min-max over those connections)" if len(refusals) > 1 else ""
    lines = [
        f"- At the {plural(len(refusals), 'refused connection')} at the cap the refused user held {_span(held)} "
        f"{'manager' if max(held) == 1 else 'managers'} on its instance, with {_span([r.open_connections for r in refusals])} "
        f"of its connections still connected there{_connected_without_manager_text(refusals)} and {_span(left)} "
        f"{'manager' if max(left) == 1 else 'managers'} created "
        f"by its earlier `start_agent` messages there{over}."
    ]
    kept = any(r.held > r.open_connections for r in refusals) and not any(
        VARIANTS[evidence.runs[name].variant].release_manager_on_disconnect for name in evidence.failing)
    rules = (["a connection's manager is not released when it closes (spec 1, step 14)"] if kept else []) + (
        ["each `start_agent` message leaves one more manager behind (spec 1, step 12)"] if max(left) else [])
    if rules:
        lines.append("- Managers outlive their connections: " + ", and ".join(rules) + ".")
    return lines


def ledger_table(evidence: Evidence) -> str:
    """The report's claims, their computed verdicts and the runs behind each verdict."""
    return evidence.ledger.to_text()


# --- detection -----------------------------------------------------------------------------


def detection_section(evidence: Evidence) -> Markdown:
    """How the failure presented to clients, and how soon."""
    failures = evidence.failures
    if not failures:
        long_run = _long_run_failing_alone(evidence)
        return Markdown(_long_run_detection_text(evidence, long_run) if long_run is not None
                        else "- No failing connection, so nothing was detected.")
    reasons = close_reasons(failures)
    validation = validation_outcomes(failures)
    firsts = [
        f"{name}: connection {connection_in_run(evidence.runs[name], first)} at {first.at_s:g} s"
        for name, first in sorted((name, run.first_failure()) for name, run in evidence.runs.items())
        if first is not None
    ]
    return Markdown("\n".join([
        f"- Clients saw {_counts_text(reasons)}; the innermost causes behind that close were "
        f"{innermost_causes_text(failures)}, and SSOT validation outcomes were {_counts_text(validation)}.",
        _diagnosis_text(failures),
        f"- First failing connection per failing profile (virtual time): {'; '.join(firsts)}.",
        f"- Connections of the reference `{evidence.reference}`{_local_evidence_note(evidence.reference)}: "
        f"{len(evidence.runs[evidence.reference].connections) if evidence.reference in evidence.runs else 0}.",
    ]))


def _long_run_detection_text(evidence: Evidence, cell: MatrixCell) -> str:
    """How the long run's failure presented, when it is the only failing run: closes, causes, first failure."""
    failing = cell.failing
    closes = Counter(_quoted_close(f.code, f.reason) for f in failing)
    first = failing[0]
    return (f"- No connection failed under any profile. Only {_long_run_run_name(evidence.variants)} fails: its "
            f"clients saw {_counts_text(closes)}; the innermost causes behind those closes were "
            f"{_counts_text(Counter(f.innermost for f in failing))}. Its first failing connection is client "
            f"{first.client}'s at {first.at_s:g} s (virtual time).")


def _local_evidence_note(reference: str) -> str:
    """Why the reference's connection count matters: only the report's own debug run is its evidence."""
    if reference == REFERENCE:
        return " (the report's evidence of \"works locally\")"
    return f" (the reference chosen for this postmortem; the report's evidence of \"works locally\" is {REFERENCE})"


# --- resolution and action items -----------------------------------------------------------


def resolution_section(evidence: Evidence) -> Markdown:
    return Markdown(evidence.variants.markdown())


def action_items(evidence: Evidence) -> Markdown:
    """One item per computed finding that asks for an action, each with its evidence.

    Order, computed: first what closes an exposure the runs found in production -- the auth-bypass item when
    the original accepts a hostile token of the adversarial set in a profile whose ENVIRONMENT is exactly
    "production", the context item when it lets a hostile user context through in such a profile; then the fix
    to deploy, what it leaves of the start_agent leak and the failures no candidate changes; then the rest: candidates not to ship, the exposures
    not found in production, the report's corrections, the closes. "As item N says" follows that order.
    """
    report = evidence.variants
    bypass_item = report.matrix.safety_of(ORIGINAL.name).unsigned_accepted
    original = adversarial_outcomes(ORIGINAL.name)
    bypass_first = bypass_item and _in_production(o for o in _of_kind(original, "token") if o.accepted)
    context_first = _in_production(o for o in _of_kind(original, "context") if o.accepted)
    fix = [*_fix_items(evidence), *_untouched_items(report)]
    not_shipped = [v for v in report.verdicts if v.variant != report.recommended
                   and v.failure not in {REMOVES_EVERYWHERE, NOTHING_TO_FIX}]
    exposures_first = int(bypass_first) + int(context_first)
    bypass_number = 1 if bypass_first else exposures_first + len(fix) + len(not_shipped) + 1
    bypass = [_auth_bypass_item(report)] if bypass_item else []
    context_item = _context_item(evidence, define_set=not bypass_item or (context_first and not bypass_first))
    context = [context_item] if context_item else []
    recommended_switches = _recommended_switches(report, bypass_item)
    items = [*(bypass if bypass_first else []), *(context if context_first else []), *fix]
    items += [_do_not_ship_item(report, verdict, recommended_switches, bypass_number if bypass_item else None)
              for verdict in not_shipped]
    items += [*([] if bypass_first else bypass), *([] if context_first else context)]
    refuted = [f.key for f in evidence.ledger.findings if f.verdict is Verdict.REFUTED]
    if refuted:
        items.append(f"Correct the incident report: of {evidence.ledger.claims_text()}, {len(refuted)} "
                     f"are refuted by runs ({', '.join(f'`{key}`' for key in refuted[:5])}"
                     f"{', ...' if len(refuted) > 5 else ''}).")
    own_close = _own_close_item(evidence)
    if own_close:
        items.append(own_close)
    return Markdown("\n".join(f"{number}. {item}" for number, item in enumerate(items, start=1)))


VALIDATION_ERROR = "ValueError"
"""The exception type of the factory's SSOT validation errors (spec 4.3)."""


def _own_close_item(evidence: Evidence) -> str | None:
    """The connections closed "Factory SSOT validation failed" whose innermost cause is not a validation error, as
    needing their own close; None when there are none. Other closes (an auth refusal, the startup gate) have their
    own reasons and do not count."""
    failures = evidence.failures
    mislabelled = [c for c in factory_reason_closes(failures)
                   if c.cause_chain and c.cause_chain[-1].type != VALIDATION_ERROR]
    if not mislabelled:
        return None
    every = len(mislabelled) == len(failures)
    subject = "every failing connection" if every else f"{len(mislabelled)} of the {len(failures)} failing connections"
    return (f"Give each cause its own close: {subject} closed {_quoted_close(1011, FACTORY_FAILED_REASON)} although "
            f"{'its' if every else 'their'} innermost cause was {_counts_text(innermost_causes(mislabelled))}."
            f"{_own_close_switch_text(evidence.variants, all(map(refused_by_the_cap, mislabelled)))}")


PRODUCTION = "production"


def _in_production(outcomes: Iterable[AdversarialOutcome]) -> bool:
    """Whether any of the outcomes ran in a profile whose ENVIRONMENT is exactly "production"."""
    return any(load_named_profile(o.environment).env.get("ENVIRONMENT") == PRODUCTION for o in outcomes)


def _fix_items(evidence: Evidence) -> list[str]:
    """The recommended variant to deploy, and what it (or, without one, the original) leaves of start_agent's leak."""
    report = evidence.variants
    items = []
    if report.recommended:
        chosen = report.verdict_of(report.recommended)
        items.append(f"Deploy **{chosen.variant}** ({_inner_summary(chosen.variant)}): failure verdict "
                     f"\"{report.failure_label(chosen)}\" (removed on {_failing_runs_text(evidence, chosen)}), "
                     f"safety {chosen.safety}."
                     f"{_also_qualifying_text(report)}")
    variant = report.recommended or ORIGINAL.name
    left = start_agent_left(report.matrix, variant)
    if left:
        under = f"{variant}, the recommended fix" if report.recommended else "the original"
        items.append(f"Release or reuse the managers `start_agent` creates: under {under}, {left}.")
    return items


def _untouched_items(report: VariantReport) -> list[str]:
    """The failing connections no candidate changes, auth refusals aside (variants.refused_by_rule), as needing their
    own fix: each close and deciding decision with its count and runs."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for profile, connection in report.matrix.all_untouched():
        if not refused_by_rule(connection.code):
            groups.setdefault((connection.code, connection.reason, connection.deciding), []).append(profile)
    if not groups:
        return []
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    parts = [f"{plural(len(profiles), 'connection')} closed {_quoted_close(code, reason)}, decided by "
             f"{deciding} (on {and_list(list(dict.fromkeys(profiles)))})"
             for (code, reason, deciding), profiles in ranked]
    total = sum(len(profiles) for profiles in groups.values())
    return [f"Fix the {plural(total, 'failing connection')} no candidate of chapter 05 changes on their own: "
            f"{'; '.join(parts)}. Every variant closes {'it' if total == 1 else 'them'} exactly as the original does."
            f"{_moved_there_text(report)}"]


def _moved_there_text(report: VariantReport) -> str:
    """`` Under V4, the recommended fix, 2 more connections fail that way (startup-leak-cap-staging): ...``: the
    connections the recommended variant moves to such a mechanism (VariantMatrix.moved_aside), or empty."""
    if report.recommended is None:
        return ""
    moved = [(profile, f) for profile in report.matrix.profiles
             for f in report.matrix.moved_aside(report.recommended, profile) if not refused_by_rule(f.code)]
    if not moved:
        return ""
    where = and_list(list(dict.fromkeys(profile for profile, _ in moved)))
    return (f" Under {report.recommended}, the recommended fix, {plural(len(moved), 'more connection')} "
            f"{'fails' if len(moved) == 1 else 'fail'} that way ({where}): {report.recommended} removes "
            f"{'its' if len(moved) == 1 else 'their'} original failure, and the mechanism above then closes "
            f"{'it' if len(moved) == 1 else 'them'}.")


def _also_qualifying_text(report: VariantReport) -> str:
    """`` V4 (safety same, one switch) also qualifies: the rule recommends ...``, or empty."""
    text = report.also_qualifying_text()
    return f" {text}." if text else ""


def _inner_summary(variant: str) -> str:
    """The variant's summary fit for parentheses: its own parenthesised parts become comma-separated."""
    return VARIANTS[variant].summary.replace(" (", ", ").replace(")", "")


def _recommended_switches(report: VariantReport, bypass_item: bool) -> set[str]:
    """Switches another action item asks for: the recommended variant's, and the bypass refusal's."""
    switches = set(changed_switches(VARIANTS[report.recommended])) if report.recommended else set()
    return switches | ({BYPASS_SWITCH} if bypass_item else set())


def _failing_runs_text(evidence: Evidence, verdict: VariantVerdict) -> str:
    """Where the verdict removes the failure among the matrix's runs where the original fails, to follow "removed on":
    ``5 of 5 failing runs: 4 profiles and the long E2E run staging-e2e-long`` when it removes it on all of them, else
    the removed runs first, ``4 profiles and the long E2E run staging-e2e-long, 5 of the 9 failing runs``; with
    ``; no candidate changes the failures of the other 4`` when some fail only by connections no candidate changes
    (the verdict leaves those aside)."""
    failing = evidence.variants.original_failing_runs()
    judged = {profile for profile, effect in verdict.effects if effect not in {NEITHER_FAILS, INTRODUCED}}
    unjudged = len([name for name in failing if name not in judged])
    tail = ("" if not unjudged
            else f"; no candidate changes the failures of the other {'one' if unjudged == 1 else unjudged}")
    removed_somewhere = set(verdict.where(REMOVED))
    removed = [name for name in failing if name in removed_somewhere]
    if len(removed) == len(failing):
        runs = _runs_breakdown(evidence, failing)
        return f"{len(failing)} of {plural(len(failing), 'failing run')}{f': {runs}' if runs else ''}{tail}"
    if not removed:
        return f"none of the {plural(len(failing), 'failing run')}{tail}"
    return f"{_runs_breakdown(evidence, removed)}, {len(removed)} of the {plural(len(failing), 'failing run')}{tail}"


def _runs_breakdown(evidence: Evidence, runs: Sequence[str]) -> str:
    """``4 profiles and the long E2E run staging-e2e-long``: the runs that are profiles counted, the others named."""
    profiles = [name for name in runs if name in evidence.runs]
    parts = [plural(len(profiles), "profile")] if profiles else []
    parts += [f"the long E2E run {name}" if name == LONG_RUN_PROFILE else f"the run {name}"
              for name in runs if name not in evidence.runs]
    return " and ".join(parts)


#: A failure verdict as what the variant does, to follow "it".
VERDICT_CLAUSES = {NO_EFFECT: "has no effect on the failure", DELAYS: "only delays the failure"}
#: A safety verdict as a clause joined to the failure clause; nothing when safety is unchanged.
SAFETY_CLAUSES = {SAME: "", SAFER: " but is safer", WEAKER: " and weakens safety", MIXED: " and its safety is mixed"}


def _do_not_ship_item(report: VariantReport, verdict: VariantVerdict, recommended_switches: set[str],
                      bypass_number: int | None) -> str:
    """Why a candidate is not the fix: its verdicts, where it fails earlier, and its bypass switch.

    "As a whole" only when another item asks for one of its switches (then part of it is worth shipping).
    """
    switches = changed_switches(VARIANTS[verdict.variant])
    scope = "as a whole" if len(switches) > 1 and recommended_switches & set(switches) else "as the fix"
    does = VERDICT_CLAUSES.get(verdict.failure, verdict.failure)
    worse = _worse_text(report, verdict)
    item = (f"Do not ship **{verdict.variant}** ({_inner_summary(verdict.variant)}) {scope}: it {does}"
            f"{SAFETY_CLAUSES.get(verdict.safety, f', safety {verdict.safety}') if not worse else ''}"
            f"{f'; {worse}' if worse else ''}.")
    if bypass_number is not None and BYPASS_SWITCH in switches:
        item += f" Ship its switch `{BYPASS_SWITCH}` as item {bypass_number} says."
    return item


def _worse_text(report: VariantReport, verdict: VariantVerdict) -> str:
    """Where the variant fails earlier or where the original does not: the close of the first connection it closes
    differently from the original and that close's share of such connections, by group.

    ``1008 "SSOT Auth failed" closes all 36 connections of a and all 180 of b from 0 s, where the original
    first fails at 81 s`` (the original's judged first failure, VariantMatrix.judged, which the verdict's "earlier"
    compares with; when set-aside failures came sooner, ``... at 110 s (its failures no candidate changes, from 5 s,
    set aside)``); connections the original left open on a run where it fails only by connections the verdicts
    set aside: ``1008 "SSOT Auth failed" closes 2 of the 5 connections of c (client e2e) from 30 s, which the
    original left open``.
    """
    matrix = report.matrix
    groups: dict[tuple[str, float, float | None, bool], list[str]] = {}
    for profile, effect in verdict.effects:
        if effect in {EARLIER, INTRODUCED}:
            before = matrix.judged(ORIGINAL.name, profile).first_failure_s
            raw_before = matrix.cell(ORIGINAL.name, profile).first_failure_s
            set_aside_from = raw_before if raw_before != before else None
            original_fails = matrix.cell(ORIGINAL.name, profile).fails
            key = (*first_changed(matrix, verdict.variant, profile), before, original_fails, set_aside_from)
            groups.setdefault(key, []).append(profile)
    texts = []
    for (first, at_s, before, original_fails, set_aside_from), profiles in groups.items():
        code, _, reason = first.partition(" ")
        shares = []
        for number, profile in enumerate(profiles):
            share, clients = changed_share(matrix, verdict.variant, profile, code)
            shares.append(f"{share} {'connections ' if number == 0 else ''}of {profile}{clients}")
        aside = (f" (its failures no candidate changes, from {set_aside_from:g} s, set aside)"
                 if set_aside_from is not None and before is not None else "")
        where = (f"where the original first fails at {before:g} s{aside}" if before is not None
                 else "which the original left open" if original_fails else "where the original does not fail")
        texts.append(f"{_quoted_close(code, reason)} closes {' and '.join(shares)} from {at_s:g} s, {where}")
    return "; ".join(texts)


def _adversarial_set_text() -> str:
    """``the adversarial set (41 fixed hostile inputs, chapter 05)``: the set defined where an item first uses it."""
    return f"the adversarial set ({len(adversarial_outcomes(ORIGINAL.name))} fixed hostile inputs, chapter 05)"


def _auth_bypass_item(report: VariantReport) -> str:
    """The original's accepted tokens and its unsigned ones, what the E2E suite needs first, and V5's gap."""
    tokens = _of_kind(adversarial_outcomes(ORIGINAL.name), "token")
    accepted = [o for o in tokens if o.member in report.matrix.safety_of(ORIGINAL.name).accepted]
    unsigned = _unsigned_accepted(report, ORIGINAL.name)
    shape = _cases_shape(tokens, "token")
    item = (f"Close the auth bypass: under the original, {len(accepted)} of the {len(tokens)} token/environment "
            f"cases ({shape}) of {_adversarial_set_text()} authenticate{_unsigned_tokens_text(unsigned)}.")
    return item + _bypass_refusal_cost(report) + _bypass_refusal_gap(report)


def _cases_shape(outcomes: Sequence[AdversarialOutcome], noun: str) -> str:
    """``5 tokens in 5 environments``: how many hostile inputs of one kind the cases cross with how many places."""
    return (f"{plural(len({o.case for o in outcomes}), noun)} in "
            f"{plural(len({o.environment for o in outcomes}), 'environment')}")


def _unsigned_tokens_text(unsigned: Sequence[AdversarialOutcome]) -> str:
    """``; the one unsigned token that gets in (case) does so in 3 environments (a, b, c)``, per unsigned token."""
    by_case = _environments_by_case(unsigned)
    if not by_case:
        return ""
    places = {case: f"{plural(len(envs), 'environment')} ({', '.join(envs)})" for case, envs in by_case.items()}
    if len(places) == 1:
        ((case, where),) = places.items()
        return f"; the one unsigned token that gets in ({case}) does so in {where}"
    return f"; {len(places)} unsigned tokens get in: " + "; ".join(f"{case} in {where}" for case, where in places.items())


def _unsigned_accepted(report: VariantReport, variant: str) -> list[AdversarialOutcome]:
    """The unsigned token members the variant's safety row counts as accepted."""
    row = report.matrix.safety_of(variant)
    if not row.unsigned_accepted:
        return []
    return [o for o in adversarial_outcomes(variant) if o.unsigned and o.member in row.accepted]


def _places_by_case(outcomes: Sequence[AdversarialOutcome]) -> str:
    """``alg none + E2E headers in a (ENVIRONMENT unset) and b (ENVIRONMENT='staging ')``: each case once with its
    environments and their ENVIRONMENT value, cases joined by "; "."""
    return "; ".join(f"{case} in {and_list([f'{p} ({_environment_value(p)})' for p in places])}"
                     for case, places in _environments_by_case(outcomes).items())


def _environments_by_case(outcomes: Sequence[AdversarialOutcome]) -> dict[str, list[str]]:
    """Each case (sorted) with the environments of its outcomes (sorted)."""
    by_case: dict[str, list[str]] = {}
    for outcome in outcomes:
        by_case.setdefault(outcome.case, []).append(outcome.environment)
    return {case: sorted(places) for case, places in sorted(by_case.items())}


def _environment_value(profile: str, unset: str = "ENVIRONMENT unset") -> str:
    """The profile's ENVIRONMENT quoted so whitespace shows (``ENVIRONMENT='staging '``), or ``unset``."""
    value = load_named_profile(profile).env.get("ENVIRONMENT")
    return unset if value is None else f"ENVIRONMENT={value!r}"


def _context_item(evidence: Evidence, define_set: bool) -> str | None:
    """The context members the original hands a manager, by environment, with the validation its runs use there."""
    outcomes = _of_kind(adversarial_outcomes(ORIGINAL.name), "context")
    accepted = [o for o in outcomes if o.accepted]
    if not accepted:
        return None
    by_environment: dict[str, list[str]] = {}
    for outcome in sorted(accepted, key=lambda o: (o.environment, o.case)):
        by_environment.setdefault(outcome.environment, []).append(outcome.case)
    places = "; ".join(f"in {environment}{_validation_note(evidence, environment)} {', '.join(cases)}"
                       for environment, cases in by_environment.items())
    shape = _cases_shape(outcomes, "context")
    counted = (f"{len(accepted)} of the {len(outcomes)} context/environment cases ({shape}) of "
               f"{_adversarial_set_text()}" if define_set
               else f"{len(accepted)} of the set's {len(outcomes)} context/environment cases ({shape})")
    stubbed = sum(1 for o in accepted if o.route_step == "emergency_stub")
    how = (f" ({len(accepted) - stubbed} with a manager, {stubbed} with the emergency stub after a plain ValueError)"
           if stubbed else "")
    refused = sum(1 for o in accepted if o.constructor_refuses)
    constructor = (f" The context constructor itself refuses the ids of {refused} of these {len(accepted)} (spec 2), "
                   "so no connection brings those." if refused else "")
    return (f"Refuse invalid user contexts in create_websocket_manager as defence in depth: injected at the route's "
            f"manager step, the context constructor bypassed, {counted} are let through by the route under the "
            f"original{how}: {places}.{constructor}")


def _validation_note(evidence: Evidence, environment: str) -> str:
    """`` (relaxed validation)`` when the profile's runs show one validation mode, else nothing."""
    run = evidence.runs.get(environment)
    modes = {c.outcome("factory.validation_mode") for c in run.connections} - {None} if run else set()
    return f" ({next(iter(modes))} validation)" if len(modes) == 1 else ""


def _of_kind(outcomes: Sequence[AdversarialOutcome], kind: str) -> list[AdversarialOutcome]:
    return [o for o in outcomes if o.kind == kind]


def _bypass_refusing(report: VariantReport) -> str | None:
    """The first candidate of the matrix that refuses the E2E bypass in deployed environments."""
    return next((name for name in report.matrix.variants
                 if name != ORIGINAL.name and getattr(VARIANTS[name], BYPASS_SWITCH)), None)


def _bypass_refusal_cost(report: VariantReport) -> str:
    """Profiles whose connections the bypass-refusing variant closes 1008 and the original does not, forged tokens
    (variants.forged_token) aside: refusing those is a safety gain, named apart. Each profile counts only the
    increase, with the auth refusals the original makes too named beside it."""
    matrix = report.matrix
    name = _bypass_refusing(report)
    if name is None:
        return ""
    shares = []
    for profile in matrix.profiles:
        cell = matrix.cell(name, profile)
        added, kept = _added_auth_refusals(cell, matrix.cell(ORIGINAL.name, profile))
        if added:
            besides = f" (besides {kept} the original closes 1008 too)" if kept else ""
            shares.append(f"{share_text(added, cell.connections)} {'connections ' if not shares else ''}of {profile}"
                          f"{besides}")
    cost = (" First give the E2E suite tokens that pass real validation (under "
            f"{name}, which refuses the bypass, {' and '.join(shares)} close 1008)." if shares else "")
    forged = forged_refusals_text(matrix, name, bypassed_only=True)
    free = ", at no cost" if not shares and _does_no_other_harm(report, name) else ""
    gain = f" Refusing the bypass is also a safety gain: {name} refuses {forged}{free}." if forged else ""
    return cost + gain


def _does_no_other_harm(report: VariantReport, variant: str) -> bool:
    """Whether `variant`'s verdict is not "fails earlier or more widely" and it closes no connection differently
    from the original (VariantMatrix.changed: forged-token refusals and moved-aside connections aside)."""
    return report.verdict_of(variant).failure != WORSE and report.matrix.changes_nothing_else(variant)


def _added_auth_refusals(cell: MatrixCell, original: MatrixCell) -> tuple[int, int]:
    """The cell's unforged auth refusals (``_unforged_refusals``) the original's cell does not make, and those it
    makes too (the same connection, by start order, refused by an auth close); cells that record no failing
    connection (built by hand) compare counts only."""
    if not cell.failing or not original.failing:
        refused, before = _unforged_refusals(cell), _unforged_refusals(original)
        return max(refused - before, 0), min(refused, before)
    refused_before = {f.index for f in original.failing if refused_by_rule(f.code)}
    refused = [f.index for f in cell.failing if refused_by_rule(f.code) and not f.forged]
    kept = sum(1 for index in refused if index in refused_before)
    return len(refused) - kept, kept


def _unforged_refusals(cell: MatrixCell) -> int:
    """The cell's auth refusals (variants.refused_by_rule) of tokens that are no forgeries; for a cell that records no
    failing connection (built by hand), its count of auth closes, none of them known to be forged."""
    if not cell.failing:
        return sum(count for code, count in cell.close_codes if refused_by_rule(code))
    return sum(1 for f in cell.failing if refused_by_rule(f.code) and not f.forged)


def _bypass_refusal_gap(report: VariantReport) -> str:
    """The ENVIRONMENT values (an unset one too) under which the bypass-refusing variant still accepts an unsigned
    token, why it misses them (its rule, spec 8 and spec 1 step 1), and where."""
    name = _bypass_refusing(report)
    if name is None:
        return ""
    unsigned = _unsigned_accepted(report, name)
    values = sorted({_environment_value(o.environment, "an unset ENVIRONMENT") for o in unsigned})
    if not values:
        return ""
    return (f" Make the check also treat {and_list(values)} as deployed: {name} refuses the bypass only where "
            "ENVIRONMENT, lower-cased and not stripped, is staging or production, and reads an unset one as "
            f"development, so it still accepts {_places_by_case(unsigned)}.")


def _own_close_switch_text(report: VariantReport, only_cap_refusals: bool = True) -> str:
    """The variant switch that gives the cap's refusals their own close code (spec 8: V5 closes them 1013), seen in
    the matrix; ``only_cap_refusals``: whether every connection the item names is a cap refusal, else the switch
    does that for the cap's refusals only.

    A switch qualifies when its name holds a close code that, under its variant, closes exactly the cap's refusals
    of a profile where the original fails, and that the original never sends there.
    """
    matrix = report.matrix
    failing = [p for p in matrix.profiles if matrix.cell(ORIGINAL.name, p).fails]
    for variant in matrix.variants:
        for switch in changed_switches(VARIANTS[variant]) if variant != ORIGINAL.name else []:
            for profile in failing:
                cell = matrix.cell(variant, profile)
                code, _, reason = (cell.first_failure or "").partition(" ")
                if (code and code in switch and cell.count(code) == cell.cap_refusals > 0
                        and matrix.cell(ORIGINAL.name, profile).count(code) == 0):
                    scope = "" if only_cap_refusals else " for the cap's refusals only"
                    return (f" {variant}'s switch `{switch}` does that{scope}: under {variant} the cap's refusals "
                            f"close {_quoted_close(code, reason)}.")
    return ""


# --- lessons -------------------------------------------------------------------------------


def lessons(evidence: Evidence) -> Markdown:
    """Lessons, each computed from a section above."""
    items = []
    table = evidence.divergence[1]
    first_points = first_divergence_counts(table, evidence.failing)
    isolated_points = isolated_divergence_counts(evidence.isolation.isolations)
    if isolated_points and first_points and isolated_points.keys().isdisjoint(first_points):
        pairs = plural(len(evidence.isolation.isolations), "pair")
        where = ", ".join(f"{point} in {n} of {pairs}" for point, n in sorted(
            isolated_points.items(), key=lambda item: (-item[1], item[0])))
        items.append(f"The first difference between a failing profile and `{evidence.reference}` "
                     f"({_counts_text(first_points)}) is not where the failure is decided: with everything else "
                     f"held fixed, dd's isolated pairs first part at {where} ({_dd_source(evidence)}). Comparing two "
                     "environments names a difference, not a cause (root cause).")
    local_evidence = _local_evidence_lesson(evidence)
    if local_evidence:
        items.append(local_evidence)
    items.extend(_shared_traffic_lessons(evidence))
    factory_closes = factory_reason_closes(evidence.failures)
    mislabelled = validation_passed(factory_closes)
    if mislabelled:
        told = [c for c in factory_closes if cause_in_error_frame(c)]
        items.append(f"A close reason is a label, not a diagnosis: \"{FACTORY_FAILED_REASON}\" was sent for "
                     f"connections whose SSOT validation passed ({len(mislabelled)} of "
                     f"{len(factory_closes)}){_frame_lesson_text(told, factory_closes)} (detection).")
    return Markdown("\n".join(f"- {item}" for item in items or [_no_lesson_text(evidence)]))


def _no_lesson_text(evidence: Evidence) -> str:
    """Why the lessons are empty: no failing connection, only the long run's (chapter 05 draws its lessons), or
    no lesson's condition holds."""
    long_run = _long_run_failing_alone(evidence)
    if long_run is not None:
        return (f"No lesson here: these lessons are drawn from the failing profiles' runs and no profile fails; only "
                f"{_long_run_run_name(evidence.variants)} does ({len(long_run.failing)} of its "
                f"{plural(long_run.connections, 'connection')} closed, the first at {long_run.first_failure_s:g} s), "
                "and chapter 05's lessons cover it.")
    if not evidence.failures:
        return "No lesson here: no connection failed under any profile."
    return ("No lesson here: none of this section's computed findings (dd against the first difference, the "
            "reference's evidence, shared traffic, mislabelled closes) holds for these runs.")


def _dd_source(evidence: Evidence) -> str:
    """Where the dd from the evidence's reference can be read: chapter 04 isolates from ISOLATION_REFERENCE only."""
    if evidence.reference == ISOLATION_REFERENCE:
        return "chapter 04"
    return f"the dd ran here from `{evidence.reference}`; chapter 04 runs dd from `{ISOLATION_REFERENCE}`"


def _frame_lesson_text(told: Sequence[ConnectionResult], closes: Sequence[ConnectionResult]) -> str:
    """``; the diagnosis was in the error frame before the close ...`` when any frame carried the cause."""
    if not told:
        return ""
    return (f"; the diagnosis was in the error frame sent before the close, whose details.error_message named "
            f"the innermost cause for {len(told)} of {len(closes)}: read the frame, not the close reason")


def isolated_divergence_counts(isolations: Mapping[str, ProfileIsolation]) -> Counter[str]:
    """Where dd's isolated pairs (differing only in the minimal difference) first part, counted over pairs.

    A pair with no aligned connections, or whose aligned traces are identical, counts nowhere.
    """
    return Counter(iso.isolated_divergence.divergence.point for iso in isolations.values()
                   if iso.isolated_divergence is not None and iso.isolated_divergence.divergence is not None)


@dataclass(frozen=True)
class Refusal:
    """A failing connection, with how many connections its user had opened on its instance by then."""

    nth: int
    profile: str
    connection: ConnectionResult


def connections_per_user_and_instance(run: RunResult) -> list[tuple[int, ConnectionResult]]:
    """Each connection in start order with its rank among its user's connections to its instance (from 1)."""
    opened: Counter[tuple[str, int]] = Counter()
    ranked = []
    for connection in sorted(run.connections, key=lambda c: (c.at_s, c.index)):
        opened[(str(connection.user_id), connection.instance)] += 1
        ranked.append((opened[(str(connection.user_id), connection.instance)], connection))
    return ranked


def fewest_connections_refusal(runs: Mapping[str, RunResult], agent: bool = False,
                               cap_only: bool = False) -> Refusal | None:
    """The failing connection that came at the lowest rank among its user's connections to one instance.

    ``agent``: the connection with a refused start_agent message instead (refused without a close, spec 1
    step 12); ``cap_only``: only connections the per-user manager cap refused (spec 4.2). Ties go to the earlier
    connection, then the profile name.
    """
    refused = ((lambda c: c.start_agent_refusals() > 0) if agent
               else refused_at_cap if cap_only else (lambda c: c.failed))
    refusals = [Refusal(nth, name, connection) for name, run in runs.items()
                for nth, connection in connections_per_user_and_instance(run) if refused(connection)]
    return min(refusals, key=lambda r: (r.nth, r.connection.at_s, r.profile, r.connection.index), default=None)


def _local_evidence_lesson(evidence: Evidence) -> str | None:
    """The reference's connections per user and instance against the refusal at the fewest connections in any profile."""
    reference_run = evidence.runs.get(evidence.reference)
    refusal = fewest_connections_refusal(evidence.runs)
    if reference_run is None or refusal is None:
        return None
    most = max((nth for nth, _ in connections_per_user_and_instance(reference_run)), default=0)
    if most >= refusal.nth:
        return None
    local = evidence.reference == REFERENCE
    subject, maker = ("The report's local evidence", "the local evidence") if local else ("The reference", "it")
    first = refusal.connection
    agent = fewest_connections_refusal(evidence.runs, agent=True)
    return (f"{subject} (`{evidence.reference}`) ran at most {plural(most, 'connection')} per user and backend "
            f"instance; in every profile's traffic no connection was refused before its user's "
            f"{ordinal(refusal.nth)} connection to one instance (the fewest: {first.user_id}'s "
            f"{ordinal(refusal.nth)} connection to instance {first.instance} of {refusal.profile}, at "
            f"{first.at_s:g} s): the failure needs repeated connections of one user to one instance, which {maker} "
            f"never made (trigger).{_agent_refusal_text(agent, refusal.nth)}")


def _agent_refusal_text(agent: Refusal | None, nth: int) -> str:
    """`` A start_agent message was refused sooner, without a close: ...`` when one was, on a connection of its
    user's to one instance ranked below ``nth``."""
    if agent is None or agent.nth >= nth:
        return ""
    connection = agent.connection
    return (f" A start_agent message was refused sooner, without a close: on {connection.user_id}'s "
            f"{ordinal(agent.nth)} connection to instance {connection.instance} of {agent.profile}, started at "
            f"{connection.at_s:g} s.")


def _shared_traffic_lessons(evidence: Evidence) -> list[str]:
    """Per shared traffic dd isolated an environment factor in, the sentence opening with that traffic: the factors,
    and, for the cap's refusals, the connections per user and instance they allowed."""
    lessons_found = []
    for group in shared_traffic(evidence):
        isolations = [evidence.traffic_isolations[name] for name in group if name in evidence.traffic_isolations]
        factors = Counter(f"`{c.describe()}`" for iso in isolations for c in iso.minimal_difference
                          if is_environment_factor(c.factor))
        if not factors:
            continue
        passing = isolations[0].passing
        passing_members = _passing_members(evidence, group)
        failing = [iso.failing for iso in isolations]
        isolated = [f"{factor} ({plural(n, 'pair')})" for factor, n in sorted(factors.items())]
        kinds = {_factor_kind(c.factor) for iso in isolations for c in iso.minimal_difference
                 if is_environment_factor(c.factor)}
        lessons_found.append(
            f"In the traffic that {and_list(group)} replay, {_decider_text(kinds)} decides whether it fails"
            f"{_reference_factors_text(evidence)}: it fails in {and_list(failing)} and passes in "
            f"{and_list(passing_members)}; dd {_dd_between_text(passing, passing_members)} isolates "
            f"{and_list(isolated)}{_held_pairs_text(isolations)}"
            f"{_cap_ranking_text(evidence, passing, failing)} (trigger).")
    return lessons_found


def _passing_members(evidence: Evidence, group: Sequence[str]) -> list[str]:
    """The members of one shared traffic whose run has no failure, in the group's order."""
    return [name for name in group if not evidence.runs[name].failures]


def _dd_between_text(passing: str, passing_members: Sequence[str]) -> str:
    """``between them`` when the traffic has one passing member; else which of them dd started from
    (``shared_traffic_isolations``: the first by name)."""
    return "between them" if len(passing_members) == 1 else f"from {passing} to each failing member"


def _cap_ranking_text(evidence: Evidence, passing: str, failing: Sequence[str]) -> str:
    """``. In <passing> no user made more than 4 connections to one instance; in the failing members no connection
    was refused at the per-user cap before its user's 6th ...``: when the cap refused any of the failing members'
    connections, each later in its user's connections to one instance than the passing member ever got; else
    empty."""
    most = max((nth for nth, _ in connections_per_user_and_instance(evidence.runs[passing])), default=0)
    refusal = fewest_connections_refusal({name: evidence.runs[name] for name in failing}, cap_only=True)
    if refusal is None or refusal.nth <= most:
        return ""
    return (f". In {passing} no user made more than {plural(most, 'connection')} to one instance; in the failing "
            f"members no connection was refused at the per-user cap before its user's {ordinal(refusal.nth)} "
            f"connection to one instance (the fewest: {refusal.connection.user_id}'s, to instance "
            f"{refusal.connection.instance} of {refusal.profile})"
            f"{_at_or_past_text([evidence.runs[name] for name in failing], refusal.nth)}")


TOPOLOGY_FACTOR_KINDS = frozenset({"instances", "routing"})
"""The environment factor kinds (isolate.ENVIRONMENT_FACTOR_PREFIXES) that are deployment topology, not variables."""


def _factor_kind(path: str) -> str:
    """``env``, ``process``, ``startup``, ``instances`` or ``routing``: the environment factor kind of ``path``."""
    return next(prefix.rstrip(".") for prefix in ENVIRONMENT_FACTOR_PREFIXES if path.startswith(prefix))


def _decider_text(kinds: set[str]) -> str:
    """What dd's isolated environment factors are: deployment topology only, or where the code runs in general."""
    if kinds <= TOPOLOGY_FACTOR_KINDS:
        return f"the deployment topology ({', '.join(sorted(kinds))}), not an environment variable,"
    return f"where the code runs ({', '.join(sorted(kinds))})"


def _at_or_past_text(runs: Sequence[RunResult], nth: int) -> str:
    """``; of the N connections ranked nth or later ..., F closed and P passed: ...`` over ``runs``."""
    ranked = [c for run in runs for rank, c in connections_per_user_and_instance(run) if rank >= nth]
    closed = sum(refused_at_cap(c) for c in ranked)
    passed = sum(not c.failed for c in ranked)
    otherwise = len(ranked) - closed - passed
    rule = (": a connection that finds its user's managers at the cap is refused only when emergency cleanup finds "
            "none to free (spec 4.2: "
            "one inactive, idle more than 5 minutes, or created more than 5 minutes ago with no connection)"
            if passed else "")
    other = f", {otherwise} failed otherwise" if otherwise else ""
    return (f"; of the {plural(len(ranked), 'connection')} there ranked {ordinal(nth)} or later among their user's "
            f"to one instance, {closed} closed at the cap{other} and {passed} passed{rule}")


def _reference_factors_text(evidence: Evidence) -> str:
    """``, though delta debugging from `local-debug` isolated traffic factors only (...)`` when it did, else empty."""
    if any(is_environment_factor(c.factor) for iso in evidence.isolation.isolations.values()
           for c in iso.minimal_difference):
        return ""
    return (f", though delta debugging from `{evidence.reference}` isolated traffic factors only (none of "
            f"{ENVIRONMENT_FACTOR_KINDS})")


def postmortem_key_result(evidence: Evidence) -> str:
    failures = evidence.failures
    counts = evidence.ledger.counts()
    deciding = _counts_text(deciding_counts(failures))
    long_run = f"; only {_long_run_run_name(evidence.variants)} fails" if _long_run_failing_alone(evidence) else ""
    return (
        f"{len(evidence.failing)} of {len(evidence.runs)} profiles fail ({len(failures)} connections, "
        f"{users_hit_text(evidence, detail=False)}){long_run}{f'; decided by {deciding}' if deciding else ''}; "
        f"report claims refuted {counts.get(Verdict.REFUTED.value, 0)} of {len(evidence.ledger.findings)} "
        f"({evidence.ledger.tested()} tested with runs); "
        f"resolution {evidence.variants.recommended or _no_resolution_text(evidence.variants)}"
    )


def _no_resolution_text(report: VariantReport) -> str:
    """``none``, and why when there is nothing a variant could fix."""
    if not report.nothing_to_fix or not report.verdicts:
        return "none"
    return "none (no failure to fix)" if not report.original_fails else "none (no candidate changes the failures)"


# --- figures -------------------------------------------------------------------------------


def _no_figure(title: str) -> Chart:
    figure = Figure(figsize=(6.0, 1.0))
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    return figure, title


def trigger_chart(evidence: Evidence) -> Chart:
    """The 1-minimal failing traffic of the worst profile (ddmin), highlighted in its plan."""
    if evidence.reduction is None:
        return _no_figure("no failing profile: no traffic to reduce")
    return traffic_chart(evidence.reduction)


def root_cause_chart(evidence: Evidence) -> Chart:
    """Managers against the cap over time for the profile with the most failing connections."""
    if evidence.worst_profile is None:
        return _no_figure("no failing profile: no timeline to draw")
    return timeline_chart(evidence.runs[evidence.worst_profile])


@dataclass(frozen=True)
class ComparedDivergence:
    """Notebook 02's table with, first, the row the chart's column labels show: each profile's compared
    connection (``#`` its place in its run's start order) and its close."""

    table: DivergenceTable
    compared: tuple[str, ...]

    @property
    def profiles(self) -> tuple[str, ...]:
        return self.table.profiles

    def _repr_markdown_(self) -> str:
        header, rule, *rows = self.table._repr_markdown_().splitlines()
        compared = "| compared connection, close | " + " | ".join(self.compared) + " |"
        return "\n".join([header, rule, compared, *rows])


def divergence_figure(evidence: Evidence) -> tuple[Figure, ComparedDivergence]:
    """Decision point x profile outcomes against the reference (notebook 02's chart), the table with the
    compared connections the chart's labels name (first failing, else first)."""
    figure, table = evidence.divergence
    compared = []
    for name in table.profiles:
        connection = compared_connection(evidence.runs[name])
        compared.append("-" if connection is None else f"#{connection.index} {close_code_label(connection.close_code)}")
    return figure, ComparedDivergence(table, tuple(compared))


def resolution_chart(evidence: Evidence) -> Chart:
    """The variant x profile matrix (notebook 05's chart)."""
    return variant_chart(evidence.variants)
