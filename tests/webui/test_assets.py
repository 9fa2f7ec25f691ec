"""The vendored web assets are what their manifest says (tools/vendor-web-assets wrote both),
each comes with its licence, and the Python package ships them."""

from __future__ import annotations

import hashlib
import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from webui import assets

ROOT = Path(__file__).parents[2]
AXE = ROOT / "tests" / "browser" / "vendor"


def check(directory: Path, entries: list[dict[str, str]]) -> None:
    listed = {e["file"] for e in entries}
    on_disk = {p.name for p in directory.iterdir()} - {"manifest.json"}
    assert listed == on_disk, "files and manifest differ"
    for e in entries:
        data = (directory / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["file"]
        assert e["version"] and e["licence"], e
    packages = {e["package"] for e in entries}
    for package in packages:
        assert any("LICENSE" in e["file"] for e in entries if e["package"] == package), package


def test_shared_assets_match_their_manifest() -> None:
    entries = [e.__dict__ for e in assets.manifest()]
    check(assets.STATIC_DIR / "vendor", entries)
    packages = {e["package"]: e["version"] for e in entries}
    assert packages == {
        "@utrecht/component-library-css": "9.0.4",
        "@utrecht/design-tokens": "5.0.1",
        "@gemeente-denhaag/design-tokens-components": "4.1.0",
        "htmx.org": "2.0.11",
    }


def test_axe_for_the_browser_tests_matches_its_manifest() -> None:
    check(AXE, json.loads((AXE / "manifest.json").read_text()))


def test_the_package_data_includes_templates_and_static_files() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, directory in (("hub", "web"), ("webui", "."), ("connectors.workspace", ".")):
        root = ROOT.joinpath(*package.split("."))
        data = package_data[package]
        files = [
            p.relative_to(root).as_posix()
            for p in (root / directory).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"
        ]
        assert files, package
        for f in files:
            assert any(fnmatch(f, pattern) for pattern in data), f"{package}: {f} is not in the package data"
