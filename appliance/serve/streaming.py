"""Token streaming between the engine replica and the ingress without padding the time to first token.

ray.serve.llm batches a stream's chunks into one Ray message per ``stream_batching_interval_ms`` window
(50 ms by default), because a message per token costs more than the tokens on a busy host. Its batcher
waits a whole window before sending anything, so every stream's first token is late by up to one window.

:func:`eager_batches` keeps the batching but never delays a chunk that finds the line idle: the first chunk
goes out at once, later chunks go out at most once per window (whatever arrived meanwhile travels
together), and a chunk that arrives more than a window after the previous send also goes at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


async def eager_batches(source: AsyncIterator[T], interval_s: float) -> AsyncGenerator[list[T], None]:
    """Lists of items from ``source``: the first at once, then at most one list per ``interval_s``."""
    if interval_s <= 0:
        async for item in source:
            yield [item]
        return
    queue: asyncio.Queue[object] = asyncio.Queue()
    failure: list[BaseException] = []

    async def read() -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        except Exception as err:  # noqa: BLE001 - handed to the consumer, raised there
            failure.append(err)
        finally:
            queue.put_nowait(_END)

    reader = asyncio.create_task(read())
    last_sent = float("-inf")
    try:
        finished = False
        while not finished:
            first = await queue.get()
            if first is _END:
                break
            batch: list[T] = [first]  # type: ignore[list-item]
            wait = last_sent + interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
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
