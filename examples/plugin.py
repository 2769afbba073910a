"""A qbench plug-in: a fifth storage layout for the job queue, and a user's own data-access code as a scenario.

    qbench run --plugin examples.plugin --suite smoke -k by_status -k customer_orders -o examples.json
    qbench report examples.json -o reports/examples

Importing this module registers both (examples/README.md shows the commands and what they print); qbench imports it
again in every pyperf worker and in the callgrind pass, so it must only define and register things.
"""

from __future__ import annotations

import heapq
from typing import Any

from bench.scenarios import function_scenario, register_scenario
from queue_impls.jobs import Job, JobStatus
from queue_impls.jobs.layouts import Layout, register_layout
from queue_impls.kv import Key, Kv

# -- a fifth layout ---------------------------------------------------------------------------------------------

RECORDS: Key = ("jobs",)
BY_STATUS_NAME: Key = ("jobs_by_status_name",)


@register_layout
class ByStatusLayout(Layout):
    """("jobs", id) -> job; ("jobs_by_status_name", status, name, id) -> the full job, moved on every status change.

    A dashboard asking for one name's jobs of one status reads one prefix, only the entries it returns; asking for
    one name's jobs of any status reads the four status prefixes of that name and merges them in id order.
    """

    name = "by_status"
    index_prefixes = (BY_STATUS_NAME,)

    def index_entries(self, job: Job) -> dict[Key, Any]:
        return {(*BY_STATUS_NAME, job.status.value, job.name, job.id): job.to_value()}

    async def list_jobs(self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, offset: int) -> list[Job]:
        if name is None:  # no name: the records, in id order, filtered here
            matches: list[Job] = []
            async for entry in kv.list(prefix=RECORDS):
                job = Job.from_value(entry.value)
                if job is not None and (status is None or job.status == status):
                    matches.append(job)
                    if len(matches) >= offset + limit:
                        break
            return matches[offset:]
        statuses = [status] if status is not None else list(JobStatus)
        runs = []
        for each in statuses:  # one round trip per status (a page of up to 500 is one list batch)
            entries = await kv.list(prefix=(*BY_STATUS_NAME, each.value, name), limit=offset + limit).collect()
            runs.append([job for job in (Job.from_value(e.value) for e in entries) if job is not None])
        merged = list(heapq.merge(*runs, key=lambda job: job.id))  # ids sort in creation order
        return merged[offset : offset + limit]


# -- a user's own data-access code ------------------------------------------------------------------------------


async def seed_orders(kv: Kv, N: int, fetch: str) -> None:
    """N orders of one customer: each order under ("orders", id), and the customer's index of order ids."""
    for i in range(N):
        order_id = f"o{i:05d}"
        await kv.set(("orders", order_id), {"id": order_id, "total_cents": 100 + i, "items": 1 + i % 3})
        await kv.set(("orders_by_customer", "c1", order_id), order_id)


async def customer_orders(kv: Kv, N: int, fetch: str) -> None:
    """A customer's orders: the index of order ids, then the orders, one by one (an N+1) or in get_many batches."""
    ids = [entry.value async for entry in kv.list(prefix=("orders_by_customer", "c1"))]
    if fetch == "one_by_one":
        orders = [await kv.get(("orders", order_id)) for order_id in ids]
    else:  # Deno KV reads at most 10 keys per getMany
        orders = [
            entry
            for i in range(0, len(ids), 10)
            for entry in await kv.get_many([("orders", o) for o in ids[i : i + 10]])
        ]
    if len(orders) != N:
        raise RuntimeError(f"customer_orders read {len(orders)} orders, expected {N}")


register_scenario(
    function_scenario(
        customer_orders,
        seed=seed_orders,
        points={
            "smoke": [{"N": 20, "fetch": "one_by_one"}, {"N": 20, "fetch": "get_many"}],
            "quick": [{"N": n, "fetch": f} for n in (10, 100) for f in ("one_by_one", "get_many")],
            "full": [{"N": n, "fetch": f} for n in (10, 100, 1000) for f in ("one_by_one", "get_many")],
        },
    )
)
