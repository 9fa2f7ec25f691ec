"""The hub's API served over real HTTP on a free port, for tests that need a URL (a connector's
[hub], a browser). `lifespan=True` runs the app's lifespan: the alert watch starts with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator

import uvicorn
from fastapi import FastAPI


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # pytest owns the signals

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.servers[0].sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def served(app: FastAPI, *, lifespan: bool = False) -> AsyncIterator[str]:
    """Serve `app`; yields its base URL."""
    server = _Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on" if lifespan else "off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield server.url
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
