"""Sluice beside the engines users would pick instead: ``python -m bench.peers`` (``make bench-peers``).

One workload (three no-op steps, the first recording when it started) on Celery + Redis,
Restate and Temporal, each in the peers' own venv and network namespace, then on Sluice
with WASM and with Docker sandboxes; see docs/benchmarks-peers.md for the method.
"""
