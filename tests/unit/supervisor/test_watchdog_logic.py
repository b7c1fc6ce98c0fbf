"""The watchdog's event handling with a fake engine (the real-engine behaviour is in tests/integration/docker)."""

from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.docker.errors import DockerUnreachableError
from appliance.docker.model import ContainerEvent, ContainerState
from appliance.supervisor.policy import RestartPolicy
from appliance.supervisor.state import Pending, StateStore
from appliance.supervisor.watchdog import STOP_EVENT_WAIT_S, Watchdog, settle_wait

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def state(status: str = "running", health: str | None = None) -> ContainerState:
    return ContainerState(
        id="c1",
        name="p-web-1",
        service="web",
        status=status,
        health=health,
        started_at=NOW,
        finished_at=None,
        exit_code=0,
        start_period_s=0,
        restart_count=0,
    )


class FakeStream:
    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()

    def __iter__(self):
        while True:
            item = self.items.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.items.put(None)


class FakeEngine:
    def __init__(self, container: ContainerState) -> None:
        self.container = container
        self.calls: list[str] = []
        self.streams: list[FakeStream] = []

    def events(self, project, since=None):
        self.streams.append(FakeStream())
        return self.streams[-1]

    def inspect(self, cid):
        return self.container

    def project_containers(self, project):
        return [self.container]

    def start(self, cid):
        self.calls.append("start")
        self.container = replace(self.container, status="running")

    def restart(self, cid):
        self.calls.append("restart")
        self.container = replace(self.container, health="starting")


def event(action: str, at: datetime = NOW, **attributes: str) -> ContainerEvent:
    return ContainerEvent(action=action, container_id="c1", service="web", time=at, attributes=attributes)


async def drive(watchdog: Watchdog, engine: FakeEngine, steps) -> None:
    stop = asyncio.Event()
    runner = asyncio.ensure_future(watchdog.run(stop))
    while not engine.streams:
        await asyncio.sleep(0.01)
    for item, pause in steps:
        if callable(item):
            item()
        else:
            engine.streams[-1].items.put(item)
        await asyncio.sleep(pause)
    stop.set()
    await asyncio.wait_for(runner, timeout=10)


def make(tmp_path: Path, engine: FakeEngine, **kw) -> Watchdog:
    return Watchdog(
        engine,
        "p",
        policy=RestartPolicy(budget=5, backoff_base_s=0.01),
        state=StateStore(tmp_path / "s.json"),
        settle_s=0.05,
        reconcile_s=60,
        draw=lambda: 1.0,
        **kw,
    )


def test_died_is_restarted_once_and_its_own_start_event_is_ignored(tmp_path: Path) -> None:
    engine = FakeEngine(state())
    watchdog = make(tmp_path, engine)

    def die() -> None:
        engine.container = replace(engine.container, status="exited")

    asyncio.run(drive(watchdog, engine, [(die, 0), (event("die"), 0.3), (event("start"), 0.1)]))
    assert engine.calls == ["start"]
    record = StateStore(tmp_path / "s.json").get("web")
    assert len(record.restarts) == 1 and record.pending is None and not record.stopped_by_operator


def test_die_then_stop_is_the_operator(tmp_path: Path) -> None:
    engine = FakeEngine(state(status="exited"))
    watchdog = make(tmp_path, engine)
    asyncio.run(drive(watchdog, engine, [(event("kill"), 0), (event("die"), 0.01), (event("stop"), 0.3)]))
    assert engine.calls == []
    assert StateStore(tmp_path / "s.json").get("web").stopped_by_operator


def test_a_stop_event_late_after_a_stop_signal_still_means_the_operator(tmp_path: Path) -> None:
    """compose stop on a loaded machine: 'stop' reaches the watchdog well after the short settle time."""
    engine = FakeEngine(state(status="exited"))
    steps = [(event("kill", signal="15"), 0), (event("die"), 0.5), (event("stop"), 0.1)]
    asyncio.run(drive(make(tmp_path, engine), engine, steps))  # settle_s is 0.05
    assert engine.calls == []
    assert StateStore(tmp_path / "s.json").get("web").stopped_by_operator


def test_docker_kill_is_restarted_after_the_short_settle(tmp_path: Path) -> None:
    engine = FakeEngine(state(status="exited"))
    asyncio.run(drive(make(tmp_path, engine), engine, [(event("kill", signal="9"), 0), (event("die"), 0.5)]))
    assert engine.calls == ["start"]


def test_settle_wait_follows_the_signal_that_came_before_the_die() -> None:
    die = event("die", at=NOW)
    assert settle_wait(die, None, 0.5) == 0.5  # a crash or the OOM killer: no signal from Docker
    assert settle_wait(die, NOW - timedelta(seconds=3), 0.5) == STOP_EVENT_WAIT_S  # stop signal, then exit
    assert settle_wait(die, NOW - timedelta(minutes=5), 0.5) == 0.5  # an old signal the process survived
    assert settle_wait(die, NOW + timedelta(seconds=1), 0.5) == 0.5  # not before this die
    assert settle_wait(die, NOW, 30.0) == 30.0  # never shorter than the configured settle


def test_a_reload_signal_does_not_delay_the_restart_of_a_later_crash(tmp_path: Path) -> None:
    engine = FakeEngine(state(status="exited"))
    steps = [(event("kill", signal="1"), 0), (event("die"), 0.5)]  # nginx got SIGHUP, later crashed
    asyncio.run(drive(make(tmp_path, engine), engine, steps))
    assert engine.calls == ["start"]


def test_unhealthy_is_restarted_with_restart(tmp_path: Path) -> None:
    engine = FakeEngine(state(health="unhealthy"))
    asyncio.run(drive(make(tmp_path, engine), engine, [(event("health_status: unhealthy"), 0.3)]))
    assert engine.calls == ["restart"]


def test_resumed_pending_restart_is_dropped_when_recovered(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.json")
    store.get("web").pending = Pending(container_id="c1", reason="died", due=time.time(), decided_at=time.time())
    store.save()
    engine = FakeEngine(state(status="running"))  # someone else started it meanwhile
    asyncio.run(drive(make(tmp_path, engine), engine, [(lambda: None, 0.3)]))
    assert engine.calls == []
    assert StateStore(tmp_path / "s.json").get("web").pending is None


def test_resumed_pending_restart_is_done_once(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.json")
    store.get("web").pending = Pending(container_id="c1", reason="died", due=time.time(), decided_at=time.time())
    store.save()
    engine = FakeEngine(state(status="exited"))
    asyncio.run(drive(make(tmp_path, engine), engine, [(lambda: None, 0.3)]))
    assert engine.calls == ["start"]


def test_broken_event_stream_is_resubscribed(tmp_path: Path) -> None:
    engine = FakeEngine(state())
    watchdog = make(tmp_path, engine)
    asyncio.run(drive(watchdog, engine, [(DockerUnreachableError("stream broke"), 1.5)]))
    assert len(engine.streams) == 2


class HealthNotes:
    def __init__(self) -> None:
        self.health: list[tuple[str, bool]] = []

    def restarted(self, service: str, reason: str) -> None: ...

    def gave_up(self, service: str, why: str) -> None: ...

    def service_health(self, service: str, healthy: bool) -> None:
        self.health.append((service, healthy))


def test_reconcile_reports_a_starting_service_as_not_unhealthy(tmp_path: Path) -> None:
    """A container loading its model (health 'starting') must not set the gauge ServiceUnhealthy fires on."""
    for health, expected in (("starting", True), ("healthy", True), (None, True), ("unhealthy", False)):
        notes = HealthNotes()
        engine = FakeEngine(state(health=health))
        asyncio.run(make(tmp_path, engine, notifier=notes).reconcile())
        assert notes.health == [("web", expected)], health
    notes = HealthNotes()
    asyncio.run(make(tmp_path, FakeEngine(state(status="exited")), notifier=notes).reconcile())
    assert notes.health == [("web", False)]
