"""One or more adapters of a run folder on every question set of that run, with one model load (for comparing
training recipes side by side; `korquad-tune run` does the same for its own systems).

    python bench/adapter_sets.py runs/default passages p-repeats3 [--out bench/results/recipes.json]

Prints EM / F1 per adapter and set, and the training seconds each adapter's folder records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    import torch

    from korquad_tune.evaluate import Systems, score_predictions
    from korquad_tune.models import ADAPTER_META
    from korquad_tune.pipeline import finished_run_sets
    from korquad_tune.rundir import RunDir

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("adapters", nargs="+")
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    cfg, sets = finished_run_sets(run.root)
    systems = Systems([run.adapter(a) for a in args.adapters], max_new_tokens=cfg.eval.max_new_tokens)
    results = {}
    for name in args.adapters:
        meta = json.loads((run.adapter(name) / ADAPTER_META).read_text())
        results[name] = {"train_seconds": meta.get("train_seconds"), "examples": meta.get("examples"),
                         "steps": meta.get("steps"), "final_loss": meta.get("final_loss")}
        for set_name, questions in sets.items():
            answers = systems.answer(name, questions)
            _, m = score_predictions(questions, {q["id"]: a for q, a in zip(questions, answers)})
            results[name][set_name] = {"em": round(m["exact_match"], 1), "f1": round(m["f1"], 1), "n": m["n"]}
        print(name, json.dumps(results[name], ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
