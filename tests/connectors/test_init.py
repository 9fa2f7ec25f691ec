"""`inbeeld-connector init --tenant CODE` writes that tenant's configuration (not Den Haag's),
and every command finds `./connector.toml` without --config."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.cli import app
from connectors.config import load_config

runner = CliRunner()


def test_init_for_a_tenant_writes_its_values(tmp_path: Path) -> None:
    path = tmp_path / "connector.toml"
    result = runner.invoke(app, ["init", str(path), "--tenant", "GM0599", "--name", "Gemeente Rotterdam"])
    assert result.exit_code == 0, result.output
    text = path.read_text("utf-8")
    assert "GM0518" not in text and "Den Haag" not in text and "070 353 3000" not in text
    config = load_config(path)
    assert config.tenant == "GM0599"
    assert config.broker.username == "inbeeld.GM0599"
    assert config.letterhead is not None and config.letterhead.name == "Gemeente Rotterdam"
    assert config.letterhead.phone is None and config.notices is not None and config.notices.phone is None


def test_init_refuses_a_code_that_is_no_tenant_code(tmp_path: Path) -> None:
    path = tmp_path / "connector.toml"
    result = runner.invoke(app, ["init", str(path), "--tenant", "Rotterdam!"])
    assert result.exit_code == 2
    assert "tenant:" in result.output and not path.exists()


def test_commands_find_connector_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init", "--tenant", "GM0307"]).exit_code == 0
    assert (tmp_path / "connector.toml").exists()
    result = runner.invoke(app, ["check"])  # the broker in the example is not reachable: exit 1
    assert "tenant GM0307" in result.output, result.output
    assert "Missing option" not in result.output


def test_without_a_config_file_the_error_names_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["outbox", "list"])
    assert result.exit_code == 2
    assert "no config file at connector.toml" in result.output
