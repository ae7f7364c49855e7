"""Side-by-side benchmarks that print ratios against a baseline measured in the same run.

``python bench/run.py`` runs them all and writes BENCHMARKS.md; each module also runs alone.
This is a package so that worker processes can import ``bench.handlers`` by name.
"""
