"""How a sending command reports the hub's verdict (the waiting itself: `connectors.verdict`).

    --wait / --no-wait   wait for the hub's verdict (default), or return once the event is sent
    --timeout SECONDS    how long to wait (default 30)

Exit codes: 0 routed (or not waited for), 1 refused by the hub (its reason and detail on
stderr), 3 sent, but the hub gave no verdict within the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from connectors.verdict import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from connectors.hub_api import HubApi
    from connectors.verdict import Verdict

__all__ = ["NO_VERDICT_EXIT", "TimeoutOpt", "WaitOpt", "Waiting", "report", "verdict_for"]

NO_VERDICT_EXIT = 3

WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="wait for the hub's verdict and exit 1 if it refuses (default), or return once sent",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0.1, max=3600, help="seconds to wait for the hub's verdict"),
]


@dataclass(frozen=True)
class Waiting:
    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT


async def verdict_for(api: HubApi | None, event_id: str, waiting: Waiting) -> Verdict | None:
    """The hub's verdict on `event_id`, or None when not waiting."""
    from connectors.verdict import await_verdict

    if not waiting.wait:
        return None
    assert api is not None, "a sending command opens the hub API"
    return await await_verdict(api, event_id, timeout=waiting.timeout)


def report(verdict: Verdict | None, done: str, *, what: str, waiting: Waiting) -> None:
    """Print `done` when the hub routed it (or nobody waited); otherwise `what` was sent and
    the refusal, with its reason and detail, on stderr, and exit non-zero."""
    out, err = Console(), Console(stderr=True)
    if verdict is None:
        _say(out, f"{done} (sent; not waiting for the hub's verdict)")
        return
    if verdict.rejected:
        _say(err, f"{what}: {verdict.describe()} (event {verdict.event_id})")
        raise typer.Exit(1)
    if not verdict.routed:
        _say(
            err,
            f"{done}, but the hub gave no verdict within {waiting.timeout:g} s; it may still "
            "decide (the running connector receives a refusal)",
        )
        raise typer.Exit(NO_VERDICT_EXIT)
    _say(out, done)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
