"""The web foundation stands alone: webui imports neither hub nor connectors, and the connector
(its workspace included) never imports the hub, nor the hub the connector."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("webui", {"hub", "connectors", "demo"}),
        ("connectors", {"hub", "demo"}),
        ("hub", {"connectors", "demo"}),
    ],
)
def test_a_package_does_not_import_what_it_must_not(package: str, forbidden: set[str]) -> None:
    imported = imported_packages(package)
    assert imported, package
    assert not imported & forbidden, imported & forbidden
