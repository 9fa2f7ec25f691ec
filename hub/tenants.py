"""What the hub knows of a tenant (`TenantInfo`) and the kinds of tenant (DESIGN section 1).

Plain values: the registry (`hub.registry`) builds them from the store, and the routing
rules (`hub.routing`) and the workflows read them without touching a database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.envelope import source_urn

__all__ = ["CODE_PATTERNS", "PUPIL_KINDS", "TENANT_KINDS", "TenantInfo", "TenantKind"]

TenantKind = Literal["municipality", "regional_bureau", "association"]
TENANT_KINDS: tuple[TenantKind, ...] = ("municipality", "regional_bureau", "association")
# The code each kind of tenant is registered under: a municipality by its CBS code (GM + four
# digits), any other by a declared lowercase slug (which can never be mistaken for a CBS code).
CODE_PATTERNS: dict[str, str] = {
    "municipality": r"^GM[0-9]{4}$",
    "regional_bureau": r"^[a-z][a-z0-9-]{1,31}$",
    "association": r"^[a-z][a-z0-9-]{1,31}$",
}
CODE_EXAMPLES: dict[str, str] = {
    "municipality": "a CBS code: GM and four digits, like GM0518",
    "regional_bureau": "a lowercase slug (letters, digits, -), like rbl-haaglanden",
    "association": "a lowercase slug (letters, digits, -), like ingrado",
}
# The kinds that hold pupil data (DESIGN section 2): they transfer pupils and send notices.
# An association publishes templates and carries no pupil data.
PUPIL_KINDS: frozenset[str] = frozenset({"municipality", "regional_bureau"})


@dataclass(frozen=True)
class TenantInfo:
    code: str
    name: str
    kind: str
    oin: str | None
    active: bool
    broker_username: str | None
    inbox: str | None = None  # its inbox queue (hub.broker.topology.new_inbox_name)
    removed: bool = False  # `inbeeld tenant remove`: kept for the audit chain, never active again

    @property
    def source_prefix(self) -> str:
        """Every `source` this tenant may use starts with this."""
        return source_urn(system="", oin=self.oin, cbs=None if self.oin else self.code)

    def owns_source(self, source: str) -> bool:
        return source.startswith(self.source_prefix) and len(source) > len(self.source_prefix)
