"""Where a process's time goes: py-spy attached to a router (or connector) process during a run.

Two samplers run side by side: a flame graph of on-CPU time (`<name>.svg`, `router.svg` for
the router) and collapsed stacks of wall time including idle waits (`<name>.txt`), summarised
here by package and by function so the report can say what costs most.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+):?(?P<line>\d*)\)$")
_PACKAGES = (
    ("hub/", "hub"),
    ("connectors/", "connectors"),
    ("schemas/", "schemas"),
    ("sqlalchemy", "sqlalchemy"),
    ("aiosqlite", "aiosqlite"),
    ("asyncpg", "asyncpg"),
    ("aio_pika", "aio-pika"),
    ("aiormq", "aiormq"),
    ("pamqp", "pamqp"),
    ("structlog", "structlog"),
    ("joserfc", "joserfc"),
    ("cryptography", "cryptography"),
    ("pydantic", "pydantic"),
    ("httpx", "httpx"),
    ("httpcore", "httpcore"),
    ("h11", "h11"),
    ("uvicorn", "uvicorn"),
    ("starlette", "starlette"),
    ("fastapi", "fastapi"),
    ("opentelemetry", "opentelemetry"),
    ("asyncio", "asyncio"),
    ("json", "json"),
    ("logging", "logging"),
)


# Leaf frames that mean "waiting": the event loop in epoll (for the broker or for the store's
# worker thread) and aiosqlite's worker thread waiting for its next statement.
_OURS = re.compile(r"(hub|connectors|schemas)/[^/].*$")
_IDLE = ("EpollSelector.select", "_connection_worker_thread (aiosqlite/core.py:59)")


class Profiler:
    def __init__(self, out_dir: Path, rate: int = 100, name: str = "router") -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.name = name
        self.svg = out_dir / f"{name}.svg"
        self.raw = out_dir / f"{name}.txt"
        self._procs: list[subprocess.Popen[bytes]] = []
        self.error: str | None = None

    @staticmethod
    def executable() -> str | None:
        beside = Path(sys.executable).with_name("py-spy")  # the virtualenv's, when not on PATH
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def attach(self, pid: int) -> None:
        exe = self.executable()
        if exe is None:
            self.error = "py-spy is not installed (pip install inbeeld[bench])"
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        common = [exe, "record", "--pid", str(pid), "--rate", str(self.rate), "--nonblocking"]
        self._procs = [
            subprocess.Popen(
                [*common, "-o", str(self.svg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            ),
            subprocess.Popen(
                [*common, "--idle", "--format", "raw", "-o", str(self.raw)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
        ]

    def detach(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self._procs:
            try:
                _, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            if p.returncode not in (0, None) and not self.raw.exists():
                self.error = err.decode(errors="replace")[-500:]
        self._procs = []

    def summary(self, top: int = 12) -> dict[str, Any]:
        if self.error or not self.raw.exists():
            return {"error": self.error or "no profile written"}
        return summarise(self.raw.read_text(errors="replace"), top)


def _package(file: str) -> str:
    for needle, name in _PACKAGES:
        if needle in file:
            return name
    return "other"


def _ours(file: str) -> str:
    """A file of the project by its path from the checkout's root (hub/router.py)."""
    m = _OURS.search(file)
    return m.group(0) if m else file


def summarise(collapsed: str, top: int = 12) -> dict[str, Any]:
    """Idle share (of all threads' samples), busy share by package (leaf frame), and the
    costliest functions of ours (inclusive: the share of busy samples passing through them)."""
    total = idle = 0
    leaf_pkg: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        if any(w in leaf for w in _IDLE):
            idle += count
            continue
        m = _FRAME.match(leaf.strip())
        leaf_pkg[_package(m.group("file")) if m else "other"] += count
        seen: set[str] = set()
        for frame in frames:
            fm = _FRAME.match(frame.strip())
            if not fm:
                continue
            file = fm.group("file")
            if "hub/" in file or "schemas/" in file or "connectors/" in file:
                key = f"{fm.group('func')} ({_ours(file)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    busy = max(total - idle, 1)
    return {
        "samples": total,
        "idle_share": round(idle / max(total, 1), 3),
        "busy_by_package": {k: round(v / busy, 3) for k, v in leaf_pkg.most_common()},
        "hub_functions_inclusive": {k: round(v / busy, 3) for k, v in inclusive.most_common(top)},
    }
