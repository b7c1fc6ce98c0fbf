"""Pure request checks for the OpenAI endpoints: who may call what, and is the body acceptable.

No I/O here: the gate reads the request and answers; these functions decide. Every refusal is an
:class:`~appliance.serve.errors.ApiError` with the OpenAI status and shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.config.keys import find_key
from appliance.config.secrets import ALL_MODELS, ApiKeyRecord, Role
from appliance.serve.errors import ApiError

GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role, or ``anonymous`` when auth is off."""

    name: str
    role: Role
    models: tuple[str, ...]

    def allows(self, model_id: str) -> bool:
        return self.role is Role.ADMIN or ALL_MODELS in self.models or model_id in self.models

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> Principal:
        return cls(record.name, record.role, record.models)


ANONYMOUS = Principal("anonymous", Role.ADMIN, (ALL_MODELS,))


@dataclass(frozen=True)
class GenerationFacts:
    """What the audit log and metrics need to know about a generation request."""

    model: str
    stream: bool
    wants_usage: bool
    prompt: str | None


def valid_request_id(value: str | None) -> str | None:
    """A client's ``X-Request-ID`` when it is safe to echo and log, else None (a new one is made)."""
    return value if value and _REQUEST_ID_RE.match(value) else None


def authenticate(authorization: str | None, records: tuple[ApiKeyRecord, ...], *, auth_enabled: bool) -> Principal:
    if not auth_enabled:
        return ANONYMOUS
    if not authorization:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'.", "invalid_api_key")
    record = find_key(token.strip(), records)
    if record is None:
        raise ApiError(401, "Invalid API key.", "invalid_api_key")
    return Principal.from_record(record)


def require_admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise ApiError(403, "This endpoint needs an admin key.", "admin_required")


def check_generation(
    raw: bytes, principal: Principal, caps: Mapping[str, int], *, log_prompt: bool = False
) -> tuple[bytes, GenerationFacts]:
    """Check a chat/completions body. Returns the body to forward (max_tokens capped, usage requested for
    streams so the audit log gets token counts) and the facts about it."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"Malformed JSON body: {err}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required and must be a string.", "invalid_model", "model")
    allowed = sorted(m for m in caps if principal.allows(m))
    if model not in caps:
        raise ApiError(404, f"The model {model!r} does not exist. Available models: {', '.join(allowed) or 'none'}.",
                       "model_not_found", "model")  # fmt: skip
    if not principal.allows(model):
        raise ApiError(403, f"This key may not use the model {model!r}. Allowed: {', '.join(allowed) or 'none'}.",
                       "model_not_allowed", "model")  # fmt: skip
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", "invalid_type", "stream")
    changed = _cap_tokens(body, caps[model])
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object.", "invalid_type", "stream_options")
    wants_usage = bool(options and options.get("include_usage") is True)
    if stream and not wants_usage:
        body["stream_options"] = {**(options or {}), "include_usage": True}
        changed = True
    prompt = _prompt_text(body) if log_prompt else None
    forwarded = json.dumps(body).encode() if changed else raw
    return forwarded, GenerationFacts(model=model, stream=stream, wants_usage=wants_usage, prompt=prompt)


def _cap_tokens(body: dict[str, Any], cap: int) -> bool:
    changed = False
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"'{field}' must be an integer.", "invalid_type", field)
        if value < 1:
            raise ApiError(400, f"'{field}' must be at least 1.", "invalid_value", field)
        if value > cap:
            body[field] = cap
            changed = True
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = cap
        changed = True
    return changed


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body and isinstance(body["messages"], list):
        parts = []
        for message in body["messages"]:
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, list):
                    content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
                parts.append(f"{message.get('role', '?')}: {content}")
        return "\n".join(parts)
    return str(body.get("prompt", ""))
