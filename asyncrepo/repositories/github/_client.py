"""The GitHub REST client and the helpers the GitHub repositories share.

``GitHubClient`` is the core ``HTTPClient`` speaking GitHub's dialect:

* headers: ``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28``;
  the token goes in ``Authorization: Bearer ...`` (never in a message, log or repr);
* rate limits, as GitHub documents them (403 or 429):

  1. ``retry-after`` present: wait that many seconds;
  2. else ``x-ratelimit-remaining: 0``: wait until ``x-ratelimit-reset`` (primary limit);
  3. else a body that mentions a secondary rate limit (or the older "abuse detection"):
     wait ``RetryPolicy.rate_limit_floor`` seconds (GitHub asks for at least 60, the
     default here), doubling for every further secondary limit in a row, for the whole
     client (the wait is reported as ``RateLimited.retry_after`` so the core pauses every
     request of the client, not only the one that was refused);

  a wait longer than ``RetryPolicy.max_wait`` raises ``RateLimited`` at once, with
  ``reset_at``. 502/503/504 and connection errors are retried with backoff.
* at most 100 requests in flight (GitHub's secondary limit on concurrency);
* page concurrency that follows the rate-limit headers (``page_concurrency``): GitHub asks
  clients not to fire many requests at once for one token, so a listing fetches at most
  ``cap`` pages at once (the repository's ``page_concurrency``, default 8), one more page
  for every ``REQUESTS_PER_PAGE`` (100) requests left in ``x-ratelimit-remaining`` of the
  resource (core, search...), and one page at a time for ``SECONDARY_COOLDOWN`` (5 min)
  after a secondary rate limit. The limit is read each time ``pump`` could start a fetch.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from aiolimiter import AsyncLimiter
from multidict import CIMultiDict

from ...exceptions import AsyncRepoError, ConfigurationError, InvalidCursor, RateLimited
from ...http import BearerAuth, HTTPClient, Response, ResponseCache, RetryPolicy
from ...pagination import Batch, Following, LinkHeader, PreparedRequest, parse_link_header
from ...repository import Item
from ...rest import RESTRepository

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_CONCURRENCY",
    "GITHUB_RETRY",
    "MAX_CONNECTIONS",
    "GitHubClient",
    "GitHubRepository",
    "check_login",
    "check_page_concurrency",
    "escape_query",
    "make_cache",
    "resolve_token",
]

DEFAULT_BASE_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
#: GitHub: "No more than 100 concurrent requests are allowed".
MAX_CONNECTIONS = 100
#: GitHub asks for at least a minute after a secondary rate limit that states no wait.
GITHUB_RETRY = RetryPolicy(rate_limit_floor=60.0)
#: Pages of one listing in flight at most, by default (a repository's ``page_concurrency``).
DEFAULT_PAGE_CONCURRENCY = 8
#: One more page in flight for every this many requests left in the primary limit.
REQUESTS_PER_PAGE = 100
#: After a secondary rate limit, pages are fetched one at a time for this many seconds
#: (GitHub: "wait a few minutes").
SECONDARY_COOLDOWN = 300.0

_SECONDARY_MARKERS = ("secondary rate limit", "abuse detection")
_LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class GitHubClient(HTTPClient):
    """``HTTPClient`` with GitHub's headers, token auth and rate-limit dialect."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        source: str,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        limiter: AsyncLimiter | None = None,
        cache: ResponseCache | None = None,
        verify_ssl: bool = True,
        trust_env: bool = True,
    ) -> None:
        if token is not None and not isinstance(token, str):
            raise ConfigurationError("the GitHub token must be a string", source=source)
        if not isinstance(max_connections, int) or not 1 <= max_connections <= MAX_CONNECTIONS:
            raise ConfigurationError(
                f"max_connections must be between 1 and {MAX_CONNECTIONS} (GitHub allows no "
                f"more than {MAX_CONNECTIONS} concurrent requests)",
                source=source,
            )
        super().__init__(
            base_url,
            source=source,
            auth=BearerAuth(token) if token else None,
            retry=retry or GITHUB_RETRY,
            timeout=timeout,
            max_connections=max_connections,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
            limiter=limiter,
            cache=cache,
            verify_ssl=verify_ssl,
            trust_env=trust_env,
        )
        self.authenticated = bool(token)
        self._secondary_strikes = 0  # secondary rate limits in a row, for the backoff
        #: ``x-ratelimit-remaining`` last seen, by ``x-ratelimit-resource``.
        self.rate_remaining: dict[str, int] = {}
        #: ``time.monotonic()`` of the last secondary rate limit, if any.
        self.secondary_limited_at: float | None = None

    def page_concurrency(self, cap: int, resource: str = "core") -> int:
        """How many pages of one listing may be in flight now (see the module docstring):
        1 within ``SECONDARY_COOLDOWN`` of a secondary limit, else one page for every
        ``REQUESTS_PER_PAGE`` requests left of ``resource`` (``cap`` before any answer
        told), between 1 and ``cap``."""
        cap = max(1, cap)
        limited = self.secondary_limited_at
        if limited is not None and time.monotonic() - limited < SECONDARY_COOLDOWN:
            return 1
        remaining = self.rate_remaining.get(resource)
        if remaining is None:
            return cap
        return max(1, min(cap, remaining // REQUESTS_PER_PAGE))

    def _observe(self, response: Response) -> None:
        headers = response.headers
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("x-ratelimit-remaining")
        if remaining is None or not remaining.strip().isdigit():
            return
        resource = headers.get("X-RateLimit-Resource") or headers.get("x-ratelimit-resource")
        self.rate_remaining[(resource or "core").strip().lower()] = int(remaining)

    def classify(self, response: Response) -> AsyncRepoError | None:
        self._observe(response)
        status = response.status
        if status < 400:
            self._secondary_strikes = 0
            return None
        if status in (403, 429):
            headers = response.headers
            primary = headers.get("X-RateLimit-Remaining", "").strip() == "0"
            text = response.body[:2000].decode("utf-8", "replace").lower()
            if not primary and any(marker in text for marker in _SECONDARY_MARKERS):
                self.secondary_limited_at = time.monotonic()  # pages one at a time for a while
                if headers.get("Retry-After") is None:
                    return self._secondary_limit(response)
        return super().classify(response)

    def _secondary_limit(self, response: Response) -> RateLimited:
        wait = self.retry.rate_limit_floor * 2.0**self._secondary_strikes
        self._secondary_strikes += 1
        self.secondary_limited_at = time.monotonic()
        error = super().rate_limit(replace(response, status=429))
        assert error is not None
        error.status = response.status
        error.message = "secondary rate limit"
        error.retry_after = wait
        error.reset_at = datetime.fromtimestamp(time.time() + wait, UTC)
        return error


def ci_headers(response: Response) -> Response:
    """The response with case-insensitive headers (a cached 304 replay carries a plain dict,
    and GitHub sends lower-case ``link`` over HTTP/2 proxies)."""
    headers = response.headers
    if isinstance(headers, dict):
        return replace(response, headers=CIMultiDict(headers))
    return response


def make_cache(cache: bool | ResponseCache | None) -> ResponseCache | None:
    """``cache=True`` -> a fresh in-memory ``ResponseCache``; an instance is used as is."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return ResponseCache()
    if isinstance(cache, ResponseCache):
        return cache
    raise ConfigurationError(f"cache must be True, False or a ResponseCache, not {cache!r}")


def resolve_token(positional: str | None, keyword: str | None, *, source: str) -> str | None:
    """The token from the first positional argument (the original's ``login_or_token``) or
    ``token=``; giving both differently is an error."""
    if positional is not None and keyword is not None and positional != keyword:
        raise ConfigurationError("give the token once (positionally or as token=)", source=source)
    token = keyword if keyword is not None else positional
    return token or None


def check_login(value: str | None, what: str, *, source: str) -> str | None:
    """A user or organisation login, checked so that it cannot change a URL path or a
    search query (GitHub logins are letters, digits and hyphens; GHES also allows ``_``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _LOGIN_RE.fullmatch(value):
        raise ConfigurationError(f"{what} must be a GitHub login, not {value!r}", source=source)
    return value


def check_page_concurrency(value: Any, *, source: str) -> int:
    """``page_concurrency``: an integer from 1 to ``MAX_CONNECTIONS``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CONNECTIONS:
        raise ConfigurationError(
            f"page_concurrency must be an integer from 1 to {MAX_CONNECTIONS}, not {value!r}",
            source=source,
        )
    return value


# -- search query escaping ------------------------------------------------------------------

_PHRASE_RE = re.compile(r'"([^"]*)"?|(\S+)')
_QUALIFIER_RE = re.compile(r"(-?)([A-Za-z][A-Za-z-]*):([A-Za-z0-9_.,+*<>=/#-]+)")
_NEGATED_WORD_RE = re.compile(r"-[A-Za-z0-9_]+")
_UNSAFE_IN_PHRASE = re.compile(r'["\\]')


def escape_query(query: str, allowed_qualifiers: frozenset[str]) -> list[str]:
    """The user's search text as GitHub search tokens that cannot reach outside the scope.

    Each whitespace-separated word, and each ``"quoted phrase"``, becomes one quoted phrase
    (``"word"``) with any inner double quote or backslash replaced by a space, so ``OR``,
    ``NOT``, parentheses, ``user:other``, ``-org:x`` or ``repo:a/b`` are searched as plain
    text and cannot widen or remove the scope qualifier the repository adds. Two forms pass
    through unquoted because they only filter within the scope: a qualifier named in
    ``allowed_qualifiers`` whose value is made of ``[A-Za-z0-9_.,+*<>=/#-]`` (for example
    ``language:python``, ``stars:>10``, ``-topic:cli``), and an excluded word made of letters,
    digits and ``_`` (``-deprecated``). Returns the tokens (empty when nothing searchable is
    left).
    """
    tokens: list[str] = []
    for match in _PHRASE_RE.finditer(query):
        phrase, bare = match.group(1), match.group(2)
        if bare is not None:
            qualifier = _QUALIFIER_RE.fullmatch(bare)
            if qualifier and qualifier.group(2).lower() in allowed_qualifiers:
                tokens.append(bare)
                continue
            if _NEGATED_WORD_RE.fullmatch(bare):
                tokens.append(bare)
                continue
            text = bare
        else:
            text = phrase or ""
        text = " ".join(_UNSAFE_IN_PHRASE.sub(" ", text).split())
        if text:
            tokens.append(f'"{text}"')
    return tokens


# -- the shared repository base -------------------------------------------------------------

LINKS = LinkHeader()


class GitHubRepository(RESTRepository):
    """What the GitHub repositories share: the client, page fetches that follow ``Link``
    headers (page states are GitHub's own next-page URLs), and origin checks on them."""

    client: GitHubClient
    #: The cap on pages of one listing in flight; the limit itself follows the rate-limit
    #: headers (``GitHubClient.page_concurrency``).
    page_concurrency: int = DEFAULT_PAGE_CONCURRENCY

    def page_limit(self, resource: str = "core") -> Callable[[], int]:
        """For ``pump(concurrency=...)``: the page limit now, read at each scheduling step."""
        return lambda: self.client.page_concurrency(self.page_concurrency, resource)

    def _prepare(self, path: str, params: Mapping[str, Any], state: Any, page_size: int) -> Any:
        """The request for the page at ``state`` (``None``: the first page of ``path``)."""
        if state is not None:
            self._check_origin(state)
        base = PreparedRequest("GET", self.client.url(path), dict(params), None)
        return LINKS.prepare(base, state, page_size)

    def _check_origin(self, url: Any) -> None:
        # A page state is a URL taken from a cursor: never send the token anywhere else than
        # the configured API (a crafted cursor must not redirect it to another host).
        if not isinstance(url, str):
            raise InvalidCursor("not a page of this repository", source=self.name)
        mine, theirs = urlsplit(self.client.base_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc) or not (
            theirs.path.startswith(mine.path.rstrip("/") + "/")
        ):
            raise InvalidCursor(
                "this cursor points outside the configured GitHub API", source=self.name
            )

    async def _page(
        self,
        path: str,
        params: Mapping[str, Any],
        state: Any,
        page_size: int,
        *,
        records: str | None = None,
        limiter: AsyncLimiter | None = None,
        following: bool = True,
    ) -> tuple[Response, Any, list[Any], Any, Following]:
        """``(response, body, records, next_url, following_urls)`` for one page.

        ``following=False`` skips computing the URLs of all following pages: ``pump`` only
        reads them from the first page of a stream, and building them for every page costs
        O(pages²) URL rewrites (a tenth of a second over 50 pages)."""
        prepared = self._prepare(path, params, state, page_size)
        response = ci_headers(await self.client.send(prepared, limiter=limiter))
        body = response.json()
        raws = self.records(response, body, records)
        if following:
            next_url, after = LINKS.advance(response, body, raws, state, page_size)
            return response, body, raws, next_url, after
        link = parse_link_header(response.headers.get("Link")).get("next")
        return response, body, raws, (urljoin(response.url, link) if link else None), None

    async def filtered(
        self, batches: AsyncIterator[tuple[Any, Batch]], keep: Callable[[Item], bool]
    ) -> AsyncIterator[tuple[Any, Batch]]:
        """``batches`` with only the items ``keep`` accepts. Filtering happens after
        ``pump``, because ``pump`` takes an empty page for the end of a listing whose pages
        it planned (``Batch.following``)."""
        try:
            async for state, batch in batches:
                items = [item for item in batch.items if keep(item)]
                if len(items) != len(batch.items):
                    batch = Batch(items, batch.next_state, batch.following)
                yield state, batch
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()


class FirstCall:
    """True on the first call only: which page of a stream should compute ``following``."""

    def __init__(self) -> None:
        self._first = True

    def __call__(self) -> bool:
        first, self._first = self._first, False
        return first
