"""Offline Korean question paraphraser (the `rules` augment backend), built on Kiwi morphology.

It rewrites the *form* of a question, keeping its content words: the question ending (…은? / …은 무엇인가? /
…은 무엇입니까? / …을 알려줘), the wh-word phrasing (언제/어디/누구/무엇/몇), where the wh-word sits (KorQuAD's
"…한 날은?" as "…언제 …했는가?"), an act said as a compound or in the passive ("시위를 주도한 혐의" / "시위 주도 혐의",
"임종석을 검거한 장소" / "임종석이 검거된 장소"), the position of a time or place phrase, honorific vs. plain style,
and a few curated synonyms. Particles are re-chosen from the 받침 of the word they follow.
Every variant is checked to keep each proper noun, number, Latin/Hanja word and quoted span of the original.
"""

from __future__ import annotations

import itertools
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


_TO_WHERE = ("가", "오", "이동", "파견", "보내", "돌아가", "돌아오", "향하", "옮기", "망명", "진출")
_PLACES = ("곳", "장소", "지역", "도시")
_AT_WHERE = ("도착", "정착", "머물", "멈추", "살", "거주", "남", "있")


def _wh_moved(question: str, tokens) -> list[str]:
    """KorQuAD's "…X가 V한 HEAD은?" asked the other common way, with the wh-word in the clause: "…X가 언제
    V했는가?" (HEAD a time), "…누가 V했는가?" (a person, when the clause has no subject yet), "…어디에서/어디로
    V했는가?" (a place). People and LLMs switch between the two forms all the time; the words all stay."""
    body = [t for t in tokens if t.tag not in ("SF", "SE")]
    if len(body) < 5 or body[-1].tag != "JX" or body[-2].tag != "NNG" or body[-3].tag != "ETM":
        return []
    head, etm = body[-2].form, body[-3]
    wh = _wh_for(head)
    if wh == "무엇" or etm.form not in ("ᆫ", "은", "는"):
        return []
    i = len(body) - 4  # the predicate's last morpheme before the ETM
    group = []
    while i >= 0 and body[i].tag.split("-")[0] in ("VV", "XSV", "EP", "VX"):
        group.insert(0, body[i])
        i -= 1
    if not group or group[0].tag.split("-")[0] not in ("VV", "XSV"):
        return []  # adjectives and copulas ("높은 직위") do not move
    start = group[0].start
    if group[0].tag == "XSV":  # "지명수배 된", "검거한": the verb's noun belongs to the verb
        j = i
        while j >= 0 and body[j].tag == "NNG":
            start = body[j].start
            j -= 1
        if j == i:
            return []
    clause = question[:start]
    if start > 0 and question[start - 1] != " ":
        return []  # the verb starts inside a word ("얻어온"): nowhere to put the wh-word
    has_subject = any(t.tag == "JKS" or (t.tag == "JX" and t.form in ("은", "는")) for t in body[:i + 1])
    front = None  # the wh-word that opens the question as its subject
    if not has_subject and wh in ("누구", "어디"):  # "…을 쓴 사람은?" -> "누가 …을 썼는가?": the head did it
        front = "누가" if wh == "누구" else "어디가" if head.endswith(_PLACES) else f"어느 {head}{particle(head, '이/가')}"
    elif wh == "어디" and head.endswith(_PLACES):  # "헤이그가 태어난 곳은?" -> "헤이그가 어디에서 태어났는가?"
        stem = body[i + 1].form if group[0].tag == "XSV" else group[0].form
        inside = "어디로" if stem in _TO_WHERE else "어디에" if stem in _AT_WHERE else "어디에서"
    elif wh == "언제":
        inside = "언제"
    else:
        return []  # "X가 만난 사람은?": the head is an object; 누구를 would be a guess
    verb_start = group[0].start
    noun = question[start:verb_start]
    morphs = [(t.form, t.tag.split("-")[0]) for t in group]
    ending = [("었", "EP"), ("는가", "EF")] if etm.form in ("ᆫ", "은") else [("는가", "EF")]
    try:
        verb = _kiwi().join(morphs + ending)
    except Exception:  # kiwi refuses the conjugation: no variant
        return []
    if front:
        return [" ".join(f"{front} {clause}{noun}{verb}?".split())]
    if clause.rstrip().endswith(("에서", "으로", "로", "에")) and wh == "어디":
        return []  # "…오사카에서 태어난 곳": the place is already said; a second one is not Korean
    out = [" ".join(f"{clause}{inside} {noun}{verb}?".split())]
    if wh == "언제" and clause.strip():
        out.append(" ".join(f"언제 {clause}{noun}{verb}?".split()))
    return out


# Nouns about an act (its time, place, reason, charge...) that can follow the act as a compound: "시위 주도 혐의",
# "임종석 검거 장소". A person or thing doing the act cannot ("인도 거부 사람" is not Korean).
_EVENT_NOUNS = _WHEN + ("장소", "곳", "시간", "시각", "이유", "목적", "혐의", "방법", "과정", "계획", "사건", "결과",
                        "당시", "이후", "후", "전", "직후", "배경", "계기", "기간", "횟수", "비용", "날짜")


def _compounded(question: str, tokens) -> list[str]:
    """"시위를 주도한 혐의" -> "시위 주도 혐의": an object and its Sino-Korean 하다-verb before a noun about the act,
    said as one noun phrase, as people often say it (the same words, without 를 and 한)."""
    out = []
    for i in range(len(tokens) - 5):
        obj, jko, verb, xsv, etm, noun = tokens[i:i + 6]
        if (obj.tag.startswith("NN") and jko.tag == "JKO" and verb.tag == "NNG" and xsv.tag == "XSV"
                and xsv.form == "하" and etm.tag == "ETM" and etm.form == "ᆫ" and noun.form in _EVENT_NOUNS
                and question[jko.start + jko.len:verb.start] == " " and question[verb.start + verb.len - 1:
                                                                                  noun.start].endswith(" ")):
            out.append(question[:jko.start] + " " + question[verb.start:verb.start + verb.len] + " "
                       + question[noun.start:])
    return out


def _passivized(question: str, tokens) -> list[str]:
    """"임종석을 검거한 장소는?" -> "임종석이 검거된 장소는?": with no subject before it, the object of a
    Sino-Korean 하다-verb becomes the subject of its 되다 passive. Only before a noun about the act (its time,
    place, reason): "방주를 발견한 탐험가" names the one who acted and has no such passive."""
    out = []
    for k in range(3, len(tokens) - 1):
        etm, xsv, verb, head = tokens[k], tokens[k - 1], tokens[k - 2], tokens[k + 1]
        if not (etm.tag == "ETM" and etm.form in ("ᆫ", "는") and xsv.tag == "XSV" and xsv.form == "하"
                and verb.tag == "NNG" and head.tag == "NNG" and head.form in _EVENT_NOUNS):
            continue
        if k + 2 < len(tokens) and not (tokens[k + 2].tag in ("JX", "JKS") or tokens[k + 2].tag.startswith("S")):
            continue  # "…를 주도한 혐의로 지명수배된 사람": the act's agent is named later; only the topic moves
        before = tokens[:k - 2]
        if any(t.tag == "JKS" or (t.tag == "JX" and t.form in ("은", "는")) for t in before):
            continue  # a subject is the one who acted: its object stays an object
        objects = [t for t in before if t.tag == "JKO"]
        if not objects:
            continue
        jko = objects[-1]
        head_text = question[:jko.start]
        out.append(head_text + particle(head_text, "이/가") + question[jko.start + jko.len:xsv.start]
                   + ("된" if etm.form == "ᆫ" else "되는") + question[etm.start + etm.len:])
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


def rule_paraphrases(question: str, n: int = 10, seed: int = 0, swap_words: list[str] = ()) -> list[str]:
    """See `tagged_rule_paraphrases`; the variants alone."""
    return [v for v, _ in tagged_rule_paraphrases(question, n, seed, swap_words)]


def tagged_rule_paraphrases(question: str, n: int = 10, seed: int = 0,
                            swap_words: list[str] = ()) -> list[tuple[str, bool]]:
    """Up to `n` distinct meaning-preserving variants of `question`, deterministic for a given seed. The variants
    are taken from each kind of rewrite in turn (the wh-word moved into the clause, compounds, passives, synonyms,
    word order, endings, a word left out), so a question's few paraphrases differ in structure, as an LLM's do,
    and not only in their last word. Besides these rewordings, noisy copies: up to DROPOUT_SHARE with a third of
    the words left out, and, given `swap_words` (words of the other training questions), up to SWAP_SHARE with
    one word replaced by one of those (`word_swap`); each variant comes tagged True where it is a noisy copy."""
    question = " ".join(question.split())
    tokens = _kiwi().tokenize(question)
    kinds: dict[str, list[str]] = {k: [] for k in ("moved", "compound", "passive", "synonym", "reorder", "ending",
                                                   "short")}
    split = _split_topic(question, tokens)
    if split:
        topic, wh = split
        kinds["ending"] += _topic_variants(topic, wh)
        for re_topic in _reordered(topic + "은 ?"):
            kinds["reorder"] += _topic_variants(re_topic.rsplit(" ", 1)[0].removesuffix("은"), wh)[:3]
        for moved in _wh_moved(question, tokens):
            kinds["moved"] += [moved] + _verbal_variants(moved, _kiwi().tokenize(moved))[:2]
    else:
        kinds["ending"] += _verbal_variants(question, tokens)
        for end, swaps in _COPULA_SWAPS.items():
            if question.endswith(end):
                kinds["ending"] += [question[: -len(end)] + alt for alt in swaps]
    for variant in kinds["ending"][:4] + kinds["moved"][:1] + [question]:
        variant_tokens = _kiwi().tokenize(variant)
        kinds["compound"] += _compounded(variant, variant_tokens)
        kinds["passive"] += _passivized(variant, variant_tokens)
        kinds["reorder"] += _reordered(variant)
        kinds["synonym"] += _with_synonyms(variant)
    kinds["short"] += _shortened(question)
    seen = {_norm(question)}
    rng = random.Random(seed * 1_000_003 + zlib.crc32(question.encode()))
    pools = []
    for variants in kinds.values():
        pool = []
        for c in variants:
            c = " ".join(c.split())
            if _norm(c) not in seen and keeps_entities(question, c):
                seen.add(_norm(c))
                pool.append(c)
        rng.shuffle(pool)
        pools.append(pool)
    unique = [v for turn in itertools.zip_longest(*pools) for v in turn if v is not None]  # one of each kind in turn
    # the same pool for every seed (the seed picks among variants, it does not make new ones)
    dropped = [d for d in word_dropout(question, random.Random(zlib.crc32(question.encode())), 2 * DROPOUT_SHARE)
               if _norm(d) not in seen and keeps_entities(question, d)]
    dropped = list(dict.fromkeys(dropped))[:min(DROPOUT_SHARE, n // 3)]
    swapped = [w for w in word_swap(question, random.Random(zlib.crc32(question.encode()) + 1), 2 * SWAP_SHARE,
                                    swap_words) if _norm(w) not in seen and keeps_entities(question, w)]
    swapped = list(dict.fromkeys(swapped))[:min(SWAP_SHARE, n // 5)]
    noisy = [(v, True) for v in dropped + swapped]
    clean = iter([(v, False) for v in unique[:n - len(noisy)]])
    # every other variant a noisy one, from the second on: a caller that keeps only the first few (augment
    # asks for a few spare ones and keeps n) keeps the noisy share too
    out = [next(clean, None) if i % 2 == 0 or not noisy else noisy.pop(0) for i in range(n)]
    return [v for v in out if v is not None] + list(clean) + noisy


DROPOUT_SHARE = 3  # of every question's n variants, at most this many have words left out at random
SWAP_SHARE = 2  # ... and at most this many have one word swapped for a word of another question


def _droppable(question: str) -> tuple[list[str], list[int]]:
    """The question's words, and the indexes of those a noisy copy may lose or change: never a name, number,
    quoted span, wh-word or the last word."""
    words = question.split(" ")
    protected = {part for span in protected_spans(question) for part in span.split()}
    return words, [i for i, w in enumerate(words[:-1])
                   if not w.startswith(_WH_WORDS) and not any(p in w or w in p for p in protected)]


def swappable_words(questions: list[str]) -> list[str]:
    """The words of `questions` a noisy copy may take in: no names, numbers or wh-words (a foreign name in a
    question would teach the model to ignore names, the words other wordings keep)."""
    out = set()
    for q in questions:
        words, droppable = _droppable(" ".join(q.split()))
        out.update(words[i] for i in droppable)
    return sorted(out)


def word_swap(question: str, rng: random.Random, k: int, pool: list[str]) -> list[str]:
    """`k` copies of the question with one droppable word replaced by a word drawn from `pool` (the other
    training questions' words). Other people's wordings of a question change some of its words for others;
    a model that saw only exact words keys on all of them. A copy with one foreign word teaches it that the
    answer follows from the rest, as a word lookup (BM25) does (EDA's random replacement, Wei & Zou 2019, with
    words of the corpus instead of synonyms, which this offline backend does not have)."""
    words, droppable = _droppable(question)
    own = set(words)
    candidates = [w for w in dict.fromkeys(pool) if w not in own and not w.startswith(_WH_WORDS)]
    if not droppable or not candidates or len(words) < 3:
        return []
    out = []
    for _ in range(k):
        i = rng.choice(droppable)
        out.append(" ".join(rng.choice(candidates) if j == i else w for j, w in enumerate(words)))
    return out


def word_dropout(question: str, rng: random.Random, k: int) -> list[str]:
    """`k` copies of the question with a third of its words left out at random (never a name, number, quoted
    span, wh-word or the last word). Not grammatical, on purpose: a model that saw only whole questions keys on
    every word of them; one that also saw them with words missing keys on what is left, as a word lookup does
    (EDA's random deletion, Wei & Zou 2019). Other people's wordings keep some words and change the rest."""
    words, droppable = _droppable(question)
    if len(droppable) < 3:
        return []
    return [" ".join(w for i, w in enumerate(words) if i not in set(rng.sample(droppable, len(droppable) // 3)))
            for _ in range(k)]


def _norm(text: str) -> str:
    return re.sub(r"[\s?.!]", "", text)
