"""The README's configuration table lists every setting the node reads."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from node.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    rows = [line for line in README.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ")]
    documented = {name for row in rows for name in re.findall(r"[a-z][a-z0-9_]+", row)}
    missing = [f.name for f in dataclasses.fields(Settings) if f.name not in documented]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_environment_variable_in_the_readme_is_a_setting() -> None:
    names = set(re.findall(r"IDNODE_([A-Z0-9_]+)", README.read_text(encoding="utf-8")))
    fields = {f.name.upper() for f in dataclasses.fields(Settings)}
    # the client's own variables (node/cli/options.py), not node settings
    unknown = names - fields - {"CONFIG", "IDENTITY", "SECRET", "TARGET", "TOKEN", "CLI_CONFIG"}
    assert not unknown, f"README mentions unknown settings: {sorted(unknown)}"
