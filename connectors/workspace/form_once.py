"""One send per form. A form that sends something (a notice, a transfer offer) carries a random
form id; the first submit claims it in the connector's store before sending, a second submit
of the same form (a double click, the back button, two tabs) finds the claim and sends nothing
again. The claim records what the first submit sent, so the page can name it; if sending
fails, the claim is released and the form may be sent again."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from connectors.schema import state
from connectors.store import LocalStore

__all__ = ["FORM_ID", "claim", "new_id", "release", "sent"]

FORM_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_id() -> str:
    return secrets.token_urlsafe(18)


def _key(kind: str, form_id: str) -> str:
    return f"{kind}_form:" + hashlib.sha256(form_id.encode()).hexdigest()[:48]


async def claim(store: LocalStore, kind: str, form_id: str) -> str | None:
    """Claim the `kind` form `form_id` for one send: None if this call claimed it, else what
    the first submit sent ("" while that send is under way)."""
    try:
        async with store.engine.begin() as conn:
            await conn.execute(insert(state).values(key=_key(kind, form_id), value=""))
    except IntegrityError:
        return await store.get_state(_key(kind, form_id)) or ""
    return None


async def sent(store: LocalStore, kind: str, form_id: str, what: str) -> None:
    """The claimed form sent `what` (a notice or transfer id)."""
    await store.set_state(_key(kind, form_id), what)


async def release(store: LocalStore, kind: str, form_id: str) -> None:
    """Nothing was sent: the form may be submitted again."""
    async with store.engine.begin() as conn:
        await conn.execute(delete(state).where(state.c.key == _key(kind, form_id)))
