"""eager_batches: the first chunk at once, later ones coalesced per window, nothing lost or reordered."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.serve.streaming import StreamWindow, eager_batches, windowed_batches


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


def test_window_grows_with_the_streams_in_flight_up_to_its_max() -> None:
    window = StreamWindow(base_s=0.05, max_s=0.15, streams_per_base=8)
    assert [window.interval() for window.active in (0, 1, 8)] == [0.05, 0.05, 0.05]
    window.active = 16
    assert window.interval() == pytest.approx(0.10), "twice the streams: twice the window, the same messages/s"
    window.active = 200
    assert window.interval() == pytest.approx(0.15)
    assert StreamWindow(base_s=0, max_s=0.15, active=100).interval() == 0, "0 stays one message per chunk"
    assert StreamWindow(base_s=0.05, max_s=0.05, active=100).interval() == 0.05, "max = base: a fixed window"
    assert StreamWindow(base_s=0.05, max_s=0.01, active=100).interval() == 0.05, "a max below the base: the base"


def test_windowed_streams_count_while_they_run_and_the_first_chunk_still_goes_at_once() -> None:
    window = StreamWindow(base_s=0.02, max_s=1.0, streams_per_base=1)

    async def main() -> list[list[tuple[float, list[int]]]]:
        seen: list[int] = []

        async def one(n: int) -> list[tuple[float, list[int]]]:
            started = time.monotonic()
            out = []
            async for batch in windowed_batches(_timed([(0, 1)] + [(0.01, v) for v in range(2, 12)]), window):
                seen.append(window.active)
                out.append((time.monotonic() - started, batch))
            return out

        results = await asyncio.gather(*(one(n) for n in range(4)))
        assert max(seen) == 4, "four streams in flight widened the window"
        return results

    results = asyncio.run(main())
    assert window.active == 0, "a finished stream no longer counts"
    for batches in results:
        assert batches[0][1] == [1] and batches[0][0] < 0.05, "the first chunk is not held"
        assert [v for _, b in batches for v in b] == list(range(1, 12))
        assert len(batches) <= 3, "with 4 streams the window was ~80 ms: ten chunks 10 ms apart in two or three sends"


def test_a_function_window_is_asked_again_before_each_wait() -> None:
    asked = []

    def window() -> float:
        asked.append(1)
        return 0.01

    batches = asyncio.run(_collect(_timed([(0, 1), (0.001, 2), (0.001, 3)]), interval=window))  # type: ignore[arg-type]
    assert [v for _, b in batches for v in b] == [1, 2, 3]
    assert len(asked) >= 2


def test_the_end_of_a_stream_is_not_held_for_the_window() -> None:
    started = time.monotonic()
    batches = asyncio.run(_collect(_timed([(0, 1), (0.01, 2), (0.01, 3)]), interval=2.0))
    assert [v for _, b in batches for v in b] == [1, 2, 3]
    assert time.monotonic() - started < 1.0, "the last chunks went when the stream ended, not 2 s later"
    assert len(batches) == 2, "2 and 3 arrived inside the window: one message"
