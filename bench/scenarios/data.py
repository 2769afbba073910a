"""The data the built-in scenarios work on: job names, payloads, status filters (the seeded stores follow them too)."""

from __future__ import annotations

from typing import Any, Final

from queue_impls.jobs import JobStatus

#: What the status filters of list_by_name look for: "rare" matches 1% of a name's jobs, "half" 50%.
STATUS_FILTERS: Final[dict[str, JobStatus | None]] = {
    "none": None,
    "rare": JobStatus.FAILED,
    "half": JobStatus.PENDING,
}
#: Name of the jobs that write_path, worker_throughput and mixed add (the listed jobs are job_name(0)).
CHURN_NAME: Final = "report"
#: A fixed worker id: the default (host:pid:object id) is stored in every lease, so its length - a pid of 4 or 5
#: digits, another host name - would move the exact bytes-written counts between runs and machines.
WORKER_ID: Final = "bench-worker"


def job_name(index: int) -> str:
    """The name of the index-th name of a seed (the dashboard lists the first one)."""
    return f"email-{index}"


def payload(index: int) -> dict[str, Any]:
    """A small, realistic job payload."""
    return {"to": f"user{index}@example.com", "template": "welcome", "locale": "en"}
