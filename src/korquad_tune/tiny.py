"""`tiny-random`: a small random Llama and a byte-level BPE tokenizer trained on the shipped data.

Built locally in a few seconds, deterministic, and small enough that tests can fully train it on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from korquad_tune.fileio import atomic_dir

VOCAB_SIZE = 3000
SPECIAL = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}


def _training_texts(max_articles: int = 40) -> list[str]:
    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.prompts import TEMPLATES
    records, _ = parse_squad(shipped_dev_path(), articles=max_articles)
    header = TEMPLATES["alpaca"].prompt("")
    contexts = sorted({r["context"] for r in records})
    return [header] * 50 + contexts + [r["question"] + " " + r["answers"][0] for r in records]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    from tokenizers.processors import TemplateProcessing
    tok.post_processor = TemplateProcessing(single=f"{SPECIAL['bos']} $A", pair=f"{SPECIAL['bos']} $A $B",
                                            special_tokens=[(SPECIAL["bos"], tok.token_to_id(SPECIAL["bos"]))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL["bos"], eos_token=SPECIAL["eos"],
                                   pad_token=SPECIAL["pad"], unk_token=SPECIAL["unk"])


def build_tiny_random(out: Path, seed: int = 0) -> Path:
    """Build (once) the tiny model folder at `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (out / ".complete").exists():
        return out
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / ".complete").write_text(json.dumps({"seed": seed, "vocab_size": len(tok)}))
    return out
