"""The log lines a run's backend processes write, and the lines a variant adds to them.

    added = added_log_lines(load_profile("staging-cloud-run"), "V1")
    # Counter({"VALIDATION ENV DEBUG: env=staging, cloud_run=True, staging=True, e2e=False": 66})

The trace keeps decisions, not the log: these run the profile again (same code and seeds, so the
run :func:`~investigation.simulate.simulate` makes) and read each backend's ``logs``.
"""

from __future__ import annotations

from collections import Counter

from investigation.backend.process import LogRecord
from investigation.backend.variants import get_variant
from investigation.clock import outside_event_loop
from investigation.profiles import Profile
from investigation.simulate import SimulationRun, run_on_virtual_time


def logs_of(profile: Profile, variant: str = "original") -> tuple[LogRecord, ...]:
    """Every log record of ``profile``'s run under ``variant``, instance by instance."""
    return outside_event_loop(_logs_here, profile, variant)


def _logs_here(profile: Profile, variant: str) -> tuple[LogRecord, ...]:
    chosen = get_variant(variant)
    run = run_on_virtual_time(lambda clock: SimulationRun(profile, chosen, clock))
    return tuple(record for backend in run.backends for record in backend.logs)


def added_log_lines(profile: Profile, variant: str) -> Counter[str]:
    """The messages ``variant``'s run logs beyond the original's, with how many more times."""
    return (Counter(record.message for record in logs_of(profile, variant))
            - Counter(record.message for record in logs_of(profile)))
