"""How many of KorQuAD's own answers the offline study material asks for — no training, thousands of questions.

A closed-book adapter can only answer a fact no training question asks if its study material taught it; the
`rules` backend (korean_cloze.py) teaches exactly the spans it turns into answers. This bench runs it over every
paragraph of many KorQuAD articles and counts, over all their human-written questions, how often a material
answer equals the gold answer (KorQuAD's EM normalisation) — an upper bound on what the material can teach —
and how often a material question asks for it from the same sentence. Also the material's size (what training
pays for).

    python bench/cloze_coverage.py [--data ../shared/data/KorQuAD_v1.0_dev.json] [--skip 3] [--articles 40]
                                   [--out bench/results/cloze_coverage.json] [--misses 30]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path


def coverage(articles: list[dict]) -> tuple[dict, list[dict]]:
    from korquad_tune.korean_cloze import cloze_questions
    from korquad_tune.metrics import f1_score, normalize_answer

    counts: Counter = Counter()
    misses = []
    t0 = time.perf_counter()
    for article in articles:
        for para in article["paragraphs"]:
            material = cloze_questions(para["context"], article["title"])
            counts["paragraphs"] += 1
            counts["material"] += len(material)
            counts["material_chars"] += sum(len(m["question"]) for m in material)
            answers = {normalize_answer(m["answer"]) for m in material}
            for qa in para["qas"]:
                gold = qa["answers"][0]["text"]
                counts["questions"] += 1
                if normalize_answer(gold) in answers:
                    counts["exact"] += 1
                elif any(f1_score(m["answer"], gold) >= 0.5 for m in material):
                    counts["partial"] += 1
                else:
                    misses.append({"title": article["title"], "question": qa["question"], "answer": gold,
                                   "nearest": max((m["answer"] for m in material),
                                                  key=lambda a: f1_score(a, gold), default="")})
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    n = counts["questions"]
    summary = {**counts, "exact_pct": round(100 * counts["exact"] / n, 1),
               "exact_or_partial_pct": round(100 * (counts["exact"] + counts["partial"]) / n, 1),
               "material_per_paragraph": round(counts["material"] / counts["paragraphs"], 1),
               "mean_question_chars": round(counts["material_chars"] / max(counts["material"], 1), 1)}
    return summary, misses


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="../shared/data/KorQuAD_v1.0_dev.json")
    p.add_argument("--skip", type=int, default=3, help="articles to skip (the default run's three)")
    p.add_argument("--articles", type=int, default=40)
    p.add_argument("--out", default=None)
    p.add_argument("--misses", type=int, default=30, help="random missed answers to print")
    args = p.parse_args()
    data = json.loads(Path(args.data).read_text(encoding="utf-8"))["data"]
    summary, misses = coverage(data[args.skip:args.skip + args.articles])
    print(json.dumps(summary, ensure_ascii=False))
    for m in random.Random(0).sample(misses, min(args.misses, len(misses))):
        print(f"  {m['answer']!r:40} nearest {m['nearest']!r:30} {m['question']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary}, ensure_ascii=False,
                                             indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
