"""What users typed, replayed: each gets one line naming the input and what to do, or the right result; never a
traceback, never a changed file."""

import gzip
import json
import os
import shutil
import stat

import pytest
import yaml
from typer.testing import CliRunner

from korquad_tune.cli import app
from korquad_tune.data import prepare, shipped_dev_path
from korquad_tune.fileio import read_jsonl, write_jsonl

runner = CliRunner()


def fails(args, *expected):
    res = runner.invoke(app, [str(a) for a in args])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    for e in expected:
        assert e in text, text
    return text


@pytest.fixture
def small_run(tmp_path):
    out = tmp_path / "run"
    prepare(out, articles=1)
    return out


def first_article_json() -> bytes:
    """The shipped dev set's first article as a user's own SQuAD file (UTF-8, Hangul as written)."""
    doc = json.loads(gzip.decompress(shipped_dev_path().read_bytes()))
    return json.dumps({"version": "1", "data": doc["data"][:1]}, ensure_ascii=False).encode("utf-8")


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ silent mixing of experiments
def test_user_edits_the_preset_a_run_config_names_then_reruns(tmp_path):
    preset = tmp_path / "my-preset.yaml"
    shutil.copy(__import__("korquad_tune.config", fromlist=["x"])._presets_dir() / "tiny-test.yaml", preset)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": str(preset), "systems": ["retrieval"]}))
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", "--config", str(config), "--out", str(out)]).exit_code == 0
    preset.write_text(preset.read_text().replace("lora_r: 8", "lora_r: 4"))
    fails(["run", "--config", config, "--out", out], "other settings", "train.lora_r")


def test_user_prepares_other_articles_into_a_finished_run_folder(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "systems": ["retrieval"]}))
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", "--config", str(config), "--out", str(out)]).exit_code == 0
    before = snapshot(out)
    fails(["prepare", "--out", out, "--articles", "2"], "holds results made from other questions")
    assert snapshot(out) == before


def test_user_edits_qa_jsonl_of_a_finished_run_then_reruns(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "systems": ["retrieval"]}))
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", "--config", str(config), "--out", str(out)]).exit_code == 0
    write_jsonl(out / "qa.jsonl", read_jsonl(out / "qa.jsonl")[:3])
    fails(["run", "--config", config, "--out", out], "qa.jsonl changed since this run used it")


def test_user_resumes_training_with_another_learning_rate(small_run):
    args = ["train", small_run, "--preset", "tiny-test", "--no-augment", "--save-steps", "1", "--max-steps", "2"]
    assert runner.invoke(app, [str(a) for a in args]).exit_code == 0
    fails(args + ["--resume", "--lr", "0.1"], "other settings", "learning_rate: 0.003 -> 0.1")
    fails(args + ["--resume", "--lora-r", "4"], "lora_r: 8 -> 4")  # not a size-mismatch traceback


# ------------------------------------------------------------------ numbers out of range
@pytest.mark.parametrize("flag, value", [("--articles", 0), ("--articles", -1), ("--limit", -1), ("--limit", 0)])
def test_user_asks_for_zero_or_negative_articles_or_questions(tmp_path, flag, value):
    fails(["prepare", "--out", tmp_path / "r", flag, value], f"{flag} {value}", "1 or more")
    assert not (tmp_path / "r").exists()


def test_user_limits_questions_and_sees_the_articles_they_come_from(tmp_path):
    res = runner.invoke(app, ["prepare", "--out", str(tmp_path / "r"), "--limit", "5"])
    assert res.exit_code == 0 and "from 1 articles" in res.output


@pytest.mark.parametrize("n", ["-3", "0"])
def test_user_asks_for_no_paraphrases(small_run, n):
    assert runner.invoke(app, ["augment", str(small_run), "--backend", "shipped"]).exit_code == 0
    before = (small_run / "augmentation.json").read_bytes()
    fails(["augment", small_run, "--backend", "rules", "--n", n], f"--n {n}", "1 or more")
    assert (small_run / "augmentation.json").read_bytes() == before


@pytest.mark.parametrize("args, expected", [
    (["--epochs", "0"], "epochs = 0"), (["--lr", "-1"], "learning_rate = -1"),
    (["--batch-size", "0"], "batch_size = 0"), (["--max-length", "0"], "max_length = 0"),
    (["--set", "bogus=3"], "unknown setting 'bogus'"), (["--set", "lora_r=abc"], "lora_r = 'abc'"),
    (["--loss", "bogus"], "loss = 'bogus'"), (["--set", "lora_r"], "expected key=value"),
])
def test_user_passes_training_settings_that_cannot_work(small_run, args, expected):
    text = fails(["train", small_run, "--preset", "tiny-test", "--no-augment", *args], expected)
    assert "tiny-test.yaml" not in text  # the preset is fine: the flag is named, not the preset file
    assert not (small_run / "checkpoints").exists() and not (small_run / "adapters").exists()


def test_user_mistypes_a_key_under_train_in_a_run_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "train": {"lerning_rate": 0.1}}))
    fails(["run", "--config", config, "--out", tmp_path / "run"], "run.yaml, under train:",
          "unknown setting 'lerning_rate'")
    assert not (tmp_path / "run").exists()  # nothing stamped: the corrected config is then accepted
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "train": {"epochs": "ten"}}))
    fails(["run", "--config", config, "--out", tmp_path / "run"], "run.yaml, under train: epochs = 'ten'")
    assert not (tmp_path / "run").exists()
    config.write_text(yaml.safe_dump({"articles": 1, "preset": "tiny-test", "systems": ["retrieval"]}))
    assert runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "run")]).exit_code == 0


def test_user_fixes_a_wrong_data_path_and_reruns_into_the_same_folder(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": str(tmp_path / "nothere.json"), "systems": ["retrieval"]}))
    fails(["run", "--config", config, "--out", tmp_path / "run"], "nothere.json", "file not found")
    data = tmp_path / "dev.json"
    data.write_bytes(first_article_json())
    config.write_text(yaml.safe_dump({"data": str(data), "systems": ["retrieval"]}))
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output  # the folder the failed run stamped holds nothing: no "other settings"
    assert (tmp_path / "run" / "report.md").exists()


def test_user_sets_a_trained_vote_share_outside_0_to_1(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "eval": {"recall_trained_share": 50}}))
    fails(["run", "--config", config, "--out", tmp_path / "run"], "run.yaml", "eval.recall_trained_share = 50",
          "less than or equal to 1")
    assert not (tmp_path / "run").exists()


def test_user_leaves_a_bracket_open_in_a_run_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("articles: 1\nsystems: [retrieval, aug\n", encoding="utf-8")
    text = fails(["run", "--config", config, "--out", tmp_path / "run"], "run.yaml: invalid YAML at line 3")
    assert "^" not in text  # one line: no echo of the file under a caret
    assert not (tmp_path / "run").exists()


def test_user_brings_a_run_config_from_before_the_augment_and_eval_sections(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text(yaml.safe_dump({"articles": 1, "augment_backend": "rules", "max_new_tokens": 16}))
    fails(["run", "--config", config, "--out", tmp_path / "run"], "augment_backend -> augment.backend",
          "max_new_tokens -> eval.max_new_tokens")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ files that are not what they should be
def test_user_gives_an_existing_file_as_the_output_folder(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    fails(["prepare", "--out", f], "is a file, not a folder")
    fails(["run", "--out", f], "is a file, not a folder")
    q = tmp_path / "q.jsonl"
    write_jsonl(q, [{"id": "1", "question": "헤이그의 부인은?", "answers": ["폭스"]}])
    fails(["evaluate", "--questions", q, "--out", f, "--system", "retrieval"], "is a file, not a folder")
    assert f.read_text() == "keep me"


def test_user_gives_a_csv_or_json_lines_file_as_data(tmp_path):
    csv, lines = tmp_path / "qa.csv", tmp_path / "qa.jsonl"
    csv.write_text("question,answer\n한국의 수도는?,서울\n", encoding="utf-8")
    lines.write_text('{"question": "a?"}\n{"question": "b?"}\n', encoding="utf-8")
    fails(["prepare", "--data", csv, "--out", tmp_path / "r"], "qa.csv: invalid JSON at line 1",
          "expected a SQuAD-format JSON file")
    fails(["prepare", "--data", lines, "--out", tmp_path / "r"], "line 2", "is this JSON Lines?")
    assert not (tmp_path / "r").exists()


def test_user_names_an_adapter_folder_that_does_not_exist(tmp_path):
    fails(["ask", "질문?", "--adapter", tmp_path / "nothere"], "nothere: no such folder", "RUN/adapters/passages")
    fails(["report", tmp_path / "nothere"], "nothere: no such run folder")


def test_user_gives_a_folder_as_data_or_file(tmp_path, small_run):
    fails(["prepare", "--data", tmp_path, "--out", tmp_path / "r"], "is a folder")
    fails(["augment", small_run, "--backend", "file", "--file", tmp_path], "is a folder")
    fails(["ask", "--file", tmp_path], "is a folder")


def test_user_passes_the_run_folder_as_the_adapter(tiny_run):
    fails(["ask", "질문?", "--adapter", tiny_run], "a run folder, not an adapter",
          f"--adapter {tiny_run / 'adapters' / 'no-aug'}")


def test_user_asks_an_empty_question():
    fails(["ask", "  "], "the question is empty")


@pytest.mark.parametrize("args", [["ask", "질문?", "--max-new-tokens", "0"], ["ask", "질문?", "--batch-size", "-1"],
                                  ["evaluate", "q.jsonl", "--out", ".", "--rag-k", "0"]])
def test_user_asks_for_no_answer_tokens_or_empty_batches(args):
    fails(args, "Invalid value", "greater than or equal")


def test_question_file_with_a_repeated_id(tmp_path):
    q = tmp_path / "q.jsonl"
    write_jsonl(q, [{"id": "1", "question": "a?", "answers": ["x"]}, {"id": "1", "question": "b?", "answers": ["y"]}])
    p = tmp_path / "p.jsonl"
    write_jsonl(p, [{"id": "1", "prediction": "x"}])
    fails(["score", "--questions", q, "--predictions", p], "line 2", "id '1' repeats line 1")


def test_predictions_with_a_repeated_or_unknown_id(tmp_path):
    q = tmp_path / "q.jsonl"
    write_jsonl(q, [{"id": "1", "question": "a?", "answers": ["x"]}])
    p = tmp_path / "p.jsonl"
    write_jsonl(p, [{"id": "1", "prediction": "x"}, {"id": "1", "prediction": "y"}])
    fails(["score", "--questions", q, "--predictions", p], "a second prediction for id '1'")
    write_jsonl(p, [{"id": "2", "prediction": "x"}])
    fails(["evaluate", "--questions", q, "--out", tmp_path / "ev", "--system", "predictions", "--predictions", p],
          "ids are not in")


@pytest.mark.parametrize("content", [b"[]", '{"augmentation_dict": {"질문": ["패러'.encode("utf-8")[:-2],
                                     json.dumps({"질문": "a string, not a list"}).encode()])
def test_broken_augmentation_json_before_training(small_run, content):
    (small_run / "augmentation.json").write_bytes(content)
    fails(["train", small_run, "--preset", "tiny-test"], "augmentation.json")


def test_uppercase_json_suffix_is_json(tmp_path):
    src = tmp_path / "SMALL.JSON"
    src.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "헤이그는 1924년 태어났다.", "qas": [
        {"id": "q1", "question": "헤이그가 태어난 해는?", "answers": [{"text": "1924년", "answer_start": 5}]}]}]}]},
        ensure_ascii=False), encoding="utf-8")
    p = tmp_path / "p.jsonl"
    write_jsonl(p, [{"id": "q1", "prediction": "1924년"}])
    res = runner.invoke(app, ["score", "--questions", str(src), "--predictions", str(p)])
    assert res.exit_code == 0 and '"exact_match": 100.0' in res.output


# ------------------------------------------------------------------ Korean files in CP949 / EUC-KR
def test_cp949_files_are_read_everywhere(tmp_path, small_run):
    q = tmp_path / "q.jsonl"
    q.write_bytes(json.dumps({"id": "1", "question": "헤이그의 부인은?", "answers": ["퍼트리샤"]},
                             ensure_ascii=False).encode("cp949") + b"\n")
    p = tmp_path / "p.jsonl"
    p.write_bytes(json.dumps({"id": "1", "prediction": "퍼트리샤"}, ensure_ascii=False).encode("cp949"))
    res = runner.invoke(app, ["score", "--questions", str(q), "--predictions", str(p)])
    assert res.exit_code == 0 and '"exact_match": 100.0' in res.output
    aug = tmp_path / "aug.json"
    question = read_jsonl(small_run / "qa.jsonl")[0]["question"]
    aug.write_bytes(json.dumps({question: [question.replace("?", "는 무엇인가?")]}, ensure_ascii=False).encode("cp949"))
    res = runner.invoke(app, ["augment", str(small_run), "--backend", "file", "--file", str(aug)])
    assert res.exit_code == 0 and "wrote" in res.output
    config = tmp_path / "run.yaml"
    config.write_bytes("# 한국어 주석\narticles: 1\n".encode("cp949"))
    from korquad_tune.config import load_run_config
    assert load_run_config(config).articles == 1


def test_text_in_no_known_encoding_says_how_to_convert(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_bytes(b'{"id": "1", "question": "\xff\xfe\xff", "answers": ["x"]}')
    fails(["score", "--questions", q, "--predictions", q], "neither UTF-8 nor CP949", "iconv")


def test_a_squad_file_cut_off_mid_character_says_truncated_not_encoding(tmp_path):
    raw = first_article_json()
    cut = next(i for i in range(len(raw) // 2, len(raw)) if raw[i] >= 0xC0)  # a multibyte character's lead byte
    data = tmp_path / "dev.json"
    data.write_bytes(raw[:cut + 1])
    fails(["prepare", "--data", data, "--out", tmp_path / "r"], "dev.json", "truncated")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ messages and files
def test_messages_print_brackets_verbatim(tmp_path):
    missing = tmp_path / "[draft] data.json"
    fails(["prepare", "--data", missing, "--out", tmp_path / "r"], "[draft] data.json", "file not found")


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        prepare(tmp_path / "r", articles=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r" / "qa.jsonl").stat().st_mode) == 0o644


def test_openai_endpoint_answering_html(small_run, fake_openai, monkeypatch):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Html(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = b"<html><body>login required</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    try:
        fails(["augment", small_run, "--backend", "openai", "--base-url",
               f"http://127.0.0.1:{server.server_address[1]}/v1"], "did not answer like an OpenAI-compatible")
    finally:
        server.shutdown()
    assert not (small_run / "augmentation.json").exists()


def test_adapter_trained_on_a_relative_model_path_loads_from_another_folder(small_run, tmp_path, monkeypatch):
    from korquad_tune.models import resolve_model
    model_dir = tmp_path / "models" / "tiny"
    shutil.copytree(resolve_model("tiny-random").path, model_dir)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", str(small_run), "--preset", "tiny-test", "--no-augment", "--model",
                              "models/tiny", "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    meta = json.loads((small_run / "adapters" / "no-aug" / "korquad_tune.json").read_text())
    assert meta["model"] == str(model_dir.resolve())
    monkeypatch.chdir(small_run)  # somewhere else entirely
    res = runner.invoke(app, ["ask", "헤이그의 부인은?", "--adapter", str(small_run / "adapters" / "no-aug")])
    assert res.exit_code == 0, res.output
