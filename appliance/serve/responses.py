"""The Responses API at the gate (``POST /v1/responses``): what a body may ask, and what it costs.

vLLM answers it (``OpenAIServingResponses`` in the engine's deployment: :mod:`appliance.serve.engine`); the
appliance serves it **stateless**: nothing is stored, ``store`` is answered ``false``, and what needs a stored
response (``previous_response_id``, ``conversation``, ``background``) is refused with a 400 that says so, rather
than a 404 about a response id nobody could ever have had. Everything else is the same as for chat: the key's
model allowlist, the model's kind, ``max_output_tokens`` capped at the model's cap (set to it when absent), at
most ``max_tools`` tools and ``max_messages`` input items, a budget reservation, the audit prompt.

Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from appliance.serve.budget import estimate_prompt_tokens
from appliance.serve.checks import (
    GenerationFacts,
    Principal,
    RequestLimits,
    _count,
    _too_many,
    echo,
    parse_body,
    resolve_model,
)
from appliance.serve.errors import ApiError

RESPONSES_PATH = "/v1/responses"
STATELESS_CODE = "responses_not_stored"
# Fields that only make sense with stored responses (OpenAI's server keeps them; this appliance does not).
_STORED_ONLY = {
    "previous_response_id": "continue a stored response",
    "conversation": "continue a stored conversation",
    "background": "run a response in the background (it is fetched later from the store)",
}


def check_responses(
    raw: bytes, principal: Principal, caps: Mapping[str, RequestLimits | int], *, log_prompt: bool = False
) -> tuple[bytes, GenerationFacts]:
    """Check a Responses body; returns the body to forward (output capped, ``store`` false) and its facts."""
    body = parse_body(raw)
    model, limits = resolve_model(body, principal, caps, RESPONSES_PATH)
    for param, what in _STORED_ONLY.items():
        if body.get(param) not in (None, False):
            raise ApiError(
                400,
                f"'{param}' is not available: this appliance serves the Responses API stateless "
                f"(nothing is stored), so it cannot {what}. Send the whole conversation in 'input' "
                "instead.",
                STATELESS_CODE,
                param,
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", "invalid_type", "stream")
    most = _count(body, "max_output_tokens")
    if most == 0:
        raise ApiError(400, "'max_output_tokens' must be at least 1.", "invalid_value", "max_output_tokens")
    if most is None or most > limits.max_tokens:
        body["max_output_tokens"] = limits.max_tokens
    body["store"] = False  # answered as it is: not stored
    found = _count(body, "top_logprobs")
    if found is not None and found > limits.max_logprobs:
        raise _too_many("top_logprobs", found, limits.max_logprobs, "log-probabilities per token")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise ApiError(400, "'tools' must be a list.", "invalid_type", "tools")
        if len(tools) > limits.max_tools:
            raise _too_many("tools", len(tools), limits.max_tools, "tools")
    items = body.get("input")
    if isinstance(items, list) and len(items) > limits.max_messages:
        raise _too_many("input", len(items), limits.max_messages, "input items")
    if items is None:
        raise ApiError(400, "'input' is required.", "missing_parameter", "input")
    if not isinstance(items, str | list | None):
        raise ApiError(
            400, f"'input' must be a string or a list of input items, found {echo(items)}.", "invalid_type", "input"
        )
    prompt = responses_text(body) if log_prompt else None
    reserve = estimate_prompt_tokens(body) + body["max_output_tokens"]
    return json.dumps(body).encode(), GenerationFacts(
        model=model, stream=stream, wants_usage=True, prompt=prompt, reserve_tokens=reserve
    )


def responses_text(body: Mapping[str, Any]) -> str:
    """A Responses body's instructions and input as one text, for the audit log's prompt."""
    parts: list[str] = []
    if isinstance(body.get("instructions"), str):
        parts.append(f"instructions: {body['instructions']}")
    items = body.get("input")
    if isinstance(items, str):
        parts.append(f"user: {items}")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        content = item.get("content", item.get("output", item.get("arguments")))
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(f"{item.get('role', item.get('type', '?'))}: {content}")
    return "\n".join(parts)
