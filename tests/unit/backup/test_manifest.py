"""The pure decisions about archives: names, retention, the nightly schedule, verification of members."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.backup.manifest import (
    BackupError,
    Entry,
    Manifest,
    archive_name,
    archive_time,
    archives_to_delete,
    manifest_from_json,
    seconds_until,
    verify,
)


def _manifest(*entries: Entry, **parts: tuple[str, ...]) -> Manifest:
    return Manifest(
        created="2026-12-05T03:00:00+00:00",
        project="appliance",
        appliance_version="1",
        parts=parts or {"config": (".env",), "certs": ("data/certs",), "prometheus": ("prometheus-data",)},
        volumes={"prometheus": "prometheus-data"},
        entries=entries,
    )


ENV = Entry("files/.env", "file", 0o644, size=3, sha256="ab" * 32)
CERTS = Entry("files/data/certs", "dir", 0o755)
LINK = Entry("files/data/certs/live/x", "symlink", 0o777, target=".versions/x/1")
BLOCK = Entry("volumes/prometheus-data/01ABC/chunks/000001", "file", 0o644, size=9, sha256="cd" * 32, uid=65534)


def test_names_carry_the_utc_time_and_other_files_are_not_archives() -> None:
    now = datetime(2026, 12, 5, 3, 4, 5, tzinfo=UTC)
    name = archive_name(now)
    assert name == "appliance-backup-20261205T030405Z.tar.gz"
    assert archive_time(name) == now
    for other in ("notes.txt", ".appliance-backup-20261205T030405Z.tar.gz.partial", "appliance-backup-x.tar.gz"):
        assert archive_time(other) is None


def test_retention_keeps_the_newest_and_never_touches_other_files() -> None:
    names = [archive_name(datetime(2026, 12, d, 3, tzinfo=UTC)) for d in (3, 1, 5, 2, 4)] + ["README", ".x.partial"]
    doomed = archives_to_delete(names, keep=2)
    assert sorted(doomed) == [archive_name(datetime(2026, 12, d, 3, tzinfo=UTC)) for d in (1, 2, 3)]
    assert archives_to_delete(names, keep=10) == []
    assert len(archives_to_delete(names, keep=0)) == 4  # at least the newest one is always kept


@pytest.mark.parametrize(
    ("now", "hour", "expected"),
    [
        (datetime(2026, 12, 5, 2, 30, tzinfo=UTC), 3, 1800.0),
        (datetime(2026, 12, 5, 3, 0, tzinfo=UTC), 3, 86400.0),
        (datetime(2026, 12, 5, 23, 0, tzinfo=UTC), 3, 4 * 3600.0),
    ],
)
def test_the_nightly_backup_waits_for_the_next_hour(now: datetime, hour: int, expected: float) -> None:
    assert seconds_until(now, hour) == expected


def test_an_intact_archive_has_no_problems() -> None:
    entries = (ENV, CERTS, LINK, BLOCK)
    assert verify(_manifest(*entries), {e.path: e for e in entries}) == []


def test_a_partial_archive_names_what_is_missing() -> None:
    problems = verify(_manifest(ENV, BLOCK), {ENV.path: ENV})
    assert problems == [f"{BLOCK.path}: listed in the manifest but missing (a partial archive?)"]


def test_a_changed_file_is_reported_as_corrupted() -> None:
    changed = Entry(ENV.path, "file", 0o644, size=3, sha256="00" * 32)
    assert verify(_manifest(ENV), {ENV.path: changed}) == [
        f"{ENV.path}: checksum or size differs from the manifest (corrupted)"
    ]


def test_an_unlisted_member_is_foreign() -> None:
    extra = Entry("files/.env.evil", "file", 0o644, size=1, sha256="11" * 32)
    assert verify(_manifest(ENV), {ENV.path: ENV, extra.path: extra}) == [
        "files/.env.evil: not listed in the manifest (a foreign member)"
    ]


@pytest.mark.parametrize(
    "entry",
    [
        Entry("files/../etc/passwd", "file", 0o644),
        Entry("/etc/passwd", "file", 0o644),
        Entry("elsewhere/x", "file", 0o644),
        Entry("files/data/certs/live/y", "symlink", 0o777, target="/etc/shadow"),
        Entry("files/data/certs/live/z", "symlink", 0o777, target="../../../../etc"),
        Entry("files/data/other/file", "file", 0o644),  # no part covers it
    ],
)
def test_unsafe_or_uncovered_members_are_refused(entry: Entry) -> None:
    problems = verify(_manifest(entry), {entry.path: entry})
    assert len(problems) == 1 and problems[0].startswith(entry.path), problems


def test_a_manifest_round_trips_and_a_foreign_one_is_refused() -> None:
    manifest = _manifest(ENV, LINK)
    assert manifest_from_json(manifest.to_json()) == manifest
    with pytest.raises(BackupError, match="not an appliance backup: its MANIFEST.json names another format"):
        manifest_from_json(b'{"format": "something-else"}')
    with pytest.raises(BackupError, match="cannot be read"):
        manifest_from_json(b"\x00not json")
    newer = manifest.to_json().replace(b'"version": 1', b'"version": 2')
    with pytest.raises(BackupError, match="version 2 is not one this appliance reads"):
        manifest_from_json(newer)


def test_links_inside_a_volume_are_left_to_docker() -> None:
    link = Entry("volumes/prometheus-data/lock-link", "symlink", 0o777, target="/prometheus/lock")
    assert verify(_manifest(link), {link.path: link}) == []
