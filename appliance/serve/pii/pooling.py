"""Which field of an embeddings / score / rerank request is masked, checked, kept, dropped or refused with PII on.

The generation table (:mod:`appliance.serve.pii.coverage`) for the pooling routes. Their inputs (``input``,
``text_1``/``text_2``, ``query``/``documents``) are masked — the engine then embeds or scores the masked text,
so a vector differs from the one of the original text — or, with ``PII_EMBEDDINGS=refuse``, checked: a request
whose inputs hold personal data is refused with 400 and nothing reaches the engine. Token-id inputs and media
cannot be checked and are refused. A unit test compares these tables with the fields of vLLM's request models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.serve.errors import ApiError
from appliance.serve.pii.coverage import MESSAGE
from appliance.serve.pii.walker import KEEP, Check, Path, Spec, Walk, drop, list_of, mask_all, refused, text, trusted

REFUSED_CODE = "pii_in_input"


@dataclass(frozen=True)
class InputCheck(Check):
    """An input of a pooling request under ``PII_EMBEDDINGS=refuse``: refused if it holds personal data."""

    def refusal(self) -> ApiError:
        return ApiError(
            400,
            f"Personal data was found in '{self.param}'; this appliance refuses embedding and "
            "scoring inputs with personal data (PII_EMBEDDINGS=refuse). Remove it and retry.",
            REFUSED_CODE,
            self.param,
        )


def _inputs(refuse: bool) -> Spec:
    """A string or a list of strings the model embeds: masked, or checked (refuse mode)."""

    def one(walk: Walk, value: Any, at: Path, param: str) -> None:
        if isinstance(value, str):
            if refuse:
                if value and all(check.text != value for check in walk.checks):
                    walk.checks.append(InputCheck(param, value))
            else:
                walk.mask(at, value)
        elif isinstance(value, int) and not isinstance(value, bool):
            raise ApiError(
                400,
                f"With PII masking on, '{param}' must be text: token-id inputs cannot be checked for personal data.",
                "pii_unmaskable_prompt",
                param,
            )
        elif value is not None:
            walk.refuse(
                param,
                f"With PII masking on, '{param}' is not accepted: only text inputs can be checked for personal data.",
            )

    def spec(walk: Walk, value: Any, at: Path, param: str) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                one(walk, item, (*at, index), f"{param}[{index}]")
        else:
            one(walk, value, at, param)

    return spec


_COMMON: dict[str, Spec] = {
    "model": trusted,
    "chat_template_kwargs": mask_all,
    "instruction": text,
    "chat_template": refused("a request's own chat template is text the model sees that cannot be masked."),
    **{
        name: KEEP
        for name in (
            "encoding_format",
            "embed_dtype",
            "endianness",
            "dimensions",
            "use_activation",
            "add_special_tokens",
            "padding",
            "truncate_prompt_tokens",
            "truncation_side",
            "request_id",
            "priority",
            "cache_salt",
            "mm_processor_kwargs",
            "media_io_kwargs",
            "add_generation_prompt",
            "continue_final_message",
            "max_tokens_per_query",
            "max_tokens_per_doc",
            "top_n",
        )
    },
    "user": drop,
}


def pooling_fields(path: str, *, refuse: bool) -> dict[str, Spec]:
    """The coverage table of one pooling route (``refuse``: inputs are checked, not masked)."""
    inputs = _inputs(refuse)
    if path == "/v1/embeddings":
        own: dict[str, Spec] = {"input": inputs, "messages": list_of(MESSAGE)}
        if refuse:
            own["messages"] = refused("chat-style embedding inputs cannot be refused by part; send 'input' instead.")
    elif path == "/v1/score":
        own = {"text_1": inputs, "text_2": inputs}
    elif path == "/v1/rerank":
        own = {"query": inputs, "documents": inputs}
    else:
        raise ValueError(f"not a pooling route: {path}")
    return {"model": trusted, **own, **_COMMON}
