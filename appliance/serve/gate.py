"""The appliance's ASGI gate in front of the OpenAI app: request ids, API keys, body checks, audit, metrics.

It wraps any ASGI app (ray.serve.llm's OpenAI ingress here) without changing it: it decides from the
request line, headers and body (see :mod:`appliance.serve.checks`), forwards the possibly rewritten body,
and watches the response go by to record status, time to first token and token usage.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from appliance.batch.caller import BATCH_CALLER_STATE, LIVE, BatchCaller
from appliance.logs.setup import REQUEST_ID, new_request_id
from appliance.serve.admin_models import ADMIN_MODEL_ROUTES
from appliance.serve.audit import AuditLog
from appliance.serve.budget import BudgetError, Budgets
from appliance.serve.checks import (
    ANONYMOUS,
    GENERATION_PATHS,
    POOLING_PATHS,
    GenerationFacts,
    Principal,
    RequestLimits,
    authenticate,
    check_generation,
    check_pooling,
    echo,
    require_admin,
    valid_request_id,
)
from appliance.serve.errors import ApiError
from appliance.serve.keystore import KeyStore
from appliance.serve.metrics import Metrics
from appliance.serve.pii.bookend import Bookend
from appliance.serve.pii.pooling import pooling_fields
from appliance.serve.pii.responses import RESPONSES_FIELDS
from appliance.serve.responses import RESPONSES_PATH, check_responses
from appliance.serve.tokenize import TOKENIZE_PATHS, check_tokenize, tokenize_fields
from appliance.serve.usage import UsageWatcher, clean_error

_LOGGER = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRINCIPAL_STATE = "appliance_principal"
DETAIL_STATE = "appliance_health_detail"  # True: the caller may see health details (admin key or internal)
OTHER_LABEL = "other"  # the metric label of a model that is not configured

# Every route the app serves, by name (the ingress's endpoint map uses the same names): the gate lets nothing
# else through. Public routes need no key; every other one does.
ROUTES: dict[str, tuple[str, str]] = {
    "models": ("GET", "/v1/models"),
    "model_data": ("GET", "/v1/models/{model:path}"),
    "completions": ("POST", "/v1/completions"),
    "chat": ("POST", "/v1/chat/completions"),
    "health_live": ("GET", "/health/live"),
    "health_startup": ("GET", "/health/startup"),
    "health_ready": ("GET", "/health/ready"),
    "admin_models": ("GET", "/admin/models"),
    "embeddings": ("POST", "/v1/embeddings"),
    "score": ("POST", "/v1/score"),
    "rerank": ("POST", "/v1/rerank"),
    "responses": ("POST", "/v1/responses"),
    "tokenize": ("POST", "/tokenize"),  # vLLM's own (appliance.serve.tokenize)
    "detokenize": ("POST", "/detokenize"),
}
# The Batch API (appliance.batch.routes): files and batches, each key's own; audited like generations.
BATCH_ROUTES: dict[str, tuple[str, str]] = {
    "files_create": ("POST", "/v1/files"),
    "files_list": ("GET", "/v1/files"),
    "files_content": ("GET", "/v1/files/{file_id}/content"),
    "files_get": ("GET", "/v1/files/{file_id}"),
    "files_delete": ("DELETE", "/v1/files/{file_id}"),
    "batches_create": ("POST", "/v1/batches"),
    "batches_list": ("GET", "/v1/batches"),
    "batches_cancel": ("POST", "/v1/batches/{batch_id}/cancel"),
    "batches_get": ("GET", "/v1/batches/{batch_id}"),
}
ROUTES.update(BATCH_ROUTES)
ROUTES.update(ADMIN_MODEL_ROUTES)  # /admin/models/...: model changes (appliance.serve.admin_models), admin keys only
PUBLIC_ROUTES = frozenset({"health_live", "health_startup", "health_ready"})


def _route_pattern(template: str) -> re.Pattern[str]:
    """A route template as Starlette matches it: ``{name}`` is one path segment, ``{name:path}`` the rest."""
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(
        ("(.+)" if p.endswith(":path}") else "([^/]+)") if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(regex + r"\Z")


_PATTERNS = {name: _route_pattern(path) for name, (_method, path) in ROUTES.items()}


def route_of(path: str) -> str | None:
    """The name of the route ``path`` (root_path already stripped) belongs to, or None."""
    for name, pattern in _PATTERNS.items():
        if pattern.match(path):
            return name
    return None


AUDIT_UNAVAILABLE = ApiError(
    503,
    "The audit log cannot be written (its disk is full or failing); requests are refused until it can.",
    "audit_unavailable",
    headers=(("Retry-After", "30"),),
)


@dataclass(frozen=True)
class GateSettings:
    auth_enabled: bool
    max_body_bytes: int
    caps: Mapping[str, RequestLimits | int]  # model id -> its request limits (an int: only a max_tokens cap)
    audit_prompts: bool = False
    pii_embeddings: str = "mask"  # PII_EMBEDDINGS: "mask" or "refuse" inputs of the pooling routes


class ClientDisconnected(Exception):
    """The client went away while its request body was being read."""


class Gate:
    """ASGI middleware. One instance per ingress replica."""

    def __init__(
        self,
        app: ASGIApp,
        settings: GateSettings,
        keys: KeyStore,
        audit: AuditLog,
        metrics: Metrics,
        bookend: Bookend | None = None,
        budgets: Budgets | None = None,
        disabled: Callable[[str], bool] | None = None,
    ):
        self.app = app
        self.disabled = disabled  # the registry's disabled models (answered 404 like an unknown one)
        self.budgets = budgets or Budgets()  # per-key rpm / tpm / daily tokens, in this replica
        self.settings = settings
        self.keys = keys
        self.audit = audit
        self.metrics = metrics
        self.bookend = bookend  # PII masking (appliance.serve.pii.bookend), None when off

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        incoming = valid_request_id(headers.get("x-request-id"))  # nginx's (or Ray's proxy's), never a client's
        request_id = incoming or new_request_id()
        # Ray Serve's proxy puts an X-Request-ID on every request and echoes it in the response itself.
        send = send if "x-request-id" in headers else _with_request_id(send, request_id)
        token = REQUEST_ID.set(request_id)
        try:
            await self._handle(scope, receive, send, headers, request_id)
        finally:
            REQUEST_ID.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], rid: str) -> None:
        path = _route_path(scope)
        route = route_of(path)
        if route is None:
            await _answer(send, ApiError(404, f"Not found: {echo(path)}. The API is under /v1/.", "not_found"))
            return
        if route in PUBLIC_ROUTES:
            await self.app(self._public_scope(scope, headers), receive, send)
            return
        send = _errors_cleaned(send, rid)
        started = time.monotonic()
        record: dict[str, Any] = {
            "request_id": rid,
            "endpoint": path,
            "method": scope.get("method"),
            "client": _client_address(scope, headers),
            "client_request_id": valid_request_id(headers.get("x-client-request-id")),
        }
        caller = scope.get("state", {}).get(BATCH_CALLER_STATE)  # set only by this replica's batch runner
        if isinstance(caller, BatchCaller):
            record["batch_id"] = caller.batch_id
        try:
            principal = (
                self._batch_principal(caller)
                if isinstance(caller, BatchCaller)
                else authenticate(
                    headers.get("authorization"), self.keys.records(), auth_enabled=self.settings.auth_enabled
                )
            )
        except ApiError as err:
            self.metrics.auth_failure(err.code)
            await self._refuse(send, err, record, started)
            return
        record.update(key=principal.name, role=principal.role.value)
        scope = _downstream_scope(scope, principal)
        try:
            if route == "admin_models" or route in ADMIN_MODEL_ROUTES:
                require_admin(principal)
            if scope.get("method") == "POST" and (
                path in GENERATION_PATHS or path in POOLING_PATHS or path == RESPONSES_PATH or path in TOKENIZE_PATHS
            ):
                if not self.audit.available():  # an audited request is never served unaudited
                    raise AUDIT_UNAVAILABLE
                await self._generation(scope, receive, send, principal, record, started, path)
                return
            if route in BATCH_ROUTES:
                if not self.audit.available():
                    raise AUDIT_UNAVAILABLE
                await self.app(scope, receive, self._audited(send, record, started))
                return
        except ApiError as err:
            await self._refuse(send, err, record, started)
            return
        except ClientDisconnected:
            return
        await self.app(scope, receive, send)

    def _batch_principal(self, caller: BatchCaller) -> Principal:
        """The owner of a batch line: its key as it is now (revoked: refused; allowlist and budgets: today's)."""
        if not self.settings.auth_enabled:
            return ANONYMOUS
        for record in self.keys.records():
            if record.name == caller.key:
                return Principal.from_record(record)
        raise ApiError(401, "The API key that created this batch no longer exists (revoked).", "invalid_api_key")

    def _audited(self, send: Send, record: dict[str, Any], started: float) -> Send:
        """``send`` that writes the request's audit line (its status) before the answer starts; when the line
        cannot be written the answer is a 503 instead (never served unaudited)."""
        refused = False

        async def audited(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            if message["type"] == "http.response.start":
                record.update(status=message["status"], latency_ms=round((time.monotonic() - started) * 1000, 1))
                if not self.audit.write(record):
                    refused = True
                    self.metrics.audit_refused()
                    await _answer(send, AUDIT_UNAVAILABLE)
                    return
            await send(message)

        return audited

    def _public_scope(self, scope: Scope, headers: dict[str, str]) -> Scope:
        """A health probe's scope: whether it may see details (an admin key, or a probe from inside the container)."""
        detail = _internal(scope, headers)
        if not detail and headers.get("authorization"):
            try:
                principal = authenticate(
                    headers["authorization"], self.keys.records(), auth_enabled=self.settings.auth_enabled
                )
                detail = principal.role.value == "admin"
            except ApiError:
                detail = False
        scope = _downstream_scope(scope, None)
        scope["state"][DETAIL_STATE] = detail
        return scope

    def label(self, model: str | None) -> str:
        """A model as a metric label: a configured id, else ``other`` (client input never becomes a label)."""
        return model if model is not None and model in self.settings.caps else OTHER_LABEL

    async def _generation(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        record: dict[str, Any],
        started: float,
        path: str = "/v1/completions",
    ) -> None:
        raw = await _read_body(scope, receive, self.settings.max_body_bytes)
        try:
            log_prompt = self.settings.audit_prompts and self.bookend is None  # with PII on: the masked one only
            if path in POOLING_PATHS:
                body, facts = check_pooling(raw, principal, self.settings.caps, path, log_prompt=log_prompt)
            elif path == RESPONSES_PATH:
                body, facts = check_responses(raw, principal, self.settings.caps, log_prompt=log_prompt)
            elif path in TOKENIZE_PATHS:
                body, facts = check_tokenize(raw, principal, self.settings.caps, path, log_prompt=log_prompt)
            else:
                body, facts = check_generation(
                    raw, principal, self.settings.caps, log_prompt=log_prompt, chat=path.endswith("/chat/completions")
                )
        except ApiError:
            record["model"] = _model_named(raw)
            raise
        record.update(model=facts.model, stream=facts.stream)
        if self.disabled is not None and self.disabled(facts.model):
            raise ApiError(
                404, f"The model {echo(facts.model)} does not exist (it is disabled).", "model_not_found", "model"
            )
        if facts.prompt is not None:
            record["prompt"] = facts.prompt
        try:
            reservation = self.budgets.reserve(principal.name, principal.limits, facts.reserve_tokens)
        except BudgetError as err:
            self.metrics.budget_refused(principal.name, err.limit)
            raise
        if self.bookend is not None:
            refuse = self.settings.pii_embeddings == "refuse"
            fields = (
                pooling_fields(path, refuse=refuse)
                if path in POOLING_PATHS
                else RESPONSES_FIELDS
                if path == RESPONSES_PATH
                else tokenize_fields(path)
                if path in TOKENIZE_PATHS
                else None
            )
            try:
                masked = await self.bookend.mask(body, fields)  # ApiError 503 when it cannot mask: nothing forwarded
            except BaseException:
                self.budgets.refund(reservation)
                raise
            body = masked.body
            if path not in ("/v1/embeddings", "/v1/score", *TOKENIZE_PATHS):  # answers without text: no restoring
                send = masked.restoring(send)
            if self.settings.audit_prompts:
                record["prompt"] = masked.prompt
        rate_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.budgets.headers(reservation)]
        watcher = UsageWatcher(
            stream=facts.stream, strip_usage=facts.stream and not facts.wants_usage, request_id=record["request_id"]
        )
        scope = _replace_content_length(scope, len(body))
        self.metrics.in_flight(facts.model, +1)
        live = 0 if "batch_id" in record else 1  # live traffic, which batch work yields to
        LIVE.add(live)
        status = 500
        finished = False
        audited = True
        # An answer that is not streamed is held until its audit line is written, so that a line that cannot
        # be written (a full disk) turns it into a 503; a stream (already started) ends with an error event.
        held: list[Message] = []
        replaced = False

        def finish() -> None:
            nonlocal finished, audited
            if not finished:
                finished = True
                self.metrics.in_flight(facts.model, -1)
                LIVE.add(-live)
                usage, audited = self._finish(record, facts, status, watcher, started)
                used = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
                if status < 400 and used:
                    self.budgets.settle(reservation, used)
                else:
                    self.budgets.refund(reservation)

        length: int | None = None  # the response's content-length: a client stops reading once it has that much
        sent = 0

        try:

            async def watched_send(message: Message) -> None:
                nonlocal status, length, sent, replaced
                if replaced:  # the answer was replaced because its audit line could not be written
                    return
                if message["type"] == "http.response.start":
                    status = message["status"]
                    length = _content_length(message)
                    if rate_headers:
                        message = {**message, "headers": [*message.get("headers", []), *rate_headers]}
                    if not facts.stream:
                        held.append(message)
                        return
                elif message["type"] == "http.response.body":
                    message = watcher.on_body(message, time.monotonic())
                    sent += len(message.get("body", b""))
                    last = (
                        not message.get("more_body", False) or watcher.done or (length is not None and sent >= length)
                    )
                    if last and not finished:
                        finish()  # the audit line is written before the client sees the end of the response
                        if not audited and status < 400:
                            replaced = True
                            self.metrics.audit_refused()
                            if held:  # nothing of it sent yet: refused as a whole
                                await _answer(send, AUDIT_UNAVAILABLE)
                            else:  # a stream: its end becomes an error event
                                await send({"type": "http.response.body", "body": _audit_error_event()})
                            return
                    if held:
                        if not last:
                            held.append(message)
                            return
                        for early in held:
                            await send(early)
                        held.clear()
                await send(message)

            await self.app(scope, _replay(body, receive), watched_send)
        finally:
            finish()

    def _finish(
        self, record: dict[str, Any], facts: GenerationFacts, status: int, watcher: UsageWatcher, started: float
    ) -> tuple[dict[str, Any], bool]:
        """Write the request's audit line and count it; the usage, and whether the line was written."""
        now = time.monotonic()
        latency = now - started
        ttft = watcher.first_token_at - started if facts.stream and watcher.first_token_at else None
        usage = watcher.usage()
        record.update(
            status=status,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=round(latency * 1000, 1),
            ttft_ms=round(ttft * 1000, 1) if ttft is not None else None,
        )
        written = self.audit.write(record)
        self.metrics.request_done(
            model=self.label(facts.model),
            status=status,
            key=record.get("key", "-"),
            latency=latency,
            ttft=ttft,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
        return usage, written

    async def _refuse(self, send: Send, err: ApiError, record: dict[str, Any], started: float) -> None:
        record.update(status=err.status, error=err.code, latency_ms=round((time.monotonic() - started) * 1000, 1))
        self.audit.write(record)  # before the answer: a client that got its refusal finds the line written
        if err is AUDIT_UNAVAILABLE:
            self.metrics.audit_refused()
        await _answer(send, err)
        self.metrics.request_done(
            model=self.label(record.get("model")),
            status=err.status,
            key=record.get("key", "-"),
            latency=time.monotonic() - started,
            ttft=None,
            prompt_tokens=None,
            completion_tokens=None,
        )


def _content_length(start: Message) -> int | None:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


def _model_named(raw: bytes) -> str | None:
    """The ``model`` a refused body asked for, for the audit line (None when it cannot be told)."""
    try:
        model = json.loads(raw).get("model")
    except (AttributeError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return model[:128] if isinstance(model, str) else None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _client_address(scope: Scope, headers: dict[str, str]) -> str | None:
    """The caller's address: the entry the nearest proxy wrote (nginx sets X-Forwarded-For to $remote_addr;
    earlier entries, were there any, are what the client claimed)."""
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:64] or None
    client = scope.get("client")
    return client[0] if client else None


def _internal(scope: Scope, headers: dict[str, str]) -> bool:
    """A request made from inside the serve container (its health check), not one forwarded by nginx."""
    if "x-forwarded-for" in headers or "x-real-ip" in headers:
        return False
    client = scope.get("client")
    try:
        return client is not None and bool(client) and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _route_path(scope: Scope) -> str:
    """The path as the app's routes see it (Starlette strips root_path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _downstream_scope(scope: Scope, principal: Principal | None) -> Scope:
    """The scope the OpenAI app sees: the caller's identity in state, the API key removed from headers."""
    scope = dict(scope)
    scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"authorization"]
    state = dict(scope.get("state") or {})
    if principal is not None:
        state[PRINCIPAL_STATE] = principal
    scope["state"] = state
    return scope


def _audit_error_event() -> bytes:
    """The end of a stream whose audit line could not be written: an OpenAI error event, then [DONE]."""
    return f"data: {AUDIT_UNAVAILABLE.body().decode()}\n\ndata: [DONE]\n\n".encode()


async def _answer(send: Send, err: ApiError) -> None:
    body = err.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in err.headers]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_MAX_ERROR_BODY = 64 * 1024


def _errors_cleaned(send: Send, request_id: str) -> Send:
    """``send`` with the app's JSON error bodies (status >= 400) rewritten by :func:`clean_error`."""
    start: Message | None = None
    parts: list[bytes] = []

    async def cleaned(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if message["status"] >= 400 and content_type.startswith(b"application/json"):
                start = message  # held until the whole body is here
                return
        elif message["type"] == "http.response.body" and start is not None:
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
            if more and sum(map(len, parts)) < _MAX_ERROR_BODY:
                return
            body, held, start = b"".join(parts), start, None
            parts.clear()
            payload = None
            if not more:
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
            if isinstance(payload, dict) and "error" in payload:  # else: not an error object, passed on unchanged
                body = json.dumps({"error": clean_error(payload["error"], held["status"], request_id)}).encode()
                headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
                held = {**held, "headers": headers + [(b"content-length", str(len(body)).encode())]}
            await send(held)
            await send({"type": "http.response.body", "body": body, "more_body": more})
            return
        await send(message)

    return cleaned


def _replace_content_length(scope: Scope, length: int) -> Scope:
    scope = dict(scope)
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    scope["headers"].append((b"content-length", str(length).encode()))
    return scope


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _headers(scope).get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body too large: {int(declared)} bytes; the limit is {limit}.", "body_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body too large; the limit is {limit} bytes.", "body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _with_request_id(send: Send, request_id: str) -> Send:
    header = (b"x-request-id", request_id.encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
            message["headers"].append(header)
        await send(message)

    return wrapped
