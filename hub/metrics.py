"""The hub's Prometheus metrics (prometheus-client's default registry). Labels are bounded:
tenant codes and reason codes, never event ids or anything a sender chooses freely."""

from __future__ import annotations

from prometheus_client import Counter

UNKNOWN_SENDER_LABELS = 100  # distinct claimed users counted by name; the rest as "other"

unknown_sender = Counter(
    "inbeeld_router_unknown_sender",
    "Messages on the router queue whose user_id names no tenant (or is missing); dropped, "
    "their bodies not kept.",
    ["claimed_user"],
)

_claimed: set[str] = set()


def count_unknown_sender(user_id: str | None) -> None:
    """Count one message from an unknown broker user. The label is the `user_id` the message
    claimed (the broker validated it: it is the connection's user) or `none`; after
    `UNKNOWN_SENDER_LABELS` distinct users, `other`, so a flood cannot grow the series."""
    label = (user_id or "none")[:64]
    if label not in _claimed:
        if len(_claimed) >= UNKNOWN_SENDER_LABELS:
            label = "other"
        else:
            _claimed.add(label)
    unknown_sender.labels(claimed_user=label).inc()
