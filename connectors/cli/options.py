"""The `--config` option every `inbeeld-connector` command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DEFAULT_CONFIG", "ConfigOpt"]

DEFAULT_CONFIG = Path("connector.toml")  # in the working directory, as `init` writes it

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        default_factory=lambda: DEFAULT_CONFIG,
        show_default="./connector.toml",
        help="the connector's TOML config",
    ),
]
