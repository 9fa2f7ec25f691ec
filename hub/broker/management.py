"""A small client for the RabbitMQ management HTTP API (httpx): vhosts, users, permissions,
connections. The hub provisions tenants through it; tests make their own vhosts with it."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from hub.errors import ManagementUnavailable
from schemas.errors import InbeeldError


class ManagementError(InbeeldError):
    reason = "broker_management_error"


def _q(name: str) -> str:
    return quote(name, safe="")


class Management:
    """`base_url` names one node's API, or several comma-separated (a cluster: any node
    answers for all of them). A call goes to the node that answered last and moves on to the
    next when that one cannot be reached; only when none can is it ManagementUnavailable."""

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.base_urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        if not self.base_urls:
            raise ManagementError("no RabbitMQ management API address given (INBEELD_RABBITMQ_API_URL)")
        self._current = 0
        self._client = httpx.AsyncClient(auth=(user, password), timeout=timeout)

    @property
    def base_url(self) -> str:
        """The address in use: the one that answered last (the first until a call moved on)."""
        return self.base_urls[self._current]

    async def __aenter__(self) -> Management:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        failures: list[tuple[str, str]] = []
        for step in range(len(self.base_urls)):
            at = (self._current + step) % len(self.base_urls)
            try:
                resp = await self._client.request(
                    method, f"{self.base_urls[at]}/api{path}", json=json, headers=headers
                )
            except httpx.TransportError as exc:
                failures.append((self.base_urls[at], type(exc).__name__))
                continue
            self._current = at
            return resp
        if len(failures) == 1:
            raise ManagementUnavailable(*failures[0])
        raise ManagementUnavailable(", ".join(self.base_urls), "; ".join(f"{u}: {e}" for u, e in failures))

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        resp = await self._request(method, path, json=json)
        if resp.status_code == 401:
            raise ManagementError(
                f"the RabbitMQ management API at {self.base_url} refused the hub's credentials "
                "(INBEELD_RABBITMQ_API_USER/PASSWORD, or the user and password of INBEELD_AMQP_URL)"
            )
        if resp.status_code == 404 and method in ("GET", "DELETE"):
            return None
        if resp.status_code >= 400:
            raise ManagementError(f"{method} {path} failed: {resp.status_code} {resp.text[:200]}")
        return resp.json() if resp.content else None

    async def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/overview")
        return result

    async def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes with their resource figures (fd_total, fd_used, mem_used, …)."""
        result: list[dict[str, Any]] = await self._call("GET", "/nodes") or []
        return result

    async def create_vhost(self, vhost: str, description: str = "inbeeld") -> None:
        await self._call("PUT", f"/vhosts/{_q(vhost)}", {"description": description})

    async def vhost_description(self, vhost: str) -> str | None:
        """The vhost's description; None when there is no such vhost."""
        found: dict[str, Any] | None = await self._call("GET", f"/vhosts/{_q(vhost)}")
        return None if found is None else str(found.get("description") or "")

    async def delete_vhost(self, vhost: str) -> None:
        await self._call("DELETE", f"/vhosts/{_q(vhost)}")

    async def vhost_exists(self, vhost: str) -> bool:
        return await self._call("GET", f"/vhosts/{_q(vhost)}") is not None

    async def put_user(self, user: str, password: str, tags: str = "") -> None:
        await self._call("PUT", f"/users/{_q(user)}", {"password": password, "tags": tags})

    async def delete_user(self, user: str) -> None:
        await self._call("DELETE", f"/users/{_q(user)}")

    async def list_users(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/users") or []
        return result

    async def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        await self._call(
            "PUT",
            f"/permissions/{_q(vhost)}/{_q(user)}",
            {"configure": configure, "write": write, "read": read},
        )

    async def get_permissions(self, vhost: str, user: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._call("GET", f"/permissions/{_q(vhost)}/{_q(user)}")
        return result

    async def clear_permissions(self, vhost: str, user: str) -> None:
        await self._call("DELETE", f"/permissions/{_q(vhost)}/{_q(user)}")

    async def set_topic_permissions(
        self, vhost: str, user: str, exchange: str, write: str, read: str
    ) -> None:
        await self._call(
            "PUT",
            f"/topic-permissions/{_q(vhost)}/{_q(user)}",
            {"exchange": exchange, "write": write, "read": read},
        )

    async def get_topic_permissions(self, vhost: str, user: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            await self._call("GET", f"/topic-permissions/{_q(vhost)}/{_q(user)}") or []
        )
        return result

    async def vhost_permissions(self, vhost: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/vhosts/{_q(vhost)}/permissions") or []
        return result

    async def get_user(self, user: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._call("GET", f"/users/{_q(user)}")
        return result

    async def set_user_limit(self, user: str, name: str, value: int) -> None:
        """A per-user limit (`max-connections`, `max-channels`; RabbitMQ 3.8.10 and later)."""
        await self._call("PUT", f"/user-limits/{_q(user)}/{_q(name)}", {"value": value})

    async def user_limits(self, user: str) -> dict[str, int]:
        """The user's limits, e.g. {"max-connections": 16, "max-channels": 128}; {} when none."""
        rows: list[dict[str, Any]] = await self._call("GET", f"/user-limits/{_q(user)}") or []
        return {k: int(v) for row in rows for k, v in (row.get("value") or {}).items()}

    async def connections_of(self, user: str) -> list[dict[str, Any]]:
        """The user's connections from the broker's connection tracking (name, vhost, node).

        `/connections/username/...` is read from the tracking table, which is current at once;
        `/connections` comes from the statistics database and shows a new connection only
        after the next statistics emission (up to ~5 s), so it would miss fresh ones."""
        conns: list[dict[str, Any]] = await self._call("GET", f"/connections/username/{_q(user)}") or []
        return conns

    async def drop_connections(self, user: str, reason: str) -> None:
        """Ask the broker to close every connection `user` has now, without waiting for it
        (the caller may not mind a client that reconnects at once)."""
        resp = await self._request(
            "DELETE", f"/connections/username/{_q(user)}", headers={"X-Reason": reason}
        )
        if resp.status_code >= 400 and resp.status_code != 404:
            raise ManagementError(f"closing the connections of {user} failed: {resp.status_code}")

    async def close_connections_of(
        self, user: str, reason: str = "access revoked", *, timeout: float = 5.0
    ) -> int:
        """Close every connection of `user` and wait until the broker reports none left.

        Returns how many connections were open. Raises ManagementError if some survive
        `timeout` seconds (a connection the broker would not close is a security problem,
        not a detail)."""
        first = await self.connections_of(user)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        remaining = first
        while remaining:
            resp = await self._request(
                "DELETE", f"/connections/username/{_q(user)}", headers={"X-Reason": reason}
            )
            if resp.status_code >= 400 and resp.status_code != 404:
                raise ManagementError(f"closing the connections of {user} failed: {resp.status_code}")
            if loop.time() > deadline:
                raise ManagementError(f"{len(remaining)} connection(s) of {user} are still open")
            await asyncio.sleep(0.05)
            remaining = await self.connections_of(user)
        return len(first)

    async def delete_queue(self, vhost: str, name: str) -> None:
        await self._call("DELETE", f"/queues/{_q(vhost)}/{_q(name)}")

    async def list_queues(self, vhost: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", f"/queues/{_q(vhost)}") or []
        return result

    async def queue_bindings(self, vhost: str, name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            await self._call("GET", f"/queues/{_q(vhost)}/{_q(name)}/bindings") or []
        )
        return result

    async def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._call("GET", f"/queues/{_q(vhost)}/{_q(name)}")
        return result

    async def exchange(self, vhost: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._call("GET", f"/exchanges/{_q(vhost)}/{_q(name)}")
        return result
