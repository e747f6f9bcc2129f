"""Serving load: N chat requests, C at a time, against `korquad-tune serve`, next to the same questions answered by
`evaluate`'s batched path (`Systems.answer`) in the same process, same model, same threads.

    python bench/serve.py RUN_DIR [--system aug] [--requests 200] [--concurrency 16] [--threads 2]

The questions are the run's training questions and held-out sets, repeated to N. Checks that every request got
an answer equal to `evaluate`'s (nothing lost, nothing changed) and prints requests/second for both and the
ratio; writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    import torch

    from korquad_tune import serve as serving
    from korquad_tune.fileio import iter_jsonl
    from korquad_tune.rundir import RunDir

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--system", default="aug")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench/results/serve.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    run = RunDir(args.run_dir)
    pool = [r["question"] for name in ("qa", "rephrased", "unseen") if getattr(run, name).exists()
            for _, r in iter_jsonl(getattr(run, name))]
    questions = (pool * (args.requests // len(pool) + 1))[:args.requests]
    systems = serving.systems_for(run.root)
    systems.load()  # before any clock starts

    t0 = time.perf_counter()
    direct = systems.answer(args.system, [{"question": q} for q in questions])
    direct_s = time.perf_counter() - t0

    with serving.BackgroundServer(serving.create_app(systems, run_dir=run.root)) as server:
        served, latencies, served_s = asyncio.run(_load(server.url, args.system, questions, args.concurrency))
    lost = sum(1 for a in served if a is None)
    differ = sum(1 for a, b in zip(served, direct) if a is not None and a != b)
    result = {
        "run": str(run.root), "system": args.system, "requests": len(questions), "concurrency": args.concurrency,
        "threads": args.threads, "lost": lost, "answers_differing_from_evaluate": differ,
        "evaluate_questions_per_s": round(len(questions) / direct_s, 2),
        "serve_requests_per_s": round(len(questions) / served_s, 2),
        "serve_vs_evaluate": round(direct_s / served_s, 2),
        "median_latency_s": round(statistics.median(latencies), 2),
        "p90_latency_s": round(sorted(latencies)[int(0.9 * len(latencies))], 2),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


async def _load(url: str, system: str, questions: list[str], concurrency: int):
    """Every question as one chat request through the official async client, `concurrency` in flight."""
    from openai import AsyncOpenAI
    client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(q: str) -> str | None:
        async with gate:
            t = time.perf_counter()
            try:
                reply = await client.chat.completions.create(model=system, messages=[{"role": "user", "content": q}])
            except Exception:  # noqa: BLE001 - counted as lost
                return None
            latencies.append(time.perf_counter() - t)
            return reply.choices[0].message.content

    t0 = time.perf_counter()
    answers = await asyncio.gather(*(one(q) for q in questions))
    return answers, latencies, time.perf_counter() - t0


if __name__ == "__main__":
    main()
