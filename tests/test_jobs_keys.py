"""The key helpers of jobs/keys.py spell their prefixes out (for speed): each must build the key its documented
prefix constant gives."""

from __future__ import annotations

from queue_impls.jobs import keys


def test_each_key_helper_builds_its_prefix_plus_its_parts() -> None:
    assert keys.record_key("i") == (*keys.JOBS, "i")
    assert keys.ready_key(3, "i") == (*keys.READY, -3, "i")
    assert keys.ready_by_name_key("n", 3, "i") == (*keys.READY_BY_NAME, "n", -3, "i")
    assert keys.delayed_key(5, "i") == (*keys.DELAYED, 5, "i")
    assert keys.lease_key("i") == (*keys.LEASE, "i")
    assert keys.expiry_key(5, "i") == (*keys.EXPIRY, 5, "i")
    assert keys.dead_key("i") == (*keys.DEAD, "i")
    assert keys.count_key("pending") == (*keys.COUNT, "pending")
    assert keys.active_key("n") == (*keys.ACTIVE, "n")
    assert keys.limit_key("n") == (*keys.LIMIT, "n")
