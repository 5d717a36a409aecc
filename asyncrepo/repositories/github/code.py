"""Files found by GitHub code search (``github.code``).

``Code(token, /, user=None, org=None, repo=None, base_url=..., *, search_limiter=...)``:
code search scoped to one user, one organisation or one repository (``"owner/name"``), or,
with none of them, to everything the token can see. Code search requires a token.

Items
    ``identifier`` = ``"owner/repo/path"`` (the repository's ``full_name``, then the file's
    path in it), ``title`` = the path, ``url`` = ``html_url``, ``author`` = the repository
    owner's login, ``kind`` = ``"file"``; no dates (GitHub gives none). Search items have
    ``text=None`` (``raw`` has ``path``, ``sha``, ``repository``...); ``get`` fills ``text``.

search
    ``/search/code`` with the scope qualifier added; the caller's text is escaped as for
    ``github.repos`` (each word a quoted phrase), except the code-search qualifiers
    ``language:``, ``path:``, ``filename:``, ``extension:``, ``size:`` and ``in:``, which
    pass through (they only narrow). GitHub serves the first 1,000 results of a code search
    and offers nothing to split it by: past that, a warning is logged and the search ends
    at result 1,000. Code search has its own rate limit (10 requests a minute): every search
    request goes through ``search_limiter`` (default ``AsyncLimiter(10, 60)``), on top of
    the 403/429 handling of the client.

get
    ``get("owner/repo/path")`` is the contents API, ``/repos/{owner}/{repo}/contents/{path}``
    at the default branch. ``text`` is the file decoded from base64 as UTF-8, or ``None``
    for a binary file (a NUL byte, or not UTF-8) and for files over 1 MB (for which GitHub
    sends no content). A directory, a submodule, or a file outside the scope is
    ``ItemNotFound``.

list
    GitHub has no endpoint that lists every file: ``list()`` and ``list_pages()`` raise
    ``UnsupportedOption`` (use ``search(query)``; ``github.repos`` lists repositories).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from aiolimiter import AsyncLimiter

from ...exceptions import ConfigurationError, InvalidQuery, ItemNotFound, UnsupportedOption
from ...http import ResponseCache, RetryPolicy
from ...pagination import Batch, pump
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

__all__ = ["SEARCH_QUALIFIERS", "Code", "decode_content"]

log = logging.getLogger("asyncrepo.github")

JSON = Any

#: Code-search qualifiers the caller's text may carry: each only narrows.
SEARCH_QUALIFIERS = frozenset({"language", "path", "filename", "extension", "size", "in"})
_REPO_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)/([A-Za-z0-9_.-]{1,100})")
_FILE_ID_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)/([A-Za-z0-9_.-]{1,100})/(.+)")


def decode_content(raw: Mapping[str, Any]) -> str | None:
    """A contents-API file as text: base64 -> UTF-8; ``None`` when binary or not sent."""
    if raw.get("encoding") != "base64" or not isinstance(raw.get("content"), str):
        return None
    try:
        data = base64.b64decode(raw["content"])
    except (binascii.Error, ValueError):
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Code(GitHubRepository):
    """Files found by GitHub code search, scoped to ``user``, ``org`` or ``repo``."""

    name: ClassVar[str] = "github.code"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native", search="native", max_page_size=100
    )
    default_page_size = 100
    #: GitHub serves at most this many results of one code search.
    search_cap: ClassVar[int] = 1000

    def __init__(
        self,
        login_or_token: str | None = None,
        /,
        user: str | None = None,
        org: str | None = None,
        repo: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str | None = None,
        search_limiter: AsyncLimiter | None = None,
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
        if sum(v is not None for v in (user, org, repo)) > 1:
            raise ConfigurationError("give at most one of user, org and repo", source=source)
        self.user = check_login(user, "user", source=source)
        self.org = check_login(org, "org", source=source)
        if repo is not None and (not isinstance(repo, str) or not _REPO_RE.fullmatch(repo)):
            raise ConfigurationError(f"repo must be 'owner/name', not {repo!r}", source=source)
        self.repo = repo
        self.page_concurrency = check_page_concurrency(page_concurrency, source=source)
        self.search_limiter = search_limiter if search_limiter is not None else AsyncLimiter(10, 60)
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

    def scope(self) -> JSON:
        return {"user": self.user, "org": self.org, "repo": self.repo, "api": self.client.base_url}

    def __repr__(self) -> str:
        if self.user:
            what = f" users/{self.user}"
        elif self.org:
            what = f" orgs/{self.org}"
        elif self.repo:
            what = f" repos/{self.repo}"
        else:
            what = ""
        return f"<Code {self.name}{what} at {self.client.base_url}>"

    def _in_scope(self, owner: str, repo_name: str) -> bool:
        if self.user or self.org:
            return owner.lower() == (self.user or self.org or "").lower()
        if self.repo:
            return f"{owner}/{repo_name}".lower() == self.repo.lower()
        return True

    # -- list: not on GitHub --------------------------------------------------------------

    def _no_listing(self) -> UnsupportedOption:
        return UnsupportedOption(
            f"{self.name} cannot list: GitHub has no endpoint that lists every file; use "
            "search(query) (and github.repos to list repositories)",
            source=self.name,
        )

    def list(
        self,
        *,
        page_size: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        order: str | None = None,
        **options: Any,
    ) -> Stream[Item]:
        raise self._no_listing()

    def list_pages(
        self,
        *,
        page_size: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        order: str | None = None,
        **options: Any,
    ) -> Stream[Page]:
        raise self._no_listing()

    # -- search ---------------------------------------------------------------------------

    def search_query(self, query: str) -> str:
        """The ``q`` sent to GitHub for ``query``."""
        parts = escape_query(query, SEARCH_QUALIFIERS) if isinstance(query, str) else []
        if not parts:
            raise InvalidQuery(
                f"nothing to search for in {query!r} (quotes and backslashes are ignored)",
                source=self.name,
            )
        if self.user:
            parts.append(f"user:{self.user}")
        elif self.org:
            parts.append(f"org:{self.org}")
        elif self.repo:
            parts.append(f"repo:{self.repo}")
        return " ".join(parts)

    def search(self, query: str, **options: Any) -> Stream[Item]:
        if isinstance(query, str) and query.strip():
            self.search_query(query)  # refuse an empty query now, not at the first page
        return super().search(query, **options)

    def search_pages(self, query: str, **options: Any) -> Stream[Page]:
        if isinstance(query, str) and query.strip():
            self.search_query(query)
        return super().search_pages(query, **options)

    async def fetch_page(
        self, request: PageRequest, state: JSON, *, following: bool = True
    ) -> Batch:
        if request.query is None:
            raise self._no_listing()
        response, body, raws, next_url, after = await self._page(
            "/search/code",
            {"q": self.search_query(request.query)},
            state,
            request.page_size,
            records="items",
            limiter=self.search_limiter,
            following=following,
        )
        if state is None and isinstance(body, Mapping):
            total = body.get("total_count")
            if isinstance(total, int) and total > self.search_cap:
                log.warning(
                    "%s: %d files match; GitHub serves only the first %d of a code search",
                    self.name,
                    total,
                    self.search_cap,
                )
        return Batch(self.items(response, raws), next_url, after)

    def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        # Results outside the scope are dropped after pump (defence in depth): a page
        # emptied by the filter must not look like the end of the search.
        first = FirstCall()
        batches = pump(
            lambda page_state: self.fetch_page(request, page_state, following=first()),
            state,
            concurrency=self.page_limit("code_search"),
            track=self.background_tasks,
        )
        return self.filtered(batches, self._item_in_scope)

    def _item_in_scope(self, item: Item) -> bool:
        owner, repo_name = item.identifier.split("/", 2)[:2]
        return self._in_scope(owner, repo_name)

    def to_item(self, raw: Any) -> Item:
        repository = raw["repository"]
        path = raw["path"]
        return Item(
            f"{repository['full_name']}/{path}",
            raw,
            self,
            title=path,
            url=raw.get("html_url"),
            author=repository["owner"]["login"],
            kind="file",
        )

    # -- get ------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        text = str(identifier)
        match = _FILE_ID_RE.fullmatch(text)
        segments = match.group(3).split("/") if match else []
        if (
            match is None
            or match.group(2) in (".", "..")
            or any(s in ("", ".", "..") for s in segments)
        ):
            raise self.not_found(text, "expected 'owner/repo/path'")
        owner, repo_name, path = match.groups()
        if not self._in_scope(owner, repo_name):
            raise self.not_found(text, "outside this repository's scope")
        url = f"/repos/{owner}/{repo_name}/contents/{quote(path, safe='/')}"
        try:
            response = await self.client.request("GET", url)
        except ItemNotFound as exc:
            raise self.not_found_from(text, exc) from None
        raw = response.json()
        if isinstance(raw, list):
            raise self.not_found(text, "a directory, not a file")
        if not isinstance(raw, dict) or raw.get("type") != "file":
            kind = raw.get("type") if isinstance(raw, dict) else type(raw).__name__
            raise self.not_found(text, f"not a file ({kind})")
        try:
            file_path = raw["path"]
            return Item(
                f"{owner}/{repo_name}/{file_path}",
                raw,
                self,
                title=file_path,
                text=decode_content(raw),
                url=raw.get("html_url"),
                author=owner,
                kind="file",
            )
        except (KeyError, TypeError) as exc:
            raise self.malformed_record(response, exc) from None
