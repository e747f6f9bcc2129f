"""Batched greedy generation: the same answers batched and one by one, and the stop rules."""

from typer.testing import CliRunner

from korquad_tune.cli import app
from korquad_tune.data import load_qa
from korquad_tune.generate import cut_at_stop, generate_from_prompts
from korquad_tune.models import load_model_with_adapters
from korquad_tune.prompts import get_template


def alpaca(questions, tok):
    """The questions in the Alpaca prompt the adapters were trained with."""
    return [get_template("alpaca").prompt(q, tok) for q in questions]

def test_stop_rules():
    assert cut_at_stop(" 1989년 2월 15일 ### Instruction: 다음") == "1989년 2월 15일"
    assert cut_at_stop("임수경\n1. 다른 답") == "임수경"
    assert cut_at_stop("  허영  ") == "허영"


def test_batched_equals_one_by_one(tiny_run):
    qa = load_qa(tiny_run)
    questions = [r["question"] for r in qa]
    model, tok, names = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug"])
    batched = generate_from_prompts(model, tok, alpaca(questions, tok), batch_size=8, max_new_tokens=16)
    single = [generate_from_prompts(model, tok, alpaca([q], tok), batch_size=1, max_new_tokens=16)[0] for q in questions]
    assert batched == single
    # the adapter learnt its questions: most answers are right (a random model gets none)
    right = sum(a == r["answers"][0] for a, r in zip(batched, qa))
    assert right >= 0.8 * len(qa)


def test_untuned_tiny_model_does_not_know_the_answers(tiny_run):
    qa = load_qa(tiny_run)
    model, tok, _ = load_model_with_adapters("tiny-random")
    answers = generate_from_prompts(model, tok, alpaca([r["question"] for r in qa], tok), max_new_tokens=8)
    assert sum(a == r["answers"][0] for a, r in zip(answers, qa)) == 0


def test_ask_with_adapter_one_question_and_a_file(tiny_run, tmp_path):
    qa = load_qa(tiny_run)
    adapter = str(tiny_run / "adapters" / "no-aug")
    runner = CliRunner()
    res = runner.invoke(app, ["ask", qa[0]["question"], "--adapter", adapter])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == qa[0]["answers"][0]
    f = tmp_path / "qs.txt"
    f.write_text("\n".join(r["question"] for r in qa[:3]), encoding="utf-8")
    res = runner.invoke(app, ["ask", "--file", str(f), "--adapter", adapter])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "\t" in line]
    assert len(lines) == 3 and lines[1].split("\t")[0] == qa[1]["question"]


def test_shared_head_cache_changes_no_answer(tiny_run):
    """The template's preamble runs once per call; every answer is what the plain batched path gives."""
    from korquad_tune.generate import common_prefix_length, generate_from_prompts
    from korquad_tune.prompts import get_template, reader_prompt
    qa = load_qa(tiny_run)
    model, tok, names = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug"])
    closed = [get_template("alpaca").prompt(r["question"]) for r in qa]
    opened = [reader_prompt(r["context"], r["question"]) for r in qa]
    for prompts in (closed, opened):
        assert common_prefix_length([tok(p).input_ids for p in prompts]) >= 15
        # fp32 (no bf16 autocast, the default on CPUs with native bf16): exact there, while bf16 rounds the two
        # paths' sums differently and can flip a near-tie of the random tiny model
        assert generate_from_prompts(model, tok, prompts, 4, 12, shared_prefix=True, bf16=False) == \
            generate_from_prompts(model, tok, prompts, 4, 12, shared_prefix=False, bf16=False)
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 0  # nothing left to a row: no sharing


def test_bf16_autocast_keeps_the_learnt_answers(tiny_run):
    """Autocast (the default where the CPU has native bf16) and plain fp32 answer the trained questions alike."""
    qa = load_qa(tiny_run)
    model, tok, _ = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug"])
    prompts = alpaca([r["question"] for r in qa], tok)
    fp32 = generate_from_prompts(model, tok, prompts, 8, 16, bf16=False)
    bf16 = generate_from_prompts(model, tok, prompts, 8, 16, bf16=True)
    gold = [r["answers"][0] for r in qa]
    assert sum(a == g for a, g in zip(bf16, gold)) >= sum(a == g for a, g in zip(fp32, gold)) - 1
    assert str(next(model.parameters()).dtype) == "torch.float32"  # autocast casts per op, the weights stay


def test_frozen_weights_cast_to_bf16_change_no_autocast_answer(tiny_run):
    """What `evaluate` does on a CPU with native bf16: the frozen weights cast once; every answer is the one
    autocast over fp32 weights gives, and a later call without bf16 still autocasts (it must)."""
    from korquad_tune.models import cast_frozen_to_bf16
    qa = load_qa(tiny_run)
    model, tok, names = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug"])
    prompts = alpaca([r["question"] for r in qa], tok)
    before = generate_from_prompts(model, tok, prompts, 8, 16, bf16=True)
    cast_frozen_to_bf16(model)
    assert generate_from_prompts(model, tok, prompts, 8, 16, bf16=True) == before
    assert generate_from_prompts(model, tok, prompts, 8, 16, bf16=False) == before
    with model.disable_adapter():
        generate_from_prompts(model, tok, prompts[:2], 8, 4)  # the untuned base runs on the same weights


def test_learned_decoding_answers_only_with_an_answer_the_adapter_was_trained_on(tiny_run):
    """`decoding: learned` keeps every beam inside the trie of the adapter's answers.json: an untuned model, which
    free writes no answer of them, then answers with one of them, whole; batched as one by one."""
    from korquad_tune.models import read_learned_answers
    qa = load_qa(tiny_run)
    learned = read_learned_answers(tiny_run / "adapters" / "no-aug")
    assert learned == sorted({r["answers"][0] for r in qa})  # what train wrote: every answer it taught, once
    model, tok, _ = load_model_with_adapters("tiny-random")
    prompts = alpaca([r["question"] for r in qa], tok)
    free = generate_from_prompts(model, tok, prompts, max_new_tokens=8)
    assert not set(free) & set(learned)
    kept = generate_from_prompts(model, tok, prompts, batch_size=4, max_new_tokens=64, answers=learned, num_beams=3)
    assert set(kept) <= set(learned)
    assert kept == [generate_from_prompts(model, tok, [p], 1, 64, answers=learned, num_beams=3)[0] for p in prompts]


def test_each_prompt_can_keep_to_its_own_answers(tiny_run):
    """`answers_per_prompt` (decoding: recall): every row answers with one of its own answers, batched as one by
    one; a row offered one answer gives it."""
    qa = load_qa(tiny_run)
    model, tok, _ = load_model_with_adapters("tiny-random")
    prompts = alpaca([r["question"] for r in qa], tok)
    offered = [[r["answers"][0], qa[i - 1]["answers"][0]] if i % 3 else [r["answers"][0]] for i, r in enumerate(qa)]
    kept = generate_from_prompts(model, tok, prompts, batch_size=4, max_new_tokens=64, answers_per_prompt=offered,
                                 num_beams=2)
    assert all(a in found for a, found in zip(kept, offered))
    assert all(a == found[0] for a, found in zip(kept, offered) if len(found) == 1)
    assert kept == [generate_from_prompts(model, tok, [p], 1, 64, answers_per_prompt=[found], num_beams=2)[0]
                    for p, found in zip(prompts, offered)]


def test_answers_scored_whole_are_what_a_plain_forward_pass_gives(tiny_run):
    """`decoding: recall` scores every offered answer: log P(answer, EOS | prompt), batched with the shared head
    cached and the output layer only where an answer token is predicted, equals what one plain forward pass of
    prompt + answer gives; the most probable is given, a prior moves the choice, and no answer offered gives ""."""
    import torch

    from korquad_tune.generate import answer_log_probs, most_probable_answers
    qa = load_qa(tiny_run)
    model, tok, _ = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug"])
    prompts = alpaca([r["question"] for r in qa], tok)
    offered = [[r["answers"][0], qa[i - 1]["answers"][0], "모르는 답"] for i, r in enumerate(qa)]
    scores = answer_log_probs(model, tok, prompts, offered, rows_per_batch=5, bf16=False)
    # two rows a forward: a prompt's three answers run in two batches against its cached keys/values
    split = answer_log_probs(model, tok, prompts, offered, rows_per_batch=2, bf16=False)
    assert all(abs(split[i][a] - scores[i][a]) < 1e-4 for i, found in enumerate(offered) for a in found)
    for prompt, found, got in zip(prompts, offered, scores):
        for answer in found:
            ids = tok(prompt).input_ids
            tail = tok(answer, add_special_tokens=False).input_ids + [tok.eos_token_id]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids + tail])).logits[0].float()
            log_p = torch.log_softmax(logits, -1)
            assert abs(got[answer] - float(sum(log_p[len(ids) - 1 + k, t] for k, t in enumerate(tail)))) < 1e-3
    best = most_probable_answers(model, tok, prompts, offered, bf16=False)
    assert best == [max(found, key=s.get) for found, s in zip(offered, scores)]
    assert sum(a == r["answers"][0] for a, r in zip(best, qa)) >= 0.8 * len(qa)  # it learnt them
    pushed = most_probable_answers(model, tok, prompts, offered, [{found[2]: 1e6} for found in offered], bf16=False)
    assert pushed == [found[2] for found in offered]
    assert most_probable_answers(model, tok, prompts[:2], [[], ["모르는 답"]]) == ["", "모르는 답"]


def test_learned_decoding_keeps_what_the_adapter_knows(tiny_run):
    qa = load_qa(tiny_run)
    model, tok, _ = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug"])
    from korquad_tune.models import read_learned_answers
    learned = read_learned_answers(tiny_run / "adapters" / "no-aug")
    answers = generate_from_prompts(model, tok, alpaca([r["question"] for r in qa], tok), max_new_tokens=64,
                                    answers=learned, num_beams=4)
    assert sum(a == r["answers"][0] for a, r in zip(answers, qa)) >= 0.8 * len(qa)


def test_answer_trie_holds_each_answer_as_training_tokenised_it_then_eos(tiny_run):
    from korquad_tune.generate import answer_trie
    _, tok, _ = load_model_with_adapters("tiny-random")
    trie = answer_trie(tok, ["1989년", "1989년 2월 15일", "임수경"])
    for answer in ("1989년", "1989년 2월 15일", "임수경"):
        node = trie
        for token in tok(answer, add_special_tokens=False).input_ids:
            node = node[token]
        assert tok.eos_token_id in node  # a whole answer may end here
    assert len(trie) == 2  # "1989년…" share their first tokens
