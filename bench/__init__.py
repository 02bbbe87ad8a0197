"""Benchmarks: `make bench` writes JSON figures to bench/results/."""
