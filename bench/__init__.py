"""Benchmarks: ratios against plain baselines measured in the same run."""
