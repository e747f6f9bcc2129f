"""Exports: AutoTrain's `train.csv` (a `text` column) and a standalone merged model folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.fileio import atomic_dir, atomic_write_text, write_json
from korquad_tune.models import DEFAULT_MODEL
from korquad_tune.prompts import DEFAULT_TEMPLATE, get_template


def export_autotrain(run_dir: str | Path, out_dir: str | Path, augment: bool = True,
                     template: str = DEFAULT_TEMPLATE) -> tuple[Path, int]:
    """OUT_DIR/train.csv for `autotrain llm --train --data-path OUT_DIR --text-column text` (no EOS added:
    AutoTrain's SFT trainer adds the tokenizer's own)."""
    from korquad_tune.data import run_pairs
    tpl = get_template(template)
    if tpl.uses_chat_template:
        raise KorquadTuneError("export-autotrain needs a plain-text template (alpaca or short)")
    pairs = run_pairs(run_dir, augment)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text"])
    for q, a in pairs:
        writer.writerow([tpl.text(q, a)])
    path = atomic_write_text(Path(out_dir) / "train.csv", buf.getvalue())
    return path, len(pairs)


def export_merged(run_dir: str | Path, adapter: str, out: str | Path) -> Path:
    """Merge a LoRA adapter into its base model and save an ordinary model folder (temp folder, then rename)."""
    from korquad_tune.models import (ADAPTER_META, LEARNED_ANSWERS, LEARNED_QUESTIONS, load_model_with_adapters,
                                     read_adapter_meta, read_learned_answers, read_learned_questions)
    from korquad_tune.rundir import RunDir
    folder = RunDir(run_dir).adapter(adapter)
    if not folder.exists():
        raise KorquadTuneError(f"{folder}: no such adapter; train it first or check --adapter")
    meta = read_adapter_meta(folder)
    model, tok, _ = load_model_with_adapters(meta.get("model", DEFAULT_MODEL), [folder], device="cpu")
    merged = model.merge_and_unload()
    out = Path(out)
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_json(tmp / ADAPTER_META, {**meta, "merged_from": str(folder)})
        answers = read_learned_answers(folder)
        if answers:  # the merged model keeps to the same answers as the adapter did
            write_json(tmp / LEARNED_ANSWERS, answers)
        asked = read_learned_questions(folder)
        if asked:  # and looks them up the same way (decoding: recall)
            write_json(tmp / LEARNED_QUESTIONS, {k: v if k == "sentences" else [list(p) for p in v]
                                                 for k, v in asked.items()})
    return out
