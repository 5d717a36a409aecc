"""The errors asyncrepo raises: part of the API.

Every failure a source can produce maps to one class below, so callers can write
``except RateLimited`` once for every source. Each error carries what a person needs to act
on it: the source (registry name), the HTTP method and URL (credentials stripped), the
status and the vendor's own message. Secrets never reach a message: URLs are redacted
before they are stored here, and transports scrub known secret values from vendor text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "AsyncRepoError",
    "AuthenticationError",
    "ConfigurationError",
    "InvalidCursor",
    "InvalidQuery",
    "ItemNotFound",
    "MalformedResponse",
    "PermissionDenied",
    "RateLimited",
    "SourceTimeout",
    "SourceUnavailable",
    "UnsupportedOption",
]


class AsyncRepoError(Exception):
    """Base class of every error asyncrepo raises."""

    #: Whether the shared retry policy may try the request again.
    retryable: bool = False
    #: Seconds the vendor asked to wait before trying again (``Retry-After``), if it did.
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        vendor_message: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.method = method
        self.url = url
        self.status = status
        self.vendor_message = vendor_message
        super().__init__(message)

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(f"{self.source}:")
        if self.method and self.url:
            request = f"{self.method} {self.url}"
            if self.status is not None:
                request += f" -> {self.status}"
            parts.append(request + ":")
        parts.append(self.message)
        if self.vendor_message and self.vendor_message not in self.message:
            parts.append(f"({self.vendor_message})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword attributes when an error crosses a process boundary.
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[AsyncRepoError], message: str, state: dict[str, Any]) -> AsyncRepoError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(AsyncRepoError, ValueError):
    """The repository is set up wrongly: unknown scheme, missing bucket or board, bad option."""


class InvalidQuery(AsyncRepoError, ValueError):
    """The query or an option value is invalid, or the vendor rejected the request as such."""


class InvalidCursor(InvalidQuery):
    """A cursor that this repository, operation or query did not produce."""


class UnsupportedOption(AsyncRepoError, ValueError):
    """An option this source cannot honour. asyncrepo never ignores an option silently."""


class ItemNotFound(AsyncRepoError, LookupError):
    """``get(identifier)`` found no such item (or it is outside the repository's scope)."""

    def __init__(self, message: str, *, identifier: str | None = None, **kwargs: Any) -> None:
        self.identifier = identifier
        super().__init__(message, **kwargs)


class AuthenticationError(AsyncRepoError):
    """The credentials are missing, wrong or expired."""


class PermissionDenied(AsyncRepoError):
    """The credentials are valid but may not see this resource."""


class SourceUnavailable(AsyncRepoError):
    """The source could not be reached or failed (connection error, 5xx), after retries."""

    retryable = True


class SourceTimeout(SourceUnavailable):
    """A request to the source timed out, after retries."""


class RateLimited(AsyncRepoError):
    """The source's rate limit was hit and waiting for it would exceed the retry policy's cap.

    ``reset_at`` is when the vendor said the limit resets (if it said), ``retry_after`` the
    wait in seconds it asked for.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        reset_at: datetime | None = None,
        **kwargs: Any,
    ) -> None:
        self.retry_after = retry_after
        self.reset_at = reset_at
        super().__init__(message, **kwargs)


class MalformedResponse(AsyncRepoError):
    """The vendor answered with a body asyncrepo cannot understand (bad JSON, missing fields)."""
