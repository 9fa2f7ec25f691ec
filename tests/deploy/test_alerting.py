"""The Prometheus alerting rules and the Grafana dashboard in deploy/: promtool accepts the
rules and the example configuration (and every panel's query, as a recording rule), the
dashboard is valid JSON, and every metric they name exists in a real scrape of the hub API's
/metrics, a router's metrics port and a connector's metrics port.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it); without it these
tests fail rather than skip, so CI cannot pass them silently."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.config import MetricsConfig
from connectors.metrics_port import MetricsPort
from connectors.store import LocalStore
from hub.api.app import create_app
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.hubs import RunningHub

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "inbeeld-alerts.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "inbeeld-hub.json"
# Series Prometheus makes itself for every target, not any exporter's.
PROMETHEUS_MADE = {"up"}
# The alerts the rules must cover (issue 22).
REQUIRED_ALERTS = {
    "InbeeldTenantOffline",
    "InbeeldInboxBacklog",
    "InbeeldDeadLettersGrowing",
    "InbeeldAuditChainBroken",
    "InbeeldWebhookFailing",
    "InbeeldRouterDown",
}
_METRIC = re.compile(r"\b(inbeeld_[a-z0-9_]+|up)\b(?!\s*\()")
_TYPE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed (apt-get install prometheus; .ci/run does it)")
    return found


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panel_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    grouped = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    return set(_METRIC.findall(grouped))


def exposed_names(exposition: str) -> set[str]:
    """Every series name an exposition offers: its samples, and for each declared family the
    names its type makes (a counter or histogram with no sample yet still declares itself)."""
    names = set(_SAMPLE.findall(exposition))
    for family, kind in _TYPE.findall(exposition):
        names.add(family)
        if kind == "counter":
            names.add(family + "_total")
        elif kind == "histogram":
            names |= {family + "_bucket", family + "_count", family + "_sum"}
    return names


def test_promtool_accepts_the_rules_and_the_example_config() -> None:
    tool = promtool()
    for args in (["check", "rules", str(RULES)], ["check", "config", str(CONFIG)]):
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in rules()}
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(inbeeld_x\n")
    done = subprocess.run([promtool(), "check", "rules", str(broken)], capture_output=True, text=True)
    assert done.returncode != 0


def test_the_dashboard_is_valid_and_its_queries_parse(tmp_path: Path) -> None:
    board = dashboard()
    assert board["uid"] == "inbeeld-hub" and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
    # Each query as a recording rule: promtool parses the PromQL.
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"inbeeld:panel_{i}", "expr": q} for i, q in enumerate(panel_queries())],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(recorded))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_metric_names_are_read_from_queries() -> None:
    assert metric_names('sum by (kind) (rate(inbeeld_a_total{x="inbeeld_b"}[5m])) / up') == {
        "inbeeld_a_total",
        "up",
    }


@pytest.fixture(scope="module")
async def scraped_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningHub]:
    label = f"alerting_{uuid.uuid4().hex[:6]}"
    tmp: Path = tmp_path_factory.mktemp("alerting")
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("sqlite", label, tmp),
        router_metrics_port=0,
    )
    async with private_hub(settings, "sqlite", label) as hub:
        yield hub


@pytest.mark.broker
async def test_every_metric_the_rules_and_panels_use_is_exposed(
    scraped_hub: RunningHub, tmp_path: Path
) -> None:
    hub = scraped_hub
    app = create_app(hub.settings, hub.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as api:
        response = await api.get("/metrics")
        assert response.status_code == 200
        api_names = exposed_names(response.text)
    assert hub.router.metrics_port
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{hub.router.metrics_port}/metrics")
        assert response.status_code == 200
        router_names = exposed_names(response.text)
        store = await LocalStore.open(tmp_path / "connector.db")
        port = MetricsPort(MetricsConfig(host="127.0.0.1", port=0), store, ["case-system"])
        await port.start()
        try:
            response = await client.get(f"http://127.0.0.1:{port.port}/metrics")
            assert response.status_code == 200
            connector_names = exposed_names(response.text)
        finally:
            await port.stop()
            await store.close()

    used: set[str] = set()
    for expr in [rule["expr"] for rule in rules()] + panel_queries():
        used |= metric_names(expr)
    assert used, "no metric found in the rules"
    for name in sorted(used - PROMETHEUS_MADE):
        if name.startswith("inbeeld_connector_"):
            assert name in connector_names, f"{name}: not on a connector's metrics port"
        elif name.startswith("inbeeld_router_"):
            assert name in router_names, f"{name}: not on the router's metrics port"
        else:
            assert name in api_names, f"{name}: not in the API's /metrics"
