"""The watchdog's state file: round trip, atomic save, corrupt file starts empty."""

from __future__ import annotations

from pathlib import Path

from appliance.supervisor.state import KEEP_RESTARTS, Pending, StateStore


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s" / "state.json"
    store = StateStore(path)
    record = store.get("serve")
    record.restarts += [1.0, 2.0]
    record.gave_up = True
    record.pending = Pending(container_id="abc", reason="died", due=5.0, decided_at=4.0)
    store.save()
    again = StateStore(path).get("serve")
    assert again.restarts == [1.0, 2.0] and again.gave_up and again.pending == record.pending
    assert not list(path.parent.glob(".watchdog-*"))  # no temp file left behind


def test_history_is_bounded(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.get("x").restarts = [float(i) for i in range(500)]
    store.save()
    assert len(StateStore(tmp_path / "state.json").get("x").restarts) == KEEP_RESTARTS


def test_corrupt_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert StateStore(path).services == {}
