"""The console's static files: its own CSS here, the shared vendored files from webui."""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

from webui import assets

STATIC_DIR = Path(__file__).parent / "static"


def static_files() -> StaticFiles:
    return assets.static_files(STATIC_DIR)
