"""Health of the models, for the probes: startup state from Serve, readiness from a real tiny generation.

``model_state`` is pure; :class:`ModelHealth` reads Serve's status (at most once a second) and remembers
since when each model is in its state; :class:`ReadyCache` runs the readiness probe in the background so a
probe never waits behind real traffic when an earlier answer is at hand; :class:`EngineWatch` learns of an
engine's death within about a second (Serve's own health check needs up to three 10 s periods).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

_LOGGER = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "failed"
_FAILED = {"DEPLOY_FAILED", "UNHEALTHY"}
_SETTLED = {"HEALTHY", "UPSCALING", "DOWNSCALING"}


def model_state(
    deployment_status: str | None, running_replicas: int, was_ready: bool, starting: int = 0, several: bool = False
) -> str:
    """``loading`` until Serve calls the deployment healthy (or it keeps a running replica after it was
    ready), ``failed`` when Serve gave up on it. No running replica while one is starting is ``loading`` whatever
    Serve's status says: Serve may still call a deployment healthy (or upscaling) whose only replica is gone with
    its node and whose new one waits for room, and requests would wait for it without an answer (a scale-from-zero
    cold start is the same: 503 + Retry-After until its replica runs). A model that keeps ``several`` replicas
    stays ready while one of them is replaced (Serve calls it UNHEALTHY until the new one runs) as long as
    another runs: the ingress sends its requests there."""
    if deployment_status == "UNHEALTHY" and several and was_ready and running_replicas > 0:
        return READY
    if deployment_status in _FAILED:
        return FAILED
    if running_replicas == 0 and starting > 0:
        return LOADING
    if deployment_status in _SETTLED or (was_ready and running_replicas > 0):
        return READY
    return LOADING


def with_pii(models_overall: str, pii: str | None) -> str:
    """The stack's state from the models' and the PII service's (None: masking off): a request needs both."""
    if pii is None:
        return models_overall
    if FAILED in (models_overall, pii):
        return FAILED
    return READY if models_overall == READY and pii == READY else LOADING


class ModelHealth:
    def __init__(
        self,
        deployments: dict[str, str],
        *,
        refresh_seconds: float = 1.0,
        several: Callable[[str], bool] = lambda model_id: False,
    ) -> None:
        self._deployments = deployments  # model id -> Serve deployment name
        self._several = several  # whether a model keeps more than one replica (model_state)
        self._refresh = refresh_seconds
        self._states: dict[str, dict[str, Any]] = {}
        self._checked = 0.0
        self._created = time.time()
        self._lock = asyncio.Lock()

    async def states(self) -> dict[str, dict[str, Any]]:
        async with self._lock:
            if time.monotonic() - self._checked >= self._refresh:
                statuses = await asyncio.to_thread(_deployment_statuses)
                self._update(statuses, time.time())
                self._checked = time.monotonic()
        now = time.time()
        return {
            mid: {
                **{k: v for k, v in s.items() if k != "since_ts"},
                "since": datetime.fromtimestamp(s["since_ts"], UTC).isoformat(),
                "elapsed_s": round(now - s["since_ts"], 1),
            }
            for mid, s in self._states.items()
        }

    def _update(self, statuses: dict[str, tuple[str, dict[str, int], str]], now: float) -> None:
        for model_id, name in self._deployments.items():
            status, replicas, message = statuses.get(name, (None, {}, "not deployed yet"))
            previous = self._states.get(model_id)
            was_ready = bool(previous and previous["state"] == READY)
            state = model_state(
                status, replicas.get("RUNNING", 0), was_ready, replicas.get("STARTING", 0), self._several(model_id)
            )
            since = (
                previous["since_ts"]
                if previous and previous["state"] == state
                else (self._created if previous is None else now)
            )
            self._states[model_id] = {
                "state": state,
                "since_ts": since,
                "serve_status": status,
                "replicas": {k.lower(): v for k, v in replicas.items()},
                "message": message[:500],
            }


def _deployment_statuses() -> dict[str, tuple[str, dict[str, int], str]]:
    """Serve's view of this application's deployments: name -> (status, replica counts, message).

    Read from the controller's answer as it comes (a dict), not through ``serve.status()``: that rebuilds
    pydantic models of every deployment's whole configuration, pickling each request router class again, and
    was a sixth of the ingress replica's CPU under streaming load (py-spy, 32 streams), for a read made every
    second."""
    from ray import serve
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return {}
    return deployment_statuses(client.get_serve_details(), serve.get_replica_context().app_name)


def deployment_statuses(details: dict[str, Any], app_name: str) -> dict[str, tuple[str, dict[str, int], str]]:
    """From the Serve controller's details (``ServeInstanceDetails`` as a dict, what ``serve.status()`` reads):
    each deployment of ``app_name`` -> (status, replica counts by state, message)."""
    app = (details.get("applications") or {}).get(app_name)
    if not app:
        return {}
    return {
        name: (
            _value(deployment.get("status")),
            dict(Counter(_value(replica.get("state")) for replica in deployment.get("replicas") or ())),
            deployment.get("message") or "",
        )
        for name, deployment in (app.get("deployments") or {}).items()
    }


def _value(field: Any) -> str:
    """An enum member of Serve's schema (or its value, in a JSON-shaped dict) as its value."""
    return str(getattr(field, "value", field))


READY_RETRY_SECONDS = 5.0  # how long an answer with a model not ready is reused


class ReadyCache:
    """Caches the readiness probe; refreshes in the background, one at a time. An answer where every model was
    ready is kept ``ttl`` seconds, one with a model not ready only ``retry_ttl`` (at most ``ttl``): a model
    that comes back is seen soon, while a healthy idle stack is probed (and its engines woken) seldom."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[dict[str, dict[str, Any]]]],
        *,
        ttl: float,
        retry_ttl: float = READY_RETRY_SECONDS,
    ) -> None:
        self._probe = probe
        self._ttl = ttl
        self._retry_ttl = min(ttl, retry_ttl)
        self._result: dict[str, dict[str, Any]] | None = None
        self._at = 0.0
        self._task: asyncio.Task[dict[str, dict[str, Any]]] | None = None
        self._generation = 0  # bumped by clear(): a probe of an older generation does not fill the cache

    def invalidate(self) -> None:
        """The next :meth:`get` starts a new probe (a model went down or came back)."""
        self._at = 0.0

    def clear(self) -> None:
        """The set of models changed: the next :meth:`get` waits for a probe of the new set (an answer about the
        old set is not one about this one; a probe already running is left to finish, its answer unused)."""
        self._result, self._at, self._task = None, 0.0, None
        self._generation += 1

    async def get(self) -> dict[str, dict[str, Any]]:
        fresh = self._result is not None and time.monotonic() - self._at < self._keep(self._result)
        if fresh:
            return self._result  # type: ignore[return-value]
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(self._generation))
        if self._result is not None:
            return self._result  # an earlier answer now; the new one lands in the cache
        return await asyncio.shield(self._task)

    def _keep(self, result: dict[str, dict[str, Any]]) -> float:
        return self._ttl if result and all(r.get("ready") for r in result.values()) else self._retry_ttl

    async def _run(self, generation: int) -> dict[str, dict[str, Any]]:
        result = await self._probe()
        if generation == self._generation:
            self._result, self._at = result, time.monotonic()
        return result


class EngineWatch:
    """Which models cannot take a request now: their engine said it is dead, their replica is gone, or Serve
    does not call them ready.

    Every ``period`` seconds it asks each model's replica ``check_health`` (what Serve's controller asks
    every 10 s: vLLM answers at once with EngineDeadError once its engine process is gone) and, from ``states``
    (:class:`ModelHealth`), whether Serve has a running replica. A check that times out (a busy or restarting
    replica) keeps the model's last verdict; a request that failed may report a model down at once
    (:meth:`mark_down`). ``on_change`` is called when a model goes down or comes back.
    """

    def __init__(
        self,
        checks: dict[str, Callable[[], Awaitable[Any]]],
        states: Callable[[], Awaitable[dict[str, dict[str, Any]]]],
        *,
        period: float = 0.5,
        timeout: float = 2.0,
        on_change: Callable[[], None] = lambda: None,
        on_serving: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._checks = checks
        self._on_serving = on_serving
        self._served: set[str] = set()  # models seen able to take requests since this replica started
        self._states = states
        self._period = period
        self._timeout = timeout
        self._on_change = on_change
        self._dead: dict[str, float] = {}  # model id -> since (monotonic): its engine said it is dead
        self._not_ready: set[str] = set()  # Serve does not call it ready (no running replica, failed, loading)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch from now on (idempotent; needs a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def down(self, model_id: str) -> bool:
        return model_id in self._dead or model_id in self._not_ready

    def down_models(self) -> set[str]:
        return set(self._dead) | self._not_ready

    def seen_ready(self, model_id: str) -> bool:
        """Whether a round of this watch has seen the model able to take requests since the replica started
        (until then its verdicts say nothing: a cold start's first requests must ask Serve themselves)."""
        return model_id in self._served

    def mark_down(self, model_id: str) -> None:
        if model_id in self._checks and model_id not in self._dead:
            self._dead[model_id] = time.monotonic()
            _LOGGER.warning("model %s: its engine is not answering; requests get 503 until it is back", model_id)
            self._on_change()

    async def check(self, model_id: str) -> bool | None:
        """Ask the model's replica once: True alive, False dead (recorded), None no answer in time."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._checks[model_id]()
        except TimeoutError:
            return None
        except Exception:
            self.mark_down(model_id)
            return False
        if self._dead.pop(model_id, None) is not None:
            _LOGGER.info("model %s: its engine answers again", model_id)
            self._on_change()
        return True

    async def sweep(self) -> None:
        """One round: every model's check and Serve's view, concurrently."""
        await asyncio.gather(*(self.check(mid) for mid in self._checks))
        try:
            states = await self._states()
        except Exception:
            _LOGGER.warning("Serve's status could not be read; readiness keeps its last view", exc_info=True)
            return
        not_ready = {mid for mid in self._checks if states.get(mid, {}).get("state") != READY}
        if not_ready != self._not_ready:
            self._not_ready = not_ready
            self._on_change()
        self._served |= {mid for mid in self._checks if not self.down(mid)}
        self._report_serving()

    def _report_serving(self) -> None:
        """Tell ``on_serving`` whether requests reach each model, every round, from the first time they did (a
        model still loading after a start is Serve's to report: ModelNotReady). Every round, not on change: Ray's
        metrics export drops a gauge series about 30 s after its last set (measured with ray 2.60)."""
        if self._on_serving is None:
            return
        for model_id in self._checks:
            if model_id in self._served:
                self._on_serving(model_id, not self.down(model_id))

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sweep()
            except Exception:
                _LOGGER.exception("engine watch round failed")
            await asyncio.sleep(max(0.0, self._period - (time.monotonic() - started)))
