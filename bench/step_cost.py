"""What one `passages` training step costs for each kind of row: a batch of paragraph pieces (`passage_text`, loss on
every token) against a batch of question rows (loss on the answer), each timed by a step clock in `train()` itself.

    python bench/step_cost.py runs/r21 [--steps 7] [--heads fused positions] [--out bench/results/step_cost.json]

With --heads, each kind of row is timed with each `loss_head` (BENCHMARKS 4d), one after the other in one process.

RUN_DIR must hold an `aug` adapter and material.json (a finished run). Trains two throwaway adapters
(`step-texts`, `step-questions`: `--steps` steps each, the first not counted) and removes them afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path


def step_seconds(run_dir: str, kind: str, steps: int, loss_head: str = "fused") -> list[float]:
    """Seconds of each step of `train(--passages)` on only the paragraph pieces or only 200 question rows."""
    import korquad_tune.train as T
    from korquad_tune.config import load_train_config
    from korquad_tune.rundir import RunDir
    from transformers import TrainerCallback

    build = T._examples

    def only(run, cfg, augment, passages, reader):
        pairs, texts, _ = build(run, cfg, augment, passages, reader)
        return ([], texts, []) if kind == "texts" else (pairs[:200], [], [])

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            self.started = time.time()

        def on_step_end(self, *args, **kwargs):
            times.append(time.time() - self.started)

    T._examples = only
    name = f"step-{kind}"
    try:
        T.train(run_dir, load_train_config("cpu-default", {"loss_head": loss_head}), name=name, passages=True, max_steps=steps,
                callbacks=[Clock()])
    finally:
        T._examples = build
        run = RunDir(run_dir)
        shutil.rmtree(run.adapter(name), ignore_errors=True)
        shutil.rmtree(run.checkpoint_dir(name), ignore_errors=True)
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--heads", nargs="+", default=["fused"], choices=["fused", "positions", "trl"])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    result = {"command": f"python bench/step_cost.py {args.run_dir} --steps {args.steps} --heads {' '.join(args.heads)}"}
    for kind in ("texts", "questions"):
        for head in args.heads:
            times = step_seconds(args.run_dir, kind, args.steps, head)
            key = kind if len(args.heads) == 1 else f"{kind} / {head}"
            result[key] = {"step_seconds": [round(t, 2) for t in times],
                           "median_after_first": round(statistics.median(times[1:]), 2)}
            print(key, result[key], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
