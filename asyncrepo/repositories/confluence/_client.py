"""Confluence Cloud: the HTTP client (its error dialect), CQL helpers and the shared base of
the page and blog-post repositories.

Two APIs are used, each for what it does best:

* listing: REST v2 (``/api/v2/pages``, ``/api/v2/blogposts``, ``/api/v2/spaces/{id}/...``),
  cursor pagination by the whole ``_links.next`` URL (or the ``Link`` header). v2 links
  already start with ``/wiki/api/v2/``: they are joined to the response URL (the origin),
  never to ``_links.base``, which would double the ``/wiki``;
* search: CQL through v1 ``/rest/api/content/search``, following ``_links.next`` joined to
  ``_links.base`` (which already ends in ``/wiki``). Search ignores ``start`` (it has since
  2020; the v1 spec does not list it): pages follow only by the cursor in the link, and the
  ``start`` parameter that Confluence still writes into its links is dropped before the
  link is followed, so no request ever carries one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

import orjson
from aiolimiter import AsyncLimiter

from ...convert import html_to_text, parse_datetime
from ...exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    PermissionDenied,
    UnsupportedOption,
)
from ...http import BasicAuth, HTTPClient, Response, RetryPolicy
from ...pagination import Batch, Following, NextURL
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint, RESTRepository

__all__ = [
    "CQL_DATE_MARGIN",
    "ConfluenceClient",
    "ContentRepository",
    "V1NextURL",
    "basic_auth",
    "cql_date",
    "cql_string",
    "parse_statuses",
    "resolve_space",
    "site_and_base",
]

JSON = Any

#: v1 search caps ``limit`` at 50 when bodies are expanded (Atlassian KB; Cloud documents
#: only "fixed system limits", so the cursor links are followed whatever size comes back).
V1_BODY_LIMIT = 50
#: v2 list endpoints accept ``limit`` 1..250.
V2_MAX_LIMIT = 250
#: Statuses v1 search can filter by (``cqlcontext`` ``contentStatuses``: current, draft and
#: archived only; trashed is not supported: Atlassian CONFCLOUD-82866 / CONFCLOUD-82848).
SEARCH_STATUSES = ("current", "archived")
#: How far before ``since`` the CQL date literal is written (see ``cql_date``).
CQL_DATE_MARGIN = timedelta(hours=14)

# Cloud answers a wrong e-mail/API token like an anonymous request; a site without
# anonymous access refuses that with a 403 and this message.
_BAD_CREDENTIALS_MARKERS = ("not permitted to use confluence",)

_V1_EXPAND = "body.storage,version,space,history"
_ORDERS = frozenset({"created", "-created", "updated", "-updated"})
_V2_SORT = {
    "created": "created-date",
    "-created": "-created-date",
    "updated": "modified-date",
    "-updated": "-modified-date",
}
_CQL_ORDER = {
    "created": "created asc",
    "-created": "created desc",
    "updated": "lastmodified asc",
    "-updated": "lastmodified desc",
}


class ConfluenceClient(HTTPClient):
    """``HTTPClient`` speaking Confluence Cloud's error dialect.

    Cloud treats a wrong e-mail or API token as no credentials at all and, on a site without
    anonymous access, answers ``403 {"message": "Current user not permitted to use
    Confluence"}`` rather than a 401: that is an ``AuthenticationError``. Other 403s stay
    ``PermissionDenied``; everything else (429/5xx retries included) is the core's.
    """

    def classify(self, response: Response) -> AsyncRepoError | None:
        error = super().classify(response)
        if type(error) is PermissionDenied and _says_bad_credentials(error.vendor_message):
            return AuthenticationError(
                "the credentials were rejected (Confluence Cloud answers a wrong e-mail or "
                "API token with 403 'not permitted')",
                source=error.source,
                method=error.method,
                url=error.url,
                status=error.status,
                vendor_message=error.vendor_message,
            )
        return error


def _says_bad_credentials(message: str | None) -> bool:
    text = (message or "").casefold()
    return any(marker in text for marker in _BAD_CREDENTIALS_MARKERS)


# -- CQL --------------------------------------------------------------------------------------

_CQL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def cql_string(value: str) -> str:
    """``value`` as a double-quoted CQL string literal that parses back to exactly ``value``.

    Backslash and double quote are backslash-escaped, newline/CR/tab use ``\\n``/``\\r``/
    ``\\t`` and other control characters ``\\uXXXX``; nothing else is touched, so the text
    search still sees the caller's own Lucene syntax (``"a phrase"``, ``prefix*``) inside
    the one ``text ~`` clause, which can never change the structure of the query.
    """
    out = ['"']
    for ch in value:
        escaped = _CQL_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def cql_date(since: datetime) -> str:
    """A CQL date literal that every site/user time zone reads as an instant at or before
    ``since``.

    CQL dates have minute precision and are read in the site's (or user's) time zone, which a
    client cannot know. Zones run from UTC-12 to UTC+14, so the literal is ``since`` in UTC
    minus 14 hours, floored to the minute: read in UTC-12 it is still 2 h before ``since``;
    read in UTC+14 it is 28 h before. The repository then filters exactly, client-side, on
    ``updated_at`` (the extra day of results costs little and nothing is lost).
    """
    moment = since.astimezone(UTC) - CQL_DATE_MARGIN
    return cql_string(moment.replace(second=0, microsecond=0).strftime("%Y-%m-%d %H:%M"))


# -- pagination -------------------------------------------------------------------------------


def _without_param(url: str, name: str) -> str:
    """``url`` without the query parameter ``name``; every other byte is kept as sent."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [
        segment
        for segment in parts.query.split("&")
        if unquote_plus(segment.partition("=")[0]) != name
    ]
    return urlunsplit(parts._replace(query="&".join(kept)))


class V1NextURL(NextURL):
    """v1 search's ``_links.next`` (relative to ``_links.base``), minus the ``start``
    parameter Confluence writes into it: search pages only by the cursor in the link."""

    def __init__(self) -> None:
        super().__init__(next_field="_links.next", base_field="_links.base", page_size_param=None)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        next_url, following = super().advance(response, body, records, state, page_size)
        if isinstance(next_url, str):
            next_url = _without_param(next_url, "start")
            if next_url == state:
                raise response.malformed("the vendor repeated the next-page link")
        return next_url, following


# -- configuration helpers --------------------------------------------------------------------


def site_and_base(base_url: str, base_path: str, source: str) -> tuple[str, str]:
    """``(site, base_path)``: the origin (``https://x.atlassian.net``) and the context path
    (``/wiki``, or ``""`` for a root context). A base URL that already ends with the base
    path is accepted (``https://x.atlassian.net/wiki`` + ``/wiki``)."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError("a Confluence base URL is required", source=source)
    if not isinstance(base_path, str):
        raise ConfigurationError("base_path must be a string such as '/wiki'", source=source)
    path = "/" + base_path.strip("/") if base_path.strip("/") else ""
    site = base_url.strip().rstrip("/")
    parts = urlsplit(site)
    if parts.query or parts.fragment:
        raise ConfigurationError(
            "the Confluence base URL takes no query or fragment", source=source
        )
    if parts.path:
        if parts.path.rstrip("/") != path:
            raise ConfigurationError(
                f"give the site root as base_url and the context path as base_path "
                f"(got a base URL path {parts.path!r} and base_path {path!r})",
                source=source,
            )
        site = urlunsplit(parts._replace(path=""))
    return site, path


def basic_auth(username: str | None, password: str | None, source: str) -> BasicAuth:
    if not username or not password:
        raise ConfigurationError(
            "Confluence needs a username (the account e-mail) and an API token as password",
            source=source,
        )
    return BasicAuth(username, password)


def parse_statuses(value: Any, allowed: Iterable[str], default: str, source: str) -> list[str]:
    """The ``status`` option as a sorted, de-duplicated list of allowed statuses."""
    if value is None:
        return [default]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple | set | frozenset) or not values:
        raise InvalidQuery(
            f"status must be a status or a list of statuses, not {value!r}", source=source
        )
    allowed = tuple(allowed)
    for status in values:
        if status not in allowed:
            raise InvalidQuery(
                f"unknown status {status!r} (allowed: {', '.join(allowed)})", source=source
            )
    return sorted(set(values))


# -- pages and blog posts ---------------------------------------------------------------------


class ContentRepository(RESTRepository):
    """Pages or blog posts of a Confluence Cloud site, optionally of one space.

    * ``list``: REST v2 ``/api/v2/{pages|blogposts}`` (``/api/v2/spaces/{id}/...`` for a
      space; the key is resolved to its id once, an unknown key is a ``ConfigurationError``)
      with ``body-format=storage``; ``text`` is the storage format as plain text.
    * ``search``: CQL ``type = ... AND space = ... AND text ~ "<query>"`` through v1
      ``/rest/api/content/search`` with ``expand=body.storage,version,space,history``.
    * ``get``: v2 by id, strict on the type (a blog post id asked of ``Pages`` is
      ``ItemNotFound``, and so is an id outside the configured space). Like v2, it returns
      current and archived pages.
    * ``status`` option (list and search): ``"current"`` (the default: archived pages are
      excluded), ``"archived"``, ``"trashed"`` or a list of them. Search cannot filter
      trashed content (CQL's ``contentStatuses`` takes current/archived/draft only), so
      ``search(status="trashed")`` is ``UnsupportedOption``.
    * ``since``: list sorts by ``-modified-date`` and stops at the first older item (with
      another ``order`` it scans and filters); search adds ``lastmodified >= <literal>``,
      the literal at or before ``since`` in any time zone (see ``cql_date``). Both filter
      exactly client-side on ``updated_at``.
    * ``order``: ``created``, ``-created``, ``updated``, ``-updated`` (v2 ``sort``, CQL
      ``order by``). Without it, lists come in the vendor's default order (id) and searches
      by relevance. v1 search returns at most 50 items a request with bodies expanded; the
      cursor links are followed whatever size comes back.
    * ``author`` is the Atlassian account id of the creator (v2 gives only ids, so search
      results use the id too, for the same item to look the same whichever way it came).
    """

    #: ``page`` or ``blogpost`` (the CQL type and the v1 ``type`` field).
    content_type: ClassVar[str] = "page"
    #: The v2 collection: ``pages`` or ``blogposts``.
    collection: ClassVar[str] = "pages"
    #: Statuses the ``status`` option accepts.
    statuses: ClassVar[tuple[str, ...]] = ("current", "archived", "trashed")
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=_ORDERS,
        options=frozenset({"status"}),
        max_page_size=V2_MAX_LIMIT,
    )

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        base_path: str = "/wiki",
        space: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        limiter: AsyncLimiter | None = None,
        default_page_size: int | None = None,
    ) -> None:
        source = self.name
        self.site, self.base_path = site_and_base(base_url, base_path, source)
        if space is not None and (not isinstance(space, str) or not space.strip()):
            raise ConfigurationError(
                f"space must be a space key such as 'ENG', not {space!r}", source=source
            )
        self.space = space.strip() if space is not None else None
        self.client = ConfluenceClient(
            self.site + self.base_path,
            source=source,
            auth=basic_auth(username, password, source),
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            limiter=limiter,
        )
        if default_page_size is not None:
            self.default_page_size = default_page_size
        self._space_id: str | None = None
        self._space_lock: asyncio.Lock | None = None

    # -- configuration ----------------------------------------------------------------------

    def scope(self) -> JSON:
        return {"site": self.site + self.base_path, "space": self.space}

    def __repr__(self) -> str:
        space = f" space={self.space!r}" if self.space else ""
        return f"<{type(self).__name__} {self.name} {self.client.base_url}{space}>"

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        statuses = parse_statuses(options.get("status"), self.statuses, "current", self.name)
        unsearchable = [status for status in statuses if status not in SEARCH_STATUSES]
        if operation == "search" and unsearchable:
            raise UnsupportedOption(
                f"Confluence search cannot filter by status {', '.join(unsearchable)} (CQL's "
                f"cqlcontext contentStatuses takes {', '.join(SEARCH_STATUSES)}); list() can",
                source=self.name,
            )

    async def space_id(self) -> str | None:
        """The configured space's id (resolved once from its key), or ``None``."""
        if self.space is None:
            return None
        if self._space_id is not None:
            return self._space_id
        if self._space_lock is None:
            self._space_lock = asyncio.Lock()
        async with self._space_lock:
            if self._space_id is None:
                self._space_id = await resolve_space(self.client, self.space, self.name)
        return self._space_id

    # -- fetching ---------------------------------------------------------------------------

    def _sort(self, request: PageRequest) -> str | None:
        if request.order is not None:
            return _V2_SORT[request.order]
        if request.since is not None:
            return "-modified-date"  # newest first: the listing stops at the first older item
        return None

    def endpoint(self, request: PageRequest) -> Endpoint:
        statuses = parse_statuses(
            request.options.get("status"), self.statuses, "current", self.name
        )
        if request.query is not None:
            return self._search_endpoint(request, statuses)
        if self.space is not None:
            assert self._space_id is not None  # resolved by fetch_page
            path = f"/api/v2/spaces/{self._space_id}/{self.collection}"
        else:
            path = f"/api/v2/{self.collection}"
        # v2 array parameters are exploded (``status=a&status=b``): carried in the path.
        path += "?" + urlencode([("status", status) for status in statuses])
        params: dict[str, Any] = {"body-format": "storage"}
        sort = self._sort(request)
        if sort is not None:
            params["sort"] = sort
        return Endpoint(
            path,
            params=params,
            records="results",
            paginator=NextURL(next_field="_links.next", page_size_param="limit"),
        )

    def cql(self, query: str, since: datetime | None = None, order: str | None = None) -> str:
        """The CQL of a search: the scope clauses and one ``text ~`` clause."""
        clauses = [f"type = {cql_string(self.content_type)}"]
        if self.space is not None:
            clauses.append(f"space = {cql_string(self.space)}")
        if since is not None:
            clauses.append(f"lastmodified >= {cql_date(since)}")
        clauses.append(f"text ~ {cql_string(query)}")
        cql = " AND ".join(clauses)
        if order is not None:
            cql += f" order by {_CQL_ORDER[order]}"
        return cql

    def _search_endpoint(self, request: PageRequest, statuses: list[str]) -> Endpoint:
        assert request.query is not None
        params: dict[str, Any] = {
            "cql": self.cql(request.query, request.since, request.order),
            "expand": _V1_EXPAND,
            "limit": min(request.page_size, V1_BODY_LIMIT),
        }
        if statuses != ["current"]:
            params["cqlcontext"] = orjson.dumps({"contentStatuses": statuses}).decode()
        return Endpoint(
            "/rest/api/content/search", params=params, records="results", paginator=V1NextURL()
        )

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        await self.space_id()
        batch = await super().fetch_page(request, state)
        since = request.since
        if since is None:
            return batch
        kept: list[Item] = []
        for item in batch.items:
            stamp = item.updated_at or item.created_at
            if stamp is not None and stamp < since:
                if request.query is None and self._sort(request) == "-modified-date":
                    # Newest first: nothing after this item is recent enough.
                    return Batch(kept, None, None)
                continue
            kept.append(item)
        return Batch(kept, batch.next_state, batch.following)

    # -- items ------------------------------------------------------------------------------

    def web_url(self, webui: str | None) -> str | None:
        if not webui:
            return None
        if webui.startswith(("http://", "https://")):
            return webui
        return self.site + self.base_path + "/" + webui.lstrip("/")

    def to_item(self, raw: Any) -> Item:
        if "spaceId" in raw:  # v2
            body = raw.get("body") or {}
            storage = body.get("storage") or {}
            version = raw.get("version") or {}
            return Item(
                str(raw["id"]),
                raw,
                self,
                title=raw["title"],
                text=html_to_text(storage.get("value")),
                url=self.web_url((raw.get("_links") or {}).get("webui")),
                created_at=parse_datetime(raw.get("createdAt")),
                updated_at=parse_datetime(version.get("createdAt")),
                author=raw.get("authorId"),
                kind=self.content_type,
            )
        # v1 content (search results)
        body = raw.get("body") or {}
        storage = body.get("storage") or {}
        version = raw.get("version") or {}
        history = raw.get("history") or {}
        last_updated = history.get("lastUpdated") or {}
        creator = history.get("createdBy") or {}
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=raw["title"],
            text=html_to_text(storage.get("value")),
            url=self.web_url((raw.get("_links") or {}).get("webui")),
            created_at=parse_datetime(history.get("createdDate")),
            updated_at=parse_datetime(version.get("when") or last_updated.get("when")),
            author=creator.get("accountId") or creator.get("displayName"),
            kind=raw.get("type", self.content_type),
        )

    async def get(self, identifier: str) -> Item:
        wanted = str(identifier).strip()
        if not wanted.isdigit() or not wanted.isascii():
            raise self.not_found(wanted, f"a {self.content_type} id is a number")
        space_id = await self.space_id()
        item = await self.get_item(
            f"/api/v2/{self.collection}/{wanted}", wanted, params={"body-format": "storage"}
        )
        if space_id is not None and str(item.raw.get("spaceId")) != space_id:
            raise self.not_found(wanted, f"not in space {self.space!r}")
        return item


async def resolve_space(client: HTTPClient, key: str, source: str) -> str:
    """The id of the space with this key (v2 ``/api/v2/spaces?keys=KEY``)."""
    try:
        body = await client.get_json("/api/v2/spaces", params={"keys": key, "limit": 1})
    except ItemNotFound:
        body = {}
    results = body.get("results") if isinstance(body, dict) else None
    for space in results or []:
        if isinstance(space, dict) and space.get("key") == key and space.get("id") is not None:
            return str(space["id"])
    raise ConfigurationError(
        f"no Confluence space with key {key!r} (or this account cannot see it)", source=source
    )
