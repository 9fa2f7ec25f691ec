"""`inbeeld-connector notice send` never takes the BSN from the command line (the shell's
history and `ps` would keep it): it asks for it hidden, or reads it with --bsn-stdin.
Sending itself, through a live hub, is in tests/e2e/test_runtime_flows.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.cli import app

runner = CliRunner()
A_BAD_BSN = "123456780"  # 9 digits that fail the 11-test


@pytest.fixture(autouse=True)
def _hub_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBEELD_HUB_TOKEN", "not-used: the BSN is refused before the hub is asked")


def _config(tmp_path: Path) -> str:
    path = tmp_path / "connector.toml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    return str(path)


def test_a_bsn_on_the_command_line_is_no_longer_accepted(tmp_path: Path) -> None:
    args = ["notice", "send", "-c", _config(tmp_path), "--group", "zuid-holland", "--bsn", "123456782"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "No such option" in result.output and "--bsn" in result.output


def test_a_bad_bsn_on_stdin_is_refused_without_repeating_it(tmp_path: Path) -> None:
    args = ["notice", "send", "-c", _config(tmp_path), "--group", "zuid-holland", "--bsn-stdin"]
    result = runner.invoke(app, args, input=A_BAD_BSN + "\n")
    assert result.exit_code == 2, result.output
    assert "not 9 digits passing the 11-test" in result.output
    assert A_BAD_BSN not in result.output


def test_without_a_terminal_it_says_to_pipe_the_bsn(tmp_path: Path) -> None:
    args = ["notice", "send", "-c", _config(tmp_path), "--group", "zuid-holland"]
    result = runner.invoke(app, args, input="123456782\n")
    assert result.exit_code == 2, result.output
    assert "--bsn-stdin" in result.output


def test_a_missing_hub_token_is_a_config_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INBEELD_HUB_TOKEN")
    args = ["notice", "send", "-c", _config(tmp_path), "--group", "zuid-holland", "--bsn-stdin"]
    result = runner.invoke(app, args, input="123456782\n")
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "INBEELD_HUB_TOKEN is not set" in result.output
