"""The training loss at the positions that carry it, without the (positions x vocabulary) logits.

Gemma 3's output layer has 262k rows. A batch of paragraph text (`passage_text`: loss on every token) has ~1,000-2,000
loss positions, so its logits are 0.5-1 GB in bf16 and twice that in fp32 for the cross-entropy, and the softmax's
gradient as much again: on two cores a step spent more time allocating and walking those tensors than in matmuls.
`fused_cross_entropy` runs the output layer and the cross-entropy a few hundred positions at a time and computes the
hidden states' gradient in the same pass (the loss is a scalar, so backward only scales it): the same matmuls in the
same dtypes, the same loss and gradients to float rounding, 2.7x faster on 2,000 positions (BENCHMARKS 4d).

trl 1.16 has the same idea (`trl.kernels.ChunkedLogProbFunction`, behind `add_fused_lm_head`), tiled over the
vocabulary for GPUs; on these CPUs it was 1.6-3.3x slower than materialising the logits (`bench/loss_head.py`), so
the project keeps this one (config `loss_head: fused`; `positions` materialises the logits, `trl` uses TRL's head).
"""

from __future__ import annotations

import torch

ROWS_PER_CHUNK = 256  # 256 x 262k fp32 logits = 268 MB at a time; 64 was slower (more, smaller matmuls)


class LossPositionsHead:
    """Patches the output layer so that it runs only at positions that carry loss.

    While `keep` (a (batch, time) mask) is set, the head's input at those positions is what the loss needs. With
    `fused` the head records it (`hidden`) and returns a (N, 1) placeholder, so that the model's own forward, and
    whatever it does after the head, still run (DDP and accelerate hooks) but no logits are made; the caller computes
    the loss from `hidden` with `fused_cross_entropy`. Otherwise it returns the (N, vocab) logits of those positions.
    Patching the instance (not replacing the module) keeps state-dict keys, so checkpoints and adapters are unchanged.
    """

    def __init__(self, head, fused: bool):
        self.head = head
        self.fused = fused
        self.keep = None
        self.hidden = None
        self._orig = head.forward
        head.forward = self._forward

    def _forward(self, hidden, *args, **kwargs):
        if self.keep is not None and hidden.dim() == 3 and hidden.shape[:2] == self.keep.shape:
            hidden = hidden[self.keep]
            if self.fused:
                self.hidden = hidden
                return hidden.new_zeros((hidden.shape[0], 1))
        return self._orig(hidden, *args, **kwargs)

    def restore(self):
        self.head.forward = self._orig


def find_output_head(model):
    """The causal LM's output layer and config, through DDP, PEFT and the model wrappers."""
    inner = model
    for attr in ("module", "base_model", "model"):  # DDP -> peft -> causal LM
        while hasattr(inner, attr) and not hasattr(inner, "lm_head"):
            inner = getattr(inner, attr)
    return getattr(inner, "lm_head", None), getattr(inner, "config", None)


def is_plain_linear(head) -> bool:
    """A torch Linear, or PEFT's trainable copy of one (`modules_to_save`): `head.weight` is what its forward uses."""
    return isinstance(head, torch.nn.Linear) or isinstance(getattr(head, "original_module", None), torch.nn.Linear)


def fused_cross_entropy(hidden, weight, bias, targets, softcap: float | None = None, rows: int = ROWS_PER_CHUNK):
    """Mean cross-entropy of `softcap(hidden @ weight.T + bias)` against `targets`, as `F.cross_entropy` of the
    materialised logits gives it: the matmuls in the autocast dtype (or the hidden states' dtype without autocast),
    the softmax in fp32."""
    return _FusedLinearCrossEntropy.apply(hidden, weight, bias, targets, softcap, rows)


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, softcap, rows):
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        w = weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        wide = torch.promote_types(dtype, torch.float32)  # the softmax and the sums: fp32 at least
        n = hidden.shape[0]
        grad_hidden = torch.empty(hidden.shape, dtype=dtype, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=wide, device=weight.device) \
            if weight.requires_grad else None
        grad_bias = torch.zeros(bias.shape, dtype=wide, device=bias.device) \
            if bias is not None and bias.requires_grad else None
        total = torch.zeros((), dtype=wide, device=hidden.device)
        with torch.autocast(device, enabled=False):
            for start in range(0, n, rows):
                h = hidden[start:start + rows].to(dtype)
                t = targets[start:start + rows]
                picked = torch.arange(len(t), device=t.device), t
                narrow = h @ w.t() if b is None else torch.addmm(b, h, w.t())
                logits = narrow if dtype == wide else narrow.to(wide)
                if softcap:
                    capped = torch.tanh(logits / softcap)
                    logits = torch.mul(capped, softcap, out=logits)
                top = logits.amax(-1, keepdim=True)
                target_logits = logits[picked]
                # in place from here on: each pass over (rows x 262k) numbers costs as much as a matmul on 2 cores
                exps = logits.sub_(top).exp_()
                sums = exps.sum(-1, keepdim=True)
                total += (sums.log() + top).squeeze(1).sum() - target_logits.sum()
                # d(mean loss)/d(logits) = (softmax - one-hot) / n, written over the logits
                grad = exps.div_(sums * n)
                grad[picked] -= 1 / n
                if softcap:
                    grad *= 1 - capped * capped
                grad = grad if dtype == wide else narrow.copy_(grad)
                torch.mm(grad, w, out=grad_hidden[start:start + rows])
                if grad_weight is not None:
                    grad_weight += (grad.t() @ h).to(wide)
                if grad_bias is not None:
                    grad_bias += grad.to(wide).sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = hidden.dtype, weight.dtype, None if bias is None else bias.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        hidden_dtype, weight_dtype, bias_dtype = ctx.dtypes
        scale = lambda g, dtype: None if g is None else (g.to(torch.promote_types(g.dtype, torch.float32)) * grad_loss).to(dtype)  # noqa: E731
        return (scale(grad_hidden, hidden_dtype), scale(grad_weight, weight_dtype), scale(grad_bias, bias_dtype),
                None, None, None)
