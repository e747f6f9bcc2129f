"""How often the kind of answer a question says it wants (`retrieval.asked_type`, what `decoding: recall`'s `typed`
filter keeps) is the kind its gold answer is, over a whole SQuAD-format file. No model; a few seconds.

    python bench/answer_types.py [--data F] [--out bench/results/answer_types.json]

Counts, per kind: the questions that say it (a number, with the counter "몇 X" names, not a number) and those whose
first gold answer is of it; `misses` lists the questions whose gold answer is not (the filter could drop it where an
answer of the said kind is offered beside it). And, where the paragraph holds a whole date at the gold answer, how
often a question asking for a year (`asked_date_precision`) got the year alone and one asking 언제 / 날짜 … the date.
Also where gold answers stand that the `rules` study material may not ask: inside brackets (dropped as asides), and
a full date set off by a comma ("2017년 1월 17일, …", asked with 언제 since session 28). And where a number with its
counter follows a noun ("슬하 3명", "루이 16세"), whether the person took the number alone (`number_after_NNG`,
`number_after_NNP`) or the noun with it (`noun_and_number_NNG`, `..._NNP`): the counts behind session 29's rule of
asking for the wider span only after a proper noun, tried and left off (BENCHMARKS 2p; the study material still asks
both after any noun).
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path


def count_date_precision(counts: Counter, qa: dict, context: str, asked_date_precision, re) -> None:
    """Where the paragraph holds a whole date at the gold answer ("1984년 5월 19일 …"), whether the person gave the
    year alone or the date, by what the question asks (`retrieval.asked_date_precision`)."""
    precision = asked_date_precision(qa["question"])
    answer = qa["answers"][0]
    gold = re.fullmatch(r"\d+년( \d+월( \d+일)?)?", answer["text"])
    if precision is None or gold is None:
        return
    if re.match(r"\d+년 \d+월", context[answer["answer_start"]:answer["answer_start"] + 20]):
        counts[f"date_in_paragraph_asked_{precision}_gold_{'date' if gold.group(1) else 'year'}"] += 1


def count_answer_places(counts: Counter, qa: dict, context: str, re) -> None:
    """Gold answers inside brackets, and full dates ("…년 …월 …일") followed by a comma."""
    answer = qa["answers"][0]
    start, text = answer["answer_start"], answer["text"]
    counts["answer_in_brackets"] += context[:start].count("(") > context[:start].count(")")
    if re.fullmatch(r"(?:기원전 )?\d+년 \d+월 \d+일", text):
        counts["full_date"] += 1
        counts["full_date_before_comma"] += context[start + len(text):start + len(text) + 1] == ","


def count_number_spans(counts: Counter, qa: dict, context: str, kiwi, re) -> None:
    """A gold number with its counter ("3명", "16세") right after a noun, and a gold noun-and-number ("루이 16세"),
    by the tag Kiwi gives that noun's last morpheme (NNG common, NNP proper)."""
    answer = qa["answers"][0]
    start, text = answer["answer_start"], answer["text"]
    wide = re.fullmatch(r"(\S+) \d+[^\d\s]{1,3}", text)
    if wide:
        noun, label = wide.group(1), "noun_and_number"
    elif re.fullmatch(r"\d+[^\d\s]{1,3}", text) and context[start - 1:start] == " ":
        noun, label = context[:start - 1].split()[-1] if context[:start - 1].split() else "", "number_after"
    else:
        return
    tokens = kiwi.tokenize(noun) if noun else []
    if tokens and tokens[-1].tag in ("NNG", "NNP"):
        counts[f"{label}_{tokens[-1].tag}"] += 1


def main() -> None:
    from korquad_tune.data import shipped_dev_path
    import re

    from kiwipiepy import Kiwi

    from korquad_tune.retrieval import asked_date_precision, asked_type

    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None, help="SQuAD-format file (default: the shipped KorQuAD v1 dev set)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    raw = Path(args.data).read_bytes() if args.data else gzip.decompress(shipped_dev_path().read_bytes())
    counts: Counter = Counter()
    kiwi = Kiwi()
    misses = []
    for article in json.loads(raw)["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                counts["questions"] += 1
                count_date_precision(counts, qa, paragraph["context"], asked_date_precision, re)
                count_answer_places(counts, qa, paragraph["context"], re)
                count_number_spans(counts, qa, paragraph["context"], kiwi, re)
                kinds = asked_type(qa["question"])
                if not kinds:
                    continue
                answer = qa["answers"][0]["text"]
                kind = "number" if kinds[-1]("1") else "not_a_number"  # the loosest kind says which
                counts[kind] += 1
                counts[f"{kind}_fits"] += kinds[-1](answer)
                if len(kinds) == 2:
                    counts["counter"] += 1
                    counts["counter_fits"] += kinds[0](answer)
                if not kinds[-1](answer):
                    misses.append({"question": qa["question"], "answer": answer, "asked": kind})
    result = {**counts, "misses": misses}
    print(json.dumps({k: v for k, v in result.items() if k != "misses"}, ensure_ascii=False))
    for m in misses:
        print(f"  {m['asked']}: {m['question']} -> {m['answer']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
