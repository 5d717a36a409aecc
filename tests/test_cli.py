"""The command line: formats, the demo default, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asyncrepo.cli import app

runner = CliRunner()


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    rows = ["id,name,updated"] + [
        f"{i},person {i},2024-01-{i + 1:02d}T00:00:00+00:00" for i in range(20)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def jsonl(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_search_without_uri_searches_the_demo_dataset() -> None:
    result = runner.invoke(app, ["search", "federated search", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    items = jsonl(result.stdout)
    assert len(items) > 10
    for item in items:
        text = json.dumps(item["raw"]).lower()
        assert "federated" in text and "search" in text


def test_list_jsonl_with_limit(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file), "-n", "5", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    items = jsonl(result.stdout)
    assert [i["identifier"] for i in items] == ["0", "1", "2", "3", "4"]
    assert items[0]["raw"] == {
        "id": "0",
        "name": "person 0",
        "updated": "2024-01-01T00:00:00+00:00",
    }


def test_list_json_is_one_array(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file), "--format", "json"])
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 20


def test_table_format(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file), "-n", "3", "--format", "table"])
    assert result.exit_code == 0
    assert "identifier" in result.stdout and "person 2" not in result.stdout  # title unmapped
    assert "│ 2 " in result.stdout or "┃" in result.stdout


def test_since_needs_a_date_field(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file), "--since", "2024-01-15"])
    assert result.exit_code == 2
    assert "cannot filter by date" in result.stderr
    mapped = runner.invoke(
        app,
        [
            "list",
            str(csv_file),
            "--since",
            "2024-01-15",
            "-o",
            'fields={"updated_at": "updated"}',
            "-f",
            "jsonl",
        ],
    )
    assert mapped.exit_code == 0, mapped.output
    assert [i["identifier"] for i in jsonl(mapped.stdout)] == [str(i) for i in range(14, 20)]


def test_get(csv_file: Path) -> None:
    result = runner.invoke(app, ["get", str(csv_file), "7", "-f", "jsonl"])
    assert result.exit_code == 0
    assert jsonl(result.stdout)[0]["raw"]["name"] == "person 7"


def test_errors_are_one_line_and_a_non_zero_exit(csv_file: Path) -> None:
    missing = runner.invoke(app, ["get", str(csv_file), "999"])
    assert missing.exit_code == 1
    assert missing.stderr.count("\n") == 1 and "no item '999'" in missing.stderr
    assert "Traceback" not in missing.output
    bad = runner.invoke(app, ["list", "nope://thing"])
    assert bad.exit_code == 2 and "unknown URI scheme" in bad.stderr


def test_debug_shows_the_traceback(csv_file: Path) -> None:
    result = runner.invoke(app, ["--debug", "get", str(csv_file), "999"])
    assert result.exit_code != 0
    assert result.exception is not None
    assert type(result.exception).__name__ == "ItemNotFound"


def test_sources_lists_the_registry() -> None:
    result = runner.invoke(app, ["sources", "--format", "jsonl"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in jsonl(result.stdout)}
    assert rows["file.csv_rows"]["search"] == "naive"
    assert {"jira.issues", "aws.s3_objects", "github.repos", "greenhouse.jobs"} <= set(rows)


def test_output_is_jsonl_when_stdout_is_not_a_terminal(csv_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asyncrepo.cli", "list", str(csv_file), "-n", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [i["identifier"] for i in jsonl(result.stdout)] == ["0", "1"]
