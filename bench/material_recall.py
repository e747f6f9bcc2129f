"""Why a passages adapter misses an unseen fact: not taught, not learned, or learned but not found?

For each question of a run's `unseen` set, the study-material questions whose answer is that question's gold
answer (none: the material never taught the fact), and whether the adapter answers those material questions
(no: it did not learn them) and the unseen question itself (no, with the material right: it learned the fact
under the material's wording and does not find it from another); and, under `decoding: recall`, whether the gold
answer was among the answers offered to the model for the unseen question (offered but not chosen: the model's
choice; not offered: the lookup of the nearest trained and study questions).

    python bench/material_recall.py RUN ADAPTER [ADAPTER ...]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    import torch

    from korquad_tune.evaluate import Systems
    from korquad_tune.fileio import iter_jsonl, read_json
    from korquad_tune.metrics import exact_match_score, normalize_answer
    from korquad_tune.rundir import RunDir

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("adapters", nargs="+")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    material = read_json(run.root / "material.json")["qa"]
    unseen = [rec for _, rec in iter_jsonl(run.root / "unseen.jsonl")]
    taught = []  # (unseen index, material question)
    for i, u in enumerate(unseen):
        golds = {normalize_answer(a) for a in u["answers"]}
        taught += [(i, {"question": m["question"], "answers": [m["answer"]]}) for m in material
                   if normalize_answer(m["answer"]) in golds]
    systems = Systems([run.adapter(a) for a in args.adapters])
    for name in args.adapters:
        recall = systems._recall_for(name, False)  # what `decoding: recall` offers the model to choose from
        offered = [any(exact_match_score(c, g) for c in cands for g in u["answers"]) for u, cands in
                   zip(unseen, recall.candidates([u["question"] for u in unseen], systems.recall_k,
                                                 **systems.recall_options))] if recall else [None] * len(unseen)
        right = [any(exact_match_score(a, g) for g in u["answers"]) for u, a in zip(unseen, systems.answer(name, unseen))]
        learned: dict[int, list[bool]] = {}
        for (i, m), a in zip(taught, systems.answer(name, [m for _, m in taught])):
            learned.setdefault(i, []).append(exact_match_score(a, m["answers"][0]))
        summary = {"unseen": len(unseen), "taught": len(learned),
                   "material_questions": len(taught),
                   "material_em": round(100 * sum(sum(v) for v in learned.values()) / max(len(taught), 1), 1),
                   "learned_most": sum(1 for v in learned.values() if sum(v) * 2 > len(v)),
                   "answered": sum(right), "gold_offered": sum(bool(o) for o in offered),
                   "offered_but_not_chosen": sum(1 for o, r in zip(offered, right) if o and not r),
                   "learned_but_not_found": sum(1 for i, v in learned.items() if sum(v) * 2 > len(v) and not right[i])}
        print(name, json.dumps(summary))
        for i, u in enumerate(unseen):
            marks = "".join("+" if x else "-" for x in learned.get(i, []))
            print(f"  {'right' if right[i] else 'wrong'}  {'offered' if offered[i] else '-      '}  material "
                  f"{marks or '(none)':12} {u['question']}")


if __name__ == "__main__":
    main()
