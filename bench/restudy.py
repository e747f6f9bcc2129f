"""The `passages` adapter trained again with today's study material, on a copy of a finished run folder: what a
change to the `rules` study backend does, every other adapter kept (they do not learn from the material, save the
reader, which is kept as it was: its open-book rows are not what this compares).

    python bench/restudy.py runs/default runs/restudy-default [--out bench/results/restudy.json]
    python bench/restudy.py runs/default runs/restudy-default --compare   # COPY made before: compare only
    python bench/restudy.py runs/default runs/restudy-default --material-only  # today's material vs RUN's, no training

Copies RUN to COPY without material.json, the passages adapter, its checkpoints and the evaluations, forgets the
material's fingerprint in the copy's run_config.json (else `run` refuses material it did not make), and runs
`korquad-tune run --config COPY/config.yaml --out COPY`: `study` writes the material anew, `train` makes the passages
adapter from the kept `aug`, `evaluate` scores every system. Prints, per set, the passages adapter's right answers in
RUN and in COPY and every question whose answer changed. RUN's own evaluations must use today's decoding settings
for the comparison to be of the material alone (`korquad-tune run --config RUN/config.yaml --out RUN` re-evaluates a
folder whose `eval` settings changed, its adapters kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

SETS = ("trained", "paraphrased", "rephrased", "unseen")
LEFT_BEHIND = ("material.json", "eval", "metrics.json", "report.md", "report.png")


def copy_without_material(src: Path, dst: Path) -> None:
    if dst.exists():
        raise SystemExit(f"{dst} exists; choose another folder")
    shutil.copytree(src, dst, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == src and n in LEFT_BEHIND) or
        (n == "passages" and Path(folder).name in ("adapters", "checkpoints"))])
    stamp = dst / "run_config.json"
    settings = json.loads(stamp.read_text(encoding="utf-8"))
    settings.get("inputs", {}).pop("material", None)
    stamp.write_text(json.dumps(settings, ensure_ascii=False, indent=1), encoding="utf-8")


def predictions(run: Path, set_name: str) -> dict[str, dict]:
    path = run / "eval" / set_name / "passages" / "predictions.jsonl"
    if not path.exists():
        return {}
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def compare(before: Path, after: Path) -> dict:
    out = {}
    for set_name in SETS:
        a, b = predictions(before, set_name), predictions(after, set_name)
        if not a or not b:
            continue
        changed = [{"question": a[k]["question"], "gold": a[k]["gold"], "before": a[k]["prediction"],
                    "after": b[k]["prediction"], "em": [a[k]["em"], b[k]["em"]]}
                   for k in a if k in b and a[k]["prediction"] != b[k]["prediction"]]
        out[set_name] = {"n": len(a), "right_before": sum(r["em"] for r in a.values()),
                         "right_after": sum(r["em"] for r in b.values()), "changed": changed}
    return out


def material_change(before: dict, after: dict) -> dict:
    """How many (question, answer) pairs of the study material are new and gone."""
    old, new = ({(x["question"], x["answer"]) for x in m["qa"]} for m in (before, after))
    return {"new": len(new - old), "gone": len(old - new)}


def main() -> None:
    from korquad_tune.config import load_run_config
    from korquad_tune.pipeline import run_pipeline

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("copy_dir")
    p.add_argument("--out", default=None)
    p.add_argument("--compare", action="store_true", help="COPY is trained and evaluated already: compare only")
    p.add_argument("--material-only", action="store_true",
                   help="write today's material into COPY and count what changed; train nothing (no change: no need)")
    args = p.parse_args()
    src, dst = Path(args.run_dir), Path(args.copy_dir)
    if args.material_only:
        from korquad_tune.passages import study
        copy_without_material(src, dst)
        study(dst, **load_run_config(dst / "config.yaml").study.model_dump())
    elif not args.compare:
        copy_without_material(src, dst)
        run_pipeline(load_run_config(dst / "config.yaml"), dst)
    material = json.loads((dst / "material.json").read_text(encoding="utf-8"))
    before = json.loads((src / "material.json").read_text(encoding="utf-8"))
    change = material_change(before, material)
    print(f"study questions: {len(before['qa'])} -> {len(material['qa'])} ({change['new']} new, {change['gone']} gone)")
    if args.material_only:
        return
    result = {"command": f"python bench/restudy.py {src} {dst}", "study_questions": [len(before["qa"]),
                                                                                         len(material["qa"])],
              "study_questions_changed": change,
              "train_seconds": json.loads((dst / "timings.json").read_text()).get("train passages"),
              "sets": compare(src, dst)}
    for set_name, r in result["sets"].items():
        print(f"{set_name}: {r['right_before']:g} -> {r['right_after']:g} of {r['n']}")
        for c in r["changed"]:
            sign = "+" if c["em"][1] > c["em"][0] else "-" if c["em"][1] < c["em"][0] else "="
            print(f"  {sign} {c['question']} | {c['before']} -> {c['after']} (gold {c['gold'][0]})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
