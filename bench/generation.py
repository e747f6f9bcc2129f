"""Generation speed: the original notebook's `gen()` loop against korquad-tune's batched generation.

Same model, same questions (the 85 of the default run), same 2 CPU threads, measured in one process:
- baseline: one question at a time, greedy, max_new_tokens=128, no stop rule (the notebook's `gen()`);
- korquad-tune: `generate_from_prompts` (length-sorted left-padded batches, stop at EOS / `###` / newline,
  max_new_tokens=32), as it runs by default: under bf16 autocast where the CPU has native bf16 matmuls, with
  the frozen weights cast to bf16 once (also timed with them left fp32, autocast casting them at every step).
Both are also timed in plain fp32 (korquad-tune) and under the same autocast (the baseline), so the ratio can be
split into what the batching does and what the autocast does.
Prints questions/second for each and the ratios; `--adapter` measures a fine-tuned model instead of the base,
and, where the adapter has its `answers.json`, also `decoding: learned` (beam search kept to those answers), and
where it has its `questions.json`, `decoding: recall` (the default of `ask`, `evaluate` and `run` since session 16:
the answers of each question's nearest trained questions, each scored whole and the most probable given since
session 20, the BM25 lookups timed too; `recall_beams`: the beam search over them that it replaced) against the
same baseline.

    python bench/generation.py [--model gemma3-270m] [--adapter runs/default/adapters/aug] [--limit 85]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from korquad_tune.generate import BATCH_SIZE, BEAMS, RECALL_K, RECALL_PRIOR, most_probable_answers
from korquad_tune.models import read_learned_answers, read_learned_questions
from korquad_tune.prompts import DEFAULT_TEMPLATE, get_template
from korquad_tune.retrieval import AnswerRecall


def alpaca(questions, tok):
    """The questions in the Alpaca prompt the adapters were trained with."""
    return [get_template("alpaca").prompt(q, tok) for q in questions]


def original_gen(model, tokenizer, question: str, template: str = DEFAULT_TEMPLATE,
                 max_new_tokens: int = 128) -> str:
    """The original notebook's `gen()`: one question, no stop rule, 128 new tokens (benchmark baseline)."""
    template = get_template(template)
    prompt = template.prompt(question, tokenizer)
    enc = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False).to(next(model.parameters()).device)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
    return tokenizer.decode(out[0], skip_special_tokens=True).replace(prompt, "")


def main() -> None:
    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.generate import generate_from_prompts
    from korquad_tune.models import cast_frozen_to_bf16, cpu_has_native_bf16, load_model_with_adapters

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--adapter", default=None)
    p.add_argument("--limit", type=int, default=85)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    records, _ = parse_squad(shipped_dev_path(), articles=3)
    questions = [r["question"] for r in records][: args.limit]
    model, tok, names = load_model_with_adapters(args.model, [args.adapter] if args.adapter else None)
    if names:
        model.set_adapter(names[0])
    generate_from_prompts(model, tok, alpaca(questions[:2], tok))  # warm-up, untimed

    prompts = alpaca(questions, tok)

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    fp32, ours_fp32_s = timed(lambda: generate_from_prompts(model, tok, prompts, batch_size=args.batch_size,
                                                             max_new_tokens=32, bf16=False))
    baseline, base_s = timed(lambda: [original_gen(model, tok, q, max_new_tokens=128) for q in questions])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, base_bf16_s = timed(lambda: [original_gen(model, tok, q, max_new_tokens=128) for q in questions])
    autocast_only = None
    if cpu_has_native_bf16():  # as `evaluate` runs: autocast, frozen weights cast to bf16 once
        autocast_only = timed(lambda: generate_from_prompts(model, tok, prompts, batch_size=args.batch_size,
                                                             max_new_tokens=32, bf16=True))
        cast_frozen_to_bf16(model)
    batched, ours_s = timed(lambda: generate_from_prompts(model, tok, prompts, batch_size=args.batch_size,
                                                           max_new_tokens=32))
    learned = read_learned_answers(args.adapter) if args.adapter else None
    kept = recalled = recalled_beams = None
    if learned:
        kept = timed(lambda: generate_from_prompts(model, tok, prompts, batch_size=args.batch_size,
                                                   max_new_tokens=32, answers=learned, num_beams=BEAMS))
    asked = read_learned_questions(args.adapter) if args.adapter else None
    if asked:  # the default decoding: each question's beams kept to its nearest questions' answers
        index = AnswerRecall(asked["questions"], asked["study"])  # built once per process, as `Systems` does

        def recall_beams():
            per_prompt = index.candidates(questions, RECALL_K)  # the lookups are timed
            return generate_from_prompts(model, tok, prompts, batch_size=args.batch_size, max_new_tokens=32,
                                         answers=learned, num_beams=BEAMS, answers_per_prompt=per_prompt)

        def recall():  # as `Systems` answers by default
            per_prompt = index.candidates(questions, RECALL_K)
            priors = index.priors(questions, RECALL_PRIOR)
            return most_probable_answers(model, tok, prompts, per_prompt, priors)
        recalled_beams = timed(recall_beams)
        recalled = timed(recall)

    n = len(questions)
    result = {"model": args.model, "adapter": args.adapter, "questions": n,
              "threads": args.threads, "batch_size": args.batch_size, "cpu_native_bf16": cpu_has_native_bf16(),
              "baseline_gen_q_per_s": n / base_s, "korquad_tune_q_per_s": n / ours_s,
              "speedup": base_s / ours_s,
              "korquad_tune_fp32_q_per_s": n / ours_fp32_s, "speedup_fp32_only": base_s / ours_fp32_s,
              "baseline_gen_bf16_autocast_q_per_s": n / base_bf16_s, "speedup_same_autocast": base_bf16_s / ours_s,
              "answers_changed_by_autocast": sum(a != b for a, b in zip(batched, fp32)),
              **({"korquad_tune_autocast_fp32_weights_q_per_s": n / autocast_only[1],
                  "answers_changed_by_frozen_cast": sum(a != b for a, b in zip(batched, autocast_only[0]))}
                 if autocast_only else {}),
              **({"korquad_tune_learned_q_per_s": n / kept[1], "speedup_learned": base_s / kept[1],
                  "beams": BEAMS, "learned_answers": len(learned),
                  "answers_changed_by_learned": sum(a != b for a, b in zip(batched, kept[0]))} if kept else {}),
              **({"korquad_tune_recall_q_per_s": n / recalled[1], "speedup_recall": base_s / recalled[1],
                  "recall_k": RECALL_K, "recall_prior": RECALL_PRIOR,
                  "answers_changed_by_recall": sum(a != b for a, b in zip(batched, recalled[0])),
                  "korquad_tune_recall_beams_q_per_s": n / recalled_beams[1],
                  "speedup_recall_beams": base_s / recalled_beams[1],
                  "answers_changed_by_recall_beams": sum(a != b for a, b in zip(batched, recalled_beams[0]))}
                 if recalled else {}),
              "baseline_s": base_s, "korquad_tune_s": ours_s,
              "example": {"question": questions[0], "baseline": baseline[0][:120], "korquad_tune": batched[0]}}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=2)


if __name__ == "__main__":
    main()
