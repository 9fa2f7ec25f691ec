"""`validate_payload`: the one entry point that checks a (decrypted) payload against its
event type's model in `schemas.events`.

Error messages name what is wrong, never the offending value: a rejected BSN, postcode or
phone number is personal data, and messages travel to logs and to `hub.rejected`.
"""

from __future__ import annotations

from pydantic import ValidationError

from schemas.envelope import describe_validation_error, error_field
from schemas.errors import SchemaInvalid
from schemas.events import Payload, spec_for

__all__ = ["validate_payload"]

MAX_MESSAGE_CHARS = 480  # fits HubRejected.message (500)


def validate_payload(event_type: str, data: object) -> Payload:
    """Validate the (decrypted) payload of an event of `event_type`.

    Returns the payload model instance. Raises `UnknownType` for a type not in the
    catalogue, and `SchemaInvalid` whose `field` is the dotted path of the first failing
    field (e.g. `pupil.bsn`, `guardians.0.phone`) and whose message names the field and
    why — never the value. The pydantic error is not chained: its text echoes the input.
    """
    spec = spec_for(event_type)
    try:
        return spec.model.model_validate(data)
    except ValidationError as exc:
        why = describe_validation_error(exc, limit=1, root="data")
        message = f"{spec.short_type} payload: {why}"
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        raise SchemaInvalid(message, field=error_field(exc) or "data") from None
