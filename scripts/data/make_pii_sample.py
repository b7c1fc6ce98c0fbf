"""Regenerate scripts/data/pii_sample.jsonl: labelled sentences from presidio-evaluator's sentence faker.

Not part of the appliance (presidio-evaluator is not a dependency): run it in a throw-away environment,
offline, with a fixed seed, and commit the output::

    python -m venv /tmp/evalenv && /tmp/evalenv/bin/pip install presidio-evaluator==0.3.2
    /tmp/evalenv/bin/python scripts/data/make_pii_sample.py --seed 42 --count 300
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).with_name("pii_sample.jsonl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    faker = PresidioSentenceFaker(locale="en_US", lower_case_ratio=0.05, random_seed=args.seed)
    records = faker.generate_new_fake_sentences(num_samples=args.count)
    with args.out.open("w", encoding="utf-8") as handle:
        for record in records:
            spans = sorted(
                ({"type": s.entity_type, "start": s.start_position, "end": s.end_position} for s in record.spans),
                key=lambda s: s["start"],
            )
            handle.write(json.dumps({"text": record.full_text, "spans": spans}, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} sentences to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
