"""`korquad-tune serve`: the official openai client against the server, bad requests, batching, and the page in
a real headless Chromium (Debian's package; the Makefile installs it)."""

import json
import shutil
import threading

import httpx2 as httpx  # the HTTP client the openai package is built on
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from korquad_tune import serve as serving
from korquad_tune.cli import app
from korquad_tune.data import load_qa
from korquad_tune.evaluate import evaluate_systems, write_system_result
from korquad_tune.fileio import write_jsonl
from korquad_tune.rundir import RunDir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tiny_run):
    systems = serving.systems_for(tiny_run)
    with serving.BackgroundServer(serving.create_app(systems, run_dir=tiny_run)) as s:
        s.systems = systems
        yield s


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_models_are_base_every_adapter_and_retrieval(client):
    assert [m.id for m in client.models.list().data] == ["base", "no-aug", "retrieval"]


def test_the_official_client_gets_what_evaluate_answers(client, server, tiny_run):
    questions = [r["question"] for r in load_qa(tiny_run)[:3]]
    expected = server.systems.answer("no-aug", [{"question": q} for q in questions])
    for q, want in zip(questions, expected):
        reply = client.chat.completions.create(model="no-aug", messages=[{"role": "user", "content": q}])
        assert reply.choices[0].message.content == want and reply.choices[0].finish_reason == "stop"
        assert reply.usage.prompt_tokens > 0
        stream = client.chat.completions.create(model="no-aug", messages=[{"role": "user", "content": q}],
                                                stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == want
    done = client.completions.create(model="no-aug", prompt=questions)
    assert [c.text for c in sorted(done.choices, key=lambda c: c.index)] == expected
    retrieved = client.chat.completions.create(model="retrieval", messages=[{"role": "user", "content": questions[0]}])
    assert retrieved.choices[0].message.content == load_qa(tiny_run)[0]["answers"][0]


def test_the_openai_system_pointed_at_the_server_reproduces_evaluate(server, tiny_run, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    questions = tmp_path / "q.jsonl"
    write_jsonl(questions, [{k: r[k] for k in ("id", "question", "answers")} for r in load_qa(tiny_run)[:6]])
    (tmp_path / "direct").mkdir()
    (tmp_path / "served").mkdir()
    direct = evaluate_systems(questions, tmp_path / "direct", adapters=[RunDir(tiny_run).adapter("no-aug")],
                              systems=["finetuned"])["no-aug"]
    served = evaluate_systems(questions, tmp_path / "served", systems=["openai"], base_url=server.url + "/v1",
                              api_model="no-aug")["openai"]
    assert (served["exact_match"], served["f1"]) == (direct["exact_match"], direct["f1"])
    rows = lambda p: [json.loads(line)["prediction"] for line in p.read_text().splitlines()]  # noqa: E731
    assert rows(tmp_path / "served" / "openai" / "predictions.jsonl") == \
        rows(tmp_path / "direct" / "no-aug" / "predictions.jsonl")


@pytest.mark.parametrize("body, status, code, words", [
    ({"model": "gpt-9", "messages": [{"role": "user", "content": "질문"}]}, 404, "model_not_found", "gpt-9"),
    ({"model": "no-aug", "messages": []}, 400, None, "non-empty list"),
    ({"model": "no-aug", "messages": [{"role": "system", "content": "hi"}]}, 400, None, "no user message"),
    ({"model": "no-aug", "messages": [{"role": "user", "content": "   "}]}, 400, None, "empty"),
    ({"model": "no-aug", "messages": [{"role": "user", "content": "가" * 20_000}]}, 400, "context_length_exceeded",
     "20000 characters"),
    ({"model": "no-aug", "messages": [{"role": "user", "content": "질문"}], "max_tokens": 0}, 400, None, "max_tokens"),
    ({"model": "no-aug", "prompt": []}, 400, None, "prompt"),
])
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, body, status, code, words):
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    res = httpx.post(server.url + path, json=body, timeout=60)
    assert res.status_code == status
    error = res.json()["error"]
    assert words in error["message"] and error["code"] == code and error["type"] == "invalid_request_error"
    assert httpx.get(server.url + "/v1/models").status_code == 200


def test_malformed_json_and_a_client_that_leaves_mid_stream(server):
    res = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": "no-aug", "messages": [',
                     headers={"Content-Type": "application/json"})
    assert res.status_code == 400 and "not valid JSON" in res.json()["error"]["message"]
    body = {"model": "no-aug", "stream": True, "messages": [{"role": "user", "content": "임종석은 누구인가?"}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        next(res.iter_lines())  # the first event, then hang up
    again = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                       json={"model": "no-aug", "messages": [{"role": "user", "content": "임종석은 누구인가?"}]})
    assert again.status_code == 200 and again.json()["choices"][0]["message"]["role"] == "assistant"


def test_requests_that_arrive_together_share_a_batch(server, tiny_run):
    questions = [r["question"] for r in load_qa(tiny_run)[:8]]
    batcher = server.server.config.app.state.batcher
    before = batcher.batches
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        res = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                         json={"model": "no-aug", "messages": [{"role": "user", "content": questions[i]}]})
        answers[i] = res.json()["choices"][0]["message"]["content"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [answers[i] for i in range(len(questions))] == \
        server.systems.answer("no-aug", [{"question": q} for q in questions])  # batching changes no answer
    assert batcher.batches - before < len(questions)


def test_a_failure_inside_the_model_is_a_server_error_object_and_serving_goes_on(tiny_run, monkeypatch):
    systems = serving.systems_for(tiny_run)
    with serving.BackgroundServer(serving.create_app(systems)) as s:
        monkeypatch.setattr(systems, "answer", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory")))
        res = httpx.post(s.url + "/v1/chat/completions", timeout=60,
                         json={"model": "retrieval", "messages": [{"role": "user", "content": "질문"}]})
        assert res.status_code == 500 and res.json()["error"] == {
            "message": "RuntimeError: out of memory", "type": "server_error", "param": None, "code": None}
        monkeypatch.undo()
        ok = httpx.post(s.url + "/v1/chat/completions", timeout=60,
                        json={"model": "retrieval", "messages": [{"role": "user", "content": "질문"}]})
        assert ok.status_code == 200


def test_api_key_is_enforced_when_given(tiny_run):
    systems = serving.systems_for(tiny_run)
    with serving.BackgroundServer(serving.create_app(systems, api_key="s3cret")) as s:
        res = httpx.get(s.url + "/v1/models")
        assert res.status_code == 401 and res.json()["error"]["code"] == "invalid_api_key"
        ok = OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0).models.list()
        assert "no-aug" in [m.id for m in ok.data]
        assert httpx.get(s.url + "/").status_code == 200  # the page itself is public; it asks for the key


def test_serve_refuses_what_is_not_a_run_and_warns_on_open_hosts(tmp_path, monkeypatch, tiny_run):
    res = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert res.exit_code != 0 and "neither a run folder" in res.output
    monkeypatch.setattr(serving, "serve", lambda *a, **k: None)
    res = CliRunner().invoke(app, ["serve", str(tiny_run), "--host", "0.0.0.0"])
    assert res.exit_code == 0 and "warning" in res.output and "no --api-key" in res.output


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it)")
def test_the_page_in_a_real_browser(tiny_run, tmp_path):
    from playwright.sync_api import sync_playwright

    from korquad_tune.report import write_report
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    qa = load_qa(run)
    systems = serving.systems_for(run)
    for name in ("retrieval", "no-aug"):  # a small report to browse
        write_system_result(RunDir(run).evaluation(name, "trained"), name, qa, systems.answer(name, qa))
    write_report(run)
    with serving.BackgroundServer(serving.create_app(systems, run_dir=run)) as s, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        answers = serving.ask_on_page(page, s.url, qa[0]["question"])
        assert set(answers) == {"base", "no-aug", "retrieval"}
        assert answers["retrieval"] == qa[0]["answers"][0]
        assert answers["no-aug"] == systems.answer("no-aug", [qa[0]])[0]
        assert page.input_value("#question") == qa[0]["question"]  # Korean typed and kept as typed
        report = page.inner_text("#report")
        assert "trained questions" in report and "no-aug" in report and "missed" in report
        assert page.evaluate("document.querySelector('#report img').naturalWidth") > 0  # the chart loaded
        browser.close()
    shot = tmp_path / "page.png"
    res = CliRunner().invoke(app, ["serve", str(run), "--screenshot", str(shot), "--question", qa[1]["question"]])
    assert res.exit_code == 0, res.output
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
