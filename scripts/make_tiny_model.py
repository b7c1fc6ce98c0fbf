#!/usr/bin/env python3
"""Build a tiny Llama-architecture model locally, for tests and benchmarks. Nothing is downloaded.

    python scripts/make_tiny_model.py OUTDIR

Writes a Hugging Face model directory that vLLM (CPU build) loads in under a minute on 2 cores:

- a byte-level BPE tokenizer trained with ``tokenizers`` on a few KB of text embedded here (vocab 512),
  saved as a fast tokenizer with a chat template and bos/eos/pad tokens;
- ``LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
  num_key_value_heads=1)`` — head_dim 64, which vLLM's CPU attention accepts (16 is rejected);
- random weights from a fixed seed, saved as safetensors (~0.5 MB).

The output is gibberish: the model exists to test plumbing, not text. Running it again on the same
directory rewrites the same files (idempotent); ``--check`` only verifies that OUTDIR holds a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VOCAB_SIZE = 512
SEED = 1234
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<s>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else "
    "message['content'] | map(attribute='text') | join('')) + '</s>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<s>assistant\\n' }}{% endif %}"
)
CORPUS = """\
The appliance serves language models to clients on one machine. Requests arrive over HTTPS, pass through
Nginx, reach the ingress that checks the API key, and go on to the engine. The engine answers with tokens,
one after another, and the ingress streams them back as server-sent events. Operators watch dashboards,
read the audit log, and rotate certificates before they expire. A supervisor restarts what has died.
Alice wrote to bob@example.com about the meeting on Monday at 10:30 in Berlin. Call +1 555 0100 for help.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1000 2026. Punctuation: , . ; : ! ? ( ) [ ] { } " ' - _ / \\ @ # $ %.
system user assistant tool function content role name arguments model choices delta finish_reason stop length
Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore
magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo.
Über café naïve façade — déjà vu; 日本語 テキスト; emoji 🙂 🚀; Ελληνικά; русский текст.
"""


def build_tokenizer(out: Path) -> int:
    """Train the byte-level BPE tokenizer and save it with its config. Returns the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return len(fast)


def build_model(out: Path, vocab_size: int) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
        dtype="float32",  # transformers 5 name of torch_dtype (same config.json)
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3).save_pretrained(out)


def is_model_dir(out: Path) -> bool:
    needed = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")
    if not all((out / name).is_file() for name in needed):
        return False
    config = json.loads((out / "config.json").read_text())
    return bool(config.get("model_type") == "llama" and config.get("hidden_size") == 128)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="directory to write the model into (created if missing)")
    parser.add_argument("--check", action="store_true", help="only check that OUTDIR holds the tiny model")
    args = parser.parse_args(argv)
    if args.check:
        ok = is_model_dir(args.outdir)
        print(f"{args.outdir}: {'tiny model present' if ok else 'no tiny model'}")
        return 0 if ok else 1
    args.outdir.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(args.outdir)
    build_model(args.outdir, vocab_size)
    print(f"wrote tiny Llama model to {args.outdir} (vocab {vocab_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
