"""Benchmarks: small timing scripts that print a table and write JSON (``python -m ...``)."""
