"""`korquad-tune run` end to end on the tiny model: report, metrics, picture; a re-run resumes."""

import json

import yaml
from typer.testing import CliRunner

from korquad_tune.cli import app

runner = CliRunner()


def test_run_end_to_end_and_resume(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "max_new_tokens": 16}))
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["sets"]) == {"trained", "heldout"}
    for s in ("trained", "heldout"):
        assert set(metrics["sets"][s]) == {"base", "retrieval", "no-aug", "aug"}
    assert metrics["sets"]["heldout"]["aug"]["n"] == 22
    assert metrics["sets"]["trained"]["aug"]["exact_match"] >= 80
    report = (out / "report.md").read_text()
    assert "held-out paraphrases" in report and "| aug |" in report and "McNemar" in report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"

    adapter = out / "adapters" / "aug" / "adapter_model.safetensors"
    stamp = adapter.stat().st_mtime_ns
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert adapter.stat().st_mtime_ns == stamp  # finished stages were not redone
    assert "train aug" not in res.output

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"articles": 2, "preset": "tiny-test"}))
    res = runner.invoke(app, ["run", "--config", str(other), "--out", str(out)])
    assert res.exit_code == 2 and "other settings" in res.output


def test_shipped_default_config_is_the_embedded_default():
    from pathlib import Path

    from korquad_tune.config import RunConfig, load_run_config
    assert load_run_config(Path(__file__).parents[1] / "configs" / "default.yaml") == RunConfig()
