"""The pure parts of the Batch API: an input file's lines checked as the gate would check each request, the
batch states and the moves between them, and the output and error lines in OpenAI's format.

Nothing here reads a clock, a disk or a database: callers pass ``now`` and bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from appliance.serve.checks import POOLING_PATHS, Principal, RequestLimits, check_generation, check_pooling, echo
from appliance.serve.errors import ApiError, error_type

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
COMPLETION_WINDOWS = {"24h": 24 * 3600}
MAX_REPORTED_ERRORS = 100  # a file with more bad lines reports the first ones and how many there were
CUSTOM_ID_LIMIT = 512


class BatchStatus(StrEnum):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# OpenAI's moves: validating → in_progress → finalizing → completed; validating → failed (the file was refused);
# validating / in_progress → cancelling → cancelled; a batch not done within its window → expired.
_MOVES: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.VALIDATING: frozenset(
        {BatchStatus.IN_PROGRESS, BatchStatus.FAILED, BatchStatus.CANCELLING, BatchStatus.EXPIRED}
    ),
    BatchStatus.IN_PROGRESS: frozenset({BatchStatus.FINALIZING, BatchStatus.CANCELLING, BatchStatus.EXPIRED}),
    BatchStatus.FINALIZING: frozenset({BatchStatus.COMPLETED, BatchStatus.EXPIRED}),
    BatchStatus.CANCELLING: frozenset({BatchStatus.CANCELLED}),
}
TERMINAL = frozenset({BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED})
ACTIVE = frozenset(set(BatchStatus) - TERMINAL)  # a runner has work to do (or to finish) on these


def may_move(current: BatchStatus, target: BatchStatus) -> bool:
    return target in _MOVES.get(current, frozenset())


def after_cancel(current: BatchStatus) -> BatchStatus:
    """What ``POST /v1/batches/{id}/cancel`` makes of a batch: cancelling while it is not finished (the runner
    stops it and writes what was answered), the same status when it already is cancelling or cancelled; a batch
    that is finished otherwise is refused (409, as OpenAI answers)."""
    if current in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        return current
    if may_move(current, BatchStatus.CANCELLING):
        return BatchStatus.CANCELLING
    raise ApiError(
        409,
        f"The batch is {current.value}: only a validating or in-progress batch can be cancelled.",
        "batch_not_cancellable",
    )


def expired(created_at: int, window: str, now: float) -> bool:
    return now >= created_at + COMPLETION_WINDOWS[window]


@dataclass(frozen=True)
class BatchLine:
    """One request of an input file: its 1-based line number, the client's custom_id and the JSON body."""

    line: int
    custom_id: str
    body: bytes


@dataclass(frozen=True)
class LineError:
    """A reason the input file was refused, as OpenAI's batch ``errors.data`` items say it."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def check_create(body: Any, endpoints: tuple[str, ...] = ENDPOINTS) -> tuple[str, str, str, dict[str, str]]:
    """The body of ``POST /v1/batches``: (input_file_id, endpoint, completion_window, metadata) or a 400."""
    if not isinstance(body, dict):
        raise ApiError(400, "Expected a JSON object.", "invalid_body")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise ApiError(
            400,
            "'input_file_id' is required: the id of a file uploaded with purpose 'batch'.",
            "invalid_parameter",
            "input_file_id",
        )
    endpoint = body.get("endpoint")
    if endpoint not in endpoints:
        raise ApiError(
            400,
            f"'endpoint' must be one of {', '.join(endpoints)}, not {echo(endpoint)}.",
            "invalid_parameter",
            "endpoint",
        )
    window = body.get("completion_window", "24h")
    if window not in COMPLETION_WINDOWS:
        raise ApiError(
            400,
            f"'completion_window' must be one of {', '.join(COMPLETION_WINDOWS)}, not {echo(window)}.",
            "invalid_parameter",
            "completion_window",
        )
    metadata = body.get("metadata") or {}
    if (
        not isinstance(metadata, dict)
        or len(metadata) > 16
        or any(
            not isinstance(k, str) or len(k) > 64 or not isinstance(v, str) or len(v) > 512 for k, v in metadata.items()
        )
    ):
        raise ApiError(
            400,
            "'metadata' must be an object of at most 16 string keys (64 characters) and string "
            "values (512 characters).",
            "invalid_parameter",
            "metadata",
        )
    return file_id, str(endpoint), str(window), metadata


def check_jsonl(raw: bytes) -> int:
    """An uploaded batch file's shape: UTF-8, one JSON object per non-blank line. The number of lines, or a 400
    naming the first bad line (what each line asks for is checked when a batch is created from it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            400, "The file is not UTF-8 text: a batch file is JSONL, one JSON object per line.", "invalid_file"
        ) from None
    count = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ApiError(
                400,
                f"Line {number} of the file is not a JSON object: a batch file is JSONL, one request object per line.",
                "invalid_file",
                "file",
            )
        count += 1
    if count == 0:
        raise ApiError(
            400, "The file has no lines: a batch file is JSONL, one request object per line.", "invalid_file", "file"
        )
    return count


def parse_input(
    raw: bytes,
    *,
    endpoint: str,
    principal: Principal,
    caps: Mapping[str, RequestLimits | int],
    max_requests: int,
    max_line_bytes: int,
) -> tuple[list[BatchLine], list[LineError]]:
    """Every line of an input file checked as the gate checks a live request to ``endpoint`` for this key
    (model known, allowed and of the right kind, parameters within the model's bounds), plus the batch's own
    rules: custom_id unique, method POST, url the batch's endpoint, no streaming. Returns the lines and every
    error found (the batch runs only when there is none)."""
    lines: list[BatchLine] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [], [LineError("invalid_file", "The file is not UTF-8 text.")]
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        error = _check_line(line, number, endpoint, principal, caps, seen, max_line_bytes)
        if isinstance(error, LineError):
            errors.append(error)
        else:
            lines.append(error)
    if not lines and not errors:
        errors.append(LineError("empty_file", "The file has no requests."))
    if len(lines) + len(errors) > max_requests:
        errors.insert(
            0,
            LineError(
                "too_many_requests",
                f"The file has {len(lines) + len(errors)} requests; a batch "
                f"takes at most {max_requests} (BATCH_MAX_REQUESTS).",
            ),
        )
    return lines, errors


def reported(errors: list[LineError]) -> dict[str, Any]:
    """A refused file's errors as the batch object carries them (the first MAX_REPORTED_ERRORS)."""
    data = [e.to_json() for e in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        data.append(
            LineError("too_many_errors", f"{len(errors) - MAX_REPORTED_ERRORS} more errors are not shown.").to_json()
        )
    return {"object": "list", "data": data}


def _check_line(
    line: str,
    number: int,
    endpoint: str,
    principal: Principal,
    caps: Mapping[str, RequestLimits | int],
    seen: set[str],
    max_line_bytes: int,
) -> BatchLine | LineError:
    if len(line.encode("utf-8")) > max_line_bytes:
        return LineError(
            "line_too_large", f"The request is larger than {max_line_bytes} bytes (MAX_REQUEST_BODY_MB).", number
        )
    try:
        item = json.loads(line)
    except ValueError:
        return LineError("invalid_json_line", "The line is not valid JSON.", number)
    if not isinstance(item, dict):
        return LineError("invalid_json_line", "The line is not a JSON object.", number)
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > CUSTOM_ID_LIMIT:
        return LineError(
            "invalid_custom_id",
            f"'custom_id' must be a non-empty string of at most {CUSTOM_ID_LIMIT} characters.",
            number,
            "custom_id",
        )
    if custom_id in seen:
        return LineError(
            "duplicate_custom_id", f"The custom_id {echo(custom_id)} is used by an earlier line.", number, "custom_id"
        )
    seen.add(custom_id)
    if item.get("method", "POST") != "POST":
        return LineError("invalid_method", "'method' must be POST.", number, "method")
    if item.get("url") != endpoint:
        return LineError(
            "mismatched_url",
            f"The line's url {echo(item.get('url'))} is not the batch's endpoint {endpoint}.",
            number,
            "url",
        )
    body = item.get("body")
    if not isinstance(body, dict):
        return LineError("invalid_body", "'body' must be the request object.", number, "body")
    if body.get("stream"):
        return LineError(
            "invalid_body", "A batch request cannot stream ('stream' must be false).", number, "body.stream"
        )
    encoded = json.dumps(body).encode()
    try:
        if endpoint in POOLING_PATHS:
            check_pooling(encoded, principal, caps, endpoint, log_prompt=False)
        else:
            check_generation(encoded, principal, caps, log_prompt=False, chat=endpoint == "/v1/chat/completions")
    except ApiError as err:
        return LineError(err.code, err.message, number, f"body.{err.param}" if err.param else "body")
    except (TypeError, ValueError, AttributeError):  # a shape the gate's checks do not expect: still the line's fault
        return LineError("invalid_body", "The request body is not a valid request for the endpoint.", number, "body")
    return BatchLine(number, custom_id, encoded)


def output_line(request_id: str, custom_id: str, status_code: int, body: Any) -> dict[str, Any]:
    """One answered request, as OpenAI's output (2xx) and error (other statuses) files carry it."""
    return {
        "id": f"batch_req_{request_id}",
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": body},
        "error": None,
    }


def unanswered_line(line: int, batch_id: str, custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A request the batch never ran (cancelled, expired, its input gone): in the error file, without a response."""
    return {
        "id": f"batch_req_{batch_id}-{line}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def error_body(status: int, message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": None, "code": code}}


def counts(total: int, statuses: Mapping[int, int]) -> dict[str, int]:
    """``request_counts`` from how many answered lines had each status: completed are 2xx, failed the rest."""
    completed = sum(n for status, n in statuses.items() if 200 <= status < 300)
    failed = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return {"total": total, "completed": completed, "failed": failed}
