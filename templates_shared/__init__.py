"""The letter-template bundles Ingrado distributes, shipped as package data.

Each bundle is a folder `<template-id>/` holding `manifest.json` and one `<lang>.md` per
language; `connectors.letters.load_bundle(path)` turns one into a `template.published` payload.
This module only locates them, so it works from a source checkout and from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def bundle_ids() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "manifest.json").is_file())


def bundle_path(template_id: str) -> Path:
    if template_id not in bundle_ids():
        raise KeyError(f"no shared template bundle {template_id!r}")
    return ROOT / template_id
