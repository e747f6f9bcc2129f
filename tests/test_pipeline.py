"""`korquad-tune run` end to end on the tiny model: report, metrics, picture; a re-run resumes."""

import json

import yaml
from typer.testing import CliRunner

from korquad_tune.cli import app

runner = CliRunner()


def test_run_end_to_end_and_resume(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "eval": {"max_new_tokens": 16}}))
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["sets"]) == ["trained", "paraphrased", "rephrased", "unseen"]
    closed = {"base", "retrieval", "no-aug", "aug", "passages"}
    for s in ("rephrased", "unseen"):
        assert set(metrics["sets"][s]) == closed | {"open-book", "rag"}
    for s in ("trained", "paraphrased"):  # open-book and rag answer the held-out human sets only (open_book_sets)
        assert set(metrics["sets"][s]) == closed
    n = {s: metrics["sets"][s]["aug"]["n"] for s in metrics["sets"]}
    assert n == {"trained": 8, "paraphrased": 16, "rephrased": 1, "unseen": 2}  # 11 questions of article 1
    assert metrics["sets"]["trained"]["aug"]["exact_match"] >= 80
    assert metrics["sets"]["unseen"]["retrieval"]["exact_match"] == 0  # no training question asks these
    report = (out / "report.md").read_text()
    assert "LLM paraphrases" in report and "| passages |" in report and "McNemar" in report
    assert "as a share of rag's" in report
    assert (out / "material.json").exists() and (out / "adapters" / "reader").exists()
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"

    adapter = out / "adapters" / "aug" / "adapter_model.safetensors"
    stamp = adapter.stat().st_mtime_ns
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert adapter.stat().st_mtime_ns == stamp  # finished stages were not redone
    assert "train aug" not in res.output
    # the folder's own config.yaml (its run config, then the resolved training settings as a record) reruns it
    res = runner.invoke(app, ["run", "--config", str(out / "config.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert adapter.stat().st_mtime_ns == stamp and "train aug" not in res.output

    # what the benches re-score a finished run from: its own settings and the sets it evaluated
    from korquad_tune.pipeline import finished_run_sets
    cfg, sets = finished_run_sets(out)
    assert cfg.eval.max_new_tokens == 16 and {k: len(v) for k, v in sets.items()} == n
    assert list(finished_run_sets(out, ["unseen", "rephrased"])[1]) == ["rephrased", "unseen"]

    # only the evaluation settings changed (e.g. after an upgrade changed their defaults): answered again, trained kept
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "eval": {"max_new_tokens": 12}}))
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "evaluating again" in res.output and "train aug" not in res.output
    assert adapter.stat().st_mtime_ns == stamp and (out / "report.md").exists()
    assert finished_run_sets(out)[0].eval.max_new_tokens == 12

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"articles": 2, "preset": "tiny-test"}))
    res = runner.invoke(app, ["run", "--config", str(other), "--out", str(out)])
    assert res.exit_code == 2 and "other settings" in res.output


def test_a_reader_that_reads_study_questions_gets_them_made_without_the_passages_adapter(tmp_path):
    from korquad_tune.models import ADAPTER_META
    config = tmp_path / "rag.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "systems": ["retrieval", "rag"],
                                      "train": {"reader_material": 2, "reader_epochs": 1},
                                      "eval": {"max_new_tokens": 4}}))
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "study" in res.output and not (out / "adapters" / "passages").exists()
    paragraphs = len({json.loads(line)["context"] for line in (out / "qa.jsonl").read_text().splitlines()})
    meta = json.loads((out / "adapters" / "reader" / ADAPTER_META).read_text())
    assert meta["examples"] == 8 + 2 * paragraphs  # the training questions and two study questions a paragraph
    assert set(json.loads((out / "metrics.json").read_text())["sets"]["unseen"]) == {"retrieval", "rag"}


def test_shipped_default_config_is_the_embedded_default():
    from pathlib import Path

    from korquad_tune.config import RunConfig, load_run_config
    assert load_run_config(Path(__file__).parents[1] / "configs" / "default.yaml") == RunConfig()


def test_shipped_offline_config_differs_from_the_default_only_in_paraphraser_and_systems():
    from pathlib import Path

    from korquad_tune.config import RunConfig, load_run_config
    offline = load_run_config(Path(__file__).parents[1] / "configs" / "offline.yaml")
    default = RunConfig()
    assert offline.augment.backend == "rules" and offline.study.backend == "rules"
    assert offline.systems == ["retrieval", "no-aug", "aug", "passages"]
    assert offline.model_copy(update={"augment": default.augment, "systems": default.systems}) == default


def test_every_setting_is_documented_once_and_every_default_named_once():
    import re
    from pathlib import Path

    from korquad_tune.config import AugmentConfig, EvalConfig, RunConfig, StudyConfig, TrainConfig
    for model in (TrainConfig, RunConfig, AugmentConfig, StudyConfig, EvalConfig):
        undocumented = [name for name, f in model.model_fields.items() if not f.description]
        assert not undocumented, (model.__name__, undocumented)
    help_text = " ".join(runner.invoke(app, ["train", "--help"]).output.split())
    assert all(name in help_text for name in TrainConfig.model_fields)  # every knob reaches --help
    src = "\n".join(p.read_text() for p in (Path(__file__).parents[1] / "src" / "korquad_tune").glob("*.py"))
    for literal in ('"gpt-4o-mini"', '"alpaca"', '"gemma3-270m"', '"cpu-default"', "24"):
        uses = re.findall(r"(?:=|Field\(|Option\(|default=)\s*" + re.escape(literal) + r"\b", src)
        assert len(uses) <= 1, (literal, uses)  # the defaults that matter, given as a default once
