"""Health of the models, for the probes: startup state from Serve, readiness from a real tiny generation.

``model_state`` is pure; :class:`ModelHealth` reads Serve's status (at most once a second) and remembers
since when each model is in its state; :class:`ReadyCache` runs the readiness probe in the background so a
probe never waits behind real traffic when an earlier answer is at hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

LOADING, READY, FAILED = "loading", "ready", "failed"
_FAILED = {"DEPLOY_FAILED", "UNHEALTHY"}
_SETTLED = {"HEALTHY", "UPSCALING", "DOWNSCALING"}


def model_state(deployment_status: str | None, running_replicas: int, was_ready: bool) -> str:
    """``loading`` until Serve calls the deployment healthy (or it keeps a running replica after it was
    ready), ``failed`` when Serve gave up on it."""
    if deployment_status in _FAILED:
        return FAILED
    if deployment_status in _SETTLED or (was_ready and running_replicas > 0):
        return READY
    return LOADING


class ModelHealth:
    def __init__(self, deployments: dict[str, str], *, refresh_seconds: float = 1.0) -> None:
        self._deployments = deployments  # model id -> Serve deployment name
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
            mid: {**{k: v for k, v in s.items() if k != "since_ts"},
                  "since": datetime.fromtimestamp(s["since_ts"], UTC).isoformat(),
                  "elapsed_s": round(now - s["since_ts"], 1)}
            for mid, s in self._states.items()
        }  # fmt: skip

    def _update(self, statuses: dict[str, tuple[str, dict[str, int], str]], now: float) -> None:
        for model_id, name in self._deployments.items():
            status, replicas, message = statuses.get(name, (None, {}, "not deployed yet"))
            previous = self._states.get(model_id)
            was_ready = bool(previous and previous["state"] == READY)
            state = model_state(status, replicas.get("RUNNING", 0), was_ready)
            since = previous["since_ts"] if previous and previous["state"] == state else (
                self._created if previous is None else now)  # fmt: skip
            self._states[model_id] = {
                "state": state, "since_ts": since, "serve_status": status,
                "replicas": {k.lower(): v for k, v in replicas.items()}, "message": message[:500],
            }  # fmt: skip


def _deployment_statuses() -> dict[str, tuple[str, dict[str, int], str]]:
    """Serve's view of this application's deployments: name -> (status, replica counts, message)."""
    from ray import serve

    app_name = serve.get_replica_context().app_name
    app = serve.status().applications.get(app_name)
    if app is None:
        return {}
    return {
        name: (str(d.status.value if hasattr(d.status, "value") else d.status),
               {str(getattr(k, "value", k)): v for k, v in (d.replica_states or {}).items()}, d.message or "")
        for name, d in app.deployments.items()
    }  # fmt: skip


class ReadyCache:
    """Caches the readiness probe for ``ttl`` seconds; refreshes in the background, one at a time."""

    def __init__(self, probe: Callable[[], Awaitable[dict[str, dict[str, Any]]]], *, ttl: float) -> None:
        self._probe = probe
        self._ttl = ttl
        self._result: dict[str, dict[str, Any]] | None = None
        self._at = 0.0
        self._task: asyncio.Task[dict[str, dict[str, Any]]] | None = None

    async def get(self) -> dict[str, dict[str, Any]]:
        fresh = self._result is not None and time.monotonic() - self._at < self._ttl
        if fresh:
            return self._result  # type: ignore[return-value]
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        if self._result is not None:
            return self._result  # an earlier answer now; the new one lands in the cache
        return await asyncio.shield(self._task)

    async def _run(self) -> dict[str, dict[str, Any]]:
        result = await self._probe()
        self._result, self._at = result, time.monotonic()
        return result
