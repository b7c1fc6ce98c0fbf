"""``POST /tokenize`` and ``POST /detokenize`` at the gate (vLLM's own endpoints, which Ray Serve LLM's ingress
routes): what a body may ask, and the PII coverage of each.

Both are authenticated, checked against the key's model allowlist, audited and rate limited like any route;
neither generates, so neither reserves tokens of a budget. ``/tokenize`` takes a completion-style ``prompt``
(a string, at most ``max_prompts`` strings); chat-style ``messages`` are not offered (Ray Serve LLM's ingress
types the body as a completion request). ``/detokenize`` takes ``tokens``, a list of token ids.

With PII masking on, ``/tokenize``'s prompt is masked like a completion's (the ids are then those of the masked
text: counts differ from the original's by the placeholders' length), and ``/detokenize`` is refused: token ids
cannot be checked for personal data before they reach the engine.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.serve.checks import GenerationFacts, Principal, RequestLimits, echo, parse_body, resolve_model
from appliance.serve.errors import ApiError
from appliance.serve.pii.coverage import prompt
from appliance.serve.pii.walker import KEEP, Spec, refused, trusted

TOKENIZE_PATH = "/tokenize"
DETOKENIZE_PATH = "/detokenize"
TOKENIZE_PATHS = frozenset({TOKENIZE_PATH, DETOKENIZE_PATH})
# What vLLM's TokenizeCompletionRequest and DetokenizeRequest hold (a unit test compares them).
TOKENIZE_FIELDS: dict[str, Spec] = {
    "model": trusted,
    "prompt": prompt,
    "add_special_tokens": KEEP,
    "return_token_strs": KEEP,
}
DETOKENIZE_FIELDS: dict[str, Spec] = {
    "model": trusted,
    "tokens": refused(
        "token ids cannot be checked for personal data before they reach the engine; "
        "detokenize is not available while PII masking is on."
    ),
}


def check_tokenize(
    raw: bytes, principal: Principal, caps: Mapping[str, RequestLimits | int], path: str, *, log_prompt: bool = False
) -> tuple[bytes, GenerationFacts]:
    """Check a tokenize / detokenize body; returns it unchanged with its facts (no stream, nothing reserved)."""
    body = parse_body(raw)
    model, limits = resolve_model(body, principal, caps, path)
    text: str | None = None
    if path == TOKENIZE_PATH:
        value = body.get("prompt")
        if isinstance(value, str):
            text = value
        elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            if len(value) > limits.max_prompts:
                raise ApiError(
                    400,
                    f"'prompt' holds {len(value)} prompts; at most {limits.max_prompts} per request.",
                    "too_many_items",
                    "prompt",
                )
            text = "\n".join(value)
        else:
            raise ApiError(400, "'prompt' is required: a string or a list of strings.", "invalid_type", "prompt")
        for flag in ("add_special_tokens", "return_token_strs"):
            if body.get(flag) is not None and not isinstance(body[flag], bool):
                raise ApiError(400, f"'{flag}' must be true or false.", "invalid_type", flag)
    else:
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(_token_id(item) for item in tokens):
            raise ApiError(
                400,
                f"'tokens' must be a list of token ids (integers ≥ 0); found {echo(tokens)}.",
                "invalid_type",
                "tokens",
            )
    return raw, GenerationFacts(
        model=model, stream=False, wants_usage=False, prompt=text if log_prompt else None, reserve_tokens=0
    )


def _token_id(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool) and item >= 0


def tokenize_fields(path: str) -> dict[str, Spec]:
    """The PII coverage table of ``path``."""
    return TOKENIZE_FIELDS if path == TOKENIZE_PATH else DETOKENIZE_FIELDS
