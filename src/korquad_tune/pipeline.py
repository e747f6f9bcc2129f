"""`korquad-tune run`: the whole experiment, resumable stage by stage.

prepare -> augment -> train (no-aug, aug) -> evaluate (base, retrieval, no-aug, aug on the trained questions and
on held-out paraphrases) -> report. A stage whose output exists (for the same settings) is not redone; a
training killed midway continues from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.config import NO_RESULT_FIELDS, RunConfig, load_train_config, run_record
from korquad_tune.evaluate import OPEN_BOOK
from korquad_tune.fileio import atomic_write_text, read_json, write_json, write_jsonl
from korquad_tune.rundir import RunDir

# adapter -> (augment, passages, reader): what train() learns from for it
ADAPTERS = {"no-aug": (False, False, False), "aug": (True, False, False), "passages": (True, True, False),
            "reader": (False, False, True)}


def _fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_sha1(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12] if path.exists() else None


# Settings that change only how a finished run is evaluated: changed, the answers are redone, the training kept.
EVAL_ONLY = {"eval"}


def _check_settings(run: RunDir, cfg: RunConfig, train_cfg, fresh: bool, console=None) -> dict:
    """A run folder belongs to one experiment: its run config, the resolved training settings (preset contents,
    not the preset's name) and the inputs its stages were made from. Refuse to mix results from two; where only
    the evaluation settings changed, drop the evaluations and report (they are redone) and keep the rest."""
    settings = {"config": cfg.model_dump(), "train": train_cfg.model_dump(exclude=NO_RESULT_FIELDS)}
    current = {"fingerprint": _fingerprint(settings), **settings, "inputs": {}}
    if fresh:
        for p in run.outputs():
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if run.stamp.exists() and not _holds_results(run):
        run.stamp.unlink()  # a run that stopped before its first stage wrote anything (a wrong data path): start over
    if run.stamp.exists():
        before = read_json(run.stamp)
        if before.get("fingerprint") != current["fingerprint"]:
            changed = sorted({f"train.{k}" for k in settings["train"]
                              if before.get("train", {}).get(k) != settings["train"][k]} |
                             {k for k in settings["config"] if before.get("config", {}).get(k) != settings["config"][k]})
            what = ", ".join(changed) or "none of its own: it was made by another version of korquad-tune"
            if changed and set(changed) <= EVAL_ONLY:
                for p in (run.eval_root, run.metrics, run.report_md, run.report_png):
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                if console is not None:
                    console.print(f"{run.root}: evaluation settings changed ({what}); evaluating again, the "
                                  "trained adapters kept", style="yellow")
            else:
                raise KorquadTuneError(f"{run.root} holds a run with other settings (changed: {what}); "
                                       "use another --out, or --fresh to start this folder over")
        for name, digest in before.get("inputs", {}).items():
            if file_sha1(getattr(run, name)) != digest:
                raise KorquadTuneError(f"{getattr(run, name)} changed since this run used it (another `prepare`, "
                                       "`augment` or `study` into this folder?); use --fresh to redo the run, or "
                                       "another --out")
        current["inputs"] = before.get("inputs", {})
    write_json(run.stamp, current)
    return current


def _holds_results(run: RunDir) -> bool:
    """Whether any stage wrote something here; the stamp, config and timings are `run`'s own notes."""
    notes = {run.stamp, run.config, run.timings}
    return any(p.exists() for p in run.outputs() if p not in notes)


def _record_input(run: RunDir, stamp: dict, name: str) -> None:
    """Remember what a stage's output looked like, so later edits to it are noticed."""
    stamp["inputs"][name] = file_sha1(getattr(run, name))
    write_json(run.stamp, stamp)


def _heldout_rows(cfg: RunConfig, qa: list[dict]) -> list[dict] | None:
    """The held-out LLM paraphrases: the given file, else the shipped ones for the questions this run trains on
    (they exist for the first three articles of the shipped dev set), each with its source's paragraph; None
    when there are none."""
    from korquad_tune.augment import load_shipped_heldout
    from korquad_tune.data import load_questions
    if cfg.heldout:
        return load_questions(cfg.heldout)
    if cfg.data is None:
        contexts = {r["id"]: r["context"] for r in qa}
        rows = [{**{k: r[k] for k in ("id", "question", "answers")}, "context": contexts[r["source_id"]]}
                for r in load_shipped_heldout() if r["source_id"] in contexts]
        return rows or None
    return None


def question_sets(run: RunDir, cfg: RunConfig, qa: list[dict]) -> dict[str, list[dict]]:
    """Every question set the run evaluates, in report order; empty sets are left out."""
    from korquad_tune.fileio import read_jsonl
    heldout = _heldout_rows(cfg, qa)
    if heldout is not None and not run.heldout.exists():
        write_jsonl(run.heldout, heldout)
    sets = {"trained": qa, "paraphrased": heldout or []}
    for name in ("rephrased", "unseen"):
        sets[name] = read_jsonl(getattr(run, name)) if getattr(run, name).exists() else []
    return {name: rows for name, rows in sets.items() if rows}


def finished_run_sets(run_dir: str | Path, names: list[str] | None = None) -> tuple[RunConfig, dict[str, list[dict]]]:
    """The settings a run folder was made with (its stamp; the defaults where it has none) and its question sets,
    only `names` if given: what benches that re-score a finished run's adapters start from."""
    from korquad_tune.data import load_qa
    from korquad_tune.fileio import read_json
    run = RunDir(run_dir)
    cfg = RunConfig.model_validate(read_json(run.stamp)["config"]) if run.stamp.exists() else RunConfig()
    sets = question_sets(run, cfg, load_qa(run.root))
    return cfg, {k: v for k, v in sets.items() if names is None or k in names}


def run_pipeline(cfg: RunConfig, out: str | Path, fresh: bool = False, console=None) -> Path:
    from rich.console import Console

    from korquad_tune.augment import augment
    from korquad_tune.data import load_qa, prepare
    from korquad_tune.passages import study
    from korquad_tune.report import write_report
    from korquad_tune.train import adapter_done, train

    console = console or Console()
    from korquad_tune.fileio import ensure_dir
    train_cfg = load_train_config(cfg.preset, cfg.train)  # before anything is written: a bad config stamps nothing
    run = RunDir(ensure_dir(out, "run folder (--out)"))
    stamp = _check_settings(run, cfg, train_cfg, fresh, console)
    timings = read_json(run.timings) if run.timings.exists() else {}
    atomic_write_text(run.config, run_record(cfg, train_cfg))

    @contextmanager
    def stage(name: str, key: str | None = None):
        """A rule with the stage's name; its seconds go to timings.json under `key` (default: the name)."""
        from rich.text import Text
        console.rule(Text(name, style="bold"))
        t = time.time()
        yield
        timings[key or name] = round(time.time() - t, 1)
        write_json(run.timings, timings)

    if not run.qa.exists():
        with stage("prepare"):
            _, s = prepare(run.root, data=cfg.data, articles=cfg.articles, limit=cfg.limit, holdout=cfg.holdout)
            counts = read_json(run.prepare_summary)
            console.print(f"{s.questions} questions from {s.articles} articles: {counts['trained']} train, "
                          f"{counts['rephrased']} rephrased and {counts['unseen']} unseen held out")
            for what in s.skipped():
                console.print(f"skipped {what}", style="yellow")
    _record_input(run, stamp, "qa")
    if not run.augmentation.exists():
        with stage(f"augment ({cfg.augment.backend})", "augment"):
            _, s = augment(run.root, **cfg.augment.model_dump())
            console.print(f"{s['kept']} paraphrases for {s['questions']} questions (dropped {s['dropped']})")
    _record_input(run, stamp, "augmentation")
    qa = load_qa(run.root)
    sets = question_sets(run, cfg, qa)
    wants_reader = any(x in cfg.systems for x in OPEN_BOOK)
    if ("passages" in cfg.systems or wants_reader and train_cfg.reader_material) and not run.material.exists():
        with stage(f"study ({cfg.study.backend})", "study"):
            _, s = study(run.root, **cfg.study.model_dump())
            console.print(f"{s['qa']} questions and {s['statements']} statements from {s['paragraphs']} "
                          f"paragraphs (dropped {s['dropped']})")
    if run.material.exists():
        _record_input(run, stamp, "material")

    for name, (with_aug, with_passages, reader) in ADAPTERS.items():
        wanted = name in cfg.systems or (reader and wants_reader)
        if wanted and not adapter_done(run.root, name):
            with stage(f"train {name}"):
                train(run.root, train_cfg, name=name, augment=with_aug, passages=with_passages, reader=reader,
                      resume=True)

    todo = [(s, system) for s in sets for system in cfg.systems
            if not (run.evaluation(system, s) / "metrics.json").exists()
            and not (system in OPEN_BOOK and s not in cfg.eval.open_book_sets)
            and not (system == "open-book" and not all(q.get("context") for q in sets[s]))]
    if todo:
        with stage("evaluate"):
            evaluate_run(run, cfg, train_cfg, sets, todo, console)
    with stage("report"):
        paths = write_report(run.root)
    metrics = read_json(run.metrics)["sets"]
    from korquad_tune.evaluate import print_table
    for set_name, systems in metrics.items():
        print_table(systems, console, title=set_name)
    console.print("wrote " + ", ".join(str(p) for p in paths))
    return run.report_md


def evaluate_run(run: RunDir, cfg: RunConfig, train_cfg, sets: dict[str, list[dict]],
                 todo: list[tuple[str, str]], console) -> None:
    """Answer every (question set, system) in `todo` and write its results; one base-model load serves all."""
    from korquad_tune.evaluate import Systems, write_system_result
    wanted = {system for _, system in todo}
    names = [n for n in ADAPTERS if n in wanted or (n == "reader" and wanted & set(OPEN_BOOK))]
    systems = Systems([run.adapter(n) for n in names], train_cfg.model, run.root, cfg.eval.batch_size,
                      cfg.eval.max_new_tokens, cfg.eval.rag_k, decoding=cfg.eval.decoding, beams=cfg.eval.beams,
                      recall_k=cfg.eval.recall_k, recall_prior=cfg.eval.recall_prior,
                      recall_study_prior=cfg.eval.recall_study_prior,
                      recall_trained_share=cfg.eval.recall_trained_share)
    for set_name, system in todo:
        t0 = time.time()
        answers = systems.answer(system, sets[set_name], f"{system} on {set_name}")
        m, _ = write_system_result(run.evaluation(system, set_name), system, sets[set_name], answers,
                                   {"seconds": round(time.time() - t0, 1),
                                    **({"decoding": d} if (d := systems.decoding_of(system)) else {})})
        console.print(f"{system:>9} on {set_name:<11} EM {m['exact_match']:5.1f}  F1 {m['f1']:5.1f}  "
                      f"({time.time() - t0:.0f}s)")
