"""Augment backends and filters; the openai backend against a real HTTP server on 127.0.0.1."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter

from typer.testing import CliRunner

from korquad_tune.augment import augment, filter_paraphrases, load_shipped_heldout, parse_list
from korquad_tune.cli import app
from korquad_tune.data import load_augmentation, load_qa, prepare, run_pairs, training_pairs
from korquad_tune.korean_rules import keeps_entities, protected_spans, rule_paraphrases, swappable_words, word_swap
from korquad_tune.rundir import RunDir

runner = CliRunner()


# ------------------------------------------------------------------ parsing and filters
def test_parse_numbered_and_bulleted_lists():
    reply = ("다음은 비슷한 문장 10개입니다:\n1. 헤이그의 아내는 누구인가?\n2) 헤이그의 배우자는?\n"
             "- 헤이그가 결혼한 사람은?\n• \"헤이그의 부인 이름은?\"\n③ 헤이그와 결혼한 여성은 누구야?\n\n")
    assert parse_list(reply) == ["헤이그의 아내는 누구인가?", "헤이그의 배우자는?", "헤이그가 결혼한 사람은?",
                                 "헤이그의 부인 이름은?", "헤이그와 결혼한 여성은 누구야?"]


def test_filters_drop_and_count():
    q = "헤이그가 공부한 대학교는?"
    counts = Counter()
    kept = filter_paraphrases(q, ["노터데임 대학교"], [
        "", "헤이그가 공부한 대학교는?", "헤이그가 공부한 대학교는 어디인가?", "헤이그가 공부한 대학교는 어디인가 ?",
        "헤이그가 다닌 노터데임 대학교는 어디인가?", "헤이그가 공부한 대학교는 어디인가요?",
        "헤이그가 젊은 시절 입학해서 여러 해 동안 다니며 공부하고 졸업까지 한 바로 그 대학교의 정식 이름은 무엇인지 자세히 알려줄 수 있나요?", "대학?",
        "헤이그는 어느 대학교에서 공부했나?", "헤이그가 다닌 대학은?"], n=1, counts=counts)
    assert kept == ["헤이그가 공부한 대학교는 어디인가?"]
    assert counts == Counter(empty=1, original=1, duplicate=1, near_duplicate=1, contains_answer=1, too_long=1,
                             too_short=1, over_n=2)


# ------------------------------------------------------------------ shipped sets
def test_shipped_backend_gives_85_times_11_prompts(run3):
    path, summary = augment(run3, backend="shipped")
    pairs = training_pairs(load_qa(run3), load_augmentation(RunDir(run3)))
    assert summary["questions"] == 85
    assert summary["kept"] >= 840 and len(pairs) == 85 + summary["kept"]
    doc = json.loads(path.read_text())
    assert set(doc) == {"augmentation_dict", "provenance", "summary"}
    assert all(len(v) <= 10 for v in doc["augmentation_dict"].values())


def test_heldout_never_appears_in_training(run3):
    from korquad_tune.augment import SHIPPED_TRAIN, load_augmentation_file, shipped_resource
    held = load_shipped_heldout()
    assert len(held) == 170 and {len(h["answers"]) > 0 for h in held} == {True}
    shipped = load_augmentation_file(shipped_resource(SHIPPED_TRAIN))
    trained = {q for q in shipped} | {p for v in shipped.values() for p in v}
    trained |= {p for q in shipped for p in rule_paraphrases(q, n=20)}  # nor in what the rules backend makes
    norm = lambda s: re.sub(r"[\s?.!]", "", s)  # noqa: E731
    assert not {norm(h["question"]) for h in held} & {norm(t) for t in trained}
    qa_ids = {r["id"] for r in load_qa(run3)}
    assert {h["source_id"] for h in held} == qa_ids


# ------------------------------------------------------------------ rules backend
def test_rules_backend_variants_keep_entities_and_numbers(run3):
    qa = load_qa(run3)
    enough = 0
    for r in qa:
        variants = rule_paraphrases(r["question"], n=10, seed=0)
        assert len(set(variants)) == len(variants)
        enough += len(variants) >= 5
        for v in variants:
            assert keeps_entities(r["question"], v), (r["question"], v)
            for num in re.findall(r"\d+", r["question"]):
                assert num in v
    assert enough >= 0.9 * len(qa)


def test_rules_are_deterministic_and_seeded():
    q = "알렉산더 헤이그가 1984년 발간한 회고록의 제목은 무엇인가?"
    assert rule_paraphrases(q, seed=1) == rule_paraphrases(q, seed=1)
    assert set(rule_paraphrases(q, n=50, seed=1)) == set(rule_paraphrases(q, n=50, seed=2))
    assert "알렉산더 헤이그" in protected_spans(q) and "1984" in protected_spans(q)


def test_rules_grammar_examples():
    vs = rule_paraphrases("헤이그가 공부한 대학교는?", n=30)
    assert "헤이그가 공부한 대학교는 어디인가?" in vs
    assert "헤이그가 공부한 대학교를 알려줘." in vs          # 를 after a vowel
    vs = rule_paraphrases("노아의 방주를 만든 재질은?", n=30)
    assert "노아의 방주를 만든 재질을 알려줘." in vs          # 을 after a consonant
    assert "노아의 방주를 만든 재질이 무엇인지 알려줘." in vs
    vs = rule_paraphrases("알렉산더 헤이그는 어느 대통령의 밑에서 국무장관을 지냈는가?", n=30)
    assert "알렉산더 헤이그는 어느 대통령의 밑에서 국무장관을 지냈습니까?" in vs


def test_rules_backend_cli(tmp_path):
    prepare(tmp_path, articles=1, holdout=False)  # the 11 questions of article 1
    res = runner.invoke(app, ["augment", str(tmp_path), "--backend", "rules", "--n", "5"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "augmentation.json").read_text())
    assert doc["summary"]["backend"] == "rules" and all(len(v) == 5 for v in doc["augmentation_dict"].values())


def test_rules_backend_keeps_its_noisy_variants_among_the_n_it_writes(tmp_path):
    # augment asks the paraphraser for a few spare variants and keeps n: the word-dropped and word-swapped
    # ones must be among those n, not the spares (they were, until session 8, mostly cut)
    prepare(tmp_path, articles=1, holdout=False)
    res = runner.invoke(app, ["augment", str(tmp_path), "--backend", "rules", "--n", "10"])
    assert res.exit_code == 0, res.output
    kept = json.loads((tmp_path / "augmentation.json").read_text())["augmentation_dict"]
    pool = set(swappable_words(list(kept)))
    doc = json.loads((tmp_path / "augmentation.json").read_text())
    listed = {v for vs in doc["noisy"].values() for v in vs}  # the noisy copies, listed as such
    swapped = 0
    for q, variants in kept.items():
        words = q.split()
        for v in variants:
            vw = v.split()
            shorter = len(vw) < len(words) and set(vw) <= set(words)  # words left out (or a shortened rewording)
            foreign = set(vw) - set(words)
            one_swapped = len(vw) == len(words) and len(foreign) == 1 and foreign <= pool
            swapped += one_swapped
            assert v not in listed or shorter or one_swapped, (q, v)
            assert keeps_entities(q, v), (q, v)
    assert swapped >= len(kept) and len(listed) >= 4 * len(kept)  # about 2 and 5 of each question's 10
    assert doc["summary"]["noisy"] == len(listed)
    # the adapters learn the noisy copies; the retrieval baseline does not index them
    trained = {q for q, _ in run_pairs(tmp_path)}
    looked_up = {q for q, _ in run_pairs(tmp_path, rewordings_only=True)}
    assert listed <= trained and not listed & looked_up and trained - listed == looked_up


def test_word_swap_takes_in_no_names_and_keeps_the_question_s_own():
    questions = ["알렉산더 헤이그가 졸업한 대학교는?", "노아의 방주 내부에 바른 것은 무엇인가?"]
    pool = swappable_words(questions)
    assert "알렉산더" not in pool and "헤이그가" not in pool and "졸업한" in pool and "내부에" in pool
    q = "알렉산더 헤이그가 졸업한 대학교는?"
    for v in word_swap(q, random.Random(0), 5, pool):
        assert v.startswith("알렉산더 헤이그가 ") and v.endswith(" 대학교는?") and "졸업한" not in v
    assert word_swap("짧은 질문은?", random.Random(0), 5, pool) == []  # half a question is not a rewording


# ------------------------------------------------------------------ file backend
def test_file_backend_json_and_jsonl(tmp_path):
    prepare(tmp_path, articles=1, holdout=False)  # the 11 questions of article 1
    q = load_qa(tmp_path)[0]["question"]
    f = tmp_path / "aug.json"
    f.write_text(json.dumps({q: ["임종석이 지명수배된 날짜는 언제인가?", "임종석이 수배된 날은?"]}, ensure_ascii=False))
    _, s = augment(tmp_path, backend="file", file=f)
    assert s["kept"] == 2
    g = tmp_path / "aug.jsonl"
    g.write_text(json.dumps({"question": q, "paraphrases": ["임종석이 지명수배된 날짜는 언제인가?"]},
                            ensure_ascii=False) + "\n")
    _, s = augment(tmp_path, backend="file", file=g)
    assert s["kept"] == 1
    g.write_text('{"question": 1}\n')
    res = runner.invoke(app, ["augment", str(tmp_path), "--backend", "file", "--file", str(g)])
    assert res.exit_code == 2 and "line 1" in res.output


# ------------------------------------------------------------------ openai backend, real HTTP
def test_openai_backend_survives_429_500_timeout_and_garbage(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    prepare(tmp_path, articles=1, holdout=False)  # the 11 questions of article 1
    server = fake_openai(script=["429", "500", "timeout", "garbage"])
    _, s = augment(tmp_path, backend="openai", base_url=server.url, model="fake", concurrency=1, timeout=0.5)
    doc = json.loads((tmp_path / "augmentation.json").read_text())
    counts = [len(v) for v in doc["augmentation_dict"].values()]
    assert counts.count(0) == 1 and all(c == 4 for c in counts if c)  # the garbage reply gave nothing usable
    assert s["questions_without_paraphrases"] == 1 and s["backend"] == "openai"
    assert len(server.requests) == 11 + 3  # three retried faults


def test_openai_backend_resumes_after_a_kill_without_asking_again(tmp_path, fake_openai):
    prepare(tmp_path, articles=1, holdout=False)  # the 11 questions of article 1
    server = fake_openai(delay=0.3)
    cmd = [sys.executable, "-m", "korquad_tune.cli", "augment", str(tmp_path), "--backend", "openai",
           "--base-url", server.url, "--model", "fake", "--concurrency", "1"]
    env = {**os.environ, "OPENAI_API_KEY": "test"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / "augment_cache.jsonl"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if cache.exists() and len(cache.read_text(encoding="utf-8").splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(cache.read_text(encoding="utf-8").splitlines())
    assert 3 <= done_before < 11 and not (tmp_path / "augmentation.json").exists()
    asked_before = len(server.requests)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    asked_after = server.requests[asked_before:]
    cached = {json.loads(line)["key"].split(":", 2)[2] for line in
              cache.read_text(encoding="utf-8").splitlines()[:done_before]}
    assert not cached & set(asked_after)  # nothing already answered was asked again
    assert len(json.loads((tmp_path / "augmentation.json").read_text())["augmentation_dict"]) == 11


def test_unreachable_endpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    prepare(tmp_path, articles=1, holdout=False)  # the 11 questions of article 1
    res = runner.invoke(app, ["augment", str(tmp_path), "--backend", "openai", "--base-url",
                              "http://127.0.0.1:9/v1", "--timeout", "1"])
    assert res.exit_code == 2 and "cannot reach" in res.output
    assert not (tmp_path / "augmentation.json").exists()


def test_rules_ask_a_relative_clause_question_with_the_wh_word_inside_and_compound_an_act():
    vs = rule_paraphrases("임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배 된 날은?", n=60)
    assert "임종석이 여의도 농민 폭력 시위를 주도한 혐의로 언제 지명수배 됐는가?" in vs
    assert "임종석이 여의도 농민 폭력 시위 주도 혐의로 지명수배 된 날은?" in vs
    assert "누가 순수 수학, 물리학, 천문학, 생물학에 관한 책을 썼는가?" in rule_paraphrases(
        "순수 수학, 물리학, 천문학, 생물학에 관한 책을 쓴 사람은?", n=60)
    assert "헤이그가 어디에서 태어났는가?" in rule_paraphrases("헤이그가 태어난 곳은?", n=60)
    assert "누가 임종석을 만났는가?" in rule_paraphrases("임종석을 만난 사람은?", n=60)
    assert "어디가 포켓몬스터 금, 은을 개발했는가?" in rule_paraphrases("포켓몬스터 금, 은을 개발한 곳은?", n=60)
    assert "임종석이 검거된 장소는 경희대 내 어디인가?" in rule_paraphrases("임종석을 검거한 장소는 경희대 내 어디인가?", n=60)
    # the clause has its subject, so the person is an object: which case 누구 takes would be a guess
    assert not any("누가" in v or "누구를" in v for v in rule_paraphrases("임종석이 만난 사람은?", n=60))
    # only a noun about the act compounds ("거부 사람" is not Korean), and only an act with no agent named
    # turns passive ("시위가 주도된 혐의로 … 지명수배된 사람" would lose who led it)
    assert not any("거부 사람" in v for v in rule_paraphrases("인도를 거부한 사람은 누구인가?", n=60))
    assert not any("시위가 주도된" in v for v in rule_paraphrases(
        "1989년 2월 15일 여의도 농민 폭력 시위를 주도한 혐의로 지명수배된 사람의 이름은?", n=60))
