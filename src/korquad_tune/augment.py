"""Augment stage: paraphrases of every training question, each becoming one more prompt with the same answer.

Backends: `openai` (any OpenAI-compatible chat endpoint, the original experiment's Korean instruction),
`rules` (offline, Kiwi-based), `file` (an existing augmentation_dict JSON or JSONL) and `shipped` (the
paraphrase set shipped for the default 85 questions). Every backend's output goes through the same filters.
Output: RUN_DIR/augmentation.json = {"augmentation_dict": {question: [paraphrases]}, "provenance", "summary"}.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.llm_api import DEFAULT_API_MODEL
from korquad_tune.fileio import iter_jsonl, read_json, write_json
from korquad_tune.metrics import normalize_answer
from korquad_tune.rundir import RunDir

# The original experiment's instruction to ChatGPT, verbatim ("make 10 similar sentences with the same meaning
# for data augmentation").
ORIGINAL_PROMPT = "{question}\n\n위 문장을 Data Augmentation하기 위해서 뜻은 같지만 비슷한 문장 {n}개를 만들어줘"
SHIPPED_TRAIN = "paraphrases_train.jsonl"
SHIPPED_PROVENANCE = ("10 paraphrases per question of the first three KorQuAD v1.0 dev articles, written for "
                      "korquad-tune by an LLM (Anthropic Claude) as ChatGPT wrote them in the original experiment; "
                      "see resources/NOTICE")
SHIPPED_HELDOUT = "heldout_paraphrases.jsonl"
MAX_LENGTH_RATIO = 2.0
MIN_LENGTH_RATIO = 0.3  # a reply shorter than this is a fragment, not a question


# ------------------------------------------------------------------ parsing an LLM's list
_ITEM_PREFIX = re.compile(r"^\s*(?:[-*•·]|\(?\d{1,2}[.)\]:]|\d{1,2}\s*[.)]|[①-⑳])\s*")


def parse_list(reply: str) -> list[str]:
    """Items of a numbered or bulleted list (or plain lines); quotes and list markers stripped."""
    items = []
    for line in reply.splitlines():
        line = line.strip()
        if not line or line.endswith(":") and len(line) < 40:  # "다음은 10개의 문장입니다:" and the like
            continue
        line = _ITEM_PREFIX.sub("", line).strip()
        line = line.strip("\"'“”‘’`").strip()
        if line:
            items.append(line)
    return items


# ------------------------------------------------------------------ filters (every backend)
def _near_duplicate(a: str, b: str) -> bool:
    """One character apart (ignoring spaces and punctuation): a typo or a dropped particle, not a rewording."""
    from difflib import SequenceMatcher
    x, y = _key(a), _key(b)
    same = sum(block.size for block in SequenceMatcher(None, x, y, autojunk=False).get_matching_blocks())
    return max(len(x), len(y)) - same <= 1


def filter_paraphrases(question: str, answers: list[str], candidates: list[str], n: int,
                       counts: Counter) -> list[str]:
    """Drop empties, the original, exact/near duplicates, answer leaks and runaway lengths; keep at most n."""
    kept: list[str] = []
    norm_q = _key(question)
    gold = [normalize_answer(a).replace(" ", "") for a in answers if normalize_answer(a)]
    for cand in candidates:
        cand = " ".join(str(cand).split())
        key = _key(cand)
        if not key:
            counts["empty"] += 1
        elif key == norm_q:
            counts["original"] += 1
        elif any(key == _key(k) for k in kept):
            counts["duplicate"] += 1
        elif any(_near_duplicate(cand, k) for k in kept):
            counts["near_duplicate"] += 1
        elif any(g and g in normalize_answer(cand).replace(" ", "") and g not in norm_q for g in gold):
            counts["contains_answer"] += 1
        elif len(cand) > MAX_LENGTH_RATIO * len(question) + 10:
            counts["too_long"] += 1
        elif len(key) < MIN_LENGTH_RATIO * len(norm_q):
            counts["too_short"] += 1
        elif len(kept) >= n:
            counts["over_n"] += 1
        else:
            kept.append(cand)
    return kept


def _key(text: str) -> str:
    return re.sub(r"[\s?.!~]", "", text)


# ------------------------------------------------------------------ backends
def _rules(qa: list[dict], n: int, seed: int) -> tuple[dict[str, list[str]], dict]:
    from korquad_tune.korean_rules import swappable_words, tagged_rule_paraphrases
    from rich.progress import track
    words = swappable_words([r["question"] for r in qa])
    tagged = {r["question"]: tagged_rule_paraphrases(r["question"], n=n + 4, seed=seed, swap_words=words)
              for r in track(qa, description="rules paraphrases", transient=True)}
    noisy = sorted({v for variants in tagged.values() for v, is_noisy in variants if is_noisy})
    return {q: [v for v, _ in variants] for q, variants in tagged.items()}, {"backend": "rules", "seed": seed,
                                                                             "noisy": noisy}


def load_augmentation_file(path: str | Path) -> dict[str, list[str]]:
    """An augmentation_dict JSON ({question: [..]}, optionally under "augmentation_dict"), or JSONL lines with
    question (or original) and paraphrases."""
    path = Path(path)
    if path.suffix == ".jsonl":
        out: dict[str, list[str]] = {}
        for lineno, rec in iter_jsonl(path):
            q = rec.get("question", rec.get("original"))
            paras = rec.get("paraphrases")
            if not isinstance(q, str) or not isinstance(paras, list):
                raise KorquadTuneError(f"{path}, line {lineno}: need 'question' (string) and 'paraphrases' (list)")
            out.setdefault(q, []).extend(str(p) for p in paras)
        return out
    doc = read_json(path)
    doc = doc.get("augmentation_dict", doc) if isinstance(doc, dict) else doc
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise KorquadTuneError(f"{path}: expected {{question: [paraphrases, ...]}} (the augmentation_dict shape)")
    return {str(k): [str(x) for x in v] for k, v in doc.items()}


def shipped_resource(name: str) -> Path:
    return Path(str(files("korquad_tune").joinpath("resources", name)))


def _shipped() -> tuple[dict[str, list[str]], dict]:
    return load_augmentation_file(shipped_resource(SHIPPED_TRAIN)), {"backend": "shipped",
                                                                      "source": SHIPPED_PROVENANCE}


def _openai(qa: list[dict], n: int, run: RunDir, base_url: str | None, model: str, concurrency: int,
            timeout: float, prompt: str) -> tuple[dict[str, list[str]], dict]:
    from rich.progress import Progress

    from korquad_tune.llm_api import chat_many
    questions = list(dict.fromkeys(r["question"] for r in qa))
    prompts = {f"aug:{n}:{q}": prompt.format(question=q, n=n) for q in questions}
    with Progress(transient=True) as bar:
        task = bar.add_task("openai paraphrases", total=len(prompts))
        replies = chat_many(prompts, run.augment_cache, model=model, base_url=base_url, concurrency=concurrency,
                            timeout=timeout, temperature=0.7, progress=lambda k: bar.advance(task, k))
    return ({q: parse_list(replies[f"aug:{n}:{q}"]) for q in questions},
            {"backend": "openai", "model": model, "base_url": base_url or "https://api.openai.com/v1"})


def augment(run_dir: str | Path, backend: str = "shipped", n: int = 10, file: str | Path | None = None,
            base_url: str | None = None, model: str = DEFAULT_API_MODEL, concurrency: int = 4, timeout: float = 60.0,
            seed: int = 0, prompt: str = ORIGINAL_PROMPT) -> tuple[Path, dict]:
    """Write RUN_DIR/augmentation.json for the questions in RUN_DIR/qa.jsonl."""
    from korquad_tune.data import load_qa
    if n < 1:
        raise KorquadTuneError(f"--n {n}: paraphrases per question must be 1 or more")
    run = RunDir(run_dir)
    qa = load_qa(run_dir)
    if backend == "rules":
        raw, prov = _rules(qa, n, seed)
    elif backend == "file":
        if file is None:
            raise KorquadTuneError("backend 'file' needs --file PATH (augmentation_dict JSON or JSONL)")
        raw, prov = load_augmentation_file(file), {"backend": "file", "source": str(file)}
    elif backend == "shipped":
        raw, prov = _shipped()
    elif backend == "openai":
        raw, prov = _openai(qa, n, run, base_url, model, concurrency, timeout, prompt)
    else:
        raise KorquadTuneError(f"unknown augment backend {backend!r}; choose openai, rules, file or shipped")
    noisy = set(prov.pop("noisy", ()))
    counts: Counter = Counter()
    answers_by_q: dict[str, list[str]] = {}
    for r in qa:  # repeated question texts share one entry; pool their gold answers for the leak filter
        answers_by_q.setdefault(r["question"], []).extend(r["answers"])
    result: dict[str, list[str]] = {}
    for q, answers in answers_by_q.items():
        result[q] = filter_paraphrases(q, answers, raw.get(q, []), n, counts)
    missing = sum(1 for q in answers_by_q if not result[q])
    if backend in ("shipped", "file") and missing == len(answers_by_q):
        raise KorquadTuneError(f"the {backend} paraphrases match none of the {len(answers_by_q)} questions in "
                               f"{run.qa}; the shipped set covers the default run (first 3 dev articles)")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    summary = {"questions": len(result), "kept": sum(len(v) for v in result.values()),
               "questions_without_paraphrases": missing, "dropped": dict(counts), "n": n, **prov}
    doc = {"augmentation_dict": result}
    kept_noisy = {q: [v for v in vs if v in noisy] for q, vs in result.items() if any(v in noisy for v in vs)}
    if kept_noisy:  # training copies with words left out or swapped: the adapters learn from them, the
        # retrieval baseline does not look them up (they are noise to BM25, not wordings of the question)
        doc["noisy"] = kept_noisy
        summary["noisy"] = sum(len(v) for v in kept_noisy.values())
    doc["provenance"] = {q: {**prov, "time": stamp, "count": len(v)} for q, v in result.items()}
    doc["summary"] = summary
    write_json(run.augmentation, doc)
    return run.augmentation, summary


def load_shipped_heldout() -> list[dict]:
    from korquad_tune.fileio import read_jsonl
    return read_jsonl(shipped_resource(SHIPPED_HELDOUT))
