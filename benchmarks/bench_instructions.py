"""Instructions per connection attempt against instructions per bare pyjwt decode (callgrind).

The same two workloads as bench_backend (a connection of a distinct user with a valid
token through the whole path; a bare HS256 decode of one token), counted in CPU
instructions by valgrind's callgrind instead of timed. A count does not move when the
machine is busy, so this ratio is the repeatable one; the timed ratio of bench_backend
is higher because the path's varied code runs at fewer instructions per cycle than a hot
decode loop (more cache misses and mispredicted branches per instruction).

Each side is counted twice in fresh interpreters, with N and with 0 units of work
after the same warm-up; the difference divided by N is the cost of one unit, free of
start-up and import costs. The interpreters run with PYTHONHASHSEED=0, so two runs count the
same instructions to the unit. Needs `valgrind` on PATH; without it the benchmark says so
and reports nothing.

    PYTHONPATH=. python -m benchmarks.bench_instructions
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CONNECTIONS = 400
DECODES = 2000
WARM_UP = 50
COLLECTED = re.compile(r"Collected : (\d+)")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_workload(side: str, units: int) -> None:
    """In this process: warm both sides up, then run `units` connections or decodes (at most
    CONNECTIONS connections: each needs a token of its own)."""
    import gc

    from benchmarks.bench_backend import make_token, time_connections, time_decodes

    tokens = [make_token(n) for n in range(WARM_UP + CONNECTIONS)]  # the same in every run
    time_connections(tokens[:WARM_UP])
    time_decodes(tokens[0], WARM_UP)
    gc.collect()
    if side == "attempt":
        time_connections(tokens[WARM_UP : WARM_UP + units])
    else:
        time_decodes(tokens[0], units)


def instructions(side: str, units: int) -> int:
    """Instructions callgrind counts for a fresh interpreter running `run_workload(side, units)`."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "benchmarks.bench_instructions", "--run", side, str(units),
    ]
    fixed_hashing = {**os.environ, "PYTHONHASHSEED": "0"}  # str hashes steer dict and set work
    completed = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, env=fixed_hashing, check=True)
    found = COLLECTED.search(completed.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count for {side} x {units}")
    return int(found.group(1))


def per_unit(counts: dict[tuple[str, int], int], side: str, units: int) -> float:
    return (counts[(side, units)] - counts[(side, 0)]) / units


def main() -> dict[str, float]:
    if shutil.which("valgrind") is None:
        print("valgrind not found: no instruction counts")
        return {}
    runs = [("attempt", CONNECTIONS), ("attempt", 0), ("decode", DECODES), ("decode", 0)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(runs, pool.map(lambda run: instructions(*run), runs), strict=True))
    attempt = per_unit(counts, "attempt", CONNECTIONS)
    decode = per_unit(counts, "decode", DECODES)
    result = {"attempt_instructions": round(attempt), "decode_instructions": round(decode),
              "instruction_ratio": round(attempt / decode, 2)}
    print(f"instructions per attempt {attempt:,.0f}  per bare decode {decode:,.0f}  "
          f"attempt / decode {result['instruction_ratio']:.2f}")
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run_workload(sys.argv[2], int(sys.argv[3]))
    else:
        main()
