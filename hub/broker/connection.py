"""Opening AMQP connections with one clear error when the broker is away, and the broker
adapter's translation of the library's "briefly away" errors (`BROKER_AWAY`) into the
project's `hub.errors.Transient` (`broker_away`), so no caller matches aiormq's exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from aio_pika.connection import make_url
from aiormq.exceptions import (
    AMQPConnectionError,
    AMQPError,
    AuthenticationError,
    ChannelInvalidStateError,
    ConnectionNotAllowed,
    ProbableAuthenticationError,
)

from hub.broker.failover_connection import FailoverConnection
from hub.errors import BrokerUnavailable, Transient
from schemas.amqp_addresses import node_urls, shown_addresses
from schemas.errors import InbeeldError
from schemas.tls import handshake_failure, presents_certificate

# What the broker raises when it or the channel is briefly away: worth retrying.
BROKER_AWAY = (AMQPError, ChannelInvalidStateError, ConnectionError)


class BrokerAccessRefused(InbeeldError):
    reason = "broker_access_refused"


@asynccontextmanager
async def broker_away() -> AsyncIterator[None]:
    """Around a publish or another call on an open channel: the broker or the channel briefly
    away raises `Transient` (the library error as its cause); anything else passes unchanged."""
    try:
        yield
    except BROKER_AWAY as exc:
        raise Transient(f"the broker is away ({type(exc).__name__})") from exc


@contextmanager
def quiet_first_attempt() -> Iterator[None]:
    """aiormq logs every failed connect (with the URL); the first failure is ours to report,
    as one line, so its own log line is muted for that attempt only."""
    logger = logging.getLogger("aiormq.connection")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def open_connection(
    url: str, timeout: float = 10.0, *, robust: bool = False, **kwargs: Any
) -> AbstractConnection:
    """aio_pika.connect(_robust), except that a connection that fails to open is closed here.
    aio-pika leaves it to the object's __del__, which schedules close() on whatever loop runs
    the garbage collector - and, outside a running loop, leaves an un-awaited coroutine.

    `url` may name several cluster nodes (`schemas.amqp_addresses`): the first that answers
    (within `timeout` each) is used; a robust connection then fails over to the others
    (`FailoverConnection`). A refusal (credentials, vhost) is the cluster's answer: it is
    raised at once, not tried on the next node."""
    urls = node_urls(url)
    for k, node_url in enumerate(urls):
        connection: AbstractConnection
        if len(urls) == 1:
            cls = aio_pika.RobustConnection if robust else aio_pika.Connection
            connection = cls(make_url(url), **kwargs)
        elif robust:
            connection = FailoverConnection(urls, start=k, **kwargs)
        else:
            connection = aio_pika.Connection(make_url(node_url), **kwargs)
        last = k == len(urls) - 1
        try:
            # A node that does not answer is not the answer while another may: aiormq's own
            # log line for it (with the URL) is muted; the last node's failure is reported.
            with contextlib.nullcontext() if last else quiet_first_attempt():
                await asyncio.wait_for(connection.connect(timeout=timeout), timeout)
        except BaseException as exc:
            await connection.close()
            if last or not _node_away(exc):
                raise
            continue
        return connection
    raise AssertionError("unreachable: node_urls returns at least one URL")


def _node_away(exc: BaseException) -> bool:
    """This node did not answer (another may): not a refusal, not a cancellation."""
    if isinstance(exc, (ProbableAuthenticationError, AuthenticationError, ConnectionNotAllowed)):
        return False
    return isinstance(exc, (TimeoutError, OSError, AMQPConnectionError))


def connection_name(role: str) -> str:
    """What the broker's management UI shows for a hub connection: its role and process."""
    return f"{role} {socket.gethostname()}/{os.getpid()}"


async def connect(
    url: str,
    shown_url: str,
    timeout: float = 10.0,
    *,
    name: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AbstractRobustConnection:
    """A robust (reconnecting) connection, named `name` (default: `inbeeld` and this process)
    for the broker's management UI; fails fast and clearly if the first attempt fails.
    `ssl_context` (`Settings.amqp_ssl_context`): CA bundle and client certificate for amqps://."""
    properties = {"connection_name": name or connection_name("inbeeld")}
    try:
        with quiet_first_attempt():
            return cast(
                AbstractRobustConnection,
                await open_connection(
                    url, timeout, robust=True, client_properties=properties, ssl_context=ssl_context
                ),
            )
    except ProbableAuthenticationError:
        raise BrokerAccessRefused(f"RabbitMQ at {shown_url} refused the credentials") from None
    except (TimeoutError, OSError, AMQPConnectionError) as exc:
        parts = urlsplit(url)
        if parts.scheme == "amqps":
            where = f"RabbitMQ at {shown_addresses(url)}"
            names = ("INBEELD_AMQP_TLS_CA_FILE", "INBEELD_AMQP_TLS_CERT_FILE")
            why = handshake_failure(exc, where, client_cert=presents_certificate(ssl_context), settings=names)
            if why is not None:
                raise BrokerAccessRefused(why) from None
        raise BrokerUnavailable(shown_url, type(exc).__name__) from None
    except AMQPError as exc:  # e.g. 530 NOT_ALLOWED: the user may not use this vhost
        raise BrokerAccessRefused(
            f"RabbitMQ at {shown_url} refused the connection ({type(exc).__name__}): "
            "the user has no access to this vhost (suspended?)"
        ) from None
