"""What counts as personal data in a log record, and the structlog processor that removes it.

Two nets: values under a personal-data key are replaced wherever they sit (nested dicts and
lists included), and any free-text value that contains a number shaped like a BSN that passes
the 11-test is masked, so an f-string that slipped through does not leak one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from schemas.validation import passes_eleven_test

__all__ = ["PERSONAL_FIELDS", "REDACTED", "passes_eleven_test", "redact_personal_data"]

REDACTED = "[redacted]"

PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        "bsn",
        "name",
        "names",
        "first_name",
        "first_names",
        "given_name",
        "family_name",
        "last_name",
        "surname",
        "prefix",
        "initials",
        "pupil",
        "pupil_name",
        "guardian",
        "guardians",
        "birth_date",
        "date_of_birth",
        "birthdate",
        "address",
        "street",
        "house_number",
        "postcode",
        "postal_code",
        "city",
        "phone",
        "phone_number",
        "telephone",
        "email",
        "e_mail",
        "dossier",
        "plaintext",
        "private_key",
        "passphrase",
        "password",
        "token",
        "secret",
    }
)

_BSN_LIKE = re.compile(r"(?<!\d)\d{9}(?!\d)")


def _mask_text(text: str) -> str:
    return _BSN_LIKE.sub(lambda m: REDACTED if passes_eleven_test(m.group(0)) else m.group(0), text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and k.lower() in PERSONAL_FIELDS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop personal-data fields and mask BSN-shaped numbers."""
    for key in list(event_dict):
        if key.lower() in PERSONAL_FIELDS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict
