"""The default preset's CUDA path on a lent GPU: exactness of the shared prompt head and the fused output head
there, training speed with and without each, and batched generation against the notebook's `gen()` loop.

No hub and no Gemma weights reach the lent machines (the 253 MB GGUF is over what travels), so the model is
**Gemma-3-270M-shaped with random weights** and Gemma's real tokenizer (262k vocabulary: the output head costs
what it costs with the real model): build it with `--shape-of` a folder holding the real model's config.json and
tokenizer files (the builtin's converted folder, or a copy of those files without the weights). The loss means
nothing; the code path and the cost are the real ones. The data are the default run's (3 articles, shipped
paraphrases); the `passages` and `reader` adapters are not trained (their material needs Kiwi's 105 MB model).

    python bench/gpu_check.py --shape-of ~/.cache/korquad-tune/models/gemma3-270m --out bench/results/gpu_check.json

On a lent machine (session 25, BENCHMARKS 6b): wheels of transformers, trl, peft, accelerate, datasets, dill,
multiprocess, huggingface_hub, kernels, httpx2, httpcore2, truststore, click, hf-xet, tomlkit, fsspec, pydantic(-core),
bm25s, gguf and bitsandbytes (its CUDA 13 libraries only, 43 -> 9 MB) in an ignored `.whl/`; the shape folder as
`.gpu/gemma3-270m-shape/` (config.json, generation_config.json, tokenizer_config.json, tokenizer.json xz'd to 3.4
MB); both carried; there `pip install --no-deps --target /tmp/site .whl/*.whl`, PYTHONPATH=/tmp/site:src,
HF_HUB_OFFLINE=1, the tokenizer unpacked, then `python bench/gpu_check.py --shape-of .gpu/gemma3-270m-shape --steps 40`
and `python bench/gpu_qlora.py --steps 60` (about 2.5 + 1.5 minutes on an H200).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

SHAPE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def build_random_like(shape_of: Path, out: Path, device: str) -> Path:
    """A model with `shape_of`'s config and tokenizer and random weights, saved as a local model folder."""
    from transformers import AutoConfig, AutoModelForCausalLM
    if (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in SHAPE_FILES:
        if (shape_of / name).exists():
            shutil.copy(shape_of / name, out / name)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out)).to(torch.bfloat16)
    model.save_pretrained(out)
    return out


def loss_and_lora_grads(model_dir: str, device: str, shared_prefix: bool, fused_head: bool, rows: int = 8):
    """Loss and LoRA gradients of one batch of default-run prompts (fp32, LoRA B made non-zero, no dropout)."""
    from trl import SFTConfig

    from korquad_tune.config import load_train_config
    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import load_base_model, load_tokenizer, resolve_model
    from korquad_tune.prompts import get_template
    from korquad_tune.train import _lora_config, build_dataset, make_trainer_class, shared_prefix_length
    torch.manual_seed(0)
    resolved = resolve_model(model_dir)
    tok = load_tokenizer(resolved)
    records, _ = parse_squad(shipped_dev_path(), articles=3)
    ds = build_dataset(tok, get_template("alpaca"), [(r["question"], r["answers"][0]) for r in records[:rows]], 256)
    args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=rows, use_cpu=device == "cpu",
                     report_to="none", gradient_checkpointing=False,  # as train() on CPU: shared prefix on
                     completion_only_loss=True, max_length=256, disable_tqdm=True)
    cfg = load_train_config("cpu-default", {"lora_dropout": 0.0})
    model = load_base_model(resolved, device=device).float()
    trainer = make_trainer_class()(model=model, args=args, train_dataset=ds, processing_class=tok,
                                   peft_config=_lora_config(cfg), shared_prefix=shared_prefix, fused_head=fused_head)
    for n, p in trainer.model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    grads = {n: p.grad.float().cpu() for n, p in trainer.model.named_parameters() if p.grad is not None}
    prefix = shared_prefix_length(batch["input_ids"], batch["labels"])
    return loss.item(), grads, prefix


def compare(a, b) -> dict:
    """Relative loss difference and the worst LoRA gradient difference relative to that gradient's size."""
    worst = max(((ga - b[1][n]).abs().max() / ga.abs().max().clamp_min(1e-30)).item() for n, ga in a[1].items())
    return {"loss": a[0], "other_loss": b[0], "loss_rel_diff": abs(a[0] - b[0]) / abs(a[0]),
            "worst_grad_rel_diff": worst, "lora_tensors": len(a[1]), "same_tensors": a[1].keys() == b[1].keys()}


def make_step_clock():
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """Wall seconds of each optimizer step (the GPU synchronised at each end)."""

        def __init__(self):
            self.seconds, self._t = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            sync()
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.seconds.append(time.perf_counter() - self._t)
    return StepClock


def seconds_per_step(run: Path, model_dir: str, steps: int, name: str, **overrides) -> dict:
    """Train the default preset's `aug` adapter for `steps` steps; s/step from the trainer's own runtime."""
    from korquad_tune.config import load_train_config
    from korquad_tune.train import train
    cfg = load_train_config("cpu-default", {"model": model_dir, "save_steps": 10_000, "logging_steps": 10,
                                             **overrides})
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    clock = make_step_clock()()
    adapter = train(run, cfg, name=name, augment=True, max_steps=steps, callbacks=[clock])
    log = [json.loads(line) for line in (adapter / "train_log.jsonl").read_text().splitlines()]
    final = next(r for r in reversed(log) if "train_runtime" in r)
    return {"steps": steps, "seconds_per_step": final["train_runtime"] / steps,
            "median_step_s_after_5": statistics.median(clock.seconds[5:]), "overrides": overrides,
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            "losses": [r["loss"] for r in log if "loss" in r][:3], "adapter": str(adapter)}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def generation(model_dir: str, adapter: str, limit: int) -> dict:
    """Batched generation (as `evaluate` without `recall`) against the notebook's loop, same adapter, one process."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from generation import alpaca, original_gen

    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.generate import generate_from_prompts
    from korquad_tune.models import load_model_with_adapters
    records, _ = parse_squad(shipped_dev_path(), articles=3)
    questions = [r["question"] for r in records][:limit]
    model, tok, names = load_model_with_adapters(model_dir, [adapter])
    model.set_adapter(names[0])
    prompts = alpaca(questions, tok)
    generate_from_prompts(model, tok, prompts[:2])  # warm-up
    sync()
    t = time.perf_counter()
    generate_from_prompts(model, tok, prompts, max_new_tokens=32)
    sync()
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for q in questions:
        original_gen(model, tok, q, max_new_tokens=32)  # the same token budget: a random model never stops
    sync()
    base = time.perf_counter() - t
    return {"questions": len(questions), "max_new_tokens": 32, "batched_q_per_s": len(questions) / ours,
            "gen_loop_q_per_s": len(questions) / base, "speedup": base / ours}


def main() -> None:
    from korquad_tune.augment import augment
    from korquad_tune.data import prepare

    p = argparse.ArgumentParser()
    p.add_argument("--shape-of", required=True, help="folder with the real model's config.json and tokenizer")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--questions", type=int, default=40)
    p.add_argument("--work", default="/tmp/korquad-gpu-check")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(args.work)
    model_dir = str(build_random_like(Path(args.shape_of).expanduser(), work / "random-like", device))
    result = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__,
              "model": f"random weights shaped like {args.shape_of}"}

    plain = loss_and_lora_grads(model_dir, device, shared_prefix=False, fused_head=False)
    shared = loss_and_lora_grads(model_dir, device, shared_prefix=True, fused_head=False)
    result["shared_prefix_vs_plain"] = {**compare(plain, shared), "prefix_tokens": shared[2]}
    result["fused_head_vs_logits"] = compare(plain, loss_and_lora_grads(model_dir, device, False, True))
    print(json.dumps(result, indent=2), flush=True)

    run = work / "run"
    prepare(run, articles=3)
    augment(run, backend="shipped")
    variants = {  # the default as it runs on CUDA last: gradient checkpointing on, which turns the shared prefix off
        "no_checkpointing_no_shared_prefix": {"gradient_checkpointing": False, "shared_prefix": False},
        "no_checkpointing_no_shared_prefix_trl_head": {"gradient_checkpointing": False, "shared_prefix": False,
                                                       "loss_head": "trl"},
        "no_checkpointing": {"gradient_checkpointing": False},
        "default": {},
    }
    for name, overrides in variants.items():
        result[f"train_{name}"] = seconds_per_step(run, model_dir, args.steps, f"aug-{name}", **overrides)
        print(name, result[f"train_{name}"]["median_step_s_after_5"], flush=True)
        if args.out:  # what was measured survives a timeout
            Path(args.out).write_text(json.dumps(result, indent=2))
    result["generation"] = generation(model_dir, result["train_default"]["adapter"], args.questions)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
