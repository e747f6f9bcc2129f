"""LoRA's dropout on CPU at a fraction of torch's cost.

PEFT puts a dropout in front of every LoRA layer (126 of them on Gemma 3 270M with `all-linear`), and torch's CPU
dropout draws one 32-bit Mersenne-Twister number per element (`bernoulli_`, ~5 ns each on these cores): 12% of a
question-row training step in a profile, more than the attention. `BitsDropout` draws 64 random bits per 4 elements
and drops an element where 15 of its bits fall below round(p * 32768) — the same Bernoulli mask with p rounded to
1/32768 (0.05 -> 0.04999), kept elements scaled by 1 / (1 - that p), from the same torch generator (so seeds and
resumed checkpoints behave as before). `bench/lora_dropout.py` measures it.

Under bf16 autocast PEFT also casts each LoRA layer's input to fp32 (the adapter's weights are fp32) only for
autocast to cast it back to bf16 for the matmul. With this dropout the cast changes nothing (a bf16 product is
computed in fp32 and rounded once, as the cast-back rounded it), so it is switched off where autocast is on.
CUDA keeps torch's dropout: its generator is fast there.
"""

from __future__ import annotations

import torch

LANE = 32768  # each element's 15 random bits


class BitsDropout(torch.nn.Module):
    """Dropout whose mask comes from 15 random bits per element; p is rounded to a multiple of 1/32768."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.cut = round(p * LANE)
        self.scale = LANE / (LANE - self.cut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        # random_() on int64 fills [0, 2^63): 64 bits whose top one is 0, so each int16 lane keeps 15 of its own
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
        bits = words.view(torch.int16)[:n].view(x.shape)
        return torch.where((bits & (LANE - 1)) >= self.cut, x * self.scale, 0)

    def extra_repr(self) -> str:
        return f"p={self.cut / LANE:.5f}"


def use_bits_dropout(model, keep_input_dtype: bool) -> int:
    """Swap every LoRA layer's torch dropout for `BitsDropout`; with `keep_input_dtype` (bf16 autocast), also stop
    PEFT casting the layer's input to the adapter's fp32. Returns how many dropouts were swapped."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    swapped = 0
    for module in model.modules():
        if not isinstance(module, BaseTunerLayer) or not hasattr(module, "lora_dropout"):
            continue
        for name, dropout in module.lora_dropout.items():
            if isinstance(dropout, torch.nn.Dropout):
                module.lora_dropout[name] = BitsDropout(dropout.p)
                swapped += 1
        if keep_input_dtype:
            module.cast_input_dtype_enabled = False
    return swapped
