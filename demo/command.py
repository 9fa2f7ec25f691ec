"""`inbeeld demo`: registered with the hub's command line through the `inbeeld.commands` entry
point, so the hub never imports the demo (which sits above hub and connectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.cli import console, run


def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its artefacts")] = Path("demo-out"),
    vhost: Annotated[
        str,
        typer.Option(
            envvar="INBEELD_VHOST",
            help="Demo vhost: reset at start if an earlier demo made it; one it did not make is refused",
        ),
    ] = "inbeeld-demo",
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Keep the hub and its console running after the story (Ctrl-C stops)"),
    ] = False,
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="The console's port on 127.0.0.1 with --serve")
    ] = 8000,
) -> None:
    """Play the mission's story end to end on a fresh demo vhost and database; the broker users
    it makes are removed at the end."""
    from demo.story import play  # the story needs the whole hub: loaded when the demo runs
    from hub.config import get_settings

    settings = get_settings()
    if settings.log_level.upper() == "INFO":  # keep the story readable; INBEELD_LOG_LEVEL wins
        settings = settings.model_copy(update={"log_level": "WARNING"})
    run(lambda: play(settings, out, vhost, console, serve=serve, port=port), settings)
