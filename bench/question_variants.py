"""Does asking an adapter several offline rewordings of a question, and taking the answer most of them give,
beat asking it once? Paired on the same adapters and questions, so no training seed is involved.

A closed-book adapter answers the wordings it was trained on; other people's wordings of the same fact miss it
(BENCHMARKS 1-3). The `rules` paraphraser rewrites a question the way the adapter's training material is
worded (the wh-word moved into the clause, endings, word order, words left out), so some rewordings of a new
question may land nearer a trained one. This bench answers every held-out question of a run as asked and as
`--k` - 1 rewordings more, and scores the original answer against the majority answer (ties go to the original).

    python bench/question_variants.py RUN ADAPTER [ADAPTER ...] [--k 5] [--sets paraphrased,rephrased,unseen]
                                      [--out bench/results/question_variants.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def vote(answers: list[str]) -> str:
    """The answer most variants gave (KorQuAD-normalised); ties go to the earliest, i.e. the question as asked."""
    from korquad_tune.metrics import normalize_answer
    counts = Counter(normalize_answer(a) for a in answers if a.strip())
    if not counts:
        return answers[0]
    best = max(counts.values())
    return next(a for a in answers if a.strip() and counts[normalize_answer(a)] == best)


def main() -> None:
    import torch

    from korquad_tune.data import load_qa
    from korquad_tune.evaluate import Systems, score_predictions
    from korquad_tune.fileio import iter_jsonl
    from korquad_tune.korean_rules import rule_paraphrases
    from korquad_tune.rundir import RunDir

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("adapters", nargs="+")
    p.add_argument("--k", type=int, default=5, help="questions asked per question: itself + k-1 rewordings")
    p.add_argument("--sets", default="paraphrased,rephrased,unseen")
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    load_qa(run.root)  # fails with the usual message on a folder that is not a prepared run
    sets = {s: [rec for _, rec in iter_jsonl(run.root / f"{s}.jsonl")] for s in args.sets.split(",")
            if (run.root / f"{s}.jsonl").exists()}
    systems = Systems([run.adapter(a) for a in args.adapters])
    results = {}
    for name in args.adapters:
        for set_name, questions in sets.items():
            variants = [[q["question"]] + rule_paraphrases(q["question"], n=args.k - 1) for q in questions]
            flat = [{"question": v} for vs in variants for v in vs]
            answers = systems.answer(name, flat)
            per_q, i = [], 0
            for vs in variants:
                per_q.append(answers[i:i + len(vs)])
                i += len(vs)
            once = {q["id"]: a[0] for q, a in zip(questions, per_q)}
            voted = {q["id"]: vote(a) for q, a in zip(questions, per_q)}
            rows_once, m_once = score_predictions(questions, once)
            rows_vote, m_vote = score_predictions(questions, voted)
            gained = sum(1 for a, b in zip(rows_once, rows_vote) if not a["em"] and b["em"])
            lost = sum(1 for a, b in zip(rows_once, rows_vote) if a["em"] and not b["em"])
            results[f"{name}/{set_name}"] = {
                "n": m_once["n"], "em_once": round(m_once["exact_match"], 1), "em_voted": round(m_vote["exact_match"], 1),
                "f1_once": round(m_once["f1"], 1), "f1_voted": round(m_vote["f1"], 1), "gained": gained, "lost": lost,
                "mean_variants": round(sum(len(v) for v in variants) / len(variants), 2)}
            print(f"{args.run_dir} {name}/{set_name}", json.dumps(results[f"{name}/{set_name}"]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, ensure_ascii=False,
                                             indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
