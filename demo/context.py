"""What every demo step is given: the hub it runs against and each tenant's connector."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from connectors import Connector
from connectors.keystore import Keystore
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
    # One keystore per tenant for the whole demo (demo.support.keystore_for).
    keystores: dict[str, Keystore] = field(default_factory=dict)
    # `inbeeld demo --serve`: keep the hub and its console running after the story, on this port.
    serve: bool = False
    serve_port: int = 8000


Step = tuple[str, Callable[[DemoContext], Awaitable[None]]]
