"""KorQuAD v1 exact match and character-level F1, as in the official `evaluate-v1.0.py`.

Pure functions a reader can check against the official script line by line, plus the statistics the
report needs (bootstrap intervals, McNemar's paired test).
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

# The official script replaces these with a space before dropping punctuation.
_KORQUAD_SYMBOLS = re.compile("['\"《》<>〈〉()‘’]")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Official KorQuAD v1 normalisation: symbols -> space, lower case, drop ASCII punctuation, squeeze spaces."""
    text = _KORQUAD_SYMBOLS.sub(" ", s)
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Character-level F1 over the normalised strings with spaces dropped (KorQuAD's change to SQuAD)."""
    pred_chars = [c for tok in normalize_answer(prediction).split() for c in tok]
    gold_chars = [c for tok in normalize_answer(ground_truth).split() for c in tok]
    num_same = sum((Counter(pred_chars) & Counter(gold_chars)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_chars)
    recall = num_same / len(gold_chars)
    return 2 * precision * recall / (precision + recall)


def metric_max_over_ground_truths(metric_fn: Callable[[str, str], float], prediction: str,
                                  ground_truths: Sequence[str]) -> float:
    return max(float(metric_fn(prediction, gt)) for gt in ground_truths)


def score_one(prediction: str, ground_truths: Sequence[str]) -> tuple[float, float]:
    """(em, f1) of one prediction, each in [0, 1]."""
    return (metric_max_over_ground_truths(exact_match_score, prediction, ground_truths),
            metric_max_over_ground_truths(f1_score, prediction, ground_truths))


def bootstrap_interval(values: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, as percentages."""
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_resamples))
    lo = means[int((1 - confidence) / 2 * n_resamples)]
    hi = means[min(n_resamples - 1, int((1 + confidence) / 2 * n_resamples))]
    return (100 * lo, 100 * hi)


def aggregate(ems: Sequence[float], f1s: Sequence[float]) -> dict:
    """Totals as percentages, like the official script, with 95% bootstrap intervals."""
    n = len(ems)
    return {
        "exact_match": 100 * sum(ems) / n if n else 0.0,
        "f1": 100 * sum(f1s) / n if n else 0.0,
        "n": n,
        "exact_match_ci95": list(bootstrap_interval(ems)),
        "f1_ci95": list(bootstrap_interval(f1s, seed=1)),
    }


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """Exact McNemar test on paired right/wrong outcomes (two-sided binomial on the discordant pairs)."""
    if len(correct_a) != len(correct_b):
        raise ValueError("McNemar needs the same questions for both systems")
    b = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)  # only A right
    c = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)  # only B right
    n = b + c
    if n == 0:
        p = 1.0
    else:
        k = min(b, c)
        p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"only_a": b, "only_b": c, "p_value": p}
