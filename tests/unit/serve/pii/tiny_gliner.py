"""A GLiNER model of the real PII models' architecture (uni-encoder span model, markerV0, DeBERTa-v2 encoder)
with a tiny encoder, random weights from a fixed seed and a WordPiece tokenizer trained here: nothing is
downloaded. Its spans and scores are random: it tests the plumbing, never accuracy.

gliner 0.2.24's ``save_pretrained`` cannot serialise its config under transformers 5.19 (``model_type`` is a
read-only property there), so the directory is written as a GLiNER repo lays it out: gliner_config.json,
model.safetensors and the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path

SEED = 20261205
CORPUS = (
    "David Johnson lives at 12 Baker Street, London NW1 6XE, United Kingdom. Write to anna.schmidt@example.de or "
    "call +49 30 1234567. Maria García moved from Madrid to 350 Fifth Avenue, New York, NY 10118. person street "
    "address city country postal code location name organization phone email card number the a of to in and is "
)


def build_tiny_gliner(out: Path) -> Path:
    """Write the model into ``out`` (created) and return it."""
    import torch
    from gliner import GLiNER, GLiNERConfig
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DebertaV2Config, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        [CORPUS] * 3, trainers.WordPieceTrainer(vocab_size=400, special_tokens=special, show_progress=False)
    )
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    fast.save_pretrained(out)
    encoder = DebertaV2Config(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=64,
        pos_att_type=["p2c", "c2p"],
    )
    config = GLiNERConfig(
        model_name=str(out),
        encoder_config=encoder.to_dict(),
        hidden_size=32,
        max_width=12,
        span_mode="markerV0",
        max_len=384,
        dropout=0.0,
    )
    values = config.to_dict()
    values.pop("model_type", None)  # GLiNER.from_pretrained drops it too: a property in GLiNERConfig
    torch.manual_seed(SEED)
    model = GLiNER.from_config(values, backbone_from_pretrained=False, load_tokenizer=True)
    save_file(model.prepare_state_dict(model.model.state_dict()), out / "model.safetensors")
    model.data_processor.transformer_tokenizer.save_pretrained(out)  # with GLiNER's <<ENT>> and <<SEP>>
    values["encoder_config"]["vocab_size"] = (
        model.model.token_rep_layer.bert_layer.model.get_input_embeddings().num_embeddings
    )
    (out / "gliner_config.json").write_text(json.dumps(values, indent=2, default=str))
    return out
