"""The `--config` option every `inbeeld-connector` command shares, and how a command that is
about a pupil reads the BSN (never from the command line)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DEFAULT_CONFIG", "BsnStdinOpt", "ConfigOpt", "read_bsn"]

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

BsnStdinOpt = Annotated[
    bool,
    typer.Option(
        "--bsn-stdin",
        help="read the pupil's BSN from standard input (scripts); without it, a hidden prompt asks",
    ),
]


def read_bsn(from_stdin: bool) -> str:
    """The pupil's BSN, never from the command line (it would be in the shell's history and in
    `ps`): the first line of standard input with --bsn-stdin, else a hidden prompt."""
    from rich.console import Console

    from schemas.fields import passes_eleven_test

    err = Console(stderr=True)
    if from_stdin:
        bsn = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        bsn = typer.prompt("BSN of the pupil (not shown)", hide_input=True, err=True).strip()
    else:
        err.print("no terminal to ask for the BSN: pipe it in with --bsn-stdin")
        raise typer.Exit(2)
    if not passes_eleven_test(bsn):  # the value itself is never repeated
        err.print("the BSN given is not 9 digits passing the 11-test")
        raise typer.Exit(2)
    return bsn
