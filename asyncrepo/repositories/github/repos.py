"""GitHub repositories of a user, an organisation, or the token's owner (``github.repos``).

Native async on the shared transport: one request per page of up to 100 repositories,
following GitHub's ``Link`` header. When the header gives ``rel="last"`` the core fetches the
following pages concurrently: at most ``page_concurrency`` (default 8) at once, fewer when
``x-ratelimit-remaining`` is low, one at a time for 5 minutes after a secondary rate limit
(see ``_client``). GitHub Enterprise Server works
through ``base_url`` (``https://HOST/api/v3``).

Items
    ``identifier`` = ``full_name`` (``owner/name``), ``title`` = ``full_name``, ``text`` =
    ``description``, ``url`` = ``html_url``, ``author`` = ``owner.login``, ``kind`` =
    ``"repository"``, ``created_at``; ``updated_at`` = the later of GitHub's ``updated_at``
    (the repository object changed: description, settings, stars...) and ``pushed_at``
    (last push to any branch), i.e. the last activity of either kind. ``raw`` is GitHub's
    JSON as is.

list
    ``/users/{user}/repos``, ``/orgs/{org}/repos``, or ``/user/repos`` (every repository the
    token can reach as owner, collaborator or organisation member) with neither. Without
    ``order`` the listing asks GitHub for ``sort=created&direction=asc``: new repositories
    land at the end, so pages do not shift while a listing runs. ``order`` is ``created``,
    ``updated`` (GitHub's ``updated_at``) or ``pushed``, ``-`` for newest first.

since
    Keeps repositories created or active (``Item.updated_at``, see above) at or after
    ``since``. Without ``order``, it stops early, in two passes: ``sort=updated desc`` until
    ``updated_at < since``, then ``sort=pushed desc`` until ``pushed_at < since`` (adding only
    repositories the first pass did not give): exact, and a handful of requests for a recent
    ``since``. With an ``order`` the listing is filtered without stopping (an order by one
    timestamp cannot tell when the other one is past ``since``).

get
    ``get("owner/name")`` is ``/repos/{owner}/{name}``. With ``user`` or ``org`` set, a
    repository of another owner (compared case-insensitively, also after GitHub follows a
    rename or transfer) is ``ItemNotFound``; with neither, any repository the token can see.

search
    ``/search/repositories`` with the scope qualifier (``user:NAME`` or ``org:NAME``; none
    without a scope, i.e. all of GitHub) and ``fork:true`` (GitHub leaves forks out of
    search by default; the listing has them). The caller's text cannot widen or drop the
    scope: every word or ``"phrase"`` is sent as a quoted phrase (inner quotes and
    backslashes become spaces), so ``user:other``, ``OR``, ``-org:x``, parentheses are plain
    text; only narrowing qualifiers (``language:``, ``topic:``, ``stars:``...; see
    ``SEARCH_QUALIFIERS``) and excluded words (``-word``) pass through. Results outside the
    scope are dropped as well (defence in depth).

    GitHub returns at most 1,000 results per query (422 past that). When ``total_count`` is
    larger, the search is split by ``created:`` ranges, bisecting the time range until every
    slice holds at most 1,000 results, and the slices are read oldest first (best match
    within a slice): every result is returned exactly once. A cursor records the slice it
    is in and the slices still to read, so it resumes in the same place. A slice of one
    second that still holds more than 1,000 results cannot be split: its first 1,000 are
    returned and a warning is logged. Search results come in GitHub's best-match order:
    ``order=`` is refused for search. ``since`` filters search results client-side.

Rate limits and caching: see ``_client`` (primary limit, secondary limit with a 60 s floor,
``Retry-After``; at most 100 connections). ``cache=True`` (or a ``ResponseCache``) makes
repeated GETs conditional (``If-None-Match``): a 304 reuses the stored page and does not
count against the quota.

Token: the first positional argument (the original ``login_or_token``) or ``token=``. The
class does not read the environment (what you pass is what is sent; without a token,
requests are anonymous, 60 an hour); ``asyncrepo.open("github://...")`` falls back to
``GITHUB_TOKEN``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiolimiter import AsyncLimiter

from ...convert import parse_datetime
from ...exceptions import ConfigurationError, InvalidCursor, InvalidQuery, UnsupportedOption
from ...http import ResponseCache, RetryPolicy
from ...pagination import Batch, Following, pump
from ...repository import Capabilities, Item, Page, PageRequest, Stream
from ._client import (
    DEFAULT_BASE_URL,
    DEFAULT_PAGE_CONCURRENCY,
    FirstCall,
    GitHubClient,
    GitHubRepository,
    check_login,
    check_page_concurrency,
    escape_query,
    make_cache,
    resolve_token,
)

__all__ = ["SEARCH_QUALIFIERS", "Repos"]

log = logging.getLogger("asyncrepo.github")

JSON = Any

#: Qualifiers a repository search may carry from the caller's text: each only narrows.
SEARCH_QUALIFIERS = frozenset(
    {
        "language",
        "topic",
        "topics",
        "stars",
        "forks",
        "size",
        "pushed",
        "archived",
        "in",
        "is",
        "license",
        "mirror",
        "template",
        "followers",
        "good-first-issues",
        "help-wanted-issues",
    }
)
_ORDERS = frozenset(
    {"created", "-created", "updated", "-updated", "pushed", "-pushed", "full_name", "-full_name"}
)
_REPO_ID_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)/([A-Za-z0-9_.-]{1,100})")
#: No repository on github.com is older than this (GitHub opened in 2008).
_GITHUB_START = int(datetime(2007, 10, 1, tzinfo=UTC).timestamp())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created_qualifier(lo: int | None, hi: int | None) -> str | None:
    """``created:`` for the half-open slice [lo, hi) of epoch seconds (None: open end)."""
    if lo is None and hi is None:
        return None
    if lo is None:
        assert hi is not None
        return f"created:<={_iso(hi - 1)}"
    if hi is None:
        return f"created:>={_iso(lo)}"
    return f"created:{_iso(lo)}..{_iso(hi - 1)}"


def _split(lo: int | None, hi: int | None) -> tuple[list[Any], list[Any]] | None:
    """The two halves of a slice, or None when it is one second long."""
    now = int(time.time())
    hi_e = hi if hi is not None else now + 86_400
    lo_e = lo if lo is not None else (_GITHUB_START if hi_e - _GITHUB_START >= 2 else 0)
    if hi_e - lo_e < 2:
        return None
    mid = (lo_e + hi_e) // 2
    return [lo, mid], [mid, hi]


class Repos(GitHubRepository):
    """GitHub repositories of ``user``, of ``org``, or (neither) of the token's owner.

    ``Repos(token=None, /, user=None, org=None, base_url="https://api.github.com", *,
    token=None, retry=None, timeout=60, max_connections=20, cache=None, limiter=None,
    page_concurrency=8)``. ``retry`` defaults to ``RetryPolicy(rate_limit_floor=60)``;
    ``max_connections`` is at most 100. See the module docstring for the details.
    """

    name: ClassVar[str] = "github.repos"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=_ORDERS,
        max_page_size=100,
    )
    default_page_size = 100
    #: GitHub answers at most this many results per search query.
    search_cap: ClassVar[int] = 1000

    def __init__(
        self,
        login_or_token: str | None = None,
        /,
        user: str | None = None,
        org: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        cache: bool | ResponseCache | None = None,
        limiter: AsyncLimiter | None = None,
        page_concurrency: int = DEFAULT_PAGE_CONCURRENCY,
        verify_ssl: bool = True,
        trust_env: bool = True,
    ) -> None:
        source = self.name
        if user is not None and org is not None:
            raise ConfigurationError("give user or org, not both", source=source)
        self.user = check_login(user, "user", source=source)
        self.org = check_login(org, "org", source=source)
        self.page_concurrency = check_page_concurrency(page_concurrency, source=source)
        self.client = GitHubClient(
            base_url,
            source=source,
            token=resolve_token(login_or_token, token, source=source),
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            limiter=limiter,
            cache=make_cache(cache),
            verify_ssl=verify_ssl,
            trust_env=trust_env,
        )

    # -- scope ----------------------------------------------------------------------------

    @property
    def owner(self) -> str | None:
        """The login every repository must belong to (``None``: no such restriction)."""
        return self.user or self.org

    def scope(self) -> JSON:
        return {"user": self.user, "org": self.org, "api": self.client.base_url}

    def __repr__(self) -> str:
        if self.user:
            what = f"users/{self.user}"
        elif self.org:
            what = f"orgs/{self.org}"
        else:
            what = "user"
        return f"<Repos {self.name} {what} at {self.client.base_url}>"

    # -- items ----------------------------------------------------------------------------

    def to_item(self, raw: Any) -> Item:
        full_name = raw["full_name"]
        updated = raw.get("updated_at")
        pushed = raw.get("pushed_at")
        if pushed and (not updated or pushed > updated):  # same ISO format: string order
            updated = pushed
        return Item(
            full_name,
            raw,
            self,
            title=full_name,
            text=raw.get("description"),
            url=raw.get("html_url"),
            created_at=parse_datetime(raw.get("created_at")),
            updated_at=parse_datetime(updated),
            author=raw["owner"]["login"],
            kind="repository",
        )

    # -- get ------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        text = str(identifier)
        match = _REPO_ID_RE.fullmatch(text)
        if match is None or match.group(2) in (".", ".."):
            raise self.not_found(text, "expected 'owner/name'")
        owner, name = match.groups()
        scope = self.owner
        if scope is not None and owner.lower() != scope.lower():
            raise self.not_found(text, f"outside the repositories of {scope}")
        item = await self.get_item(f"/repos/{owner}/{name}", text)
        if scope is not None and (item.author or "").lower() != scope.lower():
            raise self.not_found(text, f"outside the repositories of {scope}")
        return item

    # -- list -----------------------------------------------------------------------------

    def _list_path(self) -> str:
        if self.user:
            return f"/users/{self.user}/repos"
        if self.org:
            return f"/orgs/{self.org}/repos"
        if not self.client.authenticated:
            raise ConfigurationError(
                "listing the token's own repositories needs a token (or give user= or org=)",
                source=self.name,
            )
        return "/user/repos"

    @staticmethod
    def _sort_params(order: str | None) -> dict[str, str]:
        if order is None:
            return {"sort": "created", "direction": "asc"}
        return {
            "sort": order.lstrip("-"),
            "direction": "desc" if order.startswith("-") else "asc",
        }

    async def fetch_page(
        self, request: PageRequest, state: JSON, *, following: bool = True
    ) -> Batch:
        """One page of the listing (``state``: GitHub's next-page URL). Searches and the
        early-stopping ``since`` listing have their own page sequences: see ``stream``."""
        if request.query is not None or (request.since is not None and request.order is None):
            raise NotImplementedError("use stream() for searches and since= listings")
        response, _, raws, next_url, after = await self._page(
            self._list_path(),
            self._sort_params(request.order),
            state,
            request.page_size,
            following=following,
        )
        return Batch(self.items(response, raws), next_url, after)

    def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        if request.query is not None:
            return self._search_stream(request, state)
        if request.since is not None and request.order is None:
            return pump(
                lambda page_state: self._recent_page(request, page_state),
                state,
                concurrency=1,
                track=self.background_tasks,
            )
        first = FirstCall()
        batches = pump(
            lambda page_state: self.fetch_page(request, page_state, following=first()),
            state,
            concurrency=self.page_limit(),
            track=self.background_tasks,
        )
        if request.since is None:
            return batches
        since = request.since
        return self.filtered(batches, lambda i: (i.updated_at or i.created_at or since) >= since)

    async def _recent_page(self, request: PageRequest, state: JSON) -> Batch:
        """The two-pass ``since`` listing: pass ``updated`` then pass ``pushed``, newest
        first, each stopping at the first repository older than ``since`` by its key."""
        since = request.since
        assert since is not None
        if state is None:
            state = {"k": "updated", "u": None}
        if not isinstance(state, dict) or state.get("k") not in ("updated", "pushed"):
            raise InvalidCursor("not a page of this listing", source=self.name)
        key = state["k"]
        response, _, raws, next_url, _ = await self._page(
            self._list_path(),
            {"sort": key, "direction": "desc"},
            state.get("u"),
            request.page_size,
            following=False,  # read page by page: it stops early
        )
        items = self.items(response, raws)
        kept: list[Item] = []
        stopped = False
        for raw, item in zip(raws, items, strict=True):
            stamp = parse_datetime(raw.get(f"{key}_at"))
            if stamp is None:
                continue  # never pushed: the first pass had it if it is recent
            if stamp < since:
                stopped = True
                break
            if key == "pushed":
                updated = parse_datetime(raw.get("updated_at"))
                if updated is not None and updated >= since:
                    continue  # the first pass gave it
            kept.append(item)
        next_state: JSON
        if next_url and not stopped:
            next_state = {"k": key, "u": next_url}
        elif key == "updated":
            next_state = {"k": "pushed", "u": None}
        else:
            next_state = None
        return Batch(kept, next_state)

    # -- search ---------------------------------------------------------------------------

    def _search_terms(self, query: Any) -> list[str]:
        tokens = escape_query(query, SEARCH_QUALIFIERS) if isinstance(query, str) else []
        if not tokens:
            raise InvalidQuery(
                f"nothing to search for in {query!r} (quotes and backslashes are ignored)",
                source=self.name,
            )
        return tokens

    def _check_search(self, query: Any, order: str | None) -> None:
        if order is not None:
            raise UnsupportedOption(
                f"{self.name} search results come in GitHub's best-match order; order= "
                "applies to list() only",
                source=self.name,
            )
        if isinstance(query, str) and query.strip():  # the core refuses blank queries
            self._search_terms(query)

    def search(self, query: str, *, order: str | None = None, **options: Any) -> Stream[Item]:
        self._check_search(query, order)
        return super().search(query, order=order, **options)

    def search_pages(self, query: str, *, order: str | None = None, **options: Any) -> Stream[Page]:
        self._check_search(query, order)
        return super().search_pages(query, order=order, **options)

    def search_query(self, query: str, lo: int | None = None, hi: int | None = None) -> str:
        """The ``q`` sent to GitHub for ``query`` (and a ``created:`` slice)."""
        parts = self._search_terms(query)
        if self.user:
            parts.append(f"user:{self.user}")
        elif self.org:
            parts.append(f"org:{self.org}")
        parts.append("fork:true")
        created = _created_qualifier(lo, hi)
        if created:
            parts.append(created)
        return " ".join(parts)

    async def _search_stream(
        self, request: PageRequest, state: JSON
    ) -> AsyncIterator[tuple[JSON, Batch]]:
        """Slice after slice (see the module docstring); each slice's pages through
        ``pump`` (concurrently once ``rel="last"`` is known).

        State: ``{"s": [lo, hi], "p": [[lo, hi], ...], "u": url or None}``: the slice
        (epoch seconds, half-open, ``None`` = open end), the slices after it, and the page
        URL (``None``: the slice's first page, which also decides whether to split it)."""
        query = request.query
        assert query is not None
        if state is None:
            state = {"s": [None, None], "p": [], "u": None}
        owner = self.owner.lower() if self.owner else None
        since = request.since

        def keep(item: Item) -> bool:
            if owner is not None and (item.author or "").lower() != owner:
                return False  # outside the scope (defence in depth)
            return since is None or (item.updated_at or item.created_at or since) >= since

        while state is not None:
            try:
                lo, hi = state["s"]
                pending = [list(s) for s in state["p"]]
                url = state["u"]
            except (KeyError, TypeError, ValueError):
                raise InvalidCursor("not a page of this search", source=self.name) from None
            first: Batch | None = None
            if url is None:
                lo, hi, pending, first = await self._open_slice(request, query, lo, hi, pending)
            start = {"s": [lo, hi], "p": pending, "u": url}
            batches = pump(
                _SliceFetch(self, request, query, start, first),
                start,
                concurrency=self.page_limit("search"),
                track=self.background_tasks,
            )
            filtered = self.filtered(batches, keep)
            try:
                async for page_state, batch in filtered:
                    yield page_state, batch
            finally:
                await _aclose(filtered)
            state = {"s": pending[0], "p": pending[1:], "u": None} if pending else None

    async def _open_slice(
        self,
        request: PageRequest,
        query: str,
        lo: int | None,
        hi: int | None,
        pending: list[Any],
    ) -> tuple[int | None, int | None, list[Any], Batch]:
        """The first page of the slice [lo, hi), bisecting it (oldest half first) while it
        holds more than ``search_cap`` results."""
        while True:
            state = {"s": [lo, hi], "p": pending, "u": None}
            body, batch = await self._slice_request(request, query, state)
            total = body.get("total_count") if isinstance(body, Mapping) else None
            if not isinstance(total, int) or total <= self.search_cap:
                return lo, hi, pending, batch
            halves = _split(lo, hi)
            if halves is None:
                log.warning(
                    "%s: %d results created within one second (%s); GitHub serves only "
                    "the first %d",
                    self.name,
                    total,
                    _created_qualifier(lo, hi),
                    self.search_cap,
                )
                return lo, hi, pending, batch
            (lo, hi), right = halves
            pending = [right, *pending]

    async def _slice_page(
        self, request: PageRequest, query: str, state: JSON, *, following: bool = True
    ) -> Batch:
        return (await self._slice_request(request, query, state, following=following))[1]

    async def _slice_request(
        self, request: PageRequest, query: str, state: dict[str, Any], *, following: bool = True
    ) -> tuple[Any, Batch]:
        lo, hi = state["s"]
        pending = state["p"]
        params = {"q": self.search_query(query, lo, hi)}
        response, body, raws, next_url, after = await self._page(
            "/search/repositories",
            params,
            state["u"],
            request.page_size,
            records="items",
            following=following,
        )
        if isinstance(body, Mapping) and body.get("incomplete_results"):
            log.warning("%s: GitHub timed out on part of this search", self.name)

        def at(url: str) -> dict[str, Any]:
            return {"s": [lo, hi], "p": pending, "u": url}

        batch = Batch(
            self.items(response, raws),
            at(next_url) if next_url else None,
            (lambda: _planned(at, after)) if after else None,
        )
        return body, batch


class _SliceFetch:
    """Fetches the pages of one search slice; the first one may be in hand already (the
    request that decided not to split the slice)."""

    def __init__(
        self, repo: Repos, request: PageRequest, query: str, start: JSON, first: Batch | None
    ) -> None:
        self.repo, self.request, self.query = repo, request, query
        self.start, self.first = start, first
        self.first_call = FirstCall()

    async def __call__(self, state: JSON) -> Batch:
        want_following = self.first_call()
        if state is self.start and self.first is not None:
            batch, self.first = self.first, None
            return batch
        return await self.repo._slice_page(
            self.request, self.query, state, following=want_following
        )


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _planned(at: Callable[[str], JSON], after: Following) -> Iterator[JSON] | None:
    """The slice states of the planned page URLs, made as ``pump`` takes them (a vendor's
    page count may be absurd); ``None`` when the core planned nothing."""
    urls = after() if callable(after) else after
    return None if urls is None else (at(url) for url in urls)
