"""What a composed letter is: the template's text with the values put in, before layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, slots=True)
class Letterhead:
    """The municipality's own details, printed at the top of every letter (trusted input,
    still escaped and isolated like everything else)."""

    name: str
    return_address: tuple[str, ...] = ()
    department: str | None = None
    phone: str | None = None
    email: str | None = None
    website: str | None = None
    visiting_address: tuple[str, ...] = ()  # printed under the name; the return address goes
    logo: Path | None = None  # in the envelope window. A PNG or SVG, printed 14 mm high.

    @property
    def lines(self) -> tuple[str | None, ...]:
        """Every line the letterhead prints (None where a detail is not set)."""
        return (
            self.name,
            self.department,
            self.phone,
            self.email,
            self.website,
            *self.return_address,
            *self.visiting_address,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """A piece of text. `placeholder` is set for an inserted value, which layouts isolate
    (<bdi>, FSI/PDI) so it keeps its own direction inside text of the other direction."""

    text: str
    bold: bool = False
    placeholder: str | None = None
    kind: Literal["text", "break"] = "text"


LINE_BREAK = Run("\n", kind="break")


@dataclass(frozen=True, slots=True)
class Block:
    kind: Literal["paragraph", "heading", "list"]
    items: tuple[tuple[Run, ...], ...]
    level: int = 0


@dataclass(frozen=True, slots=True)
class LetterPart:
    """The letter in one language."""

    lang: str
    direction: Literal["ltr", "rtl"]
    subject: tuple[Run, ...]
    blocks: tuple[Block, ...]

    @property
    def subject_text(self) -> str:
        return "".join(r.text for r in self.subject)


@dataclass(frozen=True, slots=True)
class Letter:
    """A composed letter: which template it came from (`ref` = `template_id@version`) and its
    text in one language, or two for a bilingual letter (Dutch first)."""

    template_id: str
    version: str
    title: str
    letter_date: date
    parts: tuple[LetterPart, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        return f"{self.template_id}@{self.version}"

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(p.lang for p in self.parts)

    @property
    def bilingual(self) -> bool:
        return len(self.parts) > 1


@dataclass(frozen=True, slots=True)
class RenderedLetter:
    letter: Letter
    html: str
