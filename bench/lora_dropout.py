"""LoRA's dropout on CPU: torch's `bernoulli_` mask against `BitsDropout` (korquad_tune/lora_cpu.py), alone and in a
training step's forward + backward.

    python bench/lora_dropout.py [--repeats 9] [--out bench/results/lora_dropout.json]

1. The dropout alone on the input shapes of a question batch's LoRA layers (240 tokens x 640 and x 2048 features):
   torch's F.dropout on fp32 (what PEFT feeds it under autocast) against BitsDropout.
2. Gemma 3 270M with the default LoRA (r 16, all-linear, p 0.05), frozen weights in bf16, under CPU bf16 autocast
   as `train` runs it: the backbone's forward + backward (no output layer: loss_head.py has its own bench) on 8
   real training prompts of the default run (Alpaca template with the answer, padded to 70 tokens: 560 in all), with torch's dropout and PEFT's
   input cast, then with `use_bits_dropout`. The two settings alternate, `--repeats` times each, one process;
   medians and the fastest are reported, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dropout_alone(repeats: int) -> list[dict]:
    import torch
    import torch.nn.functional as F

    from korquad_tune.lora_cpu import BitsDropout
    bits = BitsDropout(0.05).train()
    rows = []
    for features in (640, 2048):
        x = torch.randn(240, features)
        t_torch = median_seconds(lambda: F.dropout(x, 0.05, True), repeats * 10)
        t_bits = median_seconds(lambda: bits(x), repeats * 10)
        rows.append({"shape": [240, features], "torch_us": round(t_torch * 1e6, 1), "bits_us": round(t_bits * 1e6, 1),
                     "ratio": round(t_torch / t_bits, 2)})
        print(rows[-1], flush=True)
    return rows


def training_prompts(n: int = 8):
    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import load_tokenizer, resolve_model
    from korquad_tune.prompts import get_template
    tok = load_tokenizer(resolve_model("gemma3-270m"))
    records, _ = parse_squad(shipped_dev_path(), articles=3)
    template = get_template("alpaca")
    texts = [template.prompt(r["question"], tok) + r["answers"][0] for r in records[:n]]
    return tok(texts, return_tensors="pt", padding=True)


def backbone_step(repeats: int) -> dict:
    import torch
    from peft import get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    from korquad_tune.config import load_train_config
    from korquad_tune.lora_cpu import use_bits_dropout
    from korquad_tune.models import cast_frozen_to_bf16, load_base_model, resolve_model
    from korquad_tune.train import _lora_config
    torch.manual_seed(0)
    cfg = load_train_config("cpu-default", {})
    model = get_peft_model(load_base_model(resolve_model(cfg.model), device="cpu"), _lora_config(cfg))
    cast_frozen_to_bf16(model)
    model.train()
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    torch_dropouts = {id(m): dict(m.lora_dropout) for m in layers}
    use_bits_dropout(model, keep_input_dtype=True)
    bits_dropouts = {id(m): dict(m.lora_dropout) for m in layers}

    def use(setting: str):
        for m in layers:
            chosen = torch_dropouts if setting == "torch" else bits_dropouts
            for name, module in chosen[id(m)].items():
                m.lora_dropout[name] = module
            m.cast_input_dtype_enabled = setting == "torch"

    batch = training_prompts()
    backbone = model.get_base_model().model

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = backbone(**batch).last_hidden_state
            loss = hidden.float().pow(2).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"torch": [], "bits": []}
    for setting in times:
        use(setting)
        step()  # warm-up
    for _ in range(repeats):
        for setting in times:
            use(setting)
            start = time.perf_counter()
            step()
            times[setting].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"tokens": int(batch["input_ids"].numel()), "lora_layers": len(layers),
              "torch_median_s": round(med["torch"], 3), "bits_median_s": round(med["bits"], 3),
              "torch_fastest_s": round(min(times["torch"]), 3), "bits_fastest_s": round(min(times["bits"]), 3),
              "ratio_of_medians": round(med["torch"] / med["bits"], 2),
              "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()}}
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", default="bench/results/lora_dropout.json")
    args = parser.parse_args()
    import torch
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats,
              "dropout_alone": dropout_alone(args.repeats), "backbone_step": backbone_step(args.repeats)}
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
