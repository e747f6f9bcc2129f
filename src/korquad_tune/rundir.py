"""The run folder layout: the one place that names every file a stage reads or writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# name -> (file or folder in the run folder, what writes it)
FILES = {
    "qa": ("qa.jsonl", "prepare: the training questions, one record each"),
    "prepare_summary": ("prepare.json", "prepare: counts and settings"),
    "passages": ("passages.jsonl", "prepare: the paragraphs the questions come from"),
    "rephrased": ("rephrased.jsonl", "prepare: held-out human rephrasings"),
    "unseen": ("unseen.jsonl", "prepare: held-out questions about facts no training question asks"),
    "augmentation": ("augmentation.json", "augment: {question: [paraphrases]} + provenance"),
    "augment_cache": ("augment_cache.jsonl", "augment, openai backend: one line per finished question"),
    "heldout": ("paraphrased.jsonl", "run: LLM paraphrases of training questions, never trained on"),
    "material": ("material.json", "study: what the `passages` adapter (and, in part, the reader) learns from the "
                                  "paragraphs"),
    "material_cache": ("material_cache.jsonl", "study, openai backend: one line per finished paragraph"),
    "adapters": ("adapters", "train: one folder per adapter"),
    "checkpoints": ("checkpoints", "train: resumable checkpoints per adapter"),
    "eval_root": ("eval", "evaluate: eval/<question set>/<system>/"),
    "stamp": ("run_config.json", "run: the settings and inputs this folder belongs to"),
    "config": ("config.yaml", "run: the run config (`run --config` it to rerun the run), then the resolved "
                              "training settings"),
    "timings": ("timings.json", "run: seconds per stage"),
    "metrics": ("metrics.json", "report: every metric"),
    "report_md": ("report.md", "report: the report"),
    "report_png": ("report.png", "report: the chart"),
}


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def __getattr__(self, name: str) -> Path:
        if name in FILES:
            return self.root / FILES[name][0]
        raise AttributeError(name)

    def adapter(self, name: str) -> Path:
        return self.adapters / name

    def checkpoint_dir(self, name: str) -> Path:
        return self.checkpoints / name

    def evaluation(self, system: str, question_set: str) -> Path:
        return self.eval_root / question_set / system

    def outputs(self) -> list[Path]:
        """Everything a run writes here (what `run --fresh` removes); caches of paid API calls stay."""
        return [self.root / f for key, (f, _) in FILES.items() if not key.endswith("cache")]
