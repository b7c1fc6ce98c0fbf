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
from appliance.config.secrets import ALL_MODELS, ApiKeyRecord, KeyLimits, Role
from appliance.serve.budget import estimate_prompt_tokens, reservation_tokens
from appliance.serve.errors import ApiError

GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
POOLING_PATHS = frozenset({"/v1/embeddings", "/v1/score", "/v1/rerank"})
# The model tasks (models.yaml ``task``) each route serves: vLLM scores with an embedding model too (cosine).
PATH_TASKS = {
    "/v1/chat/completions": ("generate",),
    "/v1/completions": ("generate",),
    "/v1/embeddings": ("embed",),
    "/v1/score": ("embed", "score"),
    "/v1/rerank": ("embed", "score"),
    "/v1/responses": ("generate",),
    "/tokenize": ("generate", "embed", "score"),
    "/detokenize": ("generate", "embed", "score"),
}
EMBEDDING_ENCODINGS = ("float", "base64")  # vLLM's binary "bytes" answers are not JSON: not offered
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_BEARER_RE = re.compile(r"Bearer ([\x21-\x7e]{1,512})\Z")  # printable ASCII, no spaces
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
ECHO_LIMIT = 64  # characters of client input an error message may repeat


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role, or ``anonymous`` when auth is off."""

    name: str
    role: Role
    models: tuple[str, ...]
    limits: KeyLimits = KeyLimits()  # per-key budgets (none: unlimited)

    def allows(self, model_id: str) -> bool:
        return self.role is Role.ADMIN or ALL_MODELS in self.models or model_id in self.models

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> Principal:
        return cls(record.name, record.role, record.models, record.limits)


ANONYMOUS = Principal("anonymous", Role.ADMIN, (ALL_MODELS,))


@dataclass(frozen=True)
class GenerationFacts:
    """What the audit log and metrics need to know about a generation request."""

    model: str
    stream: bool
    wants_usage: bool
    prompt: str | None
    reserve_tokens: int = 1  # what a budget reserves before forwarding: the prompt's estimate + the most generated


def valid_request_id(value: str | None) -> str | None:
    """A client's ``X-Request-ID`` when it is safe to echo and log, else None (a new one is made)."""
    return value if value and _REQUEST_ID_RE.match(value) else None


def authenticate(authorization: str | None, records: tuple[ApiKeyRecord, ...], *, auth_enabled: bool) -> Principal:
    """The caller of a request. Only the canonical ``Bearer <key>`` (one space, nothing around it) is accepted:
    nginx rate-limits per key on the normalised token, and any other spelling must not be a second bucket."""
    if not auth_enabled:
        return ANONYMOUS
    if not authorization:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key")
    match = _BEARER_RE.match(authorization)
    if match is None:
        raise ApiError(
            401,
            "Malformed Authorization header: expected exactly 'Bearer <key>' (one space, no other whitespace).",
            "invalid_api_key",
        )
    record = find_key(match.group(1), records)
    if record is None:
        raise ApiError(401, "Invalid API key.", "invalid_api_key")
    return Principal.from_record(record)


def require_admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise ApiError(403, "This endpoint needs an admin key.", "admin_required")


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on one model's request parameters (``MODEL_MAX_TOKENS_CAP``, ``REQUEST_MAX_*``, models.yaml)."""

    max_tokens: int
    max_n: int = 4
    max_logprobs: int = 20
    max_messages: int = 512
    max_prompts: int = 32
    max_tools: int = 128
    max_stop: int = 8
    allow_chat_template: bool = False
    task: str = "generate"  # models.yaml ``task``: which routes take the model (PATH_TASKS)
    max_inputs: int = 256  # embeddings inputs / score and rerank documents per request


def echo(value: object) -> str:
    """Client input as an error message may repeat it: repr'd and cut to ``ECHO_LIMIT`` characters."""
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else text[: ECHO_LIMIT - 1] + "…"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; NaN and Infinity (which Python's json accepts) are refused."""
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        message = str(err) if "JSON allows" in str(err) else f"{type(err).__name__}: {err}"[:200]
        raise ApiError(400, f"Malformed JSON body: {message}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_body")
    return body


def check_generation(
    raw: bytes,
    principal: Principal,
    caps: Mapping[str, RequestLimits | int],
    *,
    log_prompt: bool = False,
    chat: bool | None = None,
) -> tuple[bytes, GenerationFacts]:
    """Check a chat/completions body. Returns the body to forward (max_tokens capped, usage requested for
    streams so the audit log gets token counts) and the facts about it. ``chat`` says which endpoint (None:
    told by the body: ``messages`` means chat)."""
    body = parse_body(raw)
    chat = "messages" in body if chat is None else chat
    model, limits = resolve_model(body, principal, caps, "/v1/chat/completions" if chat else "/v1/completions")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", "invalid_type", "stream")
    changed = _cap_tokens(body, limits.max_tokens)
    check_parameters(body, limits, chat=chat)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object.", "invalid_type", "stream_options")
    wants_usage = bool(options and options.get("include_usage") is True)
    if stream and not wants_usage:
        body["stream_options"] = {**(options or {}), "include_usage": True}
        changed = True
    prompt = prompt_text(body) if log_prompt else None
    forwarded = json.dumps(body).encode() if changed else raw
    reserve = reservation_tokens(body, default_max_tokens=limits.max_tokens)
    return forwarded, GenerationFacts(
        model=model, stream=stream, wants_usage=wants_usage, prompt=prompt, reserve_tokens=reserve
    )


def resolve_model(
    body: dict[str, Any], principal: Principal, caps: Mapping[str, RequestLimits | int], path: str
) -> tuple[str, RequestLimits]:
    """The configured model a body names, if this key may use it on this route: 404 unknown, 403 not allowed,
    400 a model of another kind (an embedding model asked for chat, a generating model for embeddings)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required and must be a string.", "invalid_model", "model")
    allowed = sorted(m for m in caps if principal.allows(m))
    if model not in caps:
        raise ApiError(
            404,
            f"The model {echo(model)} does not exist. Available models: {', '.join(allowed) or 'none'}.",
            "model_not_found",
            "model",
        )
    if not principal.allows(model):
        raise ApiError(
            403,
            f"This key may not use the model {echo(model)}. Allowed: {', '.join(allowed) or 'none'}.",
            "model_not_allowed",
            "model",
        )
    limits = _limits(caps[model])
    tasks = PATH_TASKS[path]
    if limits.task not in tasks:
        fitting = [m for m in allowed if _limits(caps[m]).task in tasks]
        raise ApiError(
            400,
            f"The model {echo(model)} is a {limits.task} model; {path} takes {' or '.join(tasks)} "
            f"models (for this key: {', '.join(fitting) or 'none'}). GET /v1/models lists each model's "
            "task.",
            "wrong_model_type",
            "model",
        )
    return model, limits


def check_pooling(
    raw: bytes, principal: Principal, caps: Mapping[str, RequestLimits | int], path: str, *, log_prompt: bool = False
) -> tuple[bytes, GenerationFacts]:
    """Check an embeddings / score / rerank body: the model's kind, the number of inputs, the encoding. Returns
    the body unchanged and the facts (no stream; the budget reserves the inputs' estimate)."""
    body = parse_body(raw)
    model, limits = resolve_model(body, principal, caps, path)
    if path == "/v1/embeddings":
        _check_inputs(body, "input", limits, required=False)  # or 'messages' (vLLM's chat-style embeddings)
        if "messages" in body:
            _check_messages(body["messages"], limits)
        encoding = body.get("encoding_format", "float")
        if encoding not in EMBEDDING_ENCODINGS:
            raise ApiError(
                400,
                f"'encoding_format' is {echo(encoding)}; expected one of {', '.join(EMBEDDING_ENCODINGS)}.",
                "invalid_value",
                "encoding_format",
            )
        dimensions = _count(body, "dimensions")
        if dimensions == 0:
            raise ApiError(400, "'dimensions' must be at least 1.", "invalid_value", "dimensions")
    elif path == "/v1/score":
        for param in ("text_1", "text_2"):
            _check_inputs(body, param, limits, required=True)
    else:
        _check_inputs(body, "query", limits, required=True)
        _check_inputs(body, "documents", limits, required=True)
        _count(body, "top_n")
    prompt = pooling_text(body) if log_prompt else None
    reserve = estimate_prompt_tokens(body)
    return raw, GenerationFacts(model=model, stream=False, wants_usage=True, prompt=prompt, reserve_tokens=reserve)


def _check_inputs(body: dict[str, Any], param: str, limits: RequestLimits, *, required: bool) -> None:
    """A text input: a string, or a list of strings (or token ids) within ``max_inputs``."""
    value = body.get(param)
    if value is None:
        if required:
            raise ApiError(400, f"'{param}' is required.", "missing_parameter", param)
        return
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise ApiError(400, f"'{param}' must be a string or a list of strings.", "invalid_type", param)
    if value and all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return  # one input as token ids
    if len(value) > limits.max_inputs:
        raise _too_many(param, len(value), limits.max_inputs, "inputs per request")


def pooling_text(body: dict[str, Any]) -> str:
    """The texts of an embeddings / score / rerank body, for the audit log's prompt."""
    parts: list[str] = []
    for param in ("input", "text_1", "text_2", "query", "documents"):
        value = body.get(param)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
    if isinstance(body.get("messages"), list):
        parts.append(prompt_text(body))
    return "\n".join(parts)


def _limits(value: RequestLimits | int) -> RequestLimits:
    return value if isinstance(value, RequestLimits) else RequestLimits(max_tokens=value)


def _too_many(param: str, found: int, cap: int, what: str) -> ApiError:
    return ApiError(
        400, f"'{param}' is {found}; this model allows at most {cap} {what}.", "parameter_above_limit", param
    )


def _count(body: dict[str, Any], param: str) -> int | None:
    """An integer parameter's value (None when absent); a wrong type is a 400 naming it."""
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{param}' must be an integer, found {echo(value)}.", "invalid_type", param)
    if value < 0:
        raise ApiError(400, f"'{param}' must not be negative, found {value}.", "invalid_value", param)
    return value


def check_parameters(body: dict[str, Any], limits: RequestLimits, *, chat: bool) -> None:
    """Bounds on what one request may ask of the engine, and the message structure OpenAI requires."""
    for param in ("n", "best_of"):
        found = _count(body, param)
        if found is not None and found > limits.max_n:
            raise _too_many(param, found, limits.max_n, "choices per request")
    for param in ("top_logprobs", "prompt_logprobs") + (() if chat else ("logprobs",)):
        found = _count(body, param)
        if found is not None and found > limits.max_logprobs:
            raise _too_many(param, found, limits.max_logprobs, "log-probabilities per token")
    min_tokens = _count(body, "min_tokens")
    most = body.get("max_tokens") or body.get("max_completion_tokens") or limits.max_tokens
    if min_tokens is not None and min_tokens > most:
        raise ApiError(
            400,
            f"'min_tokens' is {min_tokens}, above the request's max_tokens {most}.",
            "parameter_above_limit",
            "min_tokens",
        )
    for param in ("stop", "stop_token_ids"):
        value = body.get(param)
        if isinstance(value, list) and len(value) > limits.max_stop:
            raise _too_many(param, len(value), limits.max_stop, "stop sequences")
    for param in ("tools", "functions"):
        value = body.get(param)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ApiError(400, f"'{param}' must be a list.", "invalid_type", param)
        if len(value) > limits.max_tools:
            raise _too_many(param, len(value), limits.max_tools, "tools")
    if not limits.allow_chat_template:
        for param in ("chat_template", "chat_template_kwargs"):
            if body.get(param) is not None:
                raise ApiError(
                    400,
                    f"'{param}' may not be set by clients for this model (the operator can allow it "
                    "with allow_client_chat_template in models.yaml).",
                    "parameter_not_allowed",
                    param,
                )
    if chat:
        _check_messages(body.get("messages"), limits)
    else:
        _check_prompt(body.get("prompt"), limits)


def _check_prompt(prompt: Any, limits: RequestLimits) -> None:
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) and len(prompt) > limits.max_prompts:
        raise _too_many("prompt", len(prompt), limits.max_prompts, "prompts per request")


def _check_messages(messages: Any, limits: RequestLimits) -> None:
    if messages is None:
        return  # the engine's own validation says it is required
    if not isinstance(messages, list):
        raise ApiError(400, "'messages' must be a list.", "invalid_type", "messages")
    if len(messages) > limits.max_messages:
        raise _too_many("messages", len(messages), limits.max_messages, "messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"'{where}' must be an object.", "invalid_type", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in MESSAGE_ROLES:  # a list or object is not hashable: no TypeError
            raise ApiError(
                400,
                f"'{where}.role' is {echo(role)}; expected one of {', '.join(sorted(MESSAGE_ROLES))}.",
                "invalid_value",
                f"{where}.role",
            )
        if role == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
            raise ApiError(
                400,
                f"'{where}.tool_call_id' is required for a message with role 'tool'.",
                "missing_parameter",
                f"{where}.tool_call_id",
            )
        calls = message.get("tool_calls")
        if calls is not None:
            if role != "assistant" or not isinstance(calls, list):
                raise ApiError(
                    400,
                    f"'{where}.tool_calls' must be a list on an assistant message.",
                    "invalid_type",
                    f"{where}.tool_calls",
                )
            for number, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise ApiError(
                        400,
                        f"'{where}.tool_calls[{number}].function.name' is required.",
                        "missing_parameter",
                        f"{where}.tool_calls[{number}].function.name",
                    )


def _cap_tokens(body: dict[str, Any], cap: int) -> bool:
    changed = False
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"'{field}' must be an integer, found {echo(value)}.", "invalid_type", field)
        if value < 1:
            raise ApiError(400, f"'{field}' must be at least 1.", "invalid_value", field)
        if value > cap:
            body[field] = cap
            changed = True
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = cap
        changed = True
    return changed


def prompt_text(body: dict[str, Any]) -> str:
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
