"""The run folder layout: one place that names every file a stage reads or writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def qa(self) -> Path:  # prepare: one record per question
        return self.root / "qa.jsonl"

    @property
    def prepare_summary(self) -> Path:
        return self.root / "prepare.json"

    @property
    def passages(self) -> Path:  # prepare: the paragraphs the questions come from
        return self.root / "passages.jsonl"

    def question_set(self, name: str) -> Path:  # prepare: held-out questions (rephrased, unseen)
        return self.root / f"{name}.jsonl"

    @property
    def material(self) -> Path:  # study: what the `passages` adapter learns from the paragraphs
        return self.root / "material.json"

    @property
    def material_cache(self) -> Path:  # study, openai backend: one line per finished paragraph
        return self.root / "material_cache.jsonl"

    @property
    def augmentation(self) -> Path:  # augment: {question: [paraphrases]} + provenance
        return self.root / "augmentation.json"

    @property
    def augment_cache(self) -> Path:  # openai backend: one line per finished question
        return self.root / "augment_cache.jsonl"

    @property
    def heldout(self) -> Path:  # LLM paraphrases of training questions, never trained on
        return self.root / "paraphrased.jsonl"

    def adapter(self, name: str) -> Path:
        return self.root / "adapters" / name

    def evaluation(self, system: str, question_set: str) -> Path:
        return self.root / "eval" / question_set / system

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_png(self) -> Path:
        return self.root / "report.png"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"
