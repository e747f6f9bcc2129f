"""Probe: can the model find a memorised fact by reciting its sentence first (recite, then read)?

A closed-book adapter maps a question straight to an answer and, on a new wording, misses facts it learned
(BENCHMARKS 2c). Recitation-augmented generation (Sun et al. 2023, RECITE) splits the step: a `recite` adapter
maps the question to the training-paragraph sentence that holds the answer (learned from every training
question, paraphrase and study question -> its sentence), and the reader adapter reads the answer from that
recited sentence. No paragraph is given at question time: both steps answer from the weights.

    python bench/recitation.py RUN [--epochs 3] [--name recite]

Trains RUN/adapters/<name> (if absent; needs RUN/adapters/reader), then prints, per held-out set, how often the
recited sentence holds a gold answer and the reader's EM on it (compare with the run's report.md).
"""

from __future__ import annotations

import argparse
import json


def sentences_of(context: str) -> list[str]:
    from korquad_tune.korean_rules import _kiwi
    return [s.text.strip() for s in _kiwi().split_into_sents(context) if s.text.strip()]


def best_sentence(sents: list[str], question: str, answer: str) -> str | None:
    """The sentence holding the answer that shares the most characters' bigrams with the question."""
    def grams(t):
        t = t.replace(" ", "")
        return {t[i:i + 2] for i in range(len(t) - 1)}
    q = grams(question)
    holding = [s for s in sents if answer in s]
    return max(holding, key=lambda s: len(grams(s) & q)) if holding else None


def main() -> None:
    import torch

    from korquad_tune import train as T
    from korquad_tune.config import load_train_config
    from korquad_tune.data import load_augmentation, load_passages, load_qa, training_pairs
    from korquad_tune.evaluate import Systems
    from korquad_tune.fileio import iter_jsonl
    from korquad_tune.metrics import exact_match_score, normalize_answer
    from korquad_tune.models import ADAPTER_META
    from korquad_tune.passages import load_material
    from korquad_tune.rundir import RunDir

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--name", default="recite")
    p.add_argument("--sets", default="unseen,rephrased")
    p.add_argument("--no-material", action="store_true")
    args = p.parse_args()
    run = RunDir(args.run_dir)
    paragraphs = {x["context"]: x for x in load_passages(run.root)}
    sents = {c: sentences_of(c) for c in paragraphs}
    by_id = {x["id"]: x["context"] for x in paragraphs.values()}

    pairs = []
    qa = load_qa(run.root)
    aug = load_augmentation(run, rewordings_only=True)
    for rec in qa:
        s = best_sentence(sents[rec["context"]], rec["question"], rec["answers"][0])
        if s:
            pairs += [(q, s) for q, _ in training_pairs([rec], aug)]
    if not args.no_material:
        for m in load_material(run)["qa"]:
            s = best_sentence(sents[by_id[m["paragraph"]]], m["question"], m["answer"])
            if s:
                pairs.append((m["question"], s))
    print(f"{len(pairs)} recitation pairs")

    if not (run.adapter(args.name) / ADAPTER_META).exists():
        cfg = load_train_config(overrides={"augmented_epochs": args.epochs})
        T._examples = lambda *a, **k: (pairs, [], [])  # a probe: train's own loop on these pairs, no new mode
        T.train(run.root, cfg, name=args.name, augment=True)

    torch.set_num_threads(2)
    systems = Systems([run.adapter(args.name), run.adapter("reader")], max_new_tokens=128)
    for name in args.sets.split(","):
        qs = [r for _, r in iter_jsonl(run.root / f"{name}.jsonl")]
        recited = systems.answer(args.name, qs, f"recite {name}")
        holds = [any(normalize_answer(g) in normalize_answer(r) for g in q["answers"]) for q, r in zip(qs, recited)]
        answers = systems.answer("open-book", [{"question": q["question"], "context": r or "-"}
                                               for q, r in zip(qs, recited)], max_new_tokens=24)
        em = [any(exact_match_score(a, g) for g in q["answers"]) for q, a in zip(qs, answers)]
        print(json.dumps({"set": name, "n": len(qs), "recited_holds_answer": sum(holds), "recite_read_em": sum(em),
                          "recite_read_em_pct": round(100 * sum(em) / len(qs), 1)}))
        for q, r, a, h, e in zip(qs, recited, answers, holds, em):
            print(f"  {'R' if e else '-'}{'h' if h else '-'} {q['question']} | {q['answers'][0]} | {a} | {r[:80]}")


if __name__ == "__main__":
    main()
