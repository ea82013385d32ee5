"""Benchmarks whose figures go in the README (each module runs with ``python -m``)."""
