"""Developer diagnostics: micro-benchmarks and lower bounds behind the toolkit's speed targets, run from a clone.

Not part of the installed package (pyproject's package list names ``queue_impls`` and ``bench`` only) and never
imported by them: ``python -m tools.<name>`` from the repository's root. Every tool measures its contenders side by
side in one run, on one shared harness (``tools.harness``: pinned, interleaved rounds; per-round ratios with their
interval; the printed tables).

May import: the standard library, ``queue_impls``'s public names, ``bench``'s public modules (e.g.
``bench.instructions``), pyperf, and each other. Never a ``_private`` name of ``queue_impls`` (no store internals,
no copy of a backend's SQL: the SQLite backend publishes its statements as ``STATEMENTS``).
"""
