"""Data stage: read SQuAD-format v1 files (KorQuAD 1.0, SQuAD 1.1) into one record per question.

Every question is kept, even when its text repeats (the original notebook keyed a dict by question text and
silently lost duplicates); duplicates are counted in the summary instead.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.io import iter_jsonl, read_jsonl, write_json, write_jsonl
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


def _read_squad_json(path: Path) -> dict:
    if not path.exists():
        raise KorquadTuneError(f"{path}: file not found (pass --data with a SQuAD-format JSON file)")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if not raw.strip():
        raise KorquadTuneError(f"{path}: file is empty; expected SQuAD-format JSON with a 'data' list")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise KorquadTuneError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise KorquadTuneError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg} (is the file truncated?)"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise KorquadTuneError(f"{path}: not SQuAD format: expected a top-level object with a 'data' list")
    return doc


def _require(cond: bool, path: Path, where: str, what: str) -> None:
    if not cond:
        raise KorquadTuneError(f"{path}: {where}: {what}")


def parse_squad(path: str | Path, articles: int | None = None) -> tuple[list[dict], SquadSummary]:
    """Parse a SQuAD v1 file into records {id, title, question, answers, context}.

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
            for q_i, qa in enumerate(para["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                where_q = f"{where_p}.qas[{q_i}] (id {qid!r})"
                _require(isinstance(qa, dict), path, where_q, "expected an object")
                _require(isinstance(qid, (str, int)) and str(qid) != "", path, where_q, "missing 'id'")
                question = qa.get("question")
                _require(isinstance(question, str) and question.strip() != "", path, where_q,
                         "empty or missing 'question'")
                answers = qa.get("answers")
                _require(isinstance(answers, list) and len(answers) > 0, path, where_q,
                         "empty or missing 'answers' list (every question needs at least one gold answer)")
                texts = []
                for ans_i, ans in enumerate(answers):
                    _require(isinstance(ans, dict) and isinstance(ans.get("text"), str) and ans["text"].strip(),
                             path, f"{where_q}.answers[{ans_i}]", "expected an object with a non-empty 'text'")
                    start = ans.get("answer_start")
                    if not (isinstance(start, int) and context[start:start + len(ans["text"])] == ans["text"]):
                        summary.answer_start_mismatches += 1
                    texts.append(ans["text"])
                records.append({"id": str(qid), "title": title, "question": question.strip(),
                                "answers": texts, "context": context})
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


def prepare(out: str | Path, data: str | Path | None = None, articles: int | None = None,
            limit: int | None = None) -> tuple[Path, SquadSummary]:
    """Write RUN_DIR/qa.jsonl (+ prepare.json) from a SQuAD-format file, the shipped dev set by default."""
    source = Path(data) if data else shipped_dev_path()
    records, summary = parse_squad(source, articles=articles)
    if limit is not None:
        records = records[:limit]
        summary.questions = len(records)
        summary.distinct_questions = len({r["question"] for r in records})
    if not records:
        raise KorquadTuneError(f"{source}: no questions found (check --articles/--limit)")
    run = RunDir(out)
    write_jsonl(run.qa, records)
    write_json(run.prepare_summary, {
        "source": summary.source, "articles": summary.articles, "questions": summary.questions,
        "distinct_questions": summary.distinct_questions,
        "duplicate_questions": summary.duplicate_questions,
        "answer_start_mismatches": summary.answer_start_mismatches,
        "articles_arg": articles, "limit_arg": limit,
    })
    return run.qa, summary


def load_qa(run_dir: str | Path) -> list[dict]:
    path = RunDir(run_dir).qa
    if not path.exists():
        raise KorquadTuneError(f"{path}: not found; run `korquad-tune prepare --out {run_dir}` first")
    return read_jsonl(path)


def load_questions(path: str | Path) -> list[dict]:
    """Questions to evaluate: JSONL (id, question, answers) or a SQuAD-format JSON file."""
    path = Path(path)
    if path.suffix in (".json", ".gz"):
        return parse_squad(path)[0]
    rows = []
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
        rows.append(rec | {"id": str(rec["id"])})
    if not rows:
        raise KorquadTuneError(f"{path}: no questions in file")
    return rows
