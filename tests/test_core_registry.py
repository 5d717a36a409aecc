"""Registry names, lazy imports with install hints, entry points, and URIs."""

from __future__ import annotations

import importlib.metadata
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import asyncrepo
from asyncrepo import ConfigurationError, registry
from asyncrepo.repositories.file.csv_rows import CSVRows


def test_every_builtin_name_imports() -> None:
    for entry in registry.available():
        if entry.target.startswith("asyncrepo."):
            cls = registry.get_class(entry.name)
            assert cls.name == entry.name, entry


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"jira\.issues"):
        registry.get_class("nope.things")


def test_a_missing_extra_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend aiobotocore is not installed.
    monkeypatch.setitem(sys.modules, "aiobotocore", None)
    for name in list(sys.modules):
        if name.startswith("asyncrepo.repositories.aws."):
            monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ConfigurationError, match=r"pip install 'asyncrepo\[aws\]'"):
        registry.get_class("aws.s3_objects")
    with pytest.raises(ConfigurationError, match=r"asyncrepo\[aws\]"):
        asyncrepo.open("s3://bucket/prefix")


def test_importing_asyncrepo_does_not_import_the_sources() -> None:
    import subprocess

    code = (
        "import sys, asyncrepo; "
        "print(any(m.startswith(('aiobotocore', 'asyncrepo.repositories.')) for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_entry_points_register_third_party_repositories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point = EntryPoint(
        name="thirdparty.notes",
        value="tests.test_core_repository:Notes",
        group=registry.ENTRY_POINT_GROUP,
    )

    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [point] if group == registry.ENTRY_POINT_GROUP else []

    # The registry calls importlib.metadata.entry_points: the one module object everyone shares.
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    names = [entry.name for entry in registry.available()]
    assert "thirdparty.notes" in names
    from tests.test_core_repository import Notes

    assert registry.get_class("thirdparty.notes") is Notes


def test_unknown_scheme_lists_known_schemes() -> None:
    with pytest.raises(ConfigurationError) as caught:
        asyncrepo.open("ftp://example.com/x.csv")
    message = str(caught.value)
    for scheme in ("s3://", "github://", "jira+https://", "confluence+https://", "greenhouse://"):
        assert scheme in message
    with pytest.raises(ConfigurationError):
        asyncrepo.open("")


async def test_open_paths_and_urls(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    for uri in (str(path), f"file://{path}"):
        async with asyncrepo.open(uri) as repo:
            assert isinstance(repo, CSVRows)
            assert [i.raw async for i in repo.list()] == [{"a": "1", "b": "2"}]
    repo = asyncrepo.open("https://example.com/data.csv", identifier="a")
    assert isinstance(repo, CSVRows) and repo.is_url and repo.identifier == "a"
    await repo.aclose()


@pytest.mark.parametrize(
    ("uri", "options", "name", "checks"),
    [
        ("s3://", {}, "aws.s3_buckets", {}),
        ("s3://bucket/some/prefix", {}, "aws.s3_objects", {}),
        ("github://users/octocat", {"token": "t"}, "github.repos", {}),
        ("github://orgs/acme", {"token": "t"}, "github.repos", {}),
        ("greenhouse://acme", {}, "greenhouse.jobs", {}),
        (
            "jira+https://example.atlassian.net?project=AS",
            {"username": "u", "password": "p", "deployment": "cloud"},
            "jira.issues",
            {},
        ),
        (
            "confluence+https://example.atlassian.net/wiki?space=ENG",
            {"username": "u", "password": "p"},
            "confluence.pages",
            {},
        ),
        ("demo:", {}, "file.csv_rows", {}),
    ],
)
async def test_open_builds_the_right_repository(
    uri: str, options: dict[str, Any], name: str, checks: dict[str, Any]
) -> None:
    try:
        repo = asyncrepo.open(uri, **options)
    except ConfigurationError as error:  # a source not built yet must say why
        pytest.fail(f"{uri}: {error}")
    try:
        assert repo.name == name
    finally:
        await repo.aclose()


async def test_register_a_name_and_a_scheme_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_schemes", dict(registry._schemes))
    registry.register("example.notes", "tests.test_core_repository:Notes", summary="notes")
    from tests.test_core_repository import Notes

    assert registry.get_class("example.notes") is Notes
    registry.register_scheme("notes", "tests.test_core_registry:notes_from_uri")
    repo = asyncrepo.open("notes://anything", count=3)
    assert isinstance(repo, Notes)
    assert [i.identifier async for i in repo.list()] == ["0", "1", "2"]


def notes_from_uri(parts: Any, options: dict[str, Any]) -> Any:
    from tests.test_core_repository import Notes, make_records

    return Notes(make_records(options.get("count", 1)))
