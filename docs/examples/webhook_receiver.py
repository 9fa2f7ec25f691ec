"""A sample receiver for the Inbeeld connector's webhook sink (standard library only).

    INBEELD_WEBHOOK_SECRET=... python webhook_receiver.py [PORT] [SEEN_DB]

It checks `X-Inbeeld-Signature` (HMAC-SHA256 over `<timestamp>.<body>`), refuses a stale
timestamp, and processes each event once: a repeat (the same `source` and `id`, the id also in
`X-Inbeeld-Event-Id`) is answered 200 again but not processed again. Replace `process` with
the hand-over to your case system.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_AGE_SECONDS = 300  # refuse a captured request replayed later
MAX_BODY_BYTES = 2 * 1024 * 1024


def signature_ok(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def process(event: dict[str, Any]) -> None:
    print(event["type"], event["id"], flush=True)  # hand the event to your case system here


def make_server(
    port: int, secret: bytes, seen_db: str = "seen.db", handle: Callable[[dict[str, Any]], None] = process
) -> ThreadingHTTPServer:
    seen = sqlite3.connect(seen_db, check_same_thread=False)
    seen.execute(
        "CREATE TABLE IF NOT EXISTS seen (source TEXT, event_id TEXT, PRIMARY KEY (source, event_id))"
    )
    lock = threading.Lock()  # one event at a time: a repeat waits for the first to finish

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self.answer(413)
            body = self.rfile.read(length)
            timestamp = self.headers.get("X-Inbeeld-Timestamp", "")
            event_id = self.headers.get("X-Inbeeld-Event-Id", "")
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
                return self.answer(401)
            if not signature_ok(secret, timestamp, body, self.headers.get("X-Inbeeld-Signature", "")):
                return self.answer(401)
            event = json.loads(body)
            if event.get("id") != event_id:
                return self.answer(400)
            with lock:
                key = (event["source"], event_id)  # ids are unique per source only
                if seen.execute("SELECT 1 FROM seen WHERE source = ? AND event_id = ?", key).fetchone():
                    return self.answer(200)  # a repeat: already processed, acknowledge again
                try:
                    handle(event)
                except Exception:
                    return self.answer(500)  # not recorded: the connector delivers it again later
                seen.execute("INSERT INTO seen (source, event_id) VALUES (?, ?)", key)
                seen.commit()
            self.answer(200)

        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = make_server(port, os.environ["INBEELD_WEBHOOK_SECRET"].encode(), *sys.argv[2:3])
    server.serve_forever()
