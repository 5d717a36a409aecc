"""The index at scale: OpenSearch (or Elasticsearch), an engine users already run.

``OpenSearchIndex("http://host:9200", "asyncrepo")`` or
``asyncrepo.open("osindex+http://host:9200/asyncrepo")`` (``osindex+https`` for TLS;
``osindex+`` keeps index URIs apart from the OpenSearch *documents source*'s
``opensearch+http``). Credentials: ``username=``/``password=`` or ``token=`` (bearer), or
``$ASYNCREPO_OPENSEARCH_USERNAME``/``_PASSWORD``/``_TOKEN``; never in the URI.

* Items live in the index ``<name>`` (one document per ``(source, identifier)``, id
  ``"<source>:<identifier>"``), created from an index template ``<name>`` with mappings for
  the common fields (``title``/``body`` text, ``source``/``kind``/``author`` keywords,
  dates, ``raw`` stored but not indexed); sync states in ``<name>-sources``.
* ``upsert`` sends ``_bulk`` requests of at most ``batch_size`` documents (and
  ``batch_bytes``), re-sends the items the cluster rejected (429, a full queue) with the
  transport's retry policy, and fails on any other item error; only when every item is
  acknowledged is the source's state written: a checkpoint never moves ahead of its items.
* ``search``: ``multi_match`` (every term, title weighted) with quoted phrases and ``pre*``
  prefixes, highlighting, the same filters as SQLite (source, kind, author, since/until),
  by relevance or date. Pages of a search use ``from``/``size`` (the engine's result window,
  10,000 by default, bounds how deep they go); listings use ``search_after`` (no bound).
* Deletions remove the documents (``_delete_by_query`` for the sweep).

All requests go through ``asyncrepo.http.HTTPClient`` (pooling, retries, error mapping).
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote

import orjson

from ..exceptions import (
    AsyncRepoError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    RateLimited,
)
from ..http import Auth, BasicAuth, BearerAuth, HTTPClient, NoAuth, RetryPolicy
from ..item import collect_strings
from ..pagination import Batch
from ..repository import Item, PageRequest
from ..wire import Response
from .base import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    Index,
    IndexedItem,
    SourceState,
    check_source_key,
    filter_values,
    split_identifier,
)

__all__ = ["OpenSearchIndex", "from_uri", "mappings", "search_body"]

DEFAULT_NAME = "asyncrepo"
_REJECTED = {"es_rejected_execution_exception", "rejected_execution_exception"}


def mappings() -> dict[str, Any]:
    """The items index's mappings (also the index template's)."""
    keyword = {"type": "keyword"}
    date = {"type": "date"}
    return {
        "dynamic": False,
        "properties": {
            "source": keyword,
            "identifier": keyword,
            "title": {"type": "text"},
            "body": {"type": "text"},
            "has_text": {"type": "boolean"},
            "url": {"type": "keyword", "index": False},
            "author": {"type": "keyword", "fields": {"text": {"type": "text"}}},
            "kind": keyword,
            "created_at": date,
            "updated_at": date,
            "stamp": date,
            "seen": {"type": "long"},
            "indexed_at": date,
            "raw": {"type": "object", "enabled": False},
        },
    }


class _Client(HTTPClient):
    """The transport with OpenSearch's error dialect: ``{"error": {"type", "reason"}}``; a
    rejected execution (a full queue) is retried as a rate limit whatever its status."""

    def classify(self, response: Response) -> AsyncRepoError | None:
        if response.status < 400:
            return None
        try:
            error = orjson.loads(response.body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if isinstance(error, dict):
            kind = str(error.get("type") or "")
            reason = self.scrub(str(error.get("reason") or ""))[:300]
            context: dict[str, Any] = {
                "source": self.source,
                "method": response.method,
                "url": response.url,
                "status": response.status,
                "vendor_message": f"{kind}: {reason}",
            }
            if kind in _REJECTED:
                return RateLimited("the cluster rejected the request (busy)", **context)
            if response.status == 404 and kind == "index_not_found_exception":
                return ItemNotFound("no such index", **context)
        return super().classify(response)


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def text_query(query: str) -> list[dict[str, Any]]:
    """A user's query as OpenSearch clauses, every one required: the plain words in one
    ``multi_match`` (operator and), each quoted phrase a ``phrase`` match, each ``pre*``
    a ``phrase_prefix`` match."""
    try:
        parts = shlex.split(query)
    except ValueError:
        parts = query.split()
    fields = ["title^10", "body", "author.text^2"]
    words: list[str] = []
    clauses: list[dict[str, Any]] = []
    for part in parts:
        part = part.strip()
        if part.endswith("*") and part.rstrip("*").strip():
            stem = part.rstrip("*").strip()
            clauses.append(
                {"multi_match": {"query": stem, "fields": fields, "type": "phrase_prefix"}}
            )
        elif " " in part:
            clauses.append({"multi_match": {"query": part, "fields": fields, "type": "phrase"}})
        elif part.strip("*"):
            words.append(part)
    if words:
        clauses.insert(
            0, {"multi_match": {"query": " ".join(words), "fields": fields, "operator": "and"}}
        )
    if not clauses:
        raise InvalidQuery(f"nothing to search for in {query!r}", source=OpenSearchIndex.name)
    return clauses


def _filters(request: PageRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("source", "kind", "author"):
        values = filter_values(request.options.get(name))
        if values is not None:
            out.append({"terms": {name: values}})
    stamp: dict[str, str] = {}
    if request.since is not None:
        stamp["gte"] = _iso(request.since) or ""
    until = request.options.get("until")
    if until is not None:
        stamp["lt"] = _iso(until) or ""
    if stamp:
        out.append({"range": {"stamp": stamp}})
    return out


def search_body(request: PageRequest, state: Any) -> dict[str, Any]:
    """The ``_search`` body for one page (``state``: an offset for a search, the last hit's
    sort values for a listing)."""
    filters = _filters(request)
    by_date = request.options.get("sort") == "date" or request.order == "-updated"
    tiebreak = [{"source": "asc"}, {"identifier": "asc"}]
    if request.order == "updated":
        sort: list[Any] = [{"stamp": {"order": "asc", "missing": "_last"}}, *tiebreak]
    elif by_date:
        sort = [{"stamp": {"order": "desc", "missing": "_last"}}, *tiebreak]
    else:
        sort = ["_score", *tiebreak] if request.query is not None else tiebreak
    body: dict[str, Any] = {"size": request.page_size, "sort": sort, "track_total_hits": False}
    if request.query is not None:
        body["query"] = {"bool": {"must": text_query(request.query), "filter": filters}}
        body["highlight"] = {
            "pre_tags": [HIGHLIGHT_START],
            "post_tags": [HIGHLIGHT_END],
            "fields": {"body": {}, "title": {}},
            "fragment_size": 160,
            "number_of_fragments": 1,
        }
        body["from"] = int(state or 0)
    else:
        body["query"] = {"bool": {"filter": filters}} if filters else {"match_all": {}}
        if state is not None:
            if not isinstance(state, list):
                raise InvalidQuery("a damaged cursor", source=OpenSearchIndex.name)
            body["search_after"] = state
    return body


class OpenSearchIndex(Index):
    """Items of every synced source in an OpenSearch index. See the module docstring."""

    name = "index.opensearch"

    def __init__(
        self,
        base_url: str,
        index: str = DEFAULT_NAME,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        batch_size: int = 1000,
        batch_bytes: int = 8 * 1024 * 1024,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
    ) -> None:
        if not index or index != index.lower() or any(c in index for c in ' "*\\<|,>/?#:'):
            raise ConfigurationError(
                f"an OpenSearch index name is lowercase, without spaces or any of "
                f'"*\\<|,>/?#: (not {index!r})',
                source=self.name,
            )
        if batch_size < 1 or batch_bytes < 1024:
            raise ConfigurationError(
                "batch_size must be >= 1, batch_bytes >= 1024", source=self.name
            )
        username = username or os.environ.get("ASYNCREPO_OPENSEARCH_USERNAME")
        password = password or os.environ.get("ASYNCREPO_OPENSEARCH_PASSWORD")
        token = token or os.environ.get("ASYNCREPO_OPENSEARCH_TOKEN")
        auth: Auth = NoAuth()
        if token:
            auth = BearerAuth(token)
        elif username:
            auth = BasicAuth(username, password or "")
        self.index = index
        self.states_index = f"{index}-sources"
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.client = _Client(base_url, source=self.name, auth=auth, retry=retry, timeout=timeout)
        self._ready = False
        self._ready_lock = asyncio.Lock()

    def scope(self) -> Any:
        return [self.client.base_url, self.index]

    async def aclose(self) -> None:
        await super().aclose()
        await self.client.aclose()

    # -- setup --------------------------------------------------------------------------------

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            await self.client.request(
                "PUT",
                f"/_index_template/{self.index}",
                json={
                    "index_patterns": [self.index],
                    "priority": 100,
                    "template": {"mappings": mappings()},
                },
            )
            await self._create(self.index, None)
            await self._create(
                self.states_index,
                {"dynamic": False, "properties": {"state": {"type": "object", "enabled": False}}},
            )
            self._ready = True

    async def _create(self, name: str, index_mappings: dict[str, Any] | None) -> None:
        body = {"mappings": index_mappings} if index_mappings else {}
        try:
            await self.client.request("PUT", f"/{name}", json=body)
        except InvalidQuery as error:
            if "already_exists" not in (error.vendor_message or ""):
                raise

    async def refresh(self) -> None:
        """Make every write so far visible to searches (the engine does it every second)."""
        await self._ensure()
        await self.client.request("POST", f"/{self.index},{self.states_index}/_refresh")

    # -- writing ------------------------------------------------------------------------------

    def _document(self, source: str, item: Item, generation: int, now: str) -> dict[str, Any]:
        text = item.text
        if text:
            body = text
        else:
            strings: list[str] = []
            collect_strings(item.raw, strings)
            body = " ".join(strings)
        created, updated = item.created_at, item.updated_at
        return {
            "source": source,
            "identifier": str(item.identifier),
            "title": item.title,
            "body": body,
            "has_text": text is not None,
            "url": item.url,
            "author": item.author,
            "kind": item.kind,
            "created_at": _iso(created),
            "updated_at": _iso(updated),
            "stamp": _iso(updated or created),
            "seen": generation,
            "indexed_at": now,
            "raw": item.raw,
        }

    async def upsert(
        self,
        source: str,
        items: Sequence[Item],
        *,
        generation: int = 0,
        state: SourceState | None = None,
    ) -> None:
        check_source_key(source)
        await self._ensure()
        now = datetime.now(UTC).isoformat()
        lines: list[bytes] = []
        size = 0
        for item in items:
            action = orjson.dumps(
                {"index": {"_index": self.index, "_id": f"{source}:{item.identifier}"}}
            )
            document = orjson.dumps(self._document(source, item, generation, now), default=str)
            if lines and (
                len(lines) // 2 >= self.batch_size or size + len(document) > self.batch_bytes
            ):
                await self.bulk(lines)
                lines, size = [], 0
            lines += (action, document)
            size += len(action) + len(document) + 2
        if lines:
            await self.bulk(lines)
        if state is not None:  # only now: every item above is acknowledged
            await self.save_state(state)

    async def bulk(self, lines: list[bytes]) -> None:
        """Send action/document line pairs with ``_bulk``; re-send the rejected ones (429)
        with the retry policy's backoff; raise on any other item failure."""
        pending = lines
        policy = self.client.retry
        for attempt in range(1, policy.attempts + 1):
            body = b"\n".join(pending) + b"\n"
            # orjson.Fragment: the NDJSON body goes out as it is, through the shared client.
            response = await self.client.request("POST", "/_bulk", json=orjson.Fragment(body))
            answer = response.json()
            if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
                raise response.malformed("a _bulk answer without items")
            if not answer.get("errors"):
                return
            retry: list[bytes] = []
            for n, entry in enumerate(answer["items"]):
                result = next(iter(entry.values())) if isinstance(entry, dict) and entry else {}
                status = result.get("status", 0) if isinstance(result, dict) else 0
                if isinstance(status, int) and status < 300:
                    continue
                error = result.get("error") if isinstance(result, dict) else None
                kind = error.get("type") if isinstance(error, dict) else None
                if status == 429 or kind in _REJECTED:
                    retry += pending[2 * n : 2 * n + 2]  # its action and document lines
                    continue
                reason = error.get("reason") if isinstance(error, dict) else error
                raise MalformedResponse(
                    f"the index refused an item ({status}): {kind}: {str(reason)[:200]}",
                    source=self.name,
                    method="POST",
                    url=f"{self.client.base_url}/_bulk",
                    status=response.status,
                )
            if not retry:
                return
            pending = retry
            await asyncio.sleep(policy.backoff_for(attempt))
        raise RateLimited(
            f"the cluster kept rejecting {len(pending) // 2} item(s) of a bulk write",
            source=self.name,
        )

    async def delete(
        self,
        source: str,
        identifiers: Iterable[str] = (),
        *,
        not_seen_since: int | None = None,
        state: SourceState | None = None,
    ) -> int:
        check_source_key(source)
        await self._ensure()
        count = 0
        wanted = [str(i) for i in identifiers]
        if wanted:
            query = {
                "bool": {
                    "filter": [{"term": {"source": source}}, {"terms": {"identifier": wanted}}]
                }
            }
            count += await self._delete_by_query(query)
        if not_seen_since is not None:
            query = {
                "bool": {
                    "filter": [
                        {"term": {"source": source}},
                        {"range": {"seen": {"lt": not_seen_since}}},
                    ]
                }
            }
            count += await self._delete_by_query(query)
        if state is not None:
            await self.refresh()
            state.items = await self.count(source)
            await self.save_state(state)
        return count

    async def _delete_by_query(self, query: dict[str, Any]) -> int:
        response = await self.client.request(
            "POST",
            f"/{self.index}/_delete_by_query",
            params={"refresh": "true", "conflicts": "proceed"},
            json={"query": query},
        )
        deleted = response.json().get("deleted", 0)
        return int(deleted) if isinstance(deleted, int) else 0

    async def save_state(self, state: SourceState) -> None:
        check_source_key(state.source)
        await self._ensure()
        await self.client.request(
            "PUT",
            f"/{self.states_index}/_doc/{quote(state.source, safe='')}",
            params={"refresh": "true"},
            json={"state": state.to_json()},
        )

    # -- reading ------------------------------------------------------------------------------

    async def state(self, source: str) -> SourceState | None:
        await self._ensure()
        try:
            answer = await self.client.get_json(
                f"/{self.states_index}/_doc/{quote(source, safe='')}"
            )
        except ItemNotFound:
            return None
        if not answer.get("found"):
            return None
        return SourceState.from_json(answer["_source"]["state"])

    async def states(self) -> dict[str, SourceState]:
        await self._ensure()
        answer = (
            await self.client.request(
                "POST",
                f"/{self.states_index}/_search",
                json={"size": 10000, "query": {"match_all": {}}},
            )
        ).json()
        out = {}
        for hit in answer.get("hits", {}).get("hits", []):
            state = SourceState.from_json(hit["_source"]["state"])
            out[state.source] = state
        return dict(sorted(out.items()))

    async def count(self, source: str | None = None) -> int:
        await self._ensure()
        query: dict[str, Any] = {"term": {"source": source}} if source else {"match_all": {}}
        answer = (
            await self.client.request("POST", f"/{self.index}/_count", json={"query": query})
        ).json()
        return int(answer.get("count", 0))

    async def get(self, identifier: str) -> Item:
        split_identifier(identifier, self.name)
        await self._ensure()
        try:
            answer = await self.client.get_json(f"/{self.index}/_doc/{quote(identifier, safe='')}")
        except ItemNotFound:
            raise self.not_found(str(identifier)) from None
        if not answer.get("found"):
            raise self.not_found(str(identifier))
        return self._item(answer)

    def _item(self, hit: dict[str, Any]) -> Item:
        doc = hit.get("_source")
        if not isinstance(doc, dict):
            raise MalformedResponse("a hit without _source", source=self.name)
        snippet = None
        highlight = hit.get("highlight")
        if isinstance(highlight, dict):
            fragments = highlight.get("body") or highlight.get("title")
            if isinstance(fragments, list) and fragments:
                snippet = str(fragments[0])
        score = hit.get("_score")
        raw = doc.get("raw")
        has_text = bool(doc.get("has_text"))
        return IndexedItem(
            str(doc.get("source")),
            str(doc.get("identifier")),
            raw if isinstance(raw, dict) else {},
            self,
            snippet=snippet,
            score=float(score) if isinstance(score, int | float) else None,
            title=doc.get("title"),
            text=doc.get("body") if has_text else None,
            url=doc.get("url"),
            author=doc.get("author"),
            kind=doc.get("kind"),
            created_at=_date(doc.get("created_at")),
            updated_at=_date(doc.get("updated_at")),
        )

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        await self._ensure()
        body = search_body(request, state)
        response = await self.client.request("POST", f"/{self.index}/_search", json=body)
        answer = response.json()
        hits = answer.get("hits", {}).get("hits") if isinstance(answer, dict) else None
        if not isinstance(hits, list):
            raise response.malformed("a search answer without hits")
        items = [self._item(hit) for hit in hits]
        if len(hits) < request.page_size:
            return Batch(items, None)
        if request.query is not None:
            return Batch(items, int(state or 0) + len(hits))
        return Batch(items, hits[-1].get("sort"))


def from_uri(parts: SplitResult, options: dict[str, Any]) -> OpenSearchIndex:
    """``osindex+http://host:9200/name`` (``osindex+https``); options go to the index."""
    scheme = parts.scheme.lower().removeprefix("osindex+")
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("OpenSearch index URIs are osindex+http(s)://host:port/name")
    if parts.username or parts.password:
        raise ConfigurationError(
            "put OpenSearch credentials in options or $ASYNCREPO_OPENSEARCH_USERNAME/"
            "_PASSWORD/_TOKEN, not in the URI"
        )
    name = parts.path.strip("/") or DEFAULT_NAME
    if "/" in name:
        raise ConfigurationError(f"an OpenSearch index URI names one index, not {name!r}")
    for key, value in parse_qsl(parts.query):
        if key in ("batch_size", "batch_bytes"):
            options.setdefault(key, int(value))
        else:
            raise ConfigurationError(f"the OpenSearch index takes no URI option {key!r}")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return OpenSearchIndex(f"{scheme}://{netloc}", name, **options)
