"""The workspace's roles (what each may do: `connectors.accounts`), apart from the accounts and
their store, so that the command line can name them in its help without loading either."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ACTING_ROLES", "EDITING_ROLES", "ROLES", "Role"]

Role = Literal["officer", "bureau_officer", "viewer", "admin", "editor"]
ROLES: tuple[str, ...] = get_args(Role)
ACTING_ROLES = frozenset({"officer", "bureau_officer"})  # may open dossiers and answer offers
EDITING_ROLES = frozenset({"editor", "admin"})  # may use the template studio
