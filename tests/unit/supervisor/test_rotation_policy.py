"""should_rotate and the retention of rotated files (pure)."""

from __future__ import annotations

from appliance.logs.rotation_policy import LogStat, RotationPolicy, should_rotate, to_delete

POLICY = RotationPolicy(max_bytes=1000, max_age_s=3600, keep=2, retention_s=86400)


def test_size_and_age() -> None:
    assert should_rotate(LogStat(size=1000, created=0), POLICY, now=10) == "size"
    assert should_rotate(LogStat(size=10, created=0), POLICY, now=3600) == "age"
    assert should_rotate(LogStat(size=999, created=0), POLICY, now=3599) is None


def test_empty_or_missing_never_rotates() -> None:
    assert should_rotate(LogStat(size=0, created=0), POLICY, now=10**9) is None
    assert should_rotate(None, POLICY, now=10) is None


def test_keep_count_and_retention() -> None:
    files = [("a.gz", 100.0), ("b.gz", 300.0), ("c.gz", 200.0), ("old.gz", -90000.0)]
    assert sorted(to_delete(files, POLICY, now=400)) == ["a.gz", "old.gz"]
    assert to_delete([("x.gz", 0.0)], POLICY, now=86401) == ["x.gz"]
