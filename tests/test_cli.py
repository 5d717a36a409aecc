"""The command line in-process: formats, columns, options decoded by type, global options,
messages and exit codes, readable federated names, lazy imports, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asyncrepo import ConfigurationError
from asyncrepo.cli import app
from asyncrepo.cli._sources import (
    decode,
    decode_options,
    kinds,
    parse_target,
    readable_name,
    target_classes,
    unique_names,
)

ROOT = Path(__file__).resolve().parent.parent
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


def table_rows(output: str) -> list[list[str]]:
    """A streamed table's lines split on its two-space gaps (header first, rule skipped)."""
    lines = [line for line in output.splitlines() if line.strip()]
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[:1]] + [
        [cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[2:]
    ]


# -- formats --------------------------------------------------------------------------------


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
    assert [row["raw"]["name"] for row in json.loads(result.stdout)] == [
        f"person {i}" for i in range(20)
    ]


def test_json_of_nothing_is_an_empty_array(csv_file: Path) -> None:
    result = runner.invoke(app, ["search", "nobody-is-called-this", str(csv_file), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_a_table_without_mapped_fields_shows_the_raw_fields(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file), "-n", "3", "--format", "table"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert rows[0] == ["identifier", "id", "name", "updated"]
    assert rows[3][:3] == ["2", "2", "person 2"]
    assert len(rows) == 4


def test_a_table_shows_the_common_fields_that_are_set() -> None:
    result = runner.invoke(app, ["list", "demo:", "-n", "2", "-f", "table"])
    assert result.exit_code == 0, result.output
    header, first = table_rows(result.stdout)[:2]
    assert header == ["identifier", "title", "author", "date", "url"]  # kind is never set
    assert first[3] == "2023-06-17 17:49Z"  # a date to the minute, Z for UTC


def test_columns_pick_common_and_raw_fields(csv_file: Path) -> None:
    result = runner.invoke(
        app, ["list", str(csv_file), "-n", "2", "-f", "table", "--columns", "name,identifier"]
    )
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert rows == [["name", "identifier"], ["person 0", "0"], ["person 1", "1"]]
    narrowed = runner.invoke(
        app, ["list", "demo:", "-n", "1", "-f", "jsonl", "-c", "identifier,title,raw.language"]
    )
    assert jsonl(narrowed.stdout) == [
        {"identifier": "p00001", "title": "pylintx", "raw.language": "Zig"}
    ]


def test_table_cells_are_one_line_and_cannot_drive_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text('id,note\n1,"two\nlines \x1b[31mred"\n')
    result = runner.invoke(app, ["list", str(path), "-f", "table"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout and len(lines) == 3  # header, rule, one row
    assert lines[2].split() == ["0", "1", "two", "lines", "[31mred"]


def test_get_shows_the_whole_record_as_key_value(csv_file: Path) -> None:
    result = runner.invoke(app, ["get", str(csv_file), "7", "-f", "table"])
    assert result.exit_code == 0, result.output
    pairs = [line.split(None, 1) for line in result.stdout.splitlines()]
    assert pairs == [
        ["identifier", "7"],
        ["source", "file.csv_rows"],
        ["id", "7"],
        ["name", "person 7"],
        ["updated", "2024-01-08T00:00:00+00:00"],
    ]


def test_get_jsonl(csv_file: Path) -> None:
    result = runner.invoke(app, ["get", str(csv_file), "7", "-f", "jsonl"])
    assert result.exit_code == 0
    assert jsonl(result.stdout)[0]["raw"]["name"] == "person 7"


def test_output_is_jsonl_when_stdout_is_not_a_terminal(csv_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asyncrepo.cli", "list", str(csv_file), "-n", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [i["identifier"] for i in jsonl(result.stdout)] == ["0", "1"]


# -- errors, said once ----------------------------------------------------------------------


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


def test_errors_are_one_line_and_a_non_zero_exit(csv_file: Path) -> None:
    missing = runner.invoke(app, ["get", str(csv_file), "999"])
    assert missing.exit_code == 1
    assert missing.stderr.count("\n") == 1 and "no item '999'" in missing.stderr
    assert "Traceback" not in missing.output
    bad = runner.invoke(app, ["list", "nope://thing"])
    assert bad.exit_code == 2 and "unknown URI scheme" in bad.stderr


def test_a_message_names_its_source_once() -> None:
    result = runner.invoke(app, ["list", "demo:", "--order", "sideways"])
    assert result.exit_code == 2
    assert result.stderr.count("file.csv_rows") == 1, result.stderr
    assert "cannot order by 'sideways'" in result.stderr


def test_demo_with_anything_after_the_colon_is_rejected() -> None:
    result = runner.invoke(app, ["list", "demo:x"])
    assert result.exit_code == 2
    assert result.stderr == (
        "asyncrepo: error: 'demo:x': the demo dataset is 'demo:' with nothing after the colon\n"
    )


def test_a_directory_says_it_is_one(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file.parent)])
    assert result.exit_code == 2
    assert "is a directory" in result.stderr and "people.csv" in result.stderr
    assert "no such file" not in result.stderr


def test_debug_shows_the_traceback_wherever_it_is_given(csv_file: Path) -> None:
    path = str(csv_file)
    for args in (["--debug", "get", path, "999"], ["get", path, "999", "--debug"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0
        assert type(result.exception).__name__ == "ItemNotFound", args


def test_global_options_after_the_command(csv_file: Path) -> None:
    result = runner.invoke(app, ["list", str(csv_file), "-n", "1", "--no-progress", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 1
    before = runner.invoke(app, ["--format", "json", "--no-progress", "list", str(csv_file)])
    assert before.exit_code == 0, before.output
    assert len(json.loads(before.stdout)) == 20
    quoted = runner.invoke(app, ["search", "-f", "jsonl", "--", "--debug"])  # a query, after --
    assert quoted.exit_code == 0, quoted.output
    assert quoted.stdout == ""


# -- -o decoded by the parameter's type -----------------------------------------------------


def test_annotations_say_what_a_value_becomes() -> None:
    assert kinds("str | None") == {"str"}
    assert kinds("int") == {"int"}
    assert kinds("float | None") == {"float"}
    assert kinds("Sequence[str] | None") == {"sequence"}
    assert kinds("Mapping[str, str] | None") == {"mapping"}
    assert kinds("Optional[bool]") == {"bool"}
    assert kinds("RetryPolicy | None") == {"other:RetryPolicy"}
    assert kinds("Literal['auto', 'cloud'] | None") == {"str"}
    assert decode("password", "12345", {"str"}) == "12345"
    assert decode("anything", "12345", set()) == "12345"  # undeclared: never guessed
    assert decode("concurrency", "4", {"int"}) == 4
    assert decode("timeout", "2.5", {"float"}) == 2.5
    assert decode("questions", "yes", {"bool"}) is True
    assert decode("fields", "a, b", {"sequence"}) == ["a", "b"]
    assert decode("fields", '["a"]', {"sequence"}) == ["a"]
    assert decode("fields", '{"title": "name"}', {"mapping"}) == {"title": "name"}
    with pytest.raises(ConfigurationError, match="is an integer"):
        decode("concurrency", "four", {"int"})
    with pytest.raises(ConfigurationError, match="true or false"):
        decode("questions", "maybe", {"bool"})
    with pytest.raises(ConfigurationError, match="RetryPolicy"):
        decode("retry", "3", {"other:RetryPolicy"})


def test_secrets_stay_strings_for_the_real_classes() -> None:
    jira = target_classes("jira+https://acme.example?project=OPS")
    assert decode_options(
        {"password": "12345", "username": "007", "concurrency": "4", "fields": "a,b"}, jira
    ) == {"password": "12345", "username": "007", "concurrency": 4, "fields": ["a", "b"]}
    github = target_classes("github://users/octocat")
    assert decode_options({"token": "123456"}, github) == {"token": "123456"}
    confluence = target_classes("confluence+https://acme.example/wiki")
    assert decode_options({"api_token": "987654"}, confluence) == {"api_token": "987654"}
    greenhouse = target_classes("greenhouse://acme")
    assert decode_options({"questions": "true"}, greenhouse) == {"questions": True}


def test_a_numeric_password_reaches_jira_as_typed() -> None:
    # Jira's own check: "a Jira password or API token is required" if it were not a string.
    result = runner.invoke(
        app,
        [
            "list",
            "jira+http://127.0.0.1:9?project=OPS",
            "-o",
            "username=me",
            "-o",
            "password=12345",
            "-o",
            "concurrency=zero",
        ],
    )
    assert result.exit_code == 2
    assert "option 'concurrency' is an integer, not 'zero'" in result.stderr  # decoding ran


# -- federated names ------------------------------------------------------------------------


def test_readable_names() -> None:
    assert readable_name("confluence+http://127.0.0.1:18082/wiki?space=ENG") == (
        "127.0.0.1:18082/wiki/ENG"
    )
    assert readable_name("jira+https://acme.atlassian.net?project=OPS") == "acme.atlassian.net/OPS"
    assert readable_name("jira+https://me:secret@acme.atlassian.net") == "acme.atlassian.net"
    assert readable_name("./data/people.csv") == "people.csv"
    assert readable_name("s3://bucket/logs/") == "s3/bucket/logs"
    assert readable_name("github://orgs/acme") == "github/orgs/acme"
    assert readable_name("demo:") == "demo"
    targets = [parse_target("a.csv"), parse_target("b/a.csv"), parse_target("eng=demo:")]
    assert unique_names(targets) == ["a.csv", "a.csv#2", "eng"]


def test_a_federated_search_names_sources_readably(csv_file: Path) -> None:
    result = runner.invoke(
        app, ["search", '"person 7"', f"people={csv_file}", str(csv_file), "demo:", "-f", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    found = {(row["federated_source"], row["identifier"]) for row in jsonl(result.stdout)}
    assert found == {("people", "7"), ("people.csv", "7")}
    table = runner.invoke(
        app,
        ["search", '"person 7"', f"people={csv_file}", "demo:", "-f", "table", "-c", "source,name"],
    )
    assert table_rows(table.stdout) == [["source", "name"], ["people", "person 7"]]


# -- imports, help, completion --------------------------------------------------------------


def _modules_after(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return set(result.stdout.split())


def test_import_asyncrepo_does_not_load_the_transport() -> None:
    modules = _modules_after("import asyncrepo")
    assert "aiohttp" not in modules and "asyncrepo.http" not in modules
    lazy = _modules_after("import asyncrepo\nasyncrepo.RetryPolicy")
    assert "aiohttp" in lazy  # the names still work, on first use


def test_help_does_not_load_the_transport() -> None:
    code = (
        "import sys\nsys.argv = ['asyncrepo', '--help']\nfrom asyncrepo.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    modules = _modules_after(code)
    assert "asyncrepo.cli.items" in modules  # every command module was loaded
    assert "aiohttp" not in modules and "asyncrepo.registry" not in modules


def test_completion_is_switched_on() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout


def test_completion_offers_configured_sources_and_schemes(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text('[sources.eng]\nuri = "demo:"\n[sources.ops]\nuri = "demo:"\n')
    env = {
        **os.environ,
        "ASYNCREPO_CONFIG": str(config),
        "_ASYNCREPO_COMPLETE": "complete_bash",
        "COMP_WORDS": "asyncrepo list @e",
        "COMP_CWORD": "2",
    }
    script = str(Path(sys.executable).parent / "asyncrepo")  # the installed command
    result = subprocess.run([script], capture_output=True, text=True, env=env)
    assert result.stdout.split() == ["@eng"]
    env["COMP_WORDS"] = "asyncrepo list jira"
    result = subprocess.run([script], capture_output=True, text=True, env=env)
    assert set(result.stdout.split()) == {"jira+http://", "jira+https://"}


def test_sources_lists_the_registry() -> None:
    result = runner.invoke(app, ["sources", "--format", "jsonl"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in jsonl(result.stdout)}
    assert rows["file.csv_rows"]["search"] == "naive"
    assert {"jira.issues", "aws.s3_objects", "github.repos", "greenhouse.jobs"} <= set(rows)


def test_index_is_opened_as_a_source(csv_file: Path) -> None:
    alone = runner.invoke(app, ["search", "federated search", "--index", "demo:", "-f", "jsonl"])
    assert alone.exit_code == 0, alone.output
    assert len(jsonl(alone.stdout)) > 10
    together = runner.invoke(
        app, ["search", '"person 7"', str(csv_file), "--index", "demo:", "-f", "jsonl"]
    )
    assert together.exit_code == 0, together.output
    assert [r["federated_source"] for r in jsonl(together.stdout)] == ["people.csv"]
    wrong = runner.invoke(app, ["search", "x", "--index", "nope://db"])
    assert wrong.exit_code == 2 and "unknown URI scheme 'nope'" in wrong.stderr


def test_debug_logs_the_library_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from asyncrepo.cli._app import _debug_log

    _debug_log()
    _debug_log()  # once, however often asked
    logging.getLogger("asyncrepo.file").debug("detected ';' as the delimiter")
    assert capsys.readouterr().err == (
        "asyncrepo: DEBUG: asyncrepo.file: detected ';' as the delimiter\n"
    )
    logger = logging.getLogger("asyncrepo")
    logger.setLevel(logging.NOTSET)
    for handler in [h for h in logger.handlers if type(h).__name__ == "ToStderr"]:
        logger.removeHandler(handler)


def test_a_value_for_a_secret_option_is_not_repeated_in_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        decode("api_key_id", "s3cr3t-value", {"int"})
    assert "s3cr3t" not in str(caught.value) and "api_key_id" in str(caught.value)


def test_get_keeps_line_breaks_and_drops_escapes(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text('id,note\n1,"two\r\nlines \x1b[31mred\x9b"\n')
    result = runner.invoke(app, ["get", str(path), "0", "-f", "table"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x9b" not in result.stdout
    assert result.stdout.splitlines()[-2:] == ["note        two", "            lines  [31mred "]
