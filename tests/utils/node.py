"""The Node.js checkers under tools/ (the official AsyncAPI parser, an independent JOSE
implementation), installed from their lock files on first use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).parents[2] / "tools"


def node_tool(name: str) -> tuple[str, Path]:
    """(path of node, the tool's folder) with its node_modules installed. Skips only where
    Node.js itself is absent (CI has it; see .ci/run)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js/npm are not installed")
    folder = TOOLS / name
    if not (folder / "node_modules").is_dir():
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=600,
        )
    return node, folder
