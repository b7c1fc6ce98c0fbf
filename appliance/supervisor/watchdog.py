"""The event-driven watchdog: Docker events in, restarts (or a give-up alert) out.

Events of the compose project arrive from a thread that reads the engine's stream; decisions come from
``policy.should_restart``; the engine is touched only through ``appliance.docker`` (via ``to_thread``).
A slow reconcile pass is the safety net for events missed while the stream reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from appliance.docker.engine import DockerEngine, EventStream
from appliance.docker.errors import ApplianceDockerError, ContainerGoneError
from appliance.docker.model import ContainerEvent, ContainerState
from appliance.supervisor.policy import Action, Reason, RestartPolicy, ServiceHistory, should_restart
from appliance.supervisor.state import Pending, StateStore

_LOGGER = logging.getLogger(__name__)

# After `docker stop` / `compose stop` Docker sends the stop signal (a 'kill' event), the process exits ('die'),
# then Docker reports 'stop'. On a loaded machine that 'stop' can reach us seconds after 'die', so a die that
# followed such a signal waits this long for it; a crash, the OOM killer or `docker kill` (SIGKILL, no 'stop'
# follows) waits only the short settle time.
STOP_EVENT_WAIT_S = 10.0
# Signals that ask a process to reload or reopen rather than to stop: a die after one of them is no stop.
_NOT_A_STOP = frozenset({"1", "9", "10", "12", "28"})  # HUP, KILL, USR1, USR2, WINCH
_STOP_SIGNAL_WINDOW_S = 60.0  # a stop signal older than this (daemon time) before the die is not its cause


def settle_wait(die: ContainerEvent, stop_signal_at: datetime | None, settle_s: float) -> float:
    """How long to wait after ``die`` for a 'stop' event before treating it as a crash.

    ``stop_signal_at`` is the daemon time of the last stop-like signal Docker sent the container since its start.
    """
    if stop_signal_at is None:
        return settle_s
    if not 0 <= (die.time - stop_signal_at).total_seconds() <= _STOP_SIGNAL_WINDOW_S:
        return settle_s
    return max(settle_s, STOP_EVENT_WAIT_S)


class WatchdogNotifier(Protocol):
    def restarted(self, service: str, reason: str) -> None: ...
    def gave_up(self, service: str, why: str) -> None: ...
    def service_health(self, service: str, healthy: bool) -> None: ...


class NullNotifier:
    def restarted(self, service: str, reason: str) -> None: ...
    def gave_up(self, service: str, why: str) -> None: ...
    def service_health(self, service: str, healthy: bool) -> None: ...


def _now() -> datetime:
    return datetime.now(tz=UTC)


class Watchdog:
    def __init__(
        self,
        engine: DockerEngine,
        project: str,
        *,
        policy: RestartPolicy,
        state: StateStore,
        notifier: WatchdogNotifier | None = None,
        settle_s: float = 0.5,
        reconcile_s: float = 30.0,
        clock: Callable[[], datetime] = _now,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.project = project
        self.policy = policy
        self.state = state
        self.notifier = notifier or NullNotifier()
        self.settle_s = settle_s
        self.reconcile_s = reconcile_s
        self.clock = clock
        self.draw = draw
        self._acting: dict[str, float] = {}  # container id → monotonic time our own restart began
        self._stopped_ids: set[str] = set()  # containers with a 'stop' event since their last start
        self._stop_signals: dict[str, datetime] = {}  # container id → daemon time of its last stop-like signal
        self._tasks: dict[str, asyncio.Task[None]] = {}  # service → its pending restart or re-check
        self._queue: asyncio.Queue[ContainerEvent | Exception] = asyncio.Queue()
        self._stream: EventStream | None = None

    # --- life cycle -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stream = await asyncio.to_thread(self.engine.events, self.project, since=self.clock())
        reader = loop.run_in_executor(None, self._read_events, loop)
        await self._resume()
        await self.reconcile()
        try:
            while not stop.is_set():
                get = asyncio.ensure_future(self._queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait(
                    {get, stopper}, timeout=self.reconcile_s, return_when=asyncio.FIRST_COMPLETED
                )
                stopper.cancel()
                if get not in done:
                    get.cancel()
                    if not stop.is_set():
                        await self._safely(self.reconcile())
                    continue
                item = get.result()
                if isinstance(item, Exception):
                    _LOGGER.error("docker events stream ended: %s; resubscribing", item)
                    await asyncio.sleep(1.0)
                    try:
                        self._stream = await asyncio.to_thread(self.engine.events, self.project, since=self.clock())
                    except ApplianceDockerError as err:  # the engine is away: try again, keep the loop alive
                        self._queue.put_nowait(err)
                        continue
                    reader = loop.run_in_executor(None, self._read_events, loop)
                    await self._safely(self.reconcile())
                    continue
                await self._safely(self.handle(item))
        finally:
            if self._stream is not None:
                self._stream.close()
            for task in self._tasks.values():
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, timeout=5)

    def _read_events(self, loop: asyncio.AbstractEventLoop) -> None:
        stream = self._stream
        try:
            for event in stream or ():
                loop.call_soon_threadsafe(self._queue.put_nowait, event)
            if stream is self._stream and not loop.is_closed():
                loop.call_soon_threadsafe(self._queue.put_nowait, ApplianceDockerError("events stream closed"))
        except ApplianceDockerError as err:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._queue.put_nowait, err)

    async def _safely(self, coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except ContainerGoneError as err:
            _LOGGER.info("container gone: %s", err)
        except Exception:  # the event loop's boundary: log with context, keep watching
            _LOGGER.exception("watchdog step failed")

    # --- events -----------------------------------------------------------------------------------
    async def handle(self, event: ContainerEvent) -> None:
        kind, cid, service = event.kind, event.container_id, event.service
        _LOGGER.debug("event %s %s (%s)", kind, service, cid[:12])
        if cid in self._acting:
            if kind in ("start", "restart") or time.monotonic() - self._acting[cid] > 120:
                self._acting.pop(cid, None)
            return
        if kind == "kill":
            if event.attributes.get("signal", "") not in _NOT_A_STOP:
                self._stop_signals[cid] = event.time
        elif kind == "stop":
            self._stopped_ids.add(cid)
            record = self.state.get(service)
            record.stopped_by_operator, record.pending = True, None
            self._cancel(service)
            self.state.save()
            self.notifier.service_health(service, False)
            _LOGGER.info("%s was stopped on purpose; the watchdog leaves it alone", service)
        elif kind == "start":
            self._stopped_ids.discard(cid)
            self._stop_signals.pop(cid, None)
            record = self.state.get(service)
            if record.stopped_by_operator or record.gave_up:
                _LOGGER.info("%s was started by someone else; watching it again", service)
            record.stopped_by_operator = record.gave_up = False
            self.state.save()
        elif kind == "die":
            wait = settle_wait(event, self._stop_signals.pop(cid, None), self.settle_s)
            self._schedule(service, self._after_die(cid, service, wait))
        elif kind == "unhealthy":
            self.notifier.service_health(service, False)
            self._schedule(service, self._consider(cid, service, Reason.UNHEALTHY))
        elif kind == "healthy":
            self.notifier.service_health(service, True)
        elif kind == "destroy":
            self._stopped_ids.discard(cid)
            self._stop_signals.pop(cid, None)

    async def _after_die(self, cid: str, service: str, wait_s: float) -> None:
        await asyncio.sleep(wait_s)  # a 'stop' event (which cancels this task) follows a die caused by docker stop
        if cid in self._stopped_ids or self.state.get(service).stopped_by_operator:
            return
        self.notifier.service_health(service, False)
        await self._consider(cid, service, Reason.DIED)

    # --- decisions and actions ----------------------------------------------------------------------
    def _history(self, container: ContainerState, reason: Reason) -> ServiceHistory:
        record = self.state.get(container.service)
        return ServiceHistory(
            service=container.service,
            reason=reason,
            restarts=record.restart_times(),
            started_at=container.started_at,
            start_period_s=container.start_period_s,
            stopped_by_operator=record.stopped_by_operator,
            gave_up=record.gave_up,
            watched=container.watched,
        )

    async def _consider(self, cid: str, service: str, reason: Reason) -> None:
        container = await asyncio.to_thread(self.engine.inspect, cid)
        if not self._still_bad(container, reason):
            return
        decision = should_restart(self._history(container, reason), self.clock(), self.policy, jitter_draw=self.draw())
        _LOGGER.info("watchdog: %s → %s (%s)", service, decision.action.value, decision.why)
        record = self.state.get(service)
        if decision.action is Action.LEAVE:
            return
        if decision.action is Action.GIVE_UP:
            record.gave_up, record.pending = True, None
            self.state.save()
            _LOGGER.error(
                "watchdog gave up on %s: %s; fix it, then docker compose up -d %s", service, decision.why, service
            )
            self.notifier.gave_up(service, decision.why)
            return
        if decision.action is Action.WAIT:
            await asyncio.sleep(decision.delay_s)
            await self._consider(cid, service, reason)
            return
        now = self._epoch()
        record.pending = Pending(container_id=cid, reason=reason.value, due=now + decision.delay_s, decided_at=now)
        self.state.save()
        await self._restart_when_due(service)

    @staticmethod
    def _still_bad(container: ContainerState, reason: Reason) -> bool:
        if reason is Reason.DIED:
            return container.status in ("exited", "dead", "created")
        return container.status == "running" and container.health == "unhealthy"

    async def _restart_when_due(self, service: str) -> None:
        record = self.state.get(service)
        pending = record.pending
        if pending is None:
            return
        await asyncio.sleep(max(0.0, pending.due - self._epoch()))
        reason = Reason(pending.reason)
        container = await asyncio.to_thread(self.engine.inspect, pending.container_id)
        if not self._still_bad(container, reason) or record.stopped_by_operator:
            _LOGGER.info("%s recovered before its restart; nothing to do", service)
        else:
            self._acting[container.id] = time.monotonic()
            record.restarts.append(self._epoch())
            record.pending = None
            self.state.save()
            try:
                if reason is Reason.DIED:
                    await asyncio.to_thread(self.engine.start, container.id)
                else:
                    await asyncio.to_thread(self.engine.restart, container.id)
            except ApplianceDockerError:
                self._acting.pop(container.id, None)
                raise
            _LOGGER.warning("watchdog restarted %s (%s)", service, reason.value)
            self.notifier.restarted(service, reason.value)
            return
        record.pending = None
        self.state.save()

    def _epoch(self) -> float:
        """The injected clock as epoch seconds: what the state file records is what the policy decides on."""
        return self.clock().timestamp()

    def _schedule(self, service: str, coro: object) -> None:
        self._cancel(service)
        self._tasks[service] = asyncio.ensure_future(self._safely(coro))

    def _cancel(self, service: str) -> None:
        task = self._tasks.pop(service, None)
        if task is not None and not task.done():
            task.cancel()

    # --- resume and reconcile -------------------------------------------------------------------
    async def _resume(self) -> None:
        """Pending restarts from a previous run are done once (or dropped when the service recovered)."""
        for service, record in self.state.services.items():
            if record.pending is not None:
                _LOGGER.info("resuming the pending restart of %s", service)
                self._schedule(service, self._restart_when_due(service))

    async def reconcile(self) -> None:
        """Safety net: report health, and catch an unhealthy container whose event was missed."""
        containers = await asyncio.to_thread(self.engine.project_containers, self.project)
        for container in containers:
            service = container.service
            self.notifier.service_health(service, container.not_failing)  # 'starting' is not unhealthy
            busy = service in self._tasks and not self._tasks[service].done()
            if busy or container.id in self._acting:
                continue
            if container.status == "running" and container.health == "unhealthy":
                self._schedule(service, self._consider(container.id, service, Reason.UNHEALTHY))
