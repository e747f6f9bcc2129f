"""Batched greedy answers: the one generation function behind `ask`, `evaluate` and `run`.

Left padding, batches of similar length (sorted), greedy decoding, each row stopped at EOS or at the next
`###` / newline (the answer ends there in every prompt style we train), prompt stripped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from korquad_tune.prompts import DEFAULT_TEMPLATE, PromptTemplate, get_template

STOP_STRINGS = ("###", "\n")
_STOP_RE = re.compile("|".join(re.escape(s) for s in STOP_STRINGS))


def cut_at_stop(text: str) -> str:
    """The answer is everything before the first stop string, trimmed."""
    return _STOP_RE.split(text, maxsplit=1)[0].strip()


def generate_answers(model, tokenizer, questions: Sequence[str], template: PromptTemplate | str = DEFAULT_TEMPLATE,
                     batch_size: int = 16, max_new_tokens: int = 32,
                     progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy answers for `questions`, in input order. `progress(n)` is called after each batch of n."""
    if isinstance(template, str):
        template = get_template(template)
    return generate_from_prompts(model, tokenizer, [template.prompt(q, tokenizer) for q in questions],
                                 batch_size, max_new_tokens, progress)


def generate_from_prompts(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, max_new_tokens: int = 32,
                          progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuations of ready-made prompts, cut at the first stop string, in input order."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = [len(tokenizer(p, add_special_tokens=True).input_ids) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    device = next(model.parameters()).device
    answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                        return_token_type_ids=False).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 stop_strings=list(STOP_STRINGS), tokenizer=tokenizer,
                                 pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        new_tokens = out[:, enc.input_ids.shape[1]:]
        for row, i in enumerate(idx):
            answers[i] = cut_at_stop(tokenizer.decode(new_tokens[row], skip_special_tokens=True))
        if progress:
            progress(len(idx))
    return answers


def original_gen(model, tokenizer, question: str, template: PromptTemplate | str = DEFAULT_TEMPLATE,
                 max_new_tokens: int = 128) -> str:
    """The original notebook's `gen()`: one question, no stop rule, 128 new tokens (benchmark baseline)."""
    import torch

    if isinstance(template, str):
        template = get_template(template)
    prompt = template.prompt(question, tokenizer)
    enc = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False).to(next(model.parameters()).device)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
    return tokenizer.decode(out[0], skip_special_tokens=True).replace(prompt, "")
