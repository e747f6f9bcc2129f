"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp, Ollama) with a resumable on-disk cache.

Used by the `openai` augment backend and the `openai` evaluation system. The official `openai` client does the
retrying (exponential backoff on 429, 5xx, timeouts and dropped connections, honouring Retry-After); this
module adds a concurrency limit and a JSONL cache appended after every finished request, so a run killed
halfway resumes without asking (or paying) again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from korquad_tune import KorquadTuneError

DEFAULT_API_MODEL = "gpt-4o-mini"  # the `openai` backends' and system's model unless --model/--api-model says


class ChatCache:
    """Append-only JSONL of {key, model, reply}; a torn last line (killed mid-write) is ignored."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.entries[rec["key"]] = rec
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, rec: dict) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.entries[rec["key"]] = rec


def make_client(base_url: str | None, timeout: float = 60.0, max_retries: int = 4):
    from openai import OpenAI
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if base_url is None:
            raise KorquadTuneError("OPENAI_API_KEY is not set; export it, or pass --base-url for a local "
                                   "OpenAI-compatible server")
        api_key = "not-needed"  # local servers usually ignore the key
    return OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def chat_many(prompts: dict[str, str], cache_path: Path, model: str, base_url: str | None = None,
              concurrency: int = 4, timeout: float = 60.0, max_retries: int = 4, temperature: float = 0.0,
              max_tokens: int = 512, progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """Send each prompt (keyed) once, in parallel; return {key: reply text}. Cached keys are not re-sent."""
    import openai

    cache = ChatCache(cache_path)
    todo = {k: p for k, p in prompts.items() if cache.get(k) is None or cache.get(k).get("model") != model}
    if progress:
        progress(len(prompts) - len(todo))
    if todo:
        client = make_client(base_url, timeout=timeout, max_retries=max_retries)

        def ask(key: str, prompt: str) -> None:
            resp = client.chat.completions.create(model=model, temperature=temperature, max_tokens=max_tokens,
                                                  messages=[{"role": "user", "content": prompt}])
            text = (resp.choices[0].message.content or "") if resp.choices else ""
            cache.put({"key": key, "model": model, "prompt": prompt, "reply": text})

        where = base_url or "api.openai.com"
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(ask, k, p): k for k, p in todo.items()}
            try:
                for fut in as_completed(futures):
                    fut.result()
                    if progress:
                        progress(1)
            except openai.APIConnectionError as e:
                pool.shutdown(cancel_futures=True)
                raise KorquadTuneError(f"cannot reach the OpenAI-compatible endpoint {where} ({e}); finished "
                                       f"requests are cached in {cache_path}, re-run to resume") from None
            except openai.APIStatusError as e:
                pool.shutdown(cancel_futures=True)
                raise KorquadTuneError(f"{where} answered HTTP {e.status_code} after retries for request "
                                       f"{futures[fut]!r}: {str(e)[:200]}; finished requests are cached in "
                                       f"{cache_path}") from None
            except (openai.APIError, ValueError, AttributeError, TypeError) as e:  # 200 with HTML, broken JSON
                pool.shutdown(cancel_futures=True)
                raise KorquadTuneError(f"{where} did not answer like an OpenAI-compatible chat endpoint "
                                       f"({type(e).__name__}: {str(e)[:150]}); check --base-url (it usually ends "
                                       f"in /v1); finished requests are cached in {cache_path}") from None
    return {k: cache.get(k)["reply"] for k in prompts}
