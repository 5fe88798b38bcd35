"""Benchmarks run by ``imi-gateway bench`` (reports, never timed tests)."""
