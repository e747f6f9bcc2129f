"""Train stage: LoRA / QLoRA / full SFT with TRL's SFTTrainer on the run folder's questions (+ paraphrases).

What it does beyond AutoTrain's SFT: prompt and answer are tokenised separately (so training sees exactly
the tokens inference will), the loss is on the answer by default, the output layer is only applied at the
positions that carry loss (Gemma 3's 262k-token head is most of the model's compute), checkpoints every N
steps with `--resume`, and the adapter folder records the base model, template and config it was trained with.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.config import NO_RESULT_FIELDS, TrainConfig, dump_yaml
from korquad_tune.fileio import atomic_dir, atomic_write_text, read_json, write_json, write_jsonl
from korquad_tune.loss_head import LossPositionsHead, find_output_head, fused_cross_entropy, is_plain_linear
from korquad_tune.models import (ADAPTER_META, LEARNED_ANSWERS, LEARNED_QUESTIONS, load_base_model, load_tokenizer,
                                 resolve_model)
from korquad_tune.prompts import get_template
from korquad_tune.rundir import RunDir

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- data
def tokenize_example(tokenizer, prompt: str, completion: str, max_length: int) -> dict:
    """Prompt (no loss) and completion (loss, closed by EOS so generation learns where to stop) tokenised
    separately, so training sees exactly the tokens inference will; an empty prompt makes plain text to learn."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True).input_ids if prompt else \
        tokenizer("", add_special_tokens=True).input_ids
    answer_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    ids = (prompt_ids + answer_ids)[:max_length]
    mask = ([0] * len(prompt_ids) + [1] * len(answer_ids))[:max_length]
    return {"input_ids": ids, "completion_mask": mask}


def text_pieces(text: str, max_chars: int) -> list[str]:
    """A long text cut at sentence ends into pieces of at most ~max_chars (so none is truncated)."""
    from korquad_tune.korean_rules import _kiwi
    pieces, current = [], ""
    for sent in _kiwi().split_into_sents(text):
        if current and len(current) + len(sent.text) > max_chars:
            pieces.append(current.strip())
            current = ""
        current += sent.text + " "
    return pieces + ([current.strip()] if current.strip() else [])


def build_dataset(tokenizer, template, pairs: list[tuple[str, str]], max_length: int,
                  texts: list[str] = (), reader_rows: list[tuple[str, str, str]] = ()):
    """Tokenised rows: QA pairs in the template, plain texts (loss everywhere), and reader rows
    (paragraph, question, answer) in the reader prompt."""
    import datasets
    from datasets import Dataset

    from korquad_tune.prompts import reader_prompt
    datasets.disable_progress_bars()
    rows = [tokenize_example(tokenizer, template.prompt(q, tokenizer), a, max_length) for q, a in pairs]
    rows += [tokenize_example(tokenizer, "", t, max_length) for t in texts]
    rows += [tokenize_example(tokenizer, reader_prompt(c, q), a, max_length) for c, q, a in reader_rows]
    return Dataset.from_list(rows)


def _fitting(tokenizer, examples: list[tuple[str, str]], max_length: int, what: str, setting: str) -> list[bool]:
    """Which (prompt, completion) examples fit whole in `max_length` tokens. A longer one would be cut before or
    inside its answer: cut before, TRL drops it silently (and, for the reader, out of step with the paragraph
    batches: the run stopped, session 27); cut inside, it teaches a clipped answer with no end. Each is left out
    here instead and counted on stderr with the setting that keeps it."""
    uncut = 1 << 30  # each example tokenised as training tokenises it, at its whole length
    fits = [len(tokenize_example(tokenizer, p, c, uncut)["input_ids"]) <= max_length for p, c in examples]
    if not all(fits):
        longest = max(len(p) for (p, _), ok in zip(examples, fits) if not ok)
        print(f"{what}: left out {fits.count(False)} of {len(examples)} examples longer than {setting}="
              f"{max_length} tokens (prompts up to {longest} characters); --set {setting}=N keeps them",
              file=sys.stderr)
    if examples and not any(fits):
        raise KorquadTuneError(f"no {what} example fits in {setting}={max_length} tokens; raise it "
                               f"(--set {setting}=N)")
    return fits


def fitting_pairs(tokenizer, template, pairs: list[tuple[str, str]], max_length: int) -> list[tuple[str, str]]:
    """The (question, answer) pairs whose whole example, in the template, fits in `max_length` tokens."""
    fits = _fitting(tokenizer, [(template.prompt(q, tokenizer), a) for q, a in pairs], max_length,
                    "question/answer", "max_length")
    return [pair for pair, ok in zip(pairs, fits) if ok]


def fitting_reader_rows(tokenizer, rows: list[tuple[str, str, str]], max_length: int) -> list[tuple[str, str, str]]:
    """The reader rows (paragraph, question, answer) whose whole example fits in `max_length` tokens."""
    from korquad_tune.prompts import reader_prompt
    fits = _fitting(tokenizer, [(reader_prompt(c, q), a) for c, q, a in rows], max_length,
                    "reader", "reader_max_length")
    return [row for row, ok in zip(rows, fits) if ok]


# ---------------------------------------------------------------- the trainer
def make_trainer_class():
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    class AnswerLossSFTTrainer(SFTTrainer):
        """SFTTrainer whose loss applies the output layer only at answer positions, and runs the prompt head that
        every row of a batch shares (the Alpaca preamble: ~40% of a row) once rather than once per row."""

        def __init__(self, *args, answer_logits_only: bool = True, shared_prefix: bool = True,
                     batch_groups: list | None = None, fused_head: bool = True, **kwargs):
            super().__init__(*args, **kwargs)
            self._patched = None
            if answer_logits_only:
                head, config = find_output_head(self.model)
                if head is not None:
                    # one process only: under DDP/FSDP the head's weight must be used inside the model's forward
                    fused = fused_head and is_plain_linear(head) and self.args.world_size == 1
                    self._patched = LossPositionsHead(head, fused=fused)
                    self._softcap = getattr(config, "final_logit_softcapping", None)
            # one process only: under DDP the parameters would be used by two forward calls per step; and not
            # under gradient checkpointing, whose layers drop the cache the rows would attend to (the CUDA default:
            # it crashed there, BENCHMARKS 6)
            self.shared_prefix = (shared_prefix and self._patched is not None and self.args.world_size == 1
                                  and not self.args.gradient_checkpointing)
            # rows with the same group key (a reader row's paragraph) are batched together, so that the head they
            # share is the paragraph, not just the template's preamble
            self.batch_groups = batch_groups if self.shared_prefix else None
            self.loss_is_scaled_for_ga = False  # our loss is a per-batch mean; Trainer divides by GA steps
            self.cpu_autocast = False  # bf16 on CPU: every forward of the loss, the shared prefix's too, autocasts

        def compute_loss_context_manager(self):
            # accelerate autocasts the model's forward only; the shared prefix calls the backbone directly
            stack = super().compute_loss_context_manager()
            if self.cpu_autocast:
                stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
            return stack

        def _get_train_sampler(self, train_dataset=None):
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            return EpochSeededLengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=[len(ids) for ids in dataset["input_ids"]], seed=self.args.data_seed or self.args.seed)

        def get_train_dataloader(self):
            if self.batch_groups is None:
                return super().get_train_dataloader()
            from torch.utils.data import DataLoader
            dataset = self._remove_unused_columns(self.train_dataset, description="Training")
            if len(self.batch_groups) != len(dataset):
                raise RuntimeError("batch_groups must name a group for every training row")
            sampler = GroupedBatchSampler(self.batch_groups, self.args.train_batch_size,
                                          seed=self.args.data_seed or self.args.seed)
            return self.accelerator.prepare(DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                                                       num_workers=self.args.dataloader_num_workers))

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self._patched is None or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            fwd = {k: v for k, v in inputs.items() if k not in ("labels", "completion_mask")}
            prefix = shared_prefix_length(inputs["input_ids"], labels) if self.shared_prefix else 0
            if prefix:
                fwd = self._with_prefix_cache(fwd, prefix)
                labels = labels[:, prefix:]
            keep = labels.new_zeros(labels.shape, dtype=bool)
            keep[:, :-1] = labels[:, 1:] != -100  # position t predicts token t+1
            targets = labels[:, 1:][labels[:, 1:] != -100]
            self._patched.keep = keep
            try:
                outputs = model(**fwd, use_cache=False)
                hidden, self._patched.hidden = self._patched.hidden, None
            finally:
                self._patched.keep = None
            if self._patched.fused:
                if hidden is None or hidden.shape[0] != targets.shape[0]:
                    raise RuntimeError("output head did not honour the loss-position mask")
                head = self._patched.head
                loss = fused_cross_entropy(hidden, head.weight, head.bias, targets, self._softcap)
                return (loss, outputs) if return_outputs else loss
            # the model's forward already soft-capped these logits (Gemma 2's final_logit_softcapping)
            logits = outputs.logits
            if logits.dim() != 2 or logits.shape[0] != targets.shape[0]:
                raise RuntimeError("output head did not honour the loss-position mask")
            loss = F.cross_entropy(logits.float(), targets)
            return (loss, outputs) if return_outputs else loss

        def _with_prefix_cache(self, fwd: dict, prefix: int) -> dict:
            """Run the shared head through the backbone once (with gradients, no output layer) and let every row
            attend to its keys/values; the rows then hold only what follows it."""
            from peft import PeftModel
            base = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
            backbone = getattr(base, base.base_model_prefix)
            ids = fwd["input_ids"]
            cache = backbone(input_ids=ids[:1, :prefix], use_cache=True).cache
            cache.batch_repeat_interleave(ids.shape[0])
            positions = torch.arange(prefix, ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
            return {"input_ids": ids[:, prefix:], "attention_mask": fwd["attention_mask"], "cache": cache,
                    "position_ids": positions}

    return AnswerLossSFTTrainer


class RecordingCollator:
    """Wraps a data collator to remember a content hash of every batch (tests check what each DDP rank saw);
    only with KORQUAD_TUNE_RECORD_BATCHES=1, so the training hot path carries no test scaffolding."""

    def __init__(self, collator):
        self.collator, self.seen = collator, []

    def __call__(self, examples):
        import hashlib
        batch = self.collator(examples)
        self.seen.append(hashlib.sha1(batch["input_ids"].cpu().numpy().tobytes()).hexdigest()[:16])
        return batch


MIN_SHARED_PREFIX = 4  # below this, a second forward call costs more than it saves


def shared_prefix_length(input_ids, labels) -> int:
    """How many leading tokens every row of the batch shares and no loss needs (0 if too few to pay off).

    The loss at position t predicts token t+1, so the shared part ends before the first position whose next
    token carries loss; one token is always left to each row."""
    same = (input_ids == input_ids[:1]).all(dim=0)
    n = int(same.long().cumprod(0).sum())
    has_loss = (labels[:, 1:] != -100).any(dim=0)
    first_loss = int(has_loss.nonzero()[0]) if has_loss.any() else input_ids.shape[1]
    n = min(n, first_loss, input_ids.shape[1] - 1)
    return n if n >= MIN_SHARED_PREFIX and input_ids.shape[0] > 1 else 0


def _length_grouped_sampler_base():
    from transformers.trainer_pt_utils import LengthGroupedSampler
    return LengthGroupedSampler


class EpochSeededLengthGroupedSampler(_length_grouped_sampler_base()):
    """Length-grouped batches whose order depends only on (seed, epoch).

    transformers' sampler draws from the global RNG, so a run resumed mid-epoch (global RNG restored to the
    checkpoint's state, not the epoch's start) would see another order than the uninterrupted run.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class GroupedBatchSampler:
    """Batches whose rows share a group key (the reader's paragraph): a group of n rows makes ceil(n / batch_size)
    batches of near-equal size, and the batches come in an order that depends only on (seed, epoch), so a resumed
    run sees what the uninterrupted one saw.

    A reader row is ~400 tokens of paragraph and ~25 of question and answer; a batch of one paragraph's questions
    runs the paragraph through the model once (the shared prefix), not once per question."""

    def __init__(self, groups: list, batch_size: int, seed: int):
        members: dict = {}
        for i, key in enumerate(groups):
            members.setdefault(key, []).append(i)
        self.members, self.batch_size, self.seed, self.epoch = list(members.values()), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _n_batches(self, rows: list) -> int:
        return -(-len(rows) // self.batch_size)

    def __len__(self) -> int:
        return sum(self._n_batches(rows) for rows in self.members)

    def __iter__(self):
        import torch
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = []
        for rows in self.members:
            order = [rows[i] for i in torch.randperm(len(rows), generator=generator)]
            k = self._n_batches(rows)
            sizes = [len(rows) // k + (j < len(rows) % k) for j in range(k)]
            starts = [sum(sizes[:j]) for j in range(k)]
            batches += [order[a:a + n] for a, n in zip(starts, sizes)]
        return iter([batches[i] for i in torch.randperm(len(batches), generator=generator)])


# ---------------------------------------------------------------- progress
def make_progress_callback():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        def __init__(self):
            self.progress = None

        def on_train_begin(self, args, state, control, **kw):
            if state.is_world_process_zero:
                self.progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/"
                                         "{task.total} steps"), TextColumn("loss {task.fields[loss]}"),
                                         TimeElapsedColumn(), TimeRemainingColumn())
                self.progress.start()
                self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step,
                                                   loss="-")

        def on_step_end(self, args, state, control, **kw):
            if self.progress:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.progress and logs and "loss" in logs:
                self.progress.update(self.task, loss=f"{logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kw):
            if self.progress:
                self.progress.stop()

    return RichProgress()


# ---------------------------------------------------------------- the stage
def _use_bf16(cfg: TrainConfig, device: str) -> bool:
    import torch

    from korquad_tune.models import cpu_has_native_bf16
    if cfg.bf16 is not None:
        return cfg.bf16
    return torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_native_bf16()


def _lora_config(cfg: TrainConfig):
    from peft import LoraConfig
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, modules_to_save=cfg.modules_to_save or None,
                      bias="none", task_type="CAUSAL_LM")


def _latest_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint: one killed while being written has no trainer_state.json yet."""
    ckpts = sorted((p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                   key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def _examples(run: RunDir, cfg: TrainConfig, augment: bool, passages: bool, reader: bool):
    """(pairs, texts, reader rows) for one adapter."""
    from korquad_tune.data import load_augmentation, load_qa, training_pairs
    qa = load_qa(run.root)
    if reader:
        return [], [], [(r["context"], r["question"], r["answers"][0]) for r in qa] + reader_material_rows(run, cfg)
    replay = passages and cfg.passages_from is not None  # QA already learnt: replay a little of it, not all,
    per_question = cfg.replay_paraphrases if replay else cfg.paraphrases_per_question  # in real rewordings
    augmentation = load_augmentation(run, rewordings_only=replay) if augment else None
    pairs = training_pairs(qa, augmentation, per_question)
    texts: list[str] = []
    if passages:
        from korquad_tune.passages import load_material, material_texts
        doc = load_material(run)
        material = [(x["question"], x["answer"]) for x in doc["qa"]] * cfg.material_repeats
        if cfg.passage_text:
            texts = [piece for t in material_texts(doc) for piece in text_pieces(t, cfg.text_piece_chars)]
        if cfg.material_rewordings:  # every pass in one dataset, each with its own wording of the material
            passes = _material_passes(cfg)
            return pairs * passes + reworded_passes(material, passes), texts * passes, []
        pairs += material
    return pairs, texts, []


def reader_material_rows(run: RunDir, cfg: TrainConfig) -> list[tuple[str, str, str]]:
    """`reader_material` study questions per paragraph as (paragraph, question, answer) reader rows. The reader
    learns to find an answer in a paragraph; 57 training questions are few examples of that, and the material
    asks about every sentence. One question per answer, the longest (a whole-sentence question: the cut-down
    forms read as broken Korean and taught the reader odd spans, BENCHMARKS 2h), picked by a hash of the question:
    stable, and not the first sentences only."""
    if not cfg.reader_material:
        return []
    from korquad_tune.data import stable_rank
    from korquad_tune.passages import load_material
    doc = load_material(run)
    contexts = {p["id"]: p["context"] for p in doc["paragraphs"]}
    by_paragraph: dict[str, dict[str, dict]] = {}
    for x in doc["qa"]:
        answers = by_paragraph.setdefault(x["paragraph"], {})
        if len(x["question"]) > len(answers.get(x["answer"], {}).get("question", "")):
            answers[x["answer"]] = x
    return [(contexts[pid], x["question"], x["answer"]) for pid, rows in by_paragraph.items()
            for x in sorted(rows.values(), key=lambda r: stable_rank(r["question"]))[:cfg.reader_material]]


def _material_passes(cfg: TrainConfig) -> int:
    return max(1, round(cfg.passages_epochs or cfg.augmented_epochs or cfg.epochs))


def reworded_passes(material: list[tuple[str, str]], passes: int) -> list[tuple[str, str]]:
    """`passes` copies of the material, copy k asking each question in its k-th wording: the question as made,
    then `rules` paraphrases of it (other endings, question words, order), the question itself where it has no
    more. A small model keys a fact on the words it was asked with; asked the same way every pass, it keys on
    exactly those (Allen-Zhu & Li 2024: facts seen in varied wordings are the ones it can use from another angle)."""
    from rich.progress import track

    from korquad_tune.korean_rules import rule_paraphrases
    wordings = {q: [q] + rule_paraphrases(q, passes - 1) for q in
                track(dict.fromkeys(q for q, _ in material), description="rewording the material", transient=True)}
    return [(wordings[q][k] if k < len(wordings[q]) else q, a) for k in range(passes) for q, a in material]


def train(run_dir: str | Path, cfg: TrainConfig, name: str | None = None, augment: bool = True,
          resume: bool = False, device: str | None = None, max_steps: int | None = None,
          callbacks: list | None = None, passages: bool = False, reader: bool = False) -> Path:
    """Train an adapter into RUN_DIR/adapters/<name>/ on RUN_DIR/qa.jsonl (+ augmentation.json with `augment`,
    + material.json with `passages`), or a reader on (paragraph, question) -> answer with `reader`."""
    import torch
    from transformers import set_seed
    from trl import SFTConfig

    from korquad_tune.models import default_device

    run = RunDir(run_dir)
    name = name or ("reader" if reader else "passages" if passages else "aug" if augment else "no-aug")
    out = run.adapter(name)
    pairs, texts, reader_rows = _examples(run, cfg, augment, passages, reader)
    device = device or default_device()
    if cfg.quantization == "int4" and device != "cuda":
        raise KorquadTuneError("this preset asks for int4 (QLoRA), which needs a CUDA GPU; "
                               "on CPU use --preset cpu-default or --quantization none")
    threads = cfg.threads or os.cpu_count() or 1
    if device == "cpu":
        torch.set_num_threads(threads)
    set_seed(cfg.seed)

    resolved = resolve_model(cfg.model)
    tok = load_tokenizer(resolved)
    template = get_template(cfg.template)
    max_length = cfg.reader_max_length if reader else cfg.max_length
    pairs = fitting_pairs(tok, template, pairs, max_length)
    reader_rows = fitting_reader_rows(tok, reader_rows, max_length)
    dataset = build_dataset(tok, template, pairs, max_length, texts, reader_rows)
    model = load_base_model(resolved, device=device, load_in_4bit=cfg.quantization == "int4")

    ckpt_dir = run.checkpoint_dir(name)
    last = _latest_checkpoint(ckpt_dir) if resume else None
    if not resume and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # a fresh run must not mix with an old one's checkpoints
    _check_resume_settings(ckpt_dir, last, cfg, dataset, resolved.spec)
    grad_ckpt = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else device == "cuda"
    bf16 = _use_bf16(cfg, device)
    epochs = _epochs(cfg, augment, passages, reader)
    batch_size = (cfg.reader_batch_size or cfg.batch_size) if reader else cfg.batch_size
    args = SFTConfig(
        output_dir=str(ckpt_dir), num_train_epochs=epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=batch_size, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        # warmup_steps: a float < 1 is a ratio in transformers 5
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
        bf16=bf16, fp16=False, activation_checkpointing=grad_ckpt, use_cpu=device == "cpu",  # gradient_ in TRL
        max_length=max_length, packing=cfg.packing, completion_only_loss=cfg.loss == "answer",
        train_sampling_strategy="random" if cfg.packing else "group_by_length",
        logging_steps=cfg.logging_steps, save_strategy="steps",
        save_steps=cfg.save_steps, save_total_limit=2, report_to=cfg.report_to,
        disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer_cls = make_trainer_class()
    peft_config = _lora_config(cfg) if cfg.method == "lora" else None
    key = "passages_from" if passages else "reader_from" if reader else None
    if key and getattr(cfg, key) is not None:
        model, peft_config = _continue_from(run, getattr(cfg, key), model, key), None
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=tok,
                          peft_config=peft_config, callbacks=[make_progress_callback(), *(callbacks or [])],
                          answer_logits_only=cfg.loss == "answer" and not cfg.packing and cfg.loss_head != "trl",
                          fused_head=cfg.loss_head == "fused",
                          shared_prefix=cfg.shared_prefix,
                          batch_groups=[context for context, _, _ in reader_rows]
                          if reader and cfg.reader_batches == "paragraph" else None)
    trainer.cpu_autocast = bf16 and device == "cpu"
    if trainer.cpu_autocast and cfg.bf16_frozen and cfg.method == "lora":
        from korquad_tune.models import cast_frozen_to_bf16
        cast_frozen_to_bf16(trainer.model)
    if device == "cpu" and cfg.method == "lora" and cfg.dropout_mask == "bits":
        from korquad_tune.lora_cpu import use_bits_dropout
        use_bits_dropout(trainer.model, keep_input_dtype=trainer.cpu_autocast)
    recorder = None
    if os.environ.get("KORQUAD_TUNE_RECORD_BATCHES") == "1":
        recorder = trainer.data_collator = RecordingCollator(trainer.data_collator)
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)  # the rich bar shows progress and loss; logs go to train_log.jsonl
    started = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.time() - started
    if trainer._patched is not None:
        trainer._patched.restore()
    if recorder is not None:
        write_json(ckpt_dir / f"seen_batches_rank{trainer.args.process_index}.json", recorder.seen)

    if trainer.is_world_process_zero():
        _save_adapter(trainer, tok, out, cfg, resolved.portable_spec, name, augment, len(dataset), seconds, result,
                      last is not None,
                      {"passages": passages, "reader": reader, "texts": len(texts)},
                      learned_answers(pairs) if not reader else None,
                      learned_questions(run, cfg, pairs, passages) if not reader else None)
    return out


def _continue_from(run: RunDir, name: str, model, key: str = "passages_from"):
    """The base model with adapter `name` of this run loaded as trainable: the passages adapter then learns the
    material on top of what that adapter already knows (QA first, then passages); so may the reader."""
    from peft import PeftModel
    folder = run.adapter(name)
    if not (folder / ADAPTER_META).exists():
        raise KorquadTuneError(f"{folder}: not trained yet; {key}={name!r} needs it (train it first, or set "
                               f"{key}: null)")
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True)


def _check_resume_settings(ckpt_dir: Path, last: str | None, cfg: TrainConfig, dataset, model_spec: str) -> None:
    """Checkpoints remember the settings and data they were made with; resuming with others is refused."""
    import hashlib
    settings = {**cfg.model_dump(exclude=NO_RESULT_FIELDS),
                "model": model_spec,
                "data_sha1": hashlib.sha1(json.dumps(list(dataset["input_ids"])).encode()).hexdigest()}
    path = ckpt_dir / "settings.json"
    if last is not None and path.exists():
        before = read_json(path)
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            what = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" if k != "data_sha1" else
                             "the training data" for k in changed)
            raise KorquadTuneError(f"{ckpt_dir}: its checkpoints were made with other settings ({what}); resume "
                                   "with the same settings, or train without --resume to start over")
    write_json(path, settings)


def _epochs(cfg: TrainConfig, augment: bool, passages: bool, reader: bool) -> float:
    if reader:
        return cfg.reader_epochs
    if passages and cfg.material_rewordings:
        return 1.0  # the passes are in the dataset (`reworded_passes`)
    if passages and cfg.passages_epochs is not None:
        return cfg.passages_epochs
    return cfg.augmented_epochs if augment and cfg.augmented_epochs is not None else cfg.epochs


def learned_answers(pairs: list[tuple[str, str]]) -> list[str]:
    """Every answer a closed-book adapter was taught, once each, in a stable order (`answers.json`)."""
    return sorted({a for _, a in pairs if a.strip()})


def learned_questions(run: RunDir, cfg: TrainConfig, pairs: list[tuple[str, str]], passages: bool) -> dict:
    """What `decoding: recall` looks an asked question up in (`questions.json`): the trained questions and rewordings
    this adapter learned, each with the sentence its answer stands in, with those of the adapter it continued from,
    and apart from them the study questions, each with the number of the sentence it was made from (where the
    material says: the `rules` backend does), and those sentences."""
    from korquad_tune.data import load_qa, with_answer_sentences
    from korquad_tune.models import read_learned_questions
    study: list = []
    sentences: list[str] = []
    if passages:
        from korquad_tune.passages import load_material, study_rows, study_sentences
        material = load_material(run)["qa"]
        study, sentences = study_rows(material), study_sentences(material)
    in_study = {row[:2] for row in study}
    # each with its answer's sentence: recall finds a trained question by the words of its fact too
    questions = with_answer_sentences([p for p in pairs if p not in in_study], load_qa(run.root))
    if passages and cfg.passages_from is not None:
        questions += (read_learned_questions(run.adapter(cfg.passages_from)) or {}).get("questions", [])
    return {"questions": _distinct_rows(questions), "study": _distinct_rows(study),
            **({"sentences": sentences} if sentences else {})}


def _distinct_rows(rows: list) -> list[list]:
    """Each row with a non-empty question and answer once, in order, as JSON lists."""
    return [list(r) for r in dict.fromkeys(tuple(r) for r in rows) if r[0].strip() and r[1].strip()]


def _save_adapter(trainer, tok, out: Path, cfg: TrainConfig, model_spec: str, name: str, augment: bool,
                  n_examples: int, seconds: float, result, resumed: bool, data: dict,
                  answers: list[str] | None, questions: dict | None = None) -> None:
    """Write adapter + tokenizer + metadata to a temp folder, then rename: never half an adapter."""
    with atomic_dir(out) as tmp:
        trainer.model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if answers:
            write_json(tmp / LEARNED_ANSWERS, answers)
        if questions and questions["questions"]:
            write_json(tmp / LEARNED_QUESTIONS, questions)
        history = trainer.state.log_history
        write_jsonl(tmp / "train_log.jsonl", history)
        atomic_write_text(tmp / "train_config.yaml", dump_yaml(cfg))
        losses = [h["loss"] for h in history if "loss" in h]
        write_json(tmp / ADAPTER_META, {
            "model": model_spec, "template": "reader" if data["reader"] else cfg.template, "name": name,
            "augment": augment, **data,
            "method": cfg.method, "examples": n_examples, "epochs": trainer.args.num_train_epochs,
            "steps": trainer.state.global_step, "train_seconds": round(seconds, 1),
            "final_loss": losses[-1] if losses else None, "train_loss": result.training_loss, "resumed": resumed,
        })


def adapter_done(run_dir: str | Path, name: str) -> bool:
    return (RunDir(run_dir).adapter(name) / ADAPTER_META).exists()
