"""The load: exactly ``c`` streamed chat completions in flight, SSE read by events, TTFT at the first text."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

MODEL = "tiny"
PROMPT = "Tell me a story."


@dataclass
class Level:
    target: str
    concurrency: int
    requests: int
    output_tokens: int
    seconds: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    errors: int
    stream_tok_s_p50: float = 0.0  # per stream, from its first token to its last (no queueing, no TTFT)
    first_error: str = ""

    @property
    def tok_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events in ``buffer`` (split on a blank line only: token text may hold U+2028) and the rest."""
    *events, rest = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
    return events, rest


def _data(event: bytes) -> bytes | None:
    parts = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(parts) if parts else None


async def one_request(
    session: aiohttp.ClientSession,
    url: str,
    key: str | None,
    tokens: int,
    content: str = PROMPT,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[float, int, float]:
    """(time to first text in s, output tokens, total time in s) for one streamed chat completion."""
    # Greedy: every side generates the very same tokens, so the first event with text (TTFT) is the same token
    # everywhere. With sampling, the tiny random model's first tokens are often incomplete UTF-8 that the
    # detokenizer holds back, and TTFT would depend on which random tokens a side happened to draw.
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started = time.perf_counter()
    ttft = None
    produced = 0
    # no context: aiohttp's default verification (ssl=True, what aiohttp itself makes of None)
    tls = ssl_context if ssl_context is not None else True
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers, ssl=tls) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
        buffer = b""
        async for data in response.content.iter_any():
            events, buffer = _events(buffer + data)
            for event in events:
                payload = _data(event)
                if payload is None or payload == b"[DONE]":
                    continue
                chunk = json.loads(payload)
                if ttft is None and chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                    ttft = time.perf_counter() - started
                if chunk.get("usage"):
                    produced = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - started
    return (ttft if ttft is not None else total), produced, total


async def run_level(
    target: str,
    url: str,
    key: str | None,
    concurrency: int,
    tokens: int,
    requests: int,
    content: str = PROMPT,
    cafile: str | None = None,
    mark: Callable[[str], None] | None = None,
) -> Level:
    """``requests`` streams with exactly ``concurrency`` in flight (after a few short warm-up streams)."""
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    connector = aiohttp.TCPConnector(limit=concurrency + 4, ssl=context if context else False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        # warm-up: as many streams as will be measured side by side, so every batch shape has run once
        await asyncio.gather(*(one_request(session, url, key, 16, content, context) for _ in range(concurrency)))
        ttfts: list[float] = []
        rates: list[float] = []
        produced = 0
        errors: list[str] = []
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            nonlocal produced
            async with gate:
                try:
                    ttft, count, total = await one_request(session, url, key, tokens, content, context)
                except (TimeoutError, aiohttp.ClientError, RuntimeError, ValueError) as err:
                    errors.append(f"{type(err).__name__}: {err}"[:200])
                    return
                ttfts.append(ttft)
                if count > 1 and total > ttft:
                    rates.append((count - 1) / (total - ttft))
                produced += count

        if mark:
            mark("start")
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        seconds = time.perf_counter() - started
        if mark:
            mark("end")
    return Level(
        target,
        concurrency,
        requests,
        produced,
        seconds,
        percentile(ttfts, 50) * 1000,
        percentile(ttfts, 99) * 1000,
        len(errors),
        percentile(rates, 50),
        errors[0] if errors else "",
    )
