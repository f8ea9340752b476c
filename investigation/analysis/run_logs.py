"""The log lines a variant's run adds to the original's.

    added = added_log_lines(simulate(profile, "V1"), simulate(profile))
    # Counter({"VALIDATION ENV DEBUG: env=staging, cloud_run=True, staging=True, e2e=False": 66})  (staging-cloud-run)
"""

from __future__ import annotations

from collections import Counter

from investigation.trace import RunResult


def added_log_lines(run: RunResult, base: RunResult) -> Counter[str]:
    """The messages ``run``'s backends logged beyond ``base``'s, with how many more times."""
    return Counter(run.log_messages) - Counter(base.log_messages)
