"""The baseline: a plain aio-pika relay in its own process. It consumes 1 KiB persistent
messages from a quorum queue, republishes each with a publisher confirm to another quorum
queue, then acks — what the router does minus everything the hub adds (store, checks).

`concurrent` is the natural aio-pika relay (callbacks run concurrently, prefetch 64, the
router's prefetch); `serial` handles one message at a time, as the router does, to show
how much of the gap between the two is the serialisation alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.deployment import Deployment
from bench.payloads import raw_body
from bench.traffic import Arrivals

SRC = "bench.relay.in"
DST = "bench.relay.out"
QUORUM = {"x-queue-type": "quorum"}
PREFETCH = 64


async def _relay(url: str, serial: bool) -> None:
    conn = await aio_pika.connect(url)
    channel = await conn.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=PREFETCH)
    src = await channel.get_queue(SRC)
    lock = asyncio.Lock() if serial else None

    async def handle(message: AbstractIncomingMessage) -> None:
        out = aio_pika.Message(
            message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type=message.content_type
        )
        await channel.default_exchange.publish(out, routing_key=DST)
        await message.ack()

    async def on_message(message: AbstractIncomingMessage) -> None:
        if lock is None:
            await handle(message)
        else:
            async with lock:
                await handle(message)

    await src.consume(on_message)
    await asyncio.Future()  # until terminated


def _relay_main(url: str, serial: bool) -> None:
    asyncio.run(_relay(url, serial))


async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
    """The relay's two quorum queues, empty."""
    for name in (SRC, DST):
        queue = await channel.declare_queue(name, durable=True, arguments=QUORUM)
        await queue.purge()


def start(dep: Deployment, *, serial: bool = False) -> multiprocessing.process.BaseProcess:
    """The relay process, consuming SRC and republishing to DST until terminated."""
    proc = multiprocessing.get_context("spawn").Process(
        target=_relay_main, args=(dep.settings.amqp_url_for(), serial), daemon=True
    )
    proc.start()
    return proc


async def measure(dep: Deployment, n: int, *, serial: bool = False, size: int = 1024) -> dict[str, Any]:
    conn = await dep.admin()
    channel = await conn.channel(publisher_confirms=True)
    await declare(channel)
    body = raw_body(size)
    for i in range(0, n, 256):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=SRC
                )
                for _ in range(min(256, n - i))
            )
        )
    arrivals = Arrivals(n)
    reader = await conn.channel()
    await reader.set_qos(prefetch_count=256)
    out = await reader.get_queue(DST)

    async def on_out(message: AbstractIncomingMessage) -> None:
        arrivals.add()

    await out.consume(on_out, no_ack=True)
    proc = start(dep, serial=serial)
    try:
        complete = await arrivals.wait(timeout=60 + n / 100)
    finally:
        proc.terminate()
        proc.join(10)
        await reader.close()
        await channel.close()
    return {
        "messages": n,
        "received": len(arrivals.times),
        "complete": complete,
        "body_bytes": size,
        "mode": "serial" if serial else "concurrent",
        "prefetch": PREFETCH,
        "msgs_per_s": round(arrivals.rate(), 1),
    }
