"""The HTTP transport every HTTP source shares: one pooled aiohttp session per repository,
authentication, timeouts, retries, rate-limit handling, error mapping and redaction.

A vendor client is an ``HTTPClient`` (often a small subclass that overrides ``classify``
to read the vendor's own error dialect). Connectors never touch aiohttp directly.

Retries (``RetryPolicy``, driven by tenacity): exponential backoff with jitter on
connection errors, timeouts, 429 and 500/502/503/504. A vendor's stated wait is honoured
first (``Retry-After`` in seconds or as an HTTP date; ``X-RateLimit-Remaining: 0`` with
``X-RateLimit-Reset``). The total wait for one request is capped (``max_wait``): a wait past
the cap raises ``RateLimited`` carrying the reset time, instead of blocking for an hour.
A rate limit seen by one request pauses the client's other requests until it resets.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import math
import random
import time
import urllib.request
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import aiohttp
import orjson
from aiolimiter import AsyncLimiter
from multidict import CIMultiDict
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ._version import __version__
from .convert import html_to_text
from .exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
    RateLimited,
    SourceTimeout,
    SourceUnavailable,
)
from .wire import PreparedRequest, Response, redact_url

__all__ = [
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "HTTPClient",
    "NoAuth",
    "Repeated",
    "Response",
    "ResponseCache",
    "RetryPolicy",
    "redact_url",
]

log = logging.getLogger("asyncrepo.http")

USER_AGENT = f"asyncrepo/{__version__}"
#: The longest wait a vendor may ask for (``Retry-After``, a reset time); longer is clamped.
MAX_STATED_WAIT = 7 * 24 * 3600.0
#: The total time one API request may take, connect to last byte (``request_timeout=``).
DEFAULT_REQUEST_TIMEOUT = 300.0
#: The largest API response body read (``max_response_bytes=``).
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Caller headers whose values are not secrets (not scrubbed from messages).
_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-type",
        "pragma",
        "user-agent",
    }
)


# -- authentication -------------------------------------------------------------------------


class Auth:
    """How requests are authenticated. Subclasses never show their secrets in ``repr``."""

    def headers(self) -> dict[str, str]:
        return {}

    def secrets(self) -> list[str]:
        """Values to scrub from any text that might reach a message or a log."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoAuth(Auth):
    """Anonymous requests."""


class BasicAuth(Auth):
    """HTTP basic authentication (Atlassian: email + API token)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._header = f"Basic {token}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    def secrets(self) -> list[str]:
        return [s for s in (self._password, self._header.split(" ", 1)[1]) if s]

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password='***')"


class BearerAuth(Auth):
    """A token in the Authorization header (``Bearer`` by default; GitHub also accepts it)."""

    def __init__(self, token: str, scheme: str = "Bearer") -> None:
        self._token = token
        self.scheme = scheme

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {self._token}"}

    def secrets(self) -> list[str]:
        return [self._token] if self._token else []

    def __repr__(self) -> str:
        return f"BearerAuth(scheme={self.scheme!r}, token='***')"


# -- retry policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How a repository retries. Pass ``retry=RetryPolicy(...)`` to any HTTP repository.

    * ``attempts``: tries per request, the first included.
    * ``backoff`` / ``max_backoff`` / ``jitter``: exponential backoff ``backoff * 2**n``,
      capped, plus up to ``jitter`` times that at random.
    * ``max_wait``: the most one request may spend waiting, all retries together. A vendor
      asking for a longer wait gets ``RateLimited`` raised at once, with its reset time.
    * ``rate_limit_floor``: the least wait after a rate-limit answer that states no wait
      (GitHub asks for at least 60 s after a secondary rate limit).
    * ``statuses``: the HTTP statuses that are retried.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.5
    max_wait: float = 120.0
    rate_limit_floor: float = 1.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def backoff_for(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2.0 ** max(0, attempt - 1))
        return base + random.uniform(0, self.jitter * base)

    def wait_for(self, error: BaseException | None, attempt: int) -> float:
        stated = getattr(error, "retry_after", None)
        if stated is not None:  # the vendor said how long: honour it
            return max(0.0, float(stated))
        if isinstance(error, RateLimited):
            return max(self.rate_limit_floor, self.backoff_for(attempt))
        return self.backoff_for(attempt)


# -- responses and caching ------------------------------------------------------------------


@dataclass
class _CacheEntry:
    etag: str | None
    last_modified: str | None
    body: bytes
    headers: CIMultiDict[str]


class ResponseCache:
    """An in-memory LRU of GET responses for conditional requests (ETag / Last-Modified).

    With it, a repeated GET sends ``If-None-Match``; a ``304 Not Modified`` (which GitHub
    does not count against the rate limit) reuses the stored body.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _CacheEntry] = OrderedDict()

    def get(self, key: str) -> _CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: _CacheEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


# -- the client -----------------------------------------------------------------------------


def _vendor_message(body: bytes) -> str | None:
    """The vendor's own error text, from the usual JSON error shapes or the raw body."""
    if not body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:4000].decode("utf-8", "replace").strip()
        if text.startswith("<"):  # an HTML error page: its words, not its markup
            text = " ".join((html_to_text(text) or "").split())
        return text[:300] or None
    if isinstance(data, dict):
        parts: list[str] = []
        for key in ("message", "error", "errorMessage", "detail", "title", "reason"):
            value = data.get(key)
            if isinstance(value, str) and value:
                parts.append(value)
                break
        messages = data.get("errorMessages")
        if isinstance(messages, list):
            parts.extend(str(m) for m in messages if m)
        errors = data.get("errors")
        if isinstance(errors, dict):
            parts.extend(f"{k}: {v}" for k, v in errors.items())
        elif isinstance(errors, list):
            for error in errors:
                if isinstance(error, dict):
                    detail = error.get("message") or error.get("detail") or error.get("title")
                    if detail:
                        parts.append(str(detail))
                elif error:
                    parts.append(str(error))
        if parts:
            return "; ".join(parts)[:500]
    return orjson.dumps(data)[:300].decode("utf-8", "replace")


def _parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), within [0, a week]; ``None``
    for anything else (``inf``, ``nan``, garbage): a vendor's number never overflows."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_STATED_WAIT)


def _parse_reset(value: str | None) -> datetime | None:
    """``X-RateLimit-Reset``: epoch seconds (GitHub) or an ISO timestamp (Jira)."""
    if not value:
        return None
    value = value.strip()
    try:
        stamp = float(value)
        if math.isfinite(stamp) and 0 <= stamp - time.time() <= MAX_STATED_WAIT:
            return datetime.fromtimestamp(stamp, UTC)
        if math.isfinite(stamp) and stamp < time.time():
            return datetime.fromtimestamp(time.time(), UTC)  # already past: now
        return None  # out of any sane range: as if unsaid
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class HTTPClient:
    """One pooled aiohttp session with auth, retries, rate limits and error mapping.

    The session opens lazily on the first request and is released by ``aclose()``.
    ``source`` is the registry name reported in errors. ``max_connections`` bounds the
    requests in flight to one host; ``limiter`` (aiolimiter) bounds the request rate.
    """

    def __init__(
        self,
        base_url: str,
        *,
        source: str,
        auth: Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
        cache: ResponseCache | None = None,
        verify_ssl: bool = True,
        trust_env: bool = True,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
        download_timeout: float | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        max_redirects: int = 10,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"base URL must be an http(s) URL, not {redact_url(base_url)!r}", source=source
            )
        if parts.username or parts.password:
            raise ConfigurationError(
                "put credentials in the auth options, not in the URL", source=source
            )
        self.base_url = base_url.rstrip("/")
        self.source = source
        self.auth = auth or NoAuth()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.max_connections = max_connections
        self.limiter = limiter
        self.cache = cache
        self.verify_ssl = verify_ssl
        self.trust_env = trust_env
        self.request_timeout = request_timeout
        self.download_timeout = download_timeout
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        # Sent with every request, wherever it goes: nothing secret.
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        # The caller's headers and the credentials go only to the origin a request was made
        # for: a redirect to another scheme, host or port drops them (``_open``).
        self._caller_headers = dict(headers or {})
        self._proxies: dict[tuple[str, str | None, int | None], str | None] = {}
        self._session: aiohttp.ClientSession | None = None
        self._paused_until = 0.0  # monotonic time before which no request is sent
        self._users: set[asyncio.Task[Any]] = set()  # tasks inside send(), for aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source} {self.base_url} auth={self.auth!r}>"

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=max(100, self.max_connections),
                limit_per_host=self.max_connections,
                ssl=bool(self.verify_ssl),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                # Connect and per-read limits here; the total per request is ``request_timeout``
                # (API pages) or ``download_timeout`` (streamed bodies), applied per call.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeout, sock_read=self.timeout
                ),
                # Proxies come from ``_proxy_for`` (environment read once per origin), not
                # aiohttp's trust_env: that reads .netrc and the environment in a thread on
                # every request, and a .netrc entry clashes with our Authorization header.
                trust_env=False,
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session. Requests still running (say, the prefetch of a page stream the
        caller abandoned) are cancelled first, so none can reopen a session behind us; a
        request made after ``aclose()`` opens a new session, released by the next one."""
        current = asyncio.current_task()
        users = [task for task in self._users if task is not current and not task.done()]
        for task in users:
            task.cancel()
        if users:
            await asyncio.gather(*users, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- helpers --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (already absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + "/" + path.lstrip("/")

    def secrets(self) -> list[str]:
        """Every value to keep out of messages and logs: the credentials' secrets and the
        values of headers the caller set (an ``X-Api-Key``), as sent and URL-encoded,
        longest first. Computed on each call: a refreshed token is scrubbed too."""
        values = list(self.auth.secrets())
        values.extend(
            value
            for name, value in self._caller_headers.items()
            if name.lower() not in _PLAIN_HEADERS and len(value) >= 4
        )
        variants = {v for value in values if value for v in (value, quote(value, safe=""))}
        return sorted(variants, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def origin_headers(self) -> dict[str, str]:
        """The headers only the request's own origin receives: the caller's and the
        credentials' (read per request, so a refreshed token is sent at once)."""
        return {**self._caller_headers, **self.auth.headers()}

    def classify(self, response: Response) -> AsyncRepoError | None:
        """The error for a response, or ``None`` for a success. Vendor clients override this
        to read their own dialect, and fall back to it."""
        status = response.status
        if status < 400:
            return None
        message = _vendor_message(response.body)
        vendor = self.scrub(message) if message else None
        context: dict[str, Any] = {
            "source": self.source,
            "method": response.method,
            "url": redact_url(response.url),
            "status": status,
            "vendor_message": vendor,
        }
        limited = self.rate_limit(response)
        if limited is not None:
            return limited
        if status == 401:
            return AuthenticationError("the credentials were rejected", **context)
        if status == 403:
            return PermissionDenied("access denied", **context)
        if status == 404:
            return ItemNotFound("not found", **context)
        if status == 410:
            gone = SourceUnavailable("the vendor has removed this endpoint", **context)
            gone.retryable = False
            return gone
        if status in self.retry.statuses or status >= 500:
            error = SourceUnavailable(f"the source answered {status}", **context)
            error.retryable = status in self.retry.statuses
            # A 503 may say when to come back.
            error.retry_after = _parse_retry_after(response.headers.get("Retry-After"), time.time())
            return error
        return InvalidQuery("the source rejected the request", **context)

    def rate_limit(self, response: Response) -> RateLimited | None:
        """A ``RateLimited`` error if the response is a rate-limit answer (429, or 403 with
        ``X-RateLimit-Remaining: 0`` or a ``Retry-After``)."""
        status = response.status
        headers = response.headers
        if status not in (403, 429):
            return None
        now = time.time()
        retry_after = _parse_retry_after(headers.get("Retry-After"), now)
        reset_at = _parse_reset(headers.get("X-RateLimit-Reset"))
        exhausted = headers.get("X-RateLimit-Remaining", "").strip() == "0"
        if status == 403 and retry_after is None and not exhausted:
            return None
        if retry_after is None and exhausted and reset_at is not None:
            retry_after = max(0.0, reset_at.timestamp() - now)
        if reset_at is None and retry_after is not None:
            reset_at = datetime.fromtimestamp(now + retry_after, UTC)
        message = _vendor_message(response.body)
        return RateLimited(
            "rate limited",
            retry_after=retry_after,
            reset_at=reset_at,
            source=self.source,
            method=response.method,
            url=redact_url(response.url),
            status=status,
            vendor_message=self.scrub(message) if message else None,
        )

    # -- requests -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> Response:
        """Send a request with retries; return the response or raise the mapped error."""
        prepared = PreparedRequest(method, self.url(path), dict(params or {}), json)
        return await self.send(prepared, headers=headers, limiter=limiter)

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        return (await self.request("GET", path, **kwargs)).json()

    async def send(
        self,
        prepared: PreparedRequest,
        *,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> Response:
        task = asyncio.current_task()
        if task is not None:
            self._users.add(task)
        try:
            retrying = self._retrying()
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(prepared, headers, limiter)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if task is not None:
                self._users.discard(task)

    @asynccontextmanager
    async def stream(
        self, path: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body the caller streams. Retries until the status line is a success
        (or 304); errors map as for ``request``."""
        url = self.url(path)
        response: aiohttp.ClientResponse | None = None
        retrying = self._retrying()
        async with self._deadline(self.download_timeout, "GET", url):
            async for attempt in retrying:
                with attempt:
                    response = await self._open(
                        "GET", url, params=None, json=None, headers=headers, limiter=None
                    )
                    if response.status >= 400:
                        try:
                            body = await self._read_body(response, "GET", url)
                        finally:
                            response.release()
                        error = self.classify(self._finished(response, "GET", url, body))
                        assert error is not None
                        raise error
            assert response is not None
            try:
                yield response
            finally:
                response.release()

    def _retrying(self) -> AsyncRetrying:
        policy = self.retry

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return policy.wait_for(error, state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= policy.attempts:
                return True
            return state.idle_for + state.upcoming_sleep > policy.max_wait

        def give_up(state: RetryCallState) -> Any:
            assert state.outcome is not None
            error = state.outcome.exception()
            if isinstance(error, RateLimited) and (
                state.idle_for + state.upcoming_sleep > policy.max_wait
            ):
                error.message += (
                    f"; waiting {state.upcoming_sleep:.0f}s more would pass the retry cap of "
                    f"{policy.max_wait:.0f}s"
                    + (f" (resets at {error.reset_at.isoformat()})" if error.reset_at else "")
                )
            elif isinstance(error, AsyncRepoError) and state.attempt_number > 1:
                error.message += f" (after {state.attempt_number} attempts)"
            assert error is not None
            raise error

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RateLimited) and error.retry_after is not None:
                # Every request of this client waits out the vendor's limit, not just this one.
                self._paused_until = max(
                    self._paused_until, time.monotonic() + state.upcoming_sleep
                )
            log.debug("%s: retrying in %.2fs after %s", self.source, state.upcoming_sleep, error)

        return AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda e: isinstance(e, AsyncRepoError) and e.retryable),
            retry_error_callback=give_up,
            before_sleep=before_sleep,
        )

    async def _open(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        limiter: AsyncLimiter | None,
    ) -> aiohttp.ClientResponse:
        delay = self._paused_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for gate in (self.limiter, limiter):
            if gate is not None:
                await gate.acquire()
        data = orjson.dumps(json) if json is not None else None
        query: list[tuple[str, str]] | None = _query(params)
        origin = here = _origin(url)
        for _hop in range(self.max_redirects + 1):
            # Another origin gets nothing of the caller's and no credentials.
            send_headers = {**self.origin_headers(), **(headers or {})} if here == origin else {}
            if data is not None:
                send_headers["Content-Type"] = "application/json"
            with self._transport_errors(method, url):
                raw = await self.session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=send_headers,
                    allow_redirects=False,
                    proxy=self._proxy_for(here),
                )
            location = raw.headers.get("Location")
            if raw.status not in _REDIRECTS or not location:
                return raw
            raw.release()
            target = urljoin(str(raw.url), location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise SourceUnavailable(
                    "the source redirected to a URL that is not http(s)",
                    source=self.source,
                    method=method,
                    url=redact_url(url),
                    status=raw.status,
                )
            if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
                method, data = "GET", None
            url, query = target, None  # the Location carries its own query
            here = _origin(url)
        raise SourceUnavailable(
            f"more than {self.max_redirects} redirects",
            source=self.source,
            method=method,
            url=redact_url(url),
        )

    def _proxy_for(self, origin: tuple[str, str | None, int | None]) -> str | None:
        """The proxy for an origin (``_origin(url)``) from ``HTTP_PROXY``/``HTTPS_PROXY``/
        ``NO_PROXY`` (when ``trust_env``), read once per origin."""
        if not self.trust_env:
            return None
        if origin not in self._proxies:
            scheme, host, port = origin
            proxies = urllib.request.getproxies_environment()
            target = f"{host}:{port}" if port else (host or "")
            bypass = not host or bool(urllib.request.proxy_bypass(target))
            proxy = None if bypass else proxies.get(scheme)
            self._proxies[origin] = proxy if proxy and "://" in proxy else None
        return self._proxies[origin]

    @asynccontextmanager
    async def _deadline(self, seconds: float | None, method: str, url: str) -> AsyncIterator[None]:
        """A total time limit: a server trickling a byte at a time cannot hold a call open
        past it (the per-read ``timeout`` would never fire)."""
        if seconds is None:
            yield
            return
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise SourceTimeout(
                f"no complete answer within {seconds:g}s",
                source=self.source,
                method=method,
                url=redact_url(url),
            ) from None

    async def _read_body(self, raw: aiohttp.ClientResponse, method: str, url: str) -> bytes:
        """The body, refused once it passes ``max_response_bytes`` (before it is all held:
        an 800 MB page fails at the cap, and so does a compression bomb, counted inflated)."""
        cap = self.max_response_bytes
        with self._transport_errors(method, url, reading=True):
            if cap is None:
                return await raw.read()
            declared = raw.content_length
            if declared is not None and declared > cap and "Content-Encoding" not in raw.headers:
                raise self._too_large(raw, method, url, cap)
            chunks: list[bytes] = []
            size = 0
            async for chunk in raw.content.iter_any():
                size += len(chunk)
                if size > cap:
                    raise self._too_large(raw, method, url, cap)
                chunks.append(chunk)
            return b"".join(chunks)

    def _too_large(
        self, raw: aiohttp.ClientResponse, method: str, url: str, cap: int
    ) -> MalformedResponse:
        return MalformedResponse(
            f"the response body is larger than max_response_bytes ({cap:,} bytes)",
            source=self.source,
            method=method,
            url=redact_url(str(raw.url) or url),
            status=raw.status,
        )

    @contextmanager
    def _transport_errors(self, method: str, url: str, reading: bool = False) -> Iterator[None]:
        """aiohttp's and the OS's failures as asyncrepo errors (retryable ones included)."""
        try:
            yield
        except TimeoutError:
            raise SourceTimeout(
                f"no answer within {self.timeout}s",
                source=self.source,
                method=method,
                url=redact_url(url),
            ) from None
        except aiohttp.InvalidURL as exc:
            raise ConfigurationError(
                f"invalid URL: {exc}", source=self.source, method=method, url=redact_url(url)
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            what = "the connection broke while reading" if reading else "could not reach the source"
            raise SourceUnavailable(
                f"{what} ({type(exc).__name__}: {self.scrub(str(exc))})",
                source=self.source,
                method=method,
                url=redact_url(url),
            ) from None

    def _finished(
        self, raw: aiohttp.ClientResponse, method: str, url: str, body: bytes
    ) -> Response:
        return Response(
            status=raw.status,
            headers=raw.headers,
            url=str(raw.url),
            method=method,
            body=body,
            source=self.source,
            scrub=self.scrub,
        )

    async def _send_once(
        self,
        prepared: PreparedRequest,
        headers: Mapping[str, str] | None,
        limiter: AsyncLimiter | None,
    ) -> Response:
        method, url = prepared.method, prepared.url
        cache_key = None
        cached = None
        send_headers = dict(headers or {})
        if self.cache is not None and method == "GET":
            cache_key = url + "?" + urlencode(sorted(_query(prepared.params)))
            cached = self.cache.get(cache_key)
            if cached is not None:
                if cached.etag:
                    send_headers["If-None-Match"] = cached.etag
                if cached.last_modified:
                    send_headers["If-Modified-Since"] = cached.last_modified
        async with self._deadline(self.request_timeout, method, url):
            raw = await self._open(
                method,
                url,
                params=prepared.params,
                json=prepared.json,
                headers=send_headers,
                limiter=limiter,
            )
            try:
                body = await self._read_body(raw, method, url)
            finally:
                raw.release()
        response = self._finished(raw, method, url, body)
        if response.status == 304 and cached is not None:
            return replace(
                response, status=200, body=cached.body, headers=cached.headers, from_cache=True
            )
        error = self.classify(response)
        if error is not None:
            raise error
        self._note_quota(response)
        if cache_key is not None and self.cache is not None:
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
            if etag or last_modified:
                self.cache.put(
                    cache_key,
                    _CacheEntry(etag, last_modified, body, CIMultiDict(response.headers)),
                )
        return response

    def _note_quota(self, response: Response) -> None:
        """A success that spent the last request of the quota: later requests wait for the
        reset (within the retry cap) instead of collecting a 403 first."""
        if response.headers.get("X-RateLimit-Remaining", "").strip() != "0":
            return
        reset_at = _parse_reset(response.headers.get("X-RateLimit-Reset"))
        if reset_at is None:
            return
        wait = reset_at.timestamp() - time.time()
        if 0 < wait <= self.retry.max_wait:
            self._paused_until = max(self._paused_until, time.monotonic() + wait)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port): what decides whether credentials may go along."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or default


class Repeated(tuple[Any, ...]):
    """A query parameter sent once per value (``labelIds=A&labelIds=B``, as Gmail wants),
    where a plain list or tuple is comma-joined (``fields=a,b``)."""

    __slots__ = ()


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as string pairs: booleans as ``true``/``false``, lists comma-joined,
    ``Repeated`` values one pair each; ``None`` left out."""
    out: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, Repeated):
            out.extend((key, _scalar(v)) for v in value)
        elif isinstance(value, list | tuple | set | frozenset):
            out.append((key, ",".join(str(v) for v in value)))
        else:
            out.append((key, _scalar(value)))
    return out
