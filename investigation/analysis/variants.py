"""The candidate changes (spec section 8) against every profile: the variant x profile matrix.

For every variant and every profile this runs the simulation and records how
the connections ended (1011, 1008, 1013, or without a close frame from the server), which users were hit and
the first failure: when the first failing connection opened (a failing connection is dated by its start). One extra
profile, built here from
``staging-e2e``, runs the E2E suite for much longer, so that a change which only
postpones the failure shows it. Next to the matrix stand two safety columns
computed from the adversarial set (:mod:`investigation.analysis.adversarial`).
Verdicts are computed from the matrix by the rules of :func:`failure_verdict`,
:func:`safety_verdict` and :func:`recommend`.

    report = variant_report()
    report.recommended          # e.g. "V4" (computed, not typed)
    report                      # renders as a markdown table in a notebook
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path

from IPython.display import Markdown

from investigation.analysis.adversarial import (
    TOKEN_CASES,
    AdversarialOutcome,
    accepted_members,
    adversarial_outcomes,
    unsigned_token_accepted,
)
from investigation.backend.variants import ORIGINAL, VARIANTS, Variant, get_variant
from investigation.clock import outside_event_loop
from investigation.notebook_errors import NotebookParameterError
from investigation.profiles import Profile, active_profiles_dir, list_profiles, load_profile, profile_from_dict
from investigation.report import and_list, format_table, plural, share_text
from investigation.run_cache import shared
from investigation.simulate import simulate
from investigation.trace import POINT_ORDER, ConnectionResult, RunResult, close_code_label, identified_users

LONG_RUN_PROFILE = "staging-e2e-long"
LONG_RUN_TESTS_PER_PROCESS = 60
SHOWN_CLOSE_CODES = ("1011", "1008", "1013", "open")
"""Close-code count columns; "open" (the JSON contract's label) counts connections that ended without a close
frame from the server."""
CAP_MESSAGE = "maximum number of WebSocket managers"
START_AGENT_COLUMN = "start_agent refused"
"""Column of start_agent messages the factory refused, of those sent: a refusal raises inside the handler and
closes nothing (spec 1, step 12), so the close-code columns do not count it."""
NO_FAILURE = "-"
NONE_IDENTIFIED = "none identified"
"""The users-hit cell of a run whose failing connections all failed before the server identified a user."""

# How a variant's failures on one profile compare with the original's (see failure_effect).
NEITHER_FAILS = "no failure"
REMOVED = "removed"
DELAYED = "delayed"
SAME_TIME = "same time"
EARLIER = "earlier"
INTRODUCED = "introduced"
# How a table labels a cell whose raw counts the verdicts' judged view (VariantMatrix.judged) reads otherwise
# (see effect_label).
SET_ASIDE = "unchanged, set aside"
FORGED_SET_ASIDE = "forged refused, set aside"
MORE_FAILURES = "more failures"

# Per-variant verdicts.
REMOVES_EVERYWHERE = "removes the failure on every profile"
DELAYS = "delays the failure"
REMOVES_SOMEWHERE = "removes the failure on some profiles only"
NO_EFFECT = "no effect on the failure"
REMOVES_WHERE_CHANGED = "removes the failure wherever a candidate changes it"
"""How :data:`REMOVES_EVERYWHERE` reads when failing connections no candidate changes are set aside
(:meth:`VariantMatrix.all_untouched`): those still fail, so not "on every profile"."""
NOTHING_TO_FIX = "no failure to fix"
"""The original fails on no run, once the connections every variant closes alike are set aside."""
WORSE = "fails earlier or more widely"
SAFER, SAME, WEAKER, MIXED = "safer", "same", "weaker", "mixed"


# --- the long run ------------------------------------------------------------------------


def own_tests_per_process(base: Profile) -> int:
    """The most tests one of the profile's test processes (one client each) runs."""
    return max(client.connections for client in base.clients)


def _long_run_head(base: Profile, tests_per_process: int) -> str:
    """``staging-e2e run longer``, or how the run compares when it is not longer than the profile's."""
    base_tests = own_tests_per_process(base)
    if tests_per_process > base_tests:
        return f"{base.name} run longer than its own {base_tests} tests per process"
    comparison = "as many tests as" if tests_per_process == base_tests else "fewer tests than"
    return f"{base.name} with {comparison} its own {base_tests} per process (not a longer run)"


def _tests(count: int) -> str:
    return "1 test" if count == 1 else f"{count} tests back to back"


def _each_process(count: int) -> str:
    """The subject of the long run's sentence: its test processes (one client each)."""
    return "its one E2E test process" if count == 1 else f"each of its {count} E2E test processes"


def long_run_profile(
    tests_per_process: int = LONG_RUN_TESTS_PER_PROCESS, profiles_dir: str | Path | None = None
) -> Profile:
    """staging-e2e with every test process (one client each) running `tests_per_process` tests.

    The same test processes, users, headers, tokens, spacing and messages; only the
    number of tests each process runs back to back (spec 7) changes. staging-e2e is
    looked up like every profile (``profiles_dir``, else ``INVESTIGATION_PROFILES_DIR``, wins).

    Raises:
        NotebookParameterError: ``tests_per_process`` (notebook 05's parameter) is not a whole number >= 1.
    """
    if isinstance(tests_per_process, bool) or not isinstance(tests_per_process, int) or tests_per_process < 1:
        raise NotebookParameterError("tests_per_process", f"must be a whole number of at least 1, got {tests_per_process!r}")
    base = load_profile("staging-e2e", profiles_dir)
    data = base.model_dump(exclude={"name"})
    data["clients"] = [{**client, "connections": tests_per_process} for client in data["clients"]]
    last_start = max(c.start_s + (tests_per_process - 1) * c.spacing_s for c in base.clients)
    data["description"] = (
        f"{_long_run_head(base, tests_per_process)}: {_each_process(len(base.clients))} runs "
        f"{_tests(tests_per_process)}; the last test starts at {last_start:.0f} s."
    )
    return profile_from_dict(LONG_RUN_PROFILE, data, source="<investigation.analysis.variants>")


def matrix_profiles(
    profiles_dir: str | Path | None = None, tests_per_process: int = LONG_RUN_TESTS_PER_PROCESS
) -> tuple[Profile, ...]:
    """Every known profile plus the long E2E run, sorted by name."""
    profiles = [*list_profiles(profiles_dir), long_run_profile(tests_per_process, profiles_dir)]
    return tuple(sorted(profiles, key=lambda profile: profile.name))


def runs_text(names: Sequence[str], listed: bool = True, longer: bool = True) -> tuple[str, str]:
    """A set of the matrix's profiles counted in words: (count, detail).

    The long run is built here, not a profile of data/profiles, so a set that holds it is
    counted in runs: ``("5 runs", " (4 profiles: a, b, c, d; and the long E2E run staging-e2e-long)")``;
    without it, ``("4 profiles", " (a, b, c, d)")``. ``listed=False`` leaves the names out (and
    the detail empty when the long run is not in the set). ``longer=False`` (the run is not longer than
    staging-e2e's own) calls it ``the E2E run``.
    """
    profiles = [name for name in names if name != LONG_RUN_PROFILE]
    if len(profiles) == len(names):
        return plural(len(profiles), "profile"), f" ({', '.join(profiles) or 'none'})" if listed else ""
    shown = f"{plural(len(profiles), 'profile')}: {', '.join(profiles)};" if listed else plural(len(profiles), "profile")
    head = f"{shown} and " if profiles else ""
    return plural(len(names), "run"), f" ({head}{_run_name(LONG_RUN_PROFILE, longer)})"


def _where_the_original_fails(removed: Sequence[str], longer: bool = True, failing: Sequence[str] = ()) -> str:
    """``all 5 runs where the original fails, including the long E2E run``; profiles when the long run is not one.

    ``failing`` (every run where the original fails) may hold more runs than ``removed``, those whose failures no
    candidate changes: ``7 of the 8 runs where the original fails, ... (the other's failures no candidate changes)``.
    """
    others = [name for name in failing if name not in removed]
    if others:
        return _removed_of_failing(removed, failing, len(others), longer)
    long_run = LONG_RUN_PROFILE in removed
    noun = "run" if long_run else "profile"
    count = len(removed)
    head = f"the one {noun}" if count == 1 else f"both {noun}s" if count == 2 else f"all {count} {noun}s"
    if not long_run:
        return f"{head} where the original fails"
    run = "the long E2E run" if longer else "the E2E run"
    return f"{head} where the original fails, " + (run if count == 1 else f"including {run}")


def _removed_of_failing(removed: Sequence[str], failing: Sequence[str], others: int, longer: bool) -> str:
    """``7 of the 8 runs where the original fails, including the long E2E run (the other's failures no candidate
    changes)``."""
    noun = "run" if LONG_RUN_PROFILE in failing else "profile"
    head = f"{len(removed)} of the {len(failing)} {noun}s where the original fails"
    if LONG_RUN_PROFILE in removed:
        run = "the long E2E run" if longer else "the E2E run"
        head += f", including {run}" if len(removed) > 1 else f", {run}"
    other = "the other's failures" if others == 1 else f"the failures of the other {others}"
    return f"{head} ({other} no candidate changes)"


# --- the matrix --------------------------------------------------------------------------


@dataclass(frozen=True)
class FailingConnection:
    """A connection the server closed with a failure: which planned connection, and its close.

    Two are equal when they are the same planned connection (start order, client, start time) closed with the
    same code and reason; the deciding decision (``point=outcome``) rides along without taking part.
    """

    index: int
    client: str
    at_s: float
    close: str
    """``1008 SSOT Auth failed``: the close code and reason."""
    deciding: str = field(default="-", compare=False)
    forged: str = field(default="", compare=False)
    """What makes the refused token a forgery (:func:`forged_token`), or empty: its refusal is the server's
    validation working, not a failure."""
    innermost: str = field(default="-", compare=False)
    """The innermost exception type of its cause chain, ``no exception`` when the chain is empty."""

    @property
    def code(self) -> str:
        """The close code's label (``1008``), the first word of :attr:`close`."""
        return self.close.split(" ", 1)[0]

    @property
    def reason(self) -> str:
        """The close reason (``SSOT Auth failed``), :attr:`close` after its code."""
        return self.close.partition(" ")[2]


@dataclass(frozen=True)
class MatrixCell:
    """How one profile's connections ended under one variant."""

    profile: str
    variant: str
    close_codes: tuple[tuple[str, int], ...]
    users_hit: tuple[str, ...]
    first_failure_s: float | None
    first_failure: str | None
    cap_refusals: int = 0
    start_agent_sent: int = 0
    start_agent_refused: int = 0
    """start_agent messages whose manager the factory refused: no close frame, the agent silently does not start."""
    start_agent_refused_at_cap: int = 0
    """Of those, the ones sent while the user's managers on the instance stood at the cap."""
    peak_managers: int = 0
    """The most managers one user held on one instance at any time of the run."""
    managers_cap: int = 0
    """The variant's per-user manager cap (spec 4.2; V3 raises it)."""
    failing: tuple[FailingConnection, ...] = ()
    """The failing connections in the run's order (its first is the first failure)."""
    bypassed: tuple[int, ...] = ()
    """The start-order indices of the connections authentication let in through the E2E bypass
    (``auth.e2e_bypass=yes``, spec 5.2), in the run's order."""

    def count(self, label: str) -> int:
        """Connections that ended with close code `label` ("1011", ..., or "open")."""
        return dict(self.close_codes).get(label, 0)

    @property
    def fails(self) -> bool:
        return self.first_failure_s is not None

    @property
    def connections(self) -> int:
        """Every connection of the run, however it ended."""
        return sum(count for _, count in self.close_codes)

    @property
    def refused(self) -> int:
        """Connections the server closed with any close code (every count but "open")."""
        return sum(count for label, count in self.close_codes if label != "open")


def cell_from_run(run: RunResult, forged: Mapping[str, str] | None = None) -> MatrixCell:
    """Summarise one run: close codes, the users authentication established (trace.identified_users) among the refused
    connections, the first failure. ``forged``: the clients whose profile declares a forged token
    (:func:`forged_clients`)."""
    first = run.first_failure()
    hit = identified_users(run.failures)
    return MatrixCell(
        profile=run.profile,
        variant=run.variant,
        close_codes=tuple(sorted(run.close_code_counts().items())),
        users_hit=tuple(sorted(hit)),
        first_failure_s=None if first is None else first.at_s,
        first_failure=None if first is None else f"{close_code_label(first.close_code)} {first.close_reason}",
        cap_refusals=sum(1 for connection in run.failures if refused_by_the_cap(connection)),
        start_agent_sent=sum(sum(c.tally("route.start_agent").values()) for c in run.connections),
        start_agent_refused=sum(c.start_agent_refusals() for c in run.connections),
        start_agent_refused_at_cap=sum(c.start_agent_refusals() for c in run.connections if _held_the_cap(run, c)),
        peak_managers=max((change.count for change in run.manager_counts), default=0),
        managers_cap=run.max_managers_per_user,
        failing=tuple(_failing_connection(connection, forged or {}) for connection in run.failures),
        bypassed=tuple(c.index for c in run.connections if c.outcome("auth.e2e_bypass") == "yes"),
    )


AUTH_CLOSE = 1008
"""The close of an auth failure (spec 1, step 5)."""


def refused_by_rule(code: str) -> bool:
    """Whether a close code's label (``1008``) is an auth refusal's (:data:`AUTH_CLOSE`, spec close table: any auth
    failure).

    The one place of the auth-refusal policy: such a close is the server refusing the client's credentials or
    identity (an expired, forged or unknown token), which no fix of the server is asked for. The verdicts still judge
    a variant's auth refusals the original does not make (refusing a user the original lets in is harm), but the
    incident's failures to fix (the postmortem's worst profile, its fix items) leave every auth refusal aside.
    """
    return code == close_code_label(AUTH_CLOSE)
BAD_SIGNATURE = "bad signature"
UNSIGNED = "unsigned"


FORGED_TOKEN_KINDS: dict[str, str] = {"bad_signature": BAD_SIGNATURE, "alg_none": UNSIGNED}
"""The profile token kinds that are forgeries (profiles.TokenKind): signed with a secret the server does not
hold, or unsigned (alg none). A literal token is taken at face value: nothing says it is forged."""


def forged_clients(profile: Profile) -> dict[str, str]:
    """The clients of ``profile`` that present a forged token, with what makes it one (``FORGED_TOKEN_KINDS``)."""
    return {client.name: FORGED_TOKEN_KINDS[client.token] for client in profile.clients
            if client.token in FORGED_TOKEN_KINDS}


def forged_token(connection: ConnectionResult, forged: Mapping[str, str]) -> str:
    """What makes the token of an auth refusal (close 1008, spec 1 step 5) a forgery, from its client's declared
    token kind (``forged``: :func:`forged_clients`), or empty when it is not one or the close is no auth refusal.

    The traffic, not the server, knows a forgery: an opaque token the bypass used to let in and a token of the
    suite's own signed with an old secret are refused the same way, and are costs, not gains.
    """
    if connection.close_code != AUTH_CLOSE:
        return ""
    return forged.get(connection.client, "")


def _failing_connection(connection: ConnectionResult, forged: Mapping[str, str]) -> FailingConnection:
    deciding = connection.deciding_decision()
    return FailingConnection(
        index=connection.index,
        client=connection.client,
        at_s=connection.at_s,
        close=f"{close_code_label(connection.close_code)} {connection.close_reason}",
        deciding="-" if deciding is None else f"{deciding.point}={deciding.outcome}",
        forged=forged_token(connection, forged),
        innermost=connection.innermost_type() or "no exception",
    )


def _held_the_cap(run: RunResult, connection: ConnectionResult) -> bool:
    """Whether the connection's user held the cap of managers on its instance at some time while it was open."""
    history = sorted((change.at_s, change.count) for change in run.manager_counts
                     if (change.user_id, change.instance) == (str(connection.user_id), connection.instance))
    before = [count for at_s, count in history if at_s <= connection.at_s][-1:]
    during = [count for at_s, count in history if connection.at_s < at_s <= connection.ended_at_s]
    return max([*before, *during], default=0) >= run.max_managers_per_user


def refused_by_the_cap(connection: ConnectionResult) -> bool:
    """Whether the per-user manager cap (spec 4.2) refused the connection: its cause chain holds the cap's message."""
    return any(CAP_MESSAGE in link.message for link in connection.cause_chain)


@dataclass(frozen=True)
class SafetyRow:
    """One variant against the adversarial set."""

    variant: str
    accepted: tuple[str, ...]
    total: int
    unsigned_accepted: bool
    unsigned_in: tuple[tuple[str, str], ...] = ()
    """The accepted unsigned members as (case, profile with its ENVIRONMENT), e.g.
    ``("alg none + E2E headers", "staging-env-whitespace (ENVIRONMENT='staging ')")``."""

    def unsigned_members(self) -> str:
        """The accepted unsigned members, each case once with its profiles: ``alg none + E2E headers in a, b``."""
        by_case: dict[str, list[str]] = {}
        for case, where in self.unsigned_in:
            by_case.setdefault(case, []).append(where)
        return "; ".join(f"{case} in {', '.join(places)}" for case, places in by_case.items())

    def unsigned_text(self) -> str:
        """``no``, or ``yes: `` and the accepted unsigned members (case, profiles and their ENVIRONMENT)."""
        if not self.unsigned_accepted:
            return "no"
        return f"yes: {self.unsigned_members()}" if self.unsigned_in else "yes"


def unsigned_tokens_text(variant: str, still: bool = False) -> str:
    """Which unsigned tokens of the adversarial set authenticate under `variant`, and where; which are refused.

    ``the set's "alg none + E2E headers" (unsigned token ..., sent with the E2E suite's headers) still
    authenticates in a, b and c; its "alg none" (unsigned token (alg: none)) is refused everywhere (INVALID_FORMAT)``.
    """
    tokens = [o for o in adversarial_outcomes(variant) if o.kind == "token" and o.unsigned]
    described = {case.name: f'"{case.name}" ({case.description})' for case in TOKEN_CASES}
    parts = []
    for name in dict.fromkeys(o.case for o in tokens):
        members = [o for o in tokens if o.case == name]
        accepted = sorted(o.environment for o in members if o.accepted)
        if accepted:
            parts.append(f"{described[name]} {'still ' if still else ''}authenticates in {and_list(accepted)}")
        else:
            outcomes = sorted({o.outcome for o in members})
            parts.append(f"{described[name]} is refused in every profile tried ({', '.join(outcomes)})")
    return "the set's " + "; its ".join(parts)


def safety_row(variant: str) -> SafetyRow:
    return SafetyRow(
        variant=variant,
        accepted=tuple(sorted(accepted_members(variant))),
        total=len(adversarial_outcomes(variant)),
        unsigned_accepted=unsigned_token_accepted(variant),
        unsigned_in=tuple(
            _unsigned_member_text(outcome)
            for outcome in adversarial_outcomes(variant)
            if outcome.accepted and outcome.unsigned
        ),
    )


def _unsigned_member_text(outcome: AdversarialOutcome) -> tuple[str, str]:
    """The member's case, and its profile with the profile's ENVIRONMENT value quoted (whitespace shows)."""
    environment = load_profile(outcome.environment).env.get("ENVIRONMENT")
    value = "ENVIRONMENT unset" if environment is None else f"ENVIRONMENT={environment!r}"
    return outcome.case, f"{outcome.environment} ({value})"


@dataclass(frozen=True)
class VariantMatrix:
    """Variants x profiles, and each variant's safety row; variants in spec order, profiles sorted."""

    variants: tuple[str, ...]
    profiles: tuple[str, ...]
    cells: tuple[MatrixCell, ...]
    safety: tuple[SafetyRow, ...]

    def cell(self, variant: str, profile: str) -> MatrixCell:
        for cell in self.cells:
            if cell.variant == variant and cell.profile == profile:
                return cell
        raise KeyError((variant, profile))

    def safety_of(self, variant: str) -> SafetyRow:
        for row in self.safety:
            if row.variant == variant:
                return row
        raise KeyError(variant)

    def original_refusals(self) -> tuple[int, int]:
        """Over every profile: connections the original refuses, and how many of them the manager cap refuses."""
        cells = [self.cell(ORIGINAL.name, profile) for profile in self.profiles]
        return sum(cell.refused for cell in cells), sum(cell.cap_refusals for cell in cells)

    def untouched(self, profile: str) -> tuple[FailingConnection, ...]:
        """The original's failing connections on `profile` that close alike under every other variant of the matrix.

        Alike: the same planned connection, the same close code and reason. No candidate changes them, so the
        verdicts judge the rest (:meth:`judged`); with no candidate in the matrix there is nothing to compare, so none.
        """
        candidates = [set(self.cell(variant, profile).failing) for variant in self.variants if variant != ORIGINAL.name]
        if not candidates:
            return ()
        return tuple(f for f in self.cell(ORIGINAL.name, profile).failing if all(f in found for found in candidates))

    def set_aside_mechanisms(self, profile: str) -> set[tuple[str, str]]:
        """The mechanisms no candidate changes on `profile`: the (close, deciding decision) pairs of its untouched
        connections."""
        return {(f.close, f.deciding) for f in self.untouched(profile)}

    def moved_aside(self, variant: str, profile: str) -> tuple[FailingConnection, ...]:
        """The candidate's failing connections the original closes otherwise and it closes like an untouched one,
        past the point where the original failed them.

        Like: the same close and deciding decision as one of the profile's untouched connections. Past: its deciding
        point comes after the original's in pipeline order (:func:`_past`). The candidate removed the original's
        failure of the connection, which then goes on and fails by a mechanism no candidate changes (e.g. the cap's
        refusal gone, the startup gate closes it). A close at or before the original's deciding point is the
        candidate's own doing, not moved aside: e.g. V5 refusing the E2E bypass sends connections the original let
        past token validation to it (spec 5.2, 5.3). None for the original.
        """
        if variant == ORIGINAL.name:
            return ()
        original = {f.index: f for f in self.cell(ORIGINAL.name, profile).failing}
        mechanisms = self.set_aside_mechanisms(profile)
        return tuple(f for f in self.cell(variant, profile).failing
                     if (f.close, f.deciding) in mechanisms and f.index in original and original[f.index] != f
                     and _past(f.deciding, original[f.index].deciding))

    def judged(self, variant: str, profile: str) -> MatrixCell:
        """The cell as the verdicts see it: without the failing connections no candidate changes (:meth:`untouched`)
        and without the refusals of forged tokens (:func:`forged_token`: the validation working, not a failure),
        and, for a candidate, those it moves to such a mechanism (:meth:`moved_aside`).

        Its first failure is the first failing connection left; its counts are the run's.
        """
        cell = self.cell(variant, profile)
        left = self.judged_failures(variant, profile)
        if left == cell.failing:
            return cell
        first = left[0] if left else None
        return replace(cell, failing=left, first_failure_s=None if first is None else first.at_s,
                       first_failure=None if first is None else first.close)

    def judged_failures(self, variant: str, profile: str) -> tuple[FailingConnection, ...]:
        """The failing connections the verdicts judge, in the run's order: the cell's, without those no candidate
        changes (:meth:`untouched`), those a candidate moves to such a mechanism (:meth:`moved_aside`) and the
        refusals of forged tokens (:func:`forged_token`). The one definition of a failure that counts."""
        cell = self.cell(variant, profile)
        set_aside = {*self.untouched(profile), *self.moved_aside(variant, profile)}
        return tuple(f for f in cell.failing if f not in set_aside and not f.forged)

    def forged_refusals(self, variant: str) -> tuple[tuple[str, FailingConnection], ...]:
        """`variant`'s refusals of forged tokens (:func:`forged_token`) on connections the original lets in, as
        (profile, connection), profiles in matrix order: a safety gain, which :meth:`judged` leaves aside."""
        found = []
        for profile in self.profiles:
            refused = {f.index for f in self.cell(ORIGINAL.name, profile).failing}
            found += [(profile, f) for f in self.cell(variant, profile).failing if f.forged and f.index not in refused]
        return tuple(found)

    def bypass_forged_refusals(self, variant: str) -> tuple[tuple[str, FailingConnection], ...]:
        """Of :meth:`forged_refusals`, those of connections the original let in through the E2E bypass (spec 5.2),
        which skips the token check spec 5.3 would refuse them by."""
        return tuple((profile, f) for profile, f in self.forged_refusals(variant)
                     if f.index in self.cell(ORIGINAL.name, profile).bypassed)

    def changes_nothing_else(self, variant: str) -> bool:
        """Whether `variant` closes no connection of any profile differently from the original (:meth:`changed`)."""
        return not any(self.changed(variant, profile) for profile in self.profiles)

    def changed(self, variant: str, profile: str) -> tuple[FailingConnection, ...]:
        """The variant's failing connections on `profile` that the original does not close the same way (left open,
        or closed with another code or reason), in the run's order; refusals of forged tokens (:func:`forged_token`)
        are not among them (the validation working, a safety gain), nor those moved to a mechanism no candidate
        changes (:meth:`moved_aside`: the verdicts count the original's failure of them removed)."""
        original = set(self.cell(ORIGINAL.name, profile).failing)
        moved = set(self.moved_aside(variant, profile))
        return tuple(f for f in self.cell(variant, profile).failing
                     if f not in original and f not in moved and not f.forged)

    def all_untouched(self) -> tuple[tuple[str, FailingConnection], ...]:
        """Every profile's untouched failing connections, as (profile, connection), profiles in matrix order."""
        return tuple((profile, f) for profile in self.profiles for f in self.untouched(profile))

    def start_agent_refusals(self, variant: str) -> tuple[MatrixCell, ...]:
        """The variant's cells where a start_agent message was refused, in profile order."""
        return tuple(cell for cell in (self.cell(variant, p) for p in self.profiles) if cell.start_agent_refused)

    def start_agent_totals(self, variant: str) -> tuple[int, int, int]:
        """Over every profile under `variant`: start_agent messages refused, sent, and refused at the cap."""
        cells = [self.cell(variant, profile) for profile in self.profiles]
        return (sum(c.start_agent_refused for c in cells), sum(c.start_agent_sent for c in cells),
                sum(c.start_agent_refused_at_cap for c in cells))

    def table(self) -> str:
        """The matrix as plain text: one row per profile and variant."""
        return matrix_table(self)

    def __repr__(self) -> str:
        return self.table()


def _past(deciding: str, before: str) -> bool:
    """Whether the deciding decision ``deciding`` (``point=outcome``) lies after ``before`` in pipeline order
    (``trace.POINT_ORDER``); a connection with no decision (``-``) lies before every point."""
    def rank(decision: str) -> int:
        return POINT_ORDER.get(decision.partition("=")[0], -1)
    return rank(deciding) > rank(before)


def variant_matrix(
    profiles: Iterable[Profile] | None = None, variants: Sequence[str] | None = None
) -> VariantMatrix:
    """Run every profile under every variant (default: all known profiles + the long run, all variants)."""
    chosen_profiles = tuple(profiles) if profiles is not None else matrix_profiles()
    chosen_variants = tuple(variants) if variants is not None else tuple(VARIANTS)
    if ORIGINAL.name not in chosen_variants:
        chosen_variants = (ORIGINAL.name, *chosen_variants)
    cells = tuple(
        cell_from_run(simulate(profile, variant), forged_clients(profile))
        for profile in chosen_profiles for variant in chosen_variants
    )
    return VariantMatrix(
        variants=chosen_variants,
        profiles=tuple(profile.name for profile in chosen_profiles),
        cells=cells,
        safety=tuple(safety_row(variant) for variant in chosen_variants),
    )


def matrix_table(matrix: VariantMatrix) -> str:
    """Fixed-width text: profile, variant, close-code counts (and connections without a close frame), start_agent
    messages refused (they close nothing), first failure, users hit."""
    header = ("profile", "variant", *map(close_column, SHOWN_CLOSE_CODES), START_AGENT_COLUMN, "first failure",
              "users hit")
    rows = [
        (
            cell.profile,
            cell.variant,
            *(str(cell.count(code)) for code in SHOWN_CLOSE_CODES),
            start_agent_text(cell.start_agent_refused, cell.start_agent_sent),
            _first_failure_text(cell),
            " ".join(cell.users_hit) or (NONE_IDENTIFIED if cell.fails else NO_FAILURE),
        )
        for profile in matrix.profiles
        for cell in (matrix.cell(variant, profile) for variant in matrix.variants)
    ]
    return format_table(header, rows)


def start_agent_text(refused: int, sent: int) -> str:
    """``2 of 8`` start_agent messages refused, or ``-`` when none was sent."""
    return f"{refused} of {sent}" if sent else NO_FAILURE


def close_column(code: str) -> str:
    """A close-code count's column title: the JSON contract's label ("1011", ..., "open")."""
    return code


FORGED_KINDS = {BAD_SIGNATURE: "with a bad signature", UNSIGNED: "unsigned (alg none or no signature part)"}


def forged_refusals_text(matrix: VariantMatrix, variant: str, bypassed_only: bool = False) -> str:
    """``3 forged tokens the original lets in (production-e2e-headers: 2 with a bad signature, 1 unsigned ...)``,
    or empty when `variant` refuses none the original lets in. ``bypassed_only``: only those the original let in
    through the E2E bypass (:meth:`VariantMatrix.bypass_forged_refusals`)."""
    found = matrix.bypass_forged_refusals(variant) if bypassed_only else matrix.forged_refusals(variant)
    if not found:
        return ""
    by_profile: dict[str, dict[str, int]] = {}
    for profile, connection in found:
        kinds = by_profile.setdefault(profile, {})
        kinds[connection.forged] = kinds.get(connection.forged, 0) + 1
    detail = "; ".join(f"{profile}: " + ", ".join(f"{n} {FORGED_KINDS[kind]}" for kind, n in sorted(kinds.items()))
                       for profile, kinds in by_profile.items())
    return f"{plural(len(found), 'forged token')} the original lets in ({detail})"


def _first_failure_text(cell: MatrixCell) -> str:
    if cell.first_failure_s is None:
        return NO_FAILURE
    return f"{cell.first_failure_s:.1f} s ({cell.first_failure})"



# --- verdicts ----------------------------------------------------------------------------


def failure_effect(original: MatrixCell, candidate: MatrixCell) -> str:
    """How `candidate` changes the failure on one profile, compared with the original.

    A failure is a connection the server closed (any close code other than 1000); the
    comparison uses the time of the first one. Both fail: first failure later ->
    "delayed", at the same time -> "same time", sooner -> "earlier". Only the original
    fails -> "removed"; only the candidate -> "introduced"; neither -> "no failure".
    """
    if not original.fails:
        return INTRODUCED if candidate.fails else NEITHER_FAILS
    if not candidate.fails:
        return REMOVED
    assert original.first_failure_s is not None and candidate.first_failure_s is not None
    if candidate.first_failure_s > original.first_failure_s:
        return DELAYED
    return SAME_TIME if candidate.first_failure_s == original.first_failure_s else EARLIER


def effects(matrix: VariantMatrix, variant: str) -> dict[str, str]:
    """Profile -> failure_effect of `variant` against the original on that profile, the failing connections no
    candidate changes and the refusals of forged tokens set aside (:meth:`VariantMatrix.judged`)."""
    return {
        profile: failure_effect(matrix.judged(ORIGINAL.name, profile), matrix.judged(variant, profile))
        for profile in matrix.profiles
    }


def effect_label(matrix: VariantMatrix, variant: str, profile: str) -> str:
    """The effect of candidate `variant` on `profile` (:func:`effects`) as a table prints it beside the cell's raw
    counts.

    The effect judges cells without the failing connections set aside (:meth:`VariantMatrix.judged`); where the
    raw counts would contradict it, the label says what the verdicts saw: a cell that closes connections but whose
    failures are all set aside reads :data:`SET_ASIDE` (no candidate changes them; for the original too) or
    :data:`FORGED_SET_ASIDE` (refusals of forged tokens the original lets in), not "no failure"; failures the
    candidate adds on a profile where the original fails only on set-aside connections read :data:`MORE_FAILURES`,
    not "introduced" (only the candidate fails). The verdicts count the effect itself.
    """
    cell = matrix.cell(variant, profile)
    effect = failure_effect(matrix.judged(ORIGINAL.name, profile), matrix.judged(variant, profile))
    if effect == INTRODUCED and matrix.cell(ORIGINAL.name, profile).fails:
        return MORE_FAILURES
    if effect == NEITHER_FAILS and cell.fails:
        forged = any(name == profile for name, _ in matrix.forged_refusals(variant))
        return FORGED_SET_ASIDE if forged else SET_ASIDE
    return effect


def failure_verdict(profile_effects: dict[str, str]) -> str:
    """The variant's verdict on the failure, from its per-profile effects.

    Rules, first match wins: any profile "earlier" or "introduced" -> fails earlier or
    more widely; no profile where the original fails -> no failure to fix; every profile
    where the original fails is "removed" -> removes the failure on every profile; any
    "delayed" -> delays the failure; any "removed" -> removes it on some profiles only;
    otherwise no effect.
    """
    found = set(profile_effects.values())
    original_fails = [effect for effect in profile_effects.values() if effect != NEITHER_FAILS]
    if found & {EARLIER, INTRODUCED}:
        return WORSE
    if not original_fails:
        return NOTHING_TO_FIX
    if original_fails and all(effect == REMOVED for effect in original_fails):
        return REMOVES_EVERYWHERE
    if DELAYED in found:
        return DELAYS
    if REMOVED in found:
        return REMOVES_SOMEWHERE
    return NO_EFFECT


def safety_verdict(original: SafetyRow, candidate: SafetyRow) -> str:
    """Compare the accepted adversarial members as sets.

    Same set -> "same"; a strict subset of the original's -> "safer"; a strict
    superset -> "weaker"; anything else (accepts some new, refuses some old) -> "mixed".
    """
    before, after = set(original.accepted), set(candidate.accepted)
    if after == before:
        return SAME
    if after < before:
        return SAFER
    return WEAKER if after > before else MIXED


def changed_switches(variant: Variant) -> list[str]:
    """The behaviour switches of `variant` that differ from the original, in field order (name and summary aside)."""
    switches = [f.name for f in fields(Variant) if f.name not in {"name", "summary"}]
    return [name for name in switches if getattr(variant, name) != getattr(ORIGINAL, name)]


def change_size(variant: Variant) -> int:
    """How many behaviour switches of `variant` differ from the original."""
    return len(changed_switches(variant))


@dataclass(frozen=True)
class VariantVerdict:
    """One variant's computed verdicts and the numbers behind them."""

    variant: str
    failure: str
    safety: str
    effects: tuple[tuple[str, str], ...]
    accepted: int
    total: int
    unsigned_accepted: bool
    change_size: int

    def count(self, effect: str) -> int:
        return sum(1 for _, found in self.effects if found == effect)

    @property
    def failing_profiles(self) -> int:
        """Profiles (the long run among them) on which the original fails."""
        return len(self.original_fails_on())

    def original_fails_on(self) -> list[str]:
        """The profiles (the long run among them) on which the original fails, sorted."""
        return [profile for profile, found in self.effects if found not in {NEITHER_FAILS, INTRODUCED}]

    def where(self, effect: str) -> list[str]:
        """The profiles (the long run among them) on which this variant's effect is `effect`, sorted."""
        return [profile for profile, found in self.effects if found == effect]


def variant_verdicts(matrix: VariantMatrix) -> tuple[VariantVerdict, ...]:
    """A verdict for every non-original variant of the matrix, in the matrix's order."""
    original_safety = matrix.safety_of(ORIGINAL.name)
    verdicts = []
    for variant in matrix.variants:
        if variant == ORIGINAL.name:
            continue
        profile_effects = effects(matrix, variant)
        row = matrix.safety_of(variant)
        verdicts.append(
            VariantVerdict(
                variant=variant,
                failure=failure_verdict(profile_effects),
                safety=safety_verdict(original_safety, row),
                effects=tuple(sorted(profile_effects.items())),
                accepted=len(row.accepted),
                total=row.total,
                unsigned_accepted=row.unsigned_accepted,
                change_size=change_size(VARIANTS[variant]),
            )
        )
    return tuple(verdicts)


def recommend(verdicts: Sequence[VariantVerdict]) -> str | None:
    """The recommended variant, or None if no variant qualifies.

    Qualifies: removes the failure on every profile and its safety verdict is "same" or
    "safer". Among those, the smallest change (fewest switches away from the original)
    wins; a remaining tie goes to the variant listed first in spec section 8.
    """
    ranked = qualifying(verdicts)
    return ranked[0].variant if ranked else None


def qualifying(verdicts: Sequence[VariantVerdict]) -> list[VariantVerdict]:
    """The verdicts that qualify for :func:`recommend`, the recommended one first: by change size, then spec order."""
    found = [v for v in verdicts if v.failure == REMOVES_EVERYWHERE and v.safety in {SAME, SAFER}]
    return sorted(found, key=lambda v: (v.change_size, list(VARIANTS).index(v.variant)))


TIE_BREAK_RULE = ("the rule recommends the smallest change (fewest switches), and of equally small ones the variant "
                  "listed first in spec section 8")


def switches_text(size: int) -> str:
    """``one switch``, ``2 switches``."""
    return "one switch" if size == 1 else f"{size} switches"


# --- the report for the notebooks --------------------------------------------------------


@dataclass(frozen=True)
class VariantReport:
    """The matrix, the verdicts and the recommendation; renders as markdown in a notebook."""

    matrix: VariantMatrix
    verdicts: tuple[VariantVerdict, ...]
    recommended: str | None
    long_run_tests: tuple[int, int] | None = None
    """The long run's tests per process and staging-e2e's own, when the matrix holds the long run."""

    @property
    def long_run_is_longer(self) -> bool:
        """Whether the long run (if any) runs more tests per process than staging-e2e itself."""
        return self.long_run_tests is None or self.long_run_tests[0] > self.long_run_tests[1]

    @property
    def original_fails(self) -> bool:
        """Whether the original closes any connection with a failure in any run of the matrix."""
        return any(self.matrix.cell(ORIGINAL.name, profile).fails for profile in self.matrix.profiles)

    @property
    def nothing_to_fix(self) -> bool:
        """Whether the original fails on no run once the failing connections no candidate changes are set aside."""
        return not any(self.matrix.judged(ORIGINAL.name, profile).fails for profile in self.matrix.profiles)

    def removed_where(self, variant: str) -> str:
        """``all 5 runs where the original fails, including the long E2E run``: the runs where `variant` removes it."""
        return _where_the_original_fails(self.verdict_of(variant).where(REMOVED), self.long_run_is_longer,
                                         self.original_failing_runs())

    def original_failing_runs(self) -> list[str]:
        """The runs (profiles and the long run) where the original closes a connection with a failure, in order."""
        return [profile for profile in self.matrix.profiles if self.matrix.cell(ORIGINAL.name, profile).fails]

    def untouched_text(self) -> str:
        """``7 failing connections no candidate changes (...): 1008 SSOT Auth failed x7 on a``, or empty when none.

        Grouped by close (most first), each with the runs it happens on.
        """
        found = self.matrix.all_untouched()
        if not found:
            return ""
        by_close: dict[str, list[str]] = {}
        for profile, connection in found:
            by_close.setdefault(connection.close, []).append(profile)
        ranked = sorted(by_close.items(), key=lambda item: (-len(item[1]), item[0]))
        groups = "; ".join(
            f"{close} x{len(profiles)} on {and_list([_run_name(p, self.long_run_is_longer) for p in dict.fromkeys(profiles)])}"
            for close, profiles in ranked)
        return (f"{plural(len(found), 'failing connection')} no candidate changes (closed alike under the original and "
                f"every variant run, so the verdicts leave {'it' if len(found) == 1 else 'them'} aside): {groups}"
                f"{self._moved_aside_text()}")

    def _moved_aside_text(self) -> str:
        """``; under V3 and V4, 2 connections of a the original closes 1011 X then fail at the startup gate, ...``.

        The connections a candidate moves from the original's failure to a mechanism no candidate changes
        (:meth:`VariantMatrix.moved_aside`), grouped by run, the original's closes and the mechanism; empty when none.
        """
        groups: dict[tuple[str, str, str, int], list[str]] = {}
        for profile in self.matrix.profiles:
            original = {f.index: f.close for f in self.matrix.cell(ORIGINAL.name, profile).failing}
            for verdict in self.verdicts:
                moved = self.matrix.moved_aside(verdict.variant, profile)
                for deciding in dict.fromkeys(f.deciding for f in moved):
                    same = [f for f in moved if f.deciding == deciding]
                    closes = " or ".join(dict.fromkeys(original[f.index] for f in same))
                    groups.setdefault((profile, closes, deciding, len(same)), []).append(verdict.variant)
        return "".join(
            f"; under {and_list(variants)}, {count} {'connection' if count == 1 else 'connections'} of "
            f"{_run_name(profile, self.long_run_is_longer)} the original closes {closes} then "
            f"{'fails' if count == 1 else 'fail'} at {mechanism_name(deciding)}, which no candidate changes, so the "
            f"verdicts count {'its' if count == 1 else 'their'} failure removed"
            for (profile, closes, deciding, count), variants in groups.items())

    def _untouched_sentence(self) -> str:
        text = self.untouched_text()
        return f" {text}." if text else ""

    def _nothing_to_fix_text(self) -> str:
        """Why no variant is recommended when the original's failures, if any, are all ones no candidate changes."""
        if self.original_fails:
            return ("No candidate changes how any failing connection of the original ends: there is no failure a "
                    f"variant fixes, so none is recommended.{self._untouched_sentence()}")
        count, detail = runs_text(self.matrix.profiles, listed=False, longer=self.long_run_is_longer)
        return (f"The original fails on none of the {count}{detail}: no connection is closed with a failure, so "
                "there is no failure to fix and no variant is recommended.")

    def candidates_run(self) -> str:
        """Empty when every candidate variant ran, else ``Of the variants run (V3), `` (the notebook's parameter)."""
        names = [v.variant for v in self.verdicts]
        if set(names) == set(VARIANTS) - {ORIGINAL.name}:
            return ""
        return f"Of the variants run ({', '.join(names)}), "

    def long_run_caveat(self) -> str:
        """`` With tests_per_process 1 the E2E run ... can look like it removes it.``, or empty when the run is longer."""
        if self.long_run_tests is None or self.long_run_is_longer:
            return ""
        tests, own = self.long_run_tests
        return (f" With tests_per_process {tests} the E2E run {LONG_RUN_PROFILE} is not longer than staging-e2e's own "
                f"{own} tests per process, so a change that only delays the failure can look like it removes it.")

    def verdict_of(self, variant: str) -> VariantVerdict:
        for verdict in self.verdicts:
            if verdict.variant == variant:
                return verdict
        raise KeyError(variant)

    def verdict_table(self) -> str:
        """Markdown table: one row per variant with its failure and safety verdicts."""
        original = self.matrix.safety_of(ORIGINAL.name)
        lines = [
            "| variant | change | failure | removed / delayed / same / earlier / introduced / more failures "
            f"| {START_AGENT_COLUMN} (no close) "
            "| safety | adversarial accepted | unsigned token accepted (staging/production) |",
            "|---|---|---|---|---|---|---|---|",
            f"| original | {VARIANTS[ORIGINAL.name].summary} | - | - | {self._start_agent_cell(ORIGINAL.name)} | - "
            f"| {len(original.accepted)} of {original.total} | {original.unsigned_text()} |",
        ]
        for v in self.verdicts:
            lines.append(
                f"| {v.variant} | {VARIANTS[v.variant].summary} | {self.failure_label(v)} | {self._effect_counts(v)} "
                f"| {self._start_agent_cell(v.variant)} | {v.safety} "
                f"| {v.accepted} of {v.total} | {self._unsigned_cell(v.variant)} |"
            )
        return "\n".join(lines)

    def _effect_counts(self, verdict: VariantVerdict) -> str:
        """``4 / 1 / 0 / 0 / 0 / 0``: the verdict's profiles per effect, as the per-profile tables label them
        (:func:`effect_label`): of its "introduced", those on a profile where the original fails only on set-aside
        connections count as "more failures"."""
        labels = [effect_label(self.matrix, verdict.variant, profile) for profile in self.matrix.profiles]
        more = labels.count(MORE_FAILURES)
        counts = [verdict.count(e) for e in (REMOVED, DELAYED, SAME_TIME, EARLIER)]
        return " / ".join(str(n) for n in [*counts, verdict.count(INTRODUCED) - more, more])

    def recommendation(self) -> str:
        """Short sentences naming the recommended variant and why, or that none qualifies."""
        if not self.verdicts:
            return "No candidate variant ran (the matrix holds the original only), so none is recommended."
        if self.recommended is None and self.nothing_to_fix:
            return self._nothing_to_fix_text()
        if self.recommended is None:
            head = self.candidates_run()
            return (
                f"{head}{'none qualifies' if head else 'No variant qualifies'}: none {REMOVES_EVERYWHERE} while "
                f"keeping safety the same or safer.{self.long_run_caveat()}{self._untouched_sentence()}"
            )
        chosen = self.verdict_of(self.recommended)
        switches = switches_text(chosen.change_size)
        head = self.candidates_run()
        longer = self.long_run_is_longer
        caveat = self.cap_caveat(chosen.variant)
        return (
            f"{head}{'recommended' if head else 'Recommended'}: {chosen.variant} ({VARIANTS[chosen.variant].summary}). "
            f"It removes the failure on {self.removed_where(chosen.variant)}, and "
            f"{self._acceptance(chosen.variant)}. {self._unsigned_sentence(chosen.variant)} It changes {switches} of "
            f"the original.{self._also_qualifying_sentence()}{start_agent_sentence(self.matrix, chosen.variant, longer)}"
            f"{self.margin_sentence(chosen.variant) if not caveat else ''}{self.long_run_caveat()}{caveat}"
            f"{self._untouched_sentence()}"
        )

    def also_qualifying(self) -> list[VariantVerdict]:
        """The qualifying variants (:func:`qualifying`) other than the recommended one, in the rule's order."""
        return [v for v in qualifying(self.verdicts) if v.variant != self.recommended]

    def also_qualifying_text(self) -> str:
        """``V4 (safety same, one switch) also qualifies: the rule recommends ...``, or empty when none does."""
        others = self.also_qualifying()
        if not others:
            return ""
        named = and_list([f"{v.variant} (safety {v.safety}, {switches_text(v.change_size)})" for v in others])
        return f"{named} also qualif{'ies' if len(others) == 1 else 'y'}: {TIE_BREAK_RULE}"

    def _also_qualifying_sentence(self) -> str:
        text = self.also_qualifying_text()
        return f" {text}." if text else ""

    def margin_sentence(self, variant: str) -> str:
        """`` Its margin: ...`` when no user's managers on one instance reach `variant`'s cap in any run: the most one
        holds, against the cap. Otherwise the runs where they reach it, and the spec's condition for a further manager
        there: the runs record counts, not each manager's age and connections, so whether emergency cleanup would
        free one is not computed. The recommendation leaves it out when :meth:`cap_caveat` speaks of the long run's
        peak instead."""
        cells = [cell for cell in (self.matrix.cell(variant, profile) for profile in self.matrix.profiles)
                 if cell.managers_cap]
        if not cells:
            return ""
        at_cap = [cell.profile for cell in cells if cell.peak_managers >= cell.managers_cap]
        if not at_cap:
            tightest = min(cells, key=lambda cell: (cell.managers_cap - cell.peak_managers, cell.profile))
            return (f" Its margin: under {variant} no user holds more than {plural(tightest.peak_managers, 'manager')} "
                    f"on one instance in any run, {tightest.managers_cap - tightest.peak_managers} below the cap of "
                    f"{tightest.managers_cap}.")
        cap = cells[0].managers_cap
        count, detail = runs_text(at_cap, longer=self.long_run_is_longer)
        return (f" Under {variant} one user's managers on one instance still reach the cap of {cap} on {count}{detail}; "
                f"a further manager there is refused unless emergency cleanup frees one (spec 4.2: one inactive, idle "
                f"more than 5 minutes, or created more than 5 minutes ago with no connection).")

    def cap_caveat(self, variant: str) -> str:
        """`` On the long E2E run ..., below its cap of 20: ...``, or empty when the long run reaches `variant`'s cap.

        A long run whose managers never reach the cap has no refusal to show, whether `variant` removes the
        failure or only postpones it past the run's end.
        """
        if LONG_RUN_PROFILE not in self.matrix.profiles or not self.long_run_is_longer:
            return ""
        cell = self.matrix.cell(variant, LONG_RUN_PROFILE)
        if cell.peak_managers >= cell.managers_cap:
            return ""
        return (f" On {_run_name(LONG_RUN_PROFILE)} one user's managers on an instance peak at {cell.peak_managers} "
                f"under {variant}, below its cap of {cell.managers_cap}: the run never reaches the cap, so it cannot "
                f"tell a failure {variant} removes from one it only postpones.")

    def _start_agent_cell(self, variant: str) -> str:
        """start_agent messages refused of those sent, over every run of the variant."""
        refused, sent, _ = self.matrix.start_agent_totals(variant)
        return start_agent_text(refused, sent)

    def _unsigned_cell(self, variant: str) -> str:
        """The row's unsigned members, or a pointer to the original's row when they are the same ones."""
        original, row = self.matrix.safety_of(ORIGINAL.name), self.matrix.safety_of(variant)
        if row.unsigned_accepted and row.unsigned_in and row.unsigned_in == original.unsigned_in:
            return "yes: the same members as the original"
        return row.unsigned_text()

    def _acceptance(self, variant: str) -> str:
        """What `variant` accepts of the adversarial set, against the original's accepted members."""
        before = set(self.matrix.safety_of(ORIGINAL.name).accepted)
        after = set(self.matrix.safety_of(variant).accepted)
        if after == before:
            return "accepts exactly the adversarial inputs the original accepts"
        if after < before:
            return f"accepts {len(after)} of the {len(before)} adversarial inputs the original accepts and none it refuses"
        return f"accepts {len(after - before)} adversarial inputs the original refuses"

    def _unsigned_sentence(self, variant: str) -> str:
        if not self.matrix.safety_of(variant).unsigned_accepted:
            return "It accepts no unsigned token."
        still = self.matrix.safety_of(ORIGINAL.name).unsigned_accepted
        head = "It does not close the unsigned-token hole: " if still else "It opens an unsigned-token hole: "
        return head + unsigned_tokens_text(variant, still) + " (see the safety table)."

    def failure_label(self, verdict: VariantVerdict) -> str:
        """The verdict's failure label as printed: :data:`REMOVES_WHERE_CHANGED` for :data:`REMOVES_EVERYWHERE` when
        the matrix sets aside failing connections no candidate changes."""
        if verdict.failure == REMOVES_EVERYWHERE and self.matrix.all_untouched():
            return REMOVES_WHERE_CHANGED
        return verdict.failure

    def key_result(self) -> str:
        """One line: the recommendation and every variant's failure verdict."""
        parts = [f"{v.variant}: {self.failure_label(v)}, safety {v.safety}" for v in self.verdicts]
        head = f"recommended {self.recommended}" if self.recommended else "no variant recommended"
        return f"{head} | " + ("; ".join(parts) or "no candidate variant ran")

    def markdown(self) -> str:
        return f"{self.verdict_table()}\n\n{self.recommendation()}"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        return self.key_result()


def build_report(matrix: VariantMatrix, long_run_tests: tuple[int, int] | None = None) -> VariantReport:
    """Verdicts and recommendation; ``long_run_tests`` is (the long run's tests per process, staging-e2e's own)."""
    verdicts = variant_verdicts(matrix)
    return VariantReport(matrix=matrix, verdicts=verdicts, recommended=recommend(verdicts),
                         long_run_tests=long_run_tests)


def selected_variants(variant: str = "all") -> tuple[str, ...]:
    """Every variant for "all", else the original and `variant` (KeyError naming the known ones)."""
    if variant == "all":
        return tuple(VARIANTS)
    if variant not in VARIANTS:
        raise NotebookParameterError("variant", f"unknown variant {variant!r}; known: all, {', '.join(VARIANTS)}")
    chosen = get_variant(variant).name
    return (ORIGINAL.name,) if chosen == ORIGINAL.name else (ORIGINAL.name, chosen)


def variant_report(
    profiles_dir: str | Path | None = None,
    tests_per_process: int = LONG_RUN_TESTS_PER_PROCESS,
    variant: str = "all",
) -> VariantReport:
    """The matrix over every profile (plus the long run) and every variant, with verdicts.

    This is what the postmortem notebook shows: ``variant_report().recommended``.
    ``variant`` restricts the matrix to the original and that one candidate. Profiles come
    from data/profiles plus ``profiles_dir`` (default: ``INVESTIGATION_PROFILES_DIR``).
    Safe to call from a notebook cell (the simulations run outside the kernel's loop).
    """
    directory = profiles_dir if profiles_dir is not None else active_profiles_dir()
    return _cached_report(None if directory is None else str(directory), tests_per_process, variant)


@cache
def _cached_report(profiles_dir: str | None, tests_per_process: int, variant: str) -> VariantReport:
    """Made once per process for its inputs, and once per grid run (05 and 06 share it, run_cache)."""
    chosen = selected_variants(variant)
    profiles = matrix_profiles(profiles_dir, tests_per_process)
    key = "variant_report:" + "\n".join([*chosen, *(profile.model_dump_json() for profile in profiles)])
    own = own_tests_per_process(load_profile("staging-e2e", profiles_dir))
    return shared(key, lambda: outside_event_loop(
        lambda: build_report(variant_matrix(profiles, chosen), (tests_per_process, own))))


def start_agent_left(matrix: VariantMatrix, variant: str, longer: bool = True) -> str:
    """What `variant` leaves of the start_agent leak, without the variant's name; empty when nothing is refused.

    ``2 of 12 start_agent messages are still refused at the cap (no close: ...), on 1 profile (staging-e2e: 2 of
    12); the other 10 each left a manager behind (spec 1, step 12)``.
    """
    refused, sent, at_cap = matrix.start_agent_totals(variant)
    if not refused:
        return ""
    where = matrix.start_agent_refusals(variant)
    count, _ = runs_text([cell.profile for cell in where], listed=False, longer=longer)
    detail = "; ".join(f"{_run_name(cell.profile, longer)}: {cell.start_agent_refused} of {cell.start_agent_sent}"
                       for cell in where)
    cap = ("at the cap" if at_cap == refused else f"({at_cap} of them at the cap)" if at_cap else "")
    left = sent - refused
    text = (f"{refused} of {plural(sent, 'start_agent message')} {'is' if refused == 1 else 'are'} still refused"
            f"{f' {cap}' if cap else ''} (no close: the agent silently does not start), on {count} ({detail})")
    if left:
        text += f"; the other {left} each left a manager behind (spec 1, step 12)"
    return text


def start_agent_sentence(matrix: VariantMatrix, variant: str, longer: bool = True) -> str:
    """`` Under V4, ...: V4 does not release the managers start_agent creates.``, or empty when none is refused."""
    left = start_agent_left(matrix, variant, longer)
    if not left:
        return ""
    leaked = matrix.start_agent_totals(variant)[1] > matrix.start_agent_totals(variant)[0]
    tail = f": {variant} does not release the managers start_agent creates" if leaked else ""
    return f" Under {variant}, {left}{tail}."


MECHANISM_NAMES = {
    "auth.token_source": "the token source check",
    "auth.token_validation": "token validation",
    "context.creation": "context creation",
    "factory.validation": "the factory's validation",
    "factory.manager_cap": "the per-user manager cap",
    "route.manager": "the emergency stub manager",
    "route.startup_gate": "the startup gate",
    "route.registration": "registration",
    "route.message_loop": "the message loop",
}
"""The decision points that end a connection's normal path (trace.ADVERSE_OUTCOMES), named for a sentence."""


def mechanism_name(deciding: str) -> str:
    """``the startup gate`` for a deciding decision ``route.startup_gate=timeout``; unknown points as they are."""
    point = deciding.split("=", 1)[0]
    return MECHANISM_NAMES.get(point, deciding)


def _run_name(profile: str, longer: bool = True) -> str:
    """The profile's name; the long run's says what it is (``the E2E run`` when it is not longer)."""
    if profile != LONG_RUN_PROFILE:
        return profile
    return f"the {'long ' if longer else ''}E2E run {profile}"


# --- notebook views ----------------------------------------------------------------------


def variant_switches_table(variants: Sequence[str] = tuple(VARIANTS)) -> str:
    """Each variant as a diff of behaviour: the switches it sets away from the original."""
    rows = []
    for name in variants:
        variant = VARIANTS[name]
        changed = changed_switches(variant)
        diff = "; ".join(f"{s}: {_switch_text(getattr(ORIGINAL, s))} -> {_switch_text(getattr(variant, s))}"
                         for s in changed)
        rows.append((name, variant.summary, diff or "(the code as deployed)"))
    return format_table(("variant", "summary", "switches changed (original -> variant)"), rows)


def _switch_text(value: object) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def matrix_overview(report: VariantReport) -> Markdown:
    """What was run and where the original refuses connections."""
    matrix = report.matrix
    failing = [p for p in matrix.profiles if matrix.cell(ORIGINAL.name, p).fails]
    refused, by_cap = matrix.original_refusals()
    where, which = runs_text(failing, longer=report.long_run_is_longer)
    return Markdown(
        f"{_traffic(matrix.profiles, report.long_run_is_longer)} x {plural(len(matrix.variants), 'variant')} = "
        f"{plural(len(matrix.cells), 'run')}. "
        f"The original refuses connections on {where}{which}: "
        f"{plural(refused, 'connection')} in all, {by_cap} of them refused by the per-user manager cap."
    )


def _traffic(profiles: Sequence[str], longer: bool = True) -> str:
    """``9 profiles``, or ``(9 profiles + the long E2E run staging-e2e-long)`` when the long run is among them."""
    shipped = [name for name in profiles if name != LONG_RUN_PROFILE]
    if len(shipped) == len(profiles):
        return plural(len(shipped), "profile")
    return f"({plural(len(shipped), 'profile')} + {_run_name(LONG_RUN_PROFILE, longer)})"


def variant_lessons(report: VariantReport) -> Markdown:
    """Lessons computed from the matrix and the safety rows, one bullet each."""
    lessons = [_cause_lesson(report), *_delay_lessons(report), *_worse_lessons(report), *_forged_lessons(report),
               *_safety_lessons(report)]
    lessons.append(report.recommendation())
    return Markdown("\n".join(f"- {lesson}" for lesson in lessons))


def _cause_lesson(report: VariantReport) -> str:
    refused, by_cap = report.matrix.original_refusals()
    if not report.original_fails:
        return "The original refuses no connection in any run: there is no failure to fix."
    unmoved = [v.variant for v in report.verdicts if v.failure == NO_EFFECT]
    head = f"{by_cap} of the {refused} connections the original refuses are refused by the per-user manager cap"
    if not report.verdicts:
        return f"{head}."
    run = report.candidates_run()
    subject = f"{run[0].lower()}{run[1:]}those" if run else "variants"
    return f"{head}; {subject} with no effect on the failure: {', '.join(unmoved) or 'none'}."


def _delay_lessons(report: VariantReport) -> list[str]:
    lessons = []
    for verdict in report.verdicts:
        delayed = [profile for profile, effect in verdict.effects if effect == DELAYED]
        for profile in delayed:
            before = report.matrix.judged(ORIGINAL.name, profile).first_failure_s
            after = report.matrix.judged(verdict.variant, profile).first_failure_s
            removed, which = runs_text(verdict.where(REMOVED), listed=False, longer=report.long_run_is_longer)
            head = (f"{verdict.variant} removes the failure on {removed}{which}, but" if verdict.where(REMOVED)
                    else f"{verdict.variant} removes the failure on no run;")
            lessons.append(
                f"{head} on {profile} the first failure only moves from {before:.0f} s to {after:.0f} s: "
                "it postpones the failure."
            )
    return lessons


def _worse_lessons(report: VariantReport) -> list[str]:
    """Where a variant fails earlier or where the original does not; profiles with the same finding share a sentence."""
    findings: dict[tuple[str, str], list[str]] = {}
    for verdict in report.verdicts:
        for profile, effect in verdict.effects:
            if effect in {EARLIER, INTRODUCED}:
                finding = _worse_finding(report.matrix, verdict.variant, profile, effect)
                findings.setdefault((verdict.variant, finding), []).append(profile)
    return [f"{variant} on {and_list(profiles)}: {finding}" for (variant, finding), profiles in findings.items()]


def _forged_lessons(report: VariantReport) -> list[str]:
    """Each variant's refusals of forged tokens the original lets in: a safety gain, not a failure it introduces."""
    lessons = []
    for verdict in report.verdicts:
        refused = forged_refusals_text(report.matrix, verdict.variant)
        if refused:
            lessons.append(f"{verdict.variant} refuses {refused}: a safety gain, not a failure (spec 5.3 refuses "
                           f"them{_bypass_skips_text(report.matrix, verdict.variant)}), so the verdicts leave "
                           "these refusals aside.")
    return lessons


def _bypass_skips_text(matrix: VariantMatrix, variant: str) -> str:
    """``; the original's E2E bypass, spec 5.2, skips the check`` (``... for 2 of them``) for the forged refusals of
    connections the original let in through the bypass; empty when it let in none of them that way."""
    bypassed, found = len(matrix.bypass_forged_refusals(variant)), len(matrix.forged_refusals(variant))
    if not bypassed:
        return ""
    return "; the original's E2E bypass, spec 5.2, skips the check" + ("" if bypassed == found
                                                                         else f" for {bypassed} of them")


def _worse_finding(matrix: VariantMatrix, variant: str, profile: str, effect: str) -> str:
    """What `variant` closes differently from the original on `profile` (:meth:`VariantMatrix.changed`), from when.

    ``first failure at 0 s (1008 SSOT Auth failed), earlier than the original.``; a failure it introduces is named
    by the connections it closes differently (its first failure in the matrix may be a refusal set aside, e.g. of
    a forged token): ``1008 SSOT Auth failed closes 2 of the 5 connections (client e2e) from 30 s, which the
    original left open.`` (or ``..., where the original does not fail.``)
    """
    close, at_s = first_changed(matrix, variant, profile)
    if effect == EARLIER:
        return f"first failure at {at_s:.0f} s ({close}), earlier than the original."
    share, clients = changed_share(matrix, variant, profile, close.split(" ", 1)[0])
    relation = "which the original left open" if matrix.cell(ORIGINAL.name, profile).fails else (
        "where the original does not fail")
    return f"{close} closes {share} connections{clients} from {at_s:.0f} s, {relation}."


def first_changed(matrix: VariantMatrix, variant: str, profile: str) -> tuple[str, float]:
    """The close and time of the first connection `variant` closes differently from the original on `profile`;
    the judged first failure for a cell that records no failing connection (built by hand)."""
    changed = matrix.changed(variant, profile)
    if changed:
        return changed[0].close, changed[0].at_s
    cell = matrix.judged(variant, profile)
    return cell.first_failure or "", cell.first_failure_s or 0.0


def changed_share(matrix: VariantMatrix, variant: str, profile: str, code: str) -> tuple[str, str]:
    """Of `profile`'s connections, those `variant` closes with `code` differently from the original: (``all 36`` or
    ``2 of the 5``, and `` (client e2e)`` naming their clients when they are not all)."""
    cell = matrix.cell(variant, profile)
    closed = [f for f in matrix.changed(variant, profile) if f.code == code]
    count = len(closed) if cell.failing else cell.count(code)
    share = share_text(count, cell.connections)
    clients = [] if count == cell.connections else list(dict.fromkeys(f.client for f in closed))
    named = f" ({'client' if len(clients) == 1 else 'clients'} {', '.join(clients)})" if clients else ""
    return share, named


def _safety_lessons(report: VariantReport) -> list[str]:
    original = set(report.matrix.safety_of(ORIGINAL.name).accepted)
    lessons = []
    for verdict in report.verdicts:
        accepted = set(report.matrix.safety_of(verdict.variant).accepted)
        if accepted - original:
            lessons.append(
                f"{verdict.variant} accepts {len(accepted - original)} adversarial members the original refuses: "
                + "; ".join(sorted(accepted - original))
                + "."
            )
    lessons.append(
        "An unsigned (alg none) token authenticates in a staging or production environment under: "
        + (_unsigned_by_members(report.matrix.safety) or "no variant")
        + "."
    )
    return lessons


def _unsigned_by_members(rows: Sequence[SafetyRow]) -> str:
    """Variants that accept an unsigned token, grouped by the members they accept (in variant order)."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.unsigned_accepted:
            groups.setdefault(row.unsigned_members() or "members not recorded", []).append(row.variant)
    return "; ".join(f"{', '.join(variants)} ({members})" for members, variants in groups.items())


def variants_key_result(report: VariantReport) -> str:
    """The notebook's one-line summary."""
    return report.key_result()
