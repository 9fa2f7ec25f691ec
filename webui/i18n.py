"""UI text in Dutch first, English available: the language of a request, a translator over the
catalogue an app gives, and dates shown in Europe/Amsterdam time.

The language is, in order: a `lang` query parameter (remembered in a cookie), that cookie, the
browser's Accept-Language, Dutch. A catalogue maps each language to its messages (key -> text
with `{name}` placeholders); a key missing in a language falls back to Dutch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.requests import Request

LANGUAGES = ("nl", "en")
DEFAULT = "nl"
COOKIE = "inbeeld_lang"
ZONE = ZoneInfo("Europe/Amsterdam")

Translate = Callable[..., str]
Catalogue = Mapping[str, Mapping[str, str]]


def choose(request: Request) -> str:
    """The request's language (see the module doc)."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return remembered
    for part in request.headers.get("accept-language", "")[:200].split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT


def translator(catalogue: Catalogue, lang: str) -> Translate:
    messages = catalogue.get(lang, catalogue[DEFAULT])

    def translate(key: str, **values: object) -> str:
        text = messages.get(key) or catalogue[DEFAULT][key]
        return text.format(**values) if values else text

    return translate


def local_day_start(day: str) -> datetime:
    """The start of a day (YYYY-MM-DD) in Europe/Amsterdam; ValueError if it is not a date."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=ZONE)


def local_time(moment: datetime | None, with_date: bool = True) -> str:
    """A time for people here: Europe/Amsterdam, day-month-year, 24 hours."""
    if moment is None:
        return ""
    local = moment.astimezone(ZONE)
    return local.strftime("%d-%m-%Y %H:%M:%S" if with_date else "%H:%M:%S")
