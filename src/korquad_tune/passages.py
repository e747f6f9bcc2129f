"""Study stage: material that teaches the facts of the training paragraphs, not only the training questions.

A model trained on question strings alone answers those strings and little else (Allen-Zhu & Li 2024); it
learns to use a fact from another angle when it sees the fact in several forms. For every paragraph of the
training articles this stage writes RUN_DIR/material.json with
- the paragraph itself (title + text), learned as plain text;
- question/answer pairs about its sentences: offline with Kiwi (`rules`: cloze-to-question, see
  korean_cloze.py), or written by an LLM (`openai`: statements and question/answer pairs per paragraph,
  Active Reading / EntiGraph style, cached and resumable), or from a file (`file`).
Every pair passes the same filters: its answer occurs in the paragraph (nothing invented), the question does
not contain the answer, no duplicates, and no question identical to a held-out one.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.llm_api import DEFAULT_API_MODEL
from korquad_tune.fileio import iter_jsonl, read_json, write_json
from korquad_tune.metrics import normalize_answer
from korquad_tune.rundir import RunDir

BACKENDS = ("rules", "openai", "file")
DEFAULT_BACKEND = "rules"
# The instruction sent per paragraph by the `openai` backend (Korean, like the paraphrase instruction).
STUDY_PROMPT = (
    "다음은 '{title}'에 관한 문단입니다.\n\n{context}\n\n"
    "이 문단의 사실을 빠짐없이 익히기 위한 학습 자료를 만들어 주세요.\n"
    "1) 문단의 사실 하나하나를 다른 표현으로 다시 쓴 짧은 문장들 (\"statements\")\n"
    "2) 문단의 모든 사실에 대한 질문과 답 {n}개 (\"qa\"): 답은 문단에 나오는 그대로의 짧은 구절(이름, 날짜, 숫자, "
    "명사구)이어야 하고, 질문에는 답이 들어가면 안 됩니다.\n"
    "JSON 하나로만 답하세요: {{\"statements\": [\"...\"], \"qa\": [{{\"question\": \"...\", \"answer\": \"...\"}}]}}"
)


def _key(text: str) -> str:
    return re.sub(r"[\s?.!~]", "", text)


def filter_material(pairs: list[dict], context: str, banned_questions: set[str], counts: Counter) -> list[dict]:
    """Keep pairs whose answer is in the paragraph, not in the question, not repeated, not a held-out question."""
    kept, seen = [], set()
    squashed_context = normalize_answer(context).replace(" ", "")
    for p in pairs:
        q, a = " ".join(str(p.get("question", "")).split()), " ".join(str(p.get("answer", "")).split())
        gold = normalize_answer(a).replace(" ", "")
        if not q or not gold:
            counts["empty"] += 1
        elif gold not in squashed_context:
            counts["answer_not_in_paragraph"] += 1
        elif gold in normalize_answer(q).replace(" ", ""):
            counts["contains_answer"] += 1
        elif _key(q) in seen:
            counts["duplicate"] += 1
        elif _key(q) in banned_questions:
            counts["equals_heldout_question"] += 1
        else:
            seen.add(_key(q))
            kept.append({**p, "question": q, "answer": a})
    return kept


# ------------------------------------------------------------------ backends: {paragraph id: (pairs, statements)}
def _rules(paragraphs: list[dict], dropout: int) -> tuple[dict, dict]:
    from rich.progress import track

    from korquad_tune.korean_cloze import article_person, cloze_questions
    articles: dict[str, list[str]] = {}
    for p in paragraphs:
        articles.setdefault(p["title"], []).append(p["context"])
    people = {title: article_person(title, texts) for title, texts in articles.items()}
    out = {p["id"]: (with_dropout([{"question": c["question"], "answer": c["answer"], "sentence": c["sentence"],
                                    "source": "rules"}
                                   for c in cloze_questions(p["context"], p["title"], people[p["title"]])],
                                  dropout), [])
           for p in track(paragraphs, description="cloze questions", transient=True)}
    return out, {"backend": "rules", "method": "Kiwi cloze-to-question over every sentence",
                 "dropout": dropout}


def with_dropout(pairs: list[dict], copies: int) -> list[dict]:
    """The pairs, and `copies` of each with a third of the question's words left out at random (seeded by the
    question). A cloze question holds its whole sentence; people ask about the same fact with a few of those
    words and others of their own, so the model should not need every word to recall the answer."""
    import random
    import zlib

    from korquad_tune.korean_rules import word_dropout
    shorter = [{**p, "question": q, "source": p["source"] + "-dropout"} for p in pairs
               for q in dict.fromkeys(word_dropout(p["question"], random.Random(zlib.crc32(p["question"].encode())),
                                                   copies))]
    return pairs + shorter  # whole questions first: a shortened copy never displaces one as a duplicate


def parse_study_reply(reply: str) -> tuple[list[dict], list[str]]:
    """The JSON object an LLM answered with (inside a ``` fence or not); ([], []) when there is none."""
    match = re.search(r"\{.*\}", reply, flags=re.S)
    try:
        doc = json.loads(match.group(0)) if match else {}
    except json.JSONDecodeError:
        return [], []
    qa = [x for x in doc.get("qa", []) if isinstance(x, dict)] if isinstance(doc, dict) else []
    statements = [str(s) for s in doc.get("statements", []) if isinstance(s, str)] if isinstance(doc, dict) else []
    return [{"question": x.get("question", ""), "answer": x.get("answer", ""), "source": "openai"} for x in qa], \
        statements


def _openai(paragraphs: list[dict], run: RunDir, n: int, base_url: str | None, model: str, concurrency: int,
            timeout: float) -> tuple[dict, dict]:
    from rich.progress import Progress

    from korquad_tune.llm_api import chat_many
    prompts = {f"study:{n}:{p['context']}": STUDY_PROMPT.format(title=p["title"], context=p["context"], n=n)
               for p in paragraphs}
    with Progress(transient=True) as bar:
        task = bar.add_task("openai study material", total=len(prompts))
        replies = chat_many(prompts, run.material_cache, model=model, base_url=base_url, concurrency=concurrency,
                            timeout=timeout, temperature=0.7, max_tokens=2048,
                            progress=lambda k: bar.advance(task, k))
    out = {p["id"]: parse_study_reply(replies[f"study:{n}:{p['context']}"]) for p in paragraphs}
    return out, {"backend": "openai", "model": model, "base_url": base_url or "https://api.openai.com/v1",
                 "prompt": STUDY_PROMPT}


def _file(paragraphs: list[dict], path: str | Path) -> tuple[dict, dict]:
    """JSONL lines (or a JSON list) of {context or paragraph id, question, answer}."""
    path = Path(path)
    rows = [r for _, r in iter_jsonl(path)] if path.suffix == ".jsonl" else read_json(path)
    if not isinstance(rows, list):
        raise KorquadTuneError(f"{path}: expected a list of {{context, question, answer}} records")
    by_context = {p["context"]: p["id"] for p in paragraphs}
    ids = {p["id"] for p in paragraphs}
    out: dict = {p["id"]: ([], []) for p in paragraphs}
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not isinstance(r.get("question"), str) or not isinstance(r.get("answer"), str):
            raise KorquadTuneError(f"{path}, record {i}: need 'question' and 'answer' strings")
        pid = r.get("paragraph") if r.get("paragraph") in ids else by_context.get(r.get("context", ""))
        if pid is not None:
            out[pid][0].append({"question": r["question"], "answer": r["answer"], "source": "file"})
    return out, {"backend": "file", "source": str(path)}


def study(run_dir: str | Path, backend: str = DEFAULT_BACKEND, n: int = 20, file: str | Path | None = None,
          base_url: str | None = None, model: str = DEFAULT_API_MODEL, dropout: int = 0, concurrency: int = 4,
          timeout: float = 60.0) -> tuple[Path, dict]:
    """Write RUN_DIR/material.json for the paragraphs in RUN_DIR/passages.jsonl."""
    from korquad_tune.data import HELDOUT_SETS, load_passages
    run = RunDir(run_dir)
    paragraphs = load_passages(run_dir)
    if backend == "rules":
        raw, prov = _rules(paragraphs, dropout)
    elif backend == "openai":
        raw, prov = _openai(paragraphs, run, n, base_url, model, concurrency, timeout)
    elif backend == "file":
        if file is None:
            raise KorquadTuneError("study backend 'file' needs --file PATH (JSONL of context, question, answer)")
        raw, prov = _file(paragraphs, file)
    else:
        raise KorquadTuneError(f"unknown study backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    banned = {_key(r["question"]) for name in HELDOUT_SETS if getattr(run, name).exists()
              for _, r in iter_jsonl(getattr(run, name))}
    if run.heldout.exists():
        banned |= {_key(r["question"]) for _, r in iter_jsonl(run.heldout)}
    counts: Counter = Counter()
    qa, statements = [], []
    for p in paragraphs:
        pairs, said = raw.get(p["id"], ([], []))
        qa += [{**x, "paragraph": p["id"]} for x in filter_material(pairs, p["context"], banned, counts)]
        statements += [{"text": s, "paragraph": p["id"]} for s in said if s.strip()]
    summary = {"paragraphs": len(paragraphs), "qa": len(qa), "statements": len(statements),
               "dropped": dict(counts), **{k: v for k, v in prov.items() if k != "prompt"}}
    write_json(run.material, {
        "paragraphs": paragraphs, "qa": qa, "statements": statements,
        "provenance": {**prov, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "summary": summary,
    })
    return run.material, summary


def load_material(run: RunDir) -> dict:
    if not run.material.exists():
        raise KorquadTuneError(f"{run.material}: not found; run `korquad-tune study {run.root}` first")
    doc = read_json(run.material)
    if not isinstance(doc, dict) or not isinstance(doc.get("qa"), list) or not isinstance(doc.get("paragraphs"), list):
        raise KorquadTuneError(f"{run.material}: not a material file (expected paragraphs, qa, statements)")
    return doc


def study_rows(qa: list[dict]) -> list[tuple]:
    """(question, answer, sentence number) of each material question, as `questions.json` keeps them: one number per
    distinct sentence; (question, answer) where the backend does not say which sentence (only `rules` does)."""
    sentences: dict[str, int] = {}
    return [(x["question"], x["answer"]) + ((sentences.setdefault(x["sentence"], len(sentences)),)
                                            if x.get("sentence") else ()) for x in qa]


def study_sentences(qa: list[dict]) -> list[str]:
    """The sentences `study_rows` numbers, in number order: what recall reads a study question by, besides its
    own words."""
    return list(dict.fromkeys(x["sentence"] for x in qa if x.get("sentence")))


def material_texts(doc: dict) -> list[str]:
    """Plain texts to learn: each paragraph under its title, then the statements, if any."""
    from korquad_tune.korean_cloze import clean_title
    return [f"{clean_title(p['title'])}\n{p['context']}" for p in doc["paragraphs"]] + \
        [s["text"] for s in doc.get("statements", [])]
