"""Rendering the console's pages: its templates and catalogue on webui's renderer."""

from __future__ import annotations

from pathlib import Path

from hub.web import i18n
from webui.pages import Renderer, base_path

__all__ = ["TEMPLATES", "base_path", "error_page", "render"]

TEMPLATES = Path(__file__).parent / "templates"
_renderer = Renderer(TEMPLATES, i18n.CATALOGUE)
render = _renderer.render
error_page = _renderer.error_page
