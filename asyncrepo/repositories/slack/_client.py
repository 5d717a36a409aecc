"""What the Slack connectors share: the HTTP client (Slack's ``{"ok": false, "error": ...}``
dialect), the per-method rate limits, the cursor paginators, the workspace URL and the
message markup to plain text.

Slack's Web API answers HTTP 200 for most failures, with ``{"ok": false, "error": "<code>"}``.
``SlackClient.classify`` maps the codes to asyncrepo's errors:

* ``not_authed``, ``invalid_auth``, ``account_inactive``, ``token_revoked``,
  ``token_expired``, ``not_allowed_token_type``, ``no_permission``... -> ``AuthenticationError``
  (``missing_scope`` and ``not_in_channel`` -> ``PermissionDenied``, naming the scope Slack
  says is ``needed``);
* ``channel_not_found``, ``user_not_found``, ``thread_not_found``, ``message_not_found`` ->
  ``ItemNotFound``; ``invalid_cursor`` -> ``InvalidCursor``; other argument errors ->
  ``InvalidQuery``;
* ``ratelimited`` (Slack sends it with HTTP 429 and ``Retry-After``) -> ``RateLimited``,
  retried by the shared retry policy after the stated wait; ``fatal_error``,
  ``internal_error``, ``request_timeout``, ``service_unavailable`` -> ``SourceUnavailable``
  (retried).

Rate limits: Slack limits each method per workspace and app by *tier* (Tier 2 about 20
requests a minute, Tier 3 about 50, Tier 4 about 100). ``SlackRateLimits`` holds one
``aiolimiter.AsyncLimiter`` per method at its tier's rate, so a long crawl paces itself
instead of collecting 429s. Every Slack repository takes ``rate_limits=``: ``True`` (the
tiers, the default), ``False`` (no client-side pacing: a 429 is still retried after its
``Retry-After``), a mapping ``{"conversations.history": 200}`` (requests a minute, or an
``AsyncLimiter``; methods not named keep their tier), or a ``SlackRateLimits`` instance,
which several repositories (on the same token) may share so they pace together.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import orjson
from aiolimiter import AsyncLimiter

from ...exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    PermissionDenied,
    RateLimited,
    SourceUnavailable,
)
from ...http import BearerAuth, HTTPClient, Response, RetryPolicy, redact_url
from ...pagination import (
    Batch,
    Following,
    NextToken,
    PageNumber,
    Paginator,
    PreparedRequest,
    dig,
)
from ...repository import Item, PageRequest
from ...rest import Endpoint, RESTRepository

__all__ = [
    "DEFAULT_BASE_URL",
    "TIERS",
    "OldestWalk",
    "SlackClient",
    "SlackCursor",
    "SlackRateLimits",
    "make_client",
    "slack_to_text",
    "ts_datetime",
]

DEFAULT_BASE_URL = "https://slack.com/api"

#: Requests a minute of each tier (Slack's "Rate limits" page: "Tier 2: 20+ per minute",
#: "Tier 3: 50+ per minute", "Tier 4: 100+ per minute").
TIER_RATES = {1: 1, 2: 20, 3: 50, 4: 100}

#: The tier of each method asyncrepo calls (from each method's page on api.slack.com;
#: ``auth.test`` and ``chat.getPermalink`` are "special" there, paced here as Tier 4).
TIERS = {
    "auth.test": 4,
    "conversations.list": 2,
    "conversations.info": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "users.list": 2,
    "users.info": 4,
    "search.messages": 2,
}

_AUTH_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "not_allowed_token_type",
        "org_login_required",
        "ekm_access_denied",
        "two_factor_setup_required",
    }
)
_PERMISSION_ERRORS = frozenset({"missing_scope", "not_in_channel", "access_denied"})
_NOT_FOUND_ERRORS = frozenset(
    {"channel_not_found", "user_not_found", "thread_not_found", "message_not_found"}
)
_UNAVAILABLE_ERRORS = frozenset(
    {"fatal_error", "internal_error", "request_timeout", "service_unavailable"}
)
_HINTS = {
    "not_authed": "no token was sent",
    "invalid_auth": "the token was rejected",
    "account_inactive": "the token's user or workspace is deactivated",
    "token_revoked": "the token has been revoked",
    "token_expired": "the token has expired",
    "not_allowed_token_type": (
        "this method does not accept this kind of token (search.messages needs a user "
        "token, xoxp-, with the search:read scope)"
    ),
    "not_in_channel": "the token's bot or user is not a member of the channel",
}
_OK_FALSE = (b'"ok":false', b'"ok": false')


class SlackClient(HTTPClient):
    """The shared transport, reading Slack's ``ok: false`` dialect (see the module)."""

    def classify(self, response: Response) -> AsyncRepoError | None:
        status = response.status
        body = response.body
        if status == 429 or status >= 500 or not any(m in body for m in _OK_FALSE):
            return super().classify(response)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return super().classify(response)
        if not isinstance(data, dict) or data.get("ok") is not False:
            return super().classify(response)
        code = str(data.get("error") or "unknown_error")
        vendor = code
        needed, provided = data.get("needed"), data.get("provided")
        if needed:
            vendor += f" (needed: {needed}; provided: {provided or 'none'})"
        context: dict[str, Any] = {
            "source": self.source,
            "method": response.method,
            "url": redact_url(response.url),
            "status": status,
            "vendor_message": self.scrub(vendor),
        }
        hint = _HINTS.get(code)
        if code in _AUTH_ERRORS:
            return AuthenticationError(hint or "the token may not do this", **context)
        if code in _PERMISSION_ERRORS:
            what = f"the token lacks the scope {needed}" if needed else "access denied"
            return PermissionDenied(hint or what, **context)
        if code in _NOT_FOUND_ERRORS:
            return ItemNotFound(code.replace("_", " "), **context)
        if code == "ratelimited":
            # Slack sends it with 429 (handled above); at another status, read it the same way.
            limited = self.rate_limit(replace(response, status=429))
            limited = limited or RateLimited("rate limited", **context)
            limited.vendor_message = context["vendor_message"]
            return limited
        if code in _UNAVAILABLE_ERRORS:
            error = SourceUnavailable("Slack failed to answer", **context)
            error.retryable = True
            return error
        if code == "invalid_cursor":
            return InvalidCursor("Slack no longer accepts this page cursor", **context)
        return InvalidQuery("Slack rejected the request", **context)


# -- rate limits ----------------------------------------------------------------------------


class SlackRateLimits:
    """One ``AsyncLimiter`` per Slack method, at its tier's rate (see the module).

    ``SlackRateLimits(overrides)``: ``overrides`` maps a method name to requests a minute or
    to an ``AsyncLimiter``. ``SlackRateLimits.disabled()`` paces nothing.
    """

    def __init__(
        self,
        overrides: Mapping[str, float | AsyncLimiter] | None = None,
        *,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._limiters: dict[str, AsyncLimiter] = {}
        if enabled:
            for method, tier in TIERS.items():
                self._limiters[method] = AsyncLimiter(TIER_RATES[tier], 60)
        for method, value in (overrides or {}).items():
            if isinstance(value, AsyncLimiter):
                self._limiters[method] = value
            elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                self._limiters[method] = AsyncLimiter(value, 60)
            else:
                raise ConfigurationError(
                    f"rate_limits[{method!r}] must be requests a minute (> 0) or an "
                    f"AsyncLimiter, not {value!r}",
                    source="slack",
                )

    @classmethod
    def disabled(cls) -> SlackRateLimits:
        return cls(enabled=False)

    def limiter(self, method: str) -> AsyncLimiter | None:
        return self._limiters.get(method)

    def __repr__(self) -> str:
        rates = ", ".join(
            f"{m}={lim.max_rate:g}/{lim.time_period:g}s" for m, lim in self._limiters.items()
        )
        return f"SlackRateLimits({rates or 'off'})"


RateLimitsOption = bool | Mapping[str, float | AsyncLimiter] | SlackRateLimits | None


def rate_limits_from(option: RateLimitsOption, source: str) -> SlackRateLimits:
    if isinstance(option, SlackRateLimits):
        return option
    if option is True:
        return SlackRateLimits()
    if option is False or option is None:
        return SlackRateLimits.disabled()
    if isinstance(option, Mapping):
        return SlackRateLimits(option)
    raise ConfigurationError(
        "rate_limits must be True, False, a mapping of method -> requests a minute, or a "
        f"SlackRateLimits, not {type(option).__name__}",
        source=source,
    )


def make_client(
    token: str | None,
    *,
    source: str,
    base_url: str,
    retry: RetryPolicy | None,
    timeout: float | None,
    max_connections: int,
) -> SlackClient:
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError(
            "Slack needs a token: pass token= (xoxb- bot or xoxp- user token) or set the "
            "environment variable SLACK_TOKEN",
            source=source,
        )
    return SlackClient(
        base_url,
        source=source,
        auth=BearerAuth(token.strip()),
        retry=retry,
        timeout=timeout,
        max_connections=max_connections,
    )


def is_bot_token(token: str) -> bool:
    return token.strip().startswith("xoxb-")


class Workspace:
    """The workspace's URL (``https://NAME.slack.com/``), from ``auth.test`` once, shared by
    concurrent first uses; or given up front (``team_url=``), which skips the request."""

    def __init__(self, client: SlackClient, limits: SlackRateLimits, url: str | None) -> None:
        self._client = client
        self._limits = limits
        self.url = _with_slash(url) if url else None
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        if self.url is not None:
            return self.url
        async with self._lock:
            if self.url is None:
                response = await self._client.request(
                    "GET", "auth.test", limiter=self._limits.limiter("auth.test")
                )
                body = response.json()
                url = body.get("url") if isinstance(body, dict) else None
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise response.malformed("auth.test gave no workspace url")
                self.url = _with_slash(url)
        return self.url


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


# -- pagination -----------------------------------------------------------------------------


@dataclass
class SlackCursor(NextToken):
    """Slack's cursor pagination: ``response_metadata.next_cursor`` sent back as ``cursor``,
    ``limit`` for the page size. Unlike ``NextToken`` it goes on past an *empty* page that
    still has a cursor: Slack filters after paging (``exclude_archived``, private channels)
    and documents that a page may hold fewer items than asked, none included. The listing
    ends when ``next_cursor`` is missing or empty; a cursor that comes back is caught by
    ``NextToken`` (the same one) and by the core's loop detection (an older one)."""

    token_field: str = "response_metadata.next_cursor"
    token_param: str = "cursor"
    page_size_param: str | None = "limit"

    def advance(
        self, response: Response, body: Any, records: list[Any], state: Any, page_size: int
    ) -> tuple[Any, Following]:
        token = dig(body, self.token_field)
        if token is not None and not isinstance(token, str):
            raise response.malformed(f"{self.token_field} is not a string")
        # An empty page with a cursor is not the end: let NextToken see a non-empty page.
        return super().advance(response, body, records or [None], state, page_size)


@dataclass
class OldestWalk(Paginator):
    """Oldest first through ``conversations.history``: each request asks for the messages
    after ``oldest`` (Slack then returns the ``limit`` messages closest to ``oldest``), and
    the next ``oldest`` is the newest ``ts`` of the page. The state is that ``ts`` (a string);
    the first page starts at ``since`` (inclusive) or at the beginning."""

    start: str | None = None  # the first page's oldest (a since bound), inclusive

    def prepare(self, request: PreparedRequest, state: Any, page_size: int) -> PreparedRequest:
        params = dict(request.params)
        params["limit"] = page_size
        if state is None:
            params["oldest"] = self.start or "0"
            params["inclusive"] = True
        else:
            if not isinstance(state, str) or ts_key(state) is None:
                raise InvalidCursor("this cursor does not come from a Slack history listing")
            params["oldest"] = state
            params["inclusive"] = False
        return PreparedRequest(request.method, request.url, params, request.json)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: Any, page_size: int
    ) -> tuple[Any, Following]:
        if not records or dig(body, "has_more") is not True:
            return None, None
        newest = str(records[-1]["ts"])  # records are sorted oldest first
        if state is not None and (ts_key(newest) or (0, 0)) <= (ts_key(state) or (0, 0)):
            raise response.malformed("Slack returned no message newer than the last page")
        return newest, None


#: Slack serves at most this many pages of search results.
SEARCH_PAGES_MAX = 100


@dataclass
class SearchPages(PageNumber):
    """``search.messages`` paging: ``page`` and ``count``, the number of pages in
    ``messages.paging.pages`` (so the following pages are fetched concurrently). The count is
    trusted only up to Slack's own cap of 100 pages, and an empty page ends the listing, so
    an absurd total cannot send thousands of requests."""

    page_param: str = "page"
    page_size_param: str | None = "count"
    pages_field: str | None = "messages.paging.pages"

    def advance(
        self, response: Response, body: Any, records: list[Any], state: Any, page_size: int
    ) -> tuple[Any, Following]:
        if not records:
            return None, None
        page = self.first_page if state is None else int(state)
        pages = dig(body, "messages.paging.pages")
        if isinstance(pages, int) and not isinstance(pages, bool):
            last = min(pages, SEARCH_PAGES_MAX)
            if page >= last:
                return None, None
            return page + 1, range(page + 1, last + 1)
        if len(records) < page_size:
            return None, None
        return page + 1, None


# -- timestamps -----------------------------------------------------------------------------

_TS_RE = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$")


def ts_key(ts: Any) -> tuple[int, int] | None:
    """A Slack ``ts`` (``"1512085950.000216"``) as an exact sortable pair, or ``None``."""
    if isinstance(ts, str):  # the usual shape, without the regex
        seconds, _, micros = ts.partition(".")
        if (
            seconds.isdigit()
            and seconds.isascii()
            and len(seconds) <= 12
            and len(micros) == 6
            and micros.isdigit()
            and micros.isascii()
        ):
            return int(seconds), int(micros)
    match = _TS_RE.match(str(ts))
    if match is None:
        return None
    return int(match.group(1)), int((match.group(2) or "0").ljust(6, "0"))


def ts_datetime(ts: Any) -> datetime | None:
    """A ``ts`` or epoch-seconds value as an aware UTC datetime (``None`` if absent)."""
    if ts is None or ts == "" or isinstance(ts, bool):
        return None
    if isinstance(ts, int):
        return _EPOCH + timedelta(seconds=ts)
    key = ts_key(ts)
    if key is None:
        try:
            value = Decimal(str(ts))
        except InvalidOperation:
            raise ValueError(f"not a Slack timestamp: {ts!r}") from None
        return datetime.fromtimestamp(float(value), UTC)
    return key_datetime(key)


def key_datetime(key: tuple[int, int]) -> datetime:
    return _EPOCH + timedelta(seconds=key[0], microseconds=key[1])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_ts(when: datetime) -> str:
    """A datetime as a Slack ``ts`` bound (microseconds, rounded down)."""
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    micros = delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


# -- markup ---------------------------------------------------------------------------------

_MARKUP_RE = re.compile(r"<([@#!]?)([^<>|\n]*)(?:\|([^<>\n]*))?>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def _replace(match: re.Match[str]) -> str:
    sigil, target, label = match.groups()
    if sigil == "@" or sigil == "#":  # <@U123|name>, <@U123>, <#C123|general>, <#C123>
        return sigil + (label or target)
    if sigil == "!":  # <!here>, <!subteam^S1|@team>, <!date^...|fallback>
        if label:
            return label
        name = target.split("^", 1)
        return _SPECIAL.get(name[0], "@" + name[-1] if name[0] == "subteam" else name[0])
    if not target:
        return match.group(0)
    if target.startswith("mailto:"):
        address = target[len("mailto:") :]
        return label if label and label != address else address
    if label and label != target:
        return f"{label} ({target})"
    return target


def slack_to_text(text: Any) -> str | None:
    """Slack message markup as plain text.

    ``<@U123>`` -> ``@U123`` (``<@U123|ann>`` -> ``@ann``: names are not looked up);
    ``<#C123|general>`` -> ``#general``; ``<https://x|label>`` -> ``label (https://x)`` (a
    bare link, or one whose label is the URL, stays the URL); ``<mailto:a@b|a@b>`` ->
    ``a@b``; ``<!here>`` -> ``@here``, ``<!subteam^S1|@team>`` -> ``@team``, other ``<!...>``
    their label; then ``&lt;``, ``&gt;`` and ``&amp;`` (the only escapes Slack uses) are
    undone.
    """
    if not isinstance(text, str):
        return None
    plain: str = text
    if "<" in plain:
        plain = _MARKUP_RE.sub(_replace, plain)
    if "&" in plain:
        plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return plain


def first_line(text: str | None) -> str | None:
    if not text:
        return None
    if "\n" not in text and "\r" not in text:
        return text.strip() or None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


# -- the repositories' base -----------------------------------------------------------------


class SlackRepository(RESTRepository):
    """What every Slack repository shares: the token and client, the rate limits, the
    workspace URL (``auth.test`` once, or ``team_url=``), and a naive search over chosen
    fields (``search_fields``) rather than every raw value."""

    filters_search_terms: ClassVar[bool] = True

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        team_url: str | None = None,
        rate_limits: RateLimitsOption = True,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
    ) -> None:
        if token is None:
            token = os.environ.get("SLACK_TOKEN")
        self.client = make_client(
            token,
            source=self.name,
            base_url=base_url,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
        )
        assert token is not None
        self.bot_token = is_bot_token(token)
        self.rate_limits = rate_limits_from(rate_limits, self.name)
        self.workspace = Workspace(self.client, self.rate_limits, team_url)

    # -- what a Slack repository implements -------------------------------------------------

    def search_fields(self, raw: Any) -> list[Any]:
        """The values a naive search looks at."""
        return []

    def item_url(self, item: Item, team_url: str) -> str | None:
        return None

    # -- machinery ------------------------------------------------------------------------

    def limiter(self, method: str) -> AsyncLimiter | None:
        return self.rate_limits.limiter(method)

    def scope(self) -> Any:
        return {"api": self.client.base_url}

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        return await self.fetch_endpoint(self.endpoint(request), request, state)

    async def fetch_endpoint(self, endpoint: Endpoint, request: PageRequest, state: Any) -> Batch:
        """One page of ``endpoint``, its items with URLs, filtered by a naive search's terms."""
        workspace = self.start_workspace()
        base = PreparedRequest(
            endpoint.method, self.client.url(endpoint.path), dict(endpoint.params), endpoint.json
        )
        prepared = endpoint.paginator.prepare(base, state, request.page_size)
        response = await self.client.send(prepared, limiter=endpoint.limiter)
        body = response.json()
        records = self.records(response, body, endpoint.records)
        if request.terms:
            records = [r for r in records if self.matches(response, r, request.terms)]
        items = self.items(response, records)
        next_state, following = endpoint.paginator.advance(
            response, body, records, state, request.page_size
        )
        await self.with_urls(items, workspace)
        return Batch(items, next_state, following)

    def matches(self, response: Response, raw: Any, terms: tuple[str, ...]) -> bool:
        try:
            values = self.search_fields(raw)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self.malformed_record(response, exc) from None
        haystack = "\x00".join(str(v) for v in values if v).casefold()
        return all(term in haystack for term in terms)

    def start_workspace(self) -> asyncio.Task[str | None] | None:
        """The workspace URL lookup, started alongside the first page (not before it)."""
        if self.workspace.url is not None:
            return None
        task = asyncio.ensure_future(self.workspace.get())
        background = self.background_tasks
        background.add(task)
        task.add_done_callback(_discard_and_retrieve(background))
        return task

    async def with_urls(
        self, items: list[Item], workspace: asyncio.Task[str | None] | None
    ) -> list[Item]:
        team_url = await workspace if workspace is not None else self.workspace.url
        if team_url is None:
            team_url = await self.workspace.get()
        if team_url:
            for item in items:
                if item.url is None:
                    item.url = self.item_url(item, team_url)
        return items

    async def call(
        self, method: str, params: Mapping[str, Any], identifier: str | None = None
    ) -> tuple[Response, Any]:
        """One Slack method, paced by its limiter; an ``ItemNotFound`` names ``identifier``."""
        try:
            response = await self.client.request(
                "GET", method, params=params, limiter=self.limiter(method)
            )
        except ItemNotFound as exc:
            if identifier is None:
                raise
            raise self.not_found_from(identifier, exc) from None
        body = response.json()
        if not isinstance(body, dict):
            raise response.malformed(f"{method} did not answer a JSON object")
        return response, body

    async def get_record(
        self, method: str, params: Mapping[str, Any], field: str, identifier: str
    ) -> Item:
        workspace = self.start_workspace()
        response, body = await self.call(method, params, identifier)
        raw = body.get(field)
        if not isinstance(raw, dict):
            raise response.malformed(f"{method} answered without {field!r}")
        item = self.item(response, raw)
        await self.with_urls([item], workspace)
        return item

    def __repr__(self) -> str:
        kind = "bot token" if self.bot_token else "token"
        return f"<{type(self).__name__} {self.name} {self.client.base_url} ({kind} ***)>"


def _discard_and_retrieve(tasks: set[asyncio.Task[Any]]) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the page's own await reports it

    return done


def check_positive(value: Any, name: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, not {value!r}", source=source)
    return value
