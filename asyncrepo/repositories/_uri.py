"""What every ``vendor+http(s)://HOST/...`` URI must satisfy before a connector reads it:
a scheme of the vendor's, no credentials in the URI (they would end up in logs and shell
history), a host, and only the query parameters the vendor's ``from_uri`` knows."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import SplitResult, parse_qsl

from ..exceptions import ConfigurationError

__all__ = ["checked_http_uri"]


def checked_http_uri(
    parts: SplitResult,
    *,
    vendor: str,
    source: str,
    schemes: Collection[str],
    credentials: str,
    example: str,
    params: Collection[str],
) -> tuple[str, dict[str, str]]:
    """``(scheme, query)`` of a checked URI (the scheme lower-cased; the query's last value
    per parameter). ``credentials`` says where the credentials go instead ("the username= /
    password= options or JIRA_USERNAME / JIRA_API_TOKEN"); ``example`` is a URI to show."""
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ConfigurationError(f"not a {vendor} URI scheme: {scheme!r}", source=source)
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"put {vendor} credentials in {credentials}, not in the URI", source=source
        )
    if not parts.hostname:
        raise ConfigurationError(f"a {vendor} URI needs a host: {example}", source=source)
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in params:
            raise ConfigurationError(
                f"unknown {vendor} URI parameter {key!r} (accepted: {', '.join(params)})",
                source=source,
            )
        query[key] = value
    return scheme, query
