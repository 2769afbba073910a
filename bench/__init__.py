"""kvq-bench's ``qbench`` command: parameterized benchmarks, reports, compare and the CI gate.

Rooms, lowest first (a room imports only rooms below it):
- errors.py, files.py: typed errors with exit statuses; every file written whole (temp + rename).
- scenarios/: what is measured, one module per scenario, and the registry (``register_scenario``,
  ``function_scenario``).
- results.py: the results file (docs/results-format.md); its columns come from the scenarios' declarations.
- run/: ``qbench run``: seeding, pyperf manager and workers, counts, instructions, plug-ins.
- report/: ``qbench report``: sections of plots, captions and tables.
- gate/: ``qbench compare``, ``gate``, ``baseline``; ``gate --against REF``.
- cli.py, __main__.py, serve_cli.py: the command line on top (``qbench``, ``python -m bench``).
"""
