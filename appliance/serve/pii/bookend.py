"""The bookend in the ingress: mask a generation body through the PII service, restore the response going out.

:meth:`Bookend.mask` first walks the body with the coverage table (:mod:`appliance.serve.pii.coverage`): a
field outside the allowlist, media, or token ids are refused with 400 and fields the engine ignores are
dropped. It then sends every text the model will see, and every string that cannot be masked (names, ids,
schema keys; refused with 400 if they hold personal data), to the PII service with a timeout. Any failure
(error, timeout, no replica; a service still loading fails at once, :class:`FirstReady`) refuses the request
with 503 + Retry-After in the OpenAI shape and the body is never forwarded; only ``PII_FAIL_OPEN`` (off by
default, flagged by doctor) forwards it unmasked instead.
:meth:`Masked.restoring` wraps the ASGI ``send`` so the client gets its own values back. The mapping lives
in the :class:`Masked` object of one request: never logged, never stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from appliance.serve.checks import pooling_text, prompt_text
from appliance.serve.errors import RETRY_AFTER_SECONDS, ApiError
from appliance.serve.health import READY
from appliance.serve.pii.engine import PiiOptions
from appliance.serve.pii.fields import plan_request, replace_texts
from appliance.serve.pii.metrics import PiiMetrics
from appliance.serve.pii.response import SseRestorer, restore_json
from appliance.serve.pii.restore import Restorer
from appliance.serve.pii.walker import Spec
from appliance.serve.responses import responses_text

_LOGGER = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
MaskCall = Callable[[list[str]], Awaitable[dict[str, Any]]]
Available = Callable[[], Awaitable[bool]]  # whether the PII service may take a call now

UNAVAILABLE_MESSAGE = "PII masking is unavailable, so the request was not sent to the model. Retry later."


@dataclass(frozen=True)
class BookendSettings:
    timeout_seconds: float
    fail_open: bool = False


class Masked:
    """One request after masking: the body to forward, and the restorer for its response."""

    def __init__(self, body: bytes, payload: dict[str, Any] | None, restorer: Restorer, metrics: PiiMetrics) -> None:
        self.body = body
        self._payload = payload
        self.restorer = restorer
        self._metrics = metrics

    @property
    def prompt(self) -> str:
        """The masked prompt, for the audit log ("" when the request went out unmasked under PII_FAIL_OPEN)."""
        if self._payload is None:
            return ""
        if self._payload.get("max_output_tokens") is not None:  # the Responses API (the gate always sets it)
            return responses_text(self._payload)
        pooling = any(name in self._payload for name in ("input", "text_1", "query"))  # embeddings, score, rerank
        return pooling_text(self._payload) if pooling else prompt_text(self._payload)

    def restoring(self, send: Send) -> Send:
        """``send`` with the response's placeholders replaced by the user's values (only 200 answers)."""
        if not self.restorer.originals:
            return send
        return _RestoringSend(send, self.restorer, self._metrics)

    def __repr__(self) -> str:
        return f"Masked({len(self.body)} bytes, {len(self.restorer.originals)} placeholders)"


class _RestoringSend:
    def __init__(self, send: Send, restorer: Restorer, metrics: PiiMetrics) -> None:
        self._send = send
        self._restorer = restorer
        self._metrics = metrics
        self._mode = "pass"  # "pass" | "sse" | "json"
        self._start: Message | None = None
        self._sse: SseRestorer | None = None
        self._parts: list[bytes] = []
        self._spent = 0.0

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body" and self._mode != "pass":
            await self._on_body(message)
        else:
            await self._send(message)

    async def _on_start(self, message: Message) -> None:
        headers = list(message.get("headers", []))
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        if message.get("status") != 200:
            await self._send(message)
            return
        message = dict(message)
        message["headers"] = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        if content_type.startswith(b"text/event-stream"):
            self._mode, self._sse = "sse", SseRestorer(self._restorer)
            await self._send(message)
        else:
            self._mode, self._start = "json", message  # sent with the restored body's length

    async def _on_body(self, message: Message) -> None:
        more = message.get("more_body", False)
        chunk: bytes = message.get("body", b"")
        started = time.perf_counter()
        if self._mode == "sse":
            assert self._sse is not None
            out = self._sse.feed(chunk) + (b"" if more else self._sse.finish())
            self._spent += time.perf_counter() - started
            if not more:
                self._metrics.restored(self._spent)
            await self._send({**message, "body": out})
            return
        self._parts.append(chunk)
        if more:
            return
        body = restore_json(b"".join(self._parts), self._restorer)
        self._metrics.restored(self._spent + time.perf_counter() - started)
        assert self._start is not None
        start = dict(self._start)
        start["headers"] = [*start["headers"], (b"content-length", str(len(body)).encode())]
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


class Bookend:
    """Masking for one ingress replica. ``call`` sends texts to the PII service (a Serve handle in production)."""

    def __init__(
        self, settings: BookendSettings, call: MaskCall, metrics: PiiMetrics, available: Available | None = None
    ) -> None:
        self.settings = settings
        self._call = call
        self._metrics = metrics
        self._available = available

    async def mask(self, body: bytes, fields: Mapping[str, Spec] | None = None) -> Masked:
        """The masked request, or ApiError: 400 for a body that may not go out with PII on (a field outside the
        allowlist, personal data where it cannot be masked, token ids or media), 503 when masking failed.
        ``fields``: the coverage table of the route (None: chat / completions)."""
        payload = json.loads(body)  # already checked by the gate
        plan = (
            plan_request(payload) if fields is None else plan_request(payload, fields)
        )  # drops the fields the engine ignores; ApiError 400 for refused ones
        if plan.dropped:
            body = json.dumps(payload).encode()
        texts = [field.text for field in plan.masked] + [check.text for check in plan.checks]
        if not texts:
            return Masked(body, payload, Restorer({}), self._metrics)
        if self._available is not None and not await self._available():
            return self._failed("unavailable", body, payload)
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                result = await self._call(texts)
            answered, originals = result["texts"], result["originals"]
            if len(answered) != len(texts):
                raise ValueError(f"the PII service answered {len(answered)} texts for {len(texts)}")
        except TimeoutError:
            return self._failed("timeout", body, payload)
        except Exception as err:
            _LOGGER.warning("PII service failed: %s", type(err).__name__)
            return self._failed("error", body, payload)
        masked, checked = answered[: len(plan.masked)], answered[len(plan.masked) :]
        for check, seen in zip(plan.checks, checked, strict=True):
            if seen != check.text:
                raise check.refusal()
        replace_texts(payload, plan.masked, masked)
        return Masked(json.dumps(payload).encode(), payload, Restorer(originals), self._metrics)

    def _failed(self, reason: str, body: bytes, payload: dict[str, Any]) -> Masked:
        self._metrics.failure(reason)
        if not self.settings.fail_open:
            raise ApiError(
                503, UNAVAILABLE_MESSAGE, "pii_unavailable", headers=(("Retry-After", str(RETRY_AFTER_SECONDS)),)
            )
        _LOGGER.warning("PII masking failed (%s); PII_FAIL_OPEN is on, so the request goes out unmasked", reason)
        return Masked(body, None, Restorer({}), self._metrics)  # no payload: the audit never gets this prompt


def serve_handle_call(app_name: str | None = None) -> MaskCall:
    """A :data:`MaskCall` to the PII service of this Serve application (looked up on first use)."""
    handle: Any = None

    async def call(texts: list[str]) -> dict[str, Any]:
        nonlocal handle
        from ray import serve

        from appliance.serve.pii.service import DEPLOYMENT_NAME

        if handle is None:
            name = app_name or serve.get_replica_context().app_name
            handle = serve.get_deployment_handle(DEPLOYMENT_NAME, app_name=name)
        response = handle.mask.remote(texts)
        try:
            masked: dict[str, Any] = await response
            return masked
        except asyncio.CancelledError:
            response.cancel()
            raise

    return call


class FirstReady:
    """Whether the PII service may take a call. Until it has been seen ready once, its state in Serve's view decides
    (``state``: ModelHealth's, cached 1 s): in the first seconds of a (re)started application the service may
    still be loading, and a call would wait for a replica until ``PII_TIMEOUT_SECONDS`` only to fail; it fails at
    once instead. After that every call goes on, and a later failure is the call's own (timeout, error). A state
    that cannot be read lets the call go on (its timeout still bounds it)."""

    def __init__(self, state: Callable[[], Awaitable[str]]) -> None:
        self._state = state
        self._seen_ready = False

    async def __call__(self) -> bool:
        if self._seen_ready:
            return True
        try:
            state = await self._state()
        except Exception as err:
            _LOGGER.warning("the PII service's state could not be read (%s); the call goes on", type(err).__name__)
            return True
        self._seen_ready = state == READY
        return self._seen_ready


def serve_state() -> Callable[[], Awaitable[str]]:
    """The PII service's state in Serve's view (loading, ready, failed), read at most once a second."""
    from appliance.serve.health import ModelHealth
    from appliance.serve.pii.service import DEPLOYMENT_NAME

    health = ModelHealth({DEPLOYMENT_NAME: DEPLOYMENT_NAME})

    async def state() -> str:
        return str((await health.states())[DEPLOYMENT_NAME]["state"])

    return state


def make_bookend(options: PiiOptions) -> Bookend:
    """The bookend of an ingress replica: the PII service of this Serve application, Ray metrics."""
    from appliance.serve.pii.metrics import RayPiiMetrics

    return Bookend(
        BookendSettings(options.timeout_seconds, options.fail_open),
        serve_handle_call(),
        RayPiiMetrics(),
        FirstReady(serve_state()),
    )
