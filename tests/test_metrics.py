"""The KorQuAD v1 metric, checked by hand against the official evaluate-v1.0.py's rules."""

import json

import pytest
from typer.testing import CliRunner

from korquad_tune.cli import app
from korquad_tune.metrics import exact_match_score, f1_score, metric_max_over_ground_truths, normalize_answer, score_one
from korquad_tune.stats import aggregate, mcnemar


@pytest.mark.parametrize("raw, normalized", [
    ("1989년 2월 15일", "1989년 2월 15일"),
    ("'임수경'", "임수경"),                       # ASCII quotes -> space, then squeezed
    ('"임수경"', "임수경"),
    ("《경고》", "경고"),                         # 《》 replaced
    ("〈경고〉", "경고"),                         # 〈〉 replaced
    ("<경고>", "경고"),
    ("‘경고’", "경고"),                           # ‘’ replaced
    ("고페르나무(잣나무)", "고페르나무 잣나무"),    # brackets become a space
    ("3명.", "3명"),                              # ASCII punctuation dropped
    ("45~46cm", "4546cm"),                        # ~ is in string.punctuation
    ("BTV", "btv"),                               # lower case
    ("  미국   육군\t부참모 ", "미국 육군 부참모"),  # whitespace squeezed
    ("“임수경”", "“임수경”"),                       # curly double quotes are NOT in the official list: kept
    ("「경고」", "「경고」"),                        # neither are corner brackets
])
def test_normalize_follows_the_official_rules(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_keeps_spaces_but_f1_drops_them():
    assert exact_match_score("미국 육군 부참모 총장", "미국 육군 부참모 총장")
    assert not exact_match_score("미국육군부참모총장", "미국 육군 부참모 총장")
    assert f1_score("미국육군부참모총장", "미국 육군 부참모 총장") == 1.0


def test_f1_is_character_level():
    # prediction chars 노터데임 (4), gold chars 노터데임대학교 (7): P = 1, R = 4/7, F1 = 8/11
    assert f1_score("노터데임", "노터데임 대학교") == pytest.approx(8 / 11)
    # repeated characters count with multiplicity: 1979년 vs 1989년 share 1,9,9,년 (4 of 5 each)
    assert f1_score("1979년", "1989년") == pytest.approx(0.8)
    assert f1_score("허영", "임수경") == 0.0
    assert f1_score("", "임수경") == 0.0


def test_max_over_ground_truths():
    golds = ["고페르나무", "고페르나무(잣나무)"]
    assert metric_max_over_ground_truths(exact_match_score, "고페르나무 잣나무", golds) == 1.0
    em, f1 = score_one("고페르", golds)
    assert em == 0.0 and f1 == pytest.approx(2 * (3 / 5) / (1 + 3 / 5))


def test_aggregate_reports_percentages_and_intervals():
    m = aggregate([1, 1, 0, 0], [1.0, 0.5, 0.5, 0.0])
    assert m["exact_match"] == 50.0 and m["f1"] == 50.0 and m["n"] == 4
    lo, hi = m["exact_match_ci95"]
    assert 0 <= lo <= 50 <= hi <= 100


def test_mcnemar_exact():
    a = [True] * 10 + [False] * 2
    b = [False] * 10 + [True] * 2
    t = mcnemar(a, b)
    assert (t["only_a"], t["only_b"]) == (10, 2)
    assert t["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_score_command_scores_any_system(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "a", "question": "헤이그의 부인은?", "answers": ["퍼트리샤 앤토이넷 폭스"]},
        {"id": "b", "question": "퇴역한 해는?", "answers": ["1979년"]},
        {"id": "c", "question": "노아의 방주는 몇 층?", "answers": ["3층"]}]), encoding="utf-8")
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "a", "prediction": "'퍼트리샤 앤토이넷 폭스'"}, {"id": "b", "prediction": "1989년"}]),
        encoding="utf-8")
    out = tmp_path / "m.json"
    res = CliRunner().invoke(app, ["score", "--questions", str(q), "--predictions", str(p), "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert m["n"] == 3 and m["unanswered"] == 1
    assert m["exact_match"] == pytest.approx(100 / 3)
    assert m["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
