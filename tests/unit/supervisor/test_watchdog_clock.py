"""One clock: the watchdog records restarts and pending due times with the clock it decides with."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from appliance.supervisor.state import StateStore
from tests.unit.supervisor.test_watchdog_logic import NOW, FakeEngine, drive, event, make, state


def test_restart_times_come_from_the_injected_clock(tmp_path: Path) -> None:
    engine = FakeEngine(state())
    watchdog = make(tmp_path, engine, clock=lambda: NOW)  # months away from the real time

    def die() -> None:
        engine.container = replace(engine.container, status="exited")

    asyncio.run(drive(watchdog, engine, [(die, 0), (event("die"), 0.3), (event("start"), 0.1)]))
    assert engine.calls == ["start"]
    record = StateStore(tmp_path / "s.json").get("web")
    assert record.restarts == [NOW.timestamp()]
    assert record.restart_times() == (NOW,)  # what should_restart reads back: the same clock's times


def test_a_pending_restart_is_due_on_the_injected_clock(tmp_path: Path) -> None:
    """A restart decided at NOW with a back-off is recorded due at NOW + delay, not at the wall clock's."""
    engine = FakeEngine(state(health="unhealthy"))
    saved: list[tuple[float, float]] = []
    watchdog = make(tmp_path, engine, clock=lambda: NOW)
    original_save = watchdog.state.save

    def spy() -> None:
        for record in watchdog.state.services.values():
            if record.pending is not None:
                saved.append((record.pending.decided_at, record.pending.due))
        original_save()

    watchdog.state.save = spy  # type: ignore[method-assign]
    asyncio.run(drive(watchdog, engine, [(event("health_status: unhealthy"), 0.3)]))
    assert engine.calls == ["restart"]
    decided, due = saved[0]
    assert decided == NOW.timestamp() and NOW.timestamp() <= due < (NOW + timedelta(minutes=5)).timestamp()
