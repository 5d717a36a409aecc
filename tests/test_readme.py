"""The README tells the truth: its support table is the classes' capabilities, and its test
command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


async def test_the_readme_custom_repository_works() -> None:
    section = README.split("## Writing a repository", 1)[1]
    code = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    notes = namespace["Notes"]([{"id": i, "title": f"note {i}"} for i in range(25)])
    assert len(code.group(1).strip().splitlines()) <= 20
    pages = [page async for page in notes.list_pages(page_size=10)]
    assert [len(p) for p in pages] == [10, 10, 5]
    rest = [i.identifier async for i in notes.list(cursor=pages[0].cursor)]
    assert rest == [str(i) for i in range(10, 25)]
    assert [i.identifier async for i in notes.search('"NOTE 7"')] == ["7"]
    assert (await notes.get("12")).title == "note 12"
