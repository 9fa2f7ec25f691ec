"""The few words the trusted layout writes itself, per language, and date formatting."""

from __future__ import annotations

from datetime import date

LANGUAGE_NAMES = {  # endonyms: each language names itself
    "nl": "Nederlands",
    "en": "English",
    "pl": "Polski",
    "tr": "Türkçe",
    "ar": "العربية",
    "bg": "Български",
}

DATE_LABEL = {"nl": "Datum", "en": "Date", "pl": "Data", "tr": "Tarih", "ar": "التاريخ", "bg": "Дата"}

_MONTHS = {
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "en": "January February March April May June July August September October November December",
    # Polish dates take the genitive month name.
    "pl": "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września października"
    " listopada grudnia",
    "tr": "Ocak Şubat Mart Nisan Mayıs Haziran Temmuz Ağustos Eylül Ekim Kasım Aralık",
    "ar": "يناير فبراير مارس أبريل مايو يونيو يوليو أغسطس سبتمبر أكتوبر نوفمبر ديسمبر",
    "bg": "януари февруари март април май юни юли август септември октомври ноември декември",
}
MONTHS = {lang: tuple(names.split()) for lang, names in _MONTHS.items()}


def format_date(d: date, lang: str) -> str:
    """`17 april 2026`, `17 kwietnia 2026 r.`, `17 април 2026 г.`; Western digits everywhere,
    so a date reads the same in an Arabic line as on the envelope."""
    text = f"{d.day} {MONTHS[lang][d.month - 1]} {d.year}"
    if lang == "pl":
        return text + " r."
    if lang == "bg":
        return text + " г."
    return text
