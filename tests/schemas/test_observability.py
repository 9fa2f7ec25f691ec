"""Log lines carry the current span's trace and span ids (and nothing when no span is current)."""

from __future__ import annotations

import json

import pytest
import structlog

from schemas import tracing
from schemas.observability import configure_logging


def test_log_lines_carry_the_current_span_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")  # to this test's captured stderr
    try:
        span = tracing.start("test.step")
        with tracing.active(span):
            structlog.get_logger("test").info("inside")
        span.end()
        structlog.get_logger("test").info("outside")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        with capsys.disabled():  # back to the real stderr
            configure_logging("json", "INFO")
    inside, outside = (next(x for x in lines if x["event"] == e) for e in ("inside", "outside"))
    assert (inside["trace_id"], inside["span_id"]) == tracing.ids_of(span)
    assert "trace_id" not in outside and "span_id" not in outside
