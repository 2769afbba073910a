"""Job ids (UUIDv7), the job record's round trip through the KV codec, backoff arithmetic."""

from __future__ import annotations

import multiprocessing
import random
import uuid

import pytest

from queue_impls.jobs import Backoff, Job, JobStatus, new_job_id
from queue_impls.jobs.model import MAX_ERROR_BYTES, cut_error
from queue_impls.kv import decode_value, encode_value


def make_ids(n: int) -> list[str]:
    return [new_job_id() for _ in range(n)]


def test_ids_are_uuid7_and_strictly_increasing_in_a_process() -> None:
    ids = make_ids(20_000)  # many per millisecond: the counter keeps them ordered
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_from_two_processes_do_not_collide() -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        a, b = pool.map(make_ids, [5000, 5000])
    assert not set(a) & set(b)


def test_a_job_round_trips_through_the_value_codec() -> None:
    job = Job(new_job_id(), "email", {"to": ["x"], "n": 1.5}, JobStatus.FAILED, 3, 2, 1.0, 2.0, attempts=2)
    job.errors.append({"attempt": 1, "error": "boom", "at": 1.5})
    payload, encoding = encode_value(job.to_value())
    assert Job.from_value(decode_value(payload, encoding)) == job
    assert Job.from_value({"id": "x"}) is None and Job.from_value("junk") is None
    value = job.to_value()
    assert Job.from_value({**value, "status": "lost"}) is None  # every field, by position: a bad status still refused
    assert Job.from_value({**value, "colour": "red"}) is None  # a field too many: refused, as by keywords
    optional = {k: v for k, v in value.items() if k != "worker"}
    assert Job.from_value(optional) == job  # a field with a default may be missing


def test_replace_never_shares_the_error_history() -> None:
    job = Job(new_job_id(), "a", None, JobStatus.PENDING, 0, 1, 0.0, 0.0)
    other = job.replace(attempts=1)
    other.errors.append({"attempt": 1})
    assert job.errors == []


def test_replace_copies_every_field_and_changes_only_those_named() -> None:
    import dataclasses

    job = Job(
        new_job_id(), "a", {"d": 1}, JobStatus.RUNNING, 2, 5, 1.0, 2.0, attempts=3, started_at=3.0, completed_at=4.0,
        failed_at=5.0, error="e", errors=[{"attempt": 1}], backoff={"base": 1.0}, worker="w",
    )  # fmt: skip
    assert all(getattr(job, f.name) != f.default for f in dataclasses.fields(Job))  # every field set, none default
    assert job.replace() == job and job.replace().errors is not job.errors
    changed = job.replace(status=JobStatus.COMPLETED, worker=None, errors=[])
    assert changed == dataclasses.replace(job, status=JobStatus.COMPLETED, worker=None, errors=[])
    with pytest.raises(TypeError, match="no field 'colour'"):
        job.replace(colour="red")
    assert job.running("w2", 9.0) == job.replace(status=JobStatus.RUNNING, attempts=4, started_at=9.0, worker="w2")
    assert job.completed(9.0) == job.replace(status=JobStatus.COMPLETED, completed_at=9.0)
    assert job.running("w2", 9.0).errors is not job.errors and job.completed(9.0).errors is not job.errors


@pytest.mark.parametrize("message", ["x" * 10_000, "\x01" * 10_000, "\U0001f600" * 10_000, "short"])
def test_error_messages_are_cut_to_the_byte_budget(message: str) -> None:
    cut = cut_error(message)
    assert message.startswith(cut)
    assert len(encode_value(cut)[0]) <= MAX_ERROR_BYTES + 3  # + the codec's format byte and quotes


def test_backoff_jitters_stay_within_their_bounds() -> None:
    rng = random.Random(3)
    for jitter, low in (("full", 0.0), ("equal", 0.5)):
        b = Backoff(base=2.0, factor=2.0, cap=100.0, jitter=jitter)  # type: ignore[arg-type]
        for attempt in range(1, 10):
            ceiling = b.ceiling(attempt)
            assert all(low * ceiling <= b.delay(attempt, rng) <= ceiling for _ in range(50))
    assert Backoff(jitter="none").delay(3, rng) == 4.0
    assert Backoff.from_value(None) == Backoff() and Backoff.from_value({"base": 3}).base == 3


def test_the_package_exports_its_public_names() -> None:
    import queue_impls.jobs as jobs

    assert {"Queue", "Worker", "JobStatus", "LAYOUTS", "Job", "check_integrity"} <= set(jobs.__all__)
    assert all(hasattr(jobs, name) for name in jobs.__all__)
    public = {n for n in dir(jobs) if n[0].isupper() and not n.startswith("_")}
    assert public <= set(jobs.__all__), public - set(jobs.__all__)
    assert jobs.LAYOUTS == ("naive", "optimized", "batched", "indexed")
