"""The message catalogue: both languages say everything, every key a page uses exists, dates
are shown in Amsterdam time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hub import flows
from hub.web import i18n, memberships, pages
from schemas.transfers import STATES


def test_dutch_and_english_have_the_same_messages() -> None:
    assert set(i18n.CATALOGUE["nl"]) == set(i18n.CATALOGUE["en"])
    for key, text in i18n.CATALOGUE["nl"].items():
        placeholders = set(re.findall(r"{(\w+)}", text))
        assert placeholders == set(re.findall(r"{(\w+)}", i18n.CATALOGUE["en"][key])), key


def test_every_key_the_templates_use_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for template in pages.TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9]+)["']""", template.read_text()))
        used |= set(
            re.findall(
                r"""["']((?:nav|overview|dl|login|tenants|error)\.[a-z_0-9]+)["']""", template.read_text()
            )
        )
    used = {k for k in used if not k.endswith((".", "_"))}  # the start of a key made in the template:
    used |= {f"tenants.{a}{end}" for a in ("suspend", "reinstate") for end in ("", "_label", "_done")}
    used |= {"overview.database", "overview.broker"}
    used |= {f"activity.{o}" for o in flows.OUTCOMES} | {f"chart.count_{o}" for o in flows.OUTCOMES}
    used |= {"activity.verified_intact", "activity.verified_broken"}
    used |= {f"transfer.{s}" for s in STATES} | {f"transfer.step_{s}" for s in STATES}
    used |= {"transfer.step_reminder", "transfer.step_delivery_failed"}
    used |= {f"notice.{s}" for s in flows.NOTICE_STATES} | {f"groups.{d}" for d in memberships.DONE}
    used |= {"tenants.confirm_title", "tenants.confirm_text", "tenants.confirm", "tenants.cancel"}
    assert used
    assert used <= set(i18n.CATALOGUE["nl"]), used - set(i18n.CATALOGUE["nl"])


def test_times_are_shown_in_amsterdam() -> None:
    assert i18n.local_time(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == "01-07-2026 14:00:00"  # CEST
    assert i18n.local_time(datetime(2026, 12, 1, 12, 0, tzinfo=UTC)) == "01-12-2026 13:00:00"  # CET
    assert i18n.local_time(None) == ""
