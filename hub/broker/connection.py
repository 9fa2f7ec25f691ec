"""Opening AMQP connections with one clear error when the broker is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPConnectionError, AMQPError, ProbableAuthenticationError

from hub.errors import BrokerUnavailable
from schemas.errors import InbeeldError


class BrokerAccessRefused(InbeeldError):
    reason = "broker_access_refused"


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


async def connect(url: str, shown_url: str, timeout: float = 10.0) -> AbstractRobustConnection:
    """A robust (reconnecting) connection; fails fast and clearly if the first attempt fails."""
    try:
        with quiet_first_attempt():
            return await asyncio.wait_for(aio_pika.connect_robust(url, timeout=timeout), timeout)
    except ProbableAuthenticationError:
        raise BrokerAccessRefused(f"RabbitMQ at {shown_url} refused the credentials") from None
    except (TimeoutError, OSError, AMQPConnectionError) as exc:
        raise BrokerUnavailable(shown_url, type(exc).__name__) from None
    except AMQPError as exc:  # e.g. 530 NOT_ALLOWED: the user may not use this vhost
        raise BrokerAccessRefused(
            f"RabbitMQ at {shown_url} refused the connection ({type(exc).__name__}): "
            "the user has no access to this vhost (suspended?)"
        ) from None
