"""What the Google connectors share: credentials, the HTTP client (Google's error dialect),
the page-token paginator and the listing guard.

Credentials
-----------
``token=``: a static OAuth 2.0 access token (``Authorization: Bearer``); it cannot be
refreshed, so a 401 is an ``AuthenticationError`` at once.

Otherwise ``google-auth`` (the extra ``asyncrepo[google]``) supplies and refreshes the token:
``credentials=`` (any ``google.auth.credentials.Credentials``), ``credentials_file=`` (a
service-account key or an authorized-user file), else ``GOOGLE_APPLICATION_CREDENTIALS`` /
application default credentials (``google.auth.default``). ``subject=`` impersonates a user
through domain-wide delegation (service accounts only). google-auth signs the JWT and talks
to the token endpoint; its transport is synchronous, so every refresh runs in a thread
(``asyncio.to_thread``) and concurrent requests share one refresh. google-auth is imported
only when these credentials are used.

The Authorization header is computed per request (the token changes on refresh), so it is
passed to ``HTTPClient.send`` as a request header, not baked into the session. A 401 makes
the client refresh once and resend; a second 401 is an ``AuthenticationError``.

Errors
------
Google answers ``{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}``:

* 401 -> ``AuthenticationError`` (after one refresh);
* 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` and 429 -> ``RateLimited``, retried
  with exponential backoff (``Retry-After`` honoured when sent);
* 403 ``insufficientPermissions`` (or ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``) ->
  ``AuthenticationError`` naming the scope the token lacks; other 403s -> ``PermissionDenied``;
* 404 -> ``ItemNotFound``; 400 -> ``InvalidQuery``; 5xx retried, then ``SourceUnavailable``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiolimiter import AsyncLimiter

from ...exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    RateLimited,
    SourceUnavailable,
)
from ...http import (
    Auth,
    HTTPClient,
    Response,
    RetryPolicy,
    _parse_retry_after,
    redact_url,
)
from ...pagination import Batch, NextToken, PreparedRequest, dig
from ...repository import Item, PageRequest
from ...rest import RESTRepository

__all__ = [
    "GoogleClient",
    "GoogleCredentials",
    "GoogleRepository",
    "PageToken",
    "StaticToken",
    "make_credentials",
    "rfc3339",
]

JSON = Any

_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
_SCOPE_IN_HEADER = re.compile(r'scope="([^"]*)"')


# -- credentials ----------------------------------------------------------------------------


class GoogleCredentials(Auth):
    """An access token for each request, refreshed on demand. ``headers()`` is empty: the
    client asks ``authorization()`` per request instead (the token changes)."""

    async def authorization(self) -> str:
        raise NotImplementedError

    async def refresh(self, rejected: str) -> None:
        """Get a new token after ``rejected`` was refused; raise ``AuthenticationError`` if
        these credentials cannot be refreshed."""
        raise NotImplementedError


class StaticToken(GoogleCredentials):
    """A fixed OAuth 2.0 access token."""

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError("token must be a non-empty OAuth access token")
        self._token = token.strip()

    async def authorization(self) -> str:
        return f"Bearer {self._token}"

    async def refresh(self, rejected: str) -> None:
        raise AuthenticationError(
            "the access token was rejected (expired or revoked; a static token= cannot be "
            "refreshed: use service-account or application default credentials for that)"
        )

    def secrets(self) -> list[str]:
        return [self._token]

    def __repr__(self) -> str:
        return "StaticToken(token='***')"


class GoogleAuthCredentials(GoogleCredentials):
    """google-auth credentials, resolved lazily and refreshed in a thread.

    ``load`` builds the credentials object (it may read files or, for application default
    credentials, probe the environment): it runs in a thread on first use.
    """

    def __init__(self, load: Any, description: str) -> None:
        self._load = load
        self._credentials: Any = None
        self._lock = asyncio.Lock()
        self.description = description
        self._seen: list[str] = []  # tokens handed out, for scrubbing

    async def _get(self) -> Any:
        if self._credentials is None:
            self._credentials = await asyncio.to_thread(self._load)
        return self._credentials

    async def authorization(self) -> str:
        credentials = self._credentials
        if credentials is None or not credentials.valid:
            async with self._lock:
                credentials = await self._get()
                if not credentials.valid:
                    await self._refresh(credentials)
        return self._header(credentials)

    async def refresh(self, rejected: str) -> None:
        async with self._lock:
            credentials = await self._get()
            if self._header(credentials) != rejected:
                return  # another request refreshed it meanwhile
            await self._refresh(credentials)

    def _header(self, credentials: Any) -> str:
        token = credentials.token
        if not token:
            raise AuthenticationError(f"{self.description} gave no access token")
        if token not in self._seen:
            self._seen = [*self._seen[-3:], token]
        return f"Bearer {token}"

    async def _refresh(self, credentials: Any) -> None:
        import google.auth.exceptions
        import requests
        from google.auth.transport.requests import Request

        def refresh() -> None:
            with requests.Session() as session:  # closed after the refresh, never leaked
                credentials.refresh(Request(session))

        try:
            await asyncio.to_thread(refresh)
        except google.auth.exceptions.RefreshError as exc:
            raise AuthenticationError(
                f"could not refresh the access token of {self.description}: {_first_line(str(exc))}"
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise SourceUnavailable(
                f"could not reach the token endpoint of {self.description}: {_first_line(str(exc))}"
            ) from None

    def secrets(self) -> list[str]:
        return list(self._seen)

    def __repr__(self) -> str:
        return f"GoogleAuthCredentials({self.description})"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "no detail"


def make_credentials(
    *,
    token: str | None,
    credentials: Any,
    credentials_file: str | os.PathLike[str] | None,
    subject: str | None,
    scopes: Sequence[str],
    source: str,
) -> GoogleCredentials:
    """The credentials a repository uses (see the module docstring for the order)."""
    given = [n for n, v in (("token", token), ("credentials", credentials)) if v is not None]
    if credentials_file is not None:
        given.append("credentials_file")
    if len(given) > 1:
        raise ConfigurationError(f"give only one of {', '.join(given)}", source=source)
    if isinstance(credentials, GoogleCredentials):
        return credentials
    if token is not None:
        if subject is not None:
            raise ConfigurationError(
                "subject= needs service-account credentials, not a token", source=source
            )
        try:
            return StaticToken(token)
        except ConfigurationError as exc:
            exc.source = source
            raise
    try:
        import google.auth
        import google.auth.transport.requests
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"{source}: service-account and application default credentials need the package "
            f"{exc.name!r}: pip install 'asyncrepo[google]' (or pass token=)",
            source=source,
        ) from None
    scope_list = list(scopes)

    def delegate(found: Any) -> Any:
        if subject is None:
            return found
        with_subject = getattr(found, "with_subject", None)
        if with_subject is None:
            raise ConfigurationError(
                "subject= (domain-wide delegation) needs service-account credentials",
                source=source,
            )
        return with_subject(subject)

    if credentials is not None:
        import google.auth.credentials

        if not isinstance(credentials, google.auth.credentials.Credentials):
            raise ConfigurationError("credentials= must be google-auth credentials", source=source)
        chosen = delegate(credentials)
        return GoogleAuthCredentials(lambda: chosen, type(credentials).__name__)

    path = credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        file_path = os.fspath(path)

        def load_file() -> Any:
            from google.oauth2 import credentials as user_credentials
            from google.oauth2 import service_account

            try:
                with open(file_path, "rb") as handle:
                    info = orjson.loads(handle.read())
                kind = info.get("type") if isinstance(info, dict) else None
                if kind == "service_account":
                    found = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                        info, scopes=scope_list
                    )
                elif kind == "authorized_user":
                    found = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                        info, scopes=scope_list
                    )
                else:
                    raise ValueError(
                        f"its type is {kind!r}; asyncrepo reads service_account and "
                        "authorized_user files"
                    )
            except (OSError, ValueError) as exc:
                raise ConfigurationError(
                    f"cannot use the credentials file {file_path!r}: {_first_line(str(exc))}",
                    source=source,
                ) from None
            return delegate(found)

        return GoogleAuthCredentials(load_file, f"the credentials file {file_path!r}")

    def load_default() -> Any:
        import google.auth
        import google.auth.exceptions

        try:
            found, _project = google.auth.default(scopes=scope_list)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise AuthenticationError(
                "no Google credentials: pass token= or credentials_file=, or set "
                f"GOOGLE_APPLICATION_CREDENTIALS ({_first_line(str(exc))})",
                source=source,
            ) from None
        return delegate(found)

    return GoogleAuthCredentials(load_default, "the application default credentials")


# -- the client -----------------------------------------------------------------------------


def google_error(body: bytes) -> tuple[str | None, list[str], str | None]:
    """``(message, reasons, status)`` from Google's error body, if it is one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, [], None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, [], None
    message = error.get("message")
    reasons: list[str] = []
    for detail in error.get("errors") or []:
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reasons.append(detail["reason"])
    for detail in error.get("details") or []:  # the newer google.rpc.ErrorInfo form
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reasons.append(detail["reason"])
    status = error.get("status")
    return (
        message if isinstance(message, str) else None,
        reasons,
        status if isinstance(status, str) else None,
    )


class GoogleClient(HTTPClient):
    """The shared transport with Google's credentials and error dialect."""

    def __init__(
        self,
        base_url: str,
        *,
        source: str,
        credentials: GoogleCredentials,
        scopes: Sequence[str],
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        super().__init__(
            base_url,
            source=source,
            auth=credentials,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            limiter=limiter,
        )
        self.credentials = credentials
        self.scopes = tuple(scopes)

    def scrub(self, text: str) -> str:
        for secret in sorted(self.credentials.secrets(), key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return super().scrub(text)

    async def send(
        self,
        prepared: PreparedRequest,
        *,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> Response:
        authorization = await self._authorization()
        try:
            return await super().send(
                prepared,
                headers={**(headers or {}), "Authorization": authorization},
                limiter=limiter,
            )
        except AuthenticationError as exc:
            if exc.status != 401:
                raise
            await self._refresh(authorization, exc)
        authorization = await self._authorization()
        return await super().send(
            prepared, headers={**(headers or {}), "Authorization": authorization}, limiter=limiter
        )

    @asynccontextmanager
    async def stream(
        self, path: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        authorization = await self._authorization()
        opened = False
        try:
            async with super().stream(
                path, headers={**(headers or {}), "Authorization": authorization}
            ) as response:
                opened = True
                yield response
            return
        except AuthenticationError as exc:
            if opened or exc.status != 401:
                raise
            await self._refresh(authorization, exc)
        authorization = await self._authorization()
        async with super().stream(
            path, headers={**(headers or {}), "Authorization": authorization}
        ) as response:
            yield response

    async def _authorization(self) -> str:
        try:
            return await self.credentials.authorization()
        except AsyncRepoError as exc:
            exc.source = exc.source or self.source
            raise

    async def _refresh(self, rejected: str, error: AuthenticationError) -> None:
        try:
            await self.credentials.refresh(rejected)
        except AuthenticationError as exc:
            error.message = exc.message
            raise error from None

    def classify(self, response: Response) -> AsyncRepoError | None:
        status = response.status
        if status < 400:
            return None
        message, reasons, _status = google_error(response.body)
        vendor = self.scrub(message) if message else None
        context: dict[str, Any] = {
            "source": self.source,
            "method": response.method,
            "url": redact_url(response.url),
            "status": status,
            "vendor_message": vendor,
        }
        if status == 429 or (status == 403 and _RATE_REASONS.intersection(reasons)):
            retry_after = _parse_retry_after(response.headers.get("Retry-After"), time.time())
            reset_at = (
                datetime.fromtimestamp(time.time() + retry_after, UTC)
                if retry_after is not None
                else None
            )
            return RateLimited(
                "rate limited", retry_after=retry_after, reset_at=reset_at, **context
            )
        if status == 401:
            return AuthenticationError("the credentials were rejected", **context)
        if status == 403 and _SCOPE_REASONS.intersection(reasons):
            stated = _SCOPE_IN_HEADER.search(response.headers.get("WWW-Authenticate", ""))
            needed = stated.group(1) if stated else " ".join(self.scopes)
            return AuthenticationError(
                f"the access token lacks the OAuth scope this needs ({needed})", **context
            )
        error = super().classify(response)
        if error is not None and vendor:
            error.vendor_message = vendor
        return error


# -- pagination -----------------------------------------------------------------------------


class PageToken(NextToken):
    """Google's ``nextPageToken`` / ``pageToken``. Unlike ``NextToken``, an empty page with a
    next token does not end the listing: Drive and Calendar document that pages may be
    partial or empty before the end. ``GoogleRepository.stream`` bounds such runs."""

    def __init__(self, page_size_param: str | None) -> None:
        super().__init__(
            token_field="nextPageToken", token_param="pageToken", page_size_param=page_size_param
        )

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Any]:
        token = dig(body, self.token_field)
        if not token:
            return None, None
        if not isinstance(token, str):
            raise response.malformed("nextPageToken is not a string")
        if token == state:
            raise response.malformed("the vendor repeated the page token nextPageToken")
        return token, None


@dataclass
class RawPage:
    """One listing response, decoded, before its items are built."""

    state: JSON  # the state that fetched it
    response: Response
    body: Any
    records: list[Any]
    next_state: JSON


class GoogleRepository(RESTRepository):
    """A Google listing: pages follow ``nextPageToken``.

    A page is fetched and decoded (``fetch_raw``: the declarative ``endpoint`` by default),
    then its items are built (``build``: ``to_item`` over the records by default; Gmail
    fetches its messages there). The core's ``pump`` starts the next page's request before
    building (``Batch.build``), so building overlaps that round trip; it also stops token
    loops and endless empty pages.
    """

    client: GoogleClient

    def connect(
        self,
        base_url: str,
        *,
        token: str | None,
        credentials: Any,
        credentials_file: str | os.PathLike[str] | None,
        subject: str | None,
        scopes: Sequence[str],
        retry: RetryPolicy | None,
        timeout: float | None,
        max_connections: int,
    ) -> None:
        """Make ``self.client`` from the constructor's credential and transport options."""
        auth = make_credentials(
            token=token,
            credentials=credentials,
            credentials_file=credentials_file,
            subject=subject,
            scopes=scopes,
            source=self.name,
        )
        self.client = GoogleClient(
            base_url,
            source=self.name,
            credentials=auth,
            scopes=scopes,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
        )

    async def fetch_raw(self, request: PageRequest, state: JSON) -> RawPage:
        endpoint = self.endpoint(request)
        base = PreparedRequest(
            endpoint.method, self.client.url(endpoint.path), dict(endpoint.params), endpoint.json
        )
        prepared = endpoint.paginator.prepare(base, state, request.page_size)
        response = await self.client.send(prepared, limiter=endpoint.limiter)
        body = response.json()
        records = self.records(response, body, endpoint.records)
        next_state, _ = endpoint.paginator.advance(
            response, body, records, state, request.page_size
        )
        return RawPage(state, response, body, records, next_state)

    async def build(self, request: PageRequest, page: RawPage) -> Batch:
        return Batch(self.items(page.response, page.records), page.next_state)

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        return await self.build(request, await self.fetch_raw(request, state))

    def page_fetcher(self, request: PageRequest) -> Callable[[JSON], Awaitable[Batch]]:
        async def fetch(state: JSON) -> Batch:
            page = await self.fetch_raw(request, state)
            return Batch([], page.next_state, build=lambda: self._items_of(request, page))

        return fetch

    async def _items_of(self, request: PageRequest, page: RawPage) -> list[Item]:
        return (await self.build(request, page)).items


# -- helpers --------------------------------------------------------------------------------


def rfc3339(when: datetime) -> str:
    """``when`` in UTC as RFC 3339 with milliseconds, rounded down (``>=`` keeps ``when``)."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def positive_int(value: Any, name: str, source: str, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer", source=source)
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be at most {maximum}", source=source)
    return value
