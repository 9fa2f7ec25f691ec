"""The connector's TOML config and the `init` / `check` commands."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
from typer.testing import CliRunner

from connectors.cli import app
from connectors.config import EXAMPLE, ConfigError, load_config, parse_config

runner = CliRunner()


def test_init_writes_a_commented_example_that_validates(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "connector.toml"
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text() == EXAMPLE and "#" in EXAMPLE
    config = load_config(path)
    assert config.tenant == "GM0518" and [s.kind for s in config.sinks] == ["webhook", "folder"]
    assert config.store.path == tmp_path / "connector.db"  # relative to the config file
    monkeypatch.setenv("INBEELD_BROKER_PASSWORD", "s3cret:/@")
    assert config.broker.amqp_url() == "amqps://inbeeld.GM0518:s3cret%3A%2F%40@hub.example.nl:5671/inbeeld"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 1  # no silent overwrite


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('tenant = "GM0518"', 'tenant = "Den Haag"'), "tenant"),
        (lambda t: t.replace('username = "inbeeld.GM0518"\n', ""), "broker.username"),
        (lambda t: t.replace('url = "https://zaaksysteem', 'url = "ftp://zaaksysteem'), "sinks.0.url"),
        (lambda t: t.replace('kind = "folder"\npath = "received"', 'kind = "fax"'), "sinks.1"),
        (lambda t: t.replace("retry_days = 7", "retry_days = -1"), "sinks.0.retry_days"),
        (lambda t: t.replace("amqps://hub", "amqps://user:pw@hub"), "broker.url"),
        (lambda t: "colour = 'blue'\n" + t, "colour"),
        (lambda t: tracing_on(t, "collector:4318"), "tracing.otlp_endpoint"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, edit, field: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(edit(EXAMPLE))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.field is not None and exc.value.field.startswith(field)
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: {field}"), result.output


def tracing_on(text: str, endpoint: str) -> str:
    """The example with its commented-out [tracing] section turned on."""
    return text.replace("# [tracing]", "[tracing]").replace(
        '# otlp_endpoint = "http://127.0.0.1:4318"', f'otlp_endpoint = "{endpoint}"'
    )


def test_tracing_section_names_the_collector(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(EXAMPLE)
    assert load_config(path).tracing is None  # off unless asked for
    path.write_text(tracing_on(EXAMPLE, "http://collector.intern:4318"))
    config = load_config(path)
    assert config.tracing is not None and config.tracing.otlp_endpoint == "http://collector.intern:4318"


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("tenant = ")
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2 and "not valid TOML" in result.output
    result = runner.invoke(app, ["check", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "no config file" in result.output


def _config_for(hub, code: str, tmp_path: Path, password: str | None = None) -> Path:
    parts = urlsplit(hub.tenant_url(code))
    doc = tomllib.loads(EXAMPLE)
    doc["tenant"] = code
    doc["broker"] = {
        "url": urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 5672}", parts.path, "", "")),
        "username": unquote(parts.username or ""),
        "password": password if password is not None else unquote(parts.password or ""),
    }
    doc["hub"] = {"url": "http://127.0.0.1:9", "token": "x"}  # nothing listens on port 9
    doc["sinks"] = [{"kind": "stdout"}]
    del doc["keystore"]
    lines = [f"{k} = {_toml(v)}" for k, v in doc.items() if not isinstance(v, dict | list)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *(f"{a} = {_toml(b)}" for a, b in v.items())]
    for k, v in doc.items():
        if isinstance(v, list):
            for item in v:
                lines += [f"[[{k}]]", *(f"{a} = {_toml(b)}" for a, b in item.items())]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n")
    parse_config(tomllib.loads(path.read_text()), tmp_path)  # sanity
    return path


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, dict):  # a sub-table ([processing_activities.transfer]) as an inline table
        return "{" + ", ".join(f"{a} = {_toml(b)}" for a, b in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.broker
def test_check_tries_broker_and_hub(hub, tmp_path: Path) -> None:
    path = _config_for(hub, "GM0307", tmp_path)
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert "broker" in result.output and "pass" in result.output
    assert result.exit_code == 1  # the hub URL does not answer
    assert "cannot reach http://127.0.0.1:9" in result.output

    bad = _config_for(hub, "GM0307", tmp_path, password="wrong")
    result = runner.invoke(app, ["check", "--config", str(bad)])
    assert result.exit_code == 1 and "FAIL  broker: the hub's broker at" in result.output
    assert "refused user" in result.output  # a refusal, not a network fault
    assert "wrong" not in result.output


def test_every_problem_of_a_config_is_listed_one_line_each(tmp_path: Path) -> None:
    text = (
        EXAMPLE.replace('tenant = "GM0518"', 'tenant = "Den Haag"')
        .replace("retry_days = 7", "retry_days = -1")
        .replace("prefetch = 32", "prefetch = 0")
        .replace('url = "https://zaaksysteem', 'url = "ftp://zaaksysteem')
    )
    path = tmp_path / "c.toml"
    path.write_text("colour = 'blue'\n" + text)
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    fields = sorted(x.removeprefix("config error: ").split(":", 1)[0] for x in lines)
    assert fields == ["broker.prefetch", "colour", "sinks.0.retry_days", "sinks.0.url", "tenant"], lines
    assert all(x.startswith("config error: ") for x in lines) and "more" not in result.output


def test_an_unreachable_broker_is_named_by_host_and_port(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'tenant = "GM0518"\n[broker]\nurl = "amqp://127.0.0.1:1/inbeeld"\nusername = "inbeeld.GM0518"\n'
        'password = "x"\ninbox = "inbeeld.inbox.GM0518.x"\n[store]\npath = "c.db"\n'
    )
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 1
    [line] = [x for x in result.output.splitlines() if x.startswith("FAIL  broker")]
    assert line == "FAIL  broker: cannot reach the hub's broker at 127.0.0.1:1 (AMQPConnectionError)", line


def test_the_register_of_processing_activities_is_written_by_init_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "connector.toml"
    assert runner.invoke(app, ["init", str(path), "--tenant", "GM0599"]).exit_code == 0
    config = load_config(path)
    assert config.activity_ids() == {
        "transfer": "GM0599-VA-leerplicht-overdracht",
        "notice": "GM0599-VA-leerplicht-buren",
        "register": "GM0599-VA-leerplicht-register",
        "access": "GM0599-VA-avg-inzage",
        "letter": "GM0599-VA-leerplicht-brieven",
    }
    assert config.processing_activities["access"].name == "Inzageverzoeken (AVG artikel 15)"
    bad = EXAMPLE.replace("[processing_activities.access]", "[processing_activities.letters]").replace(
        'id = "GM0518-VA-leerplicht-buren"', 'id = "VA buren"'
    )
    path.write_text(bad, "utf-8")
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    lines = sorted(result.output.strip().splitlines())
    assert lines[0].startswith(
        "config error: processing_activities.letters.[key]: Input should be 'transfer'"
    )
    assert lines[1].startswith("config error: processing_activities.notice.id: String should match pattern")


def test_the_transfers_legal_basis_needs_its_citation_and_a_code_that_is_a_slug(tmp_path: Path) -> None:
    path = tmp_path / "connector.toml"
    assert runner.invoke(app, ["init", str(path), "--tenant", "GM0599"]).exit_code == 0
    transfer = load_config(path).processing_activities["transfer"]
    assert transfer.basis() == {"code": "lpw-1969-art-18", "citation": "Leerplichtwet 1969, artikel 18"}
    text = path.read_text("utf-8")
    no_citation = text.replace('legal_basis = "Leerplichtwet 1969, artikel 18"', "", 1)
    path.write_text(no_citation, "utf-8")
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "legal_basis_code needs legal_basis" in result.output, result.output
    path.write_text(text.replace('"lpw-1969-art-18"', '"Artikel 18!"'), "utf-8")
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2 and "processing_activities.transfer.legal_basis_code" in result.output
