"""kvq-bench's library: a Deno-KV-faithful key-value layer, a cost meter around it, and job queues built on it.

Rooms, one package each, whose docstrings say what they own and may import (docs/architecture.md): ``kv`` the store
contract, codecs and backends; ``meter`` the cost meter; ``jobs`` the job queue; ``kvconnect`` the KV Connect
server. The modules at this level are the pytest plugin and the README's worked example.

May import: queue_impls.kv, queue_impls.meter.
Third-party: pytest (the plugin's fixtures).

Benchmarks, reports and notebooks live outside this package (in ``bench/``) and depend on it: nothing here imports
bench, pyperf, pandas or matplotlib (tests/test_architecture.py checks every rule).
"""
