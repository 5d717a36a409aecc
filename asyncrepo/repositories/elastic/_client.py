"""What the Elasticsearch / OpenSearch connectors share: the HTTP client (the error dialect
``{"error": {"type", "reason", "root_cause"}, "status"}``, rejected executions retried),
authentication (API key, basic, bearer), the flavour probe (Elasticsearch or OpenSearch,
from ``GET /``) and the ``SearchAfter`` paginator.

Everything is plain JSON over the shared transport, so the same code serves Elasticsearch
7/8/9, Elastic Cloud (serverless included) and OpenSearch.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import orjson

from ...exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    PermissionDenied,
    RateLimited,
)
from ...http import Auth, BasicAuth, BearerAuth, HTTPClient, Response, RetryPolicy, redact_url
from ...pagination import Following, Paginator, PreparedRequest

__all__ = [
    "FLAVOURS",
    "ElasticClient",
    "Flavour",
    "SearchAfter",
    "api_key_auth",
    "error_type",
    "make_client",
    "segment",
]

Flavour = Literal["elasticsearch", "opensearch"]
#: Accepted values of the ``flavour`` argument.
FLAVOURS = ("auto", "elasticsearch", "opensearch")

#: Error types that mean "the cluster is overloaded, try again" whatever the status says.
_REJECTED = frozenset({"es_rejected_execution_exception", "rejected_execution_exception"})


def _error_parts(body: bytes) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """``(type, reason, [(cause type, cause reason)])`` of an ES/OpenSearch error body
    (causes: ``root_cause`` then ``caused_by``); ``None``s when the body is not that
    dialect. ``{"error": "text"}`` (an unknown route) gives ``(None, text, [])``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, []
    if not isinstance(data, dict):
        return None, None, []
    error = data.get("error")
    if isinstance(error, str):
        return None, error, []
    if not isinstance(error, dict):
        return None, None, []
    kind, reason = error.get("type"), error.get("reason")
    causes: list[tuple[str, str]] = []
    roots = error.get("root_cause")
    for cause in [*(roots if isinstance(roots, list) else []), error.get("caused_by")]:
        if isinstance(cause, dict) and isinstance(cause.get("type"), str):
            causes.append((cause["type"], str(cause.get("reason") or "")))
    return (
        kind if isinstance(kind, str) else None,
        reason if isinstance(reason, str) else None,
        causes,
    )


def _describe_error(kind: str | None, reason: str | None, causes: list[tuple[str, str]]) -> str:
    """``"type: reason"``, plus the first root cause when it is another type
    (``search_phase_execution_exception: all shards failed; caused by ...``)."""
    text = f"{kind}: {reason or ''}" if kind else str(reason or "")
    for cause_type, cause_reason in causes:
        if cause_type != kind:
            text += f"; caused by {cause_type}: {cause_reason}"
            break
    return text


def error_type(error: AsyncRepoError) -> str | None:
    """The vendor's error type (``index_not_found_exception``...) of an error our client
    raised: its ``vendor_message`` starts with ``"<type>: "``."""
    message = error.vendor_message or ""
    head, sep, _ = message.partition(": ")
    return head if sep and head.endswith("_exception") else None


class ElasticClient(HTTPClient):
    """The shared transport, reading Elasticsearch's and OpenSearch's error dialect.

    * The vendor message is ``"<type>: <reason>"`` (the root cause's reason when the top
      level has none), so callers can tell ``index_not_found_exception`` from a missing route.
    * ``es_rejected_execution_exception`` (a full thread-pool queue) is retried like a 429,
      whatever status carries it (a search answers 429, 503 or 500 with it as a root cause).
    * 401 ``security_exception``: ``AuthenticationError`` saying which credentials are taken.
    * Everything else: the core mapping (404 -> ``ItemNotFound``, other 4xx ->
      ``InvalidQuery``, 429/5xx retried).

    ``flavour()`` tells Elasticsearch from OpenSearch, asking ``GET /`` once.
    """

    def __init__(self, base_url: str, *, flavour: str = "auto", **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        if flavour not in FLAVOURS:
            raise ConfigurationError(
                f"flavour must be one of {', '.join(FLAVOURS)}, not {flavour!r}",
                source=self.source,
            )
        self._flavour: Flavour | None = None if flavour == "auto" else flavour  # type: ignore[assignment]
        self._flavour_lock = asyncio.Lock()

    def classify(self, response: Response) -> AsyncRepoError | None:
        status = response.status
        if status < 400:
            return None
        kind, reason, causes = _error_parts(response.body)
        if kind is None and reason is None:
            return super().classify(response)
        vendor = self.scrub(_describe_error(kind, reason, causes)[:500])
        context: dict[str, Any] = {
            "source": self.source,
            "method": response.method,
            "url": redact_url(response.url),
            "status": status,
            "vendor_message": vendor,
        }
        if kind in _REJECTED or _REJECTED.intersection(t for t, _ in causes):
            return RateLimited("the cluster rejected the request: it is overloaded", **context)
        if status == 401:
            return AuthenticationError(
                "the credentials were rejected (api_key=, username= and password=, or token=)",
                **context,
            )
        if status == 403 and self.rate_limit(response) is None:
            return PermissionDenied("access denied", **context)
        error = super().classify(response)
        if error is not None:
            error.vendor_message = vendor
        return error

    @property
    def known_flavour(self) -> Flavour | None:
        return self._flavour

    async def flavour(self) -> Flavour:
        """``"opensearch"`` when ``GET /`` says ``version.distribution == "opensearch"``,
        else ``"elasticsearch"`` (which sends ``X-Elastic-Product: Elasticsearch``; some
        OpenSearch-compatible servers send that header too, so the body is read first).
        A key without the ``monitor`` privilege may not read ``GET /`` (403): Elastic Cloud
        API keys are the usual case, so that means Elasticsearch."""
        if self._flavour is not None:
            return self._flavour
        async with self._flavour_lock:
            if self._flavour is None:
                self._flavour = await self._detect()
        return self._flavour

    async def _detect(self) -> Flavour:
        try:
            response = await self.request("GET", "/")
        except PermissionDenied:
            return "elasticsearch"
        try:
            body = response.json()
        except AsyncRepoError:
            body = None
        version = body.get("version") if isinstance(body, dict) else None
        if isinstance(version, dict) and version.get("distribution") == "opensearch":
            return "opensearch"
        if response.headers.get("X-Elastic-Product") == "Elasticsearch":
            return "elasticsearch"
        tagline = body.get("tagline") if isinstance(body, dict) else None
        if isinstance(tagline, str) and "opensearch" in tagline.lower():
            return "opensearch"
        return "elasticsearch"


def api_key_auth(api_key: str | tuple[str, str]) -> Auth:
    """``Authorization: ApiKey <base64(id:key)>``. Takes the encoded value Kibana shows, an
    ``"id:key"`` string, or an ``(id, key)`` pair."""
    if isinstance(api_key, tuple):
        identifier, key = api_key
        api_key = f"{identifier}:{key}"
    if ":" in api_key:
        api_key = base64.b64encode(api_key.encode()).decode()
    return BearerAuth(api_key, scheme="ApiKey")


def make_client(
    base_url: str,
    *,
    source: str,
    api_key: str | tuple[str, str] | None,
    username: str | None,
    password: str | None,
    token: str | None,
    flavour: str,
    retry: RetryPolicy | None,
    timeout: float | None,
    max_connections: int,
    verify_ssl: bool,
) -> ElasticClient:
    """The client with at most one kind of credentials (none: an open cluster)."""
    given = [name for name, v in (("api_key", api_key), ("token", token)) if v]
    if username or password:
        given.append("username/password")
    if len(given) > 1:
        raise ConfigurationError(
            f"give one kind of credentials, not {' and '.join(given)}", source=source
        )
    auth: Auth | None = None
    if api_key:
        auth = api_key_auth(api_key)
    elif token:
        auth = BearerAuth(token)
    elif username or password:
        if not (username and password):
            raise ConfigurationError("basic auth needs username= and password=", source=source)
        auth = BasicAuth(username, password)
    return ElasticClient(
        base_url,
        source=source,
        auth=auth,
        flavour=flavour,
        retry=retry,
        timeout=timeout,
        max_connections=max_connections,
        verify_ssl=verify_ssl,
    )


def segment(name: str) -> str:
    """An index name or document id as one URL path segment (``*`` and ``,`` kept: they
    are index-pattern syntax)."""
    return quote(name, safe="*,")


@dataclass
class SearchAfter(Paginator):
    """``search_after`` pagination over a sorted search: the state is the last hit's
    ``sort`` values, sent back in the JSON body. A page shorter than asked is the last (a
    search over a point in time or a total sort returns full pages until the end).

    A server whose sort values do not advance (the same values come back) would loop
    forever: that is a ``MalformedResponse``.
    """

    size_field: str = "size"

    def prepare(self, request: PreparedRequest, state: Any, page_size: int) -> PreparedRequest:
        body = dict(request.json or {})
        body[self.size_field] = page_size
        if state is not None:
            body["search_after"] = state
        return PreparedRequest(request.method, request.url, dict(request.params), body)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: Any, page_size: int
    ) -> tuple[Any, Following]:
        if not records:
            return None, None
        last = records[-1]
        after = last.get("sort") if isinstance(last, Mapping) else None
        if not isinstance(after, list) or not after:
            raise response.malformed("a hit of a sorted search has no sort values")
        if after == state:
            raise response.malformed(
                "the sort values did not advance (search_after would loop forever)"
            )
        if len(records) < page_size:
            return None, None
        return after, None
