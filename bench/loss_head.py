"""The output layer + cross-entropy of one training step, three ways, on Gemma 3 270M's real output layer under CPU
bf16 autocast (as `train` runs it on a CPU with native bf16), forward and backward, one process:
- `positions`: the logits of the loss positions made whole, then F.cross_entropy (korquad-tune until session 23);
- `fused`: korquad_tune.loss_head.fused_cross_entropy (256 positions at a time, gradient made in the forward);
- `trl`: trl.kernels.ChunkedLogProbFunction, the kernel of TRL 1.16's fused head (tiled over the vocabulary).
N = loss positions: ~50 is a batch of 8 question rows (answers only), 1,000-2,000 a batch of 8 paragraph pieces.

    python bench/loss_head.py [--positions 48 1000 2000] [--repeats 3] [--out bench/results/loss_head.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def head_weight():
    """Gemma 3 270M's output layer (tied to its embeddings) as `train` holds it under autocast: bf16."""
    from korquad_tune.models import load_base_model, resolve_model
    model = load_base_model(resolve_model("gemma3-270m"), device="cpu")
    return model.get_output_embeddings().weight.detach().to(torch.bfloat16)


def positions_loss(hidden, weight, targets):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.float(), targets)


def fused_loss(hidden, weight, targets):
    from korquad_tune.loss_head import fused_cross_entropy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fused_cross_entropy(hidden, weight, None, targets)


def trl_loss(hidden, weight, targets):
    from trl.kernels import ChunkedLogProbFunction
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs = ChunkedLogProbFunction.apply(hidden, weight, None, targets, 1.0, 32768, None, 1.0, ())[0]
    return -log_probs.mean()


def time_head(loss_fn, hidden, weight, targets, repeats: int):
    """Fastest of `repeats` forward+backward passes; the loss and the hidden states' gradient of the last."""
    times = []
    for _ in range(repeats):
        h = hidden.clone().requires_grad_(True)
        start = time.perf_counter()
        loss = loss_fn(h, weight, targets)
        loss.backward()
        times.append(time.perf_counter() - start)
    return min(times), loss.item(), h.grad


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--positions", type=int, nargs="+", default=[48, 1000, 2000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weight = head_weight()
    rows = []
    for n in args.positions:
        hidden = torch.randn(n, weight.shape[1])
        targets = torch.randint(0, weight.shape[0], (n,))
        base_s, base_loss, base_grad = time_head(positions_loss, hidden, weight, targets, args.repeats)
        row = {"positions": n, "positions_s": round(base_s, 3)}
        for name, fn in (("fused", fused_loss), ("trl", trl_loss)):
            s, loss, grad = time_head(fn, hidden, weight, targets, args.repeats)
            row[f"{name}_s"] = round(s, 3)
            row[f"{name}_speedup"] = round(base_s / s, 2)
            row[f"{name}_loss_difference"] = abs(loss - base_loss)
            row[f"{name}_max_relative_grad_difference"] = ((grad - base_grad).abs().max()
                                                           / base_grad.abs().max()).item()
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        result = {"command": "python bench/loss_head.py " + " ".join(f"--positions {n}" for n in args.positions),
                  "threads": args.threads, "torch": torch.__version__, "rows": rows}
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
