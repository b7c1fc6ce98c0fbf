"""``/v1/files`` and ``/v1/batches``: the OpenAI Batch API as routes of the ingress (a mixin).

Every file and batch belongs to the key that made it; another key's is answered 404 exactly like an unknown id.
A batch's lines are checked when it is created, each as the gate would check it as a live request for the key
(model known, allowed, of the endpoint's kind; parameters within bounds), plus the batch's own rules (url is
the batch's endpoint, custom_id unique, no streaming); a file with errors makes a ``failed`` batch whose
``errors`` list them, as OpenAI does. The replica's :class:`~appliance.batch.runner.BatchRunner` then sends the
lines through the gate itself (appliance.batch.caller).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from appliance.batch.caller import LIVE
from appliance.batch.lines import (
    ACTIVE,
    COMPLETION_WINDOWS,
    after_cancel,
    check_create,
    check_jsonl,
    parse_input,
    reported,
)
from appliance.batch.runner import BatchRunner, RunnerSettings, asgi_call
from appliance.batch.store import PURPOSE_BATCH, Batch, BatchStore, FileRecord
from appliance.errors import ApplianceError
from appliance.serve.checks import Principal, echo
from appliance.serve.errors import ApiError

T = TypeVar("T")
_LOGGER = logging.getLogger(__name__)

MULTIPART_OVERHEAD = 64 * 1024  # what the form's boundaries and fields may add to the file's own bytes
FILENAME_LIMIT = 255


def _principal(request: Request) -> Principal:
    from appliance.serve.gate import PRINCIPAL_STATE

    principal = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if not isinstance(principal, Principal):
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key")
    return principal


def _not_found(kind: str, value: str) -> ApiError:
    return ApiError(404, f"No such {kind}: {echo(value)}.", f"{kind}_not_found", "id")


class BatchRoutes:
    """Mixin for the ingress: its ``_config`` (IngressConfig) holds the batch options and the registry URL."""

    _config: Any
    _asgi_app: Any  # the ingress's ASGI app (the gate, then the routes), set by Ray Serve's FastAPI ingress
    _batch_store: BatchStore | None = None
    _batch_runner: BatchRunner | None = None

    # --- plumbing -----------------------------------------------------------------------------------------
    def _batches(self) -> BatchStore:
        options = self._config.batch
        if options is None or not self._config.registry_url:
            raise ApiError(503, "The Batch API is not configured (REGISTRY_URL, BATCH_DATA_DIR).", "batch_unavailable")
        if self._batch_store is None:
            self._batch_store = _store_call(lambda: BatchStore.open(self._config.registry_url, Path(options.data_dir)))
        return self._batch_store

    def start_batch_runner(self) -> None:
        """The replica's batch runner, started on its event loop (idempotent; a replica without the Batch API
        configured, or whose registry cannot be opened yet, tries again on the next call)."""
        options = self._config.batch
        if options is None or not self._config.registry_url:
            return
        if self._batch_runner is None:
            try:
                store = self._batches()
            except ApiError:
                return
            settings = RunnerSettings(concurrency=options.concurrency, idle_max_live=options.idle_max_live)
            self._batch_runner = BatchRunner(store, self._call_self, settings, live=lambda: LIVE.count)
        self._batch_runner.start()

    async def _call_self(
        self, path: str, body: bytes, request_id: str, caller: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        return await asgi_call(self._asgi_app, path, body, request_id, caller)  # the gate, then the routes

    async def _run(self, call: Callable[[], T]) -> T:
        self.start_batch_runner()
        return await asyncio.to_thread(_store_call, call)

    # --- files --------------------------------------------------------------------------------------------
    async def files_create(self, request: Request) -> JSONResponse:
        principal = _principal(request)
        store = self._batches()
        limit = self._config.batch.file_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
            raise _too_large(limit)
        form = await _read_form(request, limit + MULTIPART_OVERHEAD)
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose != PURPOSE_BATCH:
            raise ApiError(
                400,
                f"'purpose' must be 'batch' (the only purpose this API serves), not {echo(purpose)}.",
                "invalid_parameter",
                "purpose",
            )
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Expected a 'file' part: the JSONL file to upload.", "invalid_parameter", "file")
        data = await upload.read()
        if len(data) > limit:
            raise _too_large(limit)
        check_jsonl(data)
        filename = (upload.filename or "batch.jsonl").replace("/", "_").replace("\\", "_")[:FILENAME_LIMIT]
        record = await self._run(
            lambda: store.add_file(principal.name, PURPOSE_BATCH, filename, data, int(time.time()))
        )
        return JSONResponse(content=record.to_json())

    async def files_list(self, request: Request) -> dict[str, Any]:
        principal = _principal(request)
        store = self._batches()
        query = request.query_params
        limit = _limit(query.get("limit"), 10000, 10000)
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "'order' must be asc or desc.", "invalid_parameter", "order")
        records = await self._run(
            lambda: store.files(
                principal.name,
                purpose=query.get("purpose"),
                after=query.get("after"),
                limit=limit + 1,
                ascending=order == "asc",
            )
        )
        return _page([r.to_json() for r in records], limit)

    async def files_get(self, file_id: str, request: Request) -> dict[str, Any]:
        return (await self._file(file_id, request)).to_json()

    async def files_content(self, file_id: str, request: Request) -> Response:
        record = await self._file(file_id, request)
        data = await asyncio.to_thread(self._batches().content, record)
        if data is None:
            raise _not_found("file", file_id)
        return Response(content=data, media_type="application/jsonl")

    async def files_delete(self, file_id: str, request: Request) -> dict[str, Any]:
        principal = _principal(request)
        store = self._batches()

        def delete() -> bool:
            active = [
                b
                for b in _all_batches(store, principal.name)
                if b.row["input_file_id"] == file_id and b.status in ACTIVE
            ]
            if active:
                raise ApiError(
                    409,
                    f"The file is the input of the batch {active[0].id}, which has not finished: cancel it first.",
                    "file_in_use",
                )
            return store.delete_file(file_id, principal.name)

        if not await self._run(delete):
            raise _not_found("file", file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    async def _file(self, file_id: str, request: Request) -> FileRecord:
        principal = _principal(request)
        store = self._batches()
        record = await self._run(lambda: store.file(file_id, principal.name))
        if record is None:
            raise _not_found("file", file_id)
        return record

    # --- batches ------------------------------------------------------------------------------------------
    async def batches_create(self, request: Request) -> JSONResponse:
        principal = _principal(request)
        store = self._batches()
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "Expected a JSON object as the body.", "invalid_body") from None
        file_id, endpoint, window, metadata = check_create(body)
        record = await self._run(lambda: store.file(file_id, principal.name))
        if record is None:
            raise ApiError(404, f"No such file: {echo(file_id)}.", "file_not_found", "input_file_id")
        if record.purpose != PURPOSE_BATCH:
            raise ApiError(
                400,
                "The input file must have been uploaded with purpose 'batch'.",
                "invalid_parameter",
                "input_file_id",
            )
        raw = await asyncio.to_thread(store.content, record)
        if raw is None:
            raise ApiError(404, f"No such file: {echo(file_id)}.", "file_not_found", "input_file_id")
        options = self._config.batch
        lines, errors = await asyncio.to_thread(
            parse_input,
            raw,
            endpoint=endpoint,
            principal=principal,
            caps=self._config.caps,
            max_requests=options.max_requests,
            max_line_bytes=self._config.max_body_bytes,
        )
        now = int(time.time())
        batch = await self._run(
            lambda: store.create(
                principal.name,
                endpoint,
                file_id,
                window,
                metadata,
                total=len(lines) if not errors else 0,
                now=now,
                expires_at=now + COMPLETION_WINDOWS[window],
                errors=reported(errors) if errors else None,
            )
        )
        if errors:
            _LOGGER.info("batch %s: refused its input file (%d errors)", batch.id, len(errors))
        return JSONResponse(content=batch.to_json())

    async def batches_get(self, batch_id: str, request: Request) -> dict[str, Any]:
        principal = _principal(request)
        store = self._batches()
        batch = await self._run(lambda: store.batch(batch_id, principal.name))
        if batch is None:
            raise _not_found("batch", batch_id)
        return batch.to_json()

    async def batches_list(self, request: Request) -> dict[str, Any]:
        principal = _principal(request)
        store = self._batches()
        limit = _limit(request.query_params.get("limit"), 20, 100)
        after = request.query_params.get("after")
        found = await self._run(lambda: store.batches(principal.name, after=after, limit=limit + 1))
        return _page([b.to_json() for b in found], limit)

    async def batches_cancel(self, batch_id: str, request: Request) -> dict[str, Any]:
        principal = _principal(request)
        store = self._batches()

        def cancel() -> Batch:
            batch = store.batch(batch_id, principal.name)
            if batch is None:
                raise _not_found("batch", batch_id)
            target = after_cancel(batch.status)
            if target is not batch.status:
                store.move(batch_id, target, int(time.time()))
            moved = store.batch(batch_id, principal.name)
            assert moved is not None  # batches are never deleted
            return moved

        return (await self._run(cancel)).to_json()


def _all_batches(store: BatchStore, owner: str) -> list[Any]:
    found: list[Any] = []
    after = None
    while True:
        page = store.batches(owner, after=after, limit=500)
        found += page
        if len(page) < 500:
            return found
        after = page[-1].id


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    shown = items[:limit]
    return {
        "object": "list",
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(items) > limit,
    }


def _limit(value: str | None, default: int, most: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise ApiError(400, f"'limit' must be a whole number from 1 to {most}.", "invalid_parameter", "limit")
    return int(value)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"The file is larger than {limit // (1024 * 1024)} MiB (BATCH_FILE_MAX_MB).", "file_too_large", "file"
    )


async def _read_form(request: Request, cap: int) -> Any:
    """The multipart form, its bytes counted as they arrive (refused past ``cap``: never buffered whole first)."""
    received = 0
    inner = request.receive

    async def counted() -> Any:
        nonlocal received
        message = await inner()
        received += len(message.get("body", b""))
        if received > cap:
            raise _too_large(cap - MULTIPART_OVERHEAD)
        return message

    try:
        return await Request(request.scope, counted).form(max_files=1, max_fields=8)
    except ApiError:
        raise
    except Exception:
        raise ApiError(
            400, "Expected a multipart/form-data body with a 'file' part and 'purpose'.", "invalid_body"
        ) from None


def _store_call(call: Callable[[], T]) -> T:
    """A batch store call from a route: an unreachable registry or disk is 503 (no internals)."""
    try:
        return call()
    except ApiError:
        raise
    except (ApplianceError, OSError) as err:
        _LOGGER.error("batch store: %s", type(err).__name__)
        raise ApiError(
            503, "The batch store cannot be reached; retry later.", "batch_unavailable", headers=(("Retry-After", "5"),)
        ) from None
