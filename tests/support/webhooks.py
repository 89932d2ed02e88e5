"""A webhook receiver for tests: a small HTTP server on 127.0.0.1 that verifies every delivery with the
`standardwebhooks` reference library and, as a receiving application should, de-duplicates on `webhook-id`.

It can answer each delivery's first attempts with 503 (`fail_first`), hang without answering (`hang`), or
redirect (`redirect_to`); every request it saw is kept in `requests`, the de-duplicated payloads in
`application`."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.stack import Stack

HANG_LIMIT_S = 30.0


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool
    answered: int | None
    """The status this receiver answered (None: it hung)."""


class Receiver:
    """Start with `with Receiver(secret) as receiver:`; `receiver.url` is where to send."""

    def __init__(
        self,
        secret: str,
        fail_first: int = 0,
        hang: bool = False,
        redirect_to: str | None = None,
        path: str = "/hook",
    ) -> None:
        self.webhook = Webhook(secret)
        self.fail_first = fail_first
        self.hang = hang
        self.redirect_to = redirect_to
        self.path = path
        self.requests: list[Received] = []
        self.application: dict[str, dict[str, Any]] = {}
        """Payloads handed to the application: the first verified delivery of each webhook-id."""
        self._attempts: dict[str, int] = {}
        self._lock = threading.Condition()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, condition: Callable[[Receiver], bool], timeout: float) -> bool:
        """Wait (bounded) until `condition(self)` holds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def _receive(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        try:
            payload = self.webhook.verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        with self._lock:
            attempt = self._attempts[webhook_id] = self._attempts.get(webhook_id, 0) + 1
        if self.hang:
            answered: int | None = None
        elif self.redirect_to is not None:
            answered = 307
        elif not verified:
            answered = 401
        else:
            answered = 503 if attempt <= self.fail_first else 204
        with self._lock:
            self.requests.append(Received(webhook_id, headers, body, time.time(), verified, answered))
            if answered == 204 and payload is not None:
                self.application.setdefault(webhook_id, payload)
            self._lock.notify_all()
        if answered is None:
            self._release.wait(HANG_LIMIT_S)
            return
        handler.send_response(answered)
        if answered == 307 and self.redirect_to is not None:
            handler.send_header("Location", self.redirect_to)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver._receive(self)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def payloads(self, event: str | None = None) -> list[dict[str, Any]]:
        """The application's payloads (of one event type), in arrival order."""
        with self._lock:
            return [p for p in self.application.values() if event is None or p["type"] == event]

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r.body) for r in self.requests]


def readme_verifiers() -> dict[str, Callable[[bytes, dict[str, str], str], Any]]:
    """The README's two receiver snippets (the `standardwebhooks` one and the `hmac` one), run as written:
    `{"standardwebhooks": verify, "hmac": verify}`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, Callable[[bytes, dict[str, str], str], Any]] = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        code = textwrap.dedent(block)
        if "def verify" not in code:
            continue
        namespace: dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
        found["standardwebhooks" if "standardwebhooks" in code else "hmac"] = namespace["verify"]
    return found


def webhook_records(stack: Stack) -> tuple[int, int]:
    """(subscriptions, deliveries) in a stack's store, read from the store itself."""
    if stack.redis_url:
        import redis

        with redis.Redis.from_url(stack.redis_url) as conn:
            return len(list(conn.scan_iter("i2m:wh:sub:*"))), len(list(conn.scan_iter("i2m:wh:d:*")))
    import sqlite3

    with sqlite3.connect(stack.data_dir / "state.db") as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("webhook_subscriptions", "webhook_deliveries")
        )
