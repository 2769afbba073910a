"""Running a suite: what ``qbench run`` needs.

Owns: the pyperf manager and timing plan (runner.py), the pyperf worker processes (worker.py), the seeded stores and
their cache (seeding.py, stores.py), CPU pinning (affinity.py), the in-process pass of exact counts and N+1 findings
(measure.py), CPU instructions under callgrind (instructions.py), the latency injector's own error
(latency_accuracy.py), the Deno program runner of deno_seed_case (deno_program.py, deno_seed/), and importing the
run's plug-ins (plugins.py).
May import: queue_impls, bench.scenarios, bench.results, bench.files, bench.errors. Never bench.report, bench.gate or
the command line.
"""
