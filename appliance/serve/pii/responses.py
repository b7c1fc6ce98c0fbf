"""Which field of a Responses API request (``POST /v1/responses``) is masked, checked, kept, dropped or refused
with PII on: the Responses counterpart of :mod:`appliance.serve.pii.coverage`, walked the same way.

Masked: ``instructions``, ``input`` (a string, or input items: messages with text or text parts, function calls'
arguments, function call outputs, reasoning summaries), function tools' descriptions and parameter schemas,
``text.format`` schemas, ``stop``. Checked (refused if they hold personal data): tool names, call ids. Dropped:
``user``, ``metadata``, ``store`` and the other fields vLLM ignores. Refused: media, hosted tools (web search, file
search, MCP: they would send text elsewhere), prompt templates and anything not listed. A unit test compares the
table with every field of vLLM's ``ResponsesRequest``.
"""

from __future__ import annotations

from typing import Any

from appliance.serve.pii.coverage import CONTENT_PART, STRUCTURED_OUTPUTS
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
    text,
    texts,
    token_ids,
    trusted,
)

HOSTED_WHY = (
    "hosted tools (web search, file search, code interpreter, MCP, computer use) are not available with "
    "PII masking on; use function tools."
)
MEDIA_WHY = "images and files cannot be checked for personal data. Send text only, or use a model without PII masking."


def _content(walk: Walk, value: Any, at: Path, param: str) -> None:
    """A message's content: a string, or text parts (``input_text`` / ``output_text``); media is refused."""
    if isinstance(value, list):
        list_of(CONTENT_PART)(walk, value, at, param)
    else:
        text(walk, value, at, param)


_MESSAGE = obj(
    {
        "type": keep("message"),
        "role": keep("system", "developer", "user", "assistant"),
        "content": _content,
        "id": KEEP,
        "status": KEEP,
        "phase": KEEP,
    },
    what="message item",
)
_SUMMARY = obj({"type": KEEP, "text": text})
INPUT_ITEM = one_of_types(
    {
        "message": _MESSAGE,
        "function_call": obj(
            {"type": KEEP, "id": KEEP, "call_id": KEEP, "name": KEEP, "arguments": json_text, "status": KEEP}
        ),
        "function_call_output": obj({"type": KEEP, "id": KEEP, "call_id": KEEP, "output": text, "status": KEEP}),
        "reasoning": obj(
            {
                "type": KEEP,
                "id": KEEP,
                "summary": list_of(_SUMMARY),
                "content": list_of(_SUMMARY),
                "status": KEEP,
                "encrypted_content": refused("encrypted content cannot be checked."),
            }
        ),
    },
    default="message",
    media=("input_image", "input_file", "input_audio", "image_generation_call"),
    why=MEDIA_WHY,
)


def _input(walk: Walk, value: Any, at: Path, param: str) -> None:
    if isinstance(value, list):
        list_of(INPUT_ITEM)(walk, value, at, param)
    else:
        text(walk, value, at, param)


FUNCTION_TOOL = obj({"type": keep("function"), "name": KEEP, "description": text, "parameters": schema, "strict": KEEP})
TOOL = one_of_types(
    {"function": FUNCTION_TOOL},
    default="function",
    media=(
        "web_search",
        "web_search_preview",
        "file_search",
        "code_interpreter",
        "mcp",
        "computer_use_preview",
        "image_generation",
        "local_shell",
        "custom",
    ),
    why=HOSTED_WHY,
)


def _tool_choice(walk: Walk, value: Any, at: Path, param: str) -> None:
    if isinstance(value, dict):
        obj({"type": keep("function"), "name": KEEP})(walk, value, at, param)
    else:
        keep("none", "auto", "required")(walk, value, at, param)


TEXT = obj(
    {
        "format": obj(
            {
                "type": keep("text", "json_object", "json_schema"),
                "name": KEEP,
                "description": text,
                "schema": schema,
                "strict": KEEP,
            }
        ),
        "verbosity": keep("low", "medium", "high"),
    }
)

RESPONSES_FIELDS: dict[str, Spec] = {
    # masked: free text the model reads (instructions first: placeholder numbers follow what the model reads)
    "instructions": text,
    "input": _input,
    "tools": list_of(TOOL),
    "text": TEXT,
    "structured_outputs": STRUCTURED_OUTPUTS,
    "chat_template_kwargs": mask_all,
    "stop": texts,
    # structural
    "model": trusted,
    "tool_choice": _tool_choice,
    "reasoning": obj(
        {
            "effort": keep("none", "minimal", "low", "medium", "high", "xhigh"),
            "summary": keep("auto", "concise", "detailed"),
            "generate_summary": KEEP,
        }
    ),
    "truncation": keep("auto", "disabled"),
    "include": list_of(keep("message.output_text.logprobs", "reasoning.encrypted_content")),
    "logit_bias": token_ids,
    "mm_payload": keep("tensors", "none"),
    **{
        name: KEEP
        for name in (
            "max_output_tokens",
            "max_tool_calls",
            "parallel_tool_calls",
            "stream",
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "top_logprobs",
            "frequency_penalty",
            "presence_penalty",
            "repetition_penalty",
            "seed",
            "ignore_eos",
            "include_reasoning",
            "include_stop_str_in_output",
            "skip_special_tokens",
            "stop_token_ids",
            "priority",
            "request_id",
            "session_id",
            "cache_salt",
            "enable_response_messages",
            "watermarking",
            "vllm_xargs",
            "kv_transfer_params",
            "ec_transfer_params",
            "media_io_kwargs",
            "mm_processor_kwargs",
            "return_mm_kwargs",
            "background",
        )
    },
    # dropped: the engine ignores them
    **{name: drop for name in ("user", "metadata", "store", "service_tier", "prompt_cache_key")},
    # refused
    "prompt": refused("prompt templates are stored on OpenAI's servers; this appliance has none."),
    "previous_response_id": refused("nothing is stored: send the whole conversation in 'input'."),
    "previous_input_messages": refused("send the whole conversation in 'input'."),
}
