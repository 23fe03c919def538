"""Benchmarks that print figures (not timed tests). See bench/replay.py (``make bench-replay``)."""
