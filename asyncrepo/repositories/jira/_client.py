"""What the Jira connectors share: the HTTP client (Jira's error dialect), deployment detection
(Cloud or Data Center / Server), JQL quoting and the common item mapping helpers."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import orjson

from ...exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    ItemNotFound,
)
from ...http import BasicAuth, HTTPClient, Response, RetryPolicy, redact_url

__all__ = [
    "DEPLOYMENTS",
    "Deployment",
    "JiraClient",
    "jql_string",
    "path_segment",
]

Deployment = Literal["cloud", "server"]
#: Accepted values of the ``deployment`` argument ("datacenter" is an alias of "server").
DEPLOYMENTS = ("auto", "cloud", "server", "datacenter")

_UNKNOWN_PROJECT = re.compile(r"The value '(.*)' does not exist for the field 'project'\.")
_MARKUP = re.compile(r"^\s*<")


def _error_messages(body: bytes) -> list[str]:
    """Jira's ``errorMessages`` (and ``errors`` values) from an error body, if it is JSON."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    messages = [str(m) for m in data.get("errorMessages") or [] if m]
    errors = data.get("errors")
    if isinstance(errors, dict):
        messages += [str(v) for v in errors.values() if v]
    return messages


class JiraClient(HTTPClient):
    """The shared transport, reading Jira's error dialect.

    * 401: Jira Cloud answers ``text/plain``, Data Center an HTML page (or JSON): the message
      says what to check, and the vendor text is the ``X-Seraph-LoginReason`` header or the
      plain-text body, never a page of HTML.
    * 400 "The value 'X' does not exist for the field 'project'.": ``ConfigurationError``
      naming the project (the repository's scope is wrong, not the query).
    * Everything else: the core mapping (400 -> ``InvalidQuery``, 404 -> ``ItemNotFound``,
      410 -> ``SourceUnavailable``, 429/5xx retried).
    """

    def classify(self, response: Response) -> AsyncRepoError | None:
        status = response.status
        if status == 401:
            reason = response.headers.get("X-Seraph-LoginReason")
            text = response.body[:200].decode("utf-8", "replace").strip()
            vendor = reason or (text if text and not _MARKUP.match(text) else None)
            return AuthenticationError(
                "the credentials were rejected (Jira Cloud takes the account's email and an "
                "API token; Data Center / Server a username and password)",
                source=self.source,
                method=response.method,
                url=redact_url(response.url),
                status=status,
                vendor_message=self.scrub(vendor) if vendor else None,
            )
        if status == 400:
            for message in _error_messages(response.body):
                match = _UNKNOWN_PROJECT.search(message)
                if match:
                    return ConfigurationError(
                        f"unknown Jira project {match.group(1)!r} (it does not exist, or these "
                        "credentials may not browse it)",
                        source=self.source,
                        method=response.method,
                        url=redact_url(response.url),
                        status=status,
                        vendor_message=self.scrub(message),
                    )
        return super().classify(response)


def make_client(
    base_url: str,
    username: str,
    password: str,
    *,
    source: str,
    retry: RetryPolicy | None,
    timeout: float | None,
    max_connections: int,
) -> JiraClient:
    if not isinstance(username, str) or not username:
        raise ConfigurationError(
            "a Jira username (Cloud: the account's email) is required", source=source
        )
    if not isinstance(password, str) or not password:
        raise ConfigurationError("a Jira password or API token is required", source=source)
    return JiraClient(
        base_url,
        source=source,
        auth=BasicAuth(username, password),
        retry=retry,
        timeout=timeout,
        max_connections=max_connections,
    )


class DeploymentProbe:
    """Cloud or Data Center / Server, decided once per repository.

    ``"auto"`` asks ``GET /rest/api/2/serverInfo`` (present on both; ``deploymentType`` is
    ``"Cloud"`` on Cloud, ``"Server"`` or ``"DataCenter"`` otherwise) on first use; concurrent
    first uses share the one request. ``"cloud"`` / ``"server"`` (alias ``"datacenter"``)
    skip the request.
    """

    def __init__(self, client: HTTPClient, deployment: str, source: str) -> None:
        if deployment not in DEPLOYMENTS:
            raise ConfigurationError(
                f"deployment must be one of {', '.join(DEPLOYMENTS)}, not {deployment!r}",
                source=source,
            )
        self._client = client
        self._source = source
        self._known: Deployment | None = None
        if deployment == "cloud":
            self._known = "cloud"
        elif deployment in ("server", "datacenter"):
            self._known = "server"
        self._lock = asyncio.Lock()

    @property
    def known(self) -> Deployment | None:
        return self._known

    async def get(self) -> Deployment:
        if self._known is not None:
            return self._known
        async with self._lock:
            if self._known is None:
                self._known = await self._detect()
        return self._known

    async def _detect(self) -> Deployment:
        try:
            info = await self._client.get_json("/rest/api/2/serverInfo")
        except ItemNotFound as exc:
            raise ConfigurationError(
                f"no Jira REST API at {redact_url(self._client.base_url)} "
                "(GET /rest/api/2/serverInfo answered 404): check the base URL",
                source=self._source,
                method=exc.method,
                url=exc.url,
                status=exc.status,
            ) from None
        kind = info.get("deploymentType") if isinstance(info, dict) else None
        return "cloud" if isinstance(kind, str) and kind.lower() == "cloud" else "server"


# -- JQL ------------------------------------------------------------------------------------

_JQL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jql_string(value: str) -> str:
    """``value`` as a JQL double-quoted string literal that means exactly ``value``.

    Backslash and double quote are escaped, newline / carriage return / tab take their
    escapes, other control characters become ``\\uXXXX``: nothing in ``value`` can end the
    literal or change the query's structure.
    """
    out = ['"']
    for ch in value:
        escaped = _JQL_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_millis(when: datetime) -> int:
    """Milliseconds since the epoch, rounded down (a ``>=`` bound never excludes ``when``)."""
    return (when - _EPOCH) // timedelta(milliseconds=1)


def path_segment(identifier: str) -> str:
    """An identifier as one URL path segment (no ``/`` or ``..`` can escape it)."""
    return quote(identifier, safe="")


def browse_url(base_url: str, key: Any) -> str | None:
    return f"{base_url}/browse/{quote(str(key), safe='')}" if key else None


def display_name(user: Any) -> str | None:
    if isinstance(user, dict):
        name = user.get("displayName") or user.get("name")
        return str(name) if name else None
    return None
