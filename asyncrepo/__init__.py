"""asyncrepo: one async interface (get, list, search, pages, cursors) over many sources."""

from ._version import __version__
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
