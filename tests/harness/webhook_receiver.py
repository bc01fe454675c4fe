"""A webhook receiver on 127.0.0.1: a threaded http.server that records every POST and
answers from a script (a status, an optional sleep first, optional headers), then 200.

It verifies nothing itself: `Received.verify(secret)` checks a delivery's two signatures
(our hex HMAC and Standard Webhooks', the latter with the `standardwebhooks` package).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from harness.polling import wait_until


@dataclass
class Answer:
    status: int = 200
    sleep: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float

    @property
    def event_id(self) -> str:
        return self.headers["x-reelfarm-event-id"]

    def json(self) -> dict:
        return json.loads(self.body)

    def verify_ours(self, secret: str) -> bool:
        timestamp, event_id = self.headers["x-reelfarm-timestamp"], self.headers["x-reelfarm-event-id"]
        expected = hmac.new(secret.encode(), f"{timestamp}.{event_id}.".encode() + self.body,
                            hashlib.sha256).hexdigest()  # fmt: skip
        return (self.headers.get("x-reelfarm-signature-alg") == "HMAC-SHA256"
                and hmac.compare_digest(expected, self.headers["x-reelfarm-signature"]))  # fmt: skip

    def verify_standard(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return self.headers["webhook-id"] == self.event_id

    def verify(self, secret: str) -> bool:
        """Both signatures hold for `secret`."""
        return self.verify_ours(secret) and self.verify_standard(secret)


class WebhookReceiver:
    def __init__(self, script: list[Answer] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self.answered: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.monotonic()))  # fmt: skip
                    answer = receiver.script.pop(0) if receiver.script else Answer()
                if answer.sleep:
                    time.sleep(answer.sleep)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    return
                with receiver._lock:
                    receiver.answered.append(answer.status)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/reelfarm"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        wait_until(lambda: len(self.received) >= count, timeout=timeout, interval=0.05,
                   what=f"{count} webhook deliveries", describe=lambda: [r.headers for r in self.received])  # fmt: skip
        return list(self.received)
