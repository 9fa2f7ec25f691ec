"""The static files every web app of the project shares: the vendored NL Design System CSS and
htmx (written by tools/vendor-web-assets, listed with their sha256 in vendor/manifest.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
MANIFEST = STATIC_DIR / "vendor" / "manifest.json"


@dataclass(frozen=True)
class VendoredFile:
    package: str
    version: str
    file: str
    sha256: str
    licence: str


# The NL Design System themes the pages can wear: name -> its tokens stylesheet under vendor/
# (scoped to the class "<name>-theme"). Utrecht's tokens are always loaded underneath, so a
# token a municipal theme does not set keeps Utrecht's value.
THEMES: dict[str, str] = {
    "utrecht": "utrecht-design-tokens.css",
    "denhaag": "denhaag-design-tokens.css",
}
DEFAULT_THEME = "utrecht"


def manifest() -> list[VendoredFile]:
    return [VendoredFile(**entry) for entry in json.loads(MANIFEST.read_text())]


def static_files(own: Path | None = None) -> StaticFiles:
    """An ASGI app serving an app's `own` static directory and the shared files (vendor/...)
    behind it; mount it under the pages' prefix at /static."""
    return StaticFiles(directory=own, packages=[("webui", "static")])
