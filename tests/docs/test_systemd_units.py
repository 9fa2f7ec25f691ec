"""The systemd units of docs/install.md: `systemd-analyze verify` accepts them (with the
installed commands in place of /opt/inbeeld/venv/bin), and every command they start exists."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[2] / "deploy" / "systemd"
INSTALL_BIN = "/opt/inbeeld/venv/bin/"
VENV_BIN = Path(sys.executable).parent
NAMES = ["inbeeld-hub-api.service", "inbeeld-router.service", "inbeeld-connector@.service"]


def _service(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser["Service"]


def test_the_three_units_are_there() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(NAMES)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    for name in NAMES:
        text = (UNITS / name).read_text().replace(INSTALL_BIN, f"{VENV_BIN}/")
        # A template is verified as an instance of it.
        (tmp_path / name.replace("@.", "@GM0518.")).write_text(text)
    files = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", *files], capture_output=True, text=True, timeout=120, check=False
    )
    ours = [line for line in result.stderr.splitlines() if str(tmp_path) in line or "inbeeld" in line]
    assert result.returncode == 0, result.stderr
    assert ours == [], "\n".join(ours)  # a warning ("ignoring", "unknown key") is a failure too


@pytest.mark.parametrize("name", NAMES)
def test_every_command_a_unit_starts_exists(name: str) -> None:
    service = _service(name)
    for key in ("ExecStartPre", "ExecStart"):
        if key not in service:
            continue
        argv = shlex.split(service[key].replace("%i", "GM0518"))
        assert argv[0].startswith(INSTALL_BIN)
        argv[0] = str(VENV_BIN / argv[0].removeprefix(INSTALL_BIN))
        # --help after the arguments: click still checks every subcommand and option first.
        result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"{key}: {result.stdout}{result.stderr}"
