"""Benchmarks of the investigation suite; `python -m benchmarks` runs every bench_*.py."""
