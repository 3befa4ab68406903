"""What a new user types first: `flightlog --version`, `flightlog keys --help`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from flightlog.web import cli

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"flightlog {version}"


@pytest.mark.parametrize("command", [["--help"], ["keys", "--help"], ["send", "--help"], ["serve", "--help"]])
def test_help_names_no_python_module(command, capsys):
    with pytest.raises(SystemExit):
        cli.main(command)
    out = capsys.readouterr().out
    assert out.strip()
    assert not re.search(r"flightlog\.[a-z_]+\.", out), out
