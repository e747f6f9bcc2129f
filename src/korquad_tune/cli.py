"""The `korquad-tune` command: a thin typer layer over the library API (one subcommand per stage)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from korquad_tune import KorquadTuneError
from korquad_tune.config import DEFAULT_PRESET, AugmentConfig, StudyConfig
from korquad_tune.evaluate import EVALUATE_SYSTEMS
from korquad_tune.generate import (BATCH_SIZE, BEAMS, DEFAULT_DECODING, MAX_NEW_TOKENS, RECALL_K, RECALL_PRIOR,
                                   RECALL_STUDY_PRIOR, RECALL_TRAINED_SHARE)
from korquad_tune.llm_api import DEFAULT_API_MODEL
from korquad_tune.prompts import DEFAULT_TEMPLATE

class _ClearErrors(typer.core.TyperGroup):
    """Every subcommand: a KorquadTuneError becomes one clear line and exit code 2 (no traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KorquadTuneError as e:
            from rich.text import Text
            err.print(Text("error: ", style="bold red") + Text(str(e)), highlight=False, soft_wrap=True)  # verbatim
            raise typer.Exit(code=2)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_ClearErrors,
                  help="Turn SQuAD-format Q/A knowledge into a small fine-tuned LLM, and measure it honestly.")
console = Console(markup=False, highlight=False)  # paths and questions print verbatim ("[draft].json")
err = Console(stderr=True)
DECODING_OPTION = typer.Option(DEFAULT_DECODING, help="closed-book adapters: recall (the most probable of the answers "
                               "of the trained questions most like the asked one) | learned (any answer they were "
                               "trained on, beam search) | free (any text, greedy: the seed's way)")
BEAMS_OPTION = typer.Option(BEAMS, min=1, help="beams for --decoding learned")
RECALL_K_OPTION = typer.Option(RECALL_K, min=1, help="--decoding recall: answers of this many nearest trained "
                               "questions (and as many among the study questions too)")
RECALL_PRIOR_OPTION = typer.Option(RECALL_PRIOR, min=0, help="--decoding recall: nats added to the nearest trained "
                                   "question's answer (0: the model alone chooses)")
RECALL_STUDY_PRIOR_OPTION = typer.Option(RECALL_STUDY_PRIOR, min=0, help="--decoding recall: nats added to the "
                                         "answer of the question nearest among trained and study questions (0: none)")
RECALL_TRAINED_SHARE_OPTION = typer.Option(RECALL_TRAINED_SHARE, min=0, max=1, help="--decoding recall: no trained "
                                           "vote where the best trained question scores under this share of the "
                                           "best study or trained question (0: always a vote)")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices are not for users
    for noisy in ("transformers", "datasets", "httpx", "peft", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


# ------------------------------------------------------------------ data
@app.command()
def prepare(out: Path = typer.Option(..., "--out", help="run directory to write qa.jsonl into"),
            data: Optional[Path] = typer.Option(None, help="SQuAD-format JSON (default: shipped KorQuAD v1 dev)"),
            articles: Optional[int] = typer.Option(None, help="keep only the first N articles"),
            limit: Optional[int] = typer.Option(None, help="keep only the first N questions"),
            holdout: bool = typer.Option(True, "--holdout/--no-holdout",
                                         help="hold out human rephrasings and unseen facts as test sets")) -> None:
    """Read a SQuAD-format v1 file into RUN_DIR/qa.jsonl (training questions), rephrased.jsonl and unseen.jsonl
    (held-out test sets) and passages.jsonl (the paragraphs)."""
    from korquad_tune.data import prepare as prepare_
    from korquad_tune.fileio import read_json
    from korquad_tune.rundir import RunDir
    path, s = prepare_(out, data=data, articles=articles, limit=limit, holdout=holdout)
    counts = read_json(RunDir(out).prepare_summary)
    console.print(f"wrote {path}: {s.questions} questions ({s.distinct_questions} distinct) "
                  f"from {s.articles} articles; {counts['trained']} to train, {counts['rephrased']} rephrased "
                  f"and {counts['unseen']} unseen held out")
    for what in s.skipped():
        console.print(f"skipped {what}", style="yellow")
    if s.duplicate_questions:
        console.print(f"{sum(s.duplicate_questions.values()) - len(s.duplicate_questions)} questions repeat "
                      f"another's text ({len(s.duplicate_questions)} texts); all kept, listed in prepare.json",
                      style="yellow")
    if s.answer_start_mismatches:
        console.print(f"warning: {s.answer_start_mismatches} answers have an answer_start that does not "
                      "point at their text (kept)", style="yellow")


@app.command("export-autotrain")
def export_autotrain(run_dir: Path, out_dir: Path,
                     augment: bool = typer.Option(True, help="include paraphrases from augmentation.json"),
                     template: str = typer.Option(DEFAULT_TEMPLATE, help="prompt template")) -> None:
    """Write OUT_DIR/train.csv with a `text` column for `autotrain llm --train --data-path OUT_DIR`."""
    from korquad_tune.export import export_autotrain as export_
    path, n = export_(run_dir, out_dir, augment=augment, template=template)
    console.print(f"wrote {path}: {n} rows")


@app.command()
def score(questions: Path = typer.Option(..., help="JSONL (id, question, answers) or SQuAD JSON"),
          predictions: Path = typer.Option(..., help="JSONL lines with id and prediction"),
          out: Optional[Path] = typer.Option(None, help="where to write the metrics JSON")) -> None:
    """Score predictions from any system with KorQuAD v1's exact match and character F1."""
    from korquad_tune.evaluate import score_files
    metrics = score_files(questions, predictions, out)
    console.print_json(json.dumps({k: metrics[k] for k in ("exact_match", "f1", "n")}))


# ------------------------------------------------------------------ augment
@app.command()
def augment(run_dir: Path,
            backend: str = typer.Option(AugmentConfig().backend, help="openai | rules | file | shipped"),
            n: int = typer.Option(AugmentConfig().n, help="paraphrases per question"),
            file: Optional[Path] = typer.Option(None, help="file backend: augmentation_dict JSON or JSONL"),
            base_url: Optional[str] = typer.Option(None, help="openai backend: OpenAI-compatible endpoint"),
            model: str = typer.Option(DEFAULT_API_MODEL, help="openai backend: model name"),
            concurrency: int = typer.Option(4, help="openai backend: requests in flight"),
            timeout: float = typer.Option(60.0, help="openai backend: seconds per request"),
            seed: int = typer.Option(0, help="rules backend: random seed")) -> None:
    """Write RUN_DIR/augmentation.json: paraphrases of every question (original augmentation_dict shape)."""
    from korquad_tune.augment import augment as augment_
    path, summary = augment_(run_dir, backend=backend, n=n, file=file, base_url=base_url, model=model,
                             concurrency=concurrency, timeout=timeout, seed=seed)
    console.print(f"wrote {path}: {summary['kept']} paraphrases for {summary['questions']} questions "
                  f"(dropped: {summary['dropped']})")


@app.command()
def study(run_dir: Path,
          backend: str = typer.Option(StudyConfig().backend, help="rules | openai | file"),
          file: Optional[Path] = typer.Option(None, help="file backend: JSONL of context, question, answer"),
          n: int = typer.Option(StudyConfig().n, help="openai backend: question/answer pairs per paragraph"),
          base_url: Optional[str] = typer.Option(None, help="openai backend: OpenAI-compatible endpoint"),
          model: str = typer.Option(DEFAULT_API_MODEL, help="openai backend: model name"),
          dropout: int = typer.Option(StudyConfig().dropout, help="rules backend: copies of each question with a "
                                      "third of its words left out"),
          concurrency: int = typer.Option(4, help="openai backend: requests in flight"),
          timeout: float = typer.Option(60.0, help="openai backend: seconds per request")) -> None:
    """Write RUN_DIR/material.json: the training paragraphs and questions made from them (for `train --passages`)."""
    from korquad_tune.passages import study as study_
    path, s = study_(run_dir, backend=backend, n=n, file=file, base_url=base_url, model=model, dropout=dropout,
                     concurrency=concurrency, timeout=timeout)
    console.print(f"wrote {path}: {s['qa']} questions and {s['statements']} statements from {s['paragraphs']} "
                  f"paragraphs (dropped: {s['dropped']})", highlight=False)


# ------------------------------------------------------------------ train
def _knobs_help() -> str:
    """Every TrainConfig field with its default and description: the one place knobs are documented."""
    from korquad_tune.config import TrainConfig
    lines = [f"{name} (default {f.default if f.default_factory is None else f.default_factory()!r}): "
             f"{f.description or ''}" for name, f in TrainConfig.model_fields.items()]
    return ("Fine-tune an adapter on RUN_DIR/qa.jsonl (+ augmentation.json, + material.json with --passages) into "
            "RUN_DIR/adapters/<name>/.\n\nEvery setting, for --set key=value (the flags below are shortcuts):"
            "\n\n" + "\n\n".join(lines))


@app.command("train", help=_knobs_help())
def train_cmd(run_dir: Path,
              model: Optional[str] = typer.Option(None, help="base model (default: the preset's)"),
              preset: str = typer.Option(DEFAULT_PRESET, help="preset name or YAML file"),
              name: Optional[str] = typer.Option(None, help="adapter name (default: aug / no-aug)"),
              no_augment: bool = typer.Option(False, "--no-augment", help="train on the original questions only"),
              passages: bool = typer.Option(False, "--passages", help="also learn material.json (from `study`)"),
              reader: bool = typer.Option(False, "--reader", help="train a reader: paragraph + question -> answer"),
              resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint"),
              epochs: Optional[float] = None, learning_rate: Optional[float] = typer.Option(None, "--lr"),
              batch_size: Optional[int] = None, lora_r: Optional[int] = None,
              loss: Optional[str] = typer.Option(None, help="answer | full"),
              save_steps: Optional[int] = None, max_length: Optional[int] = None,
              set_: list[str] = typer.Option([], "--set", help="any other config field: key=value (YAML value)"),
              max_steps: Optional[int] = typer.Option(None, help="stop after N steps (smoke tests)")) -> None:
    import yaml

    from korquad_tune.config import load_train_config
    from korquad_tune.train import train
    overrides = dict(model=model, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                     lora_r=lora_r, loss=loss, save_steps=save_steps, max_length=max_length)
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise KorquadTuneError(f"--set {item!r}: expected key=value")
        overrides[key.strip()] = yaml.safe_load(value)
    cfg = load_train_config(preset, overrides)
    out = train(run_dir, cfg, name=name, augment=not (no_augment or reader), resume=resume, max_steps=max_steps,
                passages=passages, reader=reader)
    if os.environ.get("RANK", "0") == "0":  # one line, not one per data-parallel process
        console.print(f"adapter written to {out}")
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()  # left open, gloo's threads can abort the interpreter at exit


@app.command("export")
def export_cmd(run_dir: Path, adapter: str = typer.Option(..., help="adapter name under RUN_DIR/adapters"),
               merged: Path = typer.Option(..., help="folder for the standalone merged model")) -> None:
    """Merge an adapter into its base model: a folder that `ask` and plain transformers load."""
    from korquad_tune.export import export_merged
    console.print(f"merged model written to {export_merged(run_dir, adapter, merged)}")


# ------------------------------------------------------------------ use
@app.command()
def ask(question: Optional[str] = typer.Argument(None, help="the question (omit for an interactive prompt)"),
        model: Optional[str] = typer.Option(None, help="base model (default: the adapter's, else gemma3-270m)"),
        adapter: Optional[Path] = typer.Option(None, help="adapter folder from `train`"),
        file: Optional[Path] = typer.Option(None, help="answer every line of this file"),
        template: Optional[str] = typer.Option(None, help="prompt template (default: the adapter's)"),
        max_new_tokens: int = typer.Option(MAX_NEW_TOKENS, min=1, help="answer length budget in tokens"),
        batch_size: int = typer.Option(BATCH_SIZE, min=1, help="questions answered in one batch"),
        decoding: str = DECODING_OPTION, beams: int = BEAMS_OPTION, recall_k: int = RECALL_K_OPTION,
        recall_prior: float = RECALL_PRIOR_OPTION, recall_study_prior: float = RECALL_STUDY_PRIOR_OPTION,
        recall_trained_share: float = RECALL_TRAINED_SHARE_OPTION) -> None:
    """Answer one question, a file of questions (one a line), or questions typed at a prompt."""
    from korquad_tune.evaluate import Systems
    from korquad_tune.fileio import read_text
    if question is not None and not question.strip():
        raise KorquadTuneError("the question is empty; type a question, or leave it out for an interactive prompt")
    questions = None
    if file is not None:
        questions = [line.strip() for line in read_text(file).splitlines() if line.strip()]
        if not questions:
            raise KorquadTuneError(f"{file}: no questions in the file (one question a line)")
    systems = Systems([adapter] if adapter else [], model, batch_size=batch_size, max_new_tokens=max_new_tokens,
                      template=template, decoding=decoding, beams=beams, recall_k=recall_k,
                      recall_prior=recall_prior, recall_study_prior=recall_study_prior,
                      recall_trained_share=recall_trained_share)
    use = adapter.name if adapter else "base"  # `--adapter X` means: answer with X

    def answers(texts: list[str], label: str | None = None) -> list[str]:
        return systems.answer(use, [{"question": t} for t in texts], label)

    if questions is not None:
        for q, a in zip(questions, answers(questions, "ask")):
            typer.echo(f"{q}\t{a}")  # tab-separated, for scripts (rich would expand the tab)
    elif question is not None:
        typer.echo(answers([question])[0])
    else:
        console.print("Type a question (empty line or Ctrl-D to quit).")
        while True:
            try:
                q = input("질문> ").strip()
            except EOFError:
                break
            if not q:
                break
            typer.echo(answers([q])[0])


@app.command()
def serve(target: Path = typer.Argument(..., help="a run folder (every adapter, retrieval, rag) or one adapter folder"),
          host: str = typer.Option("127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)"),
          port: int = typer.Option(8000, min=1, max=65535),
          api_key: Optional[str] = typer.Option(None, help="require 'Authorization: Bearer KEY' on /v1/"),
          model: Optional[str] = typer.Option(None, help="base model (default: the adapters')"),
          batch_size: int = typer.Option(BATCH_SIZE, min=1, help="most questions answered in one batch"),
          screenshot: Optional[Path] = typer.Option(None, help="instead of serving: ask --question on the page in "
                                                    "headless Chromium, save a PNG here and exit"),
          question: str = typer.Option("임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배된 날은?",
                                       help="the question --screenshot asks"),
          decoding: str = DECODING_OPTION) -> None:
    """An OpenAI-compatible server (/v1/models, /v1/chat/completions, /v1/completions, streaming) and a web page
    at / to ask every system side by side and browse the run's report."""
    from korquad_tune import serve as serving
    if screenshot is not None:
        console.print(f"wrote {serving.screenshot(target, screenshot, question, model)}")
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold yellow]warning:[/] binding {host}: anyone who can reach this machine can use the server"
                  + ("" if api_key else " (no --api-key set)"))
    serving.serve(target, host, port, api_key, model, batch_size, console, decoding=decoding)


@app.command()
def evaluate(questions: Path = typer.Option(..., help="JSONL (id, question, answers) or SQuAD JSON"),
             out: Path = typer.Option(..., help="output folder"),
             model: Optional[str] = typer.Option(None, help="base model (default: the adapters', else gemma3-270m)"),
             adapter: list[Path] = typer.Option([], help="adapter folder(s); one base load serves all"),
             system: list[str] = typer.Option([], help=" | ".join(EVALUATE_SYSTEMS) + " (finetuned = each --adapter; "
                                              "open-book and rag need a reader --adapter)"),
             train_run: Optional[Path] = typer.Option(None, help="retrieval / rag: run dir whose questions / "
                                                      "paragraphs they look up"),
             predictions: Optional[Path] = typer.Option(None, help="predictions system: JSONL with id, prediction"),
             base_url: Optional[str] = typer.Option(None, help="openai system: endpoint"),
             api_model: str = typer.Option(DEFAULT_API_MODEL, help="openai system: model name"),
             max_new_tokens: int = typer.Option(MAX_NEW_TOKENS, min=1, help="answer length budget in tokens"),
             batch_size: int = typer.Option(BATCH_SIZE, min=1, help="questions answered in one batch"),
             rag_k: int = typer.Option(1, min=1, help="rag: paragraphs put into the prompt"),
             decoding: str = DECODING_OPTION, beams: int = BEAMS_OPTION,
             recall_k: int = RECALL_K_OPTION, recall_prior: float = RECALL_PRIOR_OPTION,
             recall_study_prior: float = RECALL_STUDY_PRIOR_OPTION,
             recall_trained_share: float = RECALL_TRAINED_SHARE_OPTION) -> None:
    """Answer a question file with one or more systems; write predictions, metrics (with 95% CIs), a table."""
    from korquad_tune.evaluate import evaluate_systems, print_table
    results = evaluate_systems(questions, out, model=model, adapters=adapter, systems=system,
                               train_run=train_run, predictions=predictions, base_url=base_url,
                               api_model=api_model, max_new_tokens=max_new_tokens, batch_size=batch_size,
                               rag_k=rag_k, decoding=decoding, beams=beams, recall_k=recall_k,
                               recall_prior=recall_prior, recall_study_prior=recall_study_prior,
                               recall_trained_share=recall_trained_share)
    print_table(results, console, title=str(questions))


@app.command()
def run(config: Optional[Path] = typer.Option(None, help="YAML RunConfig (default: the embedded default run)"),
        out: Path = typer.Option(Path("runs/default"), help="run directory"),
        fresh: bool = typer.Option(False, "--fresh", help="redo every stage instead of resuming")) -> None:
    """The whole experiment: prepare -> augment -> study -> train (no-aug, aug, passages, reader) -> evaluate
    (every system on every question set) -> report."""
    from korquad_tune.config import load_run_config
    from korquad_tune.pipeline import run_pipeline
    run_pipeline(load_run_config(config), out, fresh=fresh, console=console)


@app.command()
def report(run_dir: Path) -> None:
    """Rebuild report.md / report.png / metrics.json from a run directory's evaluations."""
    from korquad_tune.report import write_report
    paths = write_report(run_dir)
    console.print("wrote " + ", ".join(str(p) for p in paths))


@app.command()
def models() -> None:
    """List the builtin models and training presets."""
    from korquad_tune.config import preset_names
    from korquad_tune.models import BUILTIN_MODELS, cache_dir
    for name, (desc, _) in BUILTIN_MODELS.items():
        console.print(f"{name}: {desc}", style="bold")
    console.print(f"cache: {cache_dir()}")
    console.print("presets: " + ", ".join(preset_names()))


def main() -> None:  # pragma: no cover
    app(prog_name="korquad-tune")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
