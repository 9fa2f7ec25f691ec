"""Bounds on what rendering one letter may take: template size, output size, pages, time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    template_bytes: int = 64 * 1024  # one language's subject or body, UTF-8
    placeholders: int = 200  # placeholder uses in one language's text
    blocks: int = 500  # paragraphs, headings and lists in one body
    value_chars: int = 200  # one inserted value
    output_chars: int = 100_000  # the composed letter's text, all languages
    html_bytes: int = 1024 * 1024
    pdf_bytes: int = 4 * 1024 * 1024
    pdf_pages: int = 12
    seconds: float = 10.0  # CPU-time budget for one letter, composing and rendering


DEFAULT_LIMITS = Limits()
