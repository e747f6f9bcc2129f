"""Statistics over per-question scores: bootstrap intervals of the mean and McNemar's paired test."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


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
