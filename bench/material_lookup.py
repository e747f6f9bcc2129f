"""A cheap, many-article proxy for what the study material can teach: BM25 lookup over it, no model, no training.

A closed-book adapter answers a question it never saw mostly with the answer of the training or material question
that shares the most words with it (BENCHMARKS 3, 2c), which is what a BM25 lookup does. So this bench splits
KorQuAD articles the way `prepare` does (trained / rephrased / unseen), builds the `rules` study material as
`study` does (held-out questions banned from it), and answers every held-out question by BM25 over

- `questions`: the training questions only (the `retrieval` system without paraphrases), and
- `questions+material`: the training questions and the study material's questions,
- `questions+sentences`: the training questions, each also found by the sentence its answer stands in (the lookup
  whose nearest answer `decoding: recall` counts likelier, since session 26),

counting KorQuAD EM per set. Hundreds of held-out questions in seconds where one training scores a dozen in
fifteen minutes: a way to compare two versions of the study material before paying for training, and a floor
the passages adapter should clear. It is a proxy: it says nothing about how a model generalises past words.

    python bench/material_lookup.py [--skip 3] [--articles 40] [--group 3] [--out bench/results/material_lookup.json]
    python bench/material_lookup.py --run runs/default     # a run folder's own sets and material.json
    python bench/material_lookup.py --run runs/default --recall 3   # ... and what recall offers its passages adapter
    python bench/material_lookup.py --recall 3              # also: how often `decoding: recall` can give the answer

`--recall K` counts, per set, the held-out questions whose gold answer is among the answers `decoding: recall`
offers the adapter (`AnswerRecall`: the K nearest training questions and the K nearest with the study questions;
here without paraphrases): the most a recall-decoded adapter can answer, whatever it learnt; `_sentences` the same
with AnswerRecall's `same_sentence` and `drop_asked` switches on (also the other answers of those study questions'
sentences, less the study answers the question says); `_anytype` without the filter that keeps the answers of the
kind the question's wh-word asks for (a number for 언제 / 몇); `_nosent` / `_nostudysent` with the trained / the study
questions found by their own words only, not also by their sentence (before sessions 26 / 30); `_candidates` how many
answers were offered in all; `_study_vote` how often the answer the study vote goes to (that of the question nearest
among trained and study questions, each also found by its sentence) is right, `_study_vote_nostudysent` the same
with the study questions found by their own words only, `_study_vote_typed` with the vote to the nearest answer of the
kind the question asks for that it does not say (`AnswerRecall.study_vote_answers(texts, "typed")`, BENCHMARKS 5r),
`_study_vote_slot` with the vote to the answer of the nearest study question's sentence that the question's words
stand nearest to (`"slot"`, BENCHMARKS 2v).

`--shares` (BENCHMARKS 5q) counts, per set, the held-out questions nearest a study question in that lookup, by the
best trained question's score as a share of the best question's (`AnswerRecall.priors`' `trained_share`), with how
often the trained vote and the study vote are right in each band.

Articles are taken `--group` at a time (a run's worth: the lookup only sees its own group's questions).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from collections import Counter
from pathlib import Path


def group_records(articles: list[dict]) -> list[dict]:
    """The records `prepare` would read from these articles (its parser, on a temporary verbatim copy)."""
    import tempfile

    from korquad_tune.data import parse_squad
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subset.json"
        path.write_text(json.dumps({"version": "KorQuAD_v1.0_dev", "data": articles}, ensure_ascii=False),
                        encoding="utf-8")
        return parse_squad(path)[0]


def material_for(records: list[dict], banned: set[str]) -> list[dict]:
    """The `rules` study material of these records' paragraphs, filtered as `study` filters it."""
    from korquad_tune.data import paragraphs_of
    from korquad_tune.passages import _rules, filter_material
    paragraphs = paragraphs_of(records)
    raw, _ = _rules(paragraphs, dropout=0)
    counts: Counter = Counter()
    return [x for p in paragraphs for x in filter_material(raw[p["id"]][0], p["context"], banned, counts)]


def best_matches(pairs: list[tuple[str, str]], held: list[dict]) -> list[int]:
    """For each held-out question, the index of its best BM25 match among `pairs` (the retrieval baseline's
    index and tokenisation)."""
    from korquad_tune.retrieval import RetrievalAnswerer, morphemes
    if not held:
        return []
    docs, _ = RetrievalAnswerer(pairs).index.retrieve([morphemes(r["question"]) for r in held], k=1,
                                                      show_progress=False)
    return [int(d[0]) for d in docs]


def lookup_em(pairs: list[tuple[str, str]], held: list[dict], matches: list[int] | None = None) -> int:
    from korquad_tune.metrics import score_one
    matches = best_matches(pairs, held) if matches is None else matches
    return int(sum(score_one(pairs[i][1], r["answers"])[0] for i, r in zip(matches, held)))


def sentence_lookup_em(rows: list[tuple[str, str, str]], held: list[dict]) -> int:
    """EM of the lookup `decoding: recall` votes with: (question, answer, answer's sentence) rows, each scored by
    BM25 over its question plus BM25 over question and sentence."""
    from korquad_tune.metrics import score_one
    from korquad_tune.retrieval import RetrievalAnswerer
    if not held:
        return 0
    found = RetrievalAnswerer([row[:2] for row in rows], [row[2] for row in rows]).answer([r["question"] for r in held])
    return int(sum(score_one(a, r["answers"])[0] for a, r in zip(found, held)))


def covered_misses(pairs: list[tuple[str, str]], held: list[dict], matches: list[int], counts: Counter) -> list[dict]:
    """Held-out questions whose gold answer some study/training question asks for (`covered`) but the lookup
    missed: the question, a question asking for its answer, and the best match the lookup took instead."""
    from korquad_tune.metrics import score_one
    out = []
    for r, i in zip(held, matches):
        asking = [q for q, a in pairs if score_one(a, r["answers"])[0]]
        counts["unseen_covered"] += bool(asking)
        if asking and not score_one(pairs[i][1], r["answers"])[0]:
            # the match holds the gold answer in its own words: a question about the same sentence, another slot
            counts["unseen_covered_missed_match_holds_answer"] += any(a in pairs[i][0] for a in r["answers"])
            out.append({"question": r["question"], "answer": r["answers"][0], "asked_by": asking[0],
                        "matched": pairs[i][0], "matched_answer": pairs[i][1]})
    return out


def uncovered(pairs: list[tuple[str, str]], held: list[dict], counts: Counter) -> list[dict]:
    """Held-out questions whose gold answer no training or study question asks for: the question, the sentence
    holding the answer, and the answers asked there that overlap it (a wider or narrower span: "에티오피아
    아디스아바바" for 아디스아바바, "대포동" for 대포동 2호), counted as `unseen_uncovered_overlap`."""
    import re

    from korquad_tune.metrics import score_one
    out = []
    for r in held:
        if any(score_one(a, r["answers"])[0] for _, a in pairs):
            continue
        gold = r["answers"][0]
        sentence = next((s for s in re.split(r"(?<=[.?!])\s+", r["context"]) if gold in s), "")
        near = sorted({a for _, a in pairs if a != gold and (gold in a or a in gold) and a in sentence})
        counts["unseen_uncovered"] += 1
        counts["unseen_uncovered_overlap"] += bool(near)
        out.append({"question": r["question"], "answer": gold, "sentence": sentence, "near": near})
    return out


def run_folder(run_dir: Path, recall: int = 0) -> dict:
    """The same lookups on a finished run folder: its training questions, its material, its held-out sets; with
    `recall`, also the gold answers `decoding: recall` offers its passages adapter, from that adapter's own
    questions.json (paraphrases included), with AnswerRecall's switches off and on."""
    from korquad_tune.data import HELDOUT_SETS, load_qa, with_answer_sentences
    from korquad_tune.fileio import read_json, read_jsonl
    from korquad_tune.models import read_learned_questions
    asked = read_learned_questions(run_dir / "adapters" / "passages") if recall else None
    qa = load_qa(run_dir)
    questions = [(r["question"], r["answers"][0]) for r in qa]
    with_sentences = with_answer_sentences(questions, qa)
    material = [(m["question"], m["answer"]) for m in read_json(run_dir / "material.json")["qa"]]
    out: dict = {"material": len(material)}
    for name in HELDOUT_SETS:
        held = read_jsonl(run_dir / f"{name}.jsonl")
        out.update({f"{name}_n": len(held), f"{name}_questions": lookup_em(questions, held),
                    f"{name}_questions+material": lookup_em(questions + material, held),
                    f"{name}_questions+sentences": sentence_lookup_em(with_sentences, held)})
        if asked:
            for label, options in RECALL_VARIANTS:
                hits, size = recall_hits(asked["questions"], asked["study"], held, recall,
                                         **{"study_sentences": asked.get("sentences"), **options})
                out.update({f"{name}_recall{recall}{label}_offered": hits,
                            f"{name}_recall{recall}{label}_candidates": size})
    return out


# AnswerRecall as `decoding: recall` runs it, with the two sentence switches on, without the answer-type filter,
# passing over said answers, and with the trained questions found by their own words only (before session 26)
RECALL_VARIANTS = (("", {}), ("_sentences", {"same_sentence": True, "drop_asked": True}),
                   ("_anytype", {"typed": False}), ("_skipsaid", {"skip_said": True}),
                   ("_nosent", {"sentences": False}),  # trained questions found by their own words only
                   ("_nostudysent", {"study_sentences": None}))  # study questions found by their own words only


def recall_hits(questions: list[tuple[str, str]], material: list[tuple], held: list[dict], k: int,
                study_sentences: list[str] | None = None, **options) -> tuple[int, int]:
    """Held-out questions whose gold answer is among `decoding: recall`'s candidates for them, and how many
    candidates were offered in all; `study_sentences`: the sentences the material rows' numbers name."""
    from korquad_tune.metrics import score_one
    from korquad_tune.retrieval import AnswerRecall
    if not held:
        return 0, 0
    sentences = options.pop("sentences", True)
    offered = AnswerRecall(questions, material, sentences, study_sentences).candidates([r["question"] for r in held],
                                                                                       k, **options)
    return (sum(any(score_one(a, r["answers"])[0] for a in found) for found, r in zip(offered, held)),
            sum(map(len, offered)))


def study_vote_hits(questions: list[tuple], material: list[tuple], held: list[dict],
                    study_sentences: list[str] | None, vote: str = "nearest") -> int:
    """Held-out questions whose gold answer is the one recall's study vote goes to: the answer of the question
    nearest among the trained and study questions (`AnswerRecall.priors`' `study_nats`), no vote where the question
    says it; `vote`: which answer the vote goes to (`retrieval.VOTES`: "typed" 5r, "slot" 2v)."""
    from korquad_tune.metrics import score_one
    from korquad_tune.retrieval import AnswerRecall, _not_asked
    if not held or not material:
        return 0
    texts = [r["question"] for r in held]
    votes = AnswerRecall(questions, material, True, study_sentences).study_vote_answers(texts, vote)
    return int(sum(score_one(a, r["answers"])[0] for a, r, text in zip(votes, held, texts) if _not_asked(text, [a])))


SHARE_BANDS = ((0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01))


def share_counts(questions: list[tuple], material: list[tuple], held: list[dict], name: str,
                 study_sentences: list[str] | None, counts: Counter) -> None:
    """For the held-out questions nearest a study question (trained + study lookup, each by its sentence too): by
    band of the best trained question's score share, how many, and how often each vote's answer is right."""
    from korquad_tune.metrics import score_one
    from korquad_tune.retrieval import AnswerRecall
    if not held or not material:
        return
    recall = AnswerRecall(questions, material, True, study_sentences)
    texts = [r["question"] for r in held]
    shares = recall.lookups[1].best_score_shares(texts, len(questions))
    nearest = [row[0] for row in recall.lookups[1].ranked(texts, 1)]
    trained = recall.nearest_answers(texts)
    for r, share, row, answer in zip(held, shares, nearest, trained):
        if row < len(questions):
            continue
        lo, hi = next(band for band in SHARE_BANDS if band[0] <= share < band[1])
        key = f"{name}_share{lo:.1f}-{min(hi, 1.0):.1f}"
        counts[key] += 1
        counts[f"{key}_trained_vote"] += int(score_one(answer, r["answers"])[0])
        counts[f"{key}_study_vote"] += int(score_one(recall.lookups[1].answers[row], r["answers"])[0])


def main() -> None:
    from korquad_tune.data import HELDOUT_SETS, shipped_dev_path, split_heldout, with_answer_sentences
    from korquad_tune.passages import _key, study_rows, study_sentences

    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None, help="SQuAD-format file (default: the shipped dev set)")
    p.add_argument("--skip", type=int, default=3, help="articles to skip (the default run's three)")
    p.add_argument("--articles", type=int, default=40)
    p.add_argument("--group", type=int, default=3, help="articles per simulated run")
    p.add_argument("--out", default=None)
    p.add_argument("--misses", type=int, default=0, help="print this many unseen questions the material covers "
                   "but the lookup missed (a random sample)")
    p.add_argument("--uncovered", type=int, default=0, help="print this many unseen questions whose answer no "
                   "training or study question asks for, with the sentence holding it (a random sample)")
    p.add_argument("--run", default=None, help="score a run folder's own sets and material instead")
    p.add_argument("--recall", type=int, default=0, help="also count gold answers among `decoding: recall`'s "
                   "candidates with this recall_k")
    p.add_argument("--shares", action="store_true", help="also count the questions nearest a study question by the "
                   "best trained question's score share (BENCHMARKS 5q)")
    args = p.parse_args()
    if args.run:
        print(json.dumps(run_folder(Path(args.run), args.recall), ensure_ascii=False))
        return
    raw = Path(args.data).read_bytes() if args.data else gzip.decompress(shipped_dev_path().read_bytes())
    data = json.loads(raw)["data"][args.skip:args.skip + args.articles]
    counts: Counter = Counter()
    misses: list[dict] = []
    gaps: list[dict] = []
    t0 = time.perf_counter()
    for start in range(0, len(data), args.group):
        records = group_records(data[start:start + args.group])
        sets = split_heldout(records)
        banned = {_key(r["question"]) for name in HELDOUT_SETS for r in sets[name]}
        questions = [(r["question"], r["answers"][0]) for r in sets["trained"]]
        with_sentences = with_answer_sentences(questions, sets["trained"])  # as questions.json keeps them
        material_rows = material_for(records, banned)
        material = [(m["question"], m["answer"]) for m in material_rows]
        study = study_rows(material_rows)
        counts["material"] += len(material)
        # the trained questions themselves: does each still find its own answer (several may ask about one sentence)
        counts["trained_n"] += len(sets["trained"])
        counts["trained_questions"] += lookup_em(questions, sets["trained"])
        counts["trained_questions+sentences"] += sentence_lookup_em(with_sentences, sets["trained"])
        for name in HELDOUT_SETS:
            matches = best_matches(questions + material, sets[name])
            counts[f"{name}_n"] += len(sets[name])
            counts[f"{name}_questions"] += lookup_em(questions, sets[name])
            counts[f"{name}_questions+material"] += lookup_em(questions + material, sets[name], matches)
            counts[f"{name}_questions+sentences"] += sentence_lookup_em(with_sentences, sets[name])
            if args.recall:
                for label, options in RECALL_VARIANTS:
                    hits, size = recall_hits(with_sentences, study, sets[name], args.recall,
                                             **{"study_sentences": study_sentences(material_rows), **options})
                    counts[f"{name}_recall{args.recall}{label}_offered"] += hits
                    counts[f"{name}_recall{args.recall}{label}_candidates"] += size
                for label, sentences, vote in (("", study_sentences(material_rows), "nearest"),
                                               ("_nostudysent", None, "nearest"),
                                               ("_typed", study_sentences(material_rows), "typed"),
                                               ("_slot", study_sentences(material_rows), "slot")):
                    counts[f"{name}_study_vote{label}"] += study_vote_hits(with_sentences, study, sets[name], sentences,
                                                                           vote)
            if args.shares:
                share_counts(with_sentences, study, sets[name], name, study_sentences(material_rows), counts)
            if name == "unseen":
                misses += covered_misses(questions + material, sets[name], matches, counts)
                gaps += uncovered(questions + material, sets[name], counts)
        print(f"  articles {args.skip + start + 1}-{args.skip + start + len(data[start:start + args.group])}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), flush=True)
    summary = {**counts, "seconds": round(time.perf_counter() - t0, 1)}
    for name in HELDOUT_SETS:
        for system in ("questions", "questions+material", "questions+sentences"):
            summary[f"{name}_{system}_em"] = round(100 * counts[f"{name}_{system}"] / max(counts[f"{name}_n"], 1), 1)
    print(json.dumps(summary, ensure_ascii=False))
    for m in random.Random(0).sample(misses, min(args.misses, len(misses))):
        print(f"\n  {m['question']} -> {m['answer']}\n    asked by  {m['asked_by']}\n    matched   {m['matched']} "
              f"-> {m['matched_answer']}")
    for m in random.Random(0).sample(gaps, min(args.uncovered, len(gaps))):
        print(f"\n  {m['question']} -> {m['answer']}\n    sentence  {m['sentence']}\n    near      {m['near']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary}, ensure_ascii=False,
                                             indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
