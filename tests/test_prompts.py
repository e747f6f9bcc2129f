"""The prompt template is the original experiment's, and the AutoTrain export uses it."""

import csv

from typer.testing import CliRunner

from korquad_tune.cli import app
from korquad_tune.prompts import get_template

ORIGINAL = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request. ### Instruction: {question} ### Response: {answer}")


def test_default_template_is_the_original_exactly():
    t = get_template("alpaca")
    q, a = "헤이그의 부인은 누구인가?", "퍼트리샤 앤토이넷 폭스"
    assert t.text(q, a) == ORIGINAL.format(question=q, answer=a)
    assert t.prompt(q) == ORIGINAL.format(question=q, answer="")
    assert t.prompt(q).endswith("### Response: ")


def test_export_autotrain_writes_a_text_column(run3, tmp_path):
    from korquad_tune.augment import augment
    augment(run3, backend="shipped")
    res = CliRunner().invoke(app, ["export-autotrain", str(run3), str(tmp_path)])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["text"]
    assert len(rows) == 85 + 847  # originals + shipped paraphrases kept by the filters
    assert rows[0]["text"] == ORIGINAL.format(question="임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배 된 날은?",
                                              answer="1989년 2월 15일")
