"""The README tells the truth: its support table is the classes' capabilities, and its test
command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from asyncrepo.cli import support_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_support_table_matches_the_capabilities() -> None:
    found = re.search(
        r"<!-- support-table:start -->\n(.*?)\n<!-- support-table:end -->", README, re.S
    )
    assert found, "the README lost its support-table markers"
    assert found.group(1).strip() == support_table().strip()


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert commands[0] == 'pip install -e . && asyncrepo search "federated search"'
    assert commands[1] == "pip install -e '.[test]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci
    assert "\npython -m pytest" in ci
