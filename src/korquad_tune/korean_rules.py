"""Offline Korean question paraphraser (the `rules` augment backend), built on Kiwi morphology.

It rewrites only the *form* of a question: the question ending (…은? / …은 무엇인가? / …은 무엇입니까? /
…을 알려줘), the wh-word phrasing (언제/어디/누구/무엇/몇), the position of a time or place phrase, honorific
vs. plain style, and a few curated synonyms. Particles are re-chosen from the 받침 of the word they follow.
Every variant is checked to keep each proper noun, number, Latin/Hanja word and quoted span of the original.
"""

from __future__ import annotations

import random
import re
import zlib
from functools import lru_cache

# Head nouns that decide which wh-word fits a "X는?" question.
_WHO = ("사람", "인물", "학자", "교수", "대통령", "장관", "탐험가", "헌법학자", "연구자", "상대", "여자", "부인")
_WHERE = ("곳", "장소", "지역", "나라", "도시", "회사", "대학교", "대학", "부대", "방송사", "단체", "집단", "기관")
_WHEN = ("날", "날짜", "해", "연도", "년도", "시기", "생년월일")

# Curated meaning-preserving swaps (applied one at a time, never inside a protected span).
SYNONYMS = [("년도", "연도"), ("연도", "해"), ("밑에서", "아래에서"), ("어딘가", "어디인가"), ("몇년도", "몇 년"),
            ("직위", "자리"), ("두번째로", "두 번째로"), ("몇층", "몇 층"), ("몇일", "며칠"),
            # the question words people (and LLMs) swap when they ask the same thing another way (same 받침
            # on both sides, so a following particle stays right)
            ("날은", "날짜는"), ("날짜는", "날은"), ("장소는", "곳은"), ("곳은", "장소는"), ("인물은", "사람은"),
            ("사람은", "인물은"), ("인물의", "사람의"), ("어떤 ", "무슨 "), ("무슨 ", "어떤 "), ("어느 ", "어떤 "),
            ("이름은", "명칭은"), ("명칭은", "이름은"), ("이유는", "까닭은"), ("체포", "검거"),
            ("검거", "체포"), ("설립", "창립"), ("창립", "설립"), ("처음으로", "최초로"), ("최초로", "처음으로"),
            ("국가", "나라"), ("당시", "때")]

# String-level ending swaps for copula questions the topic splitter does not cover ("…의 내용인가?").
_COPULA_SWAPS = {"인가?": ["입니까?", "인가요?", "일까?", "인지 알려줘.", "인지 알려주세요."],
                 "입니까?": ["인가?", "인가요?", "일까?", "인지 알려주세요."]}


@lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi
    return Kiwi()


def has_batchim(word: str) -> bool:
    """Whether the last syllable ends in a consonant (decides 은/는, 이/가, 을/를)."""
    word = word.rstrip(" '\"’”)]")
    if not word:
        return False
    ch = word[-1]
    if "가" <= ch <= "힣":
        return (ord(ch) - 0xAC00) % 28 != 0
    if ch.isdigit():  # read as Sino-Korean: 영 일 이 삼 사 오 육 칠 팔 구
        return ch in "013678"
    return ch.lower() in "lmnr"


def particle(word: str, pair: str) -> str:
    """`pair` is one of 은/는, 이/가, 을/를, 과/와: the first after a consonant, the second after a vowel."""
    with_b, without_b = pair.split("/")
    return with_b if has_batchim(word) else without_b


def protected_spans(question: str) -> list[str]:
    """Surface forms a paraphrase must keep verbatim: proper nouns, numbers, Latin, Hanja, quotes."""
    spans = [t.form for t in _kiwi().tokenize(question) if t.tag in ("NNP", "SN", "SL", "SH")]
    spans += re.findall(r"['\"‘“]([^'\"’”]+)['\"’”]", question)
    return [s for s in spans if s.strip()]


def keeps_entities(original: str, variant: str) -> bool:
    squash = variant.replace(" ", "")
    return all(s.replace(" ", "") in squash for s in protected_spans(original))


def _wh_for(head: str) -> str:
    if head.endswith(_WHEN):
        return "언제"
    if head.endswith(_WHO) and not head.endswith("이름"):
        return "누구"
    if head.endswith(_WHERE):
        return "어디"
    return "무엇"


_COPULA_ENDINGS = {  # wh + ending, by style
    "plain": ["{wh}인가?", "{wh}일까?", "{wh}인지 알려줘."],
    "polite": ["{wh}입니까?", "{wh}인가요?", "{wh}인지 알려주세요."],
}


def _topic_variants(topic: str, wh: str) -> list[str]:
    """Paraphrases of "TOPIC은 WH인가?" built from the topic phrase and its wh-word."""
    eun, iga, eul = particle(topic, "은/는"), particle(topic, "이/가"), particle(topic, "을/를")
    out = [f"{topic}{eun}?"]
    for style in ("plain", "polite"):
        for ending in _COPULA_ENDINGS[style]:
            subj = iga if "인지" in ending else eun
            out.append(f"{topic}{subj} {ending.format(wh=wh)}")
    out += [f"{topic}{eul} 알려줘.", f"{topic}{eul} 알려주세요.", f"{topic}{eun} {'뭐야' if wh == '무엇' else wh + '야'}?"]
    return out


_VERB_EFS = ["는가", "나요", "습니까", "나", "어"]


def _verbal_variants(question: str, tokens) -> list[str]:
    """For "...했는가?" questions: swap the sentence ending (kiwi re-conjugates) and add "...했는지 알려줘"."""
    kiwi = _kiwi()
    last = len(tokens) - 1 - (tokens[-1].tag == "SF")
    ef = [i for i, t in enumerate(tokens) if t.tag == "EF" or (t.tag == "EC" and i == last)]  # "되었나?": 나/EC
    if not ef:
        return []
    i_ef = ef[-1]
    start = i_ef
    while start > 0 and tokens[start - 1].tag.startswith(("EP", "VV", "VA", "VX", "VCP", "XSV", "XSA")):
        start -= 1
    if start == i_ef or any(t.tag == "VCP" for t in tokens[start:i_ef]):
        return []  # "…어디인가?": Kiwi conjugates the copula after a noun wrongly ("어디이나요?"); _COPULA_SWAPS does it
    prefix = question[:tokens[start].start]
    stem = [(t.form, t.tag.split("-")[0]) for t in tokens[start:i_ef]]
    out = []
    for ef_form in _VERB_EFS:
        try:
            out.append(prefix + kiwi.join(stem + [(ef_form, "EF")]) + "?")
        except Exception:  # kiwi refuses an impossible conjugation: skip that ending
            continue
    for tail in (" 알려줘.", " 알려주세요."):
        try:
            out.append(prefix + kiwi.join(stem + [("는지", "EC")]) + tail)
        except Exception:
            continue
    return out


_TIME_EOJEOL = re.compile(r"^\d+(년|월|일|년도)")


def _reordered(question: str) -> list[str]:
    """Move a leading-able time/place chunk ("1989년 2월 15일에", "경희대에서") to the front or behind the
    subject. Only whole words move, so no word is changed."""
    words = question.split(" ")
    if len(words) < 4:
        return []
    out = []
    # a run of time words ending in 에 / 에서 (or bare), not already at the front
    i = 0
    while i < len(words):
        if _TIME_EOJEOL.match(words[i]):
            j = i
            while j + 1 < len(words) and _TIME_EOJEOL.match(words[j + 1]):
                j += 1
            if i > 0 and j < len(words) - 2:
                chunk = words[i:j + 1]
                rest = words[:i] + words[j + 1:]
                out.append(" ".join(chunk + rest))
            elif i == 0 and j + 2 < len(words) - 1 and words[j + 1].endswith(("이", "가", "은", "는")):
                # "1989년 ... 임종석이 ..." -> "임종석이 1989년 ..."
                out.append(" ".join([words[j + 1]] + words[i:j + 1] + words[j + 2:]))
            i = j + 1
        else:
            i += 1
    # swap a leading subject with the adverbial phrase right after it: "A가 B에서 C?" -> "B에서 A가 C?"
    if len(words) >= 4 and words[0].endswith(("이", "가", "은", "는")) and words[1].endswith(("에서", "에게", "에")):
        out.append(" ".join([words[1], words[0]] + words[2:]))
    return out


def _with_synonyms(question: str) -> list[str]:
    protected = protected_spans(question)
    out = []
    for a, b in SYNONYMS:
        if a in question and not any(a in p for p in protected):
            out.append(question.replace(a, b, 1))
    return out


_WH_WORDS = ("언제", "어디", "누구", "누가", "무엇", "무슨", "몇", "어느", "어떤", "얼마", "왜", "뭐")


def _shortened(question: str) -> list[str]:
    """The question without one adverbial phrase ("대표로", "당시에", "다시"): people ask the same thing with fewer
    words, and a model that only saw whole questions keys on all of them. Never a name, number or quoted span,
    a wh-word, or a word whose removal would leave a sentence without its parts (objects, subjects, verbs)."""
    words = question.split(" ")
    if len(words) < 5:
        return []
    protected = protected_spans(question)
    out = []
    for i, w in enumerate(words[:-1]):
        tags = [t.tag for t in _kiwi().tokenize(w)]
        adverbial = tags[-1] == "MAG" or (tags[-1] == "JKB" and tags[0].startswith("NN"))
        modified = i > 0 and (words[i - 1].startswith(_WH_WORDS) or  # "어느 산에", "주도한 혐의로": a phrase's head
                              _kiwi().tokenize(words[i - 1])[-1].tag in ("ETM", "MM"))
        if adverbial and not modified and not w.startswith(_WH_WORDS) and not any(p in w or w in p for p in protected):
            out.append(" ".join(words[:i] + words[i + 1:]))
    return out


def _split_topic(question: str, tokens):
    """(topic text, wh-word) for nominal questions "X은?", "X은 누구인가?", "X은 무엇입니까?"; else None."""
    body = [t for t in tokens if t.tag not in ("SF", "SE")]
    if not body:
        return None
    # "X는?" / "X은?"
    if body[-1].tag in ("JX", "JKS") and body[-1].form in ("은", "는", "이", "가"):
        topic = question[:body[-1].start].rstrip()
        head = body[-2].form if len(body) > 1 else topic
        return topic, _wh_for(head)
    # "X는 누구/무엇/어디/언제/얼마 + 이 + ㄴ가/ㅂ니까"
    if len(body) >= 4 and body[-1].tag == "EF" and body[-2].tag == "VCP" and body[-3].tag in ("NP", "NNG", "MAG"):
        wh_tok, part = body[-3], body[-4]
        if part.tag in ("JX", "JKS") and wh_tok.form in ("누구", "무엇", "어디", "언제", "얼마", "뭐"):
            return question[:part.start].rstrip(), wh_tok.form
    if body[-1].tag == "EF" and body[-1].form in ("ᆫ가", "ㄴ가") and len(body) >= 3 and body[-3].form == "어디":
        part = body[-4] if len(body) >= 4 else None
        if part is not None and part.tag in ("JX", "JKS"):
            return question[:part.start].rstrip(), "어디"
    return None


def rule_paraphrases(question: str, n: int = 10, seed: int = 0) -> list[str]:
    """Up to `n` distinct meaning-preserving variants of `question`, deterministic for a given seed."""
    question = " ".join(question.split())
    tokens = _kiwi().tokenize(question)
    candidates: list[str] = []
    split = _split_topic(question, tokens)
    if split:
        topic, wh = split
        candidates += _topic_variants(topic, wh)
        for re_topic in _reordered(topic + "은 ?"):
            candidates += _topic_variants(re_topic.rsplit(" ", 1)[0].removesuffix("은"), wh)[:3]
    else:
        candidates += _verbal_variants(question, tokens)
        for end, swaps in _COPULA_SWAPS.items():
            if question.endswith(end):
                candidates += [question[: -len(end)] + alt for alt in swaps]
    for variant in list(candidates[:4]) + [question]:
        candidates += _reordered(variant)
        candidates += _with_synonyms(variant)
    candidates += _shortened(question)
    seen = {_norm(question)}
    unique = []
    for c in candidates:
        c = " ".join(c.split())
        k = _norm(c)
        if k in seen or not keeps_entities(question, c):
            continue
        seen.add(k)
        unique.append(c)
    rng = random.Random(seed * 1_000_003 + zlib.crc32(question.encode()))
    rng.shuffle(unique)
    # the same pool for every seed (the seed picks among variants, it does not make new ones)
    dropped = [d for d in word_dropout(question, random.Random(zlib.crc32(question.encode())), 2 * DROPOUT_SHARE)
               if _norm(d) not in seen and keeps_entities(question, d)]
    dropped = list(dict.fromkeys(dropped))[:min(DROPOUT_SHARE, n // 3)]
    return unique[:n - len(dropped)] + dropped


DROPOUT_SHARE = 3  # of every question's n variants, at most this many have words left out at random


def word_dropout(question: str, rng: random.Random, k: int) -> list[str]:
    """`k` copies of the question with a third of its words left out at random (never a name, number, quoted
    span, wh-word or the last word). Not grammatical, on purpose: a model that saw only whole questions keys on
    every word of them; one that also saw them with words missing keys on what is left, as a word lookup does
    (EDA's random deletion, Wei & Zou 2019). Other people's wordings keep some words and change the rest."""
    words = question.split(" ")
    protected = {part for span in protected_spans(question) for part in span.split()}
    droppable = [i for i, w in enumerate(words[:-1])
                 if not w.startswith(_WH_WORDS) and not any(p in w or w in p for p in protected)]
    if len(droppable) < 3:
        return []
    return [" ".join(w for i, w in enumerate(words) if i not in set(rng.sample(droppable, len(droppable) // 3)))
            for _ in range(k)]


def _norm(text: str) -> str:
    return re.sub(r"[\s?.!]", "", text)
