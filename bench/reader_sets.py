"""Reader adapters of a run folder compared side by side: each one as `open-book` (given the question's own
paragraph) and `rag` (given the top BM25 paragraph of the run's training articles) on the run's held-out human
sets, as `korquad-tune run` scores them (the readers differ in how they were trained, e.g. `reader_batch_size`).

    python bench/reader_sets.py runs/k20 reader reader-b24 [--sets rephrased,unseen] [--out bench/results/F.json]

Prints EM / F1 per reader, system and set, and the training seconds each reader's folder records.
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
    p.add_argument("readers", nargs="+")
    p.add_argument("--sets", default="rephrased,unseen")
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    cfg, sets = finished_run_sets(run.root, args.sets.split(","))
    results = {}
    for name in args.readers:  # one Systems per reader: a Systems answers open-book with its first reader
        meta = json.loads((run.adapter(name) / ADAPTER_META).read_text())
        if not meta.get("reader"):
            raise SystemExit(f"{run.adapter(name)}: not a reader adapter (train it with --reader)")
        systems = Systems([run.adapter(name)], run_dir=run.root, max_new_tokens=cfg.eval.max_new_tokens,
                          batch_size=cfg.eval.batch_size, rag_k=cfg.eval.rag_k)
        results[name] = {"train_seconds": meta.get("train_seconds"), "examples": meta.get("examples"),
                         "steps": meta.get("steps")}
        for system in ("open-book", "rag"):
            for set_name, questions in sets.items():
                answers = systems.answer(system, questions)
                _, m = score_predictions(questions, {q["id"]: a for q, a in zip(questions, answers)})
                results[name][f"{system} {set_name}"] = {"em": round(m["exact_match"], 1), "f1": round(m["f1"], 1),
                                                         "right": round(m["exact_match"] * m["n"] / 100), "n": m["n"]}
        print(name, json.dumps(results[name], ensure_ascii=False))
        del systems
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
