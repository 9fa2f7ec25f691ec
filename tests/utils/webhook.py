"""A real HTTP server standing in for a municipality's case system (its webhook endpoint).

Runs `http.server` in a thread on a free port; records every request; answers 503 while
`down` is set; checks the connector's HMAC signature. `answer`, when set, picks the status for
a signed body (None: 200), e.g. a case system refusing one event with 422."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connectors.sinks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass
class Delivery:
    event_id: str
    body: dict[str, Any]
    signed: bool
    status: int
    traceparent: str | None = None  # the W3C header the connector sends


@dataclass
class Webhook:
    secret: bytes
    down: bool = False
    requests: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    answer: Callable[[dict[str, Any]], int | None] | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/inbeeld"

    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.requests if d.status == 200]

    def accepted_where(self, pred) -> list[Delivery]:
        return [d for d in self.accepted() if pred(d.body)]

    def counts(self, pred) -> Counter[str]:
        return Counter(d.event_id for d in self.accepted_where(pred))

    def refused(self) -> int:
        with self.lock:
            return sum(1 for d in self.requests if d.status != 200)

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                signed = verify_signature(
                    hook.secret,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    raw,
                    self.headers.get(SIGNATURE_HEADER, ""),
                )
                body = json.loads(raw)
                status = 503 if hook.down else (200 if signed else 401)
                if status == 200 and hook.answer is not None:
                    status = hook.answer(body) or 200
                with hook.lock:
                    hook.requests.append(
                        Delivery(
                            self.headers.get(EVENT_ID_HEADER, ""),
                            body,
                            signed,
                            status,
                            self.headers.get("traceparent"),
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
