"""A race against the real AutoTrain Advanced: wall time until the trained questions are answered (EM >= 95),
and held-out paraphrase EM at that moment.

Both tools train a LoRA (same rank, alpha, target modules) on SmolLM2-135M (AutoTrain's pinned transformers 4.48
cannot load Gemma 3) from the same 85 questions of the default articles + their 10 shipped paraphrases each,
on the same threads, each its own way:
- AutoTrain Advanced (its own virtualenv, `--autotrain` names its `autotrain` executable): its `llm --train` CLI
  with the original experiment's flags scaled to CPU (`--trainer sft --lr 2e-4 --batch-size 8 --block_size 256
  --peft`, no int4 and no fp16 on CPU), reading `export-autotrain`'s train.csv, saving a checkpoint per epoch
  (a one-row validation split is what makes AutoTrain save per epoch);
- korquad-tune: `korquad-tune train` with the cpu-default preset and `--model smollm2-135m`, checkpoint per epoch.
Every checkpoint is then scored the same way (greedy, the Alpaca prompt, KorQuAD EM) on the 85 trained questions
and the 170 shipped held-out paraphrases; a checkpoint's time is its folder's write time minus the moment the
tool's command started (model loading and data preparation included). The tools run one after the other.

    python bench/autotrain_race.py --autotrain /work/at-venv/bin/autotrain --out runs/race
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def run_watching(cmd: list[str], log: Path, ckpt_root: Path, keep: Path, env: dict | None = None,
                 cwd: Path | None = None) -> dict:
    """Run a training command; every checkpoint it completes is copied to `keep` (tools delete old ones) and its
    time since the command started recorded. Polling twice a second costs nothing next to training."""
    import shutil
    keep.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)
        while True:
            done = proc.poll() is not None
            for ckpt in ckpt_root.glob("**/checkpoint-*"):
                if ckpt.name not in times and (ckpt / "trainer_state.json").exists():
                    times[ckpt.name] = round(time.time() - start, 1)
                    time.sleep(0.5)  # let the tool finish writing the folder
                    shutil.copytree(ckpt, keep / ckpt.name, dirs_exist_ok=True)
            if done:
                break
            time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed (exit {proc.returncode}); see {log}")
    return {"seconds": round(time.time() - start, 1), "checkpoints": times}


def prepare(out: Path, kt: str) -> Path:
    """85 questions (no hold-out) + shipped paraphrases, and AutoTrain's CSV of them."""
    run = out / "data"
    if not (run / "augmentation.json").exists():
        subprocess.run([kt, "prepare", "--out", str(run), "--articles", "3", "--no-holdout"], check=True)
        subprocess.run([kt, "augment", str(run), "--backend", "shipped"], check=True)
    csv_dir = out / "autotrain-data"
    subprocess.run([kt, "export-autotrain", str(run), str(csv_dir)], check=True)
    with open(csv_dir / "train.csv", newline="") as f:
        first = next(iter(list(csv.reader(f))[1:]))
    with open(csv_dir / "valid.csv", "w", newline="") as f:  # AutoTrain saves per epoch only with a valid split
        csv.writer(f).writerows([["text"], first])
    return run


SAME_LOGITS = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok("Below is an instruction. ### Instruction: 임종석이 지명수배된 날은? ### Response: ", return_tensors="pt")
with torch.no_grad():
    logits = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)(**ids).logits
torch.save(logits, sys.argv[2])
"""


def autotrain_model_copy(model_dir: str, out: Path, autotrain: str) -> str:
    """The same weights in a folder transformers 4.48 reads: the builtin folder is written by transformers 5
    (tokenizer class `TokenizersBackend`, RoPE settings under `rope_parameters`). Checked: both environments
    give the same logits for the same prompt."""
    import torch
    copy = out / "smollm2-135m-for-autotrain"
    copy.mkdir(parents=True, exist_ok=True)
    for f in Path(model_dir).iterdir():
        if f.name not in ("config.json", "tokenizer_config.json") and not (copy / f.name).exists():
            (copy / f.name).symlink_to(f.resolve())
    config = json.loads((Path(model_dir) / "config.json").read_text())
    config["rope_theta"] = config.get("rope_parameters", {}).get("rope_theta", 10000.0)
    (copy / "config.json").write_text(json.dumps(config, indent=1))
    tok_config = json.loads((Path(model_dir) / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (copy / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=1))
    for python, folder, name in ((sys.executable, model_dir, "ours.pt"),
                                 (str(Path(autotrain).parent / "python"), str(copy), "autotrain.pt")):
        subprocess.run([python, "-c", SAME_LOGITS, folder, str(out / name)], check=True)
    diff = (torch.load(out / "ours.pt") - torch.load(out / "autotrain.pt")).abs().max().item()
    if diff > 1e-3:
        raise SystemExit(f"the copy for AutoTrain is not the same model (max logit difference {diff})")
    print(f"same model in both environments (max logit difference {diff:.2e})")
    return str(copy.resolve())


def race_autotrain(out: Path, autotrain: str, model_dir: str, epochs: int, threads: int) -> dict:
    project = out / "autotrain-project"
    model_dir = autotrain_model_copy(model_dir, out, autotrain)
    cmd = [autotrain, "llm", "--train", "--model", model_dir, "--project-name", project.name,  # a name, under cwd
           "--data-path", str((out / "autotrain-data").resolve()), "--train-split", "train",
           "--text-column", "text", "--trainer", "sft", "--lr", "2e-4", "--batch-size", "8",
           "--epochs", str(epochs), "--block_size", "256", "--model-max-length", "256", "--peft",
           "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0.05", "--target-modules", "all-linear",
           "--logging-steps", "10", "--seed", "42", "--quantization", "none"]
    env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1",  # AutoTrain starts `accelerate launch` from its own virtualenv
           "PATH": f"{Path(autotrain).parent}{os.pathsep}{os.environ['PATH']}"}
    result = run_watching(cmd, out / "autotrain.log", project, out / "kept" / "autotrain", env, cwd=out)
    if not (project / "adapter_model.safetensors").exists():  # its CLI exits 0 when the training job failed
        raise SystemExit(f"AutoTrain wrote no adapter into {project}; see {out / 'autotrain.log'}")
    # it saves no checkpoint per epoch for a local CSV (no validation split): its final adapter, at its end time
    import shutil
    final = f"checkpoint-epoch{epochs}"
    shutil.copytree(project, out / "kept" / "autotrain" / final, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("autotrain-data", "checkpoint-*"))
    result["checkpoints"][final] = result["seconds"]
    return {"command": cmd, **result}


def race_korquad_tune(out: Path, run: Path, kt: str, epochs: int, threads: int) -> dict:
    steps_per_epoch = -(-len((run / "qa.jsonl").read_text().splitlines()) * 11 // 8)  # originals + 10 paraphrases
    cmd = [kt, "train", str(run), "--model", "smollm2-135m", "--name", "race", "--set", f"augmented_epochs={epochs}",
           "--set", f"threads={threads}", "--save-steps", str(steps_per_epoch)]
    return {"command": cmd, **run_watching(cmd, out / "korquad-tune.log", run / "checkpoints" / "race",
                                           out / "kept" / "korquad-tune")}


def library_versions(python: str) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in ('torch', "
            "'transformers', 'trl', 'peft', 'accelerate') + tuple(x for x in ('autotrain-advanced', 'korquad-tune') "
            "if any(d.metadata['Name'] == x for d in m.distributions()))}))")
    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)


def checkpoints(folder: Path, times: dict) -> list[Path]:
    found = [p for p in folder.glob("checkpoint-*") if (p / "adapter_model.safetensors").exists()]
    return sorted(found, key=lambda p: times[p.name])


def score(base_dir: str, adapter: Path, question_sets: list[list[dict]], threads: int) -> list[float]:
    """EM of one checkpoint on each question set (one model load for all of them)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from korquad_tune.generate import generate_from_prompts
    from korquad_tune.metrics import score_one
    from korquad_tune.prompts import get_template
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter)).eval()
    ems = []
    for questions in question_sets:
        prompts = [get_template("alpaca").prompt(q["question"]) for q in questions]
        answers = generate_from_prompts(model, tok, prompts, 16, 24)
        ems.append(100 * sum(score_one(a, q["answers"])[0] for a, q in zip(answers, questions)) / len(questions))
    return ems


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--autotrain", required=True, help="the autotrain executable of AutoTrain's own virtualenv")
    p.add_argument("--out", default="runs/race")
    p.add_argument("--epochs", type=int, default=4, help="korquad-tune: epochs, a checkpoint after each")
    p.add_argument("--autotrain-epochs", type=int, default=1, help="AutoTrain: epochs (its final adapter is scored; "
                   "on 2 CPU cores one epoch takes ~15 minutes)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-training", action="store_true", help="only score the checkpoints already there")
    args = p.parse_args()
    from korquad_tune.augment import load_shipped_heldout
    from korquad_tune.data import load_qa
    from korquad_tune.fileio import write_json
    from korquad_tune.models import resolve_model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kt = str(Path(sys.executable).parent / "korquad-tune")
    run = prepare(out, kt)
    model_dir = resolve_model("smollm2-135m").path
    timings_file = out / "timings.json"
    if not args.skip_training:
        timings = {"autotrain": race_autotrain(out, args.autotrain, model_dir, args.autotrain_epochs, args.threads),
                   "korquad-tune": race_korquad_tune(out, run, kt, args.epochs, args.threads)}
        write_json(timings_file, timings)
    timings = json.loads(timings_file.read_text())
    trained = load_qa(run)
    ids = {r["id"] for r in trained}
    heldout = [r for r in load_shipped_heldout() if r["source_id"] in ids]
    rows = []
    for tool in timings:
        for ckpt in checkpoints(out / "kept" / tool, timings[tool]["checkpoints"]):
            em_trained, em_heldout = score(model_dir, ckpt, [trained, heldout], args.threads)
            rows.append({"tool": tool, "checkpoint": ckpt.name, "seconds": timings[tool]["checkpoints"][ckpt.name],
                         "trained_em": round(em_trained, 1), "heldout_em": round(em_heldout, 1)})
            print(json.dumps(rows[-1]), flush=True)
    first = {tool: next((r for r in rows if r["tool"] == tool and r["trained_em"] >= 95), None) for tool in timings}
    versions = {tool: library_versions(str(Path(exe).parent / "python"))
                for tool, exe in (("autotrain", args.autotrain), ("korquad-tune", kt))}
    result = {"rows": rows, "first_em95": first, "epochs": {"korquad-tune": args.epochs,
                                                            "autotrain": args.autotrain_epochs}, "threads": args.threads,
              "commands": {tool: " ".join(t["command"]) for tool, t in timings.items()},
              "total_seconds": {tool: t["seconds"] for tool, t in timings.items()},
              "versions": versions, "machine": platform.processor() or platform.machine(),
              "n_trained": len(trained), "n_heldout": len(heldout)}
    if all(first.values()):
        result["speedup"] = round(first["autotrain"]["seconds"] / first["korquad-tune"]["seconds"], 2)
    elif first["korquad-tune"]:  # AutoTrain did not get there in the time it ran: a lower bound
        result["speedup_at_least"] = round(timings["autotrain"]["seconds"] / first["korquad-tune"]["seconds"], 2)
    write_json(ROOT / "bench" / "results" / "autotrain_race.json", result)
    print(json.dumps({k: result[k] for k in ("first_em95",) + tuple(k for k in ("speedup", "speedup_at_least") if k in result)}))


if __name__ == "__main__":
    main()
