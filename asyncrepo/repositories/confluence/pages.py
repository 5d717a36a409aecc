"""Confluence Cloud pages, optionally of one space (``confluence.pages``).

``Pages(base_url, username, password, base_path="/wiki", space=None)``: see
``ContentRepository`` in ``_client.py`` for what list, search, get and the options do.
"""

from __future__ import annotations

from typing import ClassVar

from ._client import ContentRepository

__all__ = ["Pages"]


class Pages(ContentRepository):
    """Pages of a Confluence Cloud site (archived ones only when asked: ``status=``)."""

    name: ClassVar[str] = "confluence.pages"
    content_type: ClassVar[str] = "page"
    collection: ClassVar[str] = "pages"
    statuses: ClassVar[tuple[str, ...]] = ("current", "archived", "trashed")
