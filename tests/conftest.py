"""Shared fixtures: real data (slices of the shipped KorQuAD dev set) and the tiny-random model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub in tests: hub ids must fail fast and clearly
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from korquad_tune.config import load_train_config  # noqa: E402
from korquad_tune.data import prepare  # noqa: E402
from fake_openai import fake_openai  # noqa: E402,F401  (fixture)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Converted models go to a per-session cache unless KORQUAD_TUNE_CACHE is set by the caller."""
    if "KORQUAD_TUNE_CACHE" not in os.environ:
        os.environ["KORQUAD_TUNE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return os.environ["KORQUAD_TUNE_CACHE"]


@pytest.fixture(scope="session")
def run3(tmp_path_factory):
    """A run folder with the 85 questions of the first three dev articles (the default run's data)."""
    out = tmp_path_factory.mktemp("run3")
    prepare(out, articles=3, holdout=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder with the first article (11 questions), shipped paraphrases and a trained tiny adapter."""
    from korquad_tune.augment import augment
    from korquad_tune.train import train
    out = tmp_path_factory.mktemp("tiny_run")
    prepare(out, articles=1, holdout=False)
    augment(out, backend="shipped")
    cfg = load_train_config("tiny-test", {"epochs": 40})
    train(out, cfg, name="no-aug", augment=False)
    return out
