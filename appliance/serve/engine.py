"""The engine deployment: ray.serve.llm's ``LLMServer`` with a stream batcher that does not delay the first token
and widens its window under load.

Everything else (the vLLM engine, the OpenAI protocol, health checks, LoRA) is ray.serve.llm's own; only the
batching of streamed chunks between this replica and the ingress changes (see :mod:`appliance.serve.streaming`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from ray.serve.llm import LLMServer

from appliance.serve.streaming import StreamWindow, windowed_batches

# LLMConfig.experimental_configs key of the widest window (ms); the base is ray.serve.llm's own
# ``stream_batching_interval_ms``
MAX_WINDOW_KEY = "appliance_stream_batching_max_ms"


class ApplianceLLMServer(LLMServer):
    _stream_window: StreamWindow | None = None

    def _batch_output_stream(self, generator: AsyncGenerator[Any, None]) -> AsyncGenerator[list[Any], None]:
        if self._stream_window is None:
            base_ms = self._get_batch_interval_ms()
            max_ms = self._llm_config.experimental_configs.get(MAX_WINDOW_KEY, base_ms)
            self._stream_window = StreamWindow(base_ms / 1000, max_ms / 1000)
        return windowed_batches(generator, self._stream_window)
