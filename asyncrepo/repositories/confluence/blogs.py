"""Confluence Cloud blog posts, optionally of one space (``confluence.blogs``).

``Blogs(base_url, username, password, base_path="/wiki", space=None)``: see
``ContentRepository`` in ``_client.py`` for what list, search, get and the options do.
Blog posts cannot be archived: ``status`` takes ``"current"`` (the default) or, for
``list`` only, ``"trashed"``.
"""

from __future__ import annotations

from typing import ClassVar

from ._client import ContentRepository

__all__ = ["Blogs"]


class Blogs(ContentRepository):
    """Blog posts of a Confluence Cloud site."""

    name: ClassVar[str] = "confluence.blogs"
    content_type: ClassVar[str] = "blogpost"
    collection: ClassVar[str] = "blogposts"
    statuses: ClassVar[tuple[str, ...]] = ("current", "trashed")
