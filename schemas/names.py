"""The wire names hub and connectors share: exchanges, queues, address prefixes and the event
types both sides single out. Defined here once; `hub.broker.topology` and the connector SDK
import them (and the exported contract, schemas.export, describes the same names)."""

from __future__ import annotations

__all__ = [
    "DEAD",
    "DELIVERY",
    "DLX",
    "GROUP_PREFIX",
    "INBOX_PREFIX",
    "INGRESS",
    "KEY_ROTATED",
    "RECEIPT_TYPE",
    "ROUTER_QUEUE",
]

INGRESS = "inbeeld.ingress"  # topic exchange every tenant publishes to
ROUTER_QUEUE = "inbeeld.router"  # the routers' competing-consumer queue, bound to INGRESS
DELIVERY = "inbeeld.delivery"  # direct exchange the router publishes each copy to
DLX = "inbeeld.dlx"  # dead-letter exchange
DEAD = "inbeeld.dead"  # what the operator lists and replays
INBOX_PREFIX = "inbeeld.inbox."  # a tenant's inbox: INBOX_PREFIX + code + "." + random key

GROUP_PREFIX = "group:"  # a recipient address naming a group

RECEIPT_TYPE = "nl.leerplicht.receipt"
KEY_ROTATED = "nl.leerplicht.key.rotated"
