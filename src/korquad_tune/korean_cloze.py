"""Offline questions from a paragraph's sentences (the `rules` study backend), built on Kiwi morphology.

Cloze-to-question in the spirit of Lewis et al. 2019 ("Unsupervised Question Answering by Cloze
Translation"): in each declarative sentence, a date, a quantity or a noun phrase followed by a particle
becomes the answer; the sentence becomes a question with the matching wh-word (언제 / 몇 + counter /
누구 / 어디 / 무엇), the particle re-chosen for it, and the ending turned into a question (…었다 ->
…었는가?, …이다 -> …인가?). A sentence with no subject gets the article's title as its topic, since
Wikipedia paragraphs drop the subject they are about. Nothing is invented: every word of a question is
the sentence's own, except the wh-word, its particle and the ending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from korquad_tune.korean_rules import _kiwi, particle
from korquad_tune.metrics import normalize_answer

_NOMINAL = {"NNG", "NNP", "NNB", "NR", "SN", "SL", "SH", "XPN", "XSN"}
_SPECIFIC = {"NNP", "SN", "SL", "SH"}  # a chunk with one of these names something, not just a common noun
_DATE_UNITS = {"년", "월", "일", "세기"}
_TIME_UNITS = {"시", "분", "초"}
_PLACE_HEADS = ("시", "도", "군", "구", "동", "읍", "면", "국", "역", "산", "강", "섬", "대학교", "대학", "학교",
                "청", "서", "원", "관", "소", "궁", "성", "항", "공항", "마을", "지역", "지방", "나라", "도시")
# Nouns that bound a phrase rather than belong to it: "1시간 동안", "12월 18일 사이", "7시 40분 경".
_BOUNDARY_NOUNS = {"경", "등", "동안", "사이", "뒤", "후", "전", "때", "중", "당시", "이후", "이전", "이상", "이하",
                   "정도", "약", "및", "간", "무렵", "쯤", "여", "외", "내", "말", "초", "부분", "때문", "이래"}
_OPENING_QUOTES = set("《〈『「<'\"‘“")
MAX_QUOTED_CHARS = 40
_PERSON_HEADS = ("씨", "왕", "황제", "대통령", "장관", "교수", "박사", "선수", "감독", "작가", "의원", "황후", "왕후",
                 "왕비", "공주", "왕자", "세자", "장군", "총리", "회장", "의장", "위원장", "대사", "선생", "여사",
                 "비서관", "주교", "교황", "스님", "목사")
# Titles that stand beside a person's name ("건축가 안병의", "정동춘 K스포츠재단 이사장"): the last word of the title ends so
_TITLE_ENDS = _PERSON_HEADS + ("대표", "이사", "이사장", "단장", "사장", "원장", "총장", "청장", "국장", "부장", "소장",
                               "교장", "관장", "함장", "연대장", "사단장", "준장", "중장", "대장", "사령관", "대변인",
                               "기자", "변호사", "검사", "판사", "연구원", "위원", "비서", "전문가", "교사", "건축가",
                               "작곡가", "가수", "배우", "시인", "화가", "소설가", "평론가", "코치", "주장", "신부",
                               "수상", "국왕", "세조", "태조", "태종", "세종")
_HONORIFICS = ("씨", "님", "군", "양")
MAX_QUESTION_CHARS = 160


@dataclass(frozen=True)
class Token:  # the fields of a Kiwi token this module reads, for tokens it merges
    form: str
    tag: str
    start: int
    len: int


_NAME_PIECE_TAGS = {"MM", "NNG", "NNP", "NNB", "XSN", "XPN", "NR", "MAG"}


def _tokens(text: str) -> list:
    """Kiwi's tokens, with a Korean name it cut apart put back together as one proper noun: Kiwi reads an unknown
    name as syllables of other words ("이창복" -> 이/MM 창/NNG 복/NNG, "이형구" -> 이/JKS 형구/NNG), and a question
    then asks for "형구". A word opening with three syllables, a family name first, in two or three pieces of at most
    two syllables each, with a particle or nothing after them, is such a name."""
    tokens = list(_kiwi().tokenize(text))
    out: list = []
    i = 0
    while i < len(tokens):
        j = i + 1  # the pieces of one word: tokens with no gap between them
        while j < len(tokens) and _gap(tokens, j) == 0 and tokens[j].tag in _NAME_PIECE_TAGS:
            j += 1
        pieces = tokens[i:j]
        word = "".join(t.form for t in pieces)
        rest = tokens[j] if j < len(tokens) and _gap(tokens, j) == 0 else None
        spelled_as_is = text[pieces[0].start:pieces[-1].start + pieces[-1].len] == word  # no contracted forms
        if 2 <= len(pieces) <= 3 and _korean_name(word) and spelled_as_is and _family_name_piece(pieces[0]) \
                and all(len(t.form) <= 2 for t in pieces[1:]) \
                and (i == 0 or _gap(tokens, i) > 0) and (rest is None or rest.tag.startswith("J")):
            out.append(Token(word, "NNP", pieces[0].start, len(word)))
            i = j
            continue
        out.append(tokens[i])
        i += 1
    return out


def _family_name_piece(token) -> bool:
    """The first piece of a name Kiwi cut apart is the family name alone: 홍/NNP, 이/MM ("this") or 이/JKS (a
    subject particle); not 연설/NNG (연설자), 신/XPN (신기술) or a determiner like 전/MM (전세계)."""
    return len(token.form) == 1 and (token.tag in ("NNP", "NNG") or token.form == "이")


@dataclass(frozen=True)
class Chunk:
    start: int  # token index of the first token
    end: int  # token index after the last token
    kind: str  # date | quantity | noun | quoted


def _gap(tokens, i: int) -> int:
    """Characters between token i-1 and token i (0 = same word, 1 = a space)."""
    return tokens[i].start - (tokens[i - 1].start + tokens[i - 1].len)


def _is_boundary(tokens, i: int) -> bool:
    """A bounding noun standing as its own word ("1시간 동안"), not a syllable of a name ("내금강")."""
    return tokens[i].form in _BOUNDARY_NOUNS and (i == 0 or _gap(tokens, i) > 0 or tokens[i].tag == "NNB")


def _chunks(tokens) -> list[Chunk]:
    """Dates, quantities and noun phrases, each a maximal run of nominal tokens of one kind."""
    out: list[Chunk] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        close = _closing_quote(tokens, i)
        if close is not None:  # a title or term in quotes is one answer: 《조선경국전》, 'Jai Ho!'
            out.append(Chunk(i, close + 1, "quoted"))
            i = close + 1
            continue
        if t.tag not in _NOMINAL or _is_boundary(tokens, i):
            i += 1
            continue
        # dates and times: SN + 년/월/일/시/분 (+ more of them)
        j = i
        while (j + 1 < len(tokens) and tokens[j].tag == "SN" and tokens[j + 1].form in _DATE_UNITS | _TIME_UNITS
               and (j == i or _gap(tokens, j) <= 1)):
            j += 2
        if j > i:
            is_year_span = tokens[i + 1].form == "년" and int(tokens[i].form or 0) < 1000 if \
                tokens[i].form.isdigit() else False
            out.append(Chunk(i, j, "quantity" if is_year_span and j == i + 2 else "date"))
            i = j
            continue
        # quantities: SN (+ 만/억) + a counter word right after it (12명, 870만 종, 100m); an ordinal with 제 (제11회)
        ordinal = t.tag == "XPN" and t.form == "제" and i + 1 < len(tokens) and tokens[i + 1].tag == "SN" \
            and _gap(tokens, i + 1) == 0
        if t.tag == "SN" or ordinal:
            j = i + 1 + ordinal
            while j < len(tokens) and tokens[j].tag == "NR" and _gap(tokens, j) == 0:
                j += 1
            if j < len(tokens) and tokens[j].tag in ("NNB", "NNG", "SL") and _gap(tokens, j) <= 1 \
                    and len(tokens[j].form) <= 2:
                end = _counter_end(tokens, j)
                out.append(Chunk(i, end, "quantity"))
                i = end
                continue
        j = i + 1
        while j < len(tokens):
            if _hyphen_joins(tokens, j):  # "마이르-하팅", "콜모고로프-스미르노프 검정", "KH-2": one name
                j += 2
                continue
            if not (tokens[j].tag in _NOMINAL and _gap(tokens, j) <= 1 and not _is_boundary(tokens, j)
                    and not (tokens[j].tag == "SN" and _gap(tokens, j) > 0 and not _number_of_a_name(tokens, j))):
                break
            j += 1
        j = _through_former_title(tokens, j)
        out.append(Chunk(i, j, "noun"))
        if j + 1 < len(tokens) and tokens[j].tag == "SN" and _gap(tokens, j) == 1 and tokens[j + 1].tag in (
                "NNB", "NNG", "SL") and _gap(tokens, j + 1) == 0:
            out.append(Chunk(i, j + 2, "noun"))  # a name with a number in it: 대포동 2호, 아폴로 11호
        i = j
    return out


def _hyphen_joins(tokens, j: int) -> bool:
    """Token j is a hyphen inside a word, between a name's pieces (not a range of numbers, "1950-1953년")."""
    return tokens[j].tag == "SO" and tokens[j].form == "-" and j + 1 < len(tokens) \
        and _gap(tokens, j) == 0 and _gap(tokens, j + 1) == 0 and tokens[j - 1].tag in ("NNP", "NNG", "SL", "SH") \
        and tokens[j + 1].tag in ("NNP", "NNG", "SL", "SH", "SN")


def _number_of_a_name(tokens, j: int) -> bool:
    """"샬케 04와", "아폴로 11에": a number standing as the last word of a name (no counter after it) belongs to it."""
    after = tokens[j + 1] if j + 1 < len(tokens) else None
    return tokens[j - 1].tag == "NNP" and (after is None or _gap(tokens, j + 1) > 0 or after.tag.startswith("J"))


_FORMER = {"전", "당시", "현", "前"}


def _through_former_title(tokens, end: int) -> int:
    """"박선원 전 청와대 통일안보전략비서관", "콘돌리자 라이스 당시 미 국무장관": a name, then 전 / 당시 / 현, then a
    title are one phrase (whose name `person_apposition` asks for by the title); else `end` unchanged."""
    if end >= len(tokens) or tokens[end].form not in _FORMER or _gap(tokens, end) != 1 or tokens[end - 1].tag != "NNP":
        return end
    k = end + 1
    while k < len(tokens) and tokens[k].tag in _NOMINAL and _gap(tokens, k) <= 1 and not _is_boundary(tokens, k):
        k += 1
    title = "".join(t.form for t in tokens[end + 1:k])  # "이사"+"장" -> 이사장
    return k if title.endswith(_TITLE_ENDS) else end


_SQUARE = {"제곱", "평방", "세제곱", "입방"}


def _counter_end(tokens, j: int) -> int:
    """The end of the counter word at token j: "8번째", "3000번대", "530제곱킬로미터" are one counter each."""
    k = j + 1
    while k < len(tokens) and _gap(tokens, k) == 0 and (
            (tokens[k].tag == "XSN" and tokens[k].form in ("째", "대"))
            or (tokens[j].form in _SQUARE and k == j + 1 and tokens[k].tag in ("NNB", "NNG"))):
        k += 1
    return k


def _closing_quote(tokens, i: int) -> int | None:
    """The index of the mark closing the quote that token i opens, for a short quote of a name; else None."""
    if tokens[i].tag != "SSO" or tokens[i].form not in _OPENING_QUOTES:
        return None
    for j in range(i + 1, len(tokens)):
        if tokens[j].tag == "SSC":
            inner = tokens[i + 1:j]
            length = tokens[j].start - tokens[i].start - 1
            named = any(t.tag in _NOMINAL for t in inner)
            return j if named and 0 < length <= MAX_QUOTED_CHARS else None
        if tokens[j].tag in ("SSO", "EF"):
            return None
    return None


def _variants(tokens, chunks: list[Chunk]) -> list[Chunk]:
    """Besides each full date, its year alone (KorQuAD asks "몇 년에…?" as often as "언제…?")."""
    out = []
    for c in chunks:
        out.append(c)
        if c.kind == "date" and c.end - c.start > 2 and tokens[c.start + 1].form == "년":
            out.append(Chunk(c.start, c.end, "year"))  # the whole date gives way to "몇 년에"
    return out


def _surface(text: str, tokens, chunk: Chunk) -> str:
    if chunk.kind == "quoted":  # the answer is what the quote marks hold
        return text[tokens[chunk.start].start + 1:tokens[chunk.end - 1].start].strip()
    return text[tokens[chunk.start].start:tokens[chunk.end - 1].start + tokens[chunk.end - 1].len]


def _counter(text: str, tokens, chunk: Chunk) -> str:
    """The counter word of a quantity, everything after its number: "명", "번째", "제곱킬로미터"."""
    first = next((i for i in range(chunk.start, chunk.end) if tokens[i].tag not in ("SN", "NR", "XPN")),
                 chunk.end - 1)
    last = tokens[chunk.end - 1]
    return text[tokens[first].start:last.start + last.len]


def _is_person(surface: str, tokens, chunk: Chunk, title: str) -> bool:
    if surface.endswith(_PERSON_HEADS):
        return True
    hangul_name = all(t.tag == "NNP" for t in tokens[chunk.start:chunk.end]) and 2 <= len(surface.replace(" ", "")) <= 4 \
        and re.fullmatch(r"[가-힣 ]+", surface) is not None and not surface.endswith(_PLACE_HEADS)
    return hangul_name or surface == title


def _looks_like_a_name(word: str, tags: set[str]) -> bool:
    """A person's name as one word: tagged a proper noun, or three Hangul syllables starting with a surname (Kiwi cuts
    unknown names apart: 윤덕용 -> 윤/NNP 덕/NNG 용/XSN)."""
    return "NNP" in tags or _korean_name(word)


def _korean_name(word: str) -> bool:
    return re.fullmatch(r"[가-힣]{3}", word) is not None and word[0] in _SURNAMES


def _word_tags(sentence: str, tokens, chunk: Chunk, words: list[str]) -> list[set[str]]:
    """The tags of each word's tokens, for the words of a chunk's surface."""
    offsets, at = [], tokens[chunk.start].start
    for w in words:
        begin = sentence.index(w, at)
        offsets.append({t.tag for t in tokens[chunk.start:chunk.end] if begin <= t.start < begin + len(w)})
        at = begin + len(w)
    return offsets


def person_apposition(tokens, chunk: Chunk, sentence: str) -> tuple[str, str] | None:
    """A person's name beside their title, split: "건축가 안병의 씨" -> (안병의, 건축가), "정동춘 K스포츠재단 이사장" ->
    (정동춘, K스포츠재단 이사장), "함장 마쓰오카 바키치" -> (마쓰오카 바키치, 함장). KorQuAD answers such a question with
    the name alone. None where the phrase is not of that shape."""
    words = _surface(sentence, tokens, chunk).split()
    if words and words[-1] in _HONORIFICS:
        words = words[:-1]
    if len(words) < 2:
        return None
    offsets = _word_tags(sentence, tokens, chunk, words)
    glued_name = len(words) == 2 and "NNP" in offsets[-1]  # "민주당 신학용의원": the name is in the title's word
    if _looks_like_a_name(words[0], offsets[0]) and words[-1].endswith(_TITLE_ENDS) \
            and not words[0].endswith(_PLACE_HEADS + ("당",)) \
            and tokens[chunk.end - 1].tag != "NNP" and not glued_name:  # not "명나라 태조 주원장", "민주당 …"
        n = 1  # name first, then the title; a Korean name is one word, a foreign one may be more (드미트리 메드베데프)
        if not _korean_name(words[0]):  # 토마스, 제임스: three syllables, but no family name first
            while n < len(words) - 1 and offsets[n] - {"SO"} == {"NNP"}:  # "마이르-하팅" is one word of the name
                n += 1
        if re.fullmatch(r"[가-힣]{2,}", words[0]):
            return " ".join(words[:n]), " ".join(words[n:])
    title_end = next((i for i, w in enumerate(words[:-1]) if w.endswith(_TITLE_ENDS)), None)
    if title_end is not None and "NNP" not in offsets[title_end] \
            and _looks_like_a_name(words[title_end + 1], offsets[title_end + 1]) and len(words) - title_end <= 4:
        name = words[title_end + 1:]
        if len(name) > 1 and name[-1].endswith(_TITLE_ENDS) and "NNP" not in offsets[-1]:
            name = name[:-1]  # "연대장 막스 지몬 SS준장": the rank after the name is not part of it
        return " ".join(name), " ".join(words[:title_end + 1])  # the title, then the name
    return None


def title_questions(name: str, title: str) -> list[tuple[str, str]]:
    """"마이크로소프트 부사장 제임스 알라드" -> "마이크로소프트 부사장의 이름은?", "마이크로소프트 부사장은 누구인가?":
    KorQuAD asks for a person by their title in these words, and they need no slot in the sentence (the name may
    stand before 의 or in a list with no particle, where the cloze rules ask for name and title together or not at
    all). Only for a title that says whose it is: two words or more, not "함장" alone."""
    if len(title.split()) < 2 or len(name) < 2:
        return []
    return [(f"{title}의 이름은?", name), (f"{title}{particle(title, '은/는')} 누구인가?", name)]


def _wh_phrase(kind: str, surface: str, counter: str, next_tag: str, next_form: str, person: bool) -> str | None:
    """The wh-word plus the particle that replaces the answer and its particle; None where none fits."""
    if kind == "year":
        return "몇 년에"
    if kind == "date":
        if next_tag in ("", "VCP") or next_form in ("에", "에는", ","):  # "2017년 1월 17일, 비는 …" too
            return "언제"
        return "언제" + next_form if next_form in ("부터", "까지", "부터는") else None
    if kind == "quantity":
        return f"몇 {counter}" + (next_form if next_tag.startswith("J") else "")
    place = surface.endswith(_PLACE_HEADS) or next_form in ("에서", "에서는", "로부터")
    if next_tag in ("JKS", "JX") and next_form in ("이", "가", "은", "는"):
        return "누가" if person else ("어디가" if place and next_form in ("이", "가") else "무엇이")
    if next_tag == "JKO":
        return "누구를" if person else "무엇을"
    if next_tag == "JKB":
        if next_form in ("에게", "에게서", "한테", "께"):
            return "누구" + next_form
        if person and next_form in ("로부터", "으로부터"):
            return "누구로부터"
        if next_form in ("로서", "으로서", "로써", "으로써"):
            return ("누구" if person else "무엇") + ("로서" if person else "으로서")
        if next_form in ("에", "에서", "에서는", "로", "으로", "로부터", "으로부터", "까지", "부터"):
            if next_form in ("로", "으로") and not place:
                return "무엇" + "으로"
            return "어디" + ("로" if next_form in ("로", "으로") else "로부터" if next_form == "으로부터" else next_form)
        if next_form in ("와", "과", "하고", "랑", "이랑"):
            return ("누구" if person else "무엇") + particle("누구" if person else "무엇", "과/와")
        return None
    if next_tag == "JC" and next_form in ("와", "과"):  # "이창복 집행위원장과 집행위원에게": a list's first item
        return ("누구" if person else "무엇") + particle("누구" if person else "무엇", "과/와")
    if next_tag == "JKG":
        return "누구의" if person else "무엇의"
    if next_tag == "VCP":
        return "누구" if person else "무엇"
    return None


_CLAUSE_LINKS = {"고", "며", "으며", "지만", "으나", "나", "는데", "ᆫ데"}


def clauses(tokens) -> list[list]:
    """Token runs that each end in a predicate: split where a clause ends with a comma or a linking ending
    (…했고, …이며, …했으나). Each clause can become questions on its own, so long sentences still do."""
    out, current = [], []
    for i, t in enumerate(tokens):
        current.append(t)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if t.tag == "EC" and nxt is not None and (nxt.tag == "SP" or (t.form in _CLAUSE_LINKS and _gap(tokens, i + 1) > 0)):
            out.append(current)
            current = []
        elif t.tag == "SP" and not current[:-1]:
            current = []
    if current:
        out.append(current)
    return [c for c in out if len(c) > 1 or c[-1].tag != "SP"]  # a lone comma is no clause


def _question_ending(text: str, tokens) -> tuple[int, str, str | None] | None:
    """(character offset where the predicate word starts, its question form, its relative form) for a clause
    ending in …다 or in a linking ending (…했고): 지명수배되었다 -> 지명수배됐는가?, 지명수배된."""
    ef = len(tokens) - 1
    while ef >= 0 and tokens[ef].tag in ("SF", "SS", "SSC", "SW", "SP"):
        ef -= 1
    if ef < 1:
        return None
    # Kiwi tags the 어 of a clause cut before its comma ("…CM송으로 쓰여, …") as a sentence ending: it links, like EC
    linking = tokens[ef].tag == "EC" or (tokens[ef].tag == "EF" and tokens[ef].form in ("어", "아"))
    if not (tokens[ef].tag == "EF" and tokens[ef].form.endswith("다") or linking):
        return None
    if linking and tokens[ef - 1].tag not in ("EP", "VV", "VA", "VCP", "XSV", "XSA", "VX", "VV-R", "VA-R", "VV-I",
                                              "VA-I", "VX-R", "VX-I"):
        return None
    first = ef
    while first > 0 and _gap(tokens, first) <= 0:
        first -= 1
    prev = tokens[ef - 1]
    # Rebuild only the verbal tail (stem + endings) so the rest of the word keeps its spelling: 지명수배|됐는가.
    stem = next((k for k in range(ef - 1, first - 1, -1) if tokens[k].tag.startswith(("V", "XS"))), first)
    existential = tokens[stem].form.endswith(("있", "없"))  # 있다/없다 inflect like verbs: 없는가, 있는 곳
    adjectival = prev.tag in ("VCP", "VA", "XSA") and not existential
    ending = ("ᆫ가", "EF") if adjectival else ("는가", "EF")  # 중요한가, 없는가, 지명수배됐는가
    head = text[tokens[first].start:tokens[stem].start]
    tail = [(t.form, t.tag) for t in tokens[stem:ef]]
    past = any(tag == "EP" for _, tag in tail)
    modifier = ("ᆫ", "ETM") if (past and not existential) or adjectival else ("는", "ETM")
    try:
        word = head + _kiwi().join(tail + [ending])
        relative = head + _kiwi().join([m for m in tail if m[1] != "EP"] + [modifier])
    except Exception:  # noqa: BLE001 - Kiwi refuses some tag sequences; such a sentence is skipped
        return None
    return tokens[first].start, word + "?", relative


def _has_subject(tokens) -> bool:
    return any(t.tag == "JKS" or (t.tag == "JX" and t.form in ("은", "는")) for t in tokens)


def clean_title(title: str) -> str:
    """Wikipedia article titles as a sentence would name them: 김정남_(조선민주주의인민공화국) -> 김정남."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", title.replace("_", " ")).strip()


# ---------------------------------------------------------------- "그는" -> "헤이그는" in a person's article
# The commonest Korean family names: a three-syllable title that starts with one is a person's name.
_SURNAMES = set("김이박최정강조윤장임한오서신권황안송전홍유고문양손배백허남심노하곽성차주우구나민진지엄채원천방"
                "공현함변염여추도소석선설마길연위표명기반왕금옥육인맹제모탁국어은편용예경봉사부")
_LIFESPAN = r"[^()]{0,40}\([^)]*\d{1,4}년[^)]*[~∼–-]"  # "헤이그 2세(영어: …, 1924년 12월 2일 ~ 2010년 …)"
_PERSON_QUALIFIER = re.compile(r"\((\d{3,4}년|[가-힣 ]*(가수|배우|소설가|작가|시인|화가|정치인|선수|감독|예언자|왕국|황제|"
                               r"왕|장군|학자|철학자|음악가|작곡가))\)\s*$")
_ROYAL_TITLES = ("황후", "왕후", "왕비", "대왕", "천황", "황제", "공주", "왕자")
_PRONOUN = re.compile(r"(?<![가-힣])(그녀|그)(는|가|의|를|에게서|에게|와|도|은)(?![가-힣])")
# the pair a particle belongs to, to re-choose it after a new word ("그는" -> "헤이그는", "혐의(…)으로" -> "혐의로")
_PARTICLE_PAIRS = {"으로": "으로/로", "로": "으로/로", "은": "은/는", "는": "은/는", "이": "이/가", "가": "이/가",
                   "을": "을/를", "를": "을/를", "과": "과/와", "와": "과/와"}


def article_person(title: str, texts: list[str]) -> str | None:
    """The name a question should use for "그/그녀" in an article about a person (None: not about a person).

    A person: a title word followed by a lifespan in brackets, a three-syllable title starting with a common
    family name (임종석), a title qualified by a year or an occupation ("박대성 (1978년)", "승리 (가수)"), or a
    royal title (명성황후).
    The name is the form the article uses most ("알렉산더 헤이그" -> 헤이그), the whole title where that is
    at least half as common ("마리 앙투아네트")."""
    name = clean_title(title)
    words = [w for w in name.split() if len(w) >= 2]
    text = " ".join(texts)
    person = any(re.search(re.escape(w) + _LIFESPAN, text) for w in words) \
        or (re.fullmatch(r"[가-힣]{3}", name) is not None and name[0] in _SURNAMES) \
        or _PERSON_QUALIFIER.search(title.replace("_", " ")) is not None or name.endswith(_ROYAL_TITLES)
    if not person or not words:
        return None
    top = max(words, key=lambda w: (text.count(w), words.index(w)))  # ties: the later word (the family name)
    return name if len(words) == 1 or 2 * text.count(name) >= text.count(top) else top


def name_pronouns(question: str, name: str) -> str:
    """"그는 나토에서 몇 년을 보내는가?" -> "헤이그는 나토에서 몇 년을 보내는가?": people ask about a person by
    name, and a study question keyed on "그" teaches a fact no one will ask for that way. Unchanged where the
    question names the person already (then "그" may be someone else)."""
    if name.replace(" ", "") in question.replace(" ", ""):
        return question
    return _PRONOUN.sub(lambda m: name + (_rechosen(name, m.group(2)) if m.group(2) in _PARTICLE_PAIRS
                                          else m.group(2)), question)


def _subject_phrase(text: str, tokens) -> str:
    """The clause's opening topic or subject with its particle ("경찰은"), or ""."""
    for i, t in enumerate(tokens[:6]):
        if t.tag == "JKS" or (t.tag == "JX" and t.form in ("은", "는")):
            return text[tokens[0].start:t.start + t.len]
    return ""


def _subject_word(text: str, tokens) -> str:
    """The clause's opening topic or subject without its particle ("경찰", "서울지방검찰청 공안부"), or "" where
    there is none or it is not a plain noun phrase ("해전에서는" names a place, "기보에 적을 때가" a time)."""
    for i, t in enumerate(tokens[:6]):
        if t.tag == "JKS" or (t.tag == "JX" and t.form in ("은", "는")):
            if i == 0 or not all(u.tag.startswith(_NOUN_PHRASE_TAGS) for u in tokens[:i]):
                return ""
            return text[tokens[0].start:t.start].strip()
    return ""


_NOUN_PHRASE_TAGS = ("NN", "NR", "NP", "SN", "SL", "SH", "XSN", "XPN", "MM")


def sentence_questions(sentence: str, title: str = "", person: str | None = None) -> list[tuple[str, str]]:
    """(question, answer) pairs from one declarative sentence, clause by clause; with `person` (the article's
    subject, see `article_person`), "그/그녀" in the questions become that name."""
    topic = clean_title(title)
    topic_phrase = f"{topic}{particle(topic, '은/는')}" if topic else ""
    subject = topic  # who a clause without a subject is about: the title, or the subject of the clause before
    pairs = []
    tokens = _tokens(sentence)
    for clause in clauses(tokens):
        text = sentence[clause[0].start:clause[-1].start + clause[-1].len].strip(" ,")
        clause_tokens = _tokens(text)
        pairs += _clause_questions(text, clause_tokens, topic_phrase, topic, subject)
        topic_phrase = _subject_phrase(text, clause_tokens) or topic_phrase
        subject = _subject_word(text, clause_tokens) or subject
    if person:
        named = [(name_pronouns(q, person), a) for q, a in pairs]
        pairs = [(n if answer_free(n, a) else q, a) for (q, a), (n, _) in zip(pairs, named)]
    return pairs


def _clause_questions(sentence: str, tokens, topic_phrase: str, topic: str, subject: str) -> list[tuple[str, str]]:
    """`topic_phrase` opens a question whose clause has no subject ("경찰은"), `subject` its relative form
    ("경찰이 … 투입한 날은?", not the article's title: "임종석이 … 투입한"); `topic` is the article's title."""
    end = _question_ending(sentence, tokens)
    if end is None:
        return []
    pred_start, pred_question, pred_relative = end
    add_topic = bool(topic_phrase) and not _has_subject(tokens) \
        and topic.replace(" ", "") not in sentence.replace(" ", "")
    pairs = []
    for chunk in _variants(tokens, _chunks(tokens)):
        surface = _surface(sentence, tokens, chunk)
        specific = chunk.kind == "quoted" or any(t.tag in _SPECIFIC for t in tokens[chunk.start:chunk.end])
        called = _called_at(tokens, chunk)
        if chunk.kind == "noun" and not specific and chunk.end - chunk.start < 2 \
                and not _is_a_name_given(tokens, chunk, surface, called):
            continue  # one common noun ("혐의", "시위") is rarely a fact worth asking, unless it is a name given
        if called is not None:  # "소나기라는 작품으로…", "체크메이트라고 한다"
            pairs += _called_questions(sentence, tokens, chunk, called, surface, end,
                                       topic_phrase if add_topic else "", subject if add_topic else "")
            continue
        if tokens[chunk.start].start >= pred_start or len(normalize_answer(surface)) < 1:
            continue
        if chunk.kind == "year":
            surface = sentence[tokens[chunk.start].start:tokens[chunk.start + 1].start + tokens[chunk.start + 1].len]
        nxt = tokens[chunk.end] if chunk.end < len(tokens) else None
        if nxt is not None and chunk.kind == "noun" and nxt.tag in ("XSV", "XSA", "NNB"):
            continue  # a verb/adjective stem (주도하다), not an answer
        next_tag = nxt.tag if nxt is not None and nxt.start - (tokens[chunk.end - 1].start
                                                                 + tokens[chunk.end - 1].len) == 0 else ""
        next_form = nxt.form if next_tag else ""
        apposition = person_apposition(tokens, chunk, sentence) if chunk.kind == "noun" else None
        if apposition is not None and (surface.startswith(apposition[1]) or _korean_name(apposition[0])):
            pairs += title_questions(*apposition)  # not where a foreign name's end may be the title's start
        wh = _wh_phrase(chunk.kind, surface, _counter(sentence, tokens, chunk), next_tag, next_form,
                        apposition is not None or _is_person(surface, tokens, chunk, topic))
        if wh is None:
            continue
        cut_end = nxt.start + nxt.len if next_tag and next_tag != "VCP" else tokens[chunk.end - 1].start + \
            tokens[chunk.end - 1].len
        after = tokens[chunk.end + 1] if chunk.end + 1 < len(tokens) else None
        if wh == "언제" and after is not None and after.tag == "JX" and after.start == cut_end:
            cut_end += after.len  # "6월에는 …" -> "언제 …", not "언제는 …"
        if next_tag == "VCP":  # "…은 노아이다" -> "…은 누구인가?": the copula is rebuilt by the ending
            if chunk.end + 1 >= len(tokens) or tokens[chunk.end + 1].tag != "EF":
                continue
            question = sentence[:tokens[chunk.start].start] + wh + "인가?"
        else:
            before = sentence[:tokens[chunk.start].start]
            if chunk.kind == "quoted" and before and not before[-1].isspace():
                before += " "  # "통치규범인《조선경국전》의" -> "통치규범인 무엇의", not "통치규범인무엇의"
            question = before + wh + sentence[cut_end:pred_start] + pred_question
        if add_topic:
            question = f"{topic_phrase} {question}"
        question = " ".join(question.split())
        answer = surface.strip()  # with its title, if any: KorQuAD's answers are as often "김태영 국방장관" as "윤덕용"
        if normalize_answer(answer).replace(" ", "") in normalize_answer(question).replace(" ", ""):
            continue  # the answer leaks (it occurs twice in the sentence)
        if len(question) > MAX_QUESTION_CHARS or len(question) < 8:
            continue
        pairs.append((question, answer))
        core = core_question(question, wh)
        if core and core != question:
            pairs.append((core, answer))
        if next_tag not in ("VCP", "JKG") and chunk.kind != "quantity":
            relative = _relative_question(sentence, tokens, chunk, cut_end, pred_start, pred_relative, wh,
                                          subject if add_topic else "")
            if relative and answer_free(relative, answer) and 8 <= len(relative) <= MAX_QUESTION_CHARS:
                pairs.append((relative, answer))
            # the name alone is asked by its title: "…기자회견을 연 천안함 사건 민·군 합동조사단장은?" -> 윤덕용
            split = apposition or (name_and_head(tokens, chunk, sentence) if chunk.kind == "noun" else None)
            if split is not None:  # "…탈출한 해역은?" -> 시나가와 (KorQuAD answers name the thing, not its kind)
                name, head = split
                named = _relative_question(sentence, tokens, chunk, cut_end, pred_start, pred_relative, wh,
                                           subject if add_topic else "", head=head)
                if named and answer_free(named, name) and 8 <= len(named) <= MAX_QUESTION_CHARS:
                    pairs.append((named, name))
    return pairs


def _called_at(tokens, chunk: Chunk) -> tuple[str, int] | None:
    """("라는", i) or ("라고", i) where the chunk is a name given by "…(이)라는 Y" or "…(이)라고 부르다"; i is the
    first token after it."""
    i = chunk.end
    if i < len(tokens) and tokens[i].tag == "JKQ" and tokens[i].form in ("이라고", "라고") and _gap(tokens, i) == 0:
        return "라고", i + 1
    if i + 1 < len(tokens) and tokens[i].tag == "VCP" and _gap(tokens, i) == 0 and _gap(tokens, i + 1) == 0:
        if (tokens[i + 1].tag, tokens[i + 1].form) in (("ETM", "라는"), ("EC", "라고")):
            return tokens[i + 1].form, i + 2
    return None


_NAMING_VERBS = {"부르", "불리", "하", "칭하", "일컫", "이르"}
_ABSTRACT_HEADS = {"것", "주장", "사실", "점", "생각", "의견", "이유", "내용", "결론", "소문", "설", "평가", "의미",
                   "근거", "가능성", "말"}


def _is_a_name_given(tokens, chunk: Chunk, surface: str, called: tuple[str, int] | None) -> bool:
    """"체크메이트라고 한다", "소나기라는 작품": the common noun is a name, not a claim ("근거라고 주장했다")."""
    if called is None or tokens[chunk.start].tag != "NNG" or surface in _ABSTRACT_HEADS:
        return False
    link, after = called
    if after >= len(tokens):
        return False
    if link == "라고":  # not "모양이라고 해서" (because it looks like one)
        because = after + 1 < len(tokens) and tokens[after + 1].form in ("어서", "아서", "여서", "서")
        return tokens[after].form in _NAMING_VERBS and not because
    return tokens[after].tag in ("NNG", "NNP") and tokens[after].form not in _ABSTRACT_HEADS


def _called_questions(sentence: str, tokens, chunk: Chunk, called: tuple[str, int], answer: str,
                      ending: tuple[int, str, str], topic_phrase: str, topic: str) -> list[tuple[str, str]]:
    """"그는 소나기라는 작품으로 출연했다" -> "그는 어떤 작품으로 출연했는가?" and "그가 출연한 작품은?";
    "사람들은 그를 '임군'이라고 불렀다" -> "사람들은 그를 무엇이라고 불렀는가?" (answer: the name)."""
    pred_start, pred_question, pred_relative = ending
    link, after = called
    if after >= len(tokens) or tokens[after].start > pred_start:
        return []
    before = sentence[:tokens[chunk.start].start].rstrip()
    rest = sentence[tokens[after].start:pred_start] + pred_question
    relative = None
    if link == "라고":
        question = f"{before} 무엇이라고 {rest}"
    else:
        head_end = after  # the one word the name is given to: "작품", "슬로건"
        while head_end < len(tokens) and tokens[head_end].tag in _NOMINAL - {"NNB"} and (
                head_end == after or _gap(tokens, head_end) == 0):
            head_end += 1
        particle_token = tokens[head_end] if head_end < len(tokens) and _gap(tokens, head_end) == 0 else None
        if head_end == after or tokens[after].start >= pred_start or (particle_token and particle_token.tag == "JKG"):
            return []  # "…이라는 자신의 이름을 건 프로그램": no one word to ask "어떤" of
        question = f"{before} 어떤 {rest}"
        if particle_token is not None and particle_token.tag in ("JKS", "JKO", "JKB", "JX"):
            head = sentence[tokens[after].start:tokens[head_end - 1].start + tokens[head_end - 1].len]
            relative = _relative_question(sentence, tokens, Chunk(chunk.start, head_end, "noun"),
                                          particle_token.start + particle_token.len, pred_start, pred_relative,
                                          "", topic, head=head)
    if topic_phrase:
        question = f"{topic_phrase} {question}"
    return [(" ".join(q.split()), answer) for q in (question, relative)
            if q and answer_free(q, answer) and 8 <= len(" ".join(q.split())) <= MAX_QUESTION_CHARS]


def name_and_head(tokens, chunk: Chunk, sentence: str) -> tuple[str, str] | None:
    """A noun phrase of a name and the kind of thing it names, split: "시나가와 해역" -> (시나가와, 해역),
    "군함 초요마루" -> (초요마루, 군함). None where the phrase is not of that shape."""
    words = _surface(sentence, tokens, chunk).split()
    if len(words) < 2:
        return None
    last_word_tags = {t.tag for t in tokens[chunk.start:chunk.end]
                      if _surface(sentence, tokens, Chunk(chunk.start, chunk.end, "noun")).endswith(words[-1])
                      and sentence[t.start:t.start + t.len] in words[-1]}
    kind_like = re.fullmatch(r"[가-힣]{1,3}", words[-1]) is not None
    if "NNP" in last_word_tags and re.fullmatch(r"[가-힣]{1,3}", words[-2]) and len(words[-1]) >= 2:
        if any(words[-1].endswith(h) and len(words[-1]) > len(h) for h in _PLACE_HEADS if len(h) > 1):
            return None  # "서울 경희대학교": the name says its own kind; 서울 is where, not what ("군함 초요마루")
        return words[-1], words[-2]
    if kind_like and "NNP" not in last_word_tags and words[-1] not in _BOUNDARY_NOUNS \
            and _names_something(tokens, chunk, tokens[chunk.start].start + len(" ".join(words[:-1]))):
        return " ".join(words[:-1]), words[-1]
    return None


def _names_something(tokens, chunk: Chunk, head_start: int) -> bool:
    """The words before the kind hold a name, a number, a foreign word or a word Kiwi does not know (it reads
    "아라랏" as a common noun, but not one of its own): "시나가와 해역", "아라랏 산" do; "치안 부대", "공식 페이지" and
    "대규모 시위" do not (asking "…부대는?" for 치안 taught the adapter answers no person gives)."""
    return any(t.tag in _SPECIFIC or getattr(t, "oov", False)  # `_tokens`' rebuilt names are NNP
               for t in tokens[chunk.start:chunk.end] if t.start < head_start)


CORE_WINDOW = 3  # words kept on each side of the wh-word


def core_question(question: str, wh: str) -> str | None:
    """The same question cut to the words around its wh-word, its topic and its predicate: people ask about one
    fact of a long sentence with few of its other words, and a small model matches what it was shown."""
    words = question.split()
    at = next((i for i, w in enumerate(words) if w.startswith(wh.split()[0])), None)
    if at is None or len(words) <= 2 * CORE_WINDOW + 3:
        return None
    keep = set(range(max(0, at - CORE_WINDOW), min(len(words), at + CORE_WINDOW + 1))) | {len(words) - 1}
    if words[0].endswith(("은", "는", "이", "가")):
        keep.add(0)  # the topic: who or what the sentence is about
    core = " ".join(words[i] for i in sorted(keep))
    return core if _quotes_balanced(core) else None  # not "드라마 《참 좋은 도전했는가?"


_QUOTE_PAIRS = ("《》", "〈〉", "『』", "「」", "‘’", "“”")


def _quotes_balanced(text: str) -> bool:
    return all(text.count(o) == text.count(c) for o, c in _QUOTE_PAIRS) and text.count('"') % 2 == 0


def answer_free(question: str, answer: str) -> bool:
    return normalize_answer(answer).replace(" ", "") not in normalize_answer(question).replace(" ", "")


def _relative_question(sentence: str, tokens, chunk: Chunk, cut_end: int, pred_start: int, relative: str,
                       wh: str, topic: str, head: str | None = None) -> str | None:
    """KorQuAD's own style: the answer's slot becomes a head noun after the relative clause.
    "임종석은 …로 지명수배되었다" (answer: the date) -> "임종석이 …로 지명수배된 날은?"."""
    if head is not None:
        pass
    elif chunk.kind in ("date", "year"):
        head = "해" if chunk.kind == "year" else ("날" if any(t.form == "일" for t in tokens[chunk.start:chunk.end])
                                                 else "때")
    elif wh.startswith(("누구", "누가")):
        head = "사람"
    elif wh.startswith("어디"):
        head = "곳"
    else:
        head = "것"
    before = sentence[:tokens[chunk.start].start]
    topic_marker = next((t for t in tokens if t.tag == "JX" and t.form in ("은", "는")
                         and t.start + t.len <= len(before)), None)
    if topic_marker is not None:  # the topic of a sentence is the subject of a relative clause: 은/는 -> 이/가
        word = before[:topic_marker.start]
        after_particle = any(t.tag.startswith("JK") and t.start + t.len == topic_marker.start for t in tokens)
        before = word + ("" if after_particle else particle(word, "이/가")) + \
            before[topic_marker.start + topic_marker.len:]  # "해전에서는" -> "해전에서", not "해전에서가"
    rest = sentence[cut_end:pred_start]
    if rest.lstrip().startswith((",", ".", ")")):
        return None  # the answer closed an apposition or a list: the clause has no slot left for a head noun
    leftover = next((t for t in tokens if t.start == cut_end and t.tag == "JX"), None)
    if leftover is not None:  # "어디에서는" kept its 는; the relative clause has no place for it
        rest = rest[leftover.len:]
    body = before + rest
    if topic:
        body = f"{topic}{particle(topic, '이/가')} {body}"
    return " ".join(f"{body} {relative} {head}{particle(head, '은/는')}?".split())


# "이름(영어: …, 1924년 12월 2일 ~ 2010년 2월 20일)는 …": the life dates an encyclopaedia opens a biography with
_DATE = r"(?:기원전 )?\d{1,4}년(?: \d{1,2}월(?: \d{1,2}일)?)?"
_LIFE_DATES = re.compile(rf"^(?P<name>[^()]{{2,40}}?)\s*\((?:[^()]*?[,;]\s*)?(?P<born>{_DATE})\s*[~∼–-]\s*"
                         rf"(?P<died>{_DATE})?\s*\)")


def life_date_questions(sentence: str, title: str, person: str) -> list[tuple[str, str]]:
    """Birth and death questions from a biography's opening "이름(…, 출생일 ~ 사망일)", asked of every name the
    article goes by: KorQuAD asks them in these words ("…의 생년월일은?", "…가 태어난 해는?"), and the cloze
    rules cannot reach a date inside brackets."""
    match = _LIFE_DATES.match(sentence)
    if match is None:
        return []
    pairs = []
    for name in dict.fromkeys((match["name"].strip(), clean_title(title), person)):
        pairs += _life_event_questions(name, match["born"], "생년월일", "태어난", "태어났는가")
        if match["died"]:
            pairs += _life_event_questions(name, match["died"], "사망일", "사망한", "사망했는가")
    return pairs


def _life_event_questions(name: str, date: str, day_noun: str, done: str, did: str) -> list[tuple[str, str]]:
    topic, subject = name + particle(name, "은/는"), name + particle(name, "이/가")
    pairs = [(f"{topic} 몇 년에 {did}?", re.match(r"(?:기원전 )?\d{1,4}년", date).group(0))]
    if date.endswith("일"):  # a full date: the day is what "생년월일" and "언제" ask for
        pairs += [(f"{name}의 {day_noun}은?", date), (f"{subject} {done} 날은?", date), (f"{topic} 언제 {did}?", date)]
    return pairs


def cloze_questions(context: str, title: str = "", person: str | None = None) -> list[dict]:
    """Questions from every sentence of a paragraph: [{question, answer, sentence}]; in a person's article
    (`person`, see `article_person`) also the life dates of its opening sentence."""
    out = []
    for sent in _kiwi().split_into_sents(context):
        text = sent.text.strip()
        life = life_date_questions(text, title, person) if person else []
        # questions come from the sentence without its glosses: none asks for a gloss ("정벌(언제 음력 6월)과")
        for q, a in life + sentence_questions(without_asides(text), title, person):
            out.append({"question": q, "answer": a, "sentence": text})
    return out


_BRACKETS = re.compile(r"\s*\([^()]*\)")


def without_asides(text: str) -> str:
    """A sentence or question without bracketed glosses ("김구용(金九容)", "혐의(폭력행위등처벌에관한법률위반)"):
    people leave them out of questions (13 of KorQuAD dev's 5,774 have one), and a small model keys a fact on
    the words it was asked with."""
    for _ in range(3):  # a gloss inside a gloss goes from the inside out
        shorter = _without_innermost_asides(text)
        if shorter == text:
            break
        text = shorter
    return text


def _without_innermost_asides(question: str) -> str:
    out, last = [], 0
    for m in _BRACKETS.finditer(question):
        out.append(question[last:m.start()])
        last = m.end()
        rest = question[last:]
        follow = re.match(r"(으로|로|은|는|이|가|을|를|과|와)(?![가-힣])", rest)  # a particle of _PARTICLE_PAIRS
        if follow and out[-1][-1:] and "가" <= out[-1][-1] <= "힣":  # "혐의(…위반)으로" -> "혐의로"
            out.append(_rechosen(out[-1][-1], follow.group(1)))
            last += follow.end()
        elif not rest[:1].isspace():
            out.append("" if rest[:1] in ("", "?", ",", ".") or "가" <= rest[:1] <= "힣" else " ")
        else:
            out.append(" ")
    out.append(question[last:])
    return " ".join("".join(out).split()).replace(" ?", "?")


def _rechosen(word: str, form: str) -> str:
    """The particle `form` ("는", "으로", …) as it goes after `word`."""
    if form in ("으로", "로"):  # 로 after a vowel or ㄹ, 으로 after any other consonant
        final = (ord(word[-1]) - 0xAC00) % 28 if "가" <= word[-1] <= "힣" else 0
        return "로" if final in (0, 8) else "으로"
    return particle(word, _PARTICLE_PAIRS[form])
