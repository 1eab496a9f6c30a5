"""Benchmarks of the event pipeline, each figure measured side by side with its baseline in the same run.

`python -m bench` runs them all; see bench/README.md for what each row means and bench/RESULTS.md for figures.
"""
