"""Waiting for the hub's verdict (`connectors.verdict`) and how a command reports it
(`connectors.cli.verdicts`): polled through `HubApi` until routed or rejected, the last
`pending` after the timeout, a refusal's reason and detail on stderr with exit 1, no verdict
within the timeout exit 3. The hub's side of it, end to end: tests/e2e/test_runtime_flows.py."""

from __future__ import annotations

import time

import httpx
import pytest
import typer

from connectors.cli.verdicts import NO_VERDICT_EXIT, Waiting, report
from connectors.hub_api import HubApi
from connectors.verdict import Verdict, await_verdict


def _hub(answers: list[dict[str, object]], asked: list[str]) -> HubApi:
    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.raw_path.decode())
        body = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(200, json=body)

    return HubApi("http://hub", "inb_x", transport=httpx.MockTransport(answer))


async def test_asks_until_the_hub_decides() -> None:
    asked: list[str] = []
    pending = {"event_id": "e/1", "status": "pending", "reason": None, "detail": None}
    rejected = {"event_id": "e/1", "status": "rejected", "reason": "invalid_transition", "detail": "not now"}
    async with _hub([pending, pending, rejected], asked) as api:
        verdict = await await_verdict(api, "e/1", timeout=10)
    assert verdict == Verdict("e/1", "rejected", "invalid_transition", "not now")
    assert verdict.describe() == "refused by the hub: invalid_transition: not now"
    assert asked == ["/ledger/e%2F1/verdict"] * 3  # the id is one path segment


async def test_gives_up_after_the_timeout_with_pending() -> None:
    asked: list[str] = []
    pending = {"event_id": "e1", "status": "pending"}
    started = time.monotonic()
    async with _hub([pending], asked) as api:
        verdict = await await_verdict(api, "e1", timeout=0.5)
    assert verdict.status == "pending" and not verdict.rejected and not verdict.routed
    assert 0.4 < time.monotonic() - started < 2.0 and 2 <= len(asked) <= 8


def test_report_exits_by_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    waiting = Waiting(True, 5)
    report(Verdict("e1", "routed"), "offered tr-1", what="the offer", waiting=waiting)
    assert capsys.readouterr().out.strip() == "offered tr-1"

    with pytest.raises(typer.Exit) as refused:
        report(
            Verdict("e1", "rejected", "schema_invalid", "too far"),
            "nt-1",
            what="notice nt-1",
            waiting=waiting,
        )
    assert refused.value.exit_code == 1
    said = capsys.readouterr()
    assert said.err.strip() == "notice nt-1: refused by the hub: schema_invalid: too far (event e1)"
    assert not said.out

    with pytest.raises(typer.Exit) as undecided:
        report(Verdict("e1", "pending"), "nt-1", what="notice nt-1", waiting=waiting)
    assert undecided.value.exit_code == NO_VERDICT_EXIT
    assert "no verdict within 5 s" in capsys.readouterr().err

    report(None, "nt-1", what="notice nt-1", waiting=Waiting(False))
    assert "not waiting for the hub's verdict" in capsys.readouterr().out
