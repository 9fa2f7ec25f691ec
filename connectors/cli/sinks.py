"""`inbeeld-connector sink show FILE`: read back a file the folder sink wrote encrypted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from connectors.cli.options import ConfigOpt

__all__ = ["sink_app"]

sink_app = typer.Typer(help="Files the folder sink wrote (encrypted at rest).", no_args_is_help=True)


@sink_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="a <event id>.json.enc file of a folder sink")],
    config: ConfigOpt,
) -> None:
    """Decrypt a folder-sink file and print the event document (JSON) on standard output.
    Exits 1 when it cannot be read: after `shred`, the files written before are unreadable."""
    from connectors.config import ConfigError, load_config
    from connectors.services import open_keystore
    from connectors.sink_files import SinkFileError, open_sink_file
    from schemas.errors import InbeeldError

    err = Console(stderr=True)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        err.print(f"config error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if cfg.keystore is None or not cfg.keystore.path.exists():
        err.print("config error: keystore: no keystore here to read sink files with")
        raise typer.Exit(2)
    try:
        keystore = open_keystore(cfg)
        assert keystore is not None
        body = open_sink_file(keystore, file)
    except SinkFileError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except InbeeldError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(json.loads(body), ensure_ascii=False, indent=2, sort_keys=True) + "\n")
