"""The log lines a variant's run adds to the original's."""

from __future__ import annotations

from investigation.analysis.run_logs import added_log_lines
from investigation.profiles import load_profile
from investigation.simulate import simulate


def test_v1_adds_one_debug_line_per_validation_and_nothing_else() -> None:
    # spec 8: V1 is the report's fix "with its extra logging", the report's line
    # 'VALIDATION ENV DEBUG: env={current_env}, cloud_run={is_cloud_run}, staging={is_staging}, e2e={is_e2e_testing}';
    # staging-cloud-run.toml: ENVIRONMENT=staging, K_SERVICE set, no E2E flag
    profile = load_profile("staging-cloud-run")
    original = simulate(profile)
    added = added_log_lines(simulate(profile, "V1"), original)
    assert list(added) == ["VALIDATION ENV DEBUG: env=staging, cloud_run=True, staging=True, e2e=False"]
    # one line per relaxed validation: each logs "accepted" for its thread_id (spec 4.3 step 4)
    accepted = sum(1 for message in original.log_messages if message.startswith("STAGING: thread_id accepted"))
    assert added[list(added)[0]] == accepted > 0


def test_a_run_adds_nothing_to_itself() -> None:
    run = simulate(load_profile("local-debug"))
    # spec 2 step 3: the generated run_id's thread part differs from thread_id, a warning (the report's ids too)
    assert any(message.startswith("Thread ID mismatch") for message in run.log_messages)
    assert added_log_lines(run, run) == {}
