"""KorQuAD v1 exact match and character-level F1, as in the official `evaluate-v1.0.py`.

Pure functions a reader can check against the official script line by line; the statistics over them
(bootstrap intervals, McNemar's test) live in stats.py.
"""

from __future__ import annotations

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
