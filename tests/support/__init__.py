"""Helpers of the server-process tests and the benchmarks (not collected by pytest)."""
