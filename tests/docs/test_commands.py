"""Every command docs/ shows is real.

* Every `inbeeld` / `inbeeld-connector` command named in a ```sh block or in inline code (in
  docs/ and the README) resolves to a real subcommand whose options exist, and
  `<command> <subcommand...> --help` succeeds.
* Every command in a ```sh block runs, unless it is marked illustrative: a comment line
  `# (needs ...)` (or `# (illustrative ...)`) marks the commands after it, up to the next
  blank line or the end of the block. The runnable commands of a block run in order, in one
  `bash -euo pipefail`, in a sandbox: a fresh directory holding `docs/examples/` and (unless
  the block writes its own with `inbeeld-connector init`) the `connector.toml` that `init`
  writes, with `INBEELD_KEYSTORE_PASSPHRASE` set and every hub setting pointing at nothing
  (the shared broker and database are never touched).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

import hub.cli
from connectors.cli import app as connector_app
from connectors.config import EXAMPLE

ROOT = Path(__file__).parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PROSE = [*DOCS, ROOT / "README.md"]
VENV_BIN = Path(sys.executable).parent
PROGRAMS = ("inbeeld", "inbeeld-connector")
MARKER = re.compile(r"^#\s*\((needs|illustrative)\b")
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`((?:inbeeld|inbeeld-connector) [^`]+)`")


@dataclass(frozen=True)
class Command:
    doc: str
    line: str
    runnable: bool


def _blocks(path: Path) -> list[list[Command]]:
    blocks = []
    for body in SH_BLOCK.findall(path.read_text("utf-8")):
        commands, illustrative = [], False
        for line in body.replace("\\\n", " ").splitlines():
            stripped = line.strip()
            if not stripped:
                illustrative = False
            elif MARKER.match(stripped):
                illustrative = True
            elif not stripped.startswith("#"):
                commands.append(Command(path.name, stripped, not illustrative))
        blocks.append(commands)
    return blocks


BLOCKS = [(path.name, i, block) for path in DOCS for i, block in enumerate(_blocks(path)) if block]


def _invocations(line: str, *, alternatives: bool = False) -> list[list[str]]:
    """The `inbeeld`/`inbeeld-connector` argument lists in one shell line."""
    tokens = shlex.split(line, comments=True)
    found: list[list[str]] = []
    simple: list[list[str]] = [[]]
    for t in tokens:
        if t in ("&&", "||", ";", "|"):
            simple.append([])
        else:
            simple[-1].append(t)
    for argv in simple:
        while argv and (re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]) or argv[0] in ("sudo", "exec", "env")):
            argv = argv[1:]
        if not argv or Path(argv[0]).name not in PROGRAMS:
            continue
        argv = [Path(argv[0]).name, *argv[1:]]
        split = next((i for i, t in enumerate(argv) if alternatives and "|" in t), None)
        if split is None:
            found.append(argv)
        else:
            found += [[*argv[:split], alt] for alt in argv[split].split("|")]
    return found


def _click(program: str) -> Any:
    if program == "inbeeld-connector":
        return typer.main.get_command(connector_app)
    if "demo" not in {c.name for c in hub.cli.app.registered_commands}:
        # `inbeeld demo` comes from an entry point that `main()` adds at start.
        hub.cli._add_plugin_commands()
    return typer.main.get_command(hub.cli.app)


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def _resolve(argv: list[str]) -> tuple[list[str], Any]:
    """The subcommand path of an invocation and its leaf; fails on an unknown subcommand."""
    command = _click(argv[0])
    path: list[str] = []
    args = argv[1:]
    # Duck-typed: typer may bring its own copy of click, so no isinstance against ours.
    while _is_group(command) and args and not args[0].startswith("-"):
        sub = command.get_command(command.context_class(command), args[0])
        assert sub is not None, f"{' '.join([argv[0], *path])} has no subcommand {args[0]!r}"
        path.append(args[0])
        command, args = sub, args[1:]
    assert not _is_group(command), f"{' '.join(argv)}: names a group, not a command"
    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for arg in args:
        if arg.startswith("-") and arg != "-":
            assert arg.split("=", 1)[0] in known, f"{' '.join(argv)}: no option {arg}"
    return [argv[0], *path], command


def _named() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for _, _, block in BLOCKS:
        for command in block:
            for argv in _invocations(command.line):
                path, _ = _resolve(argv)
                named[" ".join(path)] = path
    for path in PROSE:
        for span in INLINE.findall(path.read_text("utf-8")):
            for argv in _invocations(span.replace("[", " ").replace("]", " "), alternatives=True):
                argv = [a for a in argv if not a.startswith("<")]
                resolved, _ = _resolve(argv)
                named[" ".join(resolved)] = resolved
    return named


def test_every_named_command_resolves_with_its_options() -> None:
    named = _named()
    # The guide covers the hub's onboarding and the connector's life cycle at least.
    for expected in ("inbeeld tenant provision", "inbeeld tenant replace-keys", "inbeeld-connector run"):
        assert expected in named


@pytest.mark.parametrize("path", sorted(_named().values()), ids=" ".join)
def test_help_of_every_named_command_succeeds(path: list[str]) -> None:
    result = subprocess.run(
        [str(VENV_BIN / path[0]), *path[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage:" in result.stdout


def test_the_self_contained_commands_are_run() -> None:
    runnable = {c.line for _, _, block in BLOCKS for c in block if c.runnable}
    assert "inbeeld-connector init connector.toml" in runnable
    assert "python -m schemas.export --check" in runnable


def _sandbox(tmp: Path, block: list[Command]) -> dict[str, str]:
    shutil.copytree(ROOT / "docs" / "examples", tmp / "docs" / "examples")
    if not any(_invocations(c.line) and _invocations(c.line)[0][1:2] == ["init"] for c in block):
        (tmp / "connector.toml").write_text(EXAMPLE, encoding="utf-8")
    nowhere = "127.0.0.1:9"  # the discard port: nothing of the shared services is reached
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "INBEELD_KEYSTORE_PASSPHRASE": "documentation test passphrase",
        "INBEELD_AMQP_URL": f"amqp://nobody:nothing@{nowhere}/",
        "INBEELD_RABBITMQ_API_URL": f"http://{nowhere}",
        "INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'hub.db'}",
        "INBEELD_VHOST": "inbeeld-docs-test",
    }


RUNNABLE = [(f"{doc}#{i}", block) for doc, i, block in BLOCKS if any(c.runnable for c in block)]


@pytest.mark.parametrize("block", [b for _, b in RUNNABLE], ids=[name for name, _ in RUNNABLE])
def test_runnable_commands_of_a_block_run(block: list[Command], tmp_path: Path) -> None:
    lines = [c.line for c in block if c.runnable]
    env = _sandbox(tmp_path, block)
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
