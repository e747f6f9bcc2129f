"""Configs as data: pydantic models that load from YAML, and the shipped training presets."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from korquad_tune import KorquadTuneError
from korquad_tune.fileio import read_text
from korquad_tune.generate import (BATCH_SIZE, BEAMS, DECODINGS, DEFAULT_DECODING, MAX_NEW_TOKENS, RECALL_K,
                                   RECALL_PRIOR, RECALL_STUDY_PRIOR, RECALL_TRAINED_SHARE)
from korquad_tune.llm_api import DEFAULT_API_MODEL
from korquad_tune.models import DEFAULT_MODEL
from korquad_tune.prompts import DEFAULT_TEMPLATE


# Settings that change how fast or how visibly a model trains, never what it learns: a run folder or a checkpoint
# made with other values of these is still the same experiment.
NO_RESULT_FIELDS = {"threads", "save_steps", "logging_steps", "report_to", "bf16_frozen"}


class TrainConfig(BaseModel):
    """Every training knob, with the default the `cpu-default` preset starts from."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="base model spec (see `korquad-tune models`)")
    template: str = Field(DEFAULT_TEMPLATE, description="prompt template name")
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapter or full fine-tuning")
    quantization: Literal["none", "int4"] = Field("none", description="int4 = QLoRA (nf4), CUDA only")
    lora_r: int = Field(16, gt=0, description="LoRA rank")
    lora_alpha: int = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA path")
    dropout_mask: Literal["bits", "torch"] = Field("bits", description="CPU: `bits` draws the LoRA dropout mask from "
                                                   "15 random bits per element (p rounded to 1/32768; the mask ~2.8x "
                                                   "faster than torch's, BENCHMARKS 4e); `torch` uses torch's dropout. "
                                                   "CUDA always uses torch's")
    target_modules: str | list[str] = Field("all-linear", description="LoRA target modules")
    modules_to_save: list[str] = Field(default_factory=list, description="extra fully-trained modules")
    learning_rate: float = Field(5e-4, gt=0, description="peak learning rate")
    epochs: float = Field(8, gt=0, description="passes over the original questions (no augmentation)")
    augmented_epochs: float | None = Field(None, gt=0, description="passes when paraphrases are added (each question "
                                           "then appears 1+n times per pass); None = `epochs`")
    passages_epochs: float | None = Field(None, gt=0, description="passes for the `passages` adapter (QA, paraphrases "
                                          "and passage material); None = augmented_epochs")
    passages_from: str | None = Field(None, description="`passages` adapter: start from this adapter of the run "
                                      "(e.g. aug) and learn the material on top, replaying only the originals and "
                                      "`replay_paraphrases` paraphrases each; None = learn everything from scratch")
    replay_paraphrases: int = Field(2, ge=0, description="with passages_from: paraphrases per question replayed")
    material_repeats: int = Field(1, ge=1, description="`passages` adapter: each question made from the paragraphs "
                                  "appears this many times per pass (a fact has few phrasings; a question many)")
    material_rewordings: bool = Field(False, description="`passages` adapter: each pass asks each question made "
                                      "from the paragraphs in another wording (the first as made, later ones a "
                                      "`rules` paraphrase of it), at the compute of repeating it")
    passage_text: bool = Field(True, description="`passages` adapter: learn the paragraphs as plain text too")
    text_piece_chars: int = Field(300, ge=50, description="paragraphs are cut at sentence ends into pieces of about "
                                  "this many characters")
    reader_from: str | None = Field(None, description="`reader` adapter: start from this adapter of the run (e.g. "
                                    "aug: it already answers the training questions) instead of a new LoRA")
    reader_epochs: float = Field(3, gt=0, description="passes for the `reader` adapter (paragraph + question -> answer)")
    reader_max_length: int = Field(2048, ge=64, description="max tokens of a reader example (paragraph + question + "
                                   "answer; KorQuAD v1 dev's longest paragraph is 1,873 Gemma tokens); a longer "
                                   "example is left out of the reader's training, counted")
    reader_material: int = Field(0, ge=0, description="reader: also learn to read this many study-material "
                                 "questions (material.json) per paragraph — one per answer, the longest, picked "
                                 "by a hash of the question; 0 = the training questions only")
    reader_batch_size: int | None = Field(None, ge=1, description="reader: rows per step (None = batch_size); with "
                                          "paragraph batches a step runs its paragraph once, so more of one "
                                          "paragraph's questions per step cost little")
    reader_batches: Literal["paragraph", "length"] = Field("paragraph", description="reader: `paragraph` batches "
                                                           "one paragraph's questions together, so with "
                                                           "shared_prefix the paragraph runs once per batch (~5x "
                                                           "faster); `length` groups rows by length like the "
                                                           "other adapters")
    batch_size: int = Field(8, ge=1, description="examples per device per step")
    gradient_accumulation_steps: int = Field(1, ge=1, description="steps per optimizer update")
    max_length: int = Field(256, ge=8, description="max tokens of a training example (prompt + answer); a longer "
                            "question/answer example is left out of training, counted")
    loss: Literal["answer", "full"] = Field("answer", description="loss on answer tokens only, or everything")
    packing: bool = Field(False, description="pack several examples into each row of max_length tokens")
    loss_head: Literal["fused", "positions", "trl"] = Field(
        "fused", description="answer loss: `fused` runs the output layer and the cross-entropy at the loss positions "
        "a few hundred at a time, never making their whole logits (korquad-tune's; BENCHMARKS 4d); `positions` makes "
        "the logits of the loss positions only; `trl` uses TRL's fused head (slower on CPU, BENCHMARKS 4; faster "
        "on a GPU with a small model, BENCHMARKS 6b)")
    shared_prefix: bool = Field(True, description="compute the prompt head that every row of a batch shares once "
                                "per batch (same loss, less work on CPU; slower on a GPU with a small model, "
                                "BENCHMARKS 6b); answer loss only, no packing, no gradient checkpointing (its "
                                "layers drop the cache)")
    lr_scheduler: str = Field("linear", description="transformers scheduler name")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    seed: int = Field(42, description="random seed (data order, LoRA init)")
    bf16: bool | None = Field(None, description="bf16 autocast; None = on where the hardware supports it")
    bf16_frozen: bool = Field(True, description="under bf16 autocast on CPU, keep the frozen weights in bf16 "
                              "(cast once, not at every use; the same matmuls)")
    gradient_checkpointing: bool | None = Field(None, description="None = on for CUDA, off on CPU")
    threads: int | None = Field(None, ge=1, description="torch threads; None = all cores")
    save_steps: int = Field(50, ge=1, description="checkpoint every N optimizer steps (for --resume)")
    logging_steps: int = Field(5, ge=1, description="log the loss every N steps")
    report_to: str = Field("none", description="none | tensorboard")
    paraphrases_per_question: int | None = Field(None, ge=0, description="use at most N paraphrases per question")


class _Backend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(None, description="file backend: the file to read")
    base_url: str | None = Field(None, description="openai backend: OpenAI-compatible endpoint (key from "
                                 "OPENAI_API_KEY)")
    model: str = Field(DEFAULT_API_MODEL, description="openai backend: model name")


class AugmentConfig(_Backend):
    """How the training questions are paraphrased (`korquad-tune augment`)."""

    backend: Literal["shipped", "rules", "file", "openai"] = Field("shipped", description="shipped = the paraphrases "
                                                                   "shipped for the default questions; rules = "
                                                                   "offline Kiwi rewrites; openai = an LLM")
    n: int = Field(10, ge=1, description="paraphrases per question")


class StudyConfig(_Backend):
    """How the `passages` adapter's material is made from the training paragraphs (`korquad-tune study`)."""

    backend: Literal["rules", "openai", "file"] = Field("rules", description="rules = offline Kiwi cloze "
                                                        "questions; openai = LLM-written statements and QA")
    n: int = Field(20, ge=1, description="openai backend: question/answer pairs asked for per paragraph")
    dropout: int = Field(0, ge=0, description="rules backend: copies of each question with a third of its words "
                         "left out (measured neutral at equal compute: BENCHMARKS.md section 3)")


QUESTION_SETS = ("trained", "paraphrased", "rephrased", "unseen")


class EvalConfig(BaseModel):
    """How the run's systems are asked."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(MAX_NEW_TOKENS, ge=1, description="answer length budget")
    batch_size: int = Field(BATCH_SIZE, ge=1, description="questions per generation batch")
    open_book_sets: list[Literal[QUESTION_SETS]] = Field(
        default_factory=lambda: ["rephrased", "unseen"],
        description="question sets the open-book and rag systems answer (a paragraph in every prompt makes them "
                    "the slowest systems; by default only the held-out human-written sets, where closed-book is "
                    "compared with them)")
    rag_k: int = Field(1, ge=1, description="rag: paragraphs retrieved into the prompt")
    decoding: Literal[DECODINGS] = Field(
        DEFAULT_DECODING, description="closed-book adapters: 'recall' = answer only with an answer of the trained "
        "questions most like the asked one (the most probable of them, each scored whole); 'learned' = with any "
        "answer the adapter was trained on (beam search); 'free' = any text, greedy (the seed's way)")
    beams: int = Field(BEAMS, ge=1, description="beams for decoding: learned")
    recall_k: int = Field(RECALL_K, ge=1, description="decoding: recall: the answers of this many nearest trained "
                          "questions, and as many nearest among trained and study questions")
    recall_prior: float = Field(RECALL_PRIOR, ge=0, description="decoding: recall: nats added to the score of the "
                                "nearest trained question's answer (0: the model alone chooses)")
    recall_study_prior: float = Field(RECALL_STUDY_PRIOR, ge=0, description="decoding: recall: nats added to the "
                                      "score of the answer of the question nearest among trained and study "
                                      "questions (0: none)")
    recall_trained_share: float = Field(RECALL_TRAINED_SHARE, ge=0, le=1, description="decoding: recall: no "
                                        "trained vote where, once the study questions join, the best trained "
                                        "question scores under this share of the best question (0: always a vote)")


DEFAULT_PRESET = "cpu-default"
SYSTEMS = ("base", "retrieval", "no-aug", "aug", "passages", "open-book", "rag")


class RunConfig(BaseModel):
    """The main job (`korquad-tune run`)."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="SQuAD-format file; None = the shipped KorQuAD v1 dev set")
    articles: int | None = Field(3, ge=1, description="first N articles; None = all")
    limit: int | None = Field(None, ge=1, description="first N questions; None = all")
    holdout: bool = Field(True, description="hold out the rephrased and unseen question sets (see `prepare`)")
    heldout: str | None = Field(None, description="held-out JSONL; None = the shipped set (default data only)")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="paraphrases of the training "
                                   "questions (`korquad-tune augment`)")
    study: StudyConfig = Field(default_factory=StudyConfig, description="material from the training paragraphs "
                               "(`korquad-tune study`)")
    preset: str = Field(DEFAULT_PRESET, description="training preset (src/korquad_tune/presets/) or a YAML file")
    train: dict[str, Any] = Field(default_factory=dict, description="overrides on top of the preset")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="how the systems are asked")
    systems: list[Literal[SYSTEMS]] = Field(default_factory=lambda: list(SYSTEMS), description="the systems "
                                            "evaluated (adapters they need are trained)")


def _presets_dir() -> Path:
    return Path(str(files("korquad_tune").joinpath("presets")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def _yaml_where(e) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(e) -> str:
    """PyYAML's complaint in one line, without its echo of the offending text."""
    return " ".join(str(getattr(e, "problem", None) or e).split())


def load_yaml(path: str | Path, until: str | None = None) -> dict:
    """A YAML file's mapping of settings; with `until`, only the text before that line (if the file holds it)."""
    path = Path(path)
    if not path.exists():
        raise KorquadTuneError(f"{path}: config file not found")
    text = read_text(path)
    if until is not None:
        text = text.split(until, 1)[0]
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise KorquadTuneError(f"{path}: invalid YAML{_yaml_where(e)}: {_yaml_problem(e)}") from None
    if not isinstance(data, dict):
        raise KorquadTuneError(f"{path}: expected a mapping of settings at the top level")
    return data


def _validated(cls, data: dict, source: str):
    try:
        return cls(**data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        if first["type"] == "extra_forbidden":
            raise KorquadTuneError(f"{source}: unknown setting {where!r}; known: {', '.join(cls.model_fields)}") \
                from None
        raise KorquadTuneError(f"{source}: {where} = {first.get('input')!r}: {first['msg']}") from None


def load_train_config(preset: str | None = DEFAULT_PRESET, overrides: dict[str, Any] | None = None,
                      overrides_source: str = "training overrides (--set, command-line options or the run "
                                              "config's train:)") -> TrainConfig:
    """A preset (a name or a YAML path) with overrides on top; unknown keys are errors, blamed on their source."""
    data: dict = {}
    source = "defaults"
    if preset:
        path = Path(preset)
        if path.suffix not in (".yaml", ".yml"):
            path = _presets_dir() / f"{preset}.yaml"
            if not path.exists():
                raise KorquadTuneError(f"unknown preset {preset!r}; choose one of {preset_names()} "
                                       "or pass a YAML file")
        data = load_yaml(path)
        source = str(path)
    _validated(TrainConfig, data, source)  # the preset alone is valid, so what follows is the overrides' fault
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    return _validated(TrainConfig, {**data, **overrides}, overrides_source) if overrides else \
        _validated(TrainConfig, data, source)


# A run folder's config.yaml is its run config, then this line, then the training settings the preset resolved to
# (a record): read as a run config, the part above the line is taken, so that file reruns that run.
RESOLVED_TRAIN_HEADER = "# train (resolved preset + overrides)\n"


def run_record(cfg: "RunConfig", train_cfg: BaseModel) -> str:
    """The text of a run folder's config.yaml."""
    return "# run\n" + dump_yaml(cfg) + RESOLVED_TRAIN_HEADER + dump_yaml(train_cfg)


def load_run_config(path: str | Path | None) -> RunConfig:
    if path is None:
        return RunConfig()
    data = load_yaml(path, until=RESOLVED_TRAIN_HEADER)
    moved = [f"{k} -> augment.{k[8:]}" if k.startswith("augment_") else f"{k} -> eval.{k}" for k in data
             if k.startswith("augment_") or k in EvalConfig.model_fields]  # flat keys of older run configs
    if moved:
        raise KorquadTuneError(f"{path}: flat settings moved into the augment: and eval: sections ("
                               f"{'; '.join(moved)}); see configs/default.yaml")
    cfg = _validated(RunConfig, data, str(path))
    load_train_config(cfg.preset, cfg.train, f"{path}, under train")  # a bad training setting names this file
    return cfg


def dump_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(), allow_unicode=True, sort_keys=False)
