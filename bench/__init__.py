"""Benchmarks for teams-bridge: `python -m bench` (see docs/benchmarks.md)."""
