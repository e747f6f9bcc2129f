"""Evaluate: systems, outputs, paired tests, and the errors a user meets."""

import json

from typer.testing import CliRunner

from korquad_tune.cli import app
from korquad_tune.data import load_qa
from korquad_tune.data import run_pairs
from korquad_tune.fileio import read_jsonl, write_jsonl
from korquad_tune.retrieval import RetrievalAnswerer, morphemes

runner = CliRunner()


def test_morphemes_drop_particles():
    assert morphemes("헤이그가 공부한 대학교는?") == morphemes("헤이그는 공부한 대학교가?")
    assert "헤이그" in morphemes("헤이그의 부인은 누구인가?")


def test_retrieval_finds_its_own_training_questions(run3):
    qa = load_qa(run3)
    r = RetrievalAnswerer(run_pairs(run3, augment=False))
    answers = r.answer([q["question"] for q in qa])
    right = sum(a in q["answers"] for a, q in zip(answers, qa))
    assert right >= 0.9 * len(qa)  # a few questions repeat with different answers


def test_answer_recall_offers_the_answers_of_the_nearest_trained_and_study_questions(run3):
    from korquad_tune.retrieval import AnswerRecall
    qa = load_qa(run3)
    pairs = run_pairs(run3, augment=False)
    study = [("임종석이 수배된 날짜는 언제인가?", "1989년 2월 15일"), ("노아의 방주를 만든 나무는?", "고페르나무")]
    recall = AnswerRecall(pairs, study)
    texts = [r["question"] for r in qa[:10]]
    for k in (1, 3):
        for row, found in zip(qa, recall.candidates(texts, k)):
            assert len(found) == len(set(found)) <= 2 * k and found[0] == RetrievalAnswerer(pairs).answer(
                [row["question"]])[0]  # the best trained match first, then the lookup with the study questions
    assert "고페르나무" in recall.candidates(["방주는 어떤 나무로 만들었나?"], 1)[0]  # only a study question asks it
    assert AnswerRecall(pairs).candidates(["방주는 어떤 나무로 만들었나?"], 2)[0] == \
        RetrievalAnswerer(pairs).top_answers(["방주는 어떤 나무로 만들었나?"], 2)[0]


def test_answer_recall_finds_a_trained_question_by_its_answers_sentence_too():
    """Another person asks for the same fact in the paragraph's words, not the first annotator's (BENCHMARKS 5l)."""
    from korquad_tune.data import answer_sentence, with_answer_sentences
    from korquad_tune.retrieval import AnswerRecall
    context = "노아는 방주를 만들었다. 방주는 고페르나무로 지었고 길이는 300규빗이었다. 홍수는 40일 동안 계속되었다."
    qa = [{"question": "노아가 만든 배의 재료는?", "answers": ["고페르나무"], "context": context},
          {"question": "홍수는 며칠 동안 이어졌나?", "answers": ["40일"], "context": context}]
    assert answer_sentence(context, "고페르나무") == "방주는 고페르나무로 지었고 길이는 300규빗이었다."
    assert answer_sentence(context, "나무로 지었고 길이는") == "방주는 고페르나무로 지었고 길이는 300규빗이었다."
    assert answer_sentence(context, "만들었다. 방주는") == "" and answer_sentence(context, "없는 말") == ""
    pairs = [(r["question"], r["answers"][0]) for r in qa] + [("노아의 배는 무엇으로 만들었나?", "고페르나무")]
    rows = with_answer_sentences(pairs, qa)
    assert rows[2][2] == rows[0][2] == answer_sentence(context, "고페르나무")  # a paraphrase: its question's sentence
    asked = "길이 300규빗의 방주를 지은 목재는 몇 해 동안 쓰였나?"  # 동안: the other question's; the rest: the sentence's
    assert AnswerRecall(rows[:2]).nearest_answers([asked]) == ["고페르나무"]
    assert AnswerRecall(rows[:2], sentences=False).nearest_answers([asked]) == ["40일"]
    assert AnswerRecall(pairs[:2]).nearest_answers([asked]) == ["40일"]  # rows without a sentence: as before
    # two trained questions about one sentence: each, asked as trained, still finds its own answer
    context = "임종석은 1989년 2월 15일 여의도 농민 폭력 시위를 주도한 혐의로 지명수배되었다."
    qa = [{"question": "1989년 2월 15일 여의도 농민 폭력 시위를 주도한 혐의로 지명수배된 사람의 이름은?",
           "answers": ["임종석"], "context": context},
          {"question": "임종석이 주도한 혐의로 지명수배된 시위는?", "answers": ["여의도 농민 폭력 시위"], "context": context}]
    rows = with_answer_sentences([(r["question"], r["answers"][0]) for r in qa], qa)
    assert AnswerRecall(rows).nearest_answers([r["question"] for r in qa]) == [r["answers"][0] for r in qa]


def test_answer_recall_finds_a_study_question_by_its_sentence_too():
    """A question made from a sentence keeps only some of its words; a person asking about that fact may use the
    others (BENCHMARKS 5o). Study rows name their sentence by number; without the sentences, as before."""
    from korquad_tune.retrieval import AnswerRecall
    sentences = ["방주는 고페르나무로 지었고 길이는 300규빗이었다.", "노아는 방주에 동물을 태웠고 홍수는 40일 동안 계속되었다."]
    trained = [("홍수는 며칠 동안 계속되었나?", "40일", sentences[1])]
    study = [("방주는 무엇으로 지었나?", "고페르나무", 0), ("노아가 방주에 태운 것은?", "동물", 1)]
    asked = ["길이가 300규빗인 노아의 방주의 재료는?"]  # 노아: the other study question's word; 길이, 300규빗: the sentence's
    assert AnswerRecall(trained, study, study_sentences=sentences).candidates(asked, 1) == [["40일", "고페르나무"]]
    assert AnswerRecall(trained, study).candidates(asked, 1) == [["40일", "동물"]]
    assert AnswerRecall(trained, study, sentences=False, study_sentences=sentences).candidates(asked, 1) == \
        [["40일", "동물"]]  # the switch that turns the trained side's sentences off turns these off too
    # a number no sentence has (a questions.json edited by hand) reads the question alone, no error
    assert AnswerRecall(trained, [*study, ("방주의 길이는?", "300규빗", 7)], study_sentences=sentences) \
        .candidates(["방주의 길이는?"], 1) == [["40일", "300규빗"]]


def test_answer_recall_switches_offer_a_nearest_study_sentence_less_what_the_question_says(run3):
    """`same_sentence`: the answers of the sentence a nearest study question was made from are offered, `drop_asked`:
    less those the question says; off by default (BENCHMARKS 5d); a trained question keeps its own answer."""
    from korquad_tune.korean_cloze import cloze_questions
    from korquad_tune.retrieval import AnswerRecall
    pairs = run_pairs(run3, augment=False)
    sentence = "1868년 8월 19일 반류마루는 에노모토 함대와 함께 시나가와 해역을 탈출하였다."
    made = cloze_questions(sentence)
    sentence_answers = {c["answer"] for c in made}
    assert {"1868년", "반류마루", "시나가와"} <= sentence_answers, made
    study = [(c["question"], c["answer"], 0) for c in made]
    asked = "1868년 8월 19일 반류마루가 탈출한 해역은 어디인가?"
    offered = AnswerRecall(pairs, study).candidates([asked], 1, same_sentence=True, drop_asked=True)[0]
    said = {a for a in sentence_answers if "".join(a.split()) in "".join(asked.split())}
    assert {"1868년", "반류마루"} <= said and not said & set(offered)
    assert sentence_answers - said <= set(offered)
    nearest = AnswerRecall(pairs, study).candidates([asked], 1)[0]  # the default: the nearest answers only
    assert len(nearest) <= 2 < len(sentence_answers - said)
    trained = "2012년 중국 BTV에서 노아의 방주가 발견되었다고 보도한 나라는?"
    widened = AnswerRecall([(trained, "중국"), *pairs], [*study, ("BTV가 보도한 나라는?", "중국", 1)])
    assert widened.candidates([trained], 1, same_sentence=True, drop_asked=True)[0][0] == "중국"
    assert AnswerRecall(pairs, [row[:2] for row in study]).candidates([asked], 1, drop_asked=False) == [nearest]


def test_answer_recall_keeps_the_span_a_person_chose_for_a_trained_answer():
    """A study answer that is a wider or narrower span of a nearest trained answer is not offered beside it (the
    adapter traded "울산 현대" for the cloze rules' "K리그 팀 울산 현대", BENCHMARKS 5e); other study answers are."""
    from korquad_tune.retrieval import AnswerRecall
    trained = [("1990년 차범근이 감독을 맡은 K리그 팀은?", "울산 현대"), ("차범근이 태어난 곳은?", "화성")]
    study = [("차범근은 1990년 무엇의 감독을 맡았는가?", "K리그 팀 울산 현대"),
             ("차범근은 1990년 어느 리그 팀의 감독을 맡았는가?", "울산"), ("차범근이 감독을 맡은 해는?", "1990년")]
    asked = ["1990년 차범근이 감독을 맡은 팀은?"]
    offered = AnswerRecall(trained, study).candidates(asked, 5, typed=False)[0]  # "팀은?" would drop 1990년 too
    assert "울산 현대" in offered and "1990년" in offered
    assert "K리그 팀 울산 현대" not in offered and "울산" not in offered
    wide = AnswerRecall(trained, study).candidates(asked, 5, trained_spans=False, typed=False)[0]
    assert {"K리그 팀 울산 현대", "울산"} <= set(wide)


def test_answer_recall_offers_answers_of_the_kind_the_question_asks():
    """`typed` (on): of the nearest answers, a question asking 몇 명 gets those with a number and the counter (else
    any number), one asking 누구 / 어디 none that starts with a number; the last wh-word decides; where no answer is
    of that kind, all stay."""
    from korquad_tune.retrieval import AnswerRecall, asked_type
    trained = [("차범근의 아들은 누구인가?", "차두리"), ("차범근이 독일로 간 해는?", "1978년")]
    study = [("차범근은 자식을 몇 명 두었다고 밝혔는가?", "2008년"), ("차범근의 자식은?", "2남 1녀"),
             ("차범근이 자식을 함께 둔 사람은?", "오은미")]
    recall = AnswerRecall(trained, study)
    asked = ["차범근은 자식을 몇 명 두었는가?", "차범근이 자식을 몇 명 두었다고 밝힌 사람은 누구인가?",
             "차범근이 자식을 둔 것은 언제인가?"]
    assert all({"차두리", "2008년"} <= set(found) for found in recall.candidates(asked, 3, typed=False))
    assert recall.candidates(asked, 3) == [["2남 1녀"], ["차두리", "오은미"], ["1978년", "2008년", "2남 1녀"]]
    assert recall.candidates(asked[:1], 2) == [["1978년", "2008년"]]  # no answer with the counter: any number
    assert recall.candidates(["차범근이 좋아하는 것은?"], 3) == recall.candidates(["차범근이 좋아하는 것은?"], 3, typed=False)
    assert AnswerRecall([("노아의 방주를 만든 사람은?", "노아")]).candidates(["방주는 언제 만들었나?"], 1) == [["노아"]]
    assert not asked_type("몇몇 평론가들은 무엇이라고 말했나?")
    counted, number = asked_type("히데코는 몇 살이었는가?")
    assert counted("만 53세") and not counted("1953년") and number("1953년")
    assert asked_type("언제나 볼 수 있어야 하는 것은 누구인가?")[0]("2008년") is False
    assert asked_type("차범근이 태어난 해는?")[0]("1953년") and not asked_type("차범근이 만난 사람은?")[0]("2008년")
    assert asked_type("몇 명이 모인 곳은?")[0]("알레포") and not asked_type("몇 가지 … 무엇에 반한다고 말했나?")
    number = asked_type("종편 방송법이 국회를 통과한 날은 언제인가?")[0]  # a name is no number for its first syllable
    assert not any(map(number, ["한나라당", "이명박", "천안함", "세계일보", "만주"]))
    assert all(map(number, ["한척", "두칸", "열두 살", "첫째", "수십 명", "만여 명", "이십일 년", "2009년 7월 22일"]))


def test_answer_recall_skip_said_takes_the_next_study_answer_in_place_of_one_the_question_says():
    """`skip_said` (off, BENCHMARKS 5j): the study side passes over answers the asked question states and offers the
    next nearest instead, as many as before; the trained side is untouched."""
    from korquad_tune.retrieval import AnswerRecall
    study = [("이회창은 1997년 대선에서 IMF사태에 대한 누구의 책임론으로 낙선했는가?", "한나라당"),
             ("이회창은 몇 년에 대선에서 IMF사태에 대한 한나라당의 책임론으로 낙선했는가?", "1997년"),
             ("이회창은 1997년 대선에서 무엇에 대한 한나라당의 책임론으로 낙선했는가?", "IMF사태")]
    recall = AnswerRecall([("이회창의 팬클럽 이름은?", "창사랑")], study)
    asked = ["이회창은 1997년 대선에서 이 사태에 대한 한나라당의 책임론으로 낙선한다. 이 사태는?"]
    assert "IMF사태" not in recall.candidates(asked, 2)[0]
    assert recall.candidates(asked, 2, skip_said=True) == [["창사랑", "IMF사태"]]


def test_answer_recall_offers_the_year_or_the_date_the_question_asks_for():
    """Of a year and a date from that year, both offered, "…해는?" / 연도 / 몇 년 get the year and 언제 / 날짜 /
    생년월일 the date (as KorQuAD's annotators answered: 89 of 94 and 109 of 114, bench/answer_types.py); a year with
    no date from it, or a question asking neither, keeps everything."""
    from korquad_tune.retrieval import AnswerRecall, of_asked_date_precision
    study = [("소토마요르가 첫 주니어 기록을 세운 해는?", "1984년"), ("소토마요르가 첫 주니어 기록을 세운 날은?", "1984년 5월 19일"),
             ("소토마요르가 2.45m를 뛴 해는?", "1993년")]
    recall = AnswerRecall([("소토마요르의 국적은?", "쿠바")], study)
    assert recall.candidates(["소토마요르가 첫 주니어 기록을 세운 때는 언제인가?"], 4) == [["1984년 5월 19일", "1993년"]]
    assert recall.candidates(["소토마요르가 첫 주니어 기록을 세운 연도는?"], 4) == [["1984년", "1993년"]]
    assert recall.candidates(["소토마요르가 세운 첫 주니어 기록은?"], 3, typed=False) == \
        recall.candidates(["소토마요르가 세운 첫 주니어 기록은?"], 3)
    assert of_asked_date_precision("헤이그의 생년월일은?", ["1924년", "1924년 12월 2일", "2010년"]) == ["1924년 12월 2일", "2010년"]
    assert of_asked_date_precision("위장전입한 년도는?", ["1999년 4월", "1999년"]) == ["1999년"]
    assert of_asked_date_precision("언제 일어났나?", ["2007년", "2006년 5월"]) == ["2007년", "2006년 5월"]
    assert of_asked_date_precision("피해는?", ["1999년 4월", "1999년"]) == ["1999년 4월", "1999년"]


def test_answer_recall_keeps_an_answer_a_trained_question_of_that_kind_was_given():
    """The kind rule is wrong for a few of KorQuAD's own answers ("…얼마의 득표가 필요한가?" -> 과반): an answer a
    trained question asking that kind was given stays offered, so the trained question and its rephrasings can be
    answered; `kind_exceptions=False` is as before (session 31, BENCHMARKS 5p). The year-or-date rule is unchanged."""
    from korquad_tune.retrieval import AnswerRecall, of_another_kind
    trained = [("결선투표제에서 당선되기 위해서는 얼마의 득표가 필요한가?", "과반"), ("결선투표제가 처음 도입된 해는?", "1852년"),
               ("소토마요르가 첫 주니어 기록을 세운 때는 언제인가?", "1984년"),
               ("소토마요르가 주니어 기록을 세운 날짜는?", "1984년 5월 19일")]
    recall = AnswerRecall(trained, [("결선투표에서 후보가 얻어야 하는 득표율은 얼마인가?", "50%")])
    assert of_another_kind(*trained[0]) and not of_another_kind(*trained[1]) and not of_another_kind(*trained[2])
    asked = ["결선투표제에서 당선되려면 얼마만큼 득표해야 하나?", trained[0][0]]
    for offered in recall.candidates(asked, 2):
        assert "과반" in offered and "50%" in offered
    for offered in recall.candidates(asked, 2, kind_exceptions=False):
        assert "과반" not in offered and "50%" in offered
    dated = recall.candidates(["소토마요르가 첫 주니어 기록을 세운 것은 언제인가?"], 3)[0]
    assert "1984년 5월 19일" in dated and "1984년" not in dated  # a year for 언제 is no exception
    # a number without the counter the question names (몇 버전 -> 1.1 패치) keeps it too, beside a study "360 버전"
    patch = AnswerRecall([("2007년에 공개된 패치는 몇 버전 패치인가?", "1.1 패치")],
                         [("바이오쇼크는 몇 버전으로 이식되었는가?", "360 버전")])
    assert patch.candidates(["2007년에 공개된 패치는 몇 버전 패치인가?"], 3) == [["1.1 패치", "360 버전"]]
    assert patch.candidates(["2007년에 공개된 패치는 몇 버전 패치인가?"], 3, kind_exceptions=False) == [["360 버전"]]


def test_answer_recall_prior_goes_to_the_nearest_trained_answer_unless_the_question_says_it():
    """`decoding: recall` counts the nearest trained question's answer `recall_prior` nats likelier; not where the
    asked question already says that answer (it then asks about something else: BENCHMARKS 5g)."""
    from korquad_tune.retrieval import AnswerRecall
    recall = AnswerRecall([("번디의 전기를 집필한 사람은?", "앤 룰"), ("번디가 태어난 곳은?", "버몬트주")],
                          [("앤 룰이 쓴 번디의 전기는?", "내 옆의 이방인", 0)])
    asked = ["번디의 전기를 쓴 작가는?", "앤 룰이 집필한 번디의 전기 제목은?", "번디의 고향은 어디인가?"]
    assert recall.nearest_answers(asked) == ["앤 룰", "앤 룰", "버몬트주"]
    assert recall.priors(asked, 2.0) == [{"앤 룰": 2.0}, {}, {"버몬트주": 2.0}]
    # the study vote: the answer of the question nearest among trained and study questions; where the two lookups
    # agree both votes add up; never for an answer the question says
    assert recall.priors(asked, 2.0, 3.0) == [{"앤 룰": 2.0, "내 옆의 이방인": 3.0},
                                                {"내 옆의 이방인": 3.0}, {"버몬트주": 5.0}]
    assert AnswerRecall([("번디가 태어난 곳은?", "버몬트주")]).priors(["번디의 고향은?"], 2.0, 3.0) \
        == [{"버몬트주": 2.0}]  # no study questions: no second vote


def test_answer_recall_trained_vote_can_be_left_out_where_a_study_question_is_far_nearer():
    """`trained_share`: a question far nearer a study question than any trained one asks a fact no trained question
    asks, and the nearest trained answer (here where the man was born) gets no vote there (BENCHMARKS 5q)."""
    from korquad_tune.retrieval import AnswerRecall
    recall = AnswerRecall([("번디의 전기를 집필한 사람은?", "앤 룰"), ("번디가 태어난 곳은?", "버몬트주")],
                          [("1974년 번디가 살해한 여대생의 이름은?", "린다 힐리", 0)])
    asked = ["1974년 번디에게 살해된 여대생은 누구인가?", "번디의 전기를 쓴 작가는?"]
    assert recall.lookups[1].best_score_shares(asked, 2) == [0.0, 1.0]
    assert recall.priors(asked, 5.0, 4.0) == [{"버몬트주": 5.0, "린다 힐리": 4.0}, {"앤 룰": 9.0}]
    assert recall.priors(asked, 5.0, 4.0, 0.5) == [{"린다 힐리": 4.0}, {"앤 룰": 9.0}]


def test_answer_recall_typed_study_vote_passes_over_an_answer_the_question_says_or_of_another_kind():
    """`vote="typed"`: the nearest study question is one made from the same sentence for another of its facts, whose
    answer the asker names (하나님) or whose kind the wh-word rules out (a year for 누구); the vote goes to the
    nearest answer left, which is then offered (BENCHMARKS 5r)."""
    from korquad_tune.retrieval import AnswerRecall
    recall = AnswerRecall([("노아의 방주의 길이는?", "300 규빗")],
                          [("노아는 누구의 명령대로 배를 만들고 가족과 동물들을 배에 태웠는가?", "하나님", 0),
                           ("노아가 하나님의 명령대로 배를 만든 해는?", "기원전 2348년", 0),
                           ("누가 하나님의 명령대로 배를 만들었는가?", "노아", 0)])
    asked = ["하나님의 명령대로 배를 만들고 가족과 동물들을 배에 태운 사람은 누구인가?"]
    assert recall.study_vote_answers(asked) == ["하나님"]  # said by the question: no vote at all before
    assert recall.priors(asked, 5.0, 4.0) == [{"300 규빗": 5.0}]
    assert recall.study_vote_answers(asked, "typed") == ["노아"]
    assert recall.priors(asked, 5.0, 4.0, vote="typed") == [{"300 규빗": 5.0, "노아": 4.0}]
    assert "노아" in recall.candidates(asked, 1, vote="typed")[0]
    assert "노아" not in recall.candidates(asked, 1)[0]


def test_evaluate_command_writes_predictions_metrics_and_table(tiny_run, tmp_path):
    questions = tmp_path / "q.jsonl"
    qa = load_qa(tiny_run)
    write_jsonl(questions, [{k: r[k] for k in ("id", "question", "answers")} for r in qa])
    preds = tmp_path / "p.jsonl"
    write_jsonl(preds, [{"id": r["id"], "prediction": r["answers"][0]} for r in qa[:5]])
    out = tmp_path / "ev"
    res = runner.invoke(app, ["evaluate", "--questions", str(questions), "--out", str(out),
                              "--adapter", str(tiny_run / "adapters" / "no-aug"), "--system", "base",
                              "--system", "finetuned", "--system", "retrieval", "--train-run", str(tiny_run),
                              "--system", "predictions", "--predictions", str(preds)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "metrics.json").read_text())
    systems = summary["systems"]
    assert set(systems) == {"base", "no-aug", "retrieval", "predictions"}
    assert systems["no-aug"]["exact_match"] > systems["base"]["exact_match"]
    assert systems["predictions"]["exact_match"] == 100 * 5 / len(qa)
    assert systems["retrieval"]["exact_match"] == 100.0
    for key in ("exact_match", "f1", "n", "exact_match_ci95", "f1_ci95"):
        assert key in systems["base"]
    rows = read_jsonl(out / "no-aug" / "predictions.jsonl")
    assert set(rows[0]) == {"id", "question", "prediction", "gold", "em", "f1"}
    assert len(summary["paired_mcnemar"]) == 6
    assert "no-aug" in res.output and "EM" in res.output


def test_evaluate_reads_squad_json_too(tiny_run, tmp_path):
    from korquad_tune.data import shipped_dev_path
    res = runner.invoke(app, ["evaluate", "--questions", str(shipped_dev_path()), "--out", str(tmp_path),
                              "--system", "retrieval", "--train-run", str(tiny_run)])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "retrieval" / "metrics.json").read_text())["n"] == 5774


def test_question_file_missing_answers_is_a_clear_error(tmp_path, tiny_run):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "1", "question": "헤이그의 부인은?", "answers": ["퍼트리샤 앤토이넷 폭스"]}\n'
                   '{"id": "2", "question": "노아는?"}\n', encoding="utf-8")
    out = tmp_path / "ev"
    res = runner.invoke(app, ["evaluate", "--questions", str(bad), "--out", str(out),
                              "--adapter", str(tiny_run / "adapters" / "no-aug")])
    assert res.exit_code == 2 and "line 2" in res.output and "answers" in res.output
    assert not out.exists()


def test_adapter_for_another_base_model_is_refused(tiny_run, tmp_path):
    q = tmp_path / "q.jsonl"
    write_jsonl(q, [{"id": "1", "question": "헤이그의 부인은?", "answers": ["x"]}])
    res = runner.invoke(app, ["evaluate", "--questions", str(q), "--out", str(tmp_path / "ev"),
                              "--model", "smollm2-135m", "--adapter", str(tiny_run / "adapters" / "no-aug")])
    assert res.exit_code == 2
    assert "trained on base model 'tiny-random'" in res.output.replace("\n", "")


def test_unreachable_api_model_is_a_clear_error_and_keeps_earlier_results(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    q = tmp_path / "q.jsonl"
    write_jsonl(q, [{"id": "1", "question": "헤이그의 부인은?", "answers": ["x"]}])
    out = tmp_path / "ev"
    assert runner.invoke(app, ["evaluate", "--questions", str(q), "--out", str(out), "--system", "retrieval",
                               "--train-run", str(tiny_run)]).exit_code == 0
    before = (out / "retrieval" / "metrics.json").read_text()
    res = runner.invoke(app, ["evaluate", "--questions", str(q), "--out", str(out), "--system", "openai",
                              "--base-url", "http://127.0.0.1:9/v1"])
    assert res.exit_code == 2 and "cannot reach" in res.output
    assert (out / "retrieval" / "metrics.json").read_text() == before


def test_openai_system_answers_closed_book_and_caches(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    q = tmp_path / "q.jsonl"
    write_jsonl(q, [{"id": "1", "question": "헤이그의 부인은 누구인가?", "answers": ["퍼트리샤 앤토이넷 폭스"]},
                    {"id": "2", "question": "노아의 방주는 몇 층인가?", "answers": ["3층"]}])
    server = fake_openai(replies={"헤이그": "퍼트리샤 앤토이넷 폭스\n설명: ...", "노아": "2층"})
    args = ["evaluate", "--questions", str(q), "--out", str(tmp_path / "ev"), "--system", "openai",
            "--base-url", server.url, "--api-model", "fake"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "openai" / "metrics.json").read_text())
    assert m["exact_match"] == 50.0 and m["api_model"] == "fake"
    assert len(server.requests) == 2
    assert runner.invoke(app, args).exit_code == 0
    assert len(server.requests) == 2  # the second evaluation came from the cache


def test_decoding_learned_keeps_the_adapter_to_its_answers_and_free_does_not(tiny_run, tmp_path):
    """The base model stacked under an adapter answers freely (no answers.json of its own) whatever the decoding;
    the adapter, under `recall` (the default) and `learned`, answers only with answers it was trained on."""
    import shutil

    from korquad_tune.evaluate import Systems
    qa = load_qa(tiny_run)
    learned = {r["answers"][0] for r in qa}
    questions = [{"question": "헤이그가 좋아한 음식은?"}, *({"question": r["question"]} for r in qa[:4])]
    adapter = tmp_path / "no-aug"
    shutil.copytree(tiny_run / "adapters" / "no-aug", adapter)
    systems = Systems([adapter], batch_size=4, max_new_tokens=48)
    assert set(systems.answer("no-aug", questions)) <= learned
    assert not set(systems.answer("base", questions)) & learned
    assert set(Systems([adapter], batch_size=4, max_new_tokens=48, decoding="learned").answer(
        "no-aug", questions)) <= learned
    free = Systems([adapter], batch_size=4, max_new_tokens=48, decoding="free").answer("no-aug", questions)
    assert sum(a == r["answers"][0] for a, r in zip(free[1:], qa)) >= 3  # it learnt them either way
    (adapter / "answers.json").write_text("{not json", encoding="utf-8")
    res = runner.invoke(app, ["ask", "누구?", "--adapter", str(adapter)])
    assert res.exit_code == 2 and "answers.json" in res.output and "delete it" in res.output.replace("\n", "")
    res = runner.invoke(app, ["ask", "누구?", "--adapter", str(tiny_run / "adapters" / "no-aug"), "--decoding", "x"])
    assert res.exit_code == 2 and "unknown decoding 'x'" in res.output


def test_decoding_recall_answers_with_an_answer_of_the_nearest_trained_questions(tiny_run, tmp_path):
    """`train` writes the questions an adapter learned (questions.json); under `recall` each answer is one of the
    answers of the asked question's nearest trained questions, the adapter still answers what it learnt, and an
    adapter without questions.json falls back to its answers.json."""
    import shutil

    from korquad_tune.evaluate import Systems
    from korquad_tune.models import read_learned_questions
    from korquad_tune.retrieval import AnswerRecall
    qa = load_qa(tiny_run)
    asked = read_learned_questions(tiny_run / "adapters" / "no-aug")
    from korquad_tune.data import answer_sentence
    assert asked == {"questions": [(r["question"], r["answers"][0], answer_sentence(r["context"], r["answers"][0]))
                                   for r in qa], "study": []}  # each with its answer's sentence
    assert sum(bool(row[2]) for row in asked["questions"]) >= 0.9 * len(qa)
    adapter = tmp_path / "no-aug"
    shutil.copytree(tiny_run / "adapters" / "no-aug", adapter)
    questions = [{"question": "헤이그가 좋아한 음식은?"}, *({"question": r["question"]} for r in qa)]
    systems = Systems([adapter], batch_size=4, max_new_tokens=48, recall_k=2)
    answers = systems.answer("no-aug", questions)
    offered = AnswerRecall(asked["questions"]).candidates([q["question"] for q in questions], 2)
    assert all(a in found for a, found in zip(answers, offered))
    assert sum(a == r["answers"][0] for a, r in zip(answers[1:], qa)) >= 0.8 * len(qa)
    assert f"answers of the 2 of its {len(qa)} trained questions most like" in systems.decoding_of("no-aug")
    # the nearest trained question's answer is `recall_prior` nats ahead: with a huge prior it is always given
    pushed = Systems([adapter], batch_size=4, recall_k=2, recall_prior=1e6).answer("no-aug", questions)
    priors = AnswerRecall(asked["questions"]).priors([q["question"] for q in questions], 1e6)
    assert sum(bool(p) for p in priors) >= len(qa)
    assert all(a == next(iter(p)) for a, p in zip(pushed, priors) if p)
    (adapter / "questions.json").unlink()
    fallback = Systems([adapter], batch_size=4, max_new_tokens=48)
    assert fallback.decoding_of("no-aug").endswith(f"over its {len({r['answers'][0] for r in qa})} trained answers")
    (adapter / "questions.json").write_text('{"questions": [["q"]]}', encoding="utf-8")
    res = runner.invoke(app, ["ask", "누구?", "--adapter", str(adapter)])
    assert res.exit_code == 2 and "questions.json" in res.output and "[question, answer] or" in res.output
    (adapter / "questions.json").write_text('{"questions": [["q", "a"]], "sentences": "one"}', encoding="utf-8")
    res = runner.invoke(app, ["ask", "누구?", "--adapter", str(adapter)])
    assert res.exit_code == 2 and "'sentences' should be a list" in res.output.replace("\n", "")


def test_answer_recall_slot_vote_takes_the_answer_the_question_words_surround_in_the_nearest_sentence():
    """`vote="slot"`: the cloze questions of one sentence share nearly all its words, so the nearest of them is often
    one asking another of its facts; the slot vote reads the sentence and takes the answer the asked question's words
    stand nearest to (고비 사막 beside 북동쪽 … 치롄 산맥), less one whose words the question says (대전지방법원, not
    대전지방법원 판사, for "…판사로 임관하여 재직한 곳은?"), and offers it (BENCHMARKS 2v)."""
    from korquad_tune.retrieval import AnswerRecall
    tibet = "티베트 고원의 북서부 지역은 타림 분지와 경계를 이루는 쿤룬 산맥에, 북동쪽은 고비 사막과 경계를 이루는 치롄 산맥과 맞닿는다."
    judge = "김이수는 1982년 대전지방법원 판사로 임관하여 재직하였다."
    study = [("티베트 고원의 북서부 지역은 무엇과 경계를 이루는 쿤룬 산맥에, 북동쪽은 고비 사막과 경계를 이루는 치롄 산맥과 맞닿는가?",
              "타림 분지", 0),
             ("티베트 고원의 북서부 지역은 타림 분지와 경계를 이루는 쿤룬 산맥에, 북동쪽은 무엇과 경계를 이루는 치롄 산맥과 맞닿는가?",
              "고비 사막", 0),
             ("김이수는 1982년 무엇으로 임관하여 재직하였는가?", "대전지방법원 판사", 1),
             ("김이수는 1982년 어디의 판사로 임관하여 재직하였는가?", "대전지방법원", 1),
             ("김이수는 몇 년에 대전지방법원 판사로 임관하였는가?", "1982년", 1),
             ("티베트 고원은 평균 해발 고도가 얼마인 지역인가?", "4,500m", 2), ("티베트 고원의 대부분은 중국의 어디에 속한 지역인가?",
                                                               "시짱 자치구", 3)]
    # the words a paragraph repeats (티베트, 고원, 지역) weigh less than the ones only this sentence has (북동, 치롄)
    others = ["티베트 고원은 평균 해발 고도가 4,500m인 지역이다.", "티베트 고원의 대부분은 중국의 시짱 자치구에 속한 지역이다."]
    recall = AnswerRecall([("티베트 고원의 면적은?", "250만 km2")], study, True, [tibet, judge, *others])
    asked = ["티베트 고원의 북동쪽 치롄 산맥 너머에 있는 지역은?", "김이수가 판사로 임관하여 재직한 곳은?"]
    assert recall.study_vote_answers(asked) == ["타림 분지", "대전지방법원"]
    assert recall.study_vote_answers(asked, "slot") == ["고비 사막", "대전지방법원"]
    assert recall._slot_answer(asked[1], 1 + 2, "") == "대전지방법원"  # had "…무엇으로 임관…?" (판사) been nearest
    assert recall.priors(asked, 5.0, 4.0, vote="slot") == [{"250만 km2": 5.0, "고비 사막": 4.0}, {"250만 km2": 5.0,
                                                                                                "대전지방법원": 4.0}]
    assert all(vote in offered for vote, offered in zip(["고비 사막", "대전지방법원"],
                                                         recall.candidates(asked, 1, vote="slot")))
    # no study sentence to read: the nearest question's answer, as before
    unread = AnswerRecall([("티베트 고원의 면적은?", "250만 km2")], study)
    assert unread.study_vote_answers(asked, "slot") == unread.study_vote_answers(asked) == ["타림 분지", "대전지방법원"]


def test_a_question_typed_decomposed_or_with_spaces_is_answered_as_the_trained_one(tiny_run):
    """`Systems.answer` reads a question as `prepare` read the training ones: composed Hangul (NFD from macOS looks
    the same but BM25 and Kiwi read jamo) and no spaces around it."""
    import unicodedata

    from korquad_tune.evaluate import Systems
    from korquad_tune.fileio import read_jsonl
    rows = read_jsonl(tiny_run / "qa.jsonl")[:5]
    systems = Systems(run_dir=tiny_run)
    typed = [{"question": "  " + unicodedata.normalize("NFD", r["question"]) + " \n"} for r in rows]
    assert systems.answer("retrieval", typed) == systems.answer("retrieval", rows) == [r["answers"][0] for r in rows]
