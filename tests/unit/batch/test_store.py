"""The batch store on a real SQLite registry: ownership, paging, the runner's lease, answers kept once."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.batch.lines import BatchStatus
from appliance.batch.store import PURPOSE_BATCH, BatchStore


@pytest.fixture
def store(tmp_path: Path) -> BatchStore:
    return BatchStore.open(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "batch")


def _batch(store: BatchStore, owner: str = "alice", now: int = 100, total: int = 3):
    file = store.add_file(owner, PURPOSE_BATCH, "in.jsonl", b'{"x": 1}\n', now)
    return store.create(
        owner, "/v1/chat/completions", file.id, "24h", {"k": "v"}, total=total, now=now, expires_at=now + 86400
    )


def test_files_belong_to_their_owner_and_their_bytes_are_on_disk(store: BatchStore) -> None:
    record = store.add_file("alice", PURPOSE_BATCH, "in.jsonl", b"abc\n", 10)
    assert record.id.startswith("file-") and record.bytes == 4
    assert store.blob(record.id).read_bytes() == b"abc\n" and oct(store.blob(record.id).stat().st_mode)[-3:] == "600"
    assert store.file(record.id, "alice") == record and store.content(record) == b"abc\n"
    assert store.file(record.id, "bob") is None and store.files("bob") == []
    assert record.to_json()["object"] == "file" and "owner" not in record.to_json()
    assert not store.delete_file(record.id, "bob") and store.blob(record.id).exists()
    assert store.delete_file(record.id, "alice") and not store.blob(record.id).exists()
    assert store.file(record.id, "alice") is None


def test_a_result_file_with_a_given_id_is_written_once(store: BatchStore) -> None:
    first = store.add_file("alice", "batch_output", "o.jsonl", b"1\n", 10, "file-output-x")
    again = store.add_file("alice", "batch_output", "o.jsonl", b"2\n", 11, "file-output-x")
    assert again == first and store.content(first) == b"1\n"
    assert [p.name for p in store.files_dir.iterdir()] == ["file-output-x.jsonl"]  # no partial left behind


def test_listing_is_newest_first_and_pages_with_after(store: BatchStore) -> None:
    ids = [store.add_file("alice", PURPOSE_BATCH, f"{n}.jsonl", b"x\n", 100 + n).id for n in range(5)]
    store.add_file("bob", PURPOSE_BATCH, "b.jsonl", b"x\n", 200)
    assert [f.id for f in store.files("alice")] == ids[::-1]
    assert [f.id for f in store.files("alice", after=ids[3], limit=2)] == [ids[2], ids[1]]
    assert [f.id for f in store.files("alice", ascending=True, after=ids[1])] == ids[2:]
    assert store.files("alice", after="file-unknown") == []
    batches = [_batch(store, now=1000 + n).id for n in range(3)]
    assert [b.id for b in store.batches("alice")] == batches[::-1]
    assert [b.id for b in store.batches("alice", after=batches[2], limit=1)] == [batches[1]]
    assert store.batches("bob") == []


def test_a_batch_object_is_openais(store: BatchStore) -> None:
    batch = _batch(store)
    data = batch.to_json()
    assert data["object"] == "batch" and data["status"] == "validating" and data["errors"] is None
    assert data["request_counts"] == {"total": 3, "completed": 0, "failed": 0}
    assert data["metadata"] == {"k": "v"} and data["expires_at"] == data["created_at"] + 86400
    assert "owner" not in data and "lease_owner" not in data
    failed = store.create(
        "alice",
        "/v1/completions",
        "file-x",
        "24h",
        {},
        total=0,
        now=5,
        expires_at=9,
        errors={"object": "list", "data": [{"code": "c", "message": "m", "param": None, "line": 1}]},
    )
    assert failed.status is BatchStatus.FAILED and failed.to_json()["failed_at"] == 5
    assert failed.to_json()["errors"]["data"][0]["code"] == "c"


def test_only_one_runner_holds_a_batch_until_its_lease_lapses(store: BatchStore) -> None:
    batch = _batch(store)
    assert store.claim("r1", now=1000.0, lease_s=30).id == batch.id
    assert store.claim("r2", now=1010.0, lease_s=30) is None  # held
    assert store.renew(batch.id, "r1", now=1020.0, lease_s=30)
    assert store.claim("r2", now=1040.0, lease_s=30) is None  # renewed until 1050
    taken = store.claim("r2", now=1051.0, lease_s=30)  # lapsed: r1 died
    assert taken is not None and taken.id == batch.id
    assert not store.renew(batch.id, "r1", now=1052.0, lease_s=30)  # r1 learns it lost the batch
    assert not store.move(batch.id, BatchStatus.IN_PROGRESS, 1052, lease_owner="r1")
    assert store.move(batch.id, BatchStatus.IN_PROGRESS, 1052, lease_owner="r2")
    store.release(batch.id, "r2")
    assert store.claim("r3", now=1053.0, lease_s=30).id == batch.id  # released: free at once


def test_finished_batches_are_never_claimed_and_moves_follow_the_rules(store: BatchStore) -> None:
    batch = _batch(store)
    assert not store.move(batch.id, BatchStatus.COMPLETED, 1)  # validating cannot complete
    for target in (BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING, BatchStatus.COMPLETED):
        assert store.move(batch.id, target, 7)
    assert store.batch(batch.id).to_json()["completed_at"] == 7
    assert store.claim("r1", now=1.0, lease_s=30) is None


def test_an_answer_is_kept_once_and_counted(store: BatchStore) -> None:
    batch = _batch(store)
    store.record(batch.id, 1, 200, {"n": 1})
    store.record(batch.id, 1, 500, {"n": "again"})  # a second runner's late answer: dropped
    store.record(batch.id, 3, 403, {"n": 3})
    assert store.answered(batch.id) == {1, 3}
    assert [(s, t) for s, t in store.results(batch.id)] == [(200, '{"n": 1}'), (403, '{"n": 3}')]
    assert store.batch(batch.id, "alice").request_counts == {"total": 3, "completed": 1, "failed": 1}
    assert store.batch(batch.id, "bob") is None
