"""Isolation cost: dd from local-debug to staging-e2e, in tests run and wall time.

Goal (issue 4): at most 60 tests and under 3 seconds. Also measured, not part of the
goal: ddmin of staging-e2e's traffic to its minimal failing connection sequence.

    PYTHONPATH=. python -m benchmarks.bench_isolate
"""

from __future__ import annotations

import time

from investigation.analysis.isolate import isolate_profiles, minimal_failing_traffic
from investigation.profiles import load_profile

PASSING = "local-debug"
FAILING = "staging-e2e"
MAX_TESTS = 60
MAX_SECONDS = 3.0
REPEATS = 5


def main() -> dict[str, float]:
    passing, failing = load_profile(PASSING), load_profile(FAILING)
    isolate_times, reduce_times = [], []
    for _ in range(REPEATS):  # best of several: robust to a busy machine
        started = time.perf_counter()
        isolation = isolate_profiles(passing, failing)
        isolate_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        reduction = minimal_failing_traffic(failing)
        reduce_times.append(time.perf_counter() - started)
    result = {
        "differing_factors": float(len(isolation.differing)),
        "tests_run": float(isolation.tests_run),
        "wall_s": round(min(isolate_times), 3),
        "within_goal": float(isolation.tests_run <= MAX_TESTS and min(isolate_times) < MAX_SECONDS),
        "traffic_planned": float(len(reduction.planned)),
        "traffic_kept": float(len(reduction.kept)),
        "traffic_tests_run": float(reduction.tests_run),
        "traffic_wall_s": round(min(reduce_times), 3),
    }
    print(f"isolate {PASSING} -> {FAILING}: {result['tests_run']:.0f} tests (goal <= {MAX_TESTS}), "
          f"{result['wall_s']:.3f} s (goal < {MAX_SECONDS} s) over {result['differing_factors']:.0f} differing factors; "
          f"ddmin traffic {result['traffic_kept']:.0f} of {result['traffic_planned']:.0f} connections in "
          f"{result['traffic_tests_run']:.0f} tests, {result['traffic_wall_s']:.3f} s")
    return result


if __name__ == "__main__":
    main()
