"""The identity the municipality's reverse proxy vouches for (its single sign-on), as an
alternative to the workspace's own login.

With `[workspace] trusted_header` set (e.g. `X-Remote-User`), a request that comes straight
from one of `trusted_proxies` and carries that header is the account the header names: the
account must exist in the workspace (`user add NAME --role ROLE --sso`), which gives its role.
The same header from any other address is ignored and logged: someone is talking to the
workspace past the proxy. The proxy must remove the header from what clients send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from starlette.requests import Request

__all__ = ["ProxyIdentity"]

log = structlog.get_logger("inbeeld.connector.workspace")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyIdentity:
    header: str
    proxies: tuple[Network, ...]

    @classmethod
    def of(cls, header: str, proxies: Iterable[str]) -> ProxyIdentity:
        return cls(header, tuple(ipaddress.ip_network(p, strict=False) for p in proxies))

    def _trusted(self, peer: str | None) -> bool:
        if peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def user(self, request: Request) -> str | None:
        """The login name the proxy vouches for, or None (no header, or not from a proxy)."""
        value = request.headers.get(self.header)
        if value is None:
            return None
        peer = request.client.host if request.client else None
        if not self._trusted(peer):
            log.warning("workspace.proxy_header_ignored", peer=peer, header=self.header)
            return None
        return value.strip() or None
