"""A minimal OpenAI-compatible chat server on 127.0.0.1 with scripted faults (real HTTP, for tests)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeOpenAI:
    """A minimal OpenAI-compatible chat server with scripted faults."""

    def __init__(self, script=(), delay=0.0, replies=None):
        self.script = list(script)
        self.replies = replies or {}  # prompt substring -> reply text (order-independent)
        self.delay = delay
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                question = body["messages"][0]["content"].split("\n\n")[0]
                outer.requests.append(question)
                action = outer.script.pop(0) if outer.script else "ok"
                if action == "timeout":
                    time.sleep(1.5)
                if action in ("429", "500"):
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("retry-after-ms", "10")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "try again"}}')
                    return
                time.sleep(outer.delay)
                prompt = body["messages"][0]["content"]
                match = [reply for key, reply in outer.replies.items() if key in prompt]
                if match:
                    content = match[0]
                elif action == "garbage":
                    content = "!!!!"
                elif action.startswith("say:"):
                    content = action[4:]
                else:
                    content = "\n".join(f"{i}. {question[:-1]} {ending}" for i, ending in
                                        enumerate(["알려줘.", "궁금합니다?", "무엇일까?", "말해 줄래?"], 1))
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}]}
                data = json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def fake_openai():
    servers = []

    def make(**kw):
        servers.append(FakeOpenAI(**kw))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


