"""`python -m bench --quick --tiny` runs end to end against the real broker and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SECTIONS

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_every_section(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--tiny", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = tmp_path.glob("bench-*.json")
    data = json.loads(result.read_text())
    for name in SECTIONS:
        assert name in data and "error" not in data[name], name
    assert data["machine"]["rabbitmq"] and data["machine"]["cores"]
    assert data["throughput"][0]["complete"] and data["throughput"][0]["msgs_per_s"] > 0
    assert data["national_day"]["rejected"] == 0
    # Latency has its baseline from the same run: the plain relay at the same offered rates.
    rates = [r["offered_per_s"] for r in data["latency"]]
    assert [r["offered_per_s"] for r in data["latency_relay"]] == rates
    assert all(r["complete"] and r["p99_ms"] > 0 for r in data["latency_relay"])
    # Through the connector processes, one document per POST and arrays: all delivered, once.
    assert [r["batch"] for r in data["pipeline"]] == [1, 100]
    assert all(r["complete"] and r["lost"] == 0 and r["duplicated"] == 0 for r in data["pipeline"])
    spans = data["observability"]["span_us_per_event"]
    assert spans["on"] > spans["off"] > 0  # recording costs something, and it is measured
    assert {t["target"] for t in data["targets"]}  # every target was judged
    assert result.with_suffix(".png").exists()
