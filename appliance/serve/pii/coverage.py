"""Which field of a chat / completions request is masked, checked, kept, dropped or refused with PII on.

The one table of the bookend's coverage (docs/guides/pii.md shows it; a unit test compares it with every field
of vLLM's ``ChatCompletionRequest`` and ``CompletionRequest``, so a field a new vLLM adds fails the test until
it is classified here, and is refused at run time meanwhile). The bookend does not know the endpoint: one table
serves both (a completions field sent to chat is handled the same way, and the engine ignores it).
"""

from __future__ import annotations

from typing import Any

from appliance.serve.errors import ApiError
from appliance.serve.pii.walker import (
    KEEP,
    Path,
    Spec,
    Walk,
    drop,
    json_text,
    keep,
    list_of,
    mask_all,
    obj,
    one_of_types,
    refused,
    schema,
    schema_or_json_text,
    text,
    texts,
    token_ids,
    trusted,
)

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MEDIA_WHY = (
    "images, audio, video, files and embeddings cannot be checked for personal data. Send text only, "
    "or use a model without PII masking."
)
MEDIA_TYPES = (
    "image_url",
    "input_image",
    "image_pil",
    "image_embeds",
    "audio_url",
    "input_audio",
    "audio_embeds",
    "video_url",
    "video_embeds",
    "prompt_embeds",
    "file",
    "input_file",
)

FUNCTION = obj({"name": KEEP, "description": text, "parameters": schema, "strict": KEEP, "defer_loading": KEEP})
TOOL = obj({"type": keep("function"), "function": FUNCTION, "defer_loading": KEEP})
CALLED = obj({"name": KEEP, "arguments": json_text})  # a tool call's / legacy function_call's function
TOOL_CALL = obj({"id": KEEP, "type": keep("function"), "function": CALLED, "index": KEEP})

_TEXT_PART = obj({"type": KEEP, "text": text, "cache_control": KEEP, "prompt_cache_breakpoint": KEEP})
CONTENT_PART = one_of_types(
    {
        "text": _TEXT_PART,
        "input_text": _TEXT_PART,
        "output_text": _TEXT_PART,
        "refusal": obj({"type": KEEP, "refusal": text}),
        "thinking": obj({"type": KEEP, "thinking": text, "closed": KEEP}),
        "tool_reference": obj({"type": KEEP, "name": KEEP}),
    },
    default="text",
    media=MEDIA_TYPES,
    why=MEDIA_WHY,
)


def content(walk: Walk, value: Any, at: Path, param: str) -> None:
    """A message's content: a string, or a list of parts (text parts masked, media refused)."""
    if isinstance(value, list):
        list_of(CONTENT_PART)(walk, value, at, param)
    else:
        text(walk, value, at, param)


MESSAGE = obj(
    {
        "role": keep(*ROLES),
        "content": content,
        "name": text,
        "tool_calls": list_of(TOOL_CALL),
        "function_call": CALLED,
        "tool_call_id": KEEP,
        "reasoning": text,
        "reasoning_content": text,
        "refusal": text,
        "tools": list_of(TOOL),  # a developer message's tools
        "task": KEEP,
    },
    what="message object",
)

NAMED_TOOL = obj({"type": keep("function"), "function": obj({"name": KEEP})})


def tool_choice(walk: Walk, value: Any, at: Path, param: str) -> None:
    if isinstance(value, dict):
        NAMED_TOOL(walk, value, at, param)
    else:
        keep("none", "auto", "required")(walk, value, at, param)


def prompt(walk: Walk, value: Any, at: Path, param: str) -> None:
    """Completions' prompt: a string or a list of strings. Token ids cannot be checked: refused."""
    if isinstance(value, str):
        walk.mask(at, value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                walk.mask((*at, index), item)
            elif item is not None:
                raise ApiError(
                    400,
                    "With PII masking on, 'prompt' must be text: token-id prompts cannot be checked for personal data.",
                    "pii_unmaskable_prompt",
                    "prompt",
                )
    elif value is not None:
        raise ApiError(400, "'prompt' must be a string or a list of strings.", "invalid_type", "prompt")


RESPONSE_FORMAT = obj(
    {
        "type": keep("text", "json_object", "json_schema", "structural_tag"),
        "json_schema": obj({"name": KEEP, "description": text, "schema": schema, "strict": KEEP}),
        "structures": refused("structural tags cannot be masked safely."),
        "triggers": refused("structural tags cannot be masked safely."),
        "format": refused("structural tags cannot be masked safely."),
    }
)

STRUCTURED_OUTPUTS = obj(
    {
        "json": schema_or_json_text,
        "regex": text,
        "choice": texts,
        "grammar": text,
        "json_object": KEEP,
        "disable_any_whitespace": KEEP,
        "disable_additional_properties": KEEP,
        "whitespace_pattern": text,
        "structural_tag": refused("structural tags cannot be masked safely."),
    }
)

# Every field of vLLM 0.32's ChatCompletionRequest and CompletionRequest, and the OpenAI fields vLLM ignores.
# Order matters only for placeholder numbers: the conversation first.
FIELDS: dict[str, Spec] = {
    # masked: free text the model reads
    "messages": list_of(MESSAGE),
    "prompt": prompt,
    "suffix": text,
    "tools": list_of(TOOL),
    "documents": list_of(mask_all),
    "chat_template_kwargs": mask_all,
    "response_format": RESPONSE_FORMAT,
    "structured_outputs": STRUCTURED_OUTPUTS,
    "stop": texts,
    "bad_words": texts,
    # structural: numbers, booleans, enum words, ids; a string that is not an expected word is checked
    "model": trusted,  # a configured model id: the gate has checked it
    "tool_choice": tool_choice,
    "reasoning_effort": keep("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "truncation_side": keep("left", "right"),
    "mm_payload": keep("tensors", "none"),
    "logit_bias": token_ids,
    "stream_options": obj({"include_usage": KEEP, "continuous_usage_stats": KEEP}),
    **{
        name: KEEP
        for name in (
            "frequency_penalty",
            "presence_penalty",
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "repetition_penalty",
            "length_penalty",
            "logprobs",
            "top_logprobs",
            "max_tokens",
            "max_completion_tokens",
            "n",
            "seed",
            "stream",
            "thinking_token_budget",
            "include_reasoning",
            "parallel_tool_calls",
            "use_beam_search",
            "watermarking",
            "stop_token_ids",
            "include_stop_str_in_output",
            "ignore_eos",
            "min_tokens",
            "skip_special_tokens",
            "spaces_between_special_tokens",
            "truncate_prompt_tokens",
            "prompt_logprobs",
            "logprob_token_ids",
            "allowed_token_ids",
            "echo",
            "add_generation_prompt",
            "continue_final_message",
            "add_special_tokens",
            "priority",
            "request_id",
            "session_id",
            "cache_salt",
            "return_tokens_as_token_ids",
            "return_token_ids",
            "routed_experts_prompt_start",
            "return_token_offsets",
            "return_prompt_text",
            "return_mm_kwargs",
            "repetition_detection",
            "stream_interval",
            "vllm_xargs",
            "kv_transfer_params",
            "ec_transfer_params",
            "media_io_kwargs",
            "mm_processor_kwargs",
        )
    },
    # dropped: the engine ignores them, so they are not forwarded at all
    **{name: drop for name in ("user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key")},
    # refused: free text the model would see that cannot be masked safely
    "chat_template": refused("a request's own chat template is text the model sees that cannot be masked."),
    "prompt_embeds": refused("embeddings cannot be checked for personal data."),
}

MASKED = (
    "messages",
    "prompt",
    "suffix",
    "tools",
    "documents",
    "chat_template_kwargs",
    "response_format",
    "structured_outputs",
    "stop",
    "bad_words",
)
DROPPED = tuple(name for name, spec in FIELDS.items() if spec is drop)
