"""Repository names and URIs.

Every repository has a registry name (``jira.issues``, ``aws.s3_objects``...). The table
below maps names to ``module:Class`` strings, imported only when asked for (as fsspec's
registry does), so ``import asyncrepo`` stays light and a source whose extra is missing
fails with an install hint rather than an ImportError. Third-party repositories register
through the entry-point group ``asyncrepo.repositories`` (name = registry name, value =
``module:Class``); a class with ``uri_schemes`` and a ``from_uri`` classmethod also
answers ``asyncrepo.open`` for those schemes.

``open(uri, **options)`` builds a repository from a URI; credentials come from keyword
arguments or the documented environment variables.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .exceptions import ConfigurationError
from .repository import Repository

__all__ = ["Entry", "available", "get_class", "open", "register", "register_scheme"]

ENTRY_POINT_GROUP = "asyncrepo.repositories"


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:Class"
    extra: str | None  # the pip extra that brings its dependencies
    summary: str


_BUILTIN = [
    Entry(
        "file.csv_rows",
        "asyncrepo.repositories.file.csv_rows:CSVRows",
        None,
        "rows of a CSV file or URL (.csv, .csv.gz)",
    ),
    Entry(
        "aws.s3_buckets",
        "asyncrepo.repositories.aws.s3_buckets:S3Buckets",
        "aws",
        "S3 buckets of an account",
    ),
    Entry(
        "aws.s3_objects",
        "asyncrepo.repositories.aws.s3_objects:S3Objects",
        "aws",
        "objects of an S3 bucket, under a prefix",
    ),
    Entry(
        "github.repos",
        "asyncrepo.repositories.github.repos:Repos",
        "github",
        "GitHub repositories of a user, an organisation or the token's owner",
    ),
    Entry(
        "github.code",
        "asyncrepo.repositories.github.code:Code",
        "github",
        "files found by GitHub code search",
    ),
    Entry(
        "greenhouse.jobs",
        "asyncrepo.repositories.greenhouse.jobs:Jobs",
        "greenhouse",
        "jobs of a Greenhouse job board",
    ),
    Entry(
        "greenhouse.departments",
        "asyncrepo.repositories.greenhouse.departments:Departments",
        "greenhouse",
        "departments of a Greenhouse job board",
    ),
    Entry(
        "greenhouse.offices",
        "asyncrepo.repositories.greenhouse.offices:Offices",
        "greenhouse",
        "offices of a Greenhouse job board",
    ),
    Entry(
        "jira.issues",
        "asyncrepo.repositories.jira.issues:Issues",
        "atlassian",
        "Jira issues (Cloud or Data Center), optionally of one project",
    ),
    Entry(
        "jira.projects",
        "asyncrepo.repositories.jira.projects:Projects",
        "atlassian",
        "Jira projects",
    ),
    Entry(
        "confluence.pages",
        "asyncrepo.repositories.confluence.pages:Pages",
        "atlassian",
        "Confluence pages, optionally of one space",
    ),
    Entry(
        "confluence.blogs",
        "asyncrepo.repositories.confluence.blogs:Blogs",
        "atlassian",
        "Confluence blog posts, optionally of one space",
    ),
    Entry(
        "confluence.spaces",
        "asyncrepo.repositories.confluence.spaces:Spaces",
        "atlassian",
        "Confluence spaces",
    ),
    Entry(
        "elastic.indexes",
        "asyncrepo.repositories.elastic.indexes:Indexes",
        "elastic",
        "Elasticsearch / OpenSearch indexes of a cluster",
    ),
    Entry(
        "elastic.documents",
        "asyncrepo.repositories.elastic.documents:Documents",
        "elastic",
        "Elasticsearch / OpenSearch documents of an index, pattern or alias",
    ),
    Entry(
        "google.drive",
        "asyncrepo.repositories.google.drive:Files",
        "google",
        "Google Drive files (My Drive, a folder or a shared drive)",
    ),
    Entry(
        "google.mail",
        "asyncrepo.repositories.google.mail:Mail",
        "google",
        "Gmail messages of a mailbox",
    ),
    Entry(
        "google.calendar",
        "asyncrepo.repositories.google.calendar:Events",
        "google",
        "Google Calendar events of a calendar",
    ),
    Entry(
        "jenkins.jobs",
        "asyncrepo.repositories.jenkins.jobs:Jobs",
        "jenkins",
        "Jenkins jobs, folders and multibranch projects walked recursively",
    ),
    Entry(
        "jenkins.builds",
        "asyncrepo.repositories.jenkins.builds:Builds",
        "jenkins",
        "Jenkins builds of one job or of every job",
    ),
    Entry(
        "pypi.packages",
        "asyncrepo.repositories.pypi.packages:Packages",
        "pypi",
        "packages of the public Python package index or of any Simple API index",
    ),
    Entry(
        "slack.channels",
        "asyncrepo.repositories.slack.channels:Channels",
        "slack",
        "Slack channels (conversations) the token can see",
    ),
    Entry(
        "slack.users",
        "asyncrepo.repositories.slack.users:Users",
        "slack",
        "Slack users of the token's workspace",
    ),
    Entry(
        "slack.messages",
        "asyncrepo.repositories.slack.messages:Messages",
        "slack",
        "Slack messages of a channel or of every channel the token reads",
    ),
]

_entries: dict[str, Entry] = {entry.name: entry for entry in _BUILTIN}
_entry_points_loaded = False

# URI scheme -> "module:function" taking (parts, options) and returning a Repository.
_schemes: dict[str, str] = {
    "": "asyncrepo.repositories.file:from_uri",
    "file": "asyncrepo.repositories.file:from_uri",
    "http": "asyncrepo.repositories.file:from_uri",
    "https": "asyncrepo.repositories.file:from_uri",
    "demo": "asyncrepo.repositories.file:from_uri",
    "s3": "asyncrepo.repositories.aws:from_uri",
    "github": "asyncrepo.repositories.github:from_uri",
    "greenhouse": "asyncrepo.repositories.greenhouse:from_uri",
    "jira+https": "asyncrepo.repositories.jira:from_uri",
    "jira+http": "asyncrepo.repositories.jira:from_uri",
    "confluence+https": "asyncrepo.repositories.confluence:from_uri",
    "confluence+http": "asyncrepo.repositories.confluence:from_uri",
    "es+https": "asyncrepo.repositories.elastic:from_uri",
    "es+http": "asyncrepo.repositories.elastic:from_uri",
    "elasticsearch+https": "asyncrepo.repositories.elastic:from_uri",
    "elasticsearch+http": "asyncrepo.repositories.elastic:from_uri",
    "opensearch+https": "asyncrepo.repositories.elastic:from_uri",
    "opensearch+http": "asyncrepo.repositories.elastic:from_uri",
    "slack": "asyncrepo.repositories.slack:from_uri",
    "jenkins+https": "asyncrepo.repositories.jenkins:from_uri",
    "jenkins+http": "asyncrepo.repositories.jenkins:from_uri",
    "pypi": "asyncrepo.repositories.pypi:from_uri",
    "pypi+https": "asyncrepo.repositories.pypi:from_uri",
    "pypi+http": "asyncrepo.repositories.pypi:from_uri",
    "gdrive": "asyncrepo.repositories.google:from_uri",
    "gmail": "asyncrepo.repositories.google:from_uri",
    "gcal": "asyncrepo.repositories.google:from_uri",
    # Indexes for unified search (asyncrepo.index): targets of `asyncrepo sync`, searchable
    # like any source. `osindex+` keeps them apart from the OpenSearch *documents* source.
    "sqlite": "asyncrepo.index.sqlite:from_uri",
    "osindex+http": "asyncrepo.index.opensearch:from_uri",
    "osindex+https": "asyncrepo.index.opensearch:from_uri",
}


def register(name: str, target: str, *, extra: str | None = None, summary: str = "") -> None:
    """Register a repository class under ``name`` (``target`` is ``"module:Class"``)."""
    _entries[name] = Entry(name, target, extra, summary)


def register_scheme(scheme: str, target: str) -> None:
    """Make ``asyncrepo.open`` hand URIs of ``scheme`` to ``target`` (``"module:function"``,
    called as ``function(parts: SplitResult, options: dict) -> Repository``)."""
    _schemes[scheme.lower()] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in _entries:
            _entries[point.name] = Entry(point.name, point.value, None, "(entry point)")


def available() -> list[Entry]:
    """Every registered repository, built-in and from entry points, by name."""
    _load_entry_points()
    return sorted(_entries.values(), key=lambda entry: entry.name)


def _import(target: str, *, name: str, extra: str | None) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dependency"
        if missing == module_name or module_name.startswith(missing + "."):
            raise ConfigurationError(f"{name}: cannot import {module_name}") from exc
        hint = f": pip install 'asyncrepo[{extra}]'" if extra else ""
        raise ConfigurationError(f"{name} needs the package {missing!r}{hint}") from exc
    try:
        return getattr(module, attribute) if attribute else module
    except AttributeError:
        raise ConfigurationError(f"{name}: {module_name} has no {attribute}") from None


def get_class(name: str) -> type[Repository]:
    """The repository class registered as ``name`` (imported now)."""
    _load_entry_points()
    entry = _entries.get(name)
    if entry is None:
        known = ", ".join(sorted(_entries))
        raise ConfigurationError(f"no repository named {name!r} (known: {known})")
    cls = _import(entry.target, name=name, extra=entry.extra)
    if not (isinstance(cls, type) and issubclass(cls, Repository)):
        raise ConfigurationError(f"{entry.target} is not a Repository class")
    return cls


def _scheme_of(uri: str) -> tuple[str, SplitResult]:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        return "", urlsplit("file:" + uri.replace("\\", "/"))
    return scheme, parts


def known_schemes() -> list[str]:
    _load_entry_points()
    return sorted(s for s in _schemes if s)


def open(uri: str, **options: Any) -> Repository:
    """A repository for ``uri``: ``./data.csv``, ``https://host/file.csv``, ``s3://bucket/prefix``,
    ``s3://``, ``github://users/NAME``, ``github://orgs/NAME``,
    ``jira+https://example.atlassian.net?project=AS``,
    ``confluence+https://example.atlassian.net/wiki?space=ENG``, ``greenhouse://BOARD``,
    ``demo:`` (the bundled demo dataset). Keyword options go to the repository, but for
    ``cursor_key``, the key its cursors are sealed with (``asyncrepo.cursors``)."""
    cursor_key = options.pop("cursor_key", None)
    repository = _open(uri, options)
    if cursor_key is not None:
        repository.cursor_key = cursor_key
    return repository


def _open(uri: str, options: dict[str, Any]) -> Repository:
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigurationError("a URI is required (known schemes: " + _schemes_text() + ")")
    scheme, parts = _scheme_of(uri.strip())
    target = _schemes.get(scheme)
    if target is None:
        _load_entry_points()
        for entry in list(_entries.values()):
            if entry.target.startswith("asyncrepo.repositories."):
                continue
            cls = _import(entry.target, name=entry.name, extra=entry.extra)
            if scheme in getattr(cls, "uri_schemes", ()):
                return cls.from_uri(parts, options)  # type: ignore[no-any-return]
        raise ConfigurationError(
            f"unknown URI scheme {scheme!r} in {uri!r} (known schemes: {_schemes_text()})"
        )
    factory: Callable[[SplitResult, dict[str, Any]], Repository] = _import(
        target, name=scheme or "file", extra=None
    )
    return factory(parts, options)


def _schemes_text() -> str:
    return ", ".join(f"{s}://" if s != "demo" else "demo:" for s in known_schemes())
