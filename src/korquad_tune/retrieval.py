"""The retrieval baseline: no LLM, answer with the answer of the most similar training question.

BM25 (bm25s) over Kiwi morphemes with particles and endings dropped, so that "헤이그가" and "헤이그는" match.
It is the floor a fine-tuned model has to beat to be worth training.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

# Kiwi tags kept: nouns, verb/adjective stems, determiners, adverbs, roots, foreign words, numbers, Hanja.
_CONTENT_TAG_PREFIXES = ("NN", "NP", "NR", "VV", "VA", "MM", "MA", "XR", "SL", "SN", "SH")


@lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi
    return Kiwi()


def morphemes(text: str) -> list[str]:
    """Content morphemes of `text` (surface forms), lower-cased; character bigrams as a fallback."""
    toks = [t.form.lower() for t in _kiwi().tokenize(text) if t.tag.startswith(_CONTENT_TAG_PREFIXES)]
    return toks or [text[i:i + 2] for i in range(max(1, len(text) - 1))]


def bm25_index(texts: list[str]):
    """A BM25 index over the content morphemes of `texts`."""
    import logging

    import bm25s
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import: a stray line mid-run
    index = bm25s.BM25()
    index.index([morphemes(t) for t in texts], show_progress=False)
    return index


class RetrievalAnswerer:
    """Index (question, answer) pairs; answer a new question with the best match's answer.

    With `contexts` (each question's answer's sentence, "" where none) a match scores BM25 over its question plus
    BM25 over its question and sentence together: another person asks for the same fact in the words of the
    paragraph as often as in the first annotator's, and the question's own score keeps a trained question its
    own answer where several ask about one sentence (BENCHMARKS 5l)."""

    def __init__(self, pairs: list[tuple[str, str]], contexts: list[str] | None = None):
        if not pairs:
            raise ValueError("retrieval needs at least one training question")
        self.answers = [a for _, a in pairs]
        self.questions = [q for q, _ in pairs]
        self.index = bm25_index(self.questions)
        self.context_index = bm25_index([f"{q} {c}" if c else q for q, c in zip(self.questions, contexts)]) \
            if contexts and any(contexts) else None

    def ranked(self, questions: list[str], depth: int) -> list[list[int]]:
        """For each question, the rows of its `depth` best matches, best first."""
        tokens = [morphemes(q) for q in questions]
        depth = min(depth, len(self.questions))
        if self.context_index is None:
            docs, _ = self.index.retrieve(tokens, k=depth, show_progress=False)
            return [[int(d) for d in row] for row in docs]
        import numpy as np
        return [np.argsort(-self._scores(t), kind="stable")[:depth].tolist() for t in tokens]

    def _scores(self, tokens: list[str]):
        scores = self.index.get_scores(tokens)
        return scores + self.context_index.get_scores(tokens) if self.context_index is not None else scores

    def best_score_shares(self, questions: list[str], rows: int) -> list[float]:
        """For each question, the best score among the first `rows` rows as a share of the best score of all
        (1.0 where nothing matches at all)."""
        shares = []
        for t in (morphemes(q) for q in questions):
            scores = self._scores(t)
            best = float(scores.max())
            shares.append(float(scores[:rows].max()) / best if best > 0 and rows else 1.0)
        return shares

    def answer(self, questions: list[str]) -> list[str]:
        if not questions:
            return []
        return [self.answers[row[0]] for row in self.ranked(questions, 1)]

    def top_answers(self, questions: list[str], k: int, skip_said: bool = False) -> list[list[str]]:
        """For each question, the answers of its best matches, best first, until `k` different answers; with
        `skip_said`, passing over answers the question itself says (the next match's answer takes the place)."""
        if not questions:
            return []
        # many questions share an answer (paraphrases): look deeper than k to find k different ones
        found = [list(dict.fromkeys(self.answers[d] for d in row)) for row in self.ranked(questions, 20 * k)]
        if skip_said:
            found = [_not_asked(q, answers) for q, answers in zip(questions, found)]
        return [answers[:k] for answers in found]


# What kind of answer a question says it wants, and how often KorQuAD dev's gold answer is that kind
# (`bench/answer_types.py`): 언제 / 몇 / 얼마 / 며칠 / 연도 (or ending on 해, 날짜 …): a number, 1,092 of 1,100;
# 누구 / 누가 / 어디 (or ending on 사람, 곳 …): no leading number, 1,388 of 1,389.
_NUMBER_ASKED = re.compile(r"언제(?!나|든|라도)|(?<!몇)(?<!몇\s)몇(?!\s?몇)|얼마|며칠|[연년]도")  # not 언제나, 몇몇
_COUNTER_ASKED = re.compile(r"(?<!몇)(?<!몇\s)몇(?!\s?몇)\s?([가-힣])")
_NAME_ASKED = re.compile(r"누구|누가|어디")
_OTHER_ASKED = re.compile(r"무엇|뭐|어떤|어느|어떻게|왜")
# With no wh-word, the noun a question ends on says it ("…태어난 해는?": 117 of 117 dev answers hold a number; "…만난
# 사람은?": 0 of 177 start with one). Not 이름 (2K 게임즈), 시기 (의화단의 난 후), 때, 수.
_NUMBER_HEADS = ("해", "날짜", "나이", "기간", "날", "일자", "금액", "액수", "높이", "길이", "면적", "거리", "무게", "속도",
                 "횟수", "인원", "순위", "가격", "점수", "비율")
_NAME_HEADS = ("선수", "교수", "사람", "인물", "도시", "나라", "국가", "곳", "장소", "지역", "회사", "기업", "팀", "단체", "감독",
               "작품", "책", "영화", "노래", "곡", "기관", "학교", "대학", "정당", "왕", "황제", "대통령", "작가", "가수", "배우",
               "그룹", "앨범", "국적", "직업", "방법", "종교")

_NUMBER_HEAD, _NAME_HEAD = (re.compile(rf"(?<![가-힣])(?:{'|'.join(nouns)})(?:은|는|이|가)?\s*[?？]*\s*$")
                            for nouns in (_NUMBER_HEADS, _NAME_HEADS))
# A number in words is a numeral with a counter or a space after it ("한 명", "두칸", "열두 살", "수십 명", "이십일
# 년"), not a name that starts with a numeral's syllable: 한나라당, 이명박, 천안함, 세계일보 (the looser rule of sessions
# 19-35 called them numbers; every gold answer of a dev question asking for a number that it called one, this one
# does too: `bench/answer_types.py`).
_NATIVE_NUMERAL = r"(?:(?:열|스물|스무|서른|마흔|쉰|예순|일흔|여든|아흔)?(?:한|두|세|네|다섯|여섯|일곱|여덟|아홉)|열|스물|스무|서른|마흔|쉰" \
                  r"|예순|일흔|여든|아흔|첫)"
_NUMBER_ANSWER = re.compile(rf"\d|^{_NATIVE_NUMERAL}(?:\s|$|번|명|개|가지|차례|살|째|마리|권|곳|칸|달|해|날|척)"
                            r"|^수(?:십|백|천|만)|^(?:백|천|만|억)+\s?(?:명|개|원|년|달러|번|권|대|가지|여|$)"
                            r"|째|(?<![가-힣])[일이삼사오육칠팔구십백천만]+\s?[년월일명개번회차세](?![가-힣])")


# "몇 X" names the counter of the answer (몇 명 -> 2남 1녀, 3인): 362 of 381 dev answers hold it or a word like it.
# Not 개 / 가지: any count may answer them (7단지, 4기).
_COUNTER_SPELLINGS = {"명": ("명", "인", "남", "녀"), "살": ("살", "세"), "번": ("번", "회", "째"), "퍼": ("%", "퍼"),
                      "프": ("%", "프"), "개": (), "가": ()}


def _last_match(patterns, text: str):
    """Of every match of `patterns` in `text`, the one that ends last (None if none)."""
    return max((m for p in patterns for m in p.finditer(text)), key=lambda m: m.end(), default=None)


def asked_type(question: str) -> list[Callable[[str], bool]]:
    """What an answer to `question` looks like, as its wh-word says, strictest first: a number with the counter
    몇 names, a number; not a number (누구 / 어디); nothing said: []. The last wh-word, or the noun the question ends
    on, asks ("몇 명이 … 곳은?", "…태어난 해는?")."""
    number_end, name_end, other_end = (m.end() if m else -1 for m in (_last_match(patterns, question) for patterns in (
        (_NUMBER_ASKED, _NUMBER_HEAD), (_NAME_ASKED, _NAME_HEAD), (_OTHER_ASKED,))))
    if other_end > max(number_end, name_end):  # "몇 가지 … 무엇에 반한다고 말했나?"
        return []
    if number_end > name_end:
        counter = _last_match((_COUNTER_ASKED,), question)
        spellings = _COUNTER_SPELLINGS.get(counter.group(1), (counter.group(1),)) if counter else ()

        def a_number(answer: str) -> bool:
            return bool(_NUMBER_ANSWER.search(answer))

        def counted(answer: str) -> bool:
            return a_number(answer) and any(s in answer for s in spellings)
        return [counted, a_number] if spellings else [a_number]
    if name_end > number_end:
        return [_not_a_number]
    return []


def _not_a_number(answer: str) -> bool:
    return not answer[:1].isdigit()


def of_asked_type(question: str, answers: list[str], exceptions: frozenset[str] = frozenset()) -> list[str]:
    """`answers` kept to the strictest kind the question asks for (`asked_type`) that any of them is; all if none.
    `exceptions` are kept whatever the question asks (answers a trained question of the kind was given)."""
    for fits in asked_type(question):
        kept = [a for a in answers if fits(a) or a in exceptions]
        if any(a not in exceptions for a in kept):
            return kept
    return answers


# Where the paragraph holds a whole date at the answer, the question says how much of it a person gave
# (`bench/answer_types.py`, KorQuAD dev): asked for a year (…해는? / 연도 / 몇 년) the year alone, 89 of 94; asked
# 언제 / 때 / 날 / 날짜 / 생년월일 / 일자 / 며칠, the date from the year on, 109 of 114.
_YEAR_ASKED = re.compile(r"[연년]도|몇\s?년|(?<![가-힣])해(?:은|는|이|가|에|를)?\s*[?？]*\s*$")
_DAY_ASKED = re.compile(r"언제(?!나|든|라도)|때는|날은|날짜|생년월일|일자|며칠")
_YEAR_ONLY = re.compile(r"\d+년")
_DATE_FROM_YEAR = re.compile(r"(\d+년) \d+월(?: \d+일)?")


def asked_date_precision(question: str) -> str | None:
    """`year` if the question asks for a year, `day` if for a date or a time (언제, 날짜 …), else None."""
    return "year" if _YEAR_ASKED.search(question) else "day" if _DAY_ASKED.search(question) else None


def of_asked_date_precision(question: str, answers: list[str]) -> list[str]:
    """Where a year ("1984년") and a date from that year ("1984년 5월 19일") are both among `answers`, the one the
    question asks for: the year for "…해는?", the date for "언제 …?"; `answers` unchanged otherwise."""
    precision = asked_date_precision(question)
    if precision is None:
        return answers
    years = {a for a in answers if _YEAR_ONLY.fullmatch(a)}
    dates = {a: m.group(1) for a in answers if (m := _DATE_FROM_YEAR.fullmatch(a)) and m.group(1) in years}
    if not dates:
        return answers
    drop = set(dates) if precision == "year" else set(dates.values())
    return [a for a in answers if a not in drop]


def of_another_kind(question: str, answer: str) -> bool:
    """`answer` is not of the strictest kind `question` asks for, as `asked_type` reads it: a trained pair like this
    ("…얼마의 득표가 필요한가?" -> 과반, "…몇 인칭 게임인가?" -> 일인칭: 9 of KorQuAD dev's 5,774 questions; "…몇 버전
    패치인가?" -> 1.1 패치, a number without the counter the question names: 19 of the 381 that name one) shows where that
    rule is wrong, and `typed` would take the trained question's own answer away from it wherever another offered
    answer holds the counter (360 버전; BENCHMARKS 2v)."""
    rules = asked_type(question)
    return bool(rules) and not rules[0](answer)


# The study vote's answer (`AnswerRecall.study_vote_answers`): the nearest study question's, the nearest of the asked
# kind not said (5r), or the one the question's words stand nearest in the nearest study question's sentence (2v).
VOTES = ("nearest", "typed", "slot")
SLOT_REACH = 30  # characters: a question word this far from an answer counts half


class AnswerRecall:
    """The answers a closed-book adapter may give to a question under `decoding: recall`: those of the `k` trained
    questions most like it (BM25 over the questions and their rewordings), and of the `k` most like it once the
    study questions join them. The adapter still chooses; it chooses among what its nearest lessons taught.
    Two lookups because the study material's ~10x as many questions would otherwise crowd out the trained ones.

    Two switches change the study side, both off by default because the adapter chose worse with them (BENCHMARKS
    5d): `same_sentence` adds the answers of the other questions made from the sentences of the `k` nearest study
    questions (`study` rows `(question, answer, sentence number)`): a person names a sentence's other facts when
    asking about one of them, and over 40 articles this offers the gold answer for 55% of unseen facts instead of
    43% — but those answers are the ones most easily confused; `drop_asked` drops the study side's answers that the
    asked question already says; `skip_said` (off too, level: BENCHMARKS 5j) passes over them for the next nearest. The nearest trained questions' answers are always offered as they are (a trained
    question may hold its own answer: "2012년 중국 BTV에서 … 보도한 나라는?" -> 중국). Two more are on: `trained_spans`
    and `typed`, see `candidates`."""

    def __init__(self, questions: list[tuple], study: list[tuple] = (), sentences: bool = True,
                 study_sentences: list[str] | None = None):
        # `questions` rows (question, answer[, sentence]): with `sentences` the trained questions are found by their
        # own words and by those of the sentence their answer stands in (see RetrievalAnswerer); with
        # `study_sentences` (the sentences the `study` rows' numbers name) so are the study questions, in the
        # second lookup: a question made from a sentence keeps only some of its words, and a person asking about
        # one of its facts uses others (BENCHMARKS 5o)
        contexts = [row[2] if len(row) > 2 else "" for row in questions] if sentences else None
        pairs = [(row[0], row[1]) for row in questions]
        self.lookups = [RetrievalAnswerer(pairs, contexts)]
        # answers the adapter was trained to give to a question asking for another kind: `typed` keeps them offered
        self.kind_exceptions = frozenset(a for q, a in pairs if of_another_kind(q, a))
        self.sentence_of: dict[int, int] = {}  # row of the second lookup -> its study question's sentence
        self.sentence_answers: dict[int, list[str]] = {}
        self.study_sentences = list(study_sentences or [])  # what the slot vote reads (`vote="slot"`)
        self._slot_words: dict[int, list[tuple[str, int, int]]] = {}
        self._sentence_idf: dict[str, float] | None = None
        if study:
            study_contexts = None
            if sentences and study_sentences:
                study_contexts = (contexts or [""] * len(pairs)) + [
                    study_sentences[row[2]] if len(row) > 2 and 0 <= row[2] < len(study_sentences) else ""
                    for row in study]
            self.lookups.append(RetrievalAnswerer(pairs + [(row[0], row[1]) for row in study], study_contexts))
            for i, row in enumerate(study):
                if len(row) > 2 and row[2] is not None:
                    self.sentence_of[len(pairs) + i] = row[2]
                    self.sentence_answers.setdefault(row[2], []).append(row[1])

    def candidates(self, texts: list[str], k: int, same_sentence: bool = False, drop_asked: bool = False,
                   trained_spans: bool = True, typed: bool = True, skip_said: bool = False,
                   kind_exceptions: bool = True, vote: str = "nearest") -> list[list[str]]:
        """Each text's candidate answers: the nearest trained questions' first, then the study side's. With
        `trained_spans` (on) no study answer that is a wider or narrower span of a nearest trained answer ("아펜젤러"
        beside "아펜젤러 선교사", "K리그 팀 울산 현대" beside "울산 현대"): where a person chose the span of that thing,
        theirs stands, and the adapter no longer trades it for the cloze rules' cut (BENCHMARKS 5e). With `typed` (on)
        only the answers of the strictest kind the question's wh-word asks for that any of them is are offered
        (`asked_type`: for "몇 회" "제11회", not "1970년"; for 누구 no "2008년"; BENCHMARKS 5f), and of a year and a
        date from it, the one it asks for (`of_asked_date_precision`: "…해는?" 1984년, "언제…?" 1984년 5월 19일). An answer
        a trained question asking for another kind was given ("…얼마의 득표가 필요한가?" -> 과반) passes the kind rule,
        unless `kind_exceptions` is off (as before session 31). With `vote` "typed" or "slot" the answer
        `study_vote_answers` gives for it is offered too (the vote goes to it: BENCHMARKS 5r, 2v)."""
        nearest = self.lookups[0].top_answers(texts, k)
        studied = [lookup.top_answers(texts, k, skip_said) for lookup in self.lookups[1:]]
        if same_sentence and self.sentence_of:
            studied.append(self._same_sentence_answers(texts, k))
        out = []
        for i, text in enumerate(texts):
            more = [a for found in studied for a in found[i]]
            if trained_spans:
                more = [a for a in more if not any(_overlapping(a, t) for t in nearest[i])]
            offered = list(dict.fromkeys(nearest[i] + (_not_asked(text, more) if drop_asked else more)))
            if typed:
                exceptions = self.kind_exceptions if kind_exceptions else frozenset()
                offered = of_asked_date_precision(text, of_asked_type(text, offered, exceptions))
            out.append(offered)
        if vote != "nearest" and len(self.lookups) > 1:
            for offered, voted, trained in zip(out, self.study_vote_answers(texts, vote), nearest):
                if voted and voted not in offered and not any(_overlapping(voted, a) for a in trained):
                    offered.append(voted)
        return out

    def study_vote_answers(self, texts: list[str], vote: str = "nearest") -> list[str]:
        """Each text's answer for the study vote. `nearest`: that of the question nearest once the study questions
        join. The nearest study question is often one made from the same sentence for another of its facts, whose
        answer the asker names or whose kind the wh-word rules out; so `typed`: the nearest answer there that the
        text does not say and that is of the kind it asks for (as `candidates` keeps them; BENCHMARKS 5r); `slot`:
        of the answers asked in the nearest study question's sentence that the text does not say and that are of
        its kind, the one the text's words stand nearest to in that sentence (`_slot_answer`; BENCHMARKS 2v)."""
        if vote not in VOTES:
            raise ValueError(f"unknown study vote {vote!r}; one of {', '.join(VOTES)}")
        lookup = self.lookups[1]
        if vote == "nearest":
            return [found[0] if found else "" for found in lookup.top_answers(texts, 1)]
        if vote == "slot":
            return [self._slot_answer(text, row[0], lookup.answers[row[0]]) if row else ""
                    for text, row in zip(texts, lookup.ranked(texts, 1))]
        out = []
        for text, found in zip(texts, lookup.top_answers(texts, 10)):
            kept = self._of_asked_kind(text, found)
            out.append(kept[0] if kept else "")
        return out

    def _of_asked_kind(self, text: str, answers: list[str]) -> list[str]:
        return of_asked_date_precision(text, of_asked_type(text, _not_asked(text, answers), self.kind_exceptions))

    def _slot_answer(self, text: str, row: int, fallback: str) -> str:
        """Where the question nearest `text` is a study question, the answer of its sentence that fills the slot
        `text` asks about: each answer asked there (not said by `text`, of its kind) scores the idf of every word
        of `text` the sentence has outside the answer, weighted 1 / (1 + distance / SLOT_REACH characters), less
        the idf of the answer's own words `text` says ("…판사로 임관하여 재직한 곳" asks 대전지방법원, not
        대전지방법원 판사). A person asks about one fact of a sentence in the words around it; the cloze questions of
        the other facts of the same sentence share nearly all of those words with it, so BM25 alone cannot tell
        them apart. `fallback` where the nearest question is a trained one or no answer is left."""
        number = self.sentence_of.get(row)
        if number is None or number >= len(self.study_sentences):
            return fallback
        sentence = self.study_sentences[number]
        asked = set(morphemes(text))
        idf = self._idf()
        if number not in self._slot_words:
            self._slot_words[number] = [(t.form.lower(), t.start, t.start + t.len) for t in _kiwi().tokenize(sentence)
                                        if t.tag.startswith(_CONTENT_TAG_PREFIXES)]
        words = self._slot_words[number]
        best, best_score = fallback, float("-inf")
        for answer in self._of_asked_kind(text, list(dict.fromkeys(self.sentence_answers[number]))):
            start = sentence.find(answer)
            if start < 0:
                continue
            end = start + len(answer)
            near = sum(idf.get(form, 1.0) / (1 + (start - w_end if w_end <= start else w_start - end) / SLOT_REACH)
                       for form, w_start, w_end in words if form in asked and (w_end <= start or w_start >= end))
            said = sum(idf.get(form, 1.0) for form in set(morphemes(answer)) if form in asked)
            if near - said > best_score:
                best, best_score = answer, near - said
        return best

    def _idf(self) -> dict[str, float]:
        """log(1 + N / df) of each content word over the study sentences (N of them)."""
        if self._sentence_idf is None:
            df = Counter(word for s in self.study_sentences for word in set(morphemes(s)))
            n = len(self.study_sentences)
            self._sentence_idf = {word: math.log(1 + n / count) for word, count in df.items()}
        return self._sentence_idf

    def nearest_answers(self, texts: list[str]) -> list[str]:
        """Each text's most likely answer by lookup alone: that of the trained question most like it."""
        return [found[0] if found else "" for found in self.lookups[0].top_answers(texts, 1)]

    def priors(self, texts: list[str], nats: float, study_nats: float = 0.0,
               trained_share: float = 0.0, vote: str = "nearest") -> list[dict[str, float]]:
        """Each text's answer priors for `decoding: recall`: `nats` for the nearest trained question's answer (a
        person asking nearly what a trained question asks mostly wants its answer), and `study_nats` for the answer
        of the question nearest once the study questions join them (a question about a fact no trained question
        asks is nearest a study question that asks it); both on one answer where the two lookups agree. Never for
        an answer the text already says ("앤 룰이 집필한 … 전기 제목은?" does not ask for 앤 룰). With
        `trained_share`, the trained vote is left out where, once the study questions join, the best trained question
        scores under that share of the best question: the text is far nearer a fact no trained question asks. With
        `vote`, the study vote goes to `study_vote_answers(texts, vote)`."""
        trained = self.nearest_answers(texts)
        if trained_share and len(self.lookups) > 1:
            shares = self.lookups[1].best_score_shares(texts, len(self.lookups[0].questions))
            trained = [a if share >= trained_share else "" for a, share in zip(trained, shares)]
        votes = [(nats, trained)]
        if study_nats and len(self.lookups) > 1:
            votes.append((study_nats, self.study_vote_answers(texts, vote)))
        out = [{} for _ in texts]
        for weight, nearest in votes:
            for prior, text, a in zip(out, texts, nearest):
                if a and _not_asked(text, [a]):
                    prior[a] = prior.get(a, 0.0) + weight
        return out

    def _same_sentence_answers(self, texts: list[str], k: int) -> list[list[str]]:
        """The answers of the sentences whose study questions are among each text's `k` nearest questions."""
        lookup = self.lookups[1]
        docs, _ = lookup.index.retrieve([morphemes(t) for t in texts], k=min(k, len(lookup.questions)),
                                        show_progress=False)
        return [[a for d in row if int(d) in self.sentence_of
                 for a in self.sentence_answers[self.sentence_of[int(d)]]] for row in docs]


def _overlapping(a: str, b: str) -> bool:
    """One answer is a wider or narrower span of the other (spaces ignored)."""
    a, b = "".join(a.split()), "".join(b.split())
    return a != b and (a in b or b in a)


def _not_asked(question: str, answers: list[str]) -> list[str]:
    """`answers` without those the question already says (spaces ignored)."""
    squashed = "".join(question.split())
    return [a for a in answers if "".join(a.split()) not in squashed]


class ParagraphRetriever:
    """BM25 over the training paragraphs (the `rag` system's retriever): the top-k paragraphs for a question."""

    def __init__(self, paragraphs: list[str]):
        if not paragraphs:
            raise ValueError("rag needs at least one training paragraph")
        self.paragraphs = paragraphs
        self.index = bm25_index(paragraphs)

    def top(self, questions: list[str], k: int = 1) -> list[list[str]]:
        if not questions:
            return []
        k = min(k, len(self.paragraphs))
        docs, _ = self.index.retrieve([morphemes(q) for q in questions], k=k, show_progress=False)
        return [[self.paragraphs[int(d)] for d in row] for row in docs]
