"""Template bundles on disk: `manifest.json` plus one `<lang>.md` per language.

    manifest.json   {"id", "version", "publisher", "title",
                     "languages": {"nl": {"direction": "ltr"}, "ar": {"direction": "rtl"}, ...},
                     "placeholders": [{"name", "type", "required", "description", "sample"}, ...]}
    <lang>.md       "subject: <one line>", a blank line, then the body

`load_bundle` reads a folder (sizes bounded before reading), checks every text against the
template grammar and the declared placeholders, and returns the `template.published` payload.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from connectors.letters.compose import parse_language
from connectors.letters.errors import BundleInvalid, InvalidValue, TemplateSyntaxError, TemplateTooLarge
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.syntax import FORBIDDEN
from connectors.letters.values import check_samples
from schemas import nesting
from schemas.envelope import TenantCode
from schemas.errors import TooDeep
from schemas.events import Placeholder, TemplatePublished
from schemas.fields import Direction, Language, SemVer, ShortText, Slug

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024


class _LanguageEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    direction: Direction


def _plain_title(title: str) -> str:
    # The title names the letter in PDF metadata and the HTML <title>, where nothing isolates it.
    if FORBIDDEN.search(title):
        raise ValueError("must not contain bidi controls, formatting or private-use characters")
    return title


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Slug
    version: SemVer
    publisher: TenantCode
    title: Annotated[ShortText, AfterValidator(_plain_title)]
    languages: dict[Language, _LanguageEntry]
    placeholders: list[Placeholder] = []


def _read(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise BundleInvalid(f"cannot read {path.name}: {e.strerror}") from None
    if len(data) > limit:
        raise TemplateTooLarge(f"{path.name} is larger than {limit} bytes")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise BundleInvalid(f"{path.name} is not UTF-8") from None


def split_text_file(text: str, where: str) -> tuple[str, str]:
    """`subject: ...` on the first line, a blank line, then the body."""
    text = text.replace("\r\n", "\n")
    first, _, rest = text.partition("\n")
    key, sep, subject = first.partition(":")
    if not sep or key.strip().lower() != "subject" or not subject.strip():
        raise TemplateSyntaxError(f"{where}, line 1: expected 'subject: <the subject line>'")
    if rest and rest.split("\n", 1)[0].strip():
        raise TemplateSyntaxError(f"{where}, line 2: expected a blank line after the subject")
    body = rest.strip("\n")
    if not body.strip():
        raise TemplateSyntaxError(f"{where}: the body is empty")
    return subject.strip(), body + "\n"


def _describe(e: ValidationError) -> str:
    err = e.errors(include_input=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def load_bundle(folder: str | Path, *, limits: Limits = DEFAULT_LIMITS) -> TemplatePublished:
    """Read and check a bundle folder; returns the `template.published` payload."""
    folder = Path(folder)
    raw = _read(folder / MANIFEST, MAX_MANIFEST_BYTES)
    try:
        data: Any = nesting.loads(raw, what=MANIFEST)
        manifest = Manifest.model_validate(data)
    except json.JSONDecodeError as e:
        raise BundleInvalid(f"{MANIFEST} is not JSON (line {e.lineno})") from None
    except TooDeep as e:
        raise BundleInvalid(e.message) from None
    except ValidationError as e:
        raise BundleInvalid(f"{MANIFEST}: {_describe(e)}") from None
    languages: dict[str, dict[str, str]] = {}
    for lang, entry in manifest.languages.items():
        where = f"{manifest.id}/{lang}.md"
        subject, body = split_text_file(_read(folder / f"{lang}.md", limits.template_bytes), where)
        languages[lang] = {"direction": entry.direction, "subject": subject, "body": body}
    try:
        bundle = TemplatePublished.model_validate(
            {
                "template_id": manifest.id,
                "version": manifest.version,
                "publisher": manifest.publisher,
                "title": manifest.title,
                "languages": languages,
                "placeholders": [p.model_dump(exclude_none=True) for p in manifest.placeholders],
            }
        )
    except ValidationError as e:
        raise BundleInvalid(f"{manifest.id}: {_describe(e)}") from None
    check_bundle(bundle, limits)
    return bundle


def check_bundle(bundle: TemplatePublished, limits: Limits = DEFAULT_LIMITS) -> None:
    """The publisher's checks on a bundle however it arrived (a folder, or the hub): a plain
    title, and every language's text within the grammar, the character rules, the size
    bounds and the declared placeholders. Raises a `LetterError` naming what fails."""
    if FORBIDDEN.search(bundle.title):
        raise BundleInvalid(
            f"{bundle.template_id}: the title contains a bidi control, formatting or private-use character",
            field="title",
        )
    for lang in bundle.languages:
        parse_language(bundle, lang, limits)
    try:
        check_samples(bundle.placeholders, limits)
    except InvalidValue as e:
        raise BundleInvalid(f"{bundle.template_id}: {e.message}", field=e.field) from None


def bundle_diff(old: TemplatePublished, new: TemplatePublished) -> str:
    """What changed from one version of a bundle to another, as a unified diff per part (title,
    placeholders, each language's subject and body); empty when nothing did."""

    def parts(b: TemplatePublished) -> dict[str, list[str]]:
        out = {"title": [b.title], "placeholders": [_placeholder_line(p) for p in b.placeholders]}
        for lang, text in sorted(b.languages.items()):
            out[f"{lang}.md"] = [f"subject: {text.subject}", "", *text.body.splitlines()]
        return out

    before, after = parts(old), parts(new)
    chunks: list[str] = []
    for name in [*before, *(n for n in after if n not in before)]:
        chunks.extend(
            difflib.unified_diff(
                before.get(name, []),
                after.get(name, []),
                f"{old.template_id}@{old.version}/{name}" if name in before else "/dev/null",
                f"{new.template_id}@{new.version}/{name}" if name in after else "/dev/null",
                lineterm="",
            )
        )
    return "\n".join(chunks)


def _placeholder_line(p: Placeholder) -> str:
    need = "required" if p.required else "optional"
    return f"(({p.name})) {p.type}, {need}" + (f": {p.description}" if p.description else "")


def shared_bundle_dir() -> Path:
    """Where the bundles Ingrado distributes are installed (the `templates_shared` package)."""
    spec = importlib.util.find_spec("templates_shared")
    if spec is None or spec.origin is None:
        raise BundleInvalid("the shared template bundles (templates_shared) are not installed")
    return Path(spec.origin).parent


def load_shared_bundle(template_id: str, *, limits: Limits = DEFAULT_LIMITS) -> TemplatePublished:
    root = shared_bundle_dir()
    path = root / template_id
    if not (path / MANIFEST).is_file() or path.parent != root:
        raise BundleInvalid(f"no shared template bundle {template_id!r}")
    return load_bundle(path, limits=limits)
