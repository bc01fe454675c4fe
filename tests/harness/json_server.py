"""A JSON-over-HTTP server on 127.0.0.1 for the outside services a test cannot run (an LLM's
chat-completions API, a LibreTranslate server): POSTs are answered by `answer(path, json) ->
(status, payload)` and recorded in `requests`. A real server on loopback, not a monkeypatch."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = Callable[[str, object], tuple[int, object]]


class JsonPostServer:
    def __init__(self, answer: Answer) -> None:
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                owner.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                status, payload = answer(self.path, body)
                data = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def chat_completion(content: object, model: str = "m") -> dict:
    """An OpenAI chat completion whose message is `content` (anything but a str is sent as JSON text)."""
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}  # fmt: skip
