"""The values that cross the wire: a request about to be sent (``PreparedRequest``) and a
finished response (``Response``), with ``redact_url`` for putting URLs in messages.

Pagination strategies read responses and shape requests; the transport sends the one and
builds the other. Both import these values from here, below them both, so neither layer
imports the other's module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from .exceptions import MalformedResponse

__all__ = ["PreparedRequest", "Response", "redact_url"]

_SENSITIVE_PARAMS = {
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "client_secret",
    "code",
    "key",
    "password",
    "secret",
    "sig",
    "signature",
    "token",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-signature",
}


def redact_url(url: str) -> str:
    """The URL without user info and with credential-like query parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SENSITIVE_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, "REDACTED" if k.lower() in _SENSITIVE_PARAMS else v) for k, v in pairs]
            )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@dataclass
class PreparedRequest:
    """A request about to be sent: a paginator adjusts it for a page."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class Response:
    """A finished response, body read. ``json()`` decodes it (``MalformedResponse`` if it
    cannot); ``malformed(reason)`` builds that error with the request's context."""

    status: int
    headers: Mapping[str, str]
    url: str
    method: str
    body: bytes
    source: str
    from_cache: bool = False
    #: Removes the request's secrets from text (a body may echo the request's headers).
    scrub: Callable[[str], str] | None = field(default=None, repr=False, compare=False)

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            # Scrub a wide window, then cut: a secret straddling the cut is never half-shown.
            text = self.body[:4096].decode("utf-8", "replace")
            snippet = (self.scrub(text) if self.scrub else text)[:80]
            raise self.malformed(f"the body is not JSON ({exc}); it starts {snippet!r}") from None

    def malformed(self, reason: str) -> MalformedResponse:
        return MalformedResponse(
            reason,
            source=self.source,
            method=self.method,
            url=redact_url(self.url),
            status=self.status,
        )
