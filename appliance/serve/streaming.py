"""Token streaming between the engine replica and the ingress without padding the time to first token.

ray.serve.llm batches a stream's chunks into one Ray message per ``stream_batching_interval_ms`` window
(50 ms by default), because a message per token costs more than the tokens on a busy host. Its batcher
waits a whole window before sending anything, so every stream's first token is late by up to one window.

:func:`eager_batches` keeps the batching but never delays a chunk that finds the line idle: the first chunk
goes out at once, later chunks go out at most once per window (whatever arrived meanwhile travels
together), a chunk that arrives more than a window after the previous send also goes at once, and the last
chunks go as soon as the stream ends (a client's request is over when its last token arrives: waiting out the
window there costs every request up to a window).

:class:`StreamWindow` makes the window grow with the replica's load: every stream's chunks cost a Ray message
per window (gRPC, serialisation, the ingress's and nginx's work per write), so with many streams in flight
the window widens from the base (``SERVE_STREAM_BATCHING_MS``) up to ``SERVE_STREAM_BATCHING_MAX_MS``,
keeping the replica's message rate near ``streams_per_base / base`` per second. The first chunk of a stream
still goes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_END = object()


@dataclass
class StreamWindow:
    """The batching window of one replica: ``base_s`` up to ``streams_per_base`` streams in flight, then
    growing with them (the same messages per second), at most ``max_s``."""

    base_s: float
    max_s: float
    streams_per_base: int = 8
    active: int = 0

    def interval(self) -> float:
        if self.base_s <= 0:
            return 0.0
        grown = self.base_s * self.active / self.streams_per_base
        return max(self.base_s, min(self.max_s, grown))


async def eager_batches(
    source: AsyncIterator[T], interval_s: float | Callable[[], float]
) -> AsyncGenerator[list[T], None]:
    """Lists of items from ``source``: the first at once, then at most one list per interval (``interval_s``
    seconds, or what it returns when it is a function: asked again before each wait)."""
    window = interval_s if callable(interval_s) else (lambda: interval_s)
    if window() <= 0:
        async for item in source:
            yield [item]
        return
    queue: asyncio.Queue[object] = asyncio.Queue()
    failure: list[BaseException] = []
    ended = asyncio.Event()  # the source is done: what is queued goes now, not at the end of the window

    async def read() -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        except Exception as err:
            failure.append(err)
        finally:
            queue.put_nowait(_END)
            ended.set()

    reader = asyncio.create_task(read())
    last_sent = float("-inf")
    try:
        finished = False
        while not finished:
            first = await queue.get()
            if first is _END:
                break
            batch: list[T] = [first]  # type: ignore[list-item]
            wait = last_sent + window() - time.monotonic()
            if wait > 0 and not ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), wait)
            finished = _drain(queue, batch)
            last_sent = time.monotonic()
            yield batch
        if failure:
            raise failure[0]
    finally:
        if not reader.done():
            reader.cancel()


def _drain(queue: asyncio.Queue[object], batch: list[T]) -> bool:
    """Move what is queued into ``batch``; True when the end of the stream was among it."""
    while True:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            return False
        if item is _END:
            return True
        batch.append(item)  # type: ignore[arg-type]


async def windowed_batches(source: AsyncIterator[T], window: StreamWindow) -> AsyncGenerator[list[T], None]:
    """:func:`eager_batches` with ``window``'s interval; the stream counts towards its load while it runs."""
    window.active += 1
    try:
        async for batch in eager_batches(source, window.interval):
            yield batch
    finally:
        window.active -= 1
