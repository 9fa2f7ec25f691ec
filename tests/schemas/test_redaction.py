"""Personal data never reaches the logs: the structlog processor removes it."""

from __future__ import annotations

import io
import json

import structlog

from schemas.observability import configure_logging
from schemas.redaction import REDACTED, redact_personal_data

BSN = "111222333"  # passes the 11-test
NAME = "Fatima el Amrani"


def test_log_call_with_bsn_and_name_writes_neither(capsys) -> None:
    configure_logging("json", "INFO")
    log = structlog.get_logger("test")
    log.info(
        "pupil looked up",
        bsn=BSN,
        name=NAME,
        guardians=[{"name": "M. el Amrani", "phone": "0612345678"}],
        note=f"called about {BSN} today",
        tenant="GM0518",
    )
    err = capsys.readouterr().err
    assert BSN not in err and NAME not in err and "el Amrani" not in err
    assert "0612345678" not in err
    record = json.loads(err.strip().splitlines()[-1])
    assert record["bsn"] == REDACTED and record["name"] == REDACTED
    assert record["tenant"] == "GM0518"  # what is not personal stays readable
    assert record["note"] == f"called about {REDACTED} today"


def test_exception_text_is_scrubbed_too(capsys) -> None:
    configure_logging("json", "INFO")
    log = structlog.get_logger("test")
    try:
        raise ValueError(f"bad record for {BSN}")
    except ValueError:
        log.exception("failed")
    assert BSN not in capsys.readouterr().err


def test_numbers_that_fail_the_eleven_test_are_kept() -> None:
    out = redact_personal_data(None, "info", {"event": "order 123456789 shipped"})
    assert out["event"] == "order 123456789 shipped"


def test_console_renderer_redacts_as_well() -> None:
    buf = io.StringIO()
    structlog.configure(
        processors=[redact_personal_data, structlog.dev.ConsoleRenderer(colors=False)],
        logger_factory=structlog.PrintLoggerFactory(file=buf),
    )
    structlog.get_logger().info("x", birth_date="2011-03-04", address={"street": "Laan 1"})
    assert "2011-03-04" not in buf.getvalue() and "Laan 1" not in buf.getvalue()
    configure_logging("json")
