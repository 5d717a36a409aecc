"""File sources: CSV rows from local paths and http(s) URLs, and the bundled demo dataset."""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import SplitResult, unquote

from ...exceptions import ConfigurationError
from ...repository import Repository

DEMO_FIELDS = {
    "title": "name",
    "text": "description",
    "url": "homepage",
    "author": "maintainer",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


def demo_path() -> str:
    """The bundled demo dataset: fictional software projects (see asyncrepo/data/README.md)."""
    return str(resources.files("asyncrepo").joinpath("data/demo.csv.gz"))


def demo(**options: Any) -> Repository:
    from .csv_rows import CSVRows

    options.setdefault("identifier", "id")
    options.setdefault("fields", DEMO_FIELDS)
    return CSVRows(demo_path(), **options)


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    from .csv_rows import CSVRows

    if parts.scheme == "demo":
        if parts.path or parts.query or parts.fragment or parts.netloc:
            raise ConfigurationError(
                f"demo: takes nothing after the colon, not {parts.geturl()!r}", source="demo"
            )
        return demo(**options)
    if parts.scheme in ("http", "https"):
        return CSVRows(parts.geturl(), **options)
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise ConfigurationError(f"file URIs must be local, not on {parts.netloc!r}")
    path = unquote(parts.path) if parts.scheme == "file" else parts.geturl()
    if not path:
        raise ConfigurationError("a file path is required")
    return CSVRows(path, **options)
