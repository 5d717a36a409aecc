"""asyncrepo: one async interface (get, list, search, pages, cursors) over many sources.

The public names below are imported on first use (module ``__getattr__``), so that
``import asyncrepo`` and ``asyncrepo --help`` stay fast and do not load the HTTP transport
(aiohttp) until a source needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .exceptions import (
        AsyncRepoError,
        AuthenticationError,
        ConfigurationError,
        InvalidCursor,
        InvalidQuery,
        ItemNotFound,
        MalformedResponse,
        PermissionDenied,
        RateLimited,
        SourceTimeout,
        SourceUnavailable,
        UnsupportedOption,
    )
    from .http import RetryPolicy
    from .pagination import Batch
    from .registry import open
    from .repository import Capabilities, Item, Page, PageRequest, Repository, Stream

# name -> the module (relative to this package) that defines it
_LAZY = {
    "AsyncRepoError": ".exceptions",
    "AuthenticationError": ".exceptions",
    "ConfigurationError": ".exceptions",
    "InvalidCursor": ".exceptions",
    "InvalidQuery": ".exceptions",
    "ItemNotFound": ".exceptions",
    "MalformedResponse": ".exceptions",
    "PermissionDenied": ".exceptions",
    "RateLimited": ".exceptions",
    "SourceTimeout": ".exceptions",
    "SourceUnavailable": ".exceptions",
    "UnsupportedOption": ".exceptions",
    "RetryPolicy": ".http",
    "Batch": ".pagination",
    "open": ".registry",
    "Capabilities": ".repository",
    "Item": ".repository",
    "Page": ".repository",
    "PageRequest": ".repository",
    "Repository": ".repository",
    "Stream": ".repository",
}

__all__ = [
    "AsyncRepoError",
    "AuthenticationError",
    "Batch",
    "Capabilities",
    "ConfigurationError",
    "InvalidCursor",
    "InvalidQuery",
    "Item",
    "ItemNotFound",
    "MalformedResponse",
    "Page",
    "PageRequest",
    "PermissionDenied",
    "RateLimited",
    "Repository",
    "RetryPolicy",
    "SourceTimeout",
    "SourceUnavailable",
    "Stream",
    "UnsupportedOption",
    "__version__",
    "open",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncrepo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
