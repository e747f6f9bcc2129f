"""Gemma 3 270M with a LoRA adapter: one forward and backward under CPU bf16 autocast with the frozen weights
left fp32 (autocast casts them at every use) and after `cast_frozen_to_bf16` (cast once). Prints the seconds of
each, the largest logit difference and the largest relative LoRA-gradient difference (0.0 = bit-identical),
the dtypes of the output layer and input embeddings, and a short generation from the cast model.

    python bench/bf16_frozen.py [--model gemma3-270m]

On a CPU without native bf16 the seconds are those of emulated bf16 (slow) and mean nothing.
"""

from __future__ import annotations

import argparse
import time

import torch


def forward_backward(model, ids) -> tuple[torch.Tensor, dict, float]:
    """Logits and LoRA gradients of one autocast forward/backward, and its seconds."""
    model.zero_grad()
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids).logits
    logits.float().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.float(), grads, time.perf_counter() - started


def main() -> None:
    from peft import LoraConfig, get_peft_model

    from korquad_tune.generate import generate_from_prompts
    from korquad_tune.models import cast_frozen_to_bf16, load_base_model, load_tokenizer, resolve_model

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    model = get_peft_model(load_base_model(resolved, device="cpu"),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.02)  # B starts at zero: make the adapter count
    ids = tok(["노아의 방주가 멈춘 산은?"], return_tensors="pt").input_ids
    model.train()
    logits_fp32, grads_fp32, seconds_fp32 = forward_backward(model, ids)
    cast = cast_frozen_to_bf16(model)
    logits_cast, grads_cast, seconds_cast = forward_backward(model, ids)
    base = model.get_base_model()
    print(f"frozen weights fp32: {seconds_fp32:.2f} s; cast to bf16 once ({cast} weights): {seconds_cast:.2f} s")
    print("output layer", base.get_output_embeddings().weight.dtype, "input embeddings",
          base.get_input_embeddings().weight.dtype)
    print("max logit difference", (logits_fp32 - logits_cast).abs().max().item())
    print("max relative LoRA gradient difference",
          max(((grads_fp32[k] - grads_cast[k]).norm() / (grads_fp32[k].norm() + 1e-12)).item() for k in grads_fp32))
    model.eval()
    print(generate_from_prompts(model, tok, ["### Instruction: 노아의 방주가 멈춘 산은? ### Response: "],
                                max_new_tokens=3))


if __name__ == "__main__":
    main()
