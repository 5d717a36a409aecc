"""Packages of a Python package index (``pypi.packages``): the public index by default, or any
index that speaks the Simple API (PEP 503 HTML / PEP 691 JSON).

``Packages(index_url=None, *, json_url="auto", rss_url="auto", username=None,
password=None, max_index_bytes=512 MiB, max_feed_pages=100, detail_concurrency=8,
retry=None, timeout=60.0)``

* ``list``: ``GET {index_url}/`` with PEP 691's ``Accept`` (JSON preferred, HTML
  accepted). The project list is one document; it is parsed as it arrives (JSON by
  orjson over runs of whole entries, ijson's C parser for a list it cannot cut; HTML by
  ``html.parser``), a batch of projects per network chunk, and never held whole. A
  document past ``max_index_bytes`` raises ``MalformedResponse``. The order is the
  index's. A cursor is a position in the list: resuming downloads the list
  again and skips to it.
* ``get(name)``: the JSON API, ``GET {json_url}/<name>/json`` (404 -> ``ItemNotFound``);
  an index without one (``json_url=None``) answers from its Simple API project page
  (``{index_url}/<name>/``).
* ``search``: naive, over the normalised names only (PyPI has no search API):
  ``mode="contains"`` (default; every term a substring) or ``mode="prefix"``. With
  ``details=True`` each hit is completed by ``get``, ``detail_concurrency`` at once.
* ``since``: the updates feed (``rss_url``, RSS, the latest 100 releases), paged back in
  time with ``?before=`` (epoch seconds, as Warehouse takes it) until a release older than
  ``since``: packages with a release at or after ``since``, newest first, each once. A
  feed that does not page back past ``since``, more than ``max_feed_pages`` (100) pages,
  or an index without a feed (``rss_url=None``, a 404) raise ``UnsupportedOption``. A
  cursor holds the page's ``before``.

``index_url=None`` is the index pip installs from: ``PIP_INDEX_URL`` if set, else pip's
default, the public index (asyncrepo takes the address from pip). ``json_url`` and
``rss_url`` default (``"auto"``) to the public index's own when ``index_url`` is the public
index, and to ``None`` otherwise.

Items: identifier = the PEP 503 normalised name; title = the name as the index spells it;
url = ``{index_url}/<name>/``; kind ``package``. From the JSON API (``get``, details):
text = summary, author (author, else author e-mail, else maintainer), url = the project
page, updated_at = the latest release's newest upload, created_at = the first upload;
``raw`` is the JSON API body without its deprecated ``releases`` key. From the feed:
text = the summary, updated_at = the release's date, ``raw`` the feed entry.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from aiolimiter import AsyncLimiter

from ...convert import parse_datetime
from ...exceptions import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOption,
)
from ...http import Auth, BasicAuth, HTTPClient, Response, RetryPolicy, redact_url
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest
from ...rest import RESTRepository
from ._client import (
    ACCEPT,
    CappedReader,
    HTMLProjects,
    ParseError,
    default_index,
    json_errors,
    json_projects,
    normalize,
    parse_feed,
    simple_format,
)
from ._client import (
    _pip_default as _pip_default_index,
)

__all__ = ["Packages"]

JSON = Any
MAX_INDEX_BYTES = 512 * 1024 * 1024
CHUNK = 256 * 1024
BATCH = 4096
_SEP = re.compile(r"-+")  # after "_" and "." became "-": PEP 503's runs are one "-"
_MODES = ("contains", "prefix")


class Packages(RESTRepository):
    """Packages of a Python package index (see the module docstring)."""

    name: ClassVar[str] = "pypi.packages"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="naive",
        since="native",
        options=frozenset({"details", "mode"}),
    )
    filters_search_terms: ClassVar[bool] = True
    # One document, no pages to shift: an index lists a project once (and a server that
    # repeats itself for ever meets max_index_bytes).
    dedupe_identifiers: ClassVar[bool] = False
    default_page_size = 100

    def __init__(
        self,
        index_url: str | None = None,
        *,
        json_url: str | None = "auto",
        rss_url: str | None = "auto",
        username: str | None = None,
        password: str | None = None,
        max_index_bytes: int | None = MAX_INDEX_BYTES,
        max_feed_pages: int = 100,
        detail_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        if index_url is None:
            index, default_json, default_rss = default_index()
        else:
            index, default_json, default_rss = index_url.rstrip("/"), None, None
            public = _pip_default_index()
            if public is not None and index == public[0]:  # the public index, named
                default_json, default_rss = public[1], public[2]
        auth: Auth | None = None
        if username or password:
            auth = BasicAuth(username or "", password or "")
        self.client = HTTPClient(
            index,
            source=self.name,
            auth=auth,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            headers=headers,
            limiter=limiter,
        )
        self.index_url = self.client.base_url
        self.json_url = default_json if json_url == "auto" else json_url
        self.rss_url = default_rss if rss_url == "auto" else rss_url
        if self.json_url is not None:
            self.json_url = self.json_url.rstrip("/")
        self.max_index_bytes = max_index_bytes
        self.max_feed_pages = max(1, int(max_feed_pages))
        self.detail_concurrency = max(1, int(detail_concurrency))

    def scope(self) -> JSON:
        return {"index": self.index_url}

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        mode = options.get("mode", "contains")
        if mode not in _MODES:
            raise InvalidQuery(f"mode must be one of {', '.join(_MODES)}", source=self.name)
        if "mode" in options and operation != "search":
            raise InvalidQuery("mode= is for search", source=self.name)
        if not isinstance(options.get("details", False), bool):
            raise InvalidQuery("details must be True or False", source=self.name)

    # -- listing ----------------------------------------------------------------------------

    def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        if state is not None and (
            not isinstance(state, int) or isinstance(state, bool) or state < 0
        ):
            raise InvalidCursor("this cursor does not come from a PyPI listing", source=self.name)
        if request.since is not None:
            return self._feed(request, state)
        return self._index(request, state or 0)

    def _matcher(self, request: PageRequest) -> Any:
        if not request.terms:
            return None
        terms = [normalize(term) for term in request.terms]
        if request.options.get("mode", "contains") == "prefix":
            return lambda ident: all(ident.startswith(t) for t in terms)
        return lambda ident: all(t in ident for t in terms)

    async def _index(self, request: PageRequest, skip: int) -> AsyncIterator[tuple[JSON, Batch]]:
        matcher = self._matcher(request)
        details = bool(request.options.get("details", False))
        url = self.index_url + "/"
        try:
            async with self.client.stream(url, headers={"Accept": ACCEPT}) as response:
                kind = simple_format(response.headers.get("Content-Type"))
                if kind is None:
                    raise self._malformed(
                        response,
                        "not a Simple API answer (Content-Type "
                        f"{response.headers.get('Content-Type')!r})",
                    )
                reader = CappedReader(response.content, self.max_index_bytes)
                entries = (
                    self._json_batches(reader) if kind == "json" else self._html_batches(reader)
                )
                position = 0  # index in the document of the next entry
                try:
                    async for raws, last in entries:
                        start, position = position, position + len(raws)
                        if position <= skip:
                            continue
                        if start < skip:
                            raws, start = raws[skip - start :], skip
                        items = self._list_items(response, raws, matcher)
                        if details and items:
                            items = await self._details(items)
                        if items or last:
                            yield start, Batch(items, None if last else position)
                except OverflowError:
                    raise self._malformed(
                        response,
                        f"the project list is larger than max_index_bytes "
                        f"({self.max_index_bytes:,} bytes)",
                    ) from None
                except ParseError as exc:
                    raise self._malformed(response, str(exc)) from None
                except json_errors() as exc:
                    raise self._malformed(
                        response, f"the project list is not valid JSON ({exc})"
                    ) from None
                except TimeoutError:
                    raise SourceTimeout(
                        "the index stopped sending the project list",
                        source=self.name,
                        method="GET",
                        url=redact_url(url),
                    ) from None
                except (aiohttp.ClientError, OSError) as exc:
                    raise SourceUnavailable(
                        f"the connection broke while reading the project list "
                        f"({type(exc).__name__})",
                        source=self.name,
                        method="GET",
                        url=redact_url(url),
                    ) from None
        except ItemNotFound as exc:
            raise ConfigurationError(
                f"no Simple API index at {redact_url(url)} (check index_url)",
                source=self.name,
                method=exc.method,
                url=exc.url,
                status=exc.status,
            ) from None

    async def _json_batches(self, reader: CappedReader) -> AsyncIterator[tuple[list[Any], bool]]:
        """The JSON list's entries as they are parsed (the last batch flagged)."""
        async for batch in json_projects(reader, CHUNK):
            yield batch, False
        yield [], True

    async def _html_batches(self, reader: CappedReader) -> AsyncIterator[tuple[list[Any], bool]]:
        """The HTML list's anchors, a batch per chunk read (the last flagged)."""
        parser = HTMLProjects()
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            found = parser.feed_bytes(chunk)
            if found:
                yield found, False
        yield parser.finish(), True

    def _list_items(
        self, response: aiohttp.ClientResponse, raws: list[Any], matcher: Any
    ) -> list[Item]:
        """Items for project entries: one loop, no ``Item.__init__`` call (this runs for
        every project of the index); every slot is set, as ``plain_items`` does."""
        base = self.index_url + "/"
        sub = _SEP.sub
        new = object.__new__
        items: list[Item] = []
        append = items.append
        for raw in raws:
            try:
                name = raw["name"]
            except (TypeError, KeyError, IndexError):
                name = None
            if type(name) is not str or not name:
                raise self._malformed(response, f"a project entry without a name: {raw!r:.80}")
            ident = name.lower().replace("_", "-").replace(".", "-")
            if "--" in ident:
                ident = sub("-", ident)
            if matcher is not None and not matcher(ident):
                continue
            item = new(Item)
            item.identifier = ident
            item.raw = raw
            item.repository = self
            item.title = name
            item.url = base + ident + "/"
            item.kind = "package"
            item.text = item.author = None
            item.created_at = item.updated_at = None
            append(item)
        return items

    async def _details(self, items: list[Item]) -> list[Item]:
        """Each item completed by ``get`` (``detail_concurrency`` at once); one the index
        no longer has stays as listed."""
        gate = asyncio.Semaphore(self.detail_concurrency)

        async def one(item: Item) -> Item:
            async with gate:
                try:
                    return await self.get(item.identifier)
                except ItemNotFound:
                    return item

        return list(await asyncio.gather(*(one(item) for item in items)))

    def _malformed(self, response: aiohttp.ClientResponse, reason: str) -> MalformedResponse:
        return MalformedResponse(
            reason,
            source=self.name,
            method="GET",
            url=redact_url(str(response.url)),
            status=response.status,
        )

    # -- since: the updates feed ------------------------------------------------------------

    async def _feed(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        """Packages with a release at or after ``since``, from the updates feed, page after
        page back in time (``?before=`` the oldest release seen, in epoch seconds), each
        package once (at its newest release), newest first."""
        since = request.since
        assert since is not None
        if self.rss_url is None:
            raise UnsupportedOption(
                f"{self.index_url} has no known updates feed, so since= cannot be answered "
                "(pass rss_url= if it has one)",
                source=self.name,
            )
        matcher = self._matcher(request)
        details = bool(request.options.get("details", False))
        before: int | None = state
        seen: set[str] = set()
        releases: set[tuple[str, str]] = set()
        previous: datetime | None = None
        full = 0  # the length of a full page: the first page's
        for page in range(1, self.max_feed_pages + 1):
            entries = await self._feed_page(before)
            full = full or len(entries)
            items: list[Item] = []
            # A page shorter than the first is the feed's end: nothing older to ask for.
            reached = len(entries) < full or not entries
            for entry in entries:
                published: datetime = entry["published"]
                if published < since:
                    reached = True
                    break
                ident = normalize(entry["name"])
                release = (ident, entry["version"])
                if release in releases:
                    continue  # the boundary second is asked twice
                releases.add(release)
                if ident in seen or (matcher is not None and not matcher(ident)):
                    continue
                seen.add(ident)
                items.append(self._feed_item(ident, entry))
            oldest = entries[-1]["published"] if entries else None
            stuck = (
                not reached and oldest is not None and previous is not None and oldest >= previous
            )
            if stuck:
                assert previous is not None
                if before == int(previous.timestamp()):
                    raise UnsupportedOption(
                        f"the updates feed reaches back only to {previous.isoformat()} (it "
                        f"does not page further back), after since={since.isoformat()}",
                        source=self.name,
                    )
                # A full page of one second: go on from the second before it (releases of
                # that second past the page are missed).
                following: int | None = int(previous.timestamp())
            else:
                # The next page: releases before the oldest one's second, that second
                # included (releases sharing it may not all be in this page; repeats are
                # skipped).
                following = None if reached or oldest is None else int(oldest.timestamp()) + 1
            if following is not None and page == self.max_feed_pages:
                raise UnsupportedOption(
                    f"since={since.isoformat()} is further back than {page} pages of the updates "
                    f"feed reach (to {oldest.isoformat() if oldest else '?'}; max_feed_pages=)",
                    source=self.name,
                )
            if details and items:
                items = await self._details(items)
            yield before, Batch(items, following)
            if following is None:
                return
            before = following
            if not stuck:
                previous = oldest

    async def _feed_page(self, before: int | None) -> list[dict[str, Any]]:
        assert self.rss_url is not None
        try:
            response = await self.client.request(
                "GET",
                self.rss_url,
                params={"before": before} if before is not None else None,
                headers={"Accept": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8"},
            )
        except ItemNotFound:
            raise UnsupportedOption(
                f"the index has no updates feed at {redact_url(self.rss_url)}, so since= "
                "cannot be answered",
                source=self.name,
            ) from None
        try:
            entries = parse_feed(response.body)
        except ParseError as exc:
            raise response.malformed(str(exc)) from None
        entries.sort(key=lambda e: e["published"], reverse=True)
        return entries

    def _feed_item(self, ident: str, entry: dict[str, Any]) -> Item:
        published: datetime = entry["published"]
        return Item(
            ident,
            {**entry, "published": published.isoformat()},
            self,
            title=entry["name"],
            text=entry["description"],
            url=entry["link"],
            updated_at=published,
            author=entry["author"],
            kind="package",
        )

    # -- get --------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        """The package with this name (any spelling: it is normalised); ``ItemNotFound``
        if the index has none."""
        wanted = normalize(str(identifier).strip())
        if not wanted or "/" in wanted or "?" in wanted or "#" in wanted:
            raise self.not_found(str(identifier), "not a package name")
        if self.json_url is not None:
            item = await self.get_item(f"{self.json_url}/{quote(wanted, safe='')}/json", wanted)
            if item.identifier != wanted:
                raise self.not_found(wanted, f"the index answered for {item.identifier!r}")
            return item
        try:
            response = await self.client.request(
                "GET", f"{self.index_url}/{quote(wanted, safe='')}/", headers={"Accept": ACCEPT}
            )
        except ItemNotFound as exc:
            raise self.not_found_from(wanted, exc) from None
        return self._project_page(response, wanted)

    def _project_page(self, response: Response, wanted: str) -> Item:
        """An item from a Simple API project page (JSON or HTML)."""
        kind = simple_format(response.headers.get("Content-Type"))
        url = f"{self.index_url}/{wanted}/"
        if kind == "json":
            body = response.json()
            if not isinstance(body, dict) or not isinstance(body.get("files"), list):
                raise response.malformed("a project page without a files list")
            stamps = []
            for f in body["files"]:
                when = f.get("upload-time") if isinstance(f, dict) else None
                if isinstance(when, str):
                    try:
                        stamps.append(parse_datetime(when))
                    except ValueError:
                        raise response.malformed(f"a bad upload-time {when!r}") from None
            dates = [s for s in stamps if s is not None]
            name = body.get("name") if isinstance(body.get("name"), str) else wanted
            return Item(
                wanted,
                body,
                self,
                title=name,
                url=url,
                created_at=min(dates) if dates else None,
                updated_at=max(dates) if dates else None,
                kind="package",
            )
        if kind == "html":
            parser = HTMLProjects()
            files = parser.feed_bytes(response.body) + parser.finish()
            raw = {
                "name": wanted,
                "files": [{"filename": f["name"], "url": f["href"]} for f in files],
            }
            return Item(wanted, raw, self, title=wanted, url=url, kind="package")
        raise response.malformed(
            f"not a Simple API answer (Content-Type {response.headers.get('Content-Type')!r})"
        )

    def to_item(self, raw: Any) -> Item:
        """An item from a JSON API body (``/pypi/<name>/json``)."""
        info = raw["info"]
        name = info["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("info.name is not a name")
        releases = raw.pop("releases", None)
        latest = [_upload_time(f) for f in raw.get("urls") or []]
        first = [
            _upload_time(f)
            for files in (releases or {}).values()
            for f in files
            if isinstance(f, dict)
        ]
        latest_dates = [d for d in latest if d is not None]
        first_dates = [d for d in first if d is not None]
        author = next(
            (
                info.get(key)
                for key in ("author", "author_email", "maintainer", "maintainer_email")
                if isinstance(info.get(key), str) and info.get(key).strip()
            ),
            None,
        )
        summary = info.get("summary")
        return Item(
            normalize(name),
            raw,
            self,
            title=name,
            text=summary if isinstance(summary, str) and summary else None,
            url=info.get("project_url") or info.get("package_url"),
            created_at=min(first_dates) if first_dates else None,
            updated_at=max(latest_dates) if latest_dates else None,
            author=author,
            kind="package",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.index_url}>"


def _upload_time(file: Any) -> datetime | None:
    if not isinstance(file, dict):
        raise TypeError("a file that is not an object")
    value = file.get("upload_time_iso_8601") or file.get("upload_time")
    return parse_datetime(value) if value else None
