"""Indexes for unified search: every source copied into one searchable store.

* ``SQLiteIndex`` (``sqlite:///asyncrepo.db``): embedded, one file, FTS5. The default.
* ``OpenSearchIndex`` (``osindex+http://host:9200/name``): OpenSearch or Elasticsearch, for
  indexes that outgrow one machine.

Both are ``Repository`` objects (``asyncrepo.open(uri)`` returns one) with the small
``Index`` interface the sync engine writes through (``asyncrepo.sync``).
"""

from __future__ import annotations

import os

from .base import Index, IndexedItem, SourceState, split_identifier

__all__ = ["DEFAULT_INDEX", "Index", "IndexedItem", "SourceState", "open_index", "split_identifier"]

#: The index used when none is given: ``$ASYNCREPO_INDEX``, else ./asyncrepo.db.
DEFAULT_INDEX = "sqlite:///asyncrepo.db"


def default_index_uri() -> str:
    return os.environ.get("ASYNCREPO_INDEX") or DEFAULT_INDEX


def open_index(uri: str | None = None, **options: object) -> Index:
    """The index at ``uri`` (default: ``default_index_uri()``), via the registry."""
    from ..exceptions import ConfigurationError
    from ..registry import open as open_uri

    target = uri or default_index_uri()
    repo = open_uri(target, **options)
    if not isinstance(repo, Index):
        raise ConfigurationError(
            f"{target!r} is a source, not an index (indexes: sqlite:///path.db, "
            "osindex+http://host:9200/name)"
        )
    return repo
