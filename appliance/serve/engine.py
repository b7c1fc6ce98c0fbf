"""The engine deployment: ray.serve.llm's ``LLMServer`` with a stream batcher that does not delay the first token
and widens its window under load.

It also answers ``rerank`` and ``responses`` (vLLM's own implementations; ray.serve.llm 2.60 has neither).
Everything else (the vLLM engine, the OpenAI protocol, health checks, LoRA) is ray.serve.llm's own; only the
batching of streamed chunks between this replica and the ingress changes (see :mod:`appliance.serve.streaming`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncGenerator
from typing import Any

from ray.serve.llm import LLMServer

from appliance.serve.builder import keeps_several
from appliance.serve.streaming import StreamWindow, windowed_batches

_LOGGER = logging.getLogger(__name__)
DEAD_ENGINE_POLL_S = 0.1  # how often a replica of a model with several asks vLLM whether its engine is dead

# LLMConfig.experimental_configs key of the widest window (ms); the base is ray.serve.llm's own
# ``stream_batching_interval_ms``
MAX_WINDOW_KEY = "appliance_stream_batching_max_ms"


class ApplianceLLMServer(LLMServer):
    _stream_window: StreamWindow | None = None
    _dead_engine_watch: asyncio.Task[None] | None = None

    def _batch_output_stream(self, generator: AsyncGenerator[Any, None]) -> AsyncGenerator[list[Any], None]:
        if self._stream_window is None:
            base_ms = self._get_batch_interval_ms()
            max_ms = self._llm_config.experimental_configs.get(MAX_WINDOW_KEY, base_ms)
            self._stream_window = StreamWindow(base_ms / 1000, max_ms / 1000)
        return windowed_batches(generator, self._stream_window)

    async def check_health(self) -> None:
        """ray.serve.llm's check (it raises once the vLLM engine is dead); where the model keeps other replicas,
        a replica whose engine died also leaves at once: its process exits, so Serve's routers stop choosing it
        at their next try (a dead engine answers fastest, and would otherwise draw the requests) and its
        controller replaces it now, instead of after three failed checks. The same happens sooner from
        :meth:`_leave_when_dead` and for a request that reaches the dead engine."""
        try:
            await super().check_health()
        except Exception as err:
            if self.engine is not None and self._keeps_several():
                leave(self._llm_config.model_id, type(err).__name__)
            raise

    async def _run_request(self, request: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        if self._keeps_several() and engine_dead(self.engine):
            leave(self._llm_config.model_id, "a request met the dead engine")
        return await super()._run_request(request, **kwargs)

    def _keeps_several(self) -> bool:
        return keeps_several(dict(self._llm_config.deployment_config or {}))

    async def _leave_when_dead(self) -> None:
        """Where the model keeps other replicas: leave as soon as vLLM knows its engine is dead (it learns of the
        engine process's death at once), not at the next health check."""
        while not engine_dead(self.engine):
            await asyncio.sleep(DEAD_ENGINE_POLL_S)
        leave(self._llm_config.model_id, "engine dead")

    async def _start_engine(self) -> None:
        await super()._start_engine()  # type: ignore[no-untyped-call]
        adopt_tokenization(self.engine)
        if self._keeps_several():
            self._dead_engine_watch = asyncio.get_running_loop().create_task(self._leave_when_dead())

    async def rerank(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]:
        """vLLM's own rerank (its ``ServingScores`` with a ``RerankRequest``, as ``vllm serve`` answers
        ``/v1/rerank``): ray.serve.llm 2.60 routes ``/v1/score`` but has no rerank call, so it is added here."""
        await self._maybe_add_request_id_to_request(request)
        return _rerank(self.engine, request, raw_request_info)

    async def responses(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]:
        """vLLM's own Responses API (its ``OpenAIServingResponses``, as ``vllm serve`` answers ``/v1/responses``),
        stateless: vLLM keeps no response unless VLLM_ENABLE_RESPONSES_API_STORE is set, which the appliance
        never sets. A stream's events are batched like chat's."""
        await self._maybe_add_request_id_to_request(request)
        answers = _responses(self.engine, request, raw_request_info)
        return self._batch_output_stream(answers) if request.stream else answers


def engine_dead(engine: Any) -> bool:
    """Whether ray.serve.llm's engine holds a vLLM engine client that knows its engine is dead."""
    client = getattr(engine, "_engine_client", None)
    return bool(client is not None and getattr(client, "errored", False))


def leave(model_id: str, why: str) -> None:
    """End this replica's process: its engine is dead and the model's other replicas take its requests."""
    _LOGGER.error(
        "model %s: this replica's engine is dead (%s); the replica exits, Serve starts another and the model's "
        "other replicas take its requests meanwhile",
        model_id,
        why,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(1)


def adopt_tokenization(engine: Any) -> None:
    """Give ray.serve.llm's engine vLLM's tokenizer service. ray.serve.llm 2.60 reads it from the app state as
    ``openai_serving_tokenization``; vLLM 0.32 names it ``serving_tokenization``, so without this every
    ``/tokenize`` and ``/detokenize`` answers "This model does not support the 'tokenization' task"."""
    if getattr(engine, "_oai_serving_tokenization", None) is not None:
        return
    state = getattr(engine, "_app_state", None)
    serving = getattr(state, "openai_serving_tokenization", None) or getattr(state, "serving_tokenization", None)
    if serving is not None:
        engine._oai_serving_tokenization = serving


async def _responses(engine: Any, request: Any, raw_request_info: Any) -> AsyncGenerator[Any, None]:
    """One answer (a dict: the response object) or an ``ErrorResponse``; a stream: SSE text, one event each."""
    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorInfo, ErrorResponse
    from ray.llm._internal.serve.core.protocol import RawRequestInfo
    from vllm.exceptions import VLLMClientError

    serving = getattr(getattr(engine, "_app_state", None), "openai_serving_responses", None)
    if serving is None:
        yield ErrorResponse(
            error=ErrorInfo(
                message="This model does not support the Responses API (it is not a generating model).",
                type="invalid_request_error",
                code=400,
            )
        )
        return
    raw_request = RawRequestInfo.to_starlette_request_optional(raw_request_info)
    try:
        answer = await serving.create_responses(request, raw_request)
    except (ValueError, VLLMClientError) as err:
        yield engine._make_error_response(serving, err)
        return
    if hasattr(answer, "__aiter__"):
        async for event in answer:
            kind = getattr(event, "type", "unknown")
            yield f"event: {kind}\ndata: {event.model_dump_json(indent=None, by_alias=True)}\n\n"
        return
    dumped = answer.model_dump(mode="json", by_alias=True)
    if "error" in dumped and "output" not in dumped:  # vLLM's ErrorResponse
        yield ErrorResponse(error=ErrorInfo(**dumped["error"]))
    else:
        yield dumped


async def _rerank(engine: Any, request: Any, raw_request_info: Any) -> AsyncGenerator[Any, None]:
    """One rerank answer (a dict in vLLM's Cohere/Jina shape) or an ``ErrorResponse``."""
    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorInfo, ErrorResponse
    from ray.llm._internal.serve.core.protocol import RawRequestInfo
    from ray.llm._internal.serve.engines.vllm.vllm_engine import _canonicalize_request_id_header
    from vllm.exceptions import VLLMClientError

    serving = getattr(engine, "_oai_serving_scores", None)
    if serving is None:
        yield ErrorResponse(
            error=ErrorInfo(
                message="This model does not support the 'score' task. The rerank "
                "endpoint is not available for this model.",
                type="invalid_request_error",
                code=400,
            )
        )
        return
    raw_request_info = _canonicalize_request_id_header(request, raw_request_info)
    raw_request = RawRequestInfo.to_starlette_request_optional(raw_request_info)
    try:
        response = await serving(request, raw_request=raw_request)
    except (ValueError, VLLMClientError) as err:
        yield engine._make_error_response(serving, err)
        return
    yield json.loads(response.body)
