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
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+):?(?P<line>\d*)\)$")
_PACKAGES = (
    ("hub/", "hub"),
    ("schemas/", "schemas"),
    ("sqlalchemy", "sqlalchemy"),
    ("connectors/", "connectors"),
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
_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
_OURS = re.compile(r"^(hub|connectors|schemas)/")
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
        self._attached = 0.0
        self.seconds = 0.0  # how long it sampled

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
        self._attached = time.perf_counter()
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
        if self._procs:
            self.seconds = time.perf_counter() - self._attached
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
        collapsed = self.raw.read_text(errors="replace")
        out = summarise(collapsed, top)
        if self.name != "router":  # a connector: where its wall time goes, thread by thread
            out["by_thread"] = by_thread(collapsed, self.rate, self.seconds)
        return out


def _package(file: str) -> str:
    for needle, name in _PACKAGES:
        if needle in file:
            return name
    return "other"


def _ours(file: str) -> str:
    """A file by its path from the checkout's root (hub/router.py) when it is the project's;
    py-spy names files relative to their sys.path entry, or absolute."""
    return file.removeprefix(_ROOT)


def _stacks(collapsed: str) -> Iterator[tuple[list[str], int]]:
    """py-spy's collapsed stacks: each line's frames (outermost first) and its sample count."""
    for line in collapsed.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if stack and count_s.isdigit():
            yield stack.split(";"), int(count_s)


def _our_functions(frames: list[str]) -> list[str]:
    """The project's functions on a stack, each once: `func (path)`."""
    keys: list[str] = []
    for frame in frames:
        fm = _FRAME.match(frame.strip())
        if fm and _OURS.match(_ours(fm.group("file"))):
            key = f"{fm.group('func')} ({_ours(fm.group('file'))})"
            if key not in keys:
                keys.append(key)
    return keys


def summarise(collapsed: str, top: int = 12) -> dict[str, Any]:
    """Idle share (of all threads' samples), busy share by package (leaf frame), and the
    costliest functions of ours (inclusive: the share of busy samples passing through them)."""
    total = idle = 0
    leaf_pkg: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in _stacks(collapsed):
        total += count
        leaf = frames[-1]
        if any(w in leaf for w in _IDLE):
            idle += count
            continue
        m = _FRAME.match(leaf.strip())
        leaf_pkg[_package(m.group("file")) if m else "other"] += count
        for key in _our_functions(frames):
            inclusive[key] += count
    busy = max(total - idle, 1)
    return {
        "samples": total,
        "idle_share": round(idle / max(total, 1), 3),
        "busy_by_package": {k: round(v / busy, 3) for k, v in leaf_pkg.most_common()},
        "hub_functions_inclusive": {k: round(v / busy, 3) for k, v in inclusive.most_common(top)},
    }


def by_thread(collapsed: str, rate: int, seconds: float, top: int = 8) -> dict[str, Any]:
    """Wall time of a connector process by thread, as shares of the run's `seconds`: the
    event loop (waiting in epoll, or running code: the project's functions inclusive), the
    SQLite worker threads (aiosqlite: executing a statement, commit included, or waiting for
    the next) and the rest. Samples of all threads at `rate` per second, idle included."""
    wall = max(seconds * rate, 1.0)
    shares: Counter[str] = Counter()
    loop_functions: Counter[str] = Counter()
    for frames, count in _stacks(collapsed):
        leaf = frames[-1]
        if any("_connection_worker_thread" in f for f in frames):
            waiting = "_connection_worker_thread (aiosqlite/core.py:59)" in leaf
            shares["sqlite threads waiting" if waiting else "sqlite threads executing"] += count
        elif "Thread._bootstrap" in frames[0]:
            shares["other threads"] += count
        elif "EpollSelector.select" in leaf:
            shares["event loop waiting (epoll)"] += count
        else:
            shares["event loop running"] += count
            for key in _our_functions(frames):
                if "cli/" not in key and "supervised" not in key:
                    loop_functions[key] += count
    return {
        "seconds": round(seconds, 1),
        "thread_share_of_wall": {k: round(v / wall, 3) for k, v in shares.most_common()},
        "loop_functions_share_of_wall": {k: round(v / wall, 3) for k, v in loop_functions.most_common(top)},
    }
