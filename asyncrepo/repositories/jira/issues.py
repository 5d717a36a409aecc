"""Jira issues, on Jira Cloud and on Jira Data Center / Server.

Jira Cloud removed ``/rest/api/{2,3,latest}/search`` in 2025 (every call answers 410 Gone);
this connector never calls it on Cloud. It uses Atlassian's recommended pattern instead:

1. page the matching issue **ids** with the enhanced search, ``POST /rest/api/3/search/jql``
   with ``fields=["id"]`` and large pages (``id_page_size``, default 1,000; Jira allows up to
   5,000 ids per page). Paging follows the opaque ``nextPageToken`` (no ``total``, no
   ``startAt``; ``isLast`` is ignored as unreliable): the listing ends when the token is
   missing or a page is empty, and a repeated token is an error (``MalformedResponse``);
2. fetch the issues themselves with ``POST /rest/api/3/issue/bulkfetch``, ``page_size`` ids
   (at most 100) per call, up to ``concurrency`` calls at once, while the next id page is
   already being searched. Bulk fetch answers in ascending id order: the issues are put back
   in the search's order, and an id it leaves out (the issue was deleted or hidden meanwhile)
   is skipped. Ids it reports in ``issueErrors`` (Jira's retriable failures) are asked again.

On Data Center / Server (no enhanced search there) the listing is ``GET /rest/api/2/search``
with ``startAt`` / ``maxResults`` / ``total``; the server caps ``maxResults`` and the limit it
reports is trusted (the core ``OffsetTotal`` paginator, which then fetches pages concurrently).

``deployment="auto"`` (the default) asks ``/rest/api/2/serverInfo`` once per repository;
``"cloud"`` or ``"server"`` (alias ``"datacenter"``) skip that request.

The JQL
-------
``[project = "<project>" AND] [text ~ "<query>" AND] [updated >= <epoch ms>]
ORDER BY <order>``, where:

* every value is a JQL string literal with ``\\`` and ``"`` escaped (``jql_string``): no
  query can change the JQL's structure. The search text is handed to Jira's text search as
  it is (Jira's own syntax applies inside it: ``"..."`` for a phrase, ``*`` for a prefix);
* ``since`` is sent as epoch **milliseconds**: a JQL date literal (``"2024/01/01 10:00"``) is
  read in the *user's profile time zone*, which would skip issues on an incremental sync;
* Jira Cloud rejects an unbounded query (no search restriction at all) with 400, so when
  there is no other clause (no project, no query, no ``since``) the listing adds
  ``created >= -36500d`` (every issue created in the last 100 years). Data Center takes the
  bare query;
* ``order``: ``"created"`` (the default), ``"-created"``, ``"updated"``, ``"-updated"``,
  always with the issue key as a tie-breaker so the order is total and stable across pages
  and cursors: ``ORDER BY created ASC, key ASC`` by default (oldest first, so issues created
  during a listing land at its end instead of shifting the pages already read);
  ``"-created"`` is ``created DESC, key DESC``, and so on. A search is ordered the same way
  (not by relevance).

Items: the identifier is the issue's numeric id (the key is in ``raw["key"]``); ``get``
accepts an id or a key. title = summary; text = the description as plain text (Atlassian
Document Format on Cloud, wiki markup as served on Data Center); url = ``<base>/browse/<KEY>``;
author = the reporter's display name; ``created_at`` / ``updated_at`` from ``created`` /
``updated``; ``raw`` is Jira's issue record (``fields`` holds the requested fields).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

from ...convert import adf_to_text, parse_datetime
from ...exceptions import (
    ConfigurationError,
    InvalidCursor,
    MalformedResponse,
    SourceUnavailable,
)
from ...http import Response, RetryPolicy, redact_url
from ...pagination import Batch, NextToken, OffsetTotal, PreparedRequest, pump
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint, RESTRepository
from ._client import (
    DeploymentProbe,
    browse_url,
    display_name,
    epoch_millis,
    jql_string,
    make_client,
    path_segment,
)

__all__ = ["ORDER_BY", "Issues"]

JSON = Any
_T = TypeVar("_T")

#: ``order=`` values and their ORDER BY clauses (the key makes every order total).
ORDER_BY = {
    "created": "created ASC, key ASC",
    "-created": "created DESC, key DESC",
    "updated": "updated ASC, key ASC",
    "-updated": "updated DESC, key DESC",
}
DEFAULT_ORDER = "created"
#: The restriction that makes a listing without any other clause acceptable to Jira Cloud.
BOUNDING_CLAUSE = "created >= -36500d"
#: Fields every item needs (added to a custom ``fields`` list).
REQUIRED_FIELDS = ("summary", "description", "created", "updated", "reporter", "project")
BULKFETCH_MAX = 100
ID_PAGE_MAX = 5000
_ISSUE_ERROR_ROUNDS = 3  # bulk fetch rounds for ids Jira reports in issueErrors


class Issues(RESTRepository):
    """Jira issues, optionally of one project (Cloud or Data Center / Server).

    ``Issues(base_url, username, password, project=None, deployment="auto")``: on Cloud the
    username is the account's email and the password an API token. ``fields`` (keyword):
    the Jira fields to fetch (default ``["*navigable"]``; a custom list gets the fields the
    common item fields need added). ``concurrency``: bulk fetches (Cloud) or pages (Data
    Center) in flight at once. ``retry``, ``timeout``, ``max_connections``: the transport's.
    ``id_page_size`` (attribute, Cloud): ids per enhanced-search page (default 1,000, at most
    5,000); a cursor remembers the size it was made with.
    """

    name: ClassVar[str] = "jira.issues"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=frozenset(ORDER_BY),
        max_page_size=BULKFETCH_MAX,
    )
    default_page_size = 100
    #: Ids per enhanced-search page on Cloud (Jira allows up to 5,000 when only ids are asked).
    id_page_size: int = 1000

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        project: str | None = None,
        deployment: str = "auto",
        *,
        fields: Sequence[str] | None = None,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
    ) -> None:
        if project is not None and (not isinstance(project, str) or not project.strip()):
            raise ConfigurationError("project must be a non-empty project key", source=self.name)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ConfigurationError("concurrency must be a positive integer", source=self.name)
        if isinstance(fields, str):
            fields = [f.strip() for f in fields.split(",")]
        chosen = [f.strip() for f in (fields or ()) if f and f.strip()]
        included = [f for f in chosen if not f.startswith("-")]
        if not included:  # nothing, or only exclusions ("-comment"): from the navigable set
            chosen = ["*navigable", *chosen]
        elif not any(f in ("*all", "*navigable") for f in included):
            chosen += [f for f in REQUIRED_FIELDS if f not in chosen]
        self.client = make_client(
            base_url,
            username,
            password,
            source=self.name,
            retry=retry,
            timeout=timeout,
            max_connections=max(max_connections, concurrency),
        )
        self.base_url = self.client.base_url
        self.project = project.strip() if project is not None else None
        self.fields = chosen
        self.page_concurrency = concurrency
        self._deployment = DeploymentProbe(self.client, deployment, self.name)

    # -- configuration --------------------------------------------------------------------

    def scope(self) -> JSON:
        return {"site": self.base_url, "project": self.project}

    async def deployment(self) -> str:
        """``"cloud"`` or ``"server"`` (Data Center / Server), detected once if ``"auto"``."""
        return await self._deployment.get()

    def jql(self, request: PageRequest, *, cloud: bool) -> str:
        """The JQL of a listing or search (see the module docstring)."""
        where: list[str] = []
        if self.project is not None:
            where.append(f"project = {jql_string(self.project)}")
        if request.query is not None:
            where.append(f"text ~ {jql_string(request.query)}")
        if request.since is not None:
            where.append(f"updated >= {max(0, epoch_millis(request.since))}")
        if not where and cloud:
            where.append(BOUNDING_CLAUSE)
        order = f"ORDER BY {ORDER_BY[request.order or DEFAULT_ORDER]}"
        return f"{' AND '.join(where)} {order}" if where else order

    # -- listing --------------------------------------------------------------------------

    def endpoint(self, request: PageRequest) -> Endpoint:
        """Data Center / Server: ``/rest/api/2/search`` by ``startAt`` (Cloud does not use
        the declarative path: see ``stream``)."""
        return Endpoint(
            "/rest/api/2/search",
            params={"jql": self.jql(request, cloud=False), "fields": self.fields},
            records="issues",
            paginator=OffsetTotal(),
        )

    async def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        if await self._deployment.get() == "cloud":
            inner = self._cloud_stream(request, state)
        else:
            _check_offset_state(state, self.name)
            inner = pump(
                lambda page_state: RESTRepository.fetch_page(self, request, page_state),
                state,
                concurrency=self.page_concurrency,
                track=self.background_tasks,
            )
        try:
            async for pair in inner:
                yield pair
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        """One page (``stream`` is what listings use; on Cloud it pipelines the requests)."""
        if await self._deployment.get() != "cloud":
            _check_offset_state(state, self.name)
            return await super().fetch_page(request, state)
        token, offset, size = self._cloud_state(state)
        ids, next_token = await self._search_ids(self.jql(request, cloud=True), token, size)
        end = offset + request.page_size
        items = await self._bulkfetch(ids[offset:end]) if offset < len(ids) else []
        next_state: JSON = None
        if end < len(ids):
            next_state = [token, end, size]
        elif next_token is not None:
            next_state = [next_token, 0, size]
        return Batch(items, next_state)

    def _cloud_state(self, state: JSON) -> tuple[str | None, int, int]:
        """Cloud states are ``[id-page token (None: first page), offset in it, id page size]``."""
        if state is None:
            return None, 0, max(1, min(int(self.id_page_size), ID_PAGE_MAX))
        if (
            isinstance(state, list)
            and len(state) == 3
            and (state[0] is None or isinstance(state[0], str))
            and isinstance(state[1], int)
            and isinstance(state[2], int)
            and state[1] >= 0
            and 0 < state[2] <= ID_PAGE_MAX
        ):
            return state[0], state[1], state[2]
        raise InvalidCursor("this cursor does not come from a Jira Cloud listing", source=self.name)

    async def _cloud_stream(
        self, request: PageRequest, state: JSON
    ) -> AsyncIterator[tuple[JSON, Batch]]:
        """Id pages searched one ahead; bulk fetches of ``page_size`` ids, up to
        ``page_concurrency`` in flight; batches yielded in the search's order."""
        token, offset, size = self._cloud_state(state)
        jql = self.jql(request, cloud=True)
        chunk = max(1, min(request.page_size, BULKFETCH_MAX))
        window = self.page_concurrency
        waiting: deque[tuple[JSON, list[str]]] = deque()  # chunks not sent yet
        pending: deque[tuple[JSON, asyncio.Task[list[Item]]]] = deque()
        seen: set[str] = set() if token is None else {token}
        search: asyncio.Task[tuple[list[str], str | None]] | None = self._start(
            self._search_ids(jql, token, size)
        )
        try:
            while True:
                while len(pending) < window:
                    if waiting:
                        chunk_state, ids = waiting.popleft()
                        pending.append((chunk_state, self._start(self._bulkfetch(ids))))
                        continue
                    if search is None or (pending and not search.done()):
                        break  # nothing more to send now; the search keeps running
                    ids, next_token = await search
                    search = None
                    if next_token is not None:
                        if next_token in seen:  # NextToken catches only an immediate repeat
                            raise MalformedResponse(
                                "Jira's enhanced search returned a page token it had already "
                                "returned (the listing would loop)",
                                source=self.name,
                                method="POST",
                                url=redact_url(self.client.url("/rest/api/3/search/jql")),
                            )
                        seen.add(next_token)
                        search = self._start(self._search_ids(jql, next_token, size))
                    for start in range(offset, len(ids), chunk):
                        waiting.append(([token, start, size], ids[start : start + chunk]))
                    token, offset = next_token, 0
                if not pending:
                    return
                chunk_state, task = pending.popleft()
                yield chunk_state, Batch(await task)
        finally:
            tasks: list[asyncio.Future[Any]] = [task for _, task in pending]
            if search is not None:
                tasks.append(search)
            for future in tasks:
                future.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """A task the repository's ``aclose()`` cancels if its stream was abandoned."""
        task = asyncio.ensure_future(work)
        background = self.background_tasks
        background.add(task)
        task.add_done_callback(background.discard)
        return task

    async def _search_ids(
        self, jql: str, token: str | None, size: int
    ) -> tuple[list[str], str | None]:
        """One page of matching ids from the enhanced search, and the next page's token."""
        paginator = NextToken(in_body=True)
        base = PreparedRequest(
            "POST", self.client.url("/rest/api/3/search/jql"), {}, {"jql": jql, "fields": ["id"]}
        )
        response = await self.client.send(paginator.prepare(base, token, size))
        body = response.json()
        records = self.records(response, body, "issues")
        try:
            ids = [str(record["id"]) for record in records]
        except (KeyError, TypeError) as exc:
            raise self.malformed_record(response, exc) from None
        next_token, _ = paginator.advance(response, body, records, token, size)
        return ids, next_token

    async def _bulkfetch(self, ids: list[str]) -> list[Item]:
        """The issues with these ids, in this order; ids Jira no longer returns are skipped."""
        found: dict[str, Any] = {}
        wanted = list(ids)
        response: Response | None = None
        for _ in range(_ISSUE_ERROR_ROUNDS):
            if not wanted:
                break
            response = await self.client.request(
                "POST",
                "/rest/api/3/issue/bulkfetch",
                json={"issueIdsOrKeys": wanted, "fields": self.fields},
            )
            body = response.json()
            for raw in self.records(response, body, "issues"):
                if isinstance(raw, dict) and "id" in raw:
                    found[str(raw["id"])] = raw
            errors = body.get("issueErrors") if isinstance(body, dict) else None
            failed = {
                str(error.get("id"))
                for error in errors or []
                if isinstance(error, dict) and error.get("id") is not None
            }
            wanted = [i for i in wanted if i in failed and i not in found]
        if wanted:
            assert response is not None
            raise SourceUnavailable(
                f"Jira could not return {len(wanted)} issue(s) (ids {', '.join(wanted[:5])}) "
                f"after {_ISSUE_ERROR_ROUNDS} bulk fetches",
                source=self.name,
                method=response.method,
                url=redact_url(response.url),
                status=response.status,
            )
        if response is None:
            return []
        return self.items(response, [found[i] for i in ids if i in found])

    # -- items ----------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        """The issue with this id or key; ``ItemNotFound`` if there is none, or if it is
        outside the repository's project."""
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        version = "3" if await self._deployment.get() == "cloud" else "2"
        item = await self.get_item(
            f"/rest/api/{version}/issue/{path_segment(wanted)}",
            wanted,
            params={"fields": self.fields},
        )
        if self.project is not None and not self._in_project(item.raw):
            raise self.not_found(wanted, f"it is not in project {self.project!r}")
        return item

    def _in_project(self, raw: dict[str, Any]) -> bool:
        fields = raw.get("fields")
        project = fields.get("project") if isinstance(fields, dict) else None
        if not isinstance(project, dict):
            return True  # the fields asked for do not say: do not refuse a real issue
        assert self.project is not None
        wanted = self.project.casefold()
        return any(
            str(project.get(name) or "").casefold() == wanted for name in ("key", "id", "name")
        )

    def to_item(self, raw: Any) -> Item:
        fields = raw.get("fields") or {}
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=fields.get("summary"),
            text=adf_to_text(fields.get("description")),
            url=browse_url(self.base_url, raw.get("key")),
            created_at=parse_datetime(fields.get("created")),
            updated_at=parse_datetime(fields.get("updated")),
            author=display_name(fields.get("reporter")),
            kind="issue",
        )

    def __repr__(self) -> str:
        project = f" project={self.project!r}" if self.project else ""
        return f"<{type(self).__name__} {self.name} {self.base_url}{project}>"


def _check_offset_state(state: JSON, source: str) -> None:
    if state is not None and (not isinstance(state, int) or isinstance(state, bool)):
        raise InvalidCursor(
            "this cursor does not come from a Jira Data Center listing", source=source
        )
