"""eager_batches: the first chunk at once, later ones coalesced per window, nothing lost or reordered."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.serve.streaming import eager_batches


async def _timed(items: list[tuple[float, int]]):
    """Yield each value after its delay (seconds since the previous one)."""
    for delay, value in items:
        await asyncio.sleep(delay)
        yield value


async def _collect(source, interval: float) -> list[tuple[float, list[int]]]:
    started = time.monotonic()
    return [(time.monotonic() - started, batch) async for batch in eager_batches(source, interval)]


def test_first_chunk_is_not_held_for_the_window() -> None:
    batches = asyncio.run(_collect(_timed([(0, 1)] + [(0.001, n) for n in range(2, 30)]), interval=1.0))
    first_at, first = batches[0]
    assert first == [1]
    assert first_at < 0.5, "the first chunk went out long before the 1 s window could pass"
    assert [v for _, b in batches for v in b] == list(range(1, 30))
    assert len(batches) < 10, "later chunks were coalesced"


def test_chunks_that_find_the_line_idle_go_at_once() -> None:
    batches = asyncio.run(_collect(_timed([(0, 1), (0.15, 2), (0.15, 3)]), interval=0.05))
    assert [b for _, b in batches] == [[1], [2], [3]]


def test_zero_interval_is_one_chunk_per_message() -> None:
    batches = asyncio.run(_collect(_timed([(0, 1), (0, 2), (0, 3)]), interval=0))
    assert [b for _, b in batches] == [[1], [2], [3]]


def test_source_error_reaches_the_consumer_after_what_came_before() -> None:
    async def failing():
        yield 1
        await asyncio.sleep(0.01)
        raise RuntimeError("engine died")

    async def run() -> list[list[int]]:
        seen = []
        with pytest.raises(RuntimeError, match="engine died"):
            async for batch in eager_batches(failing(), 0.001):
                seen.append(batch)
        return seen

    assert asyncio.run(run()) == [[1]]


def test_consumer_leaving_early_cancels_the_reader() -> None:
    cancelled = asyncio.Event()

    async def endless():
        try:
            n = 0
            while True:
                n += 1
                yield n
                await asyncio.sleep(0.001)
        finally:
            cancelled.set()

    async def run() -> bool:
        gen = eager_batches(endless(), 0.01)
        async for _ in gen:
            break
        await gen.aclose()
        await asyncio.sleep(0.05)
        return cancelled.is_set()

    assert asyncio.run(run())
