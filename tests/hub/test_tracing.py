"""`inbeeld serve` with INBEELD_OTLP_ENDPOINT exports its spans over OTLP/HTTP: a real hub
process, a real collector endpoint (an HTTP server here that decodes what it is sent)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from hub.config import Settings
from tests.conftest import RUN_ID
from tests.utils.hubs import remove_deployment

pytestmark = pytest.mark.broker
BIN = Path(sys.executable).parent


class Collector:
    """Accepts OTLP/HTTP protobuf exports at /v1/traces and keeps the decoded requests."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.requests: list[ExportTraceServiceRequest] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.paths.append(self.path)
                collector.requests.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(service name, span name, attributes) of everything received."""
        out = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        attrs = {a.key: a.value for a in span.attributes}
                        out.append((resource.get("service.name", ""), span.name, attrs))
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_exports_request_spans_to_the_otlp_endpoint(tmp_path: Path) -> None:
    collector = Collector()
    vhost = f"inbeeld-test-{RUN_ID}-otlp"
    port = _free_port()
    env = {
        **os.environ,
        "INBEELD_VHOST": vhost,
        "INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "INBEELD_API_PORT": str(port),
        "INBEELD_LOG_FORMAT": "json",
        "INBEELD_OTLP_ENDPOINT": collector.url,
    }
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "inbeeld"),
        "serve",
        "--no-router",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.returncode is None, "the hub stopped"
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError("the hub did not answer /health")
        proc.send_signal(signal.SIGINT)  # a clean stop flushes what is still batched
        output = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        collector.server.shutdown()
        collector.server.server_close()
        await remove_deployment(Settings(vhost=vhost))
    assert collector.paths and set(collector.paths) == {"/v1/traces"}, output[-2000:]
    spans = collector.spans()
    health = [s for s in spans if s[1] == "GET /health"]
    assert health, [s[1] for s in spans]
    assert {service for service, _, _ in health} == {"inbeeld-hub"}
    assert health[0][2]["http.route"].string_value == "/health"
