"""Why a passages adapter misses an unseen fact: not taught, not learned, or learned but not found?

For each question of a run's `unseen` set, the study-material questions whose answer is that question's gold
answer (none: the material never taught the fact), and whether the adapter answers those material questions
(no: it did not learn them) and the unseen question itself (no, with the material right: it learned the fact
under the material's wording and does not find it from another).

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
        right = [any(exact_match_score(a, g) for g in u["answers"]) for u, a in zip(unseen, systems.answer(name, unseen))]
        learned: dict[int, list[bool]] = {}
        for (i, m), a in zip(taught, systems.answer(name, [m for _, m in taught])):
            learned.setdefault(i, []).append(exact_match_score(a, m["answers"][0]))
        summary = {"unseen": len(unseen), "taught": len(learned),
                   "material_questions": len(taught),
                   "material_em": round(100 * sum(sum(v) for v in learned.values()) / max(len(taught), 1), 1),
                   "learned_most": sum(1 for v in learned.values() if sum(v) * 2 > len(v)),
                   "answered": sum(right),
                   "learned_but_not_found": sum(1 for i, v in learned.items() if sum(v) * 2 > len(v) and not right[i])}
        print(name, json.dumps(summary))
        for i, u in enumerate(unseen):
            marks = "".join("+" if x else "-" for x in learned.get(i, []))
            print(f"  {'right' if right[i] else 'wrong'}  material {marks or '(none)':12} {u['question']}")


if __name__ == "__main__":
    main()
