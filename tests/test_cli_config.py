"""Named sources from sources.toml: where the file is found, @name on the command line,
credentials from the environment (never required in the file), ``sources --configured``."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asyncrepo import ConfigurationError, config
from asyncrepo.cli import app

runner = CliRunner()


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text("id,name\n" + "".join(f"p{i},person {i}\n" for i in range(10)))
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.delenv("ASYNCREPO_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return monkeypatch


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def jsonl(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_where_the_file_is(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config.path() == tmp_path / "home" / ".config" / "asyncrepo" / "sources.toml"
    clean_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.path() == tmp_path / "xdg" / "asyncrepo" / "sources.toml"
    clean_env.setenv("ASYNCREPO_CONFIG", str(tmp_path / "mine.toml"))
    assert config.path() == tmp_path / "mine.toml"
    assert config.path(tmp_path / "given.toml") == tmp_path / "given.toml"


def test_no_file_means_no_sources(clean_env: pytest.MonkeyPatch) -> None:
    assert config.load() == ({}, [])
    result = runner.invoke(app, ["sources", "--configured", "-f", "jsonl"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no sources configured" in result.stderr


def test_search_named_sources(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, csv_file: Path
) -> None:
    clean_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    write(
        tmp_path / "xdg" / "asyncrepo" / "sources.toml",
        f'[sources.people]\nuri = "{csv_file}"\nidentifier = "id"\n\n'
        '[sources.projects]\nuri = "demo:"\n',
    )
    result = runner.invoke(app, ["search", '"person 7"', "@people", "@projects", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert [(r["federated_source"], r["identifier"]) for r in jsonl(result.stdout)] == [
        ("people", "p7")
    ]
    single = runner.invoke(app, ["get", "@people", "p3", "-f", "jsonl"])
    assert jsonl(single.stdout)[0]["raw"]["name"] == "person 3"


def test_credentials_come_from_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, csv_file: Path
) -> None:
    file = write(
        tmp_path / "sources.toml",
        f'[sources.people]\nuri = "{csv_file}"\nidentifier = {{ env = "PEOPLE_ID" }}\n'
        'cache_ttl = { env = "PEOPLE_TTL" }\n',
    )
    clean_env.setenv("ASYNCREPO_CONFIG", str(file))
    missing = runner.invoke(app, ["list", "@people"])
    assert missing.exit_code == 2
    assert "option 'identifier' reads $PEOPLE_ID, which is not set" in missing.stderr
    clean_env.setenv("PEOPLE_ID", "id")
    clean_env.setenv("PEOPLE_TTL", "30")  # a float option: decoded by its annotation
    assert config.get("people").resolve() == {"identifier": "id", "cache_ttl": "30"}
    result = runner.invoke(app, ["list", "@people", "-n", "2", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert [r["identifier"] for r in jsonl(result.stdout)] == ["p0", "p1"]
    overridden = runner.invoke(app, ["list", "@people", "-n", "1", "-o", "identifier=name"])
    assert jsonl(overridden.stdout)[0]["identifier"] == "person 0"  # -o wins over the file


def test_config_option_anywhere(tmp_path: Path, csv_file: Path, clean_env: Any) -> None:
    file = write(tmp_path / "other.toml", f'[sources.p]\nuri = "{csv_file}"\n')
    result = runner.invoke(app, ["list", "@p", "-n", "1", "--config", str(file), "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(jsonl(result.stdout)) == 1


def test_configured_lists_names_and_never_secrets(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "sources.toml",
        '[sources.eng]\nuri = "confluence+https://acme.example/wiki?space=ENG"\n'
        'username = "me@acme.example"\napi_token = { env = "ATLASSIAN_TOKEN" }\n\n'
        '[sources.jira]\nuri = "jira+https://acme.example?project=OPS"\n'
        'password = "hunter2-plain"\n',
        mode=0o644,
    )
    clean_env.setenv("ASYNCREPO_CONFIG", str(file))
    result = runner.invoke(app, ["sources", "--configured", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert jsonl(result.stdout) == [
        {
            "name": "eng",
            "uri": "confluence+https://acme.example/wiki?space=ENG",
            "options": {"username": "me@acme.example", "api_token": "$ATLASSIAN_TOKEN"},
        },
        {
            "name": "jira",
            "uri": "jira+https://acme.example?project=OPS",
            "options": {"password": "***"},
        },
    ]
    assert "hunter2-plain" not in result.output
    assert "holds a plain 'password' for @jira and others can read the file" in result.stderr
    table = runner.invoke(app, ["sources", "--configured", "-f", "table"])
    assert "@eng" in table.stdout and "hunter2" not in table.stdout


def test_mistakes_in_the_file_are_named(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "sources.toml", "[sources.eng]\nuri = demo:\n")
    clean_env.setenv("ASYNCREPO_CONFIG", str(file))
    result = runner.invoke(app, ["list", "@eng"])
    assert result.exit_code == 2 and "is not valid TOML" in result.stderr
    write(file, '[sources.eng]\nuri = "demo:"\n')
    unknown = runner.invoke(app, ["list", "@ops"])
    assert unknown.exit_code == 2
    assert "no source @ops in" in unknown.stderr and "(configured: @eng)" in unknown.stderr
    write(file, '[sources."a:b"]\nuri = "demo:"\n')
    with pytest.raises(ConfigurationError, match="must be letters"):
        config.load()
    write(file, '[sources.eng]\nuri = "demo:"\ntoken = { env = "X", vault = "y" }\n')
    with pytest.raises(ConfigurationError, match="a reference is"):
        config.load()
    write(file, '[sources.eng]\nuri = "demo:"\nfields = { title = "name" }\n')
    assert config.get("eng").resolve() == {"fields": {"title": "name"}}  # a table value


def test_keyring_references_need_the_keyring_package(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        file = write(
            tmp_path / "sources.toml",
            '[sources.eng]\nuri = "demo:"\npassword = { keyring = "svc", username = "me" }\n',
        )
        clean_env.setenv("ASYNCREPO_CONFIG", str(file))
        result = runner.invoke(app, ["list", "@eng"])
        assert result.exit_code == 2 and "pip install keyring" in result.stderr
    else:
        pytest.skip("keyring is installed here")


def test_config_open_in_python(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = write(tmp_path / "sources.toml", '[sources.projects]\nuri = "demo:"\n')
    repo = config.open("@projects", file)
    assert repo.name == "file.csv_rows"


def test_keyring_references_read_the_keyring(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, csv_file: Path
) -> None:
    # The keyring package's API (get_password(service, username)), without a system keyring.
    asked: list[tuple[str, str]] = []

    def get_password(service: str, username: str) -> str | None:
        asked.append((service, username))
        return "id" if (service, username) == ("people-svc", "me") else None

    clean_env.setitem(sys.modules, "keyring", types.SimpleNamespace(get_password=get_password))
    file = write(
        tmp_path / "sources.toml",
        f'[sources.people]\nuri = "{csv_file}"\n'
        'identifier = { keyring = "people-svc", username = "me" }\n\n'
        f'[sources.other]\nuri = "{csv_file}"\n'
        'identifier = { keyring = "people-svc", username = "you" }\n',
    )
    clean_env.setenv("ASYNCREPO_CONFIG", str(file))
    result = runner.invoke(app, ["list", "@people", "-n", "1", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert jsonl(result.stdout)[0]["identifier"] == "p0"
    missing = runner.invoke(app, ["list", "@other"])
    assert missing.exit_code == 2
    assert "the keyring has no entry keyring:people-svc/you" in missing.stderr
    assert asked == [("people-svc", "me"), ("people-svc", "you")]
