"""The engine deployment: ray.serve.llm's ``LLMServer`` with a stream batcher that does not delay the first token.

Everything else (the vLLM engine, the OpenAI protocol, health checks, LoRA) is ray.serve.llm's own; only the
batching of streamed chunks between this replica and the ingress changes (see :mod:`appliance.serve.streaming`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from ray.serve.llm import LLMServer

from appliance.serve.streaming import eager_batches


class ApplianceLLMServer(LLMServer):
    def _batch_output_stream(self, generator: AsyncGenerator[Any, None]) -> AsyncGenerator[list[Any], None]:
        return eager_batches(generator, self._get_batch_interval_ms() / 1000)
