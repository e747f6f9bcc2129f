"""The original experiment's QLoRA recipe (preset `seed-llama2-7b-qlora`) on a CUDA GPU, unchanged.

No hub is reachable on the lent GPU machines, so the 7B model is a Llama-2-7B-*shaped* model with random
weights (LlamaConfig's defaults are Llama-2-7B's dimensions) and the tiny-random tokenizer: the loss means
nothing, but every layer of the real path runs -- nf4 int4 loading, LoRA r=16 on all linear layers, packing,
full-sequence loss, gradient checkpointing, batch 8, max length 256, lr 2e-4 -- and the throughput is the
7B one. With a hub (or a local Llama-2-7B folder) pass --model to train the real thing.

    python bench/gpu_qlora.py --steps 200 [--model meta-llama/Llama-2-7b-hf]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def build_random_llama2_7b(out: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from korquad_tune.models import resolve_model, load_tokenizer
    if (out / "config.json").exists():
        return out
    tok = load_tokenizer(resolve_model("tiny-random"))
    config = LlamaConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)  # defaults = Llama-2-7B: 4096 x 32 layers, 32000 vocab
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def main() -> None:
    import torch

    from korquad_tune.augment import augment
    from korquad_tune.config import load_train_config
    from korquad_tune.data import prepare
    from korquad_tune.train import train

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--model", default=None, help="default: a random Llama-2-7B-shaped model built locally")
    p.add_argument("--work", default="/tmp/korquad-gpu")
    p.add_argument("--out", default=None, help="write the result JSON here")
    args = p.parse_args()
    work = Path(args.work)
    t0 = time.time()
    model = args.model or str(build_random_llama2_7b(work / "llama2-7b-random"))
    build_s = time.time() - t0
    run = work / "run"
    prepare(run, articles=3)
    augment(run, backend="shipped")
    cfg = load_train_config("seed-llama2-7b-qlora", {"model": model, "save_steps": 10_000})
    torch.cuda.reset_peak_memory_stats()
    t1 = time.time()
    adapter = train(run, cfg, name="seed-qlora", augment=True, max_steps=args.steps)
    seconds = time.time() - t1
    log = [json.loads(line) for line in (adapter / "train_log.jsonl").read_text().splitlines()]
    final = next(r for r in reversed(log) if "train_runtime" in r)
    tokens = args.steps * cfg.batch_size * cfg.max_length  # packing fills every row to max_length
    result = {
        "device": torch.cuda.get_device_name(0), "model": "random Llama-2-7B-shaped" if not args.model else model,
        "preset": "seed-llama2-7b-qlora", "steps": args.steps, "train_runtime_s": final["train_runtime"],
        "seconds_per_step": final["train_runtime"] / args.steps,
        "tokens_per_second": tokens / final["train_runtime"],
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "build_model_s": round(build_s, 1), "stage_wall_s": round(seconds, 1),
        "losses": [r["loss"] for r in log if "loss" in r][:3] + ["..."],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
