"""Running a long-lived command (`inbeeld router`, `inbeeld-connector run`) until the first
SIGINT or SIGTERM, which always stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["until_signal"]


async def until_signal(work: Callable[[], Coroutine[Any, Any, None]], grace: float = 2.0) -> None:
    """Run `work` until it ends or the first SIGINT/SIGTERM, which stops it cleanly: its own
    `finally` runs, given `grace` seconds (a router finishes its batch). A library may swallow
    one cancellation (a lost connect, a wait_for racing its result), so the stop is repeated
    until the work has ended: one signal always suffices."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(work())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=grace)
        while not task.done():  # the cancellation was swallowed: send it again
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
    finally:
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
