"""crashcart's benchmarks: ``make bench`` (``python -m benchmarks``).

Each benchmark is one module with ``NAME``, ``TITLE`` and ``run(ctx) -> dict``; the result
dict holds counts and ratios (figures the docs and tests may rely on), absolute times (shown,
never asserted), tables for ``docs/benchmarks.md`` and ``checks`` (invariants that must hold,
e.g. "no duplicate interrupt"). A benchmark whose dependency is missing returns
``skipped(reason)``; one that raises is recorded as an error; neither stops the run.

``python -m benchmarks --smoke`` runs every benchmark at its smallest size (part of
``make test`` through ``tests/functional/test_bench_smoke.py``).
"""
