"""/tokenize and /detokenize with PII masking on (the real analyzer): the engine tokenizes the masked prompt,
and token ids, which cannot be checked, are refused before they reach it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.serve.pii.test_bookend import make_gate, post


def test_tokenize_sees_the_masked_prompt_and_detokenize_is_refused(tmp_path: Path, pii_service) -> None:
    gate, engine, _, _ = make_gate(tmp_path, pii_service.mask)
    status, _, _ = post(gate, "/tokenize", {"model": "a", "prompt": "My email is jane.doe@example.com"})
    assert status == 200
    assert b"jane.doe@example.com" not in engine.seen[0] and b"<EMAIL_ADDRESS_" in engine.seen[0]
    status, _, body = post(gate, "/detokenize", {"model": "a", "tokens": [1, 2, 3]})
    assert status == 400 and "PII masking is on" in json.loads(body)["error"]["message"]
    assert len(engine.seen) == 1
