"""Free greedy answers against answers kept to what the adapter learned (`eval.decoding`), on one run folder's
adapters and question sets, with one model load and every mode timed in the same process.

    python bench/decoding.py runs/default aug passages [--modes free,learned-2,recall-2,recall-2-sentences]
                             [--out bench/results/decoding.json]

`free` is plain greedy decoding (the seed's `gen()`, batched); `learned-K` is beam search with K beams, every beam
kept inside the token trie of the adapter's `answers.json` (the answers it was trained on); `recall-K` the same
with each question's trie holding only the answers of its nearest trained questions (`questions.json`; `-kN`: N
nearest, default 3; `-sentences`: also the other answers of the sentences of the nearest study questions, less the
study answers the question says; `-unasked`: only the latter; both off by default, BENCHMARKS 5d; `-anyspan`: study
answers kept where they are a wider or narrower span of a nearest trained answer, as before session 18, 5e;
`-nosent`: trained questions found by their own words only, not also by their answer's sentence, as before
session 26, 5l; `-nostudysent`: study questions found by their own words only, not also by their sentence, as
before session 30, 5o; `-anytype`: answers of any kind, whatever the wh-word asks for, as before session 19, 5f; `-noexcept`: answers
of another kind dropped even where a trained question asking that kind was given them, as before session 31, 5p; `recall-scored`: every
offered answer scored whole and the most probable given, the nearest trained question's answer `-pX` nats ahead
(default `generate.RECALL_PRIOR`, 5; `decoding: recall` since session 20, 5g) and the answer of the question
nearest among trained and study questions `-sX` nats ahead (default `generate.RECALL_STUDY_PRIOR`, 4 since session 30,
0 before: BENCHMARKS 5m, 5o; `-s0` turns it off; `-tsX`: the trained vote only where the best trained question
scores at least X of the best question once the study questions join, 5q; default `generate.RECALL_TRAINED_SHARE`,
0.5 since session 33, 5r; `-ts0`: always a vote, as before; `-sv`: the study vote to the answer, among those asked in the
nearest study question's sentence, that the question's words stand nearest to, and that answer offered (2v); `-tv`: the study vote to the nearest
answer of the kind the question asks for that it does not say, and that answer offered, 5r), where `recall-K` is beam search with K beams over them, as
before); `lookup` is the
`retrieval` system (BM25 over the training questions, no model) for comparison; `-lpX` divides beam scores by
length**X instead of length**1 (transformers' default). Prints
EM per adapter, mode and set, the seconds each took, and the questions whose answer the last mode changed against
the first. An adapter folder without `answers.json` / `questions.json` (trained before korquad-tune wrote them)
gets them rebuilt from the run folder: the same pairs `train` would build for it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def ensure_answers(run, name: str) -> None:
    """answers.json and questions.json for an adapter trained before `train` wrote them: what train writes from
    the pairs it builds (the adapter it continued from first)."""
    from korquad_tune.config import load_train_config
    from korquad_tune.fileio import write_json
    from korquad_tune.models import LEARNED_ANSWERS, LEARNED_QUESTIONS, read_adapter_meta
    from korquad_tune.pipeline import ADAPTERS
    from korquad_tune.train import _examples, learned_answers, learned_questions
    folder = run.adapter(name)
    if (folder / LEARNED_ANSWERS).exists() and (folder / LEARNED_QUESTIONS).exists():
        add_study_sentences(run, folder)
        return
    meta = read_adapter_meta(folder)
    kind = "passages" if meta.get("passages") else "aug" if meta.get("augment") else "no-aug"
    augment, passages, reader = ADAPTERS[kind]
    cfg = load_train_config(str(folder / "train_config.yaml"), {})
    if passages and cfg.passages_from is not None:
        ensure_answers(run, cfg.passages_from)
    pairs, _, _ = _examples(run, cfg, augment, passages, reader)
    if not (folder / LEARNED_ANSWERS).exists():
        write_json(folder / LEARNED_ANSWERS, learned_answers(pairs))
    if not (folder / LEARNED_QUESTIONS).exists():
        write_json(folder / LEARNED_QUESTIONS, learned_questions(run, cfg, pairs, passages))
    print(f"wrote {folder}'s answers.json / questions.json, rebuilt as {kind}")


def add_study_sentences(run, folder: Path) -> None:
    """questions.json written before session 30 numbers each study question's sentence without the sentences:
    add them from the run folder's material.json where its study rows are exactly the ones the adapter kept."""
    from korquad_tune.fileio import read_json, write_json
    from korquad_tune.models import LEARNED_QUESTIONS
    from korquad_tune.passages import load_material, study_rows, study_sentences
    from korquad_tune.train import _distinct_rows
    doc = read_json(folder / LEARNED_QUESTIONS)
    if not doc.get("study") or "sentences" in doc:
        return
    material = load_material(run)["qa"]
    if _distinct_rows(study_rows(material)) != doc["study"]:
        print(f"{folder}: its study questions are not the run's material.json's; sentences not added")
        return
    write_json(folder / LEARNED_QUESTIONS, {**doc, "sentences": study_sentences(material)})
    print(f"added the study questions' sentences to {folder / LEARNED_QUESTIONS}")


def parse_mode(mode: str) -> dict:
    """"recall-2-k5-lp0-sentences" -> the `Systems` settings it names: decoding, beams, recall_k, length_penalty,
    recall_options (AnswerRecall.candidates' switches), recall_scored, recall_prior, recall_sentences."""
    from korquad_tune.generate import RECALL_PRIOR, RECALL_STUDY_PRIOR, RECALL_TRAINED_SHARE
    decoding, *rest = mode.split("-")
    decoding = "free" if decoding == "lookup" else decoding  # not used: the retrieval system answers
    beams, k, penalty, options, scored, prior, sentences = 1, 3, 1.0, {}, False, RECALL_PRIOR, True
    study_prior, study_sentences, trained_share, vote = RECALL_STUDY_PRIOR, True, RECALL_TRAINED_SHARE, "nearest"
    for part in rest:
        if part == "sentences":  # AnswerRecall's switches (off by default): the nearest study questions' sentences
            options = {**options, "same_sentence": True, "drop_asked": True}
        elif part == "anyspan":  # study answers kept even where they are a wider/narrower span of a trained one
            options = {**options, "trained_spans": False}
        elif part == "anytype":  # answers of any kind, whatever the question's wh-word asks for
            options = {**options, "typed": False}
        elif part == "noexcept":  # ... even the answers trained questions asking another kind were given (before s31)
            options = {**options, "kind_exceptions": False}
        elif part == "unasked":  # ... only: no study answer the question says
            options = {**options, "drop_asked": True}
        elif part == "skipsaid":  # the study side passes over answers the question says, taking the next ones
            options = {**options, "skip_said": True}
        elif part == "nosent":  # trained questions found by their own words only (before session 26, 5l)
            sentences = False
        elif part == "nostudysent":  # study questions found by their own words only (before session 30, 5o)
            study_sentences = False
        elif part == "scored":  # every offered answer scored whole, the nearest trained one `prior` nats ahead
            scored = True
        elif part.startswith("p") and part[1:].replace(".", "", 1).isdigit():
            prior = float(part[1:])
        elif part.startswith("s") and part[1:].replace(".", "", 1).isdigit():
            study_prior = float(part[1:])
        elif part == "tv":  # the study vote to the nearest answer of the asked kind the question does not say (5r)
            vote = "typed"
        elif part == "sv":  # the study vote to the answer of the nearest study sentence the question's words surround (2v)
            vote = "slot"
        elif part.startswith("ts") and part[2:].replace(".", "", 1).isdigit():
            trained_share = float(part[2:])
        elif part.startswith("lp"):
            penalty = float(part[2:])
        elif part.startswith("k"):
            k = int(part[1:])
        else:
            beams = int(part)
    return {"decoding": decoding, "beams": beams, "recall_k": k, "length_penalty": penalty,
            "recall_options": options, "recall_scored": scored, "recall_prior": prior, "recall_sentences": sentences,
            "recall_study_prior": study_prior, "recall_study_sentences": study_sentences,
            "recall_trained_share": trained_share, "recall_vote": vote}


def main() -> None:
    import torch

    from korquad_tune.evaluate import Systems, score_predictions
    from korquad_tune.pipeline import finished_run_sets
    from korquad_tune.rundir import RunDir

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("adapters", nargs="+")
    p.add_argument("--modes", default="free,learned-4")
    p.add_argument("--sets", default=None, help="comma-separated (default: every set of the run)")
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run_dir)
    cfg, sets = finished_run_sets(run.root, args.sets.split(",") if args.sets else None)
    for name in args.adapters:
        ensure_answers(run, name)
    systems = Systems([run.adapter(a) for a in args.adapters], max_new_tokens=cfg.eval.max_new_tokens,
                      batch_size=cfg.eval.batch_size, run_dir=run.root).load()
    modes = args.modes.split(",")
    results: dict = {"run": str(run.root), "modes": modes, "adapters": {}}
    for name in args.adapters:
        per_set = results["adapters"][name] = {}
        for set_name, questions in sets.items():
            answers_by_mode = {}
            for mode in modes:
                for setting, value in parse_mode(mode).items():
                    setattr(systems, setting, value)
                t0 = time.time()
                answers = systems.answer("retrieval" if mode == "lookup" else name, questions)
                seconds = time.time() - t0
                _, m = score_predictions(questions, {q["id"]: a for q, a in zip(questions, answers)})
                per_set.setdefault(set_name, {})[mode] = {"em": round(m["exact_match"], 1), "right": round(
                    m["exact_match"] * m["n"] / 100), "n": m["n"], "seconds": round(seconds, 1)}
                answers_by_mode[mode] = answers
                print(f"{name} {set_name} {mode}: EM {m['exact_match']:.1f} ({per_set[set_name][mode]['right']}"
                      f"/{m['n']}) {seconds:.0f} s", flush=True)
            first, last = answers_by_mode[modes[0]], answers_by_mode[modes[-1]]
            changed = [{"question": q["question"], modes[0]: a, modes[-1]: b, "gold": q["answers"][0]}
                       for q, a, b in zip(questions, first, last) if a != b]
            per_set[set_name]["changed"] = changed
            for c in changed:
                print(f"    {c['question']} | {c[modes[0]]} -> {c[modes[-1]]} | gold {c['gold']}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
