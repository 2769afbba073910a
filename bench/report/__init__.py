"""The report of one results file: an ordered list of sections (report.py), each a plot (plots.py) with its caption
and a table; the document model that renders to Markdown and self-contained HTML (document.py); complexity classes
fitted on sweeps over N (complexity.py); the TypeScript section (deno.py); ``qbench report`` (cli.py).

May import: bench.results, bench.scenarios (declarations), bench.files, bench.errors, bench.run.latency_accuracy
(its record type). Never bench.gate or bench.run's runner.
"""
