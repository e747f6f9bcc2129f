"""Training: the tiny model learns, a killed run resumes to the same adapter, DDP on 2 CPU processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from korquad_tune.cli import app
from korquad_tune.config import load_train_config
from korquad_tune.data import prepare, training_pairs
from korquad_tune.models import ADAPTER_META
from korquad_tune.prompts import get_template, reader_prompt
from korquad_tune.train import shared_prefix_length, tokenize_example

runner = CliRunner()
CLI = [sys.executable, "-m", "korquad_tune.cli"]


def alpaca(questions, tok):
    """The questions in the Alpaca prompt the adapters were trained with."""
    return [get_template("alpaca").prompt(q, tok) for q in questions]


def test_training_pairs_add_each_paraphrase_with_the_same_answer():
    qa = [{"question": "q1", "answers": ["a1", "a1b"]}, {"question": "q2", "answers": ["a2"]}]
    pairs = training_pairs(qa, {"q1": ["p1", "p2"]})
    assert pairs == [("q1", "a1"), ("p1", "a1"), ("p2", "a1"), ("q2", "a2")]
    assert training_pairs(qa, {"q1": ["p1", "p2"]}, paraphrases_per_question=1)[:2] == [("q1", "a1"), ("p1", "a1")]


def test_prompt_and_answer_are_tokenised_separately():
    from korquad_tune.models import load_tokenizer, resolve_model
    tok = load_tokenizer(resolve_model("tiny-random"))
    t = get_template("alpaca")
    ex = tokenize_example(tok, t.prompt("헤이그의 부인은?", tok), "퍼트리샤 앤토이넷 폭스", 256)
    n_prompt = ex["completion_mask"].index(1)
    assert ex["input_ids"][:n_prompt] == tok(t.prompt("헤이그의 부인은?")).input_ids  # what inference sees
    assert ex["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["input_ids"][n_prompt:-1]) == "퍼트리샤 앤토이넷 폭스"


def test_adapter_folder_describes_itself(tiny_run):
    folder = tiny_run / "adapters" / "no-aug"
    meta = json.loads((folder / ADAPTER_META).read_text())
    assert meta["model"] == "tiny-random" and meta["template"] == "alpaca" and meta["augment"] is False
    assert (folder / "adapter_config.json").exists() and (folder / "train_log.jsonl").exists()
    assert (folder / "train_config.yaml").exists() and (folder / "tokenizer_config.json").exists()
    losses = [json.loads(line)["loss"] for line in (folder / "train_log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert losses[-1] < losses[0] / 5  # it learnt


def _adapter_tensors(folder: Path) -> dict:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    for name in ("a", "b"):
        prepare(tmp_path / name, articles=3, holdout=False)
    args = ["--preset", "tiny-test", "--no-augment", "--epochs", "6", "--save-steps", "10"]
    # uninterrupted (--resume with no checkpoint to resume from starts afresh, and says so)
    subprocess.run(CLI + ["train", str(tmp_path / "a")] + args + ["--resume"], check=True, capture_output=True)
    assert json.loads((tmp_path / "a" / "adapters" / "no-aug" / ADAPTER_META).read_text())["resumed"] is False
    # killed after its second checkpoint, then resumed
    proc = subprocess.Popen(CLI + ["train", str(tmp_path / "b")] + args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "b" / "checkpoints" / "no-aug" / "checkpoint-20" / "trainer_state.json"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (tmp_path / "b" / "adapters" / "no-aug").exists()  # nothing half-written
    res = runner.invoke(app, ["train", str(tmp_path / "b")] + args + ["--resume"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "b" / "adapters" / "no-aug" / ADAPTER_META).read_text())
    assert meta["resumed"] is True
    a = _adapter_tensors(tmp_path / "a" / "adapters" / "no-aug")
    b = _adapter_tensors(tmp_path / "b" / "adapters" / "no-aug")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_two_process_ddp_on_cpu(tmp_path):
    """A real 2-process data-parallel run (torch.distributed, gloo on CPU), as `accelerate launch` starts one."""
    prepare(tmp_path, articles=1, holdout=False)  # the 11 questions of article 1
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KORQUAD_TUNE_RECORD_BATCHES": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "-m", "korquad_tune.cli", "train", str(tmp_path), "--preset", "tiny-test",
                          "--no-augment", "--epochs", "4"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpts = tmp_path / "checkpoints" / "no-aug"
    seen0 = json.loads((ckpts / "seen_batches_rank0.json").read_text())
    seen1 = json.loads((ckpts / "seen_batches_rank1.json").read_text())
    assert seen0 and len(seen0) == len(seen1)
    assert set(seen0).isdisjoint(seen1)  # the two ranks trained on different batches
    from korquad_tune.models import load_model_with_adapters
    model, tok, names = load_model_with_adapters("tiny-random", [tmp_path / "adapters" / "no-aug"])
    assert names == ["no-aug"]


@pytest.mark.parametrize("argv, message", [
    (["train", "{run}"], "qa.jsonl: not found"),
    (["train", "{run}", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["train", "{prepared}", "--preset", "seed-llama2-7b-qlora", "--no-augment"], "needs a CUDA GPU"),
    (["train", "{prepared}", "--preset", "tiny-test"], "augmentation.json: not found"),
    (["train", "{prepared}", "--set", "no_such_field=1"], "no_such_field"),
])
def test_bad_training_requests_are_one_line_errors(tmp_path, argv, message):
    prepared = tmp_path / "prepared"
    prepare(prepared, articles=1, holdout=False)
    argv = [a.format(run=tmp_path / "empty", prepared=prepared) for a in argv]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", "") and "Traceback" not in res.output


def test_presets_load():
    seed = load_train_config("seed-llama2-7b-qlora")
    assert (seed.quantization, seed.learning_rate, seed.batch_size, seed.epochs, seed.max_length) == \
        ("int4", 2e-4, 8, 40, 256)
    assert load_train_config("cpu-default", {"lora_r": 8}).lora_r == 8


def test_export_merged_model_loads_with_plain_transformers(tiny_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from korquad_tune.data import load_qa
    from korquad_tune.generate import generate_from_prompts
    res = runner.invoke(app, ["export", str(tiny_run), "--adapter", "no-aug", "--merged", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    qa = load_qa(tiny_run)[:4]
    answers = generate_from_prompts(model, tok, alpaca([r["question"] for r in qa], tok), max_new_tokens=16)
    assert sum(a == r["answers"][0] for a, r in zip(answers, qa)) >= 3
    res = runner.invoke(app, ["ask", qa[0]["question"], "--model", str(tmp_path / "m"), "--decoding", "free"])
    assert res.exit_code == 0 and res.output.strip() == answers[0]
    learned = json.loads((tmp_path / "m" / "answers.json").read_text(encoding="utf-8"))  # kept to them, as before
    assert json.loads((tmp_path / "m" / "questions.json").read_text(encoding="utf-8"))["questions"] == \
        json.loads((tiny_run / "adapters" / "no-aug" / "questions.json").read_text(encoding="utf-8"))["questions"]
    res = runner.invoke(app, ["ask", qa[0]["question"], "--model", str(tmp_path / "m")])
    assert res.exit_code == 0 and res.output.strip() in learned
    res = runner.invoke(app, ["ask", qa[0]["question"], "--adapter", str(tmp_path / "m")])
    assert res.exit_code == 2 and "pass it as --model" in res.output.replace("\n", "")


def first_batch_with_live_lora(trainer):
    """The trainer's first batch, its model in training mode with LoRA's B matrices made non-zero (they start at
    zero, where the adapter would not count in a comparison of gradients)."""
    for n, p in trainer.model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)
    trainer.model.train()
    return next(iter(trainer.get_train_dataloader()))


@pytest.mark.parametrize("reader", [False, True])
def test_shared_prefix_gives_the_same_loss_and_lora_gradients(reader):
    """The prompt head shared by a batch runs once; loss and every LoRA gradient match the plain forward."""
    from trl import SFTConfig

    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import load_base_model, load_tokenizer, resolve_model
    from korquad_tune.train import _lora_config, build_dataset, make_trainer_class, shared_prefix_length
    torch.manual_seed(0)
    cfg = load_train_config("tiny-test", {"lora_dropout": 0.0})
    resolved = resolve_model("tiny-random")
    tok = load_tokenizer(resolved)
    records, _ = parse_squad(shipped_dev_path(), articles=1)
    if reader:
        ds = build_dataset(tok, get_template("alpaca"), [], 1024,
                           reader_rows=[(r["context"], r["question"], r["answers"][0]) for r in records[:4]])
    else:
        ds = build_dataset(tok, get_template("alpaca"), [(r["question"], r["answers"][0]) for r in records[:6]], 256)
    args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=6, use_cpu=True, report_to="none",
                     gradient_checkpointing=False,
                     completion_only_loss=True, max_length=1024, disable_tqdm=True)
    trainer = make_trainer_class()(model=load_base_model(resolved, device="cpu"), args=args, train_dataset=ds,
                                   processing_class=tok, peft_config=_lora_config(cfg))
    batch = first_batch_with_live_lora(trainer)
    assert shared_prefix_length(batch["input_ids"], batch["labels"]) >= 15
    got = {}
    for shared in (False, True):
        trainer.shared_prefix = shared
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        got[shared] = loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                                    if p.grad is not None and "lora" in n}
    assert got[True][0] == pytest.approx(got[False][0], rel=1e-5)
    assert got[True][1].keys() == got[False][1].keys() and len(got[True][1]) > 4
    for n, g in got[False][1].items():
        assert torch.allclose(got[True][1][n], g, atol=1e-5, rtol=1e-4), n


def test_gradient_checkpointing_turns_the_shared_prefix_off_and_keeps_the_loss():
    """Checkpointed layers drop a passed cache (the CUDA default; a lent H200 crashed on it): the shared prompt head
    is then not used, and the loss is the plain forward's."""
    from trl import SFTConfig

    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import load_base_model, load_tokenizer, resolve_model
    from korquad_tune.train import _lora_config, build_dataset, make_trainer_class
    resolved = resolve_model("tiny-random")
    tok = load_tokenizer(resolved)
    records, _ = parse_squad(shipped_dev_path(), articles=1)
    ds = build_dataset(tok, get_template("alpaca"), [(r["question"], r["answers"][0]) for r in records[:6]], 256)
    losses = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=6, use_cpu=True, report_to="none",
                         completion_only_loss=True, max_length=256, disable_tqdm=True,
                         gradient_checkpointing=checkpointing)
        trainer = make_trainer_class()(model=load_base_model(resolved, device="cpu"), args=args, train_dataset=ds,
                                       processing_class=tok, peft_config=_lora_config(load_train_config("tiny-test",
                                                                                       {"lora_dropout": 0.0})))
        assert trainer.shared_prefix is not checkpointing
        if checkpointing:
            trainer.model.gradient_checkpointing_enable()
        batch = first_batch_with_live_lora(trainer)
        losses.append(trainer.compute_loss(trainer.model, dict(batch)).item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_shared_prefix_length_stops_before_any_loss():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 9, 9]])
    labels = torch.full_like(ids, -100)
    assert shared_prefix_length(ids, labels) == 5
    labels[:, 4] = 7  # token 4 carries loss: its logit comes from position 3
    assert shared_prefix_length(ids, labels) == 0  # only 3 shared tokens left: not worth a second forward
    text_rows = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    assert shared_prefix_length(text_rows, text_rows) == 0  # plain text: loss from the first token on


def test_frozen_weights_cast_to_bf16_once_give_the_same_autocast_loss_and_gradients():
    """Under CPU bf16 autocast the frozen weights are cast once instead of at every use: same loss, same LoRA
    gradients, and the tied input embeddings stay fp32."""
    from trl import SFTConfig

    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import cast_frozen_to_bf16, load_base_model, load_tokenizer, resolve_model
    from korquad_tune.train import _lora_config, build_dataset, make_trainer_class
    torch.manual_seed(0)
    resolved = resolve_model("tiny-random")
    tok = load_tokenizer(resolved)
    records, _ = parse_squad(shipped_dev_path(), articles=1)
    ds = build_dataset(tok, get_template("alpaca"), [(r["question"], r["answers"][0]) for r in records[:6]], 256)
    args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=6, use_cpu=True, report_to="none",
                     gradient_checkpointing=False,
                     completion_only_loss=True, max_length=256, disable_tqdm=True)
    trainer = make_trainer_class()(model=load_base_model(resolved, device="cpu"), args=args, train_dataset=ds,
                                   processing_class=tok,
                                   peft_config=_lora_config(load_train_config("tiny-test", {"lora_dropout": 0.0,
                                                                                    "modules_to_save": []})))
    batch = first_batch_with_live_lora(trainer)
    trainer.cpu_autocast = True
    got = []
    for cast in (False, True):
        if cast:
            assert cast_frozen_to_bf16(trainer.model) > 4
        trainer.model.zero_grad()
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        got.append((loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}))
    base = trainer.model.get_base_model()
    assert base.get_input_embeddings().weight.dtype == torch.float32
    assert base.get_output_embeddings().weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters() if p.requires_grad)
    assert got[1][0] == pytest.approx(got[0][0], rel=1e-6)
    assert got[1][1].keys() == got[0][1].keys() and len(got[0][1]) > 4
    for n, g in got[0][1].items():
        assert torch.allclose(got[1][1][n], g, atol=1e-6, rtol=1e-5), n


def test_reworded_passes_ask_each_material_question_another_way_each_pass():
    from korquad_tune.train import reworded_passes
    material = [("임종석은 언제 여의도 농민 폭력 시위를 주도한 혐의로 지명수배됐는가?", "1989년 2월 15일"),
                ("임종석이 조사를 받은 곳은?", "청량리경찰서")]
    passes = reworded_passes(material, 3)
    assert len(passes) == 6 and passes[:2] == material  # pass 1: the questions as made
    assert [a for _, a in passes] == [a for _, a in material] * 3
    for k in (1, 2):
        assert all(passes[k * 2 + i][0] != q for i, (q, _) in enumerate(material))  # each pass its own wording
    assert passes[2][0] != passes[4][0]


def test_reader_rows_are_batched_by_paragraph_so_the_paragraph_runs_once_per_batch():
    """Each batch holds questions of one paragraph (at most batch_size), every row comes once per epoch, the order
    depends only on (seed, epoch), and the head the batch shares reaches past the paragraph."""
    from trl import SFTConfig

    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import load_base_model, load_tokenizer, resolve_model
    from korquad_tune.train import GroupedBatchSampler, build_dataset, make_trainer_class
    resolved = resolve_model("tiny-random")
    tok = load_tokenizer(resolved)
    records, _ = parse_squad(shipped_dev_path(), articles=2)
    rows = [(r["context"], r["question"], r["answers"][0]) for r in records]
    groups = [c for c, _, _ in rows]
    assert max(groups.count(c) for c in groups) > 3 and len(set(groups)) > 2
    ds = build_dataset(tok, get_template("alpaca"), [], 1024, reader_rows=rows)
    args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=3, use_cpu=True, report_to="none",
                     gradient_checkpointing=False,
                     completion_only_loss=True, max_length=1024, disable_tqdm=True, seed=5)
    trainer = make_trainer_class()(model=load_base_model(resolved, device="cpu"), args=args, train_dataset=ds,
                                   processing_class=tok, batch_groups=groups)
    loader = trainer.get_train_dataloader()
    shortest_paragraph = min(len(tok(reader_prompt(c, "")).input_ids) for c in groups) - 8
    seen = []
    for batch in loader:
        assert batch["input_ids"].shape[0] <= 3
        if batch["input_ids"].shape[0] > 1:
            assert shared_prefix_length(batch["input_ids"], batch["labels"]) >= shortest_paragraph > 100
        seen.append(batch["input_ids"].shape[0])
    assert sum(seen) == len(rows) and len(seen) == len(loader)

    sampler = GroupedBatchSampler(groups, 3, seed=5)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(len(rows)))
    assert all(len({groups[i] for i in b}) == 1 for b in epoch0)
    assert list(GroupedBatchSampler(groups, 3, seed=5)) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) != epoch0


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_fused_cross_entropy_matches_the_materialised_logits(softcap):
    """Output layer + cross-entropy a few rows at a time, gradient made in the forward: the loss and the gradients
    of the hidden states, the weight and the bias are those of F.cross_entropy over the whole logits."""
    import torch.nn.functional as F

    from korquad_tune.loss_head import fused_cross_entropy
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64)
    weight, bias = torch.randn(50, 16, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    targets = torch.randint(0, 50, (37,))
    got = []
    for fused in (False, True):
        h, w, b = (x.clone().requires_grad_(True) for x in (hidden, weight, bias))
        if fused:
            loss = fused_cross_entropy(h, w, b, targets, softcap, rows=8)
        else:
            logits = F.linear(h, w, b)
            logits = torch.tanh(logits / softcap) * softcap if softcap else logits
            loss = F.cross_entropy(logits, targets)
        (3 * loss).backward()  # a scaled loss, as gradient accumulation makes it
        got.append((loss.item(), h.grad, w.grad, b.grad))
    assert got[1][0] == pytest.approx(got[0][0], rel=1e-12)
    for a, b in zip(got[0][1:], got[1][1:]):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("autocast", [False, True])
def test_fused_head_gives_the_loss_and_gradients_of_the_logits_head(autocast):
    """`loss_head: fused` against `positions` on the tiny model in the trainer: same loss, same gradients of every
    trained weight (LoRA, and the output layer the tiny preset trains whole), in fp32 and under CPU bf16 autocast."""
    from trl import SFTConfig

    from korquad_tune.data import parse_squad, shipped_dev_path
    from korquad_tune.models import load_base_model, load_tokenizer, resolve_model
    from korquad_tune.train import _lora_config, build_dataset, make_trainer_class
    resolved = resolve_model("tiny-random")
    tok = load_tokenizer(resolved)
    records, _ = parse_squad(shipped_dev_path(), articles=1)
    ds = build_dataset(tok, get_template("alpaca"), [(r["question"], r["answers"][0]) for r in records[:5]], 256,
                       texts=[records[0]["context"][:300]])
    args = SFTConfig(output_dir="/tmp/unused", per_device_train_batch_size=6, use_cpu=True, report_to="none",
                     gradient_checkpointing=False,
                     completion_only_loss=True, max_length=256, disable_tqdm=True)
    got = []
    for fused in (False, True):
        torch.manual_seed(0)
        trainer = make_trainer_class()(model=load_base_model(resolved, device="cpu"), args=args, train_dataset=ds,
                                       processing_class=tok, fused_head=fused,
                                       peft_config=_lora_config(load_train_config("tiny-test", {})))
        assert trainer._patched.fused is fused
        batch = first_batch_with_live_lora(trainer)
        trainer.cpu_autocast = autocast
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        got.append((loss.item(), grads, int((batch["labels"] != -100).sum())))
    assert got[0][2] > 100  # the text row carries loss at every token
    assert got[1][0] == pytest.approx(got[0][0], rel=1e-5)
    assert got[1][1].keys() == got[0][1].keys() and any("lm_head" in n for n in got[0][1])
    for n, g in got[0][1].items():
        tol = 2e-2 if autocast else 1e-5  # bf16: one rounding of the softmax's gradient may land either side
        assert torch.allclose(got[1][1][n], g, atol=tol * g.abs().max().item(), rtol=tol), n


def test_bits_dropout_drops_p_of_the_elements_and_keeps_the_mean():
    """LoRA's CPU dropout: a Bernoulli mask with p to 1/32768, kept elements scaled so the mean stays; the same
    seed gives the same mask; its gradient is the mask times the scale; identity in eval mode."""
    from korquad_tune.lora_cpu import BitsDropout
    drop = BitsDropout(0.05)
    x = torch.ones(1000, 1003, requires_grad=True)  # an element count not divisible by 4
    torch.manual_seed(3)
    y = drop(x)
    assert (y == 0).float().mean().item() == pytest.approx(0.05, abs=0.002)
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)
    assert set(torch.unique(y).tolist()) == {0.0, torch.tensor(drop.scale).item()}
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)
    assert not torch.equal(drop(x), y)  # the generator moved on
    drop.eval()
    assert drop(x) is x


def test_bits_dropout_lets_lora_inputs_stay_bf16_under_autocast_exactly():
    """With BitsDropout, PEFT's cast of a bf16 input to the adapter's fp32 (and autocast's cast back) changes no
    number: the loss and every LoRA gradient are bitwise those with the cast, on the tiny model under bf16 autocast."""
    from peft import get_peft_model

    from korquad_tune.lora_cpu import BitsDropout, use_bits_dropout
    from korquad_tune.models import cast_frozen_to_bf16, load_base_model, resolve_model
    from korquad_tune.train import _lora_config
    torch.manual_seed(0)
    model = get_peft_model(load_base_model(resolve_model("tiny-random"), device="cpu"),
                           _lora_config(load_train_config("tiny-test", {"lora_dropout": 0.1})))
    cast_frozen_to_bf16(model)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)
    assert use_bits_dropout(model, keep_input_dtype=False) > 0
    model.train()
    ids = torch.randint(0, 100, (3, 17))
    bf16_inputs = []
    hooks = [m.register_forward_pre_hook(lambda m, args: bf16_inputs.append(args[0].dtype == torch.bfloat16))
             for m in model.modules() if isinstance(m, BitsDropout)]
    got = []
    for keep in (False, True):
        if keep:
            use_bits_dropout(model, keep_input_dtype=True)
        model.zero_grad()
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        got.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    for h in hooks:
        h.remove()
    assert any(bf16_inputs)  # some LoRA layers did get bf16 inputs (attention and MLP outputs)
    assert got[0][0] == got[1][0]
    assert all(torch.equal(g, got[1][1][n]) for n, g in got[0][1].items())
