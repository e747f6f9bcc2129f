"""Training speed: korquad-tune's trainer against TRL's SFTTrainer used the way AutoTrain uses it, or (with
--prefix) korquad-tune with and without the shared prompt head computed once per batch.

Same model (gemma3-270m), same data (the default run's 85 questions + shipped paraphrases), same LoRA
(r=16, alpha=32, dropout 0.05, all linear layers), lr, batch 8, max length 256, fp32, same threads, one process:
- baseline (AutoTrain's SFT): a `text` column, packing, loss on the whole sequence, gradient checkpointing on
  (TRL's default, which AutoTrain keeps), full logits;
- korquad-tune: prompt/answer pre-tokenised, length-grouped dynamic padding, loss on answer tokens only with the
  output layer applied only there, gradient checkpointing off on CPU.
Each runs --steps optimizer steps; the median step time (first step excluded) times the steps in one epoch gives
seconds/epoch; tokens/second counts the non-padding tokens each step processed.

    python bench/training.py [--steps 12] [--threads 2]
    python bench/training.py --prefix [--steps 12]     # shared_prefix off vs on, same data/seed; losses compared
    python bench/training.py --head [--steps 12]       # TRL's fused head vs korquad-tune's loss-position head
    python bench/training.py --frozen [--steps 12]     # under bf16 autocast: frozen weights fp32 vs bf16
    add --bf16 to train under bf16 autocast, as `train` does by default on a CPU with native bf16 matmuls
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def make_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self._t = [], [], None
            self.steps_per_epoch = None

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)

        def on_train_begin(self, args, state, control, train_dataloader=None, **kw):
            if train_dataloader is not None:
                self.steps_per_epoch = len(train_dataloader)

    return StepTimer()


def count_tokens(trainer_cls):
    """Subclass that records the real (non-padding) tokens of every batch it trains on."""

    class Counting(trainer_cls):
        counted: list[int] = []

        def training_step(self, model, inputs, *a, **kw):
            mask = inputs.get("attention_mask")
            n = int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            type(self).counted.append(n)
            return super().training_step(model, inputs, *a, **kw)

    return Counting


def summarize(name, timer, tokens):
    steady = timer.times[1:]
    step = statistics.median(steady)
    tok_s = sum(tokens[1:len(timer.times)]) / sum(steady)
    return {"system": name, "median_step_s": step, "steps_per_epoch": timer.steps_per_epoch,
            "seconds_per_epoch": step * timer.steps_per_epoch, "tokens_per_second": tok_s,
            "steps_timed": len(steady)}


def run_baseline(run_dir: Path, steps: int, cfg) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from korquad_tune.data import load_qa
    from korquad_tune.models import load_base_model, load_tokenizer, resolve_model
    from korquad_tune.prompts import get_template
    from korquad_tune.rundir import RunDir
    from korquad_tune.data import load_augmentation, training_pairs

    resolved = resolve_model(cfg.model)
    tok = load_tokenizer(resolved)
    tpl = get_template(cfg.template)
    pairs = training_pairs(load_qa(run_dir), load_augmentation(RunDir(run_dir)))
    data = Dataset.from_list([{"text": tpl.text(q, a)} for q, a in pairs])
    model = load_base_model(resolved, device="cpu")
    args = SFTConfig(output_dir=str(run_dir / "baseline"), max_steps=steps, per_device_train_batch_size=8,
                     learning_rate=cfg.learning_rate, packing=True, max_length=cfg.max_length,
                     completion_only_loss=False, gradient_checkpointing=True, bf16=False, use_cpu=True,
                     report_to="none", save_strategy="no", logging_steps=1000, disable_tqdm=True)
    timer = make_timer()
    trainer_cls = count_tokens(SFTTrainer)
    trainer_cls.counted = []
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = trainer_cls(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora,
                          callbacks=[timer])
    trainer.train()
    return summarize("TRL SFTTrainer as AutoTrain (packing, full loss, grad ckpt)", timer, trainer_cls.counted)


def run_ours(run_dir: Path, steps: int, cfg, label: str = "korquad-tune (answer-only loss, TRL's fused head, no "
                                                             "grad ckpt)") -> dict:
    from korquad_tune import train as train_mod

    timer = make_timer()
    counted: list[int] = []
    original = train_mod.make_trainer_class

    def counting_factory():
        cls = count_tokens(original())
        cls.counted = counted
        return cls

    train_mod.make_trainer_class = counting_factory
    try:
        out = train_mod.train(run_dir, cfg, name="bench", augment=True, max_steps=steps, callbacks=[timer])
    finally:
        train_mod.make_trainer_class = original
    losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    return {**summarize(label, timer, counted), "logged_losses": losses}


def main() -> None:
    from korquad_tune.augment import augment
    from korquad_tune.config import load_train_config
    from korquad_tune.data import prepare

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prefix", action="store_true", help="compare shared_prefix off / on instead")
    p.add_argument("--head", action="store_true", help="compare TRL's fused head / ours instead")
    p.add_argument("--frozen", action="store_true", help="compare frozen weights fp32 / cast to bf16 once "
                   "(implies --bf16)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (the default on CPUs with native bf16)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.bf16 = args.bf16 or args.frozen
    cfg = load_train_config("cpu-default", {"threads": args.threads, "bf16": args.bf16, "save_steps": 10_000,
                                            "logging_steps": 1,
                                            "lora_dropout": 0.0 if args.prefix or args.head or args.frozen
                                            else 0.05})
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        prepare(run, articles=3, holdout=False)  # the 85 questions of the seed's experiment
        augment(run, backend="shipped")
        if args.prefix or args.head or args.frozen:  # dropout off: a shared head draws one mask for all rows
            if args.frozen:
                before, after = ({"bf16_frozen": False}, "frozen weights fp32 (autocast casts them at every use)"), \
                    ({"bf16_frozen": True}, "frozen weights cast to bf16 once")
            elif args.prefix:
                before, after = ({"shared_prefix": False}, "per-row prompt"), ({}, "shared prompt head once per batch")
            else:
                before = ({"loss_head": "trl", "shared_prefix": False}, "TRL's fused head")
                after = ({"shared_prefix": False}, "loss-position head (fused, the default since session 23)")
            plain = run_ours(run, args.steps, cfg.model_copy(update=before[0]), before[1])
            shared = run_ours(run, args.steps, cfg.model_copy(update=after[0]), after[1])
            result = {"threads": args.threads, "model": cfg.model, "bf16": args.bf16, "before": plain, "after": shared,
                      "epoch_speedup": plain["seconds_per_epoch"] / shared["seconds_per_epoch"],
                      "max_loss_difference": max(abs(a - b) for a, b in zip(plain["logged_losses"],
                                                                            shared["logged_losses"]))}
            print(json.dumps(result, indent=2))
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=2))
            return
        ours = run_ours(run, args.steps, cfg)
        baseline = run_baseline(run, args.steps, cfg)
    result = {"threads": args.threads, "model": cfg.model, "baseline": baseline, "korquad_tune": ours,
              "epoch_speedup": baseline["seconds_per_epoch"] / ours["seconds_per_epoch"],
              "tokens_per_second_ratio": ours["tokens_per_second"] / baseline["tokens_per_second"]}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
