"""Comparing results and guarding against regressions: ``qbench compare`` (compare.py, with Welch's test in
significance.py), ``qbench gate`` and ``qbench baseline`` (gate.py, its tiers in tiers.py, settings in gate.toml and
defaults.py), ``qbench gate --against REF`` (against.py, one tree_agent.py per source tree), and their command line
(cli.py).

May import: bench.results, bench.report (complexity fits, Markdown tables), bench.files, bench.errors; the agent
also bench.run and bench.scenarios, since it runs a tree's benchmarks.
"""
