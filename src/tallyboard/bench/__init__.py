"""`tallyboard bench`: the issue's workloads, timed against targets and a seed-style baseline.

Kept inside the package (not under tests/) so that `tallyboard bench` works from an
installed wheel: the numbers in docs/benchmarks.md can be reproduced on any machine.
"""
