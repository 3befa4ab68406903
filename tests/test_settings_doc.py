"""docs/settings.md names every setting, with its flag and environment variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from flightlog.schema.settings import SETTINGS, env_name

DOC = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_is_documented_with_its_flag_and_environment_variable(setting):
    flag = "--" + setting.name.replace("_", "-")
    assert f"`{flag}`" in DOC, f"docs/settings.md lacks {flag}"
    assert f"`{env_name(setting.name)}`" in DOC, f"docs/settings.md lacks {env_name(setting.name)}"
