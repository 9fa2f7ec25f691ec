"""The caller's own inbox: ask for its retained copies again after an outage (hub.resync)."""

from __future__ import annotations

from typing import Self

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub import resync
from hub.api.deps import CurrentTenant, DbDep, SettingsDep
from hub.api.errors import problems
from hub.retention import MAX_PER_RESYNC
from schemas.envelope import MAX_SEQUENCE

router = APIRouter(tags=["inbox"])


class ResyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_sequence: int = Field(
        ge=1, le=MAX_SEQUENCE, description="The first sequence number to send again (the gap's start)."
    )
    to_sequence: int | None = Field(
        None,
        ge=1,
        le=MAX_SEQUENCE,
        description="The last one to send again (default: the last delivered so far).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to_sequence is not None and self.to_sequence < self.from_sequence:
            raise ValueError("to_sequence must not be below from_sequence")
        return self


class ResyncResult(BaseModel):
    """What was published to your inbox again."""

    republished: int = Field(ge=0, description="Copies published again, each unchanged.")
    first_sequence: int | None = Field(None, description="The sequence of the first one (none: nothing).")
    last_sequence: int | None = Field(None, description="The sequence of the last one (none: nothing).")
    next_sequence: int | None = Field(
        None,
        description=f"Ask again from here: more than {MAX_PER_RESYNC} copies were asked for, or "
        "your inbox was full and refused one (`inbox_full`). None: all asked for was sent.",
    )
    inbox_full: bool = Field(description="Your inbox refused a copy; consume it, then ask again.")


_DESCRIPTION = (
    "Publishes the copies the hub retained for your inbox (`INBEELD_RETENTION_DAYS`, default "
    "30) from `from_sequence` on, up to `to_sequence` or the last delivered, to your own inbox "
    "again: the same bytes (sealed data stays the ciphertext it was), message id and sequence, "
    f"oldest first, at most {MAX_PER_RESYNC} per request. Your connector drops those it had "
    "already by their id. Only your own inbox: the tenant is the token's. A range not "
    "delivered yet republishes nothing; one older than the hub keeps is refused with 410 "
    "`before_retention`."
)


@router.post(
    "/inbox/resync",
    summary="Send the copies of your inbox again from a sequence (after an outage)",
    description=_DESCRIPTION,
    responses=problems(400, 401, 403, 410, 422, 503),
)
async def post_resync(
    body: ResyncRequest, db: DbDep, settings: SettingsDep, who: CurrentTenant
) -> ResyncResult:
    assert who.tenant is not None
    done = await resync.resync(settings, db, who.tenant, body.from_sequence, body.to_sequence)
    return ResyncResult(
        republished=done.republished,
        first_sequence=done.first_sequence,
        last_sequence=done.last_sequence,
        next_sequence=done.next_sequence,
        inbox_full=done.refused,
    )
