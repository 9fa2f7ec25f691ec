"""The README stays true: two set-up commands, and every setting in the configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from hub.config import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [n for n in Settings.model_fields if f"`INBEELD_{n.upper()}`" not in README]
    assert not missing, f"README's configuration table lacks: {missing}"


def test_exactly_two_set_up_commands_and_ci_runs_the_test_one() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.+?)\n```", setup, flags=re.S)
    assert len(commands) == 2
    assert commands[0].endswith("inbeeld demo")
    assert commands[1].endswith(".venv/bin/python -m pytest")
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in ci
