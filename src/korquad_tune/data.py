"""Data stage: read SQuAD-format v1 files (KorQuAD 1.0, SQuAD 1.1) into one record per question.

Every question is kept, even when its text repeats (the original notebook keyed a dict by question text and
silently lost duplicates); duplicates are counted in the summary instead.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.fileio import decode_text, ensure_dir, iter_jsonl, read_json, read_jsonl, write_json, write_jsonl
from korquad_tune.metrics import normalize_answer
from korquad_tune.rundir import RunDir

log = logging.getLogger(__name__)

SHIPPED_DEV_NAME = "KorQuAD_v1.0_dev.json.gz"


def shipped_dev_path() -> Path:
    """The verbatim KorQuAD v1.0 dev set shipped inside the package (see resources/NOTICE)."""
    return Path(str(files("korquad_tune").joinpath("resources", SHIPPED_DEV_NAME)))


@dataclass
class SquadSummary:
    source: str
    articles: int = 0
    questions: int = 0
    distinct_questions: int = 0
    duplicate_questions: dict[str, int] = field(default_factory=dict)
    answer_start_mismatches: int = 0
    empty_contexts: int = 0  # paragraphs skipped: nothing to learn from, nothing to answer from
    answers_not_in_context: int = 0  # questions skipped: no gold answer occurs in their paragraph
    unanswerable: int = 0  # questions skipped: SQuAD v2's is_impossible, nothing to learn or to score

    def skipped(self) -> list[str]:
        """What was skipped, one phrase per kind: "2 paragraphs with an empty context"."""
        return [f"{n} {what}" for n, what in (
            (self.empty_contexts, "paragraphs with an empty context"),
            (self.answers_not_in_context, "questions whose answer is not in their paragraph"),
            (self.unanswerable, "unanswerable questions (SQuAD v2 is_impossible)")) if n]


def _read_squad_json(path: Path) -> dict:
    if not path.exists():
        raise KorquadTuneError(f"{path}: file not found (pass --data with a SQuAD-format JSON file)")
    if path.is_dir():
        raise KorquadTuneError(f"{path}: is a folder; pass --data with a SQuAD-format JSON file")
    raw = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise KorquadTuneError(f"{path}: not a readable gzip file ({e})") from None
    if not raw.strip():
        raise KorquadTuneError(f"{path}: file is empty; expected SQuAD-format JSON with a 'data' list")
    try:
        doc = json.loads(decode_text(raw, path))
    except json.JSONDecodeError as e:
        # not JSON from the first character (a CSV), more than one value (JSON Lines), or cut short
        hint = ("expected a SQuAD-format JSON file" if e.pos == 0 else
                "one JSON document expected, as SQuAD files are; is this JSON Lines?" if e.msg == "Extra data" else
                "is the file truncated?")
        raise KorquadTuneError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg} ({hint})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise KorquadTuneError(f"{path}: not SQuAD format: expected a top-level object with a 'data' list")
    return doc


def _require(cond: bool, path: Path, where: str, what: str) -> None:
    if not cond:
        raise KorquadTuneError(f"{path}: {where}: {what}")


def nfc(text: str) -> str:
    """Hangul as one code point per syllable. A file saved on macOS may hold it decomposed (NFD: 임 as ㅇ ㅣ ㅁ), which
    looks the same but matches nothing: Kiwi, BM25 and the study rules read jamo, and no question is made from it."""
    return unicodedata.normalize("NFC", text)


def parse_squad(path: str | Path, articles: int | None = None) -> tuple[list[dict], SquadSummary]:
    """Parse a SQuAD v1 file into records {id, title, question, answers, context}, every text in NFC (`nfc`).

    `articles` keeps only the first N articles. Schema errors name the article/paragraph/qa index and id.
    """
    path = Path(path)
    doc = _read_squad_json(path)
    summary = SquadSummary(source=str(path))
    records: list[dict] = []
    for a_i, article in enumerate(doc["data"][:articles] if articles else doc["data"]):
        where_a = f"data[{a_i}]"
        _require(isinstance(article, dict) and isinstance(article.get("paragraphs"), list), path, where_a,
                 "expected an object with a 'paragraphs' list")
        title = str(article.get("title", ""))
        summary.articles += 1
        for p_i, para in enumerate(article["paragraphs"]):
            where_p = f"{where_a}.paragraphs[{p_i}] (title {title!r})"
            _require(isinstance(para, dict) and isinstance(para.get("context"), str), path, where_p,
                     "expected an object with a 'context' string")
            _require(isinstance(para.get("qas"), list), path, where_p, "expected a 'qas' list")
            context = para["context"]
            if not context.strip():
                summary.empty_contexts += 1
                continue
            for q_i, qa in enumerate(para["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                where_q = f"{where_p}.qas[{q_i}] (id {qid!r})"
                _require(isinstance(qa, dict), path, where_q, "expected an object")
                _require(isinstance(qid, (str, int)) and str(qid) != "", path, where_q, "missing 'id'")
                question = qa.get("question")
                _require(isinstance(question, str) and question.strip() != "", path, where_q,
                         "empty or missing 'question'")
                if qa.get("is_impossible") is True:
                    summary.unanswerable += 1
                    continue
                answers = qa.get("answers")
                _require(isinstance(answers, list) and len(answers) > 0, path, where_q,
                         "empty or missing 'answers' list (every question needs at least one gold answer)")
                for ans_i, ans in enumerate(answers):
                    _require(isinstance(ans, dict) and isinstance(ans.get("text"), str) and ans["text"].strip(),
                             path, f"{where_q}.answers[{ans_i}]", "expected an object with a non-empty 'text'")
                texts = [ans["text"] for ans in answers]
                if not any(t in context for t in texts):
                    summary.answers_not_in_context += 1
                    continue
                # Only kept questions count: a skipped answer is reported once, as skipped.
                summary.answer_start_mismatches += sum(
                    not (isinstance(a.get("answer_start"), int)
                         and context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"])
                    for a in answers)
                records.append({"id": str(qid), "title": nfc(title), "question": nfc(question.strip()),
                                "answers": [nfc(t) for t in texts], "context": nfc(context)})
    counts = Counter(r["question"] for r in records)
    summary.questions = len(records)
    summary.distinct_questions = len(counts)
    summary.duplicate_questions = {q: n for q, n in counts.items() if n > 1}
    ids = Counter(r["id"] for r in records)
    dup_ids = [i for i, n in ids.items() if n > 1]
    if dup_ids:
        raise KorquadTuneError(f"{path}: question ids must be unique; repeated: {dup_ids[:5]}")
    if summary.answer_start_mismatches:
        log.warning("%s: %d answers have an answer_start that does not point at their text (kept)",
                    path, summary.answer_start_mismatches)
    return records, summary


# ------------------------------------------------------------------ held-out sets that measure knowledge
def stable_rank(text: str) -> str:
    """A deterministic, order-free pick among candidates (not the first or last, which correlate with position)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _overlaps(a: str, b: str) -> bool:
    return a in b or b in a


def split_heldout(records: list[dict]) -> dict[str, list[dict]]:
    """Split questions into {"trained", "rephrased", "unseen"}, deterministically.

    rephrased: KorQuAD often has several questions, by different annotators, for the same answer span of the
    same paragraph; the first of each group trains, the others are held out (human-written rephrasings).
    unseen: in each paragraph that keeps at least three questions, one whose answer no other question of the
    article asks for (nor a part of it, nor a longer span holding it) is held out: the fact sits in a trained
    paragraph, and no training question asks it.
    """
    by_paragraph: dict[str, list[dict]] = {}
    answers_by_title: dict[str, list[tuple[str, str]]] = {}
    for rec in records:
        by_paragraph.setdefault(rec["context"], []).append(rec)
        answers_by_title.setdefault(rec["title"], []).append((rec["id"], normalize_answer(rec["answers"][0])))
    out: dict[str, list[dict]] = {"trained": [], "rephrased": [], "unseen": []}
    held: set[str] = set()
    for context, recs in by_paragraph.items():
        firsts: dict[tuple, dict] = {}
        for rec in recs:
            answer = rec["answers"][0]
            span = (context.find(answer), normalize_answer(answer))
            if span in firsts:
                out["rephrased"].append(rec)
                held.add(rec["id"])
            else:
                firsts[span] = rec
        if len(firsts) < 3:
            continue

        def asked_elsewhere(rec: dict) -> bool:
            mine = normalize_answer(rec["answers"][0])
            return not mine or any(i != rec["id"] and _overlaps(mine, other)
                                   for i, other in answers_by_title[rec["title"]])

        lonely = [r for r in firsts.values() if not asked_elsewhere(r)]
        if lonely:
            pick = min(lonely, key=lambda r: stable_rank(r["id"]))
            out["unseen"].append(pick)
            held.add(pick["id"])
    out["trained"] = [r for r in records if r["id"] not in held]
    return out


def paragraphs_of(records: list[dict]) -> list[dict]:
    """The distinct paragraphs the records come from, in order: {id, title, context}."""
    seen: dict[str, dict] = {}
    for rec in records:
        if rec["context"] not in seen:
            seen[rec["context"]] = {"id": f"p{len(seen)}", "title": rec["title"], "context": rec["context"]}
    return list(seen.values())


def prepare(out: str | Path, data: str | Path | None = None, articles: int | None = None,
            limit: int | None = None, holdout: bool = True) -> tuple[Path, SquadSummary]:
    """Write RUN_DIR/qa.jsonl (the training questions), the held-out sets rephrased.jsonl and unseen.jsonl,
    passages.jsonl (the paragraphs) and prepare.json, from a SQuAD-format file (the shipped dev set by default).

    `holdout=False` trains on every question and holds nothing out."""
    for flag, value in (("--articles", articles), ("--limit", limit)):
        if value is not None and value < 1:
            raise KorquadTuneError(f"{flag} {value}: must be 1 or more (leave it out to keep everything)")
    source = Path(data) if data else shipped_dev_path()
    ensure_dir(out, "run folder (--out)", create=False)
    records, summary = parse_squad(source, articles=articles)
    if limit is not None:
        records = records[:limit]
        summary.articles = len({r["title"] for r in records})
        summary.questions = len(records)
        summary.distinct_questions = len({r["question"] for r in records})
    if not records:
        skipped = summary.skipped()
        why = f" (skipped {' and '.join(skipped)})" if skipped else ""
        raise KorquadTuneError(f"{source}: no questions found{why}; check --articles/--limit, and that each paragraph "
                               "has a non-empty context holding its questions' answers")
    sets = split_heldout(records) if holdout else {"trained": records, "rephrased": [], "unseen": []}
    run = RunDir(out)
    _refuse_to_orphan_results(run, sets["trained"])
    for name in HELDOUT_SETS:
        write_jsonl(getattr(run, name), sets[name])
    write_jsonl(run.passages, paragraphs_of(records))
    write_jsonl(run.qa, sets["trained"])  # last: its presence marks a finished prepare
    write_json(run.prepare_summary, {
        "source": summary.source, "articles": summary.articles, "questions": summary.questions,
        "distinct_questions": summary.distinct_questions,
        "duplicate_questions": summary.duplicate_questions,
        "answer_start_mismatches": summary.answer_start_mismatches,
        "empty_contexts_skipped": summary.empty_contexts,
        "answers_not_in_context_skipped": summary.answers_not_in_context,
        "unanswerable_skipped": summary.unanswerable,
        "trained": len(sets["trained"]), **{name: len(sets[name]) for name in HELDOUT_SETS},
        "articles_arg": articles, "limit_arg": limit, "holdout": holdout,
    })
    return run.qa, summary


HELDOUT_SETS = ("rephrased", "unseen")
DOWNSTREAM = ("augmentation", "material", "adapters", "eval_root", "stamp")


def _refuse_to_orphan_results(run: RunDir, trained: list[dict]) -> None:
    """New questions in a folder whose paraphrases, adapters or evaluations were made from the old ones would
    mix two experiments: refuse, naming what is there."""
    if not run.qa.exists() or read_jsonl(run.qa) == trained:
        return
    there = [getattr(run, name).name for name in DOWNSTREAM if getattr(run, name).exists()]
    if there:
        raise KorquadTuneError(f"{run.root} holds results made from other questions ({', '.join(there)}); "
                               "prepare into a new folder, or remove them first")


def load_passages(run_dir: str | Path) -> list[dict]:
    path = RunDir(run_dir).passages
    if not path.exists():
        raise KorquadTuneError(f"{path}: not found; run `korquad-tune prepare --out {run_dir}` again (runs "
                               "prepared before passages existed lack it)")
    return read_jsonl(path)


def load_qa(run_dir: str | Path) -> list[dict]:
    path = RunDir(run_dir).qa
    if not path.exists():
        raise KorquadTuneError(f"{path}: not found; run `korquad-tune prepare --out {run_dir}` first")
    return read_jsonl(path)


def load_questions(path: str | Path) -> list[dict]:
    """Questions to evaluate: JSONL (id, question, answers) or a SQuAD-format JSON file."""
    path = Path(path)
    if path.suffix.lower() in (".json", ".gz"):
        return parse_squad(path)[0]
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, rec in iter_jsonl(path):
        for key in ("id", "question", "answers"):
            if key not in rec:
                raise KorquadTuneError(f"{path}, line {lineno}: missing {key!r} (need id, question, answers)")
        if not isinstance(rec["answers"], list) or not rec["answers"] or not all(
                isinstance(a, str) and a.strip() for a in rec["answers"]):
            raise KorquadTuneError(f"{path}, line {lineno} (id {rec['id']!r}): 'answers' must be a non-empty "
                                   "list of strings")
        if not str(rec["question"]).strip():
            raise KorquadTuneError(f"{path}, line {lineno} (id {rec['id']!r}): empty 'question'")
        if str(rec["id"]) in seen:
            raise KorquadTuneError(f"{path}, line {lineno}: id {rec['id']!r} repeats line {seen[str(rec['id'])]}; "
                                   "question ids must be unique")
        seen[str(rec["id"])] = lineno
        rows.append(rec | {"id": str(rec["id"])})
    if not rows:
        raise KorquadTuneError(f"{path}: no questions in file")
    return rows


# ------------------------------------------------------------------ what the models learn from
def load_augmentation(run: RunDir, rewordings_only: bool = False) -> dict[str, list[str]]:
    """{question: [paraphrase, ...]}; with `rewordings_only`, without the noisy copies (words left out or
    swapped) that the rules backend lists under "noisy"."""
    if not run.augmentation.exists():
        raise KorquadTuneError(f"{run.augmentation}: not found; run `korquad-tune augment {run.root}` first, "
                               "or train with --no-augment")
    doc = read_json(run.augmentation)
    table = doc.get("augmentation_dict", doc) if isinstance(doc, dict) else doc
    if not isinstance(table, dict) or not all(isinstance(v, list) and all(isinstance(p, str) for p in v)
                                              for v in table.values()):
        raise KorquadTuneError(f"{run.augmentation}: expected {{question: [paraphrase, ...]}} (lists of strings); "
                               f"run `korquad-tune augment {run.root}` again")
    noisy = doc.get("noisy", {}) if rewordings_only and isinstance(doc, dict) else {}
    if not isinstance(noisy, dict):
        raise KorquadTuneError(f"{run.augmentation}: 'noisy' should be {{question: [variant, ...]}}; "
                               f"run `korquad-tune augment {run.root}` again")
    if not noisy:
        return table
    listed = {q: set(vs) for q, vs in noisy.items()}
    return {q: [v for v in vs if v not in listed.get(q, ())] for q, vs in table.items()}


def training_pairs(qa: list[dict], augmentation: dict[str, list[str]] | None,
                   paraphrases_per_question: int | None = None) -> list[tuple[str, str]]:
    """(question, answer) pairs: every original question, then each of its paraphrases with the same answer."""
    pairs = []
    for rec in qa:
        answer = rec["answers"][0]
        pairs.append((rec["question"], answer))
        paras = (augmentation or {}).get(rec["question"], [])
        for p in paras[:paraphrases_per_question] if paraphrases_per_question is not None else paras:
            pairs.append((p, answer))
    return pairs


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def answer_sentence(context: str, answer: str) -> str:
    """The sentence of `context` that holds `answer` (its first occurrence), or "" where none does whole."""
    at = context.find(answer)
    if at < 0 or not answer:
        return ""
    start = 0
    for sentence in _SENTENCE_END.split(context):
        start = context.find(sentence, start)
        if start <= at < start + len(sentence):
            return sentence if at + len(answer) <= start + len(sentence) else ""
        start += len(sentence)
    return ""


def with_answer_sentences(pairs: list[tuple[str, str]], qa: list[dict]) -> list[tuple[str, str, str]]:
    """Each (question, answer) pair with the sentence its answer stands in: a trained question's own, a
    paraphrase's that of the trained questions with its answer ("" where no sentence holds it whole)."""
    own = {(r["question"], r["answers"][0]): answer_sentence(r["context"], r["answers"][0]) for r in qa}
    by_answer: dict[str, list[str]] = {}
    for (_, answer), sentence in own.items():
        if sentence and sentence not in by_answer.setdefault(answer, []):
            by_answer[answer].append(sentence)
    return [(q, a, own.get((q, a)) or " ".join(by_answer.get(a, []))) for q, a in pairs]


def run_pairs(run_dir: str | Path, augment: bool = True, rewordings_only: bool = False) -> list[tuple[str, str]]:
    """The run's training questions (and their paraphrases, when made) with answers: what the `aug` adapter
    learns and `export-autotrain` writes; with `rewordings_only` (what the retrieval baseline looks up), without
    the noisy copies."""
    run = RunDir(run_dir)
    augmentation = load_augmentation(run, rewordings_only) if augment and run.augmentation.exists() else None
    return training_pairs(load_qa(run_dir), augmentation)
