"""RabbitMQ itself as a fault: restart the app (`rabbitmqctl stop_app` / `start_app`) and
wait until it answers again; read queue figures from the management API."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from urllib.parse import quote

import aio_pika
import httpx

from hub.config import Settings
from hub.errors import ManagementUnavailable
from hub.services import management
from tests.utils.hubs import remove_deployment


async def queue_info(settings: Settings, name: str) -> dict[str, object]:
    async with management(settings) as mgmt:
        return await mgmt.queue(settings.vhost, name) or {}


async def consumers(settings: Settings, name: str) -> int:
    return int((await queue_info(settings, name)).get("consumers", 0) or 0)  # type: ignore[call-overload]


def rabbitmqctl() -> str | None:
    return shutil.which("rabbitmqctl") or next(
        (p for p in ("/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl") if shutil.which(p)), None
    )


async def _ctl(*args: str, timeout: float = 120.0) -> None:
    ctl = rabbitmqctl()
    assert ctl is not None
    proc = await asyncio.create_subprocess_exec(
        ctl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({proc.returncode}): {out.decode()[-500:]}")


async def wait_answering(settings: Settings, timeout: float = 120.0) -> None:
    """Until an AMQP connection to our vhost opens again."""
    end = time.monotonic() + timeout
    while True:
        try:
            conn = await aio_pika.connect(settings.amqp_url_for(), timeout=5)
            await conn.close()
            return
        except Exception:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.5)


async def restart_app(settings: Settings, down_for: float = 3.0) -> float:
    """Stop the RabbitMQ application, keep it down `down_for` seconds, start it again and
    wait until it answers. Always tries to start it again. Returns seconds it was away."""
    started = time.monotonic()
    try:
        await _ctl("stop_app")
        await asyncio.sleep(down_for)
    finally:
        with contextlib.suppress(Exception):
            await _ctl("start_app")
        await _ctl("await_startup")
        await wait_answering(settings)
    return time.monotonic() - started


async def remove_slowly(settings: Settings) -> None:
    """`remove_deployment`, patient: deleting a vhost whose quorum queues moved thousands of
    messages can outlast one management API call on a busy broker (it goes on server-side),
    and the broker may be restarting (tests/faults)."""
    for attempt in range(12):
        try:
            await remove_deployment(settings)
            return
        except ManagementUnavailable:
            if attempt == 11:
                raise
            await asyncio.sleep(5)


async def connection_names(settings: Settings, user: str, *, want: str, timeout: float = 20.0) -> list[str]:
    """The `connection_name`s of `user`'s connections on our vhost, as the management UI shows
    them, once one starting with `want` is there (the statistics behind `/connections` come a
    few seconds after the connection)."""
    api_user, api_password = settings.api_credentials
    path = f"/api/vhosts/{quote(settings.vhost, safe='')}/connections"
    names: list[str] = []
    async with httpx.AsyncClient(base_url=settings.rabbitmq_api_url, auth=(api_user, api_password)) as http:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = (await http.get(path)).json()
            names = [
                str((row.get("client_properties") or {}).get("connection_name"))
                for row in rows
                if row.get("user") == user
            ]
            if any(n.startswith(want) for n in names):
                break
            await asyncio.sleep(0.5)
    return names


async def purge(settings: Settings, name: str) -> None:
    """Empty a queue through the management API, as an operator would by mistake (or a broker
    that lost its disk would): its messages are gone for good."""
    user, password = settings.api_credentials
    async with httpx.AsyncClient(base_url=settings.rabbitmq_api_url, auth=(user, password)) as http:
        r = await http.delete(f"/api/queues/{quote(settings.vhost, safe='')}/{quote(name, safe='')}/contents")
        r.raise_for_status()
