"""The analysis cache: results by keyed hash, least recently used out, expiry, no text kept; and masking with it."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from presidio_analyzer import RecognizerResult

from appliance.serve.pii.cache import AnalysisCache

TEXT = "Call David Johnson at (212) 555-1234."
RESULTS = [RecognizerResult("PERSON", 5, 18, 0.85), RecognizerResult("PHONE_NUMBER", 22, 36, 0.6)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def found(results: list[RecognizerResult] | None) -> list[tuple[str, int, int, float]] | None:
    return None if results is None else [(r.entity_type, r.start, r.end, r.score) for r in results]


def test_a_text_analysed_is_found_again_as_fresh_results() -> None:
    cache = AnalysisCache(8, 60)
    assert cache.get(TEXT) is None
    cache.put(TEXT, RESULTS)
    first, second = cache.get(TEXT), cache.get(TEXT)
    assert found(first) == found(RESULTS) == found(second)
    assert first is not None and second is not None and first[0] is not second[0] and first[0] is not RESULTS[0]
    first[0].start = 99  # the caller may change what it got; the cache does not
    assert found(cache.get(TEXT)) == found(RESULTS)
    assert cache.get(TEXT + " ") is None and cache.get(TEXT.lower()) is None
    assert (cache.hits, cache.misses) == (3, 3)
    cache.put("no personal data here", [])
    assert cache.get("no personal data here") == []


def test_least_recently_used_goes_first_and_entries_expire() -> None:
    clock = Clock()
    cache = AnalysisCache(2, 60, clock=clock)
    cache.put("a", RESULTS)
    cache.put("b", [])
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", [])
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is not None
    clock.now += 60
    assert cache.get("a") is not None  # exactly the TTL: still fresh
    clock.now += 0.5
    assert cache.get("a") is None and len(cache) == 1  # expired entries are dropped when met


def test_zero_entries_is_off() -> None:
    cache = AnalysisCache(0, 60)
    cache.put(TEXT, RESULTS)
    assert cache.get(TEXT) is None and len(cache) == 0 and (cache.hits, cache.misses) == (0, 0)


def test_the_cache_holds_no_text_and_no_value() -> None:
    cache = AnalysisCache(8, 60)
    cache.put(TEXT, RESULTS)
    cache._lock = None  # type: ignore[assignment]  # (a lock does not pickle)
    dumped = pickle.dumps(cache)
    for secret in ("David", "Johnson", "555-1234", "212", TEXT):
        assert secret.encode() not in dumped
    assert repr(AnalysisCache(8, 60)) == "AnalysisCache(0/8 entries, ttl 60 s)"


def test_two_caches_key_the_same_text_differently() -> None:
    one, two = AnalysisCache(8, 60), AnalysisCache(8, 60)
    assert one._digest(TEXT) != two._digest(TEXT) and len(one._digest(TEXT)) == 32


def test_a_conversations_earlier_turns_are_not_analysed_again(pii_service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Presidio: the second request of a conversation analyses only its new message, and masks exactly
    as without the cache (the mapping is made per request)."""
    analysed: list[str] = []
    analyze = pii_service._analyzer.analyze

    def spy(text, *args, **kwargs):  # type: ignore[no-untyped-def]
        analysed.append(text)
        return analyze(text, *args, **kwargs)

    monkeypatch.setattr(pii_service._analyzer, "analyze", spy)
    turn1 = ["You help Maria Garcia (maria.garcia@example.com).", "Hi, I am Maria Garcia, call 212-555-0199."]
    turn2 = [*turn1, "Noted.", "And my card is 4095-2609-9393-4932, say hi to Ken Adams."]
    first = asyncio.run(pii_service.mask(turn1))
    analysed.clear()
    second = asyncio.run(pii_service.mask(turn2))
    assert analysed == turn2[2:]  # only the new messages
    uncached = pii_service.mask_sync(turn2, cached=False)
    assert second["texts"] == uncached.texts and second["originals"] == uncached.originals
    assert second["texts"][:2] == first["texts"] and "Ken Adams" not in second["texts"][3]
    analysed.clear()
    asyncio.run(pii_service.check_health())
    assert analysed  # the health check always runs the analyzer


def test_overlapping_requests_count_each_lookup_once(pii_service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two requests waiting side by side for the replica's one worker: hits + misses add up to their texts."""
    import uuid

    from appliance.serve.pii.metrics import NoMetrics

    counted: list[tuple[int, int]] = []

    class Recording(NoMetrics):
        def cache_lookups(self, hits: int, misses: int) -> None:
            counted.append((hits, misses))

    monkeypatch.setattr(pii_service, "_metrics", Recording())
    tag = uuid.uuid4().hex
    shared = f"{tag}: write to Tom Lee"

    async def both() -> None:
        await asyncio.gather(
            pii_service.mask([f"{tag} one", shared]), pii_service.mask([f"{tag} two", shared, f"{tag} three"])
        )

    asyncio.run(both())
    assert sorted(counted) == [(0, 2), (1, 2)]
