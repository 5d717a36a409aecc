"""Documents of an Elasticsearch / OpenSearch index (or index pattern, or alias).

* ``list`` walks the whole index over a **point in time** with ``search_after`` on
  ``_shard_doc`` (Elasticsearch ``POST /{index}/_pit``; OpenSearch
  ``POST /{index}/_search/point_in_time``), then ``POST /_search`` with the PIT id: one
  consistent snapshot, no ``from``/``size`` window (never past 10,000), no scroll. The PIT is
  closed (``DELETE``) when the stream ends, fails, or is closed early, and by ``aclose()``
  for streams left open. Where the cluster has no PIT API (Elasticsearch before 7.10,
  OpenSearch before 2.4) the walk falls back to ``search_after`` on ``sort_field`` (default
  ``_id``) without a snapshot (``point_in_time=None``, the default, falls back;
  ``True`` requires a PIT; ``False`` never opens one).
* ``search`` is native: ``simple_query_string`` by default (its syntax cannot fail on user
  input: no parse errors, no field or regex queries), every term required
  (``default_operator: and``, as the other sources' searches); ``query_syntax=
  "query_string"`` takes Lucene syntax (fields, ranges, wildcards; a syntax error is
  ``InvalidQuery``). ``highlight=True`` puts the highlighted fragments in ``text``. Results
  come by relevance (``_score``), paged with the same PIT + ``search_after``.
* ``since`` is a ``range`` filter (``gte``) on ``since_field`` (default: ``updated_field``,
  else ``created_field``, itself ``@timestamp`` by default), in the query, server-side.
* ``order``: ``created`` / ``updated`` (``-`` for newest first) sort on those fields
  (missing values last), ``_shard_doc`` as tiebreaker.
* ``get(id)`` is ``GET /{index}/_doc/{id}`` (404 -> ``ItemNotFound``).

Identifiers are the ``_id``; when ``index`` spans several indexes (a ``*``, ``?`` or ``,``
in it, or ``qualify_ids=True`` for an alias over several), ``"<index>/<_id>"``.

Cursors carry the ``search_after`` sort values, never the PIT (it is closed when the stream
that opened it ends, and it expires). Resuming opens a fresh PIT and continues after those
values: exact when the index has not changed in between; after writes or segment merges
``_shard_doc`` values may point elsewhere, so a resumed walk may skip or repeat documents.
For exact resumption over a changing index, sort on a unique field (``order=`` with
``tiebreaker=`` a unique keyword field, or ``point_in_time=False`` with ``sort_field=``).
A PIT that expires during a walk is reopened once, with the same caveat.

Items: title, text, url, created_at, updated_at from the ``_source`` fields named by
``title_field`` (default ``title``, then ``name``), ``text_field`` (``text``, ``content``,
``body``, ``message``, ``description``), ``url_field`` (``url``; else the document's
``/{index}/_doc/{id}`` URL), ``created_field`` (``@timestamp``, then ``created_at``,
``created``), ``updated_field`` (``updated_at``, ``updated``), ``author_field``
(``author``). Each takes a field name (dotted paths reach into objects) or a list tried in
order. ``raw`` is the hit: ``_index``, ``_id``, ``_source``, and ``highlight``/``sort``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from ...convert import parse_datetime
from ...exceptions import (
    AsyncRepoError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    SourceUnavailable,
    UnsupportedOption,
)
from ...http import RetryPolicy
from ...pagination import Batch, PreparedRequest, pump
from ...repository import Capabilities, Item, PageRequest
from ...rest import RESTRepository
from ._client import ElasticClient, Flavour, SearchAfter, error_type, make_client, segment

__all__ = ["Documents"]

log = logging.getLogger("asyncrepo.elastic")

JSON = Any
MAX_RESULT_WINDOW = 10_000  # index.max_result_window's default: the most one page may hold
SYNTAXES = ("simple_query_string", "query_string")

_TITLE = ("title", "name")
_TEXT = ("text", "content", "body", "message", "description")
_URL = ("url",)
_CREATED = ("@timestamp", "created_at", "created")
_UPDATED = ("updated_at", "updated")
_AUTHOR = ("author",)
_PATTERN_CHARS = frozenset("*?,")


def _fields(value: str | Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    return tuple(value)


_new_item = object.__new__
_Where = str | tuple[str, ...] | None
_Plan = tuple[_Where, _Where, _Where, _Where, _Where, _Where]
_SAFE_ID = re.compile(r"[A-Za-z0-9._~-]+")


def _resolve(source: dict[str, Any], names: tuple[str, ...]) -> _Where:
    for name in names:
        if name in source:
            return name
        if "." in name:
            path = tuple(name.split("."))
            if path[0] in source:
                return path
    return None


def _get(source: dict[str, Any], where: str | tuple[str, ...]) -> Any:
    if type(where) is str:
        return source.get(where)
    value: Any = source
    for key in where:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _string(value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        parts = [str(v) for v in value if isinstance(v, str | int | float) and v != ""]
        return " ".join(parts) or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _date(value: Any) -> datetime | None:
    """A document date: ISO 8601 or epoch milliseconds (Elasticsearch's default formats).
    Documents hold user data: a value in another format is no date, not an error."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)  # the common case: reads "Z" (3.11)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        return parse_datetime(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Walk:
    """One stream's search: where it goes, its body, and its point in time (``pit``: the
    latest id the cluster gave, ``None`` without one)."""

    path: str
    body: dict[str, Any]
    pit: str | None = None
    reopened: bool = False
    closed: bool = False
    params: dict[str, Any] = field(default_factory=dict)


class Documents(RESTRepository):
    """Documents of an index, index pattern or alias.

    ``Documents(base_url, index, *, api_key=, username=, password=, token=, flavour="auto",
    point_in_time=None, keep_alive="5m", sort_field="_id", tiebreaker="_shard_doc",
    qualify_ids=None, title_field=, text_field=, url_field=, created_field=, updated_field=,
    author_field=, since_field=, query_syntax="simple_query_string", retry=, timeout=,
    max_connections=, verify_ssl=True)``. ``flavour``: ``"auto"`` (ask ``GET /`` once),
    ``"elasticsearch"`` or ``"opensearch"``. See the module for the rest.

    Per call: ``query_syntax=`` and ``highlight=`` (search), ``fields=`` (the fields a search
    looks in; default: the index's default fields).
    """

    name: ClassVar[str] = "elastic.documents"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=frozenset({"created", "-created", "updated", "-updated"}),
        options=frozenset({"query_syntax", "highlight", "fields"}),
        max_page_size=MAX_RESULT_WINDOW,
    )
    default_page_size = 1000
    page_concurrency = 1  # each page starts after the previous one's last sort values

    def __init__(
        self,
        base_url: str,
        index: str,
        *,
        api_key: str | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        flavour: str = "auto",
        point_in_time: bool | None = None,
        keep_alive: str = "5m",
        sort_field: str = "_id",
        tiebreaker: str = "_shard_doc",
        qualify_ids: bool | None = None,
        title_field: str | Sequence[str] | None = None,
        text_field: str | Sequence[str] | None = None,
        url_field: str | Sequence[str] | None = None,
        created_field: str | Sequence[str] | None = None,
        updated_field: str | Sequence[str] | None = None,
        author_field: str | Sequence[str] | None = None,
        since_field: str | None = None,
        query_syntax: str = "simple_query_string",
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        verify_ssl: bool = True,
    ) -> None:
        if not isinstance(index, str) or not index.strip() or "/" in index:
            raise ConfigurationError(
                f"an index name or pattern is required (no '/'), not {index!r}", source=self.name
            )
        if query_syntax not in SYNTAXES:
            raise ConfigurationError(
                f"query_syntax must be one of {', '.join(SYNTAXES)}, not {query_syntax!r}",
                source=self.name,
            )
        self.client: ElasticClient = make_client(
            base_url,
            source=self.name,
            api_key=api_key,
            username=username,
            password=password,
            token=token,
            flavour=flavour,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            verify_ssl=verify_ssl,
        )
        self.base_url = self.client.base_url
        self.index = index.strip()
        self.point_in_time = point_in_time
        self.keep_alive = keep_alive
        self.sort_field = sort_field
        self.tiebreaker = tiebreaker
        self.qualify_ids = (
            bool(_PATTERN_CHARS.intersection(self.index)) if qualify_ids is None else qualify_ids
        )
        self.title_fields = _fields(title_field, _TITLE)
        self.text_fields = _fields(text_field, _TEXT)
        self.url_fields = _fields(url_field, _URL)
        self.created_fields = _fields(created_field, _CREATED)
        self.updated_fields = _fields(updated_field, _UPDATED)
        self.author_fields = _fields(author_field, _AUTHOR)
        self._explicit_text = text_field is not None
        self.since_field = since_field or (
            self.updated_fields[0] if updated_field is not None else self.created_fields[0]
        )
        self._created_sort = self.created_fields[0]
        self._updated_sort = (
            self.updated_fields[0] if updated_field is not None else self._created_sort
        )
        self.query_syntax = query_syntax
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._url_prefixes: dict[str, str] = {}
        self._pit_supported: bool | None = None if point_in_time is None else point_in_time
        self._open: dict[int, _Walk] = {}

    def scope(self) -> JSON:
        return {"base_url": self.base_url, "index": self.index}

    async def flavour(self) -> Flavour:
        """``"elasticsearch"`` or ``"opensearch"`` (asked once, unless given)."""
        return await self.client.flavour()

    # -- options ------------------------------------------------------------------------

    def check_options(self, operation: str, options: Any) -> None:
        syntax = options.get("query_syntax")
        if syntax is not None and syntax not in SYNTAXES:
            raise InvalidQuery(
                f"query_syntax must be one of {', '.join(SYNTAXES)}, not {syntax!r}",
                source=self.name,
            )
        if operation != "search":
            for name in ("query_syntax", "highlight", "fields"):
                if name in options:
                    raise UnsupportedOption(f"{name}= applies to search only", source=self.name)
        fields = options.get("fields")
        if fields is not None and not (
            isinstance(fields, list | tuple) and all(isinstance(f, str) and f for f in fields)
        ):
            raise InvalidQuery("fields must be a list of field names", source=self.name)

    # -- the search body ----------------------------------------------------------------

    def _query(self, request: PageRequest) -> dict[str, Any]:
        must: dict[str, Any] = {"match_all": {}}
        if request.query is not None:
            syntax = request.options.get("query_syntax") or self.query_syntax
            spec: dict[str, Any] = {"query": request.query, "default_operator": "and"}
            fields = request.options.get("fields")
            if fields:
                spec["fields"] = list(fields)
            must = {syntax: spec}
        if request.since is None:
            return must
        bound = {"gte": _iso(request.since), "format": "strict_date_optional_time"}
        since = {"range": {self.since_field: bound}}
        return {"bool": {"must": [must], "filter": [since]}}

    def _sort(self, request: PageRequest, pit: bool) -> list[Any]:
        tiebreak: list[Any] = [{self.tiebreaker: "asc"}] if pit else [{self.sort_field: "asc"}]
        if request.order is not None:
            name = self._updated_sort if request.order.endswith("updated") else self._created_sort
            primary = {
                name: {
                    "order": "desc" if request.order.startswith("-") else "asc",
                    "missing": "_last",
                    "unmapped_type": "date",
                }
            }
            return [primary, *tiebreak]
        if request.query is not None:
            return [{"_score": "desc"}, *tiebreak]
        return tiebreak

    def _body(self, request: PageRequest, pit: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": self._query(request),
            "sort": self._sort(request, pit),
            "track_total_hits": False,
        }
        if request.query is not None and request.options.get("highlight"):
            names = self.text_fields if self._explicit_text else ("*",)
            body["highlight"] = {"fields": {name: {} for name in names}}
        return body

    # -- points in time -----------------------------------------------------------------

    async def _open_pit(self) -> str | None:
        """A new PIT's id; ``None`` when the cluster has none and a fallback is allowed."""
        flavour = await self.client.flavour()
        index = segment(self.index)
        params = {"keep_alive": self.keep_alive}
        path = f"/{index}/_pit" if flavour == "elasticsearch" else f"/{index}/_search/point_in_time"
        try:
            response = await self.client.request("POST", path, params=params)
        except (InvalidQuery, ItemNotFound) as exc:
            kind = error_type(exc)
            if kind == "index_not_found_exception":
                raise ConfigurationError(
                    f"no index {self.index!r}",
                    source=self.name,
                    method=exc.method,
                    url=exc.url,
                    status=exc.status,
                    vendor_message=exc.vendor_message,
                ) from None
            if self._pit_supported is True:
                raise
            log.info("%s: no point in time API (%s); walking by %s", self.name, exc, "sort")
            self._pit_supported = False
            return None
        body = response.json()
        pit_id = (
            body.get("id" if flavour == "elasticsearch" else "pit_id")
            if isinstance(body, dict)
            else None
        )
        if not isinstance(pit_id, str) or not pit_id:
            raise response.malformed("opening a point in time gave no id")
        self._pit_supported = True
        return pit_id

    async def _close_pit(self, walk: _Walk) -> None:
        self._open.pop(id(walk), None)
        if walk.closed or walk.pit is None:
            return
        walk.closed = True
        flavour = await self.client.flavour()
        try:
            if flavour == "elasticsearch":
                await self.client.request("DELETE", "/_pit", json={"id": walk.pit})
            else:
                await self.client.request(
                    "DELETE", "/_search/point_in_time", json={"pit_id": [walk.pit]}
                )
        except ItemNotFound:
            pass  # expired already
        except AsyncRepoError as exc:  # it expires on its own after keep_alive
            log.warning("%s: could not close a point in time: %s", self.name, exc)

    # -- the walk -----------------------------------------------------------------------

    def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        return self._walk(request, state)

    async def _walk(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        pit = await self._open_pit() if self._pit_supported is not False else None
        walk = _Walk(
            path="/_search" if pit else f"/{segment(self.index)}/_search",
            body=self._body(request, pit is not None),
            pit=pit,
            params={"allow_partial_search_results": "false"},
        )
        if pit is not None:
            self._open[id(walk)] = walk
        try:
            pages = pump(
                lambda page_state: self._fetch(request, page_state, walk),
                state,
                concurrency=1,
                track=self.background_tasks,
                source=self.name,
            )
            try:
                async for pair in pages:
                    yield pair
            finally:
                await _aclose(pages)
        finally:
            await self._close_pit(walk)

    async def _fetch(self, request: PageRequest, state: JSON, walk: _Walk) -> Batch:
        paginator = SearchAfter()
        body = dict(walk.body)
        if walk.pit is not None:
            body["pit"] = {"id": walk.pit, "keep_alive": self.keep_alive}
        prepared = paginator.prepare(
            PreparedRequest("POST", self.client.url(walk.path), dict(walk.params), body),
            state,
            request.page_size,
        )
        try:
            response = await self.client.send(prepared)
        except ItemNotFound as exc:
            if walk.pit is None or "search_context_missing_exception" not in (
                exc.vendor_message or ""
            ):
                raise
            if walk.reopened:
                raise SourceUnavailable(
                    f"the point in time expired twice during one walk: a page took longer "
                    f"than keep_alive={self.keep_alive!r} to read (raise keep_alive)",
                    source=self.name,
                    method=exc.method,
                    url=exc.url,
                    status=exc.status,
                    vendor_message=exc.vendor_message,
                ) from None
            log.warning("%s: the point in time expired; opening a new one", self.name)
            walk.reopened = True
            walk.closed = True  # the old one is gone
            walk.pit = await self._open_pit()
            if walk.pit is None:  # the cluster stopped offering points in time
                raise SourceUnavailable(
                    "the point in time expired and no new one could be opened",
                    source=self.name,
                    method=exc.method,
                    url=exc.url,
                    status=exc.status,
                    vendor_message=exc.vendor_message,
                ) from None
            walk.closed = False
            self._open[id(walk)] = walk
            return await self._fetch(request, state, walk)
        data = response.json()
        if not isinstance(data, dict):
            raise response.malformed("a search answer is not a JSON object")
        shards = data.get("_shards")
        if (isinstance(shards, dict) and shards.get("failed")) or data.get("timed_out") is True:
            raise response.malformed(
                "the search returned partial results (failed shards or a timeout)"
            )
        new_pit = data.get("pit_id")
        if walk.pit is not None and isinstance(new_pit, str) and new_pit:
            walk.pit = new_pit  # Elasticsearch may hand out a new id: always use the latest
        records = self.records(response, data, "hits.hits")
        next_state, _ = paginator.advance(response, data, records, state, request.page_size)
        # The items are made by pump once the next page's request is out (Batch.build).
        return Batch([], next_state, build=lambda: self.items(response, records))

    async def aclose(self) -> None:
        await self.cancel_background()  # prefetches first: none may reopen the client
        for walk in list(self._open.values()):  # the PITs of streams never closed
            await self._close_pit(walk)
        await super().aclose()

    # -- get ----------------------------------------------------------------------------

    def _spans(self, name: str) -> bool:
        patterns = [p for p in self.index.split(",") if p and not p.startswith("-")]
        return any(fnmatchcase(name, p) for p in patterns)

    async def get(self, identifier: str) -> Item:
        """The document with this identifier (``_id``, or ``index/_id``); ``ItemNotFound``
        if there is none."""
        wanted = str(identifier)
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        index, doc_id = self.index, wanted
        if self.qualify_ids:
            index, sep, doc_id = wanted.partition("/")
            if not sep or not doc_id or not index:
                raise self.not_found(wanted, "expected <index>/<_id>")
            if _PATTERN_CHARS.intersection(index) or not self._spans(index):
                raise self.not_found(wanted, f"index {index!r} is outside {self.index!r}")
        return await self.get_item(f"/{segment(index)}/_doc/{segment(doc_id)}", wanted)

    # -- items --------------------------------------------------------------------------

    def to_item(self, raw: Any) -> Item:
        # The hot path of a walk (100,000 documents: 100,000 calls): the fields to read are
        # resolved once per document shape (its top-level keys), not per document.
        source = raw.get("_source")
        if type(source) is not dict:
            source = {}
        doc_id = raw["_id"]
        if type(doc_id) is not str:
            raise TypeError("_id is not a string")
        index = raw.get("_index") or self.index
        keys = tuple(source)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plan_for(keys, source)
        title, text_at, url_at, created, updated, author = plan
        # A plan's plain key is present in every document of this shape: subscript it.
        text = None
        highlight = raw.get("highlight")
        if highlight and isinstance(highlight, dict):
            text = _highlights(highlight, self.text_fields)
        if text is None and text_at is not None:
            text = _string(source[text_at] if type(text_at) is str else _get(source, text_at))
        url = None
        if url_at is not None:
            url = _string(source[url_at] if type(url_at) is str else _get(source, url_at))
        if url is None:
            prefix = self._url_prefixes.get(index)
            if prefix is None:
                prefix = self._url_prefixes[index] = f"{self.base_url}/{segment(index)}/_doc/"
            url = prefix + (doc_id if _SAFE_ID.fullmatch(doc_id) else segment(doc_id))
        item = _new_item(Item)  # every slot set below: Item.__init__'s work, inlined
        item.identifier = f"{index}/{doc_id}" if self.qualify_ids else doc_id
        item.raw = raw
        item.repository = self
        item.title = (
            None
            if title is None
            else _string(source[title] if type(title) is str else _get(source, title))
        )
        item.text = text
        item.url = url
        item.created_at = (
            None
            if created is None
            else _date(source[created] if type(created) is str else _get(source, created))
        )
        item.updated_at = (
            None
            if updated is None
            else _date(source[updated] if type(updated) is str else _get(source, updated))
        )
        item.author = (
            None
            if author is None
            else _string(source[author] if type(author) is str else _get(source, author))
        )
        item.kind = "document"
        return item

    def _plan_for(self, keys: tuple[str, ...], source: dict[str, Any]) -> _Plan:
        """Where each item field is read in documents with these top-level keys: the first
        of its candidate names present (a dotted name: a path into an object)."""
        plan: _Plan = (
            _resolve(source, self.title_fields),
            _resolve(source, self.text_fields),
            _resolve(source, self.url_fields),
            _resolve(source, self.created_fields),
            _resolve(source, self.updated_fields),
            _resolve(source, self.author_fields),
        )
        if len(self._plans) >= 256:  # documents of many shapes: keep the cache bounded
            self._plans.clear()
        self._plans[keys] = plan
        return plan

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url} {self.index!r}>"


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _highlights(highlight: dict[str, Any], preferred: Iterable[str]) -> str | None:
    """The highlighted fragments, the text fields' first, joined by `` … ``."""
    order = [name for name in preferred if name in highlight]
    order += [name for name in highlight if name not in order]
    fragments: list[str] = []
    for name in order:
        value = highlight.get(name)
        if isinstance(value, list):
            fragments.extend(v for v in value if isinstance(v, str))
    return " … ".join(fragments) or None
