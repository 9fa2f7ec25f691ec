"""What every demo step gets: the `DemoContext` (the running hub, the tenants' connectors, the
output), and the shape of a step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from connectors import Connector
from hub.config import Settings
from hub.router import Router
from hub.store.db import Database

__all__ = ["DemoContext", "Step"]


@dataclass
class DemoContext:
    settings: Settings
    out: Path
    console: Console
    db: Database
    router: Router
    names: dict[str, str]
    connectors: dict[str, Connector] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


Step = tuple[str, Callable[[DemoContext], Awaitable[None]]]
