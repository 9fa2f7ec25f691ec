"""The CloudEvents 1.0 envelope, NL GOV profile (DESIGN section 3).

Structured JSON mode (`application/cloudevents+json`). Context attributes never carry
personal data; `data` is either a JOSE object (sealed events) or plain JSON for events that
carry no personal data (hub events, pings).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from schemas.errors import EnvelopeInvalid, TooLarge
from schemas.nesting import check_json

CONTENT_TYPE = "application/cloudevents+json"
SPEC_VERSION = "1.0"
TYPE_PREFIX = "nl.leerplicht."
MAX_MESSAGE_BYTES = 1_048_576  # 1 MiB; larger messages are refused with `too_large`

# urn:nld:oin:<20-digit OIN>:systeem:<name>  or  urn:nld:cbs:<code>:systeem:<name>
SOURCE_RE = re.compile(
    r"^urn:nld:(?:oin:(?P<oin>\d{20})|cbs:(?P<cbs>[A-Za-z0-9][A-Za-z0-9-]{1,31})):systeem:(?P<system>[a-z0-9][a-z0-9._-]{0,62})$"
)
# CloudEvents sequence extension, as the NL GOV profile includes it: `sequence` is a string,
# ordered lexicographically; `sequencetype` "Integer" says it counts 1, 2, 3, ... Zero-padded
# to a fixed width, the string order is the numeric order (the profile's "Integer" is a
# string-encoded integer; leading zeros keep it one, and a reader that parses it gets the
# number). 20 digits hold any unsigned 64-bit value, so the hub never has to widen them.
SEQUENCE_TYPE = "Integer"
SEQUENCE_WIDTH = 20
MAX_SEQUENCE = 2**63 - 1  # the hub's counter is a signed 64-bit column
_SEQUENCE_RE = re.compile(rf"^[0-9]{{{SEQUENCE_WIDTH}}}$")
TENANT_CODE_RE = r"^(?:GM\d{4}|[a-z][a-z0-9-]{1,31})$"
GROUP_RE = r"^group:[a-z][a-z0-9-]{1,62}$"

TenantCode = Annotated[str, Field(pattern=TENANT_CODE_RE, max_length=32)]
Recipient = Annotated[str, Field(pattern=rf"{TENANT_CODE_RE}|{GROUP_RE}", max_length=70)]


def source_urn(*, system: str, oin: str | None = None, cbs: str | None = None) -> str:
    """The `source` of a tenant's system: by OIN where it has one, else by CBS/tenant code."""
    if oin:
        return f"urn:nld:oin:{oin}:systeem:{system}"
    if cbs:
        return f"urn:nld:cbs:{cbs}:systeem:{system}"
    raise ValueError("a source needs an OIN or a CBS/tenant code")


class CloudEvent(BaseModel):
    """One Inbeeld event. Unknown extension attributes are refused, not carried along."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    specversion: Annotated[str, Field(pattern=r"^1\.0$")] = SPEC_VERSION
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] = Field(
        default_factory=lambda: str(uuid.uuid4())
    )
    source: Annotated[str, Field(max_length=200)]
    type: Annotated[str, Field(max_length=100, pattern=r"^nl\.leerplicht\.[a-z_]+(\.[a-z_]+)*(\.v\d+)?$")]
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Annotated[str, Field(max_length=100)] = "application/json"
    dataschema: Annotated[str | None, Field(max_length=300)] = None
    subject: Annotated[str | None, Field(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] = None
    # NL GOV / Inbeeld extensions (lowercase alphanumerics, as CloudEvents requires)
    recipients: Annotated[list[Recipient], Field(min_length=1, max_length=500)]
    correlationid: Annotated[str | None, Field(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] = None
    traceparent: Annotated[
        str | None, Field(pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
    ] = None
    # On the wire a zero-padded decimal string with `sequencetype`; an integer (what hubs
    # sent before) is still accepted for one release. In Python it is an int.
    sequence: Annotated[
        int | None,
        Field(ge=1, le=MAX_SEQUENCE),
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "string",
                        "pattern": f"^[0-9]{{{SEQUENCE_WIDTH}}}$",
                        "description": "Per-recipient position, zero-padded: "
                        "lexicographic order is numeric order (CloudEvents sequence extension).",
                    },
                    {
                        "type": "integer",
                        "minimum": 1,
                        "deprecated": True,
                        "description": "The integer form hubs sent before; accepted for one release.",
                    },
                    {"type": "null"},
                ],
                "default": None,
            }
        ),
    ] = None
    sequencetype: Literal["Integer"] | None = None
    data: Any = None

    @model_validator(mode="before")
    @classmethod
    def _id_required_on_the_wire(cls, raw: Any, info: ValidationInfo) -> Any:
        # Constructing an event may default its id; a received one must carry its own, or
        # its retries would get fresh ids and escape de-duplication.
        if info.context and info.context.get("wire") and isinstance(raw, dict):
            missing = [k for k in ("specversion", "id") if k not in raw]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required (CloudEvents 1.0)")
        return raw

    @field_validator("sequence", mode="before")
    @classmethod
    def _sequence_from_string(cls, v: Any) -> Any:
        if isinstance(v, str):
            if not _SEQUENCE_RE.match(v):
                raise ValueError(f"sequence must be {SEQUENCE_WIDTH} decimal digits (zero-padded)")
            return int(v)
        if isinstance(v, bool):  # JSON true is not a number
            raise ValueError("sequence must be a decimal string")
        return v

    @model_serializer(mode="wrap")
    def _sequence_as_string(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # JSON (the wire, `to_bytes`) gets the extension's string form and its type, always
        # together; Python dumps keep the int.
        out = handler(self)
        if info.mode_is_json() and isinstance(out, dict):
            out.pop("sequencetype", None)
            if self.sequence is not None:
                out["sequence"] = format_sequence(self.sequence)
                out["sequencetype"] = SEQUENCE_TYPE
        return out

    @field_validator("source")
    @classmethod
    def _source_is_urn(cls, v: str) -> str:
        if not SOURCE_RE.match(v):
            raise ValueError(
                "source must be urn:nld:oin:<OIN>:systeem:<name> or urn:nld:cbs:<code>:systeem:<name>"
            )
        return v

    @field_validator("time")
    @classmethod
    def _time_has_zone(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("time must carry a timezone (RFC 3339)")
        return v

    @property
    def short_type(self) -> str:
        """`transfer.offered` for `nl.leerplicht.transfer.offered`."""
        return self.type.removeprefix(TYPE_PREFIX)

    @property
    def source_party(self) -> tuple[str, str]:
        """("oin", <OIN>) or ("cbs", <code>) — whom the source claims to be."""
        m = SOURCE_RE.match(self.source)
        assert m is not None  # validated on construction
        return ("oin", m["oin"]) if m["oin"] else ("cbs", m["cbs"])

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def with_sequence(self, sequence: int) -> CloudEvent:
        """This event as stamped for one recipient (sent as `format_sequence(sequence)`)."""
        if type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE:
            raise ValueError(f"a sequence is an int from 1 to {MAX_SEQUENCE}")
        return self.model_copy(update={"sequence": sequence, "sequencetype": SEQUENCE_TYPE})


def format_sequence(sequence: int) -> str:
    """The wire form of a sequence number: zero-padded to `SEQUENCE_WIDTH` digits."""
    return f"{sequence:0{SEQUENCE_WIDTH}d}"


def parse_event(body: bytes) -> CloudEvent:
    """Parse a structured-mode CloudEvent, raising `EnvelopeInvalid` naming the first bad field.

    Refused before any parse: `TooLarge` over `MAX_MESSAGE_BYTES`, `TooDeep` (reason
    `too_deep`) nested beyond `schemas.nesting.MAX_DEPTH` — a body refused as too deep must
    not be handed to another JSON parser either."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise TooLarge(f"message is {len(body)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    check_json(body, what="the message")
    try:
        return CloudEvent.model_validate_json(body, context={"wire": True})
    except ValidationError as exc:
        raise EnvelopeInvalid(describe_validation_error(exc), field=_first_field(exc)) from None


def _first_field(exc: ValidationError) -> str | None:
    return error_field(exc)


_MAX_PATH_PART = 40


def error_path(loc: tuple[int | str, ...]) -> str:
    """`pupil.bsn`, `guardians.0.phone`. Over-long parts are cut: a key is input too."""
    return ".".join(
        s if len(s) <= _MAX_PATH_PART else s[: _MAX_PATH_PART - 1] + "…" for s in (str(p) for p in loc)
    )


def error_field(exc: ValidationError) -> str | None:
    """The dotted path of the first failing field, or None when the whole input failed."""
    errors = exc.errors(include_input=False, include_url=False)
    return error_path(errors[0]["loc"]) if errors and errors[0]["loc"] else None


def describe_validation_error(exc: ValidationError, limit: int = 3, root: str = "body") -> str:
    """A short human sentence naming the fields and why, without echoing the input values.

    `root` names the whole input when the error is not about one field."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        loc = error_path(err["loc"]) or root
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
