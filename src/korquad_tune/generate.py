"""Batched greedy answers: the one generation function behind `ask`, `evaluate`, `run` and `serve`.

Left padding, batches of similar length (sorted), greedy decoding, each row stopped at EOS or at the next
`###` / newline (the answer ends there in every prompt style we train), prompt stripped. On a CPU with native
bf16 matmuls the fp32 model runs under bf16 autocast, as training does there. A closed-book adapter can be kept to
the answers it learned: beam search over a token trie of them (`answers`), a whole known answer or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence


STOP_STRINGS = ("###", "\n")
MAX_NEW_TOKENS = 24  # answer budget: KorQuAD answers are short phrases (the longest default gold is 15 tokens)
BATCH_SIZE = 48  # questions per generation batch (on 2 cores 48 answers 1.7x faster than 16, BENCHMARKS 5)
# closed-book adapters: only answers of the trained questions nearest the asked one, any answer they were trained
# on, or any text
DECODINGS = ("recall", "learned", "free")
DEFAULT_DECODING = "recall"
BEAMS = 2  # beams over the learned answers (4 gained nothing more: BENCHMARKS 5b)
RECALL_K = 3  # decoding: recall: answers of the k nearest trained questions, and of the k nearest with study ones
# decoding: recall: the nearest trained question's answer counts e^5 ~ 150x likelier than the model alone says
# (BENCHMARKS 5k: over seven slices 139 of 171 human rephrasings right instead of 132 at 2 nats, 34 of 118 unseen
# facts instead of 35; 5g chose 2 on five)
RECALL_PRIOR = 5.0
# ... and the answer of the question nearest among trained and study questions (each also found by its sentence)
# e^4 likelier: an unseen fact is nearest a study question that asks it (BENCHMARKS 5o: over thirteen run folders
# 184 of 213 rephrasings and 38 of 140 unseen facts right instead of 181 and 35; the default articles lose one)
RECALL_STUDY_PRIOR = 4.0
# ... and the trained vote left out where, once the study questions join, the best trained question scores under half
# the best question's: the asked fact is far nearer one no trained question asks (BENCHMARKS 5q, 5r: out of sample
# +1 unseen fact on session 32's three new slices and on session 33's first, nothing lost on any folder)
RECALL_TRAINED_SHARE = 0.5
SCORE_ROWS = 64  # (prompt, answer) rows per forward when answers are scored whole
_STOP_RE = re.compile("|".join(re.escape(s) for s in STOP_STRINGS))


def cut_at_stop(text: str) -> str:
    """The answer is everything before the first stop string, trimmed."""
    return _STOP_RE.split(text, maxsplit=1)[0].strip()


def generate_from_prompts(model, tokenizer, prompts: Sequence[str], batch_size: int = BATCH_SIZE,
                          max_new_tokens: int = MAX_NEW_TOKENS,
                          progress: Callable[[int], None] | None = None, shared_prefix: bool = True,
                          bf16: bool | None = None, answers: Sequence[str] | None = None,
                          num_beams: int = 1, length_penalty: float = 1.0,
                          answers_per_prompt: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Greedy continuations of ready-made prompts, cut at the first stop string, in input order; with `answers`,
    beam search (`num_beams`) in which every beam continues one of those answers, as training tokenised them;
    with `answers_per_prompt`, the same with each prompt's own list of answers.

    Prompts are tokenised once and sorted by length; the head every prompt shares (the template's preamble) is
    run through the model once per call and its keys/values reused by every batch, each row left-padded after it.
    `bf16`: autocast an fp32 model on CPU (None: where the CPU has native bf16 matmuls; always for a model
    whose frozen weights `cast_frozen_to_bf16` made bf16)."""
    import copy

    import torch

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = [tokenizer(p, add_special_tokens=True).input_ids for p in prompts]
    prefix = common_prefix_length(ids) if shared_prefix and len(ids) > 1 else 0
    order = sorted(range(len(prompts)), key=lambda i: (len(ids[i]), i))
    device = next(model.parameters()).device
    autocast = _cpu_autocast(model, bf16)
    head_cache = None
    if prefix:
        with torch.inference_mode(), autocast:
            head_cache = model(input_ids=torch.tensor([ids[0][:prefix]], device=device), use_cache=True).cache
    tokens: dict[str, list[int]] = {}
    if answers_per_prompt is not None:
        tries = [answer_trie(tokenizer, a, tokens) for a in answers_per_prompt]
    else:
        tries = [answer_trie(tokenizer, answers, tokens)] * len(prompts) if answers else None
    out_answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        input_ids, attention_mask = _left_padded([ids[i] for i in idx], prefix, tokenizer.pad_token_id, device)
        cache = None
        if head_cache is not None:
            cache = copy.deepcopy(head_cache)
            cache.batch_repeat_interleave(len(idx) * num_beams)
        allowed = _allowed_tokens([tries[i] for i in idx], input_ids.shape[1], tokenizer.eos_token_id) \
            if tries else None
        with torch.inference_mode(), autocast:
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                                 prefix_allowed_tokens_fn=allowed,
                                 max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                                 length_penalty=length_penalty,
                                 stop_strings=list(STOP_STRINGS), tokenizer=tokenizer,
                                 pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        new_tokens = out[:, input_ids.shape[1]:]
        for row, i in enumerate(idx):
            out_answers[i] = cut_at_stop(tokenizer.decode(new_tokens[row], skip_special_tokens=True))
        if progress:
            progress(len(idx))
    return out_answers


def _cpu_autocast(model, bf16: bool | None):
    """bf16 autocast for an fp32 model on a CPU with native bf16 matmuls (`bf16` None: decide so), and always for a
    model whose frozen weights `cast_frozen_to_bf16` made bf16; otherwise a no-op context."""
    from contextlib import nullcontext

    import torch

    from korquad_tune.models import cpu_has_native_bf16
    device = next(model.parameters()).device
    if bf16 is None:
        bf16 = device.type == "cpu" and next(model.parameters()).dtype == torch.float32 and cpu_has_native_bf16()
    bf16 = bf16 or getattr(model, "bf16_frozen", False)  # its frozen weights are bf16: it only runs under autocast
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 and device.type == "cpu" else nullcontext()


def answer_log_probs(model, tokenizer, prompts: Sequence[str], answers_per_prompt: Sequence[Sequence[str]],
                     rows_per_batch: int = SCORE_ROWS, progress: Callable[[int], None] | None = None,
                     bf16: bool | None = None) -> list[dict[str, float]]:
    """For each prompt, each of its answers' log P(answer, EOS | prompt), summed over the answer's tokens as
    training tokenised them.

    The head every prompt shares runs once per call; then prompts run in groups of at most `rows_per_batch`
    (prompt, answer) rows: each prompt once (its last position predicts every answer's first token), then its
    answers as rows that attend to the prompt's keys/values — a question offered 6 answers is read once, not 6
    times. The output layer runs only at positions that predict an answer token (Gemma's 262k-word head costs more
    than the rest of a position)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone, head = getattr(base, base.base_model_prefix), base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    offered = [list(dict.fromkeys(answers)) for answers in answers_per_prompt]
    asked = [i for i, answers in enumerate(offered) if answers]
    scores: list[dict[str, float]] = [{} for _ in prompts]
    if progress and len(asked) < len(prompts):
        progress(len(prompts) - len(asked))  # prompts offered no answer
    if not asked:
        return scores
    prompt_ids = {i: tokenizer(prompts[i], add_special_tokens=True).input_ids for i in asked}
    answer_ids = {a: tokenizer(a, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
                  for i in asked for a in offered[i]}
    prefix = common_prefix_length([prompt_ids[i] for i in asked], minimum=1)
    device = next(model.parameters()).device
    with torch.inference_mode(), _cpu_autocast(model, bf16):
        head_cache = backbone(input_ids=torch.tensor([prompt_ids[asked[0]][:prefix]], device=device),
                              use_cache=True).cache if prefix else None
        for group in _prompt_groups(sorted(asked, key=lambda i: len(prompt_ids[i])), offered, rows_per_batch):
            prompt_cache, prompt_mask, first = _read_prompts(backbone, head, softcap, head_cache, prefix,
                                                             [prompt_ids[i] for i in group], tokenizer, device)
            rows = [(g, a) for g, i in enumerate(group) for a in offered[i]]
            for start in range(0, len(rows), rows_per_batch):
                chunk = rows[start:start + rows_per_batch]
                rest = _answer_rest_log_probs(backbone, head, softcap, prompt_cache, prompt_mask,
                                              [(g, answer_ids[a]) for g, a in chunk],
                                              [len(prompt_ids[group[g]]) for g, _ in chunk], tokenizer, device)
                for (g, a), later in zip(chunk, rest):
                    scores[group[g]][a] = float(first[g, answer_ids[a][0]]) + later
            if progress:
                progress(len(group))
    return scores


def _prompt_groups(order: list[int], offered: Sequence[Sequence[str]], rows: int) -> list[list[int]]:
    """Consecutive prompts whose answers together make at most `rows` rows (a prompt with more answers alone)."""
    groups: list[list[int]] = []
    size = 0
    for i in order:
        if groups and size + len(offered[i]) <= rows:
            groups[-1].append(i)
            size += len(offered[i])
        else:
            groups.append([i])
            size = len(offered[i])
    return groups


def _read_prompts(backbone, head, softcap, head_cache, prefix: int, ids: list[list[int]], tokenizer, device):
    """The prompts after the shared head, right-padded, through the backbone once: their keys/values (head
    included), the attention mask over them, and the log-probabilities at each prompt's last position."""
    import copy

    import torch
    width = max(len(r) for r in ids) - prefix
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(ids), prefix + width), dtype=torch.long)
    mask[:, :prefix] = 1
    for b, r in enumerate(ids):
        input_ids[b, :len(r) - prefix] = torch.tensor(r[prefix:])
        mask[b, prefix:len(r)] = 1
    cache = None
    if head_cache is not None:
        cache = copy.deepcopy(head_cache)
        cache.batch_repeat_interleave(len(ids))
    positions = torch.arange(prefix, prefix + width).expand(len(ids), -1)
    out = backbone(input_ids=input_ids.to(device), attention_mask=mask.to(device), cache=cache,
                   position_ids=positions.to(device), use_cache=True)
    last = out.last_hidden_state[torch.arange(len(ids)), torch.tensor([len(r) - prefix - 1 for r in ids])]
    logits = head(last).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return out.cache, mask, torch.log_softmax(logits, -1)


def _answer_rest_log_probs(backbone, head, softcap, prompt_cache, prompt_mask, rows: list[tuple[int, list[int]]],
                           prompt_lengths: list[int], tokenizer, device) -> list[float]:
    """For each (prompt row in the cache, answer ids) row: log P(answer tokens after the first | prompt, first
    tokens), the answer (less its last token) run against a copy of its prompt's keys/values."""
    import copy

    import torch
    width = max(len(a) for _, a in rows) - 1
    if width == 0:  # one-token answers (EOS alone): the prompt's last position predicted everything
        return [0.0] * len(rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(rows), prompt_mask.shape[1] + width), dtype=torch.long)
    predicts = torch.zeros((len(rows), width), dtype=torch.bool)  # position t predicts token t+1
    for b, (g, a) in enumerate(rows):
        ids[b, :len(a) - 1] = torch.tensor(a[:-1])
        mask[b, :prompt_mask.shape[1]] = prompt_mask[g]
        mask[b, prompt_mask.shape[1]:prompt_mask.shape[1] + len(a) - 1] = 1
        predicts[b, :len(a) - 1] = True
    cache = copy.deepcopy(prompt_cache)
    cache.batch_select_indices(torch.tensor([g for g, _ in rows], device=device))
    positions = torch.tensor(prompt_lengths)[:, None] + torch.arange(width)[None, :]
    hidden = backbone(input_ids=ids.to(device), attention_mask=mask.to(device), cache=cache,
                      position_ids=positions.to(device), use_cache=False).last_hidden_state
    targets = torch.tensor([t for _, a in rows for t in a[1:]], device=device)
    logp = _target_log_probs(head, hidden[predicts.to(device)], targets, softcap)
    out, at = [], 0
    for _, a in rows:
        out.append(sum(logp[at:at + len(a) - 1]))
        at += len(a) - 1
    return out


def _target_log_probs(head, hidden, targets, softcap: float | None, positions: int = 512) -> list[float]:
    """log P(target) at each hidden state, the output layer run `positions` at a time (a 262k-word row of fp32
    logits is 1 MB: long answers in a batch of 64 would otherwise hold gigabytes)."""
    import torch
    out: list[float] = []
    for at in range(0, len(targets), positions):
        logits = head(hidden[at:at + positions]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        picked = logits.gather(1, targets[at:at + positions, None])[:, 0] - torch.logsumexp(logits, -1)
        out += picked.tolist()
    return out


def most_probable_answers(model, tokenizer, prompts: Sequence[str], answers_per_prompt: Sequence[Sequence[str]],
                          priors: Sequence[dict[str, float]] | None = None, **kwargs) -> list[str]:
    """For each prompt, the one of its answers with the highest log P(answer, EOS | prompt) plus its prior in nats
    (`priors`; the first offered wins a tie), or "" where none is offered. Exact where beam search over a trie of
    the answers is not: a beam dropped at the first token never comes back, and beam scores are divided by length
    (BENCHMARKS 5g)."""
    scores = answer_log_probs(model, tokenizer, prompts, answers_per_prompt, **kwargs)
    best = []
    for i, answers in enumerate(answers_per_prompt):
        prior = priors[i] if priors else {}
        best.append(max(dict.fromkeys(answers), key=lambda a: scores[i][a] + prior.get(a, 0.0), default=""))
    return best


def answer_trie(tokenizer, answers: Sequence[str], tokens: dict[str, list[int]] | None = None) -> dict:
    """The answers as training tokenised them (answer tokens, then EOS), in a token trie. `tokens`: a cache of
    answer -> token ids shared between tries."""
    tokens = {} if tokens is None else tokens
    root: dict = {}
    for answer in set(answers):
        if answer not in tokens:
            tokens[answer] = tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        node = root
        for token in tokens[answer]:
            node = node.setdefault(token, {})
    return root


def _allowed_tokens(tries: list[dict], start: int, eos_id: int):
    """`generate`'s prefix_allowed_tokens_fn: each row may only continue one of its trie's answers (then stop).
    `generate` passes the row's index in the batch (the same for each of its beams)."""
    def allowed(row: int, sequence) -> list[int]:
        node = tries[row]
        for token in sequence[start:].tolist():
            node = node.get(token)
            if node is None:
                return [eos_id]  # the row has ended (EOS, then padding)
        return list(node) or [eos_id]
    return allowed


def common_prefix_length(ids: Sequence[Sequence[int]], minimum: int = 4) -> int:
    """Tokens every sequence starts with, leaving at least one of its own to each (0 below `minimum`)."""
    n = min(len(x) for x in ids) - 1
    first = ids[0]
    for k in range(n):
        if any(x[k] != first[k] for x in ids):
            n = k
            break
    return n if n >= minimum else 0


def _left_padded(rows: list[list[int]], prefix: int, pad_id: int, device):
    """[shared head][padding][rest of the row]: the padding sits after the cached head, masked out."""
    import torch
    width = max(len(r) for r in rows) - prefix
    input_ids = torch.full((len(rows), prefix + width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, r in enumerate(rows):
        rest = r[prefix:]
        input_ids[row, :prefix] = torch.tensor(r[:prefix], dtype=torch.long)
        input_ids[row, prefix + width - len(rest):] = torch.tensor(rest, dtype=torch.long)
        mask[row, :prefix] = 1
        mask[row, prefix + width - len(rest):] = 1
    return input_ids.to(device), mask.to(device)
