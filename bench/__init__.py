"""The benchmark harness of issue 4: every figure a ratio against a same-moment baseline.

Run it with `make bench` (full suite) or `make bench-quick` (development); see bench/README.md.
Nothing here runs under `make test`.
"""
