"""The model lifecycle's door to Ray Serve, in the serve head process (the only process that deploys): start a
generation beside the serving one, wait until Serve calls it healthy, send it one real completion, stop one.

Every operation applies the whole application again with :class:`~appliance.serve.generations.Generations`:
deployments whose version did not change are left running by Serve, so only the named generation starts or stops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from appliance.config.loader import ApplianceConfig
from appliance.config.models import ModelSpec
from appliance.lifecycle.apply import GenerationError
from appliance.lifecycle.plan import Need
from appliance.serve.generations import INGRESS_NAME, Generations, default_deployment, generation_deployment

_LOGGER = logging.getLogger(__name__)
SMOKE_PROMPT = "The appliance checks this model with a short completion."
SMOKE_MAX_TOKENS = 8
SMOKE_TIMEOUT_S = 60.0
_FAILED = {"DEPLOY_FAILED", "UNHEALTHY"}
LEARN_TIMEOUT_S = 60.0  # Serve reconfigures the ingress within a few seconds of the application's update


class RayServePort:
    def __init__(
        self,
        serve: Any,
        config: ApplianceConfig,
        generations: Generations,
        run: Callable[[Generations], None],
        app_name: str,
        *,
        poll_s: float = 1.0,
    ) -> None:
        self.serve = serve
        self.config = config
        self.generations = generations
        self._run = run  # builds the application with these generations and serve.run()s it
        self.app_name = app_name
        self.poll_s = poll_s
        self._replacing: set[str] = set()  # models whose serving generation stops when the next one starts
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # the smoke tests' loop, for the port's lifetime

    def deployment_name(self, model_id: str, entry_id: int) -> str:
        return generation_deployment(model_id, entry_id)

    def free(self) -> Need:
        import ray

        available = ray.available_resources()
        return Need(float(available.get("CPU", 0.0)), float(available.get("GPU", 0.0)))

    def running(self, deployment: str) -> bool:
        status = self._status(deployment)
        return status is not None and status[0] == "HEALTHY"

    def exists(self, deployment: str) -> bool:
        return self._status(deployment) is not None

    def start(self, model_id: str, deployment: str, spec: Mapping[str, Any]) -> None:
        model = ModelSpec.model_validate(dict(spec))
        with self._lock:
            if model_id in self._replacing:  # replace: the new generation takes the old one's place in one update
                self._replacing.discard(model_id)
                self.generations.serving[model_id] = (deployment, model)
            else:
                self.generations.beside[deployment] = (model_id, model)
            self._apply()

    def stop(self, deployment: str) -> None:
        with self._lock:
            if deployment in self.generations.beside:  # a generation that failed (or a staged one): it goes
                del self.generations.beside[deployment]
                self._apply()
                return
            model_id = self._serving_model(deployment)
            if model_id is None:
                return  # not running (a staged generation already stopped)
            successor = next((name for name, (m, _s) in self.generations.beside.items() if m == model_id), None)
            if successor is None:
                self._replacing.add(model_id)  # replace: stopped by the start that follows
                return
            self.generations.serving[model_id] = (successor, self.generations.beside.pop(successor)[1])
            self._apply()  # the switched-to generation serves; the old one is drained and removed by Serve

    def add(self, model_id: str, deployment: str) -> None:
        """A new model id, loaded and smoke-tested beside: it becomes one the application serves, and the ingress
        learns it from the application's user_config (appliance.serve.live_models); nothing else restarts."""
        with self._lock:
            generation = self.generations.beside.pop(deployment)
            self.generations.serving[model_id] = (deployment, generation[1])  # (a model dropped before: served again)
            try:
                self._apply()
            except GenerationError:  # as it was: the executor's rollback stops it as a generation beside
                self._unadd(model_id, deployment, generation)
                raise
        try:
            self._wait_learned(model_id)  # (outside the lock: the smoke loop's creation takes it)
        except GenerationError:
            with self._lock:
                self._unadd(model_id, deployment, generation)
            raise

    def remove(self, model_id: str, deployment: str) -> None:
        """The ingress drops ``model_id`` (its user_config lists it removed; its engine still runs, beside, so a
        request routed a moment before still has an engine to answer it), then the engine's deployment goes
        (Serve drains it). Nothing else restarts."""
        with self._lock:
            if self._serving_model(deployment) != model_id:
                raise GenerationError(f"{deployment} does not serve {model_id} in this application")
            spec = self.generations.serving.pop(model_id)[1]
            self.generations.dropped.add(model_id)
            self.generations.beside[deployment] = (model_id, spec)
            try:
                self._apply()
            except GenerationError:  # as it was: still served
                self._unremove(model_id, deployment, spec)
                raise
        try:
            self._wait_learned(model_id, serves=False)
        except GenerationError:
            with self._lock:
                self._unremove(model_id, deployment, spec)
                self._apply()
            raise
        with self._lock:
            del self.generations.beside[deployment]
            self._apply()  # Serve drains the engine's replicas and removes the deployment

    def _unremove(self, model_id: str, deployment: str, spec: ModelSpec) -> None:
        self.generations.beside.pop(deployment, None)
        self.generations.serving[model_id] = (deployment, spec)

    def _unadd(self, model_id: str, deployment: str, generation: tuple[str, ModelSpec]) -> None:
        del self.generations.serving[model_id]
        self.generations.beside[deployment] = generation  # (stop() then applies the application without it)

    def _wait_learned(self, model_id: str, *, serves: bool = True) -> None:
        """Until the ingress serves ``model_id`` (Serve reconfigures it a moment after the application is applied),
        so the route switches to a model the ingress knows and ``models deploy`` returns once it answers; with
        ``serves=False``, until it no longer serves it (a removal: then its engine may stop)."""

        async def ask() -> bool:
            handle = self.serve.get_deployment_handle(INGRESS_NAME, app_name=self.app_name)
            return bool(await handle.serves.remote(model_id))

        deadline = time.monotonic() + LEARN_TIMEOUT_S
        while True:
            try:
                if asyncio.run_coroutine_threadsafe(ask(), self._smoke_loop()).result(LEARN_TIMEOUT_S) is serves:
                    return
            except Exception as err:  # the ingress restarting or not reachable for a moment: asked again
                _LOGGER.debug("ingress not asked whether it serves %s: %s", model_id, type(err).__name__)
            if time.monotonic() > deadline:
                learned = "learn" if serves else "drop"
                raise GenerationError(f"the ingress did not {learned} the model within {LEARN_TIMEOUT_S:.0f} s")
            time.sleep(max(self.poll_s, 0.2))

    def wait_ready(self, deployment: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self._status(deployment)
            if status is not None and status[0] == "HEALTHY":
                return
            if status is not None and status[0] in _FAILED:
                raise GenerationError(f"{deployment} did not start: {_first_line(status[1])}")
            if time.monotonic() > deadline:
                raise GenerationError(f"{deployment} was not ready after {timeout_s:.0f} s")
            time.sleep(self.poll_s)

    def smoke(self, model_id: str, deployment: str) -> None:
        """One real completion through the generation's own deployment (not through the ingress), sent from an
        event loop of the port's own: with direct ingress (RAY_SERVE_THROUGHPUT_OPTIMIZED) Serve's handles run
        their router in the caller's loop and refuse a caller without one. The loop lives as long as the port:
        Serve keeps a handle's router bound to the loop it first ran in, so a loop per smoke test (asyncio.run)
        fails every smoke test after the first with "Event loop is closed"."""
        from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest

        request = CompletionRequest(model=model_id, prompt=SMOKE_PROMPT, max_tokens=SMOKE_MAX_TOKENS, stream=False)

        async def complete() -> str:
            handle = self.serve.get_deployment_handle(deployment, app_name=self.app_name).options(stream=True)
            async with asyncio.timeout(SMOKE_TIMEOUT_S):
                async for chunk in handle.completions.remote(request, None):
                    first = chunk[0] if isinstance(chunk, list) else chunk
                    error = getattr(first, "error", None)
                    if error is not None:
                        raise GenerationError(
                            f"the smoke completion answered {error.code}: {_first_line(str(error.message))}"
                        )
                    choices = getattr(first, "choices", None)
                    if not choices:
                        raise GenerationError("the smoke completion answered without a choice")
                    return str(choices[0].text)
            raise GenerationError("the smoke completion answered nothing")

        future = asyncio.run_coroutine_threadsafe(complete(), self._smoke_loop())
        try:
            future.result(SMOKE_TIMEOUT_S + 5.0)  # asyncio.timeout inside ends it first; this is the backstop
        except GenerationError:
            raise
        except TimeoutError:  # concurrent.futures.TimeoutError is this class since Python 3.11
            future.cancel()
            raise GenerationError(f"the smoke completion took more than {SMOKE_TIMEOUT_S:.0f} s") from None
        except Exception as err:
            raise GenerationError(
                f"the smoke completion failed: {type(err).__name__}: {_first_line(str(err))}"
            ) from None

    # --- helpers ----------------------------------------------------------------------------------------
    def _smoke_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="lifecycle-smoke-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def _serving_model(self, deployment: str) -> str | None:
        for model_id, (name, _spec) in self.generations.serving.items():
            if name == deployment:
                return model_id
        for spec in self.config.models:
            if spec.id in self.generations.dropped:
                continue  # removed since the start: its default deployment is gone (one deployed again is above)
            if spec.id not in self.generations.serving and default_deployment(spec.id) == deployment:
                self.generations.serving[spec.id] = (deployment, spec)
                return spec.id
        return None

    def _apply(self) -> None:
        try:
            self._run(self.generations)
        except Exception as err:
            raise GenerationError(
                f"Ray Serve refused the application: {type(err).__name__}: {_first_line(str(err))}"
            ) from None

    def _status(self, deployment: str) -> tuple[str, str] | None:
        try:
            app = self.serve.status().applications.get(self.app_name)
        except Exception as err:
            raise GenerationError(f"Ray Serve's status is unavailable: {type(err).__name__}") from None
        if app is None:
            return None
        status = app.deployments.get(deployment)
        if status is None:
            return None
        value = getattr(status.status, "value", status.status)
        return str(value), str(status.message or "")


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]
