"""kvq-bench's library: a Deno-KV-faithful key-value layer and job queues built on it.

Benchmarks, reports and notebooks live outside this package (in ``bench/``) and depend on it.
"""
