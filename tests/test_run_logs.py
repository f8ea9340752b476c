"""The log lines a variant adds to a run."""

from __future__ import annotations

from investigation.analysis.run_logs import added_log_lines, logs_of
from investigation.profiles import load_profile


def test_v1_adds_one_debug_line_per_validation_and_nothing_else() -> None:
    # spec 8: V1 is the report's fix "with its extra logging", the report's line
    # 'VALIDATION ENV DEBUG: env={current_env}, cloud_run={is_cloud_run}, staging={is_staging}, e2e={is_e2e_testing}';
    # staging-cloud-run.toml: ENVIRONMENT=staging, K_SERVICE set, no E2E flag
    profile = load_profile("staging-cloud-run")
    added = added_log_lines(profile, "V1")
    assert list(added) == ["VALIDATION ENV DEBUG: env=staging, cloud_run=True, staging=True, e2e=False"]
    # one line per relaxed validation: each logs "accepted" for its thread_id (spec 4.3 step 4)
    accepted = sum(1 for record in logs_of(profile) if record.message.startswith("STAGING: thread_id accepted"))
    assert added[list(added)[0]] == accepted > 0


def test_the_original_adds_nothing_to_itself() -> None:
    assert added_log_lines(load_profile("local-debug"), "original") == {}
