"""The data stage on the real dev set, and its errors on bad input."""

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from korquad_tune import KorquadTuneError
from korquad_tune.cli import app
from korquad_tune.data import parse_squad, prepare, shipped_dev_path
from korquad_tune.fileio import read_jsonl

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "KorQuAD_v1.0_dev.json"
runner = CliRunner()


def test_shipped_copy_is_verbatim():
    if not SHARED_DEV.exists():
        pytest.skip("no ../shared checkout beside the project")
    assert gzip.decompress(shipped_dev_path().read_bytes()) == SHARED_DEV.read_bytes()


def test_prepare_keeps_every_question_and_reports_duplicates(tmp_path):
    res = runner.invoke(app, ["prepare", "--out", str(tmp_path), "--no-holdout"])
    assert res.exit_code == 0, res.output
    rows = read_jsonl(tmp_path / "qa.jsonl")
    assert len(rows) == 5774
    assert len({r["question"] for r in rows}) == 5764
    assert rows[0]["id"] == "6548850-0-0" and rows[0]["answers"] == ["1989년 2월 15일"]
    assert set(rows[0]) == {"id", "title", "question", "answers", "context"}
    summary = json.loads((tmp_path / "prepare.json").read_text())
    assert summary["questions"] == 5774 and summary["distinct_questions"] == 5764
    assert sum(summary["duplicate_questions"].values()) - len(summary["duplicate_questions"]) == 10


def test_prepare_from_shared_file_matches_shipped(tmp_path):
    if not SHARED_DEV.exists():
        pytest.skip("no ../shared checkout beside the project")
    prepare(tmp_path, data=SHARED_DEV, holdout=False)
    assert read_jsonl(tmp_path / "qa.jsonl") == parse_squad(shipped_dev_path())[0]


def test_articles_and_limit(tmp_path):
    _, s = prepare(tmp_path / "a", articles=3)
    assert s.questions == 85
    _, s = prepare(tmp_path / "b", limit=20)
    assert s.questions == 20


def _squad(qas, context="임종석은 1989년 2월 15일 지명수배되었다."):
    return {"version": "test", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


@pytest.mark.parametrize("content, expected", [
    ("", "file is empty"),
    ('{"version": "x", "data": [{"title": "t", "paragraphs": [', "invalid JSON"),
    (json.dumps({"rows": []}), "expected a top-level object with a 'data' list"),
    (json.dumps(_squad([{"id": "q1", "question": "언제?", "answers": []}])), "qas[0] (id 'q1')"),
    (json.dumps(_squad([{"id": "q1", "question": "언제?"}])), "empty or missing 'answers'"),
    (json.dumps(_squad([{"id": "q2", "question": "  ", "answers": [{"text": "1989년", "answer_start": 4}]}])),
     "empty or missing 'question'"),
])
def test_bad_input_is_one_clear_line_and_no_output(tmp_path, content, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "run"
    res = runner.invoke(app, ["prepare", "--data", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    message = res.output.strip()
    assert str(bad) in message.replace("\n", "") and expected in message.replace("\n", "")
    assert "Traceback" not in res.output
    assert not (out / "qa.jsonl").exists()


def test_missing_file(tmp_path):
    res = runner.invoke(app, ["prepare", "--data", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "file not found" in res.output


def test_answer_start_mismatch_is_a_counted_warning(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps(_squad([{"id": "q1", "question": "언제?",
                                       "answers": [{"text": "1989년 2월 15일", "answer_start": 0}]}]),
                              ensure_ascii=False), encoding="utf-8")
    res = runner.invoke(app, ["prepare", "--data", str(bad), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0
    assert "1 answers have an answer_start" in res.output
    assert json.loads((tmp_path / "r" / "prepare.json").read_text())["answer_start_mismatches"] == 1


def test_parse_error_is_a_korquad_tune_error(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    with pytest.raises(KorquadTuneError):
        parse_squad(p)


def test_a_file_saved_with_decomposed_hangul_reads_as_the_composed_one(tmp_path):
    """macOS may save Hangul decomposed (NFD: 임 as ㅇ ㅣ ㅁ); it looks the same but Kiwi, BM25 and the study rules
    read jamo, and the study stage made no question from such a paragraph. `prepare` composes every text (NFC)."""
    import unicodedata
    doc = {"version": "v", "data": json.loads(gzip.decompress(shipped_dev_path().read_bytes()))["data"][:1]}
    decomposed = json.loads(unicodedata.normalize("NFD", json.dumps(doc, ensure_ascii=False)))
    assert decomposed != doc
    for name, d in (("nfc", doc), ("nfd", decomposed)):
        (tmp_path / f"{name}.json").write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    assert parse_squad(tmp_path / "nfd.json")[0] == parse_squad(tmp_path / "nfc.json")[0]
