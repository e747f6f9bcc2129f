"""Serve stage: an OpenAI-compatible HTTP server and a local web page over a run's systems.

`korquad-tune serve RUN_OR_ADAPTER` answers `/v1/models`, `/v1/chat/completions` and `/v1/completions` (with
`stream: true` as server-sent events) with every system `Systems` knows for that folder: `base`, each adapter
(with the template it was trained with), `retrieval` and `rag` where the run has what they look up. The
question is the last user message; a message in the project's own closed-book instruction
(evaluate.OPENAI_QA_PROMPT) is unwrapped, so `evaluate --system openai --base-url http://.../v1 --api-model aug`
scores the `aug` adapter exactly as `evaluate` does. Decoding is greedy (temperature and top_p are ignored).

Requests that arrive together are answered together: a worker thread takes whatever is queued (up to
`batch_size`), groups it by system and answers each group in one batched call, one batch at a time (two at once
on 2 cores only slows both). The page at `/` asks every system side by side and shows the run's report.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import threading
import time
import uuid
from concurrent.futures import Future
from importlib.resources import files
from pathlib import Path

from fastapi import Request  # at module level: FastAPI reads the handlers' annotations from this module

from korquad_tune import KorquadTuneError
from korquad_tune.evaluate import OPENAI_QA_PROMPT, Systems
from korquad_tune.generate import BATCH_SIZE, DEFAULT_DECODING, MAX_NEW_TOKENS
from korquad_tune.models import ADAPTER_META
from korquad_tune.rundir import RunDir

MAX_QUESTION_CHARS = 2000  # a KorQuAD question is ~40 characters; anything this long is not a question
_PREFIX, _SUFFIX = OPENAI_QA_PROMPT.split("{question}")


class ApiError(Exception):
    """An error the client gets as OpenAI's error object."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def systems_for(target: str | Path, model: str | None = None, batch_size: int = BATCH_SIZE,
                max_new_tokens: int = MAX_NEW_TOKENS, decoding: str = DEFAULT_DECODING) -> Systems:
    """The systems of a run folder (every adapter, retrieval, rag) or of one adapter folder."""
    target = Path(target)
    if (target / ADAPTER_META).exists():
        return Systems([target], model, None, batch_size, max_new_tokens, decoding=decoding)
    run = RunDir(target)
    if not run.adapters.is_dir() and not run.qa.exists():
        raise KorquadTuneError(f"{target}: neither a run folder (no adapters/, no qa.jsonl) nor an adapter folder "
                               f"(no {ADAPTER_META}); pass what `korquad-tune run` or `train` wrote")
    adapters = sorted(p for p in run.adapters.iterdir() if (p / ADAPTER_META).exists()) if run.adapters.is_dir() \
        else []
    return Systems(adapters, model, run.root if run.qa.exists() else None, batch_size, max_new_tokens,
                   decoding=decoding)


class Batcher:
    """One worker thread answering queued questions in batches, grouped by system and answer budget."""

    def __init__(self, systems: Systems, batch_size: int = BATCH_SIZE, window_s: float = 0.02):
        self.systems, self.batch_size, self.window_s = systems, batch_size, window_s
        self.queue: queue.Queue = queue.Queue()
        self.batches = 0  # how many model calls served the requests so far (tests read it)
        threading.Thread(target=self._loop, daemon=True, name="korquad-tune-batcher").start()

    def submit(self, system: str, questions: list[str], max_new_tokens: int) -> Future:
        future: Future = Future()
        self.queue.put((system, questions, max_new_tokens, future))
        return future

    def _take(self) -> list[tuple]:
        """The first waiting request, then whatever else arrives within the window (up to a batch)."""
        items = [self.queue.get()]
        deadline = time.monotonic() + self.window_s
        while sum(len(i[1]) for i in items) < self.batch_size:
            try:
                items.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return items

    def _loop(self) -> None:
        while True:
            # A client that hung up has cancelled its future: skip its question, never answer into it.
            items = [i for i in self._take() if i[3].set_running_or_notify_cancel()]
            groups: dict[tuple[str, int], list[tuple]] = {}
            for item in items:
                groups.setdefault((item[0], item[2]), []).append(item)
            for (system, budget), group in groups.items():
                questions = [{"question": q} for item in group for q in item[1]]
                try:
                    answers = self.systems.answer(system, questions, max_new_tokens=budget)
                    self.batches += 1
                except Exception as e:  # noqa: BLE001 - the request gets the error, the worker lives on
                    for item in group:
                        item[3].set_exception(e)
                    continue
                start = 0
                for item in group:
                    item[3].set_result(answers[start:start + len(item[1])])
                    start += len(item[1])


# ------------------------------------------------------------------ the request side
def _text_of(content) -> str:
    """A message's text: a string, or OpenAI's list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise ApiError(400, "message content must be a string or a list of text parts", param="messages")


def question_from_messages(messages) -> str:
    """The question a chat asks: its last user message (the project's closed-book instruction unwrapped)."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ApiError(400, "'messages' has no user message to answer", param="messages")
    return unwrap_question(_text_of(users[-1].get("content")))


def unwrap_question(text: str) -> str:
    text = text.strip()
    if text.startswith(_PREFIX.strip()) and text.endswith(_SUFFIX.strip()):
        text = text[len(_PREFIX.strip()):len(text) - len(_SUFFIX.strip())].strip()
    return text


def check_question(text: str, param: str) -> str:
    if not text.strip():
        raise ApiError(400, f"'{param}' holds no question (empty text)", param=param)
    if len(text) > MAX_QUESTION_CHARS:
        raise ApiError(400, f"the question is {len(text)} characters; this server answers questions of at most "
                            f"{MAX_QUESTION_CHARS}", code="context_length_exceeded", param=param)
    return " ".join(text.split())


def _budget(body: dict) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return MAX_NEW_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 512:
        raise ApiError(400, "'max_tokens' must be an integer from 1 to 512", param="max_tokens")
    return value


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _pieces(answer: str) -> list[str]:
    """The answer cut into word-sized stream chunks ("a b" -> "a", " b")."""
    return re.findall(r"\s*\S+", answer) or [""]


# ------------------------------------------------------------------ the app
def create_app(systems: Systems, api_key: str | None = None, run_dir: Path | None = None,
               batch_size: int = BATCH_SIZE):
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="korquad-tune", docs_url=None, redoc_url=None)
    run_dir = run_dir if run_dir is not None else systems.run_dir  # whose report the page shows
    batcher = Batcher(systems, batch_size)
    app.state.batcher = batcher
    names = systems.names()
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def api_error(_, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(_, e: HTTPException):
        return JSONResponse(ApiError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def server_error(_, e: Exception):  # a failure inside the model still answers in OpenAI's shape
        return JSONResponse(ApiError(500, f"{type(e).__name__}: {e}", kind="server_error").body(), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, e: RequestValidationError):
        return JSONResponse(ApiError(400, str(e.errors()[:1])).body(), status_code=400)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/") and \
                request.headers.get("authorization", "") != f"Bearer {api_key}":
            e = ApiError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')", code="invalid_api_key",
                         kind="authentication_error")
            return JSONResponse(e.body(), status_code=401)
        return await call_next(request)

    async def body_of(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the request body is not valid JSON ({e})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        model = body.get("model")
        if model not in names:
            raise ApiError(404, f"the model {model!r} does not exist; this server has {', '.join(names)}",
                           code="model_not_found", param="model")
        return body

    async def answers(model: str, questions: list[str], budget: int) -> list[str]:
        try:
            return await asyncio.wrap_future(batcher.submit(model, questions, budget))
        except KorquadTuneError as e:
            raise ApiError(400, str(e)) from None

    def usage(prompts: list[str], outputs: list[str]) -> dict:
        count = (lambda t: len(systems.tokenizer(t).input_ids)) if systems.tokenizer else (lambda t: len(t.split()))
        p, c = sum(count(t) for t in prompts), sum(count(t) for t in outputs)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "korquad-tune"}
                                           for n in names]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await body_of(request)
        question = check_question(question_from_messages(body.get("messages")), "messages")
        budget = _budget(body)
        rid, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", body["model"]
        if body.get("stream"):
            head = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            future = asyncio.ensure_future(answers(model, [question], budget))

            async def events():
                yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                 "finish_reason": None}]})
                try:
                    answer = (await future)[0]
                except ApiError as e:
                    yield _sse(e.body())
                    return
                for piece in _pieces(answer):
                    yield _sse({**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        answer = (await answers(model, [question], budget))[0]
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": usage([question], [answer])}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await body_of(request)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(400, "'prompt' must be a string or a non-empty list of strings", param="prompt")
        questions = [check_question(unwrap_question(p), "prompt") for p in prompts]
        budget = _budget(body)
        rid, model = f"cmpl-{uuid.uuid4().hex[:24]}", body["model"]
        if body.get("stream"):
            future = asyncio.ensure_future(answers(model, questions, budget))

            async def events():
                try:
                    outs = await future
                except ApiError as e:
                    yield _sse(e.body())
                    return
                for i, out in enumerate(outs):
                    for piece in _pieces(out):
                        yield _sse({"id": rid, "object": "text_completion", "created": int(time.time()),
                                    "model": model, "choices": [{"index": i, "text": piece, "finish_reason": None}]})
                    yield _sse({"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                                "choices": [{"index": i, "text": "", "finish_reason": "stop"}]})
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        outs = await answers(model, questions, budget)
        return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [{"index": i, "text": o, "finish_reason": "stop", "logprobs": None}
                            for i, o in enumerate(outs)],
                "usage": usage(questions, outs)}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return files("korquad_tune").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/report.json")
    async def report():
        return report_data(run_dir)

    @app.get("/report.png")
    async def chart():
        if run_dir is None or not RunDir(run_dir).report_png.exists():
            raise ApiError(404, "this run has no report chart yet (run `korquad-tune report RUN_DIR`)")
        return FileResponse(RunDir(run_dir).report_png, media_type="image/png")

    return app


def report_data(run_dir: Path | None) -> dict:
    """Per question set (in report order): its title and, per system, the metrics and the questions missed."""
    from korquad_tune.report import SET_TITLES, _ordered, collect
    if run_dir is None or not RunDir(run_dir).eval_root.exists():
        return {"sets": [], "has_chart": False}
    sets = [{"name": name, "title": SET_TITLES.get(name, name),
             "systems": [{"name": system, **{k: results[system][0][k] for k in ("exact_match", "f1", "n")},
                          "missed": [{k: r[k] for k in ("question", "prediction", "gold")}
                                     for r in results[system][1] if not r["em"]]}
                         for system in _ordered(results)]}
            for name, results in collect(run_dir).items()]
    return {"sets": sets, "has_chart": RunDir(run_dir).report_png.exists()}


def serve(target: str | Path, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          model: str | None = None, batch_size: int = BATCH_SIZE, console=None, decoding: str = DEFAULT_DECODING) -> None:
    """Load the systems (the model once, every adapter on it), then serve until interrupted."""
    import uvicorn
    systems = systems_for(target, model, batch_size, decoding=decoding)
    systems.load()  # now, not on the first request
    app = create_app(systems, api_key, batch_size=batch_size)
    if console is not None:
        console.print(f"serving {', '.join(systems.names())} on http://{host}:{port}/ (OpenAI API at /v1)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


class BackgroundServer:
    """uvicorn in a thread on 127.0.0.1 and a free port: tests, the screenshot and the load benchmark use it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise KorquadTuneError(f"the server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def screenshot(target: str | Path, out: str | Path, question: str, model: str | None = None,
               chromium: str | None = None) -> Path:
    """Start the server, open its page in headless Chromium, ask `question`, wait for every answer and save
    a full-page PNG at `out` (temp file, then rename)."""
    import shutil

    from playwright.sync_api import sync_playwright

    from korquad_tune.fileio import ensure_dir
    chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise KorquadTuneError("no Chromium found; install it (Debian: apt-get install chromium fonts-nanum)")
    systems = systems_for(target, model)
    out = Path(out)
    ensure_dir(out.parent, "screenshot folder")
    with BackgroundServer(create_app(systems)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        ask_on_page(page, server.url, question)
        tmp = out.with_name(out.name + ".tmp.png")
        page.screenshot(path=str(tmp), full_page=True)
        browser.close()
    tmp.replace(out)
    return out


def ask_on_page(page, url: str, question: str, timeout_ms: int = 300_000) -> dict[str, str]:
    """What a person does: open the page, type the question, press Ask, wait until every system answered."""
    page.goto(url)
    page.wait_for_selector("#systems tr[data-model]", timeout=timeout_ms)
    page.fill("#question", question)
    page.click("#ask")
    page.wait_for_function("document.querySelectorAll('#systems td.answer.pending').length === 0 && "
                           "document.querySelectorAll('#systems td.answer.done').length > 0", timeout=timeout_ms)
    return {row.get_attribute("data-model"): row.query_selector("td.answer").inner_text()
            for row in page.query_selector_all("#systems tr[data-model]")}
