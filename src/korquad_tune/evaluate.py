"""Evaluate stage: answer a question file with one or more systems and score them the KorQuAD v1 way.

Systems (see `Systems`, the one dispatcher behind `run`, `evaluate`, `ask` and `serve`): `base`, each adapter,
`open-book` / `rag` (a reader adapter with a paragraph), `retrieval`, `openai`, and `predictions` (answers from
anywhere). Each writes `predictions.jsonl` and `metrics.json` into its own folder; several adapters share one
base-model load.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.data import load_questions, nfc
from korquad_tune.llm_api import DEFAULT_API_MODEL
from korquad_tune.generate import (BATCH_SIZE, BEAMS, DECODINGS, DEFAULT_DECODING, MAX_NEW_TOKENS, RECALL_K,
                                   RECALL_PRIOR, RECALL_STUDY_PRIOR, RECALL_TRAINED_SHARE)
from korquad_tune.prompts import DEFAULT_TEMPLATE
from korquad_tune.fileio import iter_jsonl, read_json, write_json, write_jsonl
from korquad_tune.metrics import score_one
from korquad_tune.stats import aggregate, mcnemar
from korquad_tune.models import (ADAPTER_META, DEFAULT_MODEL, read_adapter_meta, read_learned_answers,
                                 read_learned_questions)

OPENAI_QA_PROMPT = "다음 질문에 대한 답만 짧게 한 구절로 답하세요. 설명은 하지 마세요.\n질문: {question}\n답:"


# ------------------------------------------------------------------ scoring
def score_predictions(questions: list[dict], predictions: dict[str, str]) -> tuple[list[dict], dict]:
    """Per-question rows and aggregate metrics; a question with no prediction scores 0 (as officially)."""
    rows = []
    for q in questions:
        pred = predictions.get(q["id"], "")
        em, f1 = score_one(pred, q["answers"])
        rows.append({"id": q["id"], "question": q["question"], "prediction": pred, "gold": q["answers"],
                     "em": em, "f1": f1})
    return rows, aggregate([r["em"] for r in rows], [r["f1"] for r in rows])


def read_predictions(path: str | Path) -> dict[str, str]:
    preds: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, rec in iter_jsonl(path):
        if "id" not in rec or "prediction" not in rec:
            raise KorquadTuneError(f"{path}, line {lineno}: need 'id' and 'prediction'")
        qid = str(rec["id"])
        if qid in preds:
            raise KorquadTuneError(f"{path}, line {lineno}: a second prediction for id {qid!r} (first on line "
                                   f"{lines[qid]}); keep one per question")
        preds[qid], lines[qid] = str(rec["prediction"]), lineno
    return preds


def check_prediction_ids(preds: dict[str, str], questions: list[dict], predictions: str | Path,
                         questions_file: str | Path) -> None:
    unknown = set(preds) - {q["id"] for q in questions}
    if unknown:
        raise KorquadTuneError(f"{predictions}: {len(unknown)} ids are not in {questions_file}, e.g. "
                               f"{sorted(unknown)[:3]}")


def score_files(questions: str | Path, predictions: str | Path, out: str | Path | None = None) -> dict:
    """`korquad-tune score`: any system's predictions against a question file."""
    qs = load_questions(questions)
    preds = read_predictions(predictions)
    check_prediction_ids(preds, qs, predictions, questions)
    _, metrics = score_predictions(qs, preds)
    metrics["unanswered"] = sum(1 for q in qs if q["id"] not in preds)
    if out:
        write_json(out, metrics)
    return metrics


def write_system_result(out_dir: Path, system: str, questions: list[dict], answers: list[str],
                        extra: dict | None = None) -> tuple[dict, list[dict]]:
    """predictions.jsonl + metrics.json for one system on one question set (atomic writes); returns both."""
    rows, metrics = score_predictions(questions, {q["id"]: a for q, a in zip(questions, answers)})
    metrics = {"system": system, **metrics, **(extra or {})}
    write_jsonl(out_dir / "predictions.jsonl", rows)
    write_json(out_dir / "metrics.json", metrics)
    return metrics, rows


def read_system_result(out_dir: Path) -> tuple[dict, list[dict]] | None:
    if not (out_dir / "metrics.json").exists() or not (out_dir / "predictions.jsonl").exists():
        return None
    return read_json(out_dir / "metrics.json"), [r for _, r in iter_jsonl(out_dir / "predictions.jsonl")]


def paired_tests(results: dict[str, list[dict]]) -> list[dict]:
    """McNemar between every pair of systems evaluated on the same questions (EM right/wrong)."""
    names = list(results)
    tests = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra = {r["id"]: r["em"] > 0 for r in results[a]}
            rb = {r["id"]: r["em"] > 0 for r in results[b]}
            ids = [k for k in ra if k in rb]
            tests.append({"a": a, "b": b, **mcnemar([ra[k] for k in ids], [rb[k] for k in ids])})
    return tests


@contextmanager
def _progress(label: str | None, total: int):
    """A rich progress bar for long answer runs (silent for a handful of questions); yields advance(n)."""
    if not label or total < 8:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# ------------------------------------------------------------------ every system behind one call
OPEN_BOOK = ("open-book", "rag")  # the reader adapter with a paragraph in the prompt


class Systems:
    """Every way korquad-tune answers, behind one call: `answer(system, questions)`. `run`, `evaluate`, `ask`
    and `serve` all answer through it, so a system means the same thing everywhere.

    - `base`: the untuned model, same prompt; any loaded adapter by its name (`no-aug`, `aug`, `passages`, ...);
    - `open-book` / `rag`: the reader adapter given the question's own paragraph / the top `rag_k` BM25
      paragraphs of `run_dir`'s training articles;
    - `retrieval`: BM25 over `run_dir`'s training questions (and paraphrases), answering with the best match's
      answer; `openai`: an API model, closed-book, cached in `openai_cache`.
    With `decoding="learned"` a closed-book adapter answers only with an answer it was trained on (its
    `answers.json`): beam search with `beams` beams, each beam kept inside the trie of those answers. A small model
    that half-remembers "1944년" otherwise writes "5000년"; kept to what it learned, it ranks whole answers instead.
    With `decoding="recall"` (the default) each question's trie holds only the answers of the `recall_k` questions
    it learned that are most like the asked one (`questions.json`, `AnswerRecall`): the model picks among what its
    nearest lessons taught. Adapters without `questions.json` fall back to `learned`, without `answers.json` to
    greedy.
    The model loads on first use, once, with every adapter stacked on it.
    """

    def __init__(self, adapters: list[Path] = (), model: str | None = None, run_dir: str | Path | None = None,
                 batch_size: int = BATCH_SIZE, max_new_tokens: int = MAX_NEW_TOKENS, rag_k: int = 1,
                 api_model: str = DEFAULT_API_MODEL, base_url: str | None = None,
                 openai_cache: Path | None = None, template: str | None = None, decoding: str = DEFAULT_DECODING,
                 beams: int = BEAMS, recall_k: int = RECALL_K, recall_prior: float = RECALL_PRIOR,
                 recall_study_prior: float = RECALL_STUDY_PRIOR, recall_trained_share: float = RECALL_TRAINED_SHARE):
        self.adapters, self.model, self.template = [Path(a) for a in adapters], model, template
        if decoding not in DECODINGS:
            raise KorquadTuneError(f"unknown decoding {decoding!r}; choose one of {', '.join(DECODINGS)}")
        self.decoding, self.beams, self.recall_k, self.recall_prior = decoding, beams, recall_k, recall_prior
        self.recall_study_prior = recall_study_prior  # recall: nats for the answer of the question nearest among
        #                                               trained and study questions too (BENCHMARKS 5m, 5o)
        self.recall_scored = True  # recall: every offered answer scored whole (False: beam search over them, as
        #                            before session 20; benches compare)
        self.length_penalty = 1.0  # beam scores are log-prob sums / length**this (transformers' default); benches vary it
        self.recall_trained_share = recall_trained_share  # recall: the trained vote only where the best trained
        # question scores at least this share of the best question once the study questions join (0: always; 5q)
        self.recall_vote = "nearest"  # recall: which answer the study vote goes to (`retrieval.VOTES`: the nearest
        #                               question's; "typed", 5r; "slot", 2v), offered where it is not
        self.recall_options: dict = {}  # AnswerRecall.candidates' switches (off; benches turn them on to compare)
        self.recall_sentences = True  # trained questions found by their answer's sentence too (benches turn it off)
        self.recall_study_sentences = True  # study questions found by their sentence too (benches turn it off)
        # read now: a folder that is not an adapter fails before any model loads
        self.metas = {a.name: read_adapter_meta(a) for a in self.adapters}
        self.readers = [name for name, meta in self.metas.items() if meta.get("reader")]
        self.learned = {a.name: read_learned_answers(a) for a in self.adapters if a.name not in self.readers}
        self.asked = {a.name: read_learned_questions(a) for a in self.adapters if a.name not in self.readers}
        if model and Path(model).is_dir():  # a model merged from an adapter keeps that adapter's answers
            self.learned[None] = read_learned_answers(model)
            self.asked[None] = read_learned_questions(model)
        self._recall: dict = {}
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.batch_size, self.max_new_tokens, self.rag_k = batch_size, max_new_tokens, rag_k
        self.api_model, self.base_url, self.openai_cache = api_model, base_url, openai_cache
        self.lm = self.tokenizer = self._retrieval = self._paragraphs = None

    def load(self) -> "Systems":
        """The base model, once, with every adapter stacked on it, and the template the adapters share."""
        from korquad_tune.models import cast_frozen_to_bf16, cpu_has_native_bf16, load_model_with_adapters
        metas = list(self.metas.values())
        self.spec = self.model or next((m["model"] for m in metas if m.get("model")), DEFAULT_MODEL)
        if self.model and (Path(self.model) / ADAPTER_META).exists():  # a merged or fully fine-tuned model folder
            metas.append(json.loads((Path(self.model) / ADAPTER_META).read_text()))
        templates = {m.get("template") for m in metas if m.get("template") and not m.get("reader")}
        if self.template is None:
            if len(templates) > 1:
                raise KorquadTuneError(f"adapters were trained with different prompt templates {templates}; "
                                       "evaluate them separately")
            self.template = templates.pop() if templates else DEFAULT_TEMPLATE
        self.lm, self.tokenizer, _ = load_model_with_adapters(self.spec, self.adapters)
        if self.lm.device.type == "cpu" and cpu_has_native_bf16():  # generation autocasts there anyway
            cast_frozen_to_bf16(self.lm)
        return self

    def names(self) -> list[str]:
        """The systems this instance can answer with (what `serve` lists as models)."""
        closed = [a.name for a in self.adapters if a.name not in self.readers]
        looked_up = ["retrieval"] if self.run_dir is not None else []
        rag = ["rag"] if self.readers and self.run_dir is not None else []
        return ["base", *closed, *looked_up, *rag]

    def answer(self, system: str, questions: list[dict], label: str | None = None,
               max_new_tokens: int | None = None) -> list[str]:
        """Answers to `questions` ({question, context?} records) from `system`, in order."""
        # as the training questions are: composed (a question typed on macOS) and with no spaces around
        texts = [nfc(q["question"]).strip() for q in questions]
        budget = max_new_tokens or self.max_new_tokens
        if system == "retrieval":
            return self._retriever().answer(texts)
        if system == "openai":
            if self.openai_cache is None:  # paid answers are always cached somewhere the user chose
                raise KorquadTuneError("system 'openai' needs a cache file (Systems(openai_cache=...))")
            return openai_answers(questions, self.openai_cache, self.api_model, self.base_url)
        if system in OPEN_BOOK:
            if not self.readers:
                raise KorquadTuneError(f"system {system!r} needs a reader adapter (train --reader)")
            contexts = [nfc(q["context"]) if q.get("context") else None for q in questions] if system == "open-book" \
                else self._rag_contexts(texts)
            if not all(contexts):
                raise KorquadTuneError("system 'open-book' needs each question's paragraph ('context')")
            return self._generate(self.readers[0], texts, budget, label, contexts)
        if system != "base" and system not in self.metas:
            raise KorquadTuneError(f"unknown system {system!r}; this one answers with {', '.join(self.names())}")
        return self._generate(None if system == "base" else system, texts, budget, label)

    def decoding_of(self, system: str) -> str | None:
        """How `system` turns the model's output into an answer, in words (None: no model generates)."""
        if system in ("retrieval", "openai"):
            return None
        adapter = None if system in ("base", *OPEN_BOOK) else system
        if self._recall_for(adapter, system in OPEN_BOOK):
            asked, k = self.asked[adapter], self.recall_k
            study = f" and of the {k} most like it among those and its {len(asked['study'])} study questions" \
                if asked["study"] else ""
            ahead = f"the nearest trained question's answer {self.recall_prior:g} nats ahead" + (
                f", the nearest study or trained question's {self.recall_study_prior:g}"
                if asked["study"] and self.recall_study_prior else "") + (
                f"; no trained vote where the best trained question scores under {self.recall_trained_share:g} "
                f"of the best one's" if asked["study"] and self.recall_trained_share else "")
            how = f"the most probable, scored whole ({ahead})," if self.recall_scored else \
                f"beam search ({self.beams} beams) over"
            return (f"{how} of the answers of the {k} of its {len(asked['questions'])} trained questions most like "
                    f"the asked one{study}")
        answers = self._learned_for(adapter, system in OPEN_BOOK)
        return f"beam search ({self.beams} beams) over its {len(answers)} trained answers" if answers else "greedy"

    def _learned_for(self, adapter: str | None, reading: bool) -> list[str] | None:
        return self.learned.get(adapter) if not reading and self.decoding in ("learned", "recall") else None

    def _recall_for(self, adapter: str | None, reading: bool):
        """The adapter's `AnswerRecall` under `decoding: recall` (built once), or None."""
        if reading or self.decoding != "recall" or not self.asked.get(adapter):
            return None
        key = (adapter, self.recall_sentences, self.recall_study_sentences)
        if key not in self._recall:
            from korquad_tune.retrieval import AnswerRecall
            asked = self.asked[adapter]
            self._recall[key] = AnswerRecall(asked["questions"], asked["study"], self.recall_sentences,
                                             asked.get("sentences") if self.recall_study_sentences else None)
        return self._recall[key]

    def _generate(self, adapter: str | None, texts: list[str], budget: int, label: str | None,
                  contexts: list[str] | None = None) -> list[str]:
        """Answers from `adapter` (None: the untuned base), greedy or kept to its learned answers; with contexts, in
        the reader prompt (always greedy: a reader answers with a span of the paragraph)."""
        from contextlib import nullcontext

        from korquad_tune.generate import generate_from_prompts, most_probable_answers
        from korquad_tune.prompts import get_template, reader_prompt
        if self.lm is None:
            self.load()
        context = nullcontext()
        if adapter is not None:
            self.lm.set_adapter(adapter.replace(".", "_"))  # peft's name for it
        elif self.adapters:
            context = self.lm.disable_adapter()
        prompts = [reader_prompt(c, q) for c, q in zip(contexts, texts)] if contexts is not None else \
            [get_template(self.template).prompt(q, self.tokenizer) for q in texts]
        answers = self._learned_for(adapter, contexts is not None)
        recall = self._recall_for(adapter, contexts is not None)
        per_prompt = recall.candidates(texts, self.recall_k, vote=self.recall_vote,
                                       **self.recall_options) if recall else None
        with context, _progress(label, len(texts)) as advance:
            if per_prompt is not None and self.recall_scored:
                priors = recall.priors(texts, self.recall_prior, self.recall_study_prior, self.recall_trained_share,
                                       self.recall_vote)
                return most_probable_answers(self.lm, self.tokenizer, prompts, per_prompt, priors, progress=advance)
            return generate_from_prompts(self.lm, self.tokenizer, prompts, self.batch_size, budget, advance,
                                         answers=answers, num_beams=self.beams if answers or per_prompt else 1,
                                         length_penalty=self.length_penalty, answers_per_prompt=per_prompt)

    def _needs_run(self, system: str) -> Path:
        if self.run_dir is None:
            raise KorquadTuneError(f"system {system!r} needs a run folder (--train-run RUN_DIR) to look things up in")
        return self.run_dir

    def _retriever(self):
        if self._retrieval is None:
            from korquad_tune.data import run_pairs
            from korquad_tune.retrieval import RetrievalAnswerer
            self._retrieval = RetrievalAnswerer(run_pairs(self._needs_run("retrieval"), rewordings_only=True))
        return self._retrieval

    def _rag_contexts(self, texts: list[str]) -> list[str]:
        if self._paragraphs is None:
            from korquad_tune.data import load_passages
            from korquad_tune.retrieval import ParagraphRetriever
            self._paragraphs = ParagraphRetriever([p["context"] for p in load_passages(self._needs_run("rag"))])
        return ["\n\n".join(top) for top in self._paragraphs.top(texts, self.rag_k)]


def openai_answers(questions: list[dict], cache_path: Path, model: str, base_url: str | None,
                   concurrency: int = 4) -> list[str]:
    """Closed-book answers from an API model, as GPT-4 was asked in the original experiment (cached)."""
    from korquad_tune.generate import cut_at_stop
    from korquad_tune.llm_api import chat_many
    prompts = {f"qa:{q['question']}": OPENAI_QA_PROMPT.format(question=q["question"]) for q in questions}
    replies = chat_many(prompts, cache_path, model=model, base_url=base_url, concurrency=concurrency,
                        max_tokens=64)
    return [cut_at_stop(replies[f"qa:{q['question']}"]) for q in questions]


EVALUATE_SYSTEMS = ("base", "finetuned", "retrieval", "openai", "predictions", *OPEN_BOOK)


def evaluate_systems(questions_file: str | Path, out: str | Path, model: str | None = None,
                     adapters: list[Path] | None = None, systems: list[str] | None = None,
                     train_run: str | Path | None = None, predictions: str | Path | None = None,
                     base_url: str | None = None, api_model: str = DEFAULT_API_MODEL,
                     max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = BATCH_SIZE, rag_k: int = 1,
                     decoding: str = DEFAULT_DECODING, beams: int = BEAMS,
                     recall_k: int = RECALL_K, recall_prior: float = RECALL_PRIOR,
                     recall_study_prior: float = RECALL_STUDY_PRIOR,
                     recall_trained_share: float = RECALL_TRAINED_SHARE) -> dict[str, dict]:
    """`korquad-tune evaluate`: every requested system on one question file, results under OUT/<system>/
    (`finetuned` = each --adapter, under its folder name)."""
    from korquad_tune.fileio import ensure_dir
    out = ensure_dir(out, "--out folder", create=False)
    questions = load_questions(questions_file)
    adapters = list(adapters or [])
    systems = list(systems or (["finetuned"] if adapters else ["base"]))
    bad = [s for s in systems if s not in EVALUATE_SYSTEMS]
    if bad:
        raise KorquadTuneError(f"unknown system {bad[0]!r}; choose from {', '.join(EVALUATE_SYSTEMS)}")
    if "finetuned" in systems and not adapters:
        raise KorquadTuneError("system 'finetuned' needs at least one --adapter")
    if "predictions" in systems and predictions is None:
        raise KorquadTuneError("system 'predictions' needs --predictions FILE")
    engine = Systems(adapters, model, train_run, batch_size, max_new_tokens, rag_k, api_model, base_url,
                     out / "openai" / "cache.jsonl", decoding=decoding, beams=beams, recall_k=recall_k,
                     recall_prior=recall_prior, recall_study_prior=recall_study_prior,
                     recall_trained_share=recall_trained_share)
    closed_book = [a.name for a in engine.adapters if a.name not in engine.readers]
    order = [n for s in systems for n in (closed_book if s == "finetuned" else [s])]
    metrics: dict[str, dict] = {}
    per_question: dict[str, list[dict]] = {}
    for name in sorted(order, key=lambda n: n in ("base", *closed_book, *OPEN_BOOK)):  # model-free ones first
        if name == "predictions":
            preds = read_predictions(predictions)
            check_prediction_ids(preds, questions, predictions, questions_file)
            answers, extra = [preds.get(q["id"], "") for q in questions], {"source": str(predictions)}
        else:
            answers = engine.answer(name, questions, name)
            folders = {a.name: str(a) for a in engine.adapters}
            extra = {"api_model": api_model} if name == "openai" else {} if name == "retrieval" else \
                {"model": engine.spec, "decoding": engine.decoding_of(name),
                 **({"adapter": folders[name]} if name in folders else {})}
        metrics[name], per_question[name] = write_system_result(out / name, name, questions, answers, extra)
    write_json(out / "metrics.json", {"questions": str(questions_file), "systems": metrics,
                                      "paired_mcnemar": paired_tests(per_question)})
    return metrics


def print_table(metrics: dict[str, dict], console, title: str = "") -> None:
    from rich.table import Table
    table = Table(title=title)
    for col in ("system", "EM", "EM 95% CI", "F1", "F1 95% CI", "n"):
        table.add_column(col)
    from korquad_tune.report import _ordered
    for name in _ordered(metrics):
        m = metrics[name]
        table.add_row(name, f"{m['exact_match']:.1f}", "{:.1f}-{:.1f}".format(*m["exact_match_ci95"]),
                      f"{m['f1']:.1f}", "{:.1f}-{:.1f}".format(*m["f1_ci95"]), str(m["n"]))
    console.print(table)
