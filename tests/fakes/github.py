"""A fake GitHub REST API (v3, ``X-GitHub-Api-Version: 2022-11-28``) on 127.0.0.1.

It speaks GitHub's wire protocol for the read endpoints asyncrepo uses, with the vendor's
field names, status codes, error bodies and headers. The facts below come from GitHub's
OpenAPI description (``api.github.com`` 1.1.4: operations ``repos/get``,
``repos/list-for-user``, ``repos/list-for-org``, ``repos/list-for-authenticated-user``,
``search/repos``, ``search/code``, ``repos/get-content``, ``rate-limit/get``,
``users/get-by-username``) and from GitHub's REST documentation and observed responses
(pagination, rate limits, the search cap):

Routes
    ``GET /users/{username}/repos``, ``GET /orgs/{org}/repos``, ``GET /user/repos``,
    ``GET /repos/{owner}/{repo}``, ``GET /users/{username}``, ``GET /user``,
    ``GET /rate_limit``, ``GET /search/repositories``, ``GET /search/code``,
    ``GET /repos/{owner}/{repo}/contents[/{path}]``; and the id-based forms GitHub itself
    writes into ``Link`` headers and ``url`` fields: ``/user/{id}/repos``,
    ``/organizations/{id}/repos``, ``/repositories/{id}``,
    ``/repositories/{id}/contents/{path}``.

Pagination
    ``per_page`` (default 30, at most 100), ``page`` (default 1). The ``Link`` header is
    GitHub's: ``<URL>; rel="prev", <URL>; rel="next", <URL>; rel="last", <URL>; rel="first"``
    (only the relations that apply; none at all when everything fits on one page). The URLs
    are absolute, built from the request's host, and keep the caller's other query
    parameters as sent, with ``page`` replaced in place or appended. As on github.com, the
    links of ``/users/{username}/repos`` point at ``/user/{id}/repos`` and those of
    ``/orgs/{org}/repos`` at ``/organizations/{id}/repos``.

Search
    ``total_count`` is the true count, but only the first ``max_search_results`` (1000) are
    reachable. ``/search/repositories`` refuses a page that STARTS at or beyond the cap
    (``(page - 1) * per_page >= 1000``) with 422 ``Only the first 1000 search results are
    available``; ``/search/code`` refuses a page that would REACH beyond it
    (``page * per_page > 1000``). ``rel="last"`` never points past the cap. Forks are left
    out of repository search unless ``fork:true`` or ``fork:only`` is given, as on GitHub.
    Several ``user:``/``org:``/``repo:`` qualifiers are OR-ed. A qualifier naming an
    account or repository that does not exist (or cannot be seen) answers 422 "The listed
    users and repositories cannot be searched...". Code search requires authentication.

Rate limits
    Every response carries ``x-ratelimit-limit``, ``-remaining``, ``-reset`` (epoch seconds),
    ``-used`` and ``-resource`` (``core``, ``search`` or ``code_search``) and
    ``x-github-request-id``. Buckets are per user (per client for anonymous callers):
    core 60/h anonymous, 5000/h with a token; search 10/min anonymous, 30/min with a token;
    code_search 10/min. At 0 remaining the answer is 403 with GitHub's primary-limit body
    until the reset time, when the bucket refills. ``/rate_limit`` costs nothing. The limits
    and windows are fields of :class:`GitHubState`, so tests can make them small.

    Secondary limit on concurrency, on by default: more than ``max_concurrent_requests``
    (100, GitHub's documented figure) requests of one caller in flight at once answer 403
    with GitHub's secondary-limit body and ``retry-after: 60`` (``secondary_retry_after``;
    ``secondary_limit_hits``
    counts them; ``peak_in_flight`` is the most seen; ``latency`` makes every answer take
    that long, inside the count).

Conditional requests
    200 responses carry a weak ``ETag`` (``W/"<sha256>"``, varying with the caller, like
    GitHub's ``Vary: Authorization``). A matching ``If-None-Match`` gets 304 with no body.
    GitHub's documentation: "Making a conditional request does not count against your
    primary rate limit if a 304 response is returned and the request was made while
    correctly authorized with an Authorization header" -- so an authenticated 304 is free,
    while an anonymous 304 still spends one request.

Auth
    ``Authorization: Bearer TOKEN``, ``Authorization: token TOKEN`` or Basic with the token
    as password. A token not in ``state.tokens`` answers 401 ``Bad credentials``. No header
    is allowed on public endpoints (anonymous limits); ``/user``, ``/user/repos`` and
    ``/search/code`` then answer 401 ``Requires authentication``.

Faults
    ``state.controls`` (see ``_common``) injects canned responses before the fake runs.
    :func:`primary_rate_limit_fault`, :func:`secondary_rate_limit_fault` and
    :func:`server_error_fault` inject GitHub's real bodies and headers for the usual three;
    :func:`exhaust_rate_limit` drives the real bucket to 0 instead.

Not modelled: GraphQL, writes, collaborators (``affiliation=collaborator`` finds nothing),
topics/README ranking, ``text-match`` media types, repository renames (301), files over
1 MB. ``download_url`` and ``html_url`` keep GitHub's own hosts (raw.githubusercontent.com,
github.com); every API ``url`` points back at this fake.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aiohttp import web

from ._common import FakeControls, controls_middleware, parse_basic_auth

API_VERSION = "2022-11-28"
DOCS_REST = "https://docs.github.com/rest"
DOCS_RATE_LIMITS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID "
    "0000:0000:0000000:0000000:00000000."
)
DOCS_SECONDARY = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
DOCS_SEARCH = "https://docs.github.com/v3/search/"
DOCS_SEARCH_CODE = "https://docs.github.com/rest/search/search#search-code"
DOCS_GET_REPO = "https://docs.github.com/rest/repos/repos#get-a-repository"
DOCS_LIST_USER_REPOS = "https://docs.github.com/rest/repos/repos#list-repositories-for-a-user"
DOCS_LIST_ORG_REPOS = "https://docs.github.com/rest/repos/repos#list-organization-repositories"
DOCS_LIST_AUTH_REPOS = (
    "https://docs.github.com/rest/repos/repos#list-repositories-for-the-authenticated-user"
)
DOCS_GET_CONTENT = "https://docs.github.com/rest/repos/contents#get-repository-content"
DOCS_GET_USER = "https://docs.github.com/rest/users/users#get-a-user"
DOCS_AUTH_USER = "https://docs.github.com/rest/users/users#get-the-authenticated-user"

SEARCH_CAP_MESSAGE = "Only the first 1000 search results are available"
UNSEARCHABLE_MESSAGE = (
    "The listed users and repositories cannot be searched either because the resources do "
    "not exist or you do not have permission to view them."
)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
EXPOSE_HEADERS = (
    "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, "
    "X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, "
    "X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, "
    "X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset"
)

# The *_url templates of a repository object, in GitHub's order (path suffix after the
# repository's API url).
_REPO_URL_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
)

_LICENSES: dict[str, tuple[str, str, str]] = {
    # key: (name, spdx_id, node_id)
    "mit": ("MIT License", "MIT", "MDc6TGljZW5zZW1pdA=="),
    "apache-2.0": ("Apache License 2.0", "Apache-2.0", "MDc6TGljZW5zZTI="),
    "bsd-3-clause": ('BSD 3-Clause "New" or "Revised" License', "BSD-3-Clause", "MDc6TGljZW5zZTU="),
    "gpl-3.0": ("GNU General Public License v3.0", "GPL-3.0", "MDc6TGljZW5zZTk="),
}


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(year: int, month: int = 1, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


@dataclass
class Account:
    """A GitHub user or organization."""

    login: str
    id: int
    type: str = "User"  # "User" or "Organization"
    name: str | None = None
    created_at: int = 1_200_000_000
    members: set[str] = field(default_factory=set)  # organizations: member logins

    @property
    def node_id(self) -> str:
        kind = "012:Organization" if self.type == "Organization" else "04:User"
        return base64.b64encode(f"{kind}{self.id}".encode()).decode()


@dataclass
class Repo:
    """One repository; timestamps are epoch seconds. ``files`` maps path -> bytes."""

    id: int
    name: str
    owner: Account
    description: str | None = None
    private: bool = False
    fork: bool = False
    parent: Repo | None = None
    created_at: int = 1_300_000_000
    updated_at: int = 1_300_000_000
    pushed_at: int = 1_300_000_000
    language: str | None = None
    stargazers_count: int = 0
    forks_count: int = 0
    open_issues_count: int = 0
    help_wanted_issues_count: int = 0
    size: int = 0
    default_branch: str = "main"
    topics: list[str] = field(default_factory=list)
    license: str | None = None
    archived: bool = False
    is_template: bool = False
    homepage: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    commit_sha: str = "0" * 40

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def node_id(self) -> str:
        return base64.b64encode(f"010:Repository{self.id}".encode()).decode()

    @property
    def visibility(self) -> str:
        return "private" if self.private else "public"


def blob_sha(data: bytes) -> str:
    """Git's blob id for ``data`` (what GitHub reports as a file's ``sha``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@dataclass
class RateBucket:
    """One rate-limit bucket (a resource for one caller)."""

    limit: int
    used: int = 0
    reset: int = 0  # epoch seconds

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass
class GitHubState:
    """Everything the fake serves, plus knobs for tests.

    ``repos`` is the data set; ``accounts`` maps lower-cased login -> :class:`Account`.
    Call :meth:`reindex` after mutating ``repos`` or ``accounts`` by hand.
    """

    accounts: dict[str, Account] = field(default_factory=dict)
    repos: list[Repo] = field(default_factory=list)
    tokens: set[str] = field(default_factory=lambda: {"ghp_testtoken"})
    authenticated_login: str = "octocat"  # every valid token authenticates as this user
    controls: FakeControls = field(default_factory=FakeControls)
    max_search_results: int = 1000
    # Primary rate limits (requests per window) and windows (seconds).
    core_limit_authenticated: int = 5000
    core_limit_unauthenticated: int = 60
    search_limit_authenticated: int = 30
    search_limit_unauthenticated: int = 10
    code_search_limit: int = 10
    core_window: float = 3600.0
    search_window: float = 60.0
    # Secondary rate limit on concurrency (GitHub: "No more than 100 concurrent requests are
    # allowed", per user or app): a request past it gets the secondary-limit answer (403,
    # retry-after 60). 0 turns it off. ``latency``: seconds every answer takes (within the
    # count, so that tests can see how many requests a client keeps in flight).
    max_concurrent_requests: int = 100
    secondary_retry_after: int = 60
    latency: float = 0.0
    in_flight: dict[str, int] = field(default_factory=dict)
    peak_in_flight: int = 0
    secondary_limit_hits: int = 0
    buckets: dict[tuple[str, str], RateBucket] = field(default_factory=dict)
    request_count: int = 0
    _by_full_name: dict[str, Repo] = field(default_factory=dict, repr=False)
    _by_id: dict[int, Repo] = field(default_factory=dict, repr=False)
    _by_owner: dict[str, list[Repo]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self._by_full_name = {r.full_name.lower(): r for r in self.repos}
        self._by_id = {r.id: r for r in self.repos}
        self._by_owner = {}
        for repo in self.repos:
            self._by_owner.setdefault(repo.owner.login.lower(), []).append(repo)

    # -- lookups -----------------------------------------------------------------------

    def account(self, login: str) -> Account | None:
        return self.accounts.get(login.lower())

    def account_by_id(self, account_id: int) -> Account | None:
        return next((a for a in self.accounts.values() if a.id == account_id), None)

    def repo(self, owner: str, name: str) -> Repo | None:
        return self._by_full_name.get(f"{owner}/{name}".lower())

    def repo_by_id(self, repo_id: int) -> Repo | None:
        return self._by_id.get(repo_id)

    def repos_of(self, login: str) -> list[Repo]:
        return self._by_owner.get(login.lower(), [])

    def can_see(self, repo: Repo, login: str | None) -> bool:
        if not repo.private:
            return True
        if login is None:
            return False
        low = login.lower()
        return repo.owner.login.lower() == low or low in {m.lower() for m in repo.owner.members}

    def public_repos(self, login: str | None = None) -> list[Repo]:
        """Repositories visible to ``login`` (None = anonymous)."""
        return [r for r in self.repos if self.can_see(r, login)]

    # -- rate limits -------------------------------------------------------------------

    def limit_for(self, resource: str, login: str | None) -> int:
        if resource == "code_search":
            return self.code_search_limit
        if resource == "search":
            return self.search_limit_authenticated if login else self.search_limit_unauthenticated
        return self.core_limit_authenticated if login else self.core_limit_unauthenticated

    def bucket(self, resource: str = "core", login: str | None = None) -> RateBucket:
        """The live bucket for ``resource`` and caller (refilled when its window ended)."""
        key = (login or "", resource)
        now = time.time()
        window = self.core_window if resource == "core" else self.search_window
        bucket = self.buckets.get(key)
        if bucket is None or now >= bucket.reset:
            bucket = RateBucket(
                limit=self.limit_for(resource, login), reset=math.ceil(now + window)
            )
            self.buckets[key] = bucket
        else:
            bucket.limit = self.limit_for(resource, login)
        return bucket


# --------------------------------------------------------------------------------------
# Data set
# --------------------------------------------------------------------------------------

_WORDS_A = (
    "async",
    "fast",
    "tiny",
    "hello",
    "data",
    "cloud",
    "micro",
    "open",
    "smart",
    "deep",
    "quick",
    "super",
    "meta",
    "hyper",
    "web",
    "net",
    "go",
    "py",
    "rust",
    "lazy",
)
_WORDS_B = (
    "parser",
    "pipeline",
    "server",
    "client",
    "toolkit",
    "engine",
    "cache",
    "router",
    "scheduler",
    "crawler",
    "store",
    "queue",
    "bot",
    "api",
    "cli",
    "sdk",
    "lab",
    "world",
    "search",
    "index",
)
_SEPARATORS = ("-", "-", "-", "_", ".", "")
_DESC_TEMPLATES = (
    "A {adj} {noun} library for {domain}",
    "{Adj} {noun} written in {lang}",
    "Experimental {noun} for {domain} with async support",
    "Kubernetes operator that manages {domain}",
    "Machine learning {noun} for {domain}",
    'Command-line {noun}: "{domain}" made simple',
    "HTTP {noun} with retries & caching for {domain}",
    "Search {noun} over {domain} (full-text)",
)
_ADJS = ("lightweight", "blazing fast", "minimal", "pluggable", "typed", "robust", "tiny")
_DOMAINS = (
    "time series",
    "payments",
    "log files",
    "genomics",
    "invoices",
    "images",
    "chat",
    "web scraping",
    "IoT devices",
    "spreadsheets",
    "café menus",
)
_LANGUAGES: tuple[tuple[str | None, str], ...] = (
    ("Python", "py"),
    ("Go", "go"),
    ("Rust", "rs"),
    ("JavaScript", "js"),
    ("TypeScript", "ts"),
    ("C", "c"),
    (None, "txt"),
)
_TOPICS = ("api", "cli", "async", "database", "machine-learning", "kubernetes", "search", "http")
_IDENTIFIERS = (
    "fetch_items",
    "parse_config",
    "handle_request",
    "retry_with_backoff",
    "build_index",
    "render_page",
    "open_session",
    "flush_buffer",
    "resolve_token",
    "stream_rows",
)


def _code_file(lang: str | None, ext: str, repo_name: str, rng: random.Random) -> str:
    idents = rng.sample(_IDENTIFIERS, 3)
    if ext == "py":
        body = "".join(
            f'\n\nasync def {i}(session, *args):\n    """{i.replace("_", " ")}."""\n'
            f"    return await session.get('/{i}')\n"
            for i in idents
        )
        return f'"""{repo_name}: core module."""\n\nimport asyncio{body}'
    if ext == "go":
        body = "".join(
            f"\n// {i} is exported.\nfunc {i}() error {{\n\treturn nil\n}}\n" for i in idents
        )
        return f"package main\n{body}"
    if ext == "rs":
        body = "".join(f"\npub fn {i}() -> Result<(), Error> {{\n    Ok(())\n}}\n" for i in idents)
        return f"//! {repo_name}\n{body}"
    if ext in ("js", "ts"):
        body = "".join(
            f"\nexport async function {i}(client) {{\n  return client.call('{i}');\n}}\n"
            for i in idents
        )
        return f"// {repo_name}\n{body}"
    if ext == "c":
        body = "".join(f"\nint {i}(void) {{\n    return 0;\n}}\n" for i in idents)
        return f"#include <stdio.h>\n{body}"
    return "\n".join(f"- {i}" for i in idents) + "\n"


def make_dataset(
    n_repos: int = 300,
    seed: int = 0,
    *,
    private_fraction: float = 0.05,
    fork_fraction: float = 0.05,
    tokens: Iterable[str] = ("ghp_testtoken",),
) -> GitHubState:
    """A deterministic data set of ``n_repos`` repositories.

    Owners: ``octocat`` (user, the authenticated user of every valid token, member of
    ``acme``), ``acme`` (organization, most repositories), and ``hubot`` (user) and
    ``umbrella`` (organization), whose repositories must never leak into a query scoped to
    octocat or acme. Repository names reuse the same word pairs across owners (so a
    name-only match would leak) and contain ``-``, ``_`` and ``.``. ``created_at`` spreads
    over 2012-2024 and ids grow with creation time, as on GitHub. About 90% of
    descriptions contain the word "library" or another common word; some are null.
    About ``private_fraction`` are private (visible to octocat only when owned by octocat or
    acme) and ``fork_fraction`` are forks (hidden from repository search by default). Every
    repository has ``README.md`` and a source file; some have ``docs/usage.md`` and a
    binary ``assets/logo.png``.
    """
    rng = random.Random(seed)
    octocat = Account("octocat", 583231, "User", "The Octocat", _epoch(2011, 1, 25))
    acme = Account("acme", 9_919_001, "Organization", "Acme Corp", _epoch(2010, 6, 1))
    hubot = Account("hubot", 480_938, "User", "Hubot", _epoch(2010, 10, 1))
    umbrella = Account("umbrella", 9_919_002, "Organization", "Umbrella Corp", _epoch(2011, 3, 3))
    acme.members = {"octocat"}
    umbrella.members = {"hubot"}
    accounts = {a.login: a for a in (octocat, acme, hubot, umbrella)}
    owners = (acme, octocat, hubot, umbrella)
    weights = (0.6, 0.2, 0.1, 0.1)

    start, end = _epoch(2012), _epoch(2025)
    now_cap = _epoch(2025, 6, 1)
    created = sorted(rng.randrange(start, end) for _ in range(n_repos))
    taken: set[str] = set()
    repos: list[Repo] = []
    next_id = 10_000_000
    for i in range(n_repos):
        owner = owners[i] if i < len(owners) else rng.choices(owners, weights)[0]
        special = {0: ".github", 1: "octocat.github.io", 2: "Hello-World"}.get(i)
        if special:
            name = special
        else:
            a, b = rng.choice(_WORDS_A), rng.choice(_WORDS_B)
            name = f"{a}{rng.choice(_SEPARATORS)}{b}"
            if rng.random() < 0.1:
                name = name.title()
        base_name, k = name, 2
        while f"{owner.login}/{name}".lower() in taken:
            name = f"{base_name}-{k}"
            k += 1
        taken.add(f"{owner.login}/{name}".lower())
        next_id += rng.randint(1, 500)
        lang, ext = rng.choice(_LANGUAGES)
        desc: str | None = None
        if rng.random() < 0.9:
            desc = rng.choice(_DESC_TEMPLATES).format(
                adj=rng.choice(_ADJS),
                Adj=rng.choice(_ADJS).capitalize(),
                noun=rng.choice(_WORDS_B),
                domain=rng.choice(_DOMAINS),
                lang=lang or "plain text",
            )
        c = created[i]
        pushed = c + int(rng.random() ** 2 * (now_cap - c))
        updated = max(pushed, c + int(rng.random() * (now_cap - c)))
        stars = min(int(rng.paretovariate(1.1)) - 1, 50_000)
        repo = Repo(
            id=next_id,
            name=name,
            owner=owner,
            description=desc,
            private=rng.random() < private_fraction and i >= len(owners),
            created_at=c,
            updated_at=updated,
            pushed_at=pushed,
            language=lang,
            stargazers_count=stars,
            forks_count=stars // rng.randint(3, 12),
            open_issues_count=rng.randint(0, 40),
            help_wanted_issues_count=rng.randint(0, 5),
            size=rng.randint(0, 50_000),
            default_branch=rng.choice(("main", "main", "master")),
            topics=sorted(rng.sample(_TOPICS, rng.randint(0, 3))),
            license=rng.choice((None, "mit", "mit", "apache-2.0", "bsd-3-clause", "gpl-3.0")),
            archived=rng.random() < 0.05,
            is_template=rng.random() < 0.02,
            homepage=rng.choice((None, "", f"https://{name.lower()}.example.com")),
            commit_sha=hashlib.sha1(f"{seed}:{next_id}".encode()).hexdigest(),
        )
        if i >= len(owners) and repos and rng.random() < fork_fraction:
            parent = rng.choice(repos)
            if parent.owner is not owner and not parent.private and not parent.fork:
                repo.fork = True
                repo.parent = parent
                repo.description = parent.description
        readme = f"# {name}\n\n{desc or ''}\n\n## Usage\n\nSee `{_IDENTIFIERS[i % 10]}`.\n"
        repo.files["README.md"] = readme.encode()
        repo.files[f"src/main.{ext}"] = _code_file(lang, ext, name, rng).encode()
        if i % 3 == 0:
            repo.files["docs/usage.md"] = f"# Using {name}\n\nCall the API.\n".encode()
        if i % 10 == 0:
            repo.files["assets/logo.png"] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + rng.randbytes(64)
        repos.append(repo)
    return GitHubState(accounts=accounts, repos=repos, tokens=set(tokens))


# --------------------------------------------------------------------------------------
# JSON renderers
# --------------------------------------------------------------------------------------


def _user_json(account: Account, base: str) -> dict[str, Any]:
    login = account.login
    api = f"{base}/users/{login}"
    return {
        "login": login,
        "id": account.id,
        "node_id": account.node_id,
        "avatar_url": f"https://avatars.githubusercontent.com/u/{account.id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": account.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def _license_json(key: str | None, base: str) -> dict[str, Any] | None:
    if key is None:
        return None
    name, spdx, node_id = _LICENSES[key]
    return {
        "key": key,
        "name": name,
        "spdx_id": spdx,
        "url": f"{base}/licenses/{key}",
        "node_id": node_id,
    }


def _repo_head(repo: Repo, base: str) -> dict[str, Any]:
    """The fields every repository shape shares, through ``deployments_url``."""
    api = f"{base}/repos/{repo.full_name}"
    data: dict[str, Any] = {
        "id": repo.id,
        "node_id": repo.node_id,
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": _user_json(repo.owner, base),
        "html_url": f"https://github.com/{repo.full_name}",
        "description": repo.description,
        "fork": repo.fork,
        "url": api,
    }
    for key, suffix in _REPO_URL_TEMPLATES:
        data[key] = api + suffix
    return data


def _permissions(state: GitHubState, repo: Repo, login: str | None) -> dict[str, bool]:
    admin = login is not None and (
        repo.owner.login.lower() == login.lower() or login.lower() in repo.owner.members
    )
    return {"admin": admin, "maintain": admin, "push": admin, "triage": admin, "pull": True}


def repo_json(
    state: GitHubState, repo: Repo, base: str, login: str | None, kind: str = "minimal"
) -> dict[str, Any]:
    """Render ``repo`` as GitHub does. ``kind``: minimal | repository | full | search."""
    data = _repo_head(repo, base)
    data.update(
        {
            "created_at": _iso(repo.created_at),
            "updated_at": _iso(repo.updated_at),
            "pushed_at": _iso(repo.pushed_at),
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": f"https://github.com/{repo.full_name}.git",
            "svn_url": f"https://github.com/{repo.full_name}",
            "homepage": repo.homepage,
            "size": repo.size,
            "stargazers_count": repo.stargazers_count,
            "watchers_count": repo.stargazers_count,
            "language": repo.language,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": not repo.fork,
            "has_pages": repo.name.endswith(".github.io"),
            "has_discussions": False,
            "forks_count": repo.forks_count,
            "mirror_url": None,
            "archived": repo.archived,
            "disabled": False,
            "open_issues_count": repo.open_issues_count,
            "license": _license_json(repo.license, base),
            "allow_forking": True,
            "is_template": repo.is_template,
            "web_commit_signoff_required": False,
            "topics": list(repo.topics),
            "visibility": repo.visibility,
            "forks": repo.forks_count,
            "open_issues": repo.open_issues_count,
            "watchers": repo.stargazers_count,
            "default_branch": repo.default_branch,
        }
    )
    if login is not None:
        data["permissions"] = _permissions(state, repo, login)
    if kind == "full":
        if login is not None and data["permissions"]["admin"]:
            data["temp_clone_token"] = ""
        if repo.owner.type == "Organization":
            data["organization"] = _user_json(repo.owner, base)
        if repo.fork and repo.parent is not None:
            parent = repo_json(state, repo.parent, base, login, "repository")
            root = repo.parent
            while root.parent is not None:
                root = root.parent
            data["parent"] = parent
            data["source"] = repo_json(state, root, base, login, "repository")
        data["network_count"] = repo.forks_count
        data["subscribers_count"] = max(1, repo.stargazers_count // 10)
    if kind == "search":
        data["score"] = 1.0
    return data


def _search_code_repo_json(repo: Repo, base: str) -> dict[str, Any]:
    return _repo_head(repo, base)


# --------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------


def _json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    response = web.Response(status=status, body=body, headers=headers)
    response.headers["Content-Type"] = JSON_CONTENT_TYPE
    return response


def _error(
    status: int, message: str, documentation_url: str = DOCS_REST, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"message": message}
    body.update(extra)
    body["documentation_url"] = documentation_url
    body["status"] = str(status)
    return _json_response(body, status)


def _validation_failed(
    errors: list[dict[str, Any]], documentation_url: str = DOCS_SEARCH
) -> web.Response:
    return _error(422, "Validation Failed", documentation_url, errors=errors)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def _paging(request: web.Request) -> tuple[int, int]:
    """(page, per_page) as GitHub applies them: per_page 30 by default, at most 100."""
    per_page = _int_param(request, "per_page", 30)
    if per_page <= 0:
        per_page = 30
    per_page = min(per_page, 100)
    page = max(1, _int_param(request, "page", 1))
    return page, per_page


def _link_header(
    request: web.Request,
    page: int,
    last_page: int,
    *,
    path: str | None = None,
    per_page_override: int | None = None,
) -> str | None:
    """GitHub's ``Link`` header for ``page`` of ``last_page`` (None when not needed)."""
    if last_page <= 1 and page <= 1:
        return None
    raw_query = request.raw_path.partition("?")[2]
    parts = [p for p in raw_query.split("&") if p]
    base = f"{_base_url(request)}{path or request.path}"

    def url(target: int) -> str:
        out: list[str] = []
        placed = False
        for part in parts:
            key = part.partition("=")[0]
            if key == "page":
                if not placed:
                    out.append(f"page={target}")
                    placed = True
            elif key == "per_page" and per_page_override is not None:
                out.append(f"per_page={per_page_override}")
            else:
                out.append(part)
        if not placed:
            out.append(f"page={target}")
        return f"{base}?{'&'.join(out)}"

    links: list[str] = []
    if page > 1:
        links.append(f'<{url(page - 1)}>; rel="prev"')
    if page < last_page:
        links.append(f'<{url(page + 1)}>; rel="next"')
        links.append(f'<{url(last_page)}>; rel="last"')
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
    return ", ".join(links) or None


def _paginate(
    request: web.Request,
    items: list[Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    link_path: str | None = None,
) -> web.Response:
    page, per_page = _paging(request)
    start = (page - 1) * per_page
    chunk = [render(item) for item in items[start : start + per_page]]
    last_page = max(1, math.ceil(len(items) / per_page))
    response = _json_response(chunk)
    link = _link_header(request, page, last_page, path=link_path) if items else None
    if link:
        response.headers["Link"] = link
    return response


_SORT_KEYS: dict[str, Callable[[Repo], Any]] = {
    "created": lambda r: r.created_at,
    "updated": lambda r: r.updated_at,
    "pushed": lambda r: r.pushed_at,
    "full_name": lambda r: r.full_name.lower(),
}


def _sorted_repos(request: web.Request, repos: list[Repo], default_sort: str) -> list[Repo]:
    sort = request.query.get("sort", default_sort)
    if sort not in _SORT_KEYS:
        sort = default_sort
    direction = request.query.get("direction", "asc" if sort == "full_name" else "desc")
    reverse = direction == "desc"
    key = _SORT_KEYS[sort]
    return sorted(repos, key=lambda r: (key(r), r.id), reverse=reverse)


# --------------------------------------------------------------------------------------
# Search query parsing
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r'(-?)([A-Za-z_-]+):("[^"]*"|\S+)|"([^"]*)"?|(\S+)')
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@lru_cache(maxsize=131072)
def _words(text: str) -> list[str]:
    """Lower-cased word tokens (splits on punctuation and camelCase, like GitHub).

    Cached: callers must not mutate the returned list."""
    return [w.lower() for w in _WORD_RE.findall(text)]


@lru_cache(maxsize=131072)
def _file_words(data: bytes) -> list[str]:
    return _words.__wrapped__(data.decode("utf-8", "replace"))


def _contains_seq(haystack: list[str], needle: list[str]) -> bool:
    if not needle:
        return False
    n = len(needle)
    first = needle[0]
    return any(w == first and haystack[i : i + n] == needle for i, w in enumerate(haystack))


def _parse_instant(text: str) -> tuple[int, int] | None:
    """A date or date-time as the half-open epoch interval [start, end) it names."""
    text = text.strip()
    try:
        if "T" in text:
            value = text.replace("Z", "+00:00")
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            start = int(moment.timestamp())
            return start, start + 1
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    start = int(day.timestamp())
    return start, int((day + timedelta(days=1)).timestamp())


def _range_predicate(
    value: str, parse: Callable[[str], tuple[int, int] | None]
) -> Callable[[int], bool] | None:
    """GitHub range syntax: ``>=X``, ``>X``, ``<=X``, ``<X``, ``X..Y`` (``*`` open), ``X``."""
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            bound = parse(value[len(op) :])
            if bound is None:
                return None
            lo, hi = bound
            # For a date, ">X" starts after X's whole day and "<=X" includes all of it.
            threshold = lo if op in (">=", "<") else hi
            if op in (">=", ">"):
                return lambda t: t >= threshold
            return lambda t: t < threshold
    if ".." in value:
        left, _, right = value.partition("..")
        lo_b = None if left == "*" else parse(left)
        hi_b = None if right == "*" else parse(right)
        if (left != "*" and lo_b is None) or (right != "*" and hi_b is None):
            return None
        lo = lo_b[0] if lo_b else -(2**62)
        hi = hi_b[1] if hi_b else 2**62
        return lambda t: lo <= t < hi
    bound = parse(value)
    if bound is None:
        return None
    lo, hi = bound
    return lambda t: lo <= t < hi


def _parse_number(text: str) -> tuple[int, int] | None:
    try:
        n = int(text)
    except ValueError:
        return None
    return n, n + 1


@dataclass
class _Query:
    terms: list[list[str]] = field(default_factory=list)  # each term: a word sequence
    users: list[str] = field(default_factory=list)  # user:/org: values
    repos: list[str] = field(default_factory=list)  # repo: values
    excluded: list[str] = field(default_factory=list)  # -user:/-org:/-repo: values
    negated_terms: list[list[str]] = field(default_factory=list)  # -word
    filters: list[Callable[[Repo], bool]] = field(default_factory=list)
    in_fields: set[str] = field(default_factory=set)
    fork: str | None = None  # None (exclude forks) | "true" | "only"
    paths: list[str] = field(default_factory=list)  # code: path:
    filenames: list[str] = field(default_factory=list)  # code: filename:
    extensions: list[str] = field(default_factory=list)  # code: extension:
    languages: list[str] = field(default_factory=list)


def _field_filter(attr: str, pred: Callable[[int], bool]) -> Callable[[Repo], bool]:
    """A filter that applies ``pred`` to one of a repository's numeric fields."""
    return lambda r: pred(getattr(r, attr))


def _negated(f: Callable[[Repo], bool]) -> Callable[[Repo], bool]:
    return lambda r: not f(r)


def _apply_qualifier(query: _Query, key: str, value: str) -> bool:
    """Record one ``key:value`` qualifier; False when it is not one (then it is text)."""
    pred: Callable[[int], bool] | None
    if key in ("user", "org"):
        query.users.append(value)
    elif key == "repo":
        query.repos.append(value)
    elif key in ("created", "pushed", "updated"):
        pred = _range_predicate(value, _parse_instant)
        if pred is None:
            return False
        query.filters.append(_field_filter(f"{key}_at", pred))
    elif key in ("stars", "forks", "size"):
        pred = _range_predicate(value, _parse_number)
        if pred is None:
            return False
        attr = {"stars": "stargazers_count", "forks": "forks_count", "size": "size"}[key]
        query.filters.append(_field_filter(attr, pred))
    elif key == "language":
        query.languages.append(value.lower())
    elif key == "in":
        query.in_fields.update(v.strip().lower() for v in value.split(","))
    elif key == "fork":
        query.fork = value.lower()
    elif key == "is" and value.lower() in ("public", "private"):
        private = value.lower() == "private"
        query.filters.append(lambda r: r.private == private)
    elif key == "archived":
        archived = value.lower() == "true"
        query.filters.append(lambda r: r.archived == archived)
    elif key == "topic":
        topic = value.lower()
        query.filters.append(lambda r: topic in r.topics)
    elif key == "path":
        query.paths.append(value.strip("/").lower())
    elif key == "filename":
        query.filenames.append(value.lower())
    elif key == "extension":
        query.extensions.append(value.lower().lstrip("."))
    else:
        return False
    return True


def _parse_query(q: str) -> _Query:
    """Parse GitHub search syntax: words, "quoted phrases", ``qualifier:value``, ``-x``."""
    query = _Query()
    for match in _TOKEN_RE.finditer(q):
        neg, qual, qval, phrase, bare = match.groups()
        if qual is not None:
            key, value = qual.lower(), qval.strip('"')
            if neg and key in ("user", "org", "repo"):
                query.excluded.append(value.lower())
                continue
            n_filters = len(query.filters)
            if _apply_qualifier(query, key, value):
                if neg and len(query.filters) > n_filters:
                    query.filters.append(_negated(query.filters.pop()))
                continue
            # An unknown qualifier, or one whose value does not parse, is searched as text.
            words = _words(match.group(0))
            if words:
                query.terms.append(words)
            continue
        text = phrase if phrase is not None else bare
        if text is None or text in ("AND",):
            continue
        if bare is not None and text.startswith("-") and len(text) > 1:
            words = _words(text[1:])
            if words:
                query.negated_terms.append(words)
            continue
        words = _words(text)
        if words:
            query.terms.append(words)
    return query


# --------------------------------------------------------------------------------------
# Middleware: auth, rate limits, conditional requests, headers
# --------------------------------------------------------------------------------------


def _resource_for(path: str) -> str | None:
    if path == "/rate_limit":
        return None
    if path.startswith("/search/code"):
        return "code_search"
    if path.startswith("/search/"):
        return "search"
    return "core"


def _authenticate(request: web.Request, state: GitHubState) -> tuple[str | None, bool]:
    """(login, bad_credentials)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None, False
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    token: str | None = None
    if scheme in ("bearer", "token"):
        token = credentials.strip()
    elif scheme == "basic":
        parsed = parse_basic_auth(request)
        token = parsed[1] if parsed else None
    if token and token in state.tokens:
        return state.authenticated_login, False
    return None, True


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def _request_id(state: GitHubState) -> str:
    n = state.request_count
    digest = hashlib.sha1(f"req{n}".encode()).hexdigest().upper()
    return f"{digest[0:4]}:{digest[4:8]}:{digest[8:15]}:{digest[15:22]}:{n:08X}"


def _rate_headers(bucket: RateBucket, resource: str) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(bucket.limit),
        "x-ratelimit-remaining": str(bucket.remaining),
        "x-ratelimit-reset": str(bucket.reset),
        "x-ratelimit-used": str(min(bucket.used, bucket.limit)),
        "x-ratelimit-resource": resource,
    }


def _rate_limited_body(
    state: GitHubState, login: str | None, request: web.Request, rid: str
) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    support = (
        f"If you reach out to GitHub Support for help, please include the request ID {rid} "
        f"and timestamp {stamp} UTC."
    )
    if login is not None:
        account = state.account(login)
        who = f"user ID {account.id if account else 0}"
        message = f"API rate limit exceeded for {who}. {support}"
    else:
        ip = request.remote or "127.0.0.1"
        message = (
            f"API rate limit exceeded for {ip}. (But here's the good news: Authenticated "
            f"requests get a higher rate limit. Check out the documentation for more "
            f"details.) {support}"
        )
    return {"message": message, "documentation_url": DOCS_RATE_LIMITS, "status": "403"}


def github_middleware(state: GitHubState) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        state.request_count += 1
        rid = _request_id(state)
        login, bad_credentials = _authenticate(request, state)
        resource = _resource_for(request.path)
        common = {
            "x-github-request-id": rid,
            "x-github-api-version-selected": API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            "access-control-allow-origin": "*",
            "access-control-expose-headers": EXPOSE_HEADERS,
            "vary": (
                "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding, Accept, "
                "X-Requested-With"
            ),
        }
        if login is not None:
            common["x-oauth-scopes"] = "repo, read:org"
            common["x-accepted-oauth-scopes"] = ""

        def finish(
            response: web.StreamResponse, bucket: RateBucket, res: str
        ) -> web.StreamResponse:
            response.headers.update(_rate_headers(bucket, res))
            response.headers.update(common)
            return response

        if bad_credentials:
            bucket = state.bucket("core", None)
            bucket.used += 1
            return finish(_error(401, "Bad credentials", DOCS_REST), bucket, "core")
        if resource == "code_search" and login is None:
            bucket = state.bucket("core", None)
            bucket.used += 1
            response = _error(
                401,
                "Requires authentication",
                DOCS_SEARCH_CODE,
                errors=[
                    {
                        "message": "Must be authenticated to access the code search API",
                        "resource": "Search",
                        "field": "q",
                        "code": "invalid",
                    }
                ],
            )
            return finish(response, bucket, "core")
        if resource is None:  # /rate_limit: free
            response = await handler(request)
            return finish(response, state.bucket("core", login), "core")

        bucket = state.bucket(resource, login)
        if bucket.remaining <= 0:
            body = _rate_limited_body(state, login, request, rid)
            return finish(_json_response(body, 403), bucket, resource)

        caller = login or (request.remote or "")
        in_flight = state.in_flight.get(caller, 0) + 1
        if 0 < state.max_concurrent_requests < in_flight:
            state.secondary_limit_hits += 1
            response = _error(403, SECONDARY_MESSAGE, DOCS_SECONDARY)
            response.headers["retry-after"] = str(state.secondary_retry_after)
            return finish(response, bucket, resource)
        state.in_flight[caller] = in_flight
        state.peak_in_flight = max(state.peak_in_flight, in_flight)
        try:
            if state.latency:
                await asyncio.sleep(state.latency)
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                response = _error(404, "Not Found", DOCS_REST)
            else:
                raise
        finally:
            state.in_flight[caller] -= 1
        if (
            response.status == 200
            and request.method in ("GET", "HEAD")
            and isinstance(response, web.Response)
            and response.body is not None
        ):
            body_bytes = response.body if isinstance(response.body, bytes) else b""
            etag = 'W/"' + hashlib.sha256(body_bytes + (login or "").encode()).hexdigest() + '"'
            response.headers["ETag"] = etag
            response.headers["Cache-Control"] = (
                "private, max-age=60, s-maxage=60" if login else "public, max-age=60, s-maxage=60"
            )
            if _etag_matches(request.headers.get("If-None-Match"), etag):
                not_modified = web.Response(status=304)
                not_modified.headers["ETag"] = etag
                not_modified.headers["Cache-Control"] = response.headers["Cache-Control"]
                if login is None:
                    bucket.used += 1
                return finish(not_modified, bucket, resource)
        bucket.used += 1
        return finish(response, bucket, resource)

    return middleware


# --------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------


STATE_KEY = web.AppKey("github_state", GitHubState)


def _state(request: web.Request) -> GitHubState:
    return request.app[STATE_KEY]


def _login(request: web.Request) -> str | None:
    """The caller's login (the middleware has already refused bad credentials)."""
    return _authenticate(request, _state(request))[0]


async def _list_for_account(request: web.Request, account: Account) -> web.Response:
    state, login = _state(request), _login(request)
    kind = request.query.get("type", "owner")
    repos = [r for r in state.repos_of(account.login) if not r.private]
    if kind == "member":
        repos = []
    repos = _sorted_repos(request, repos, "full_name")
    base = _base_url(request)
    return _paginate(
        request,
        repos,
        lambda r: repo_json(state, r, base, login, "minimal"),
        link_path=f"/user/{account.id}/repos",
    )


async def list_user_repos(request: web.Request) -> web.Response:
    account = _state(request).account(request.match_info["username"])
    if account is None:
        return _error(404, "Not Found", DOCS_LIST_USER_REPOS)
    return await _list_for_account(request, account)


async def list_user_repos_by_id(request: web.Request) -> web.Response:
    try:
        account = _state(request).account_by_id(int(request.match_info["id"]))
    except ValueError:
        account = None
    if account is None:
        return _error(404, "Not Found", DOCS_LIST_USER_REPOS)
    return await _list_for_account(request, account)


async def _list_for_org(request: web.Request, org: Account) -> web.Response:
    state, login = _state(request), _login(request)
    kind = request.query.get("type", "all")
    repos = [r for r in state.repos_of(org.login) if state.can_see(r, login)]
    if kind == "public":
        repos = [r for r in repos if not r.private]
    elif kind == "private":
        repos = [r for r in repos if r.private]
    elif kind == "forks":
        repos = [r for r in repos if r.fork]
    elif kind == "sources":
        repos = [r for r in repos if not r.fork]
    repos = _sorted_repos(request, repos, "created")
    base = _base_url(request)
    return _paginate(
        request,
        repos,
        lambda r: repo_json(state, r, base, login, "minimal"),
        link_path=f"/organizations/{org.id}/repos",
    )


async def list_org_repos(request: web.Request) -> web.Response:
    org = _state(request).account(request.match_info["org"])
    if org is None or org.type != "Organization":
        return _error(404, "Not Found", DOCS_LIST_ORG_REPOS)
    return await _list_for_org(request, org)


async def list_org_repos_by_id(request: web.Request) -> web.Response:
    try:
        org = _state(request).account_by_id(int(request.match_info["id"]))
    except ValueError:
        org = None
    if org is None or org.type != "Organization":
        return _error(404, "Not Found", DOCS_LIST_ORG_REPOS)
    return await _list_for_org(request, org)


async def list_authenticated_repos(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    if login is None:
        return _error(401, "Requires authentication", DOCS_LIST_AUTH_REPOS)
    query = request.query
    if "type" in query and ("visibility" in query or "affiliation" in query):
        # GitHub documents a 422 for this combination.
        return _validation_failed(
            [
                {
                    "resource": "Repository",
                    "field": "type",
                    "code": "invalid",
                    "message": "type cannot be used with visibility or affiliation",
                }
            ],
            DOCS_LIST_AUTH_REPOS,
        )
    low = login.lower()
    owned = [r for r in state.repos if r.owner.login.lower() == low]
    via_org = [
        r
        for r in state.repos
        if r.owner.type == "Organization" and low in {m.lower() for m in r.owner.members}
    ]
    if "type" in query:
        kind = query["type"]
        if kind == "owner":
            repos = owned
        elif kind == "member":
            repos = via_org
        else:
            repos = owned + via_org
            if kind == "public":
                repos = [r for r in repos if not r.private]
            elif kind == "private":
                repos = [r for r in repos if r.private]
    else:
        affiliation = {
            a.strip()
            for a in query.get("affiliation", "owner,collaborator,organization_member").split(",")
        }
        repos = (owned if "owner" in affiliation else []) + (
            via_org if "organization_member" in affiliation else []
        )
        visibility = query.get("visibility", "all")
        if visibility == "public":
            repos = [r for r in repos if not r.private]
        elif visibility == "private":
            repos = [r for r in repos if r.private]
    for name, keep in (("since", lambda t, b: t > b), ("before", lambda t, b: t < b)):
        if name in query:
            bound = _parse_instant(query[name])
            if bound is not None:
                repos = [r for r in repos if keep(r.updated_at, bound[0])]
    repos = _sorted_repos(request, repos, "full_name")
    base = _base_url(request)
    return _paginate(request, repos, lambda r: repo_json(state, r, base, login, "repository"))


async def get_repo(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    repo = state.repo(request.match_info["owner"], request.match_info["repo"])
    if repo is None or not state.can_see(repo, login):
        return _error(404, "Not Found", DOCS_GET_REPO)
    return _json_response(repo_json(state, repo, _base_url(request), login, "full"))


async def get_repo_by_id(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    try:
        repo = state.repo_by_id(int(request.match_info["id"]))
    except ValueError:
        repo = None
    if repo is None or not state.can_see(repo, login):
        return _error(404, "Not Found", DOCS_GET_REPO)
    return _json_response(repo_json(state, repo, _base_url(request), login, "full"))


def _public_user_json(state: GitHubState, account: Account, base: str) -> dict[str, Any]:
    data = _user_json(account, base)
    data.update(
        {
            "name": account.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": sum(1 for r in state.repos_of(account.login) if not r.private),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": _iso(account.created_at),
            "updated_at": _iso(account.created_at),
        }
    )
    return data


async def get_user(request: web.Request) -> web.Response:
    state = _state(request)
    account = state.account(request.match_info["username"])
    if account is None:
        return _error(404, "Not Found", DOCS_GET_USER)
    return _json_response(_public_user_json(state, account, _base_url(request)))


async def get_authenticated_user(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    if login is None:
        return _error(401, "Requires authentication", DOCS_AUTH_USER)
    account = state.account(login)
    if account is None:
        return _error(404, "Not Found", DOCS_AUTH_USER)
    data = _public_user_json(state, account, _base_url(request))
    data["user_view_type"] = "private"
    owned_private = sum(1 for r in state.repos_of(login) if r.private)
    data.update(
        {
            "private_gists": 0,
            "total_private_repos": owned_private,
            "owned_private_repos": owned_private,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
        }
    )
    return _json_response(data)


async def rate_limit(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    resources = {}
    for name in ("core", "search", "code_search"):
        b = state.bucket(name, login)
        resources[name] = {
            "limit": b.limit,
            "used": b.used,
            "remaining": b.remaining,
            "reset": b.reset,
        }
    core = resources["core"]
    reset = core["reset"]
    for name, limit in (
        ("graphql", 5000 if login else 0),
        ("integration_manifest", 5000),
        ("source_import", 100),
        ("code_scanning_upload", 1000),
        ("actions_runner_registration", 10000),
        ("scim", 15000),
        ("dependency_snapshots", 100),
        ("code_scanning_autofix", 10),
    ):
        resources[name] = {"limit": limit, "used": 0, "remaining": limit, "reset": reset}
    ordered = {
        k: resources[k]
        for k in (
            "core",
            "search",
            "graphql",
            "integration_manifest",
            "source_import",
            "code_scanning_upload",
            "actions_runner_registration",
            "scim",
            "dependency_snapshots",
            "code_search",
            "code_scanning_autofix",
        )
    }
    return _json_response({"resources": ordered, "rate": dict(core)})


def _resolve_scopes(
    state: GitHubState, query: _Query, login: str | None
) -> tuple[set[str] | None, set[int] | None, bool]:
    """(owner logins, repo ids, ok). None means unscoped."""
    owners: set[str] | None = None
    repo_ids: set[int] | None = None
    for value in query.users:
        account = state.account(value)
        if account is None:
            return None, None, False
        owners = (owners or set()) | {account.login.lower()}
    for value in query.repos:
        owner, _, name = value.partition("/")
        repo = state.repo(owner, name) if name else None
        if repo is None or not state.can_see(repo, login):
            return None, None, False
        repo_ids = (repo_ids or set()) | {repo.id}
    return owners, repo_ids, True


def _score_repo(repo: Repo, query: _Query) -> float | None:
    """Best-match score of ``repo`` for the text terms, or None when a term misses."""
    fields = query.in_fields or {"name", "description", "topics"}
    name_words = _words(repo.name) if "name" in fields else []
    desc_words = _words(repo.description or "") if "description" in fields else []
    topic_words = [w for t in repo.topics for w in _words(t)] if "topics" in fields else []
    readme_words = (
        _words(repo.files.get("README.md", b"").decode("utf-8", "replace"))
        if "readme" in fields
        else []
    )
    score = 1.0
    for term in query.terms:
        hit = 0.0
        if _contains_seq(name_words, term):
            hit += 10.0 + (5.0 if name_words == term else 0.0)
        if _contains_seq(desc_words, term):
            hit += 3.0
        if _contains_seq(topic_words, term):
            hit += 2.0
        if _contains_seq(readme_words, term):
            hit += 1.0
        if hit == 0.0:
            return None
        score += hit
    everything = name_words + desc_words + topic_words + readme_words
    if any(_contains_seq(everything, term) for term in query.negated_terms):
        return None
    return round(score + math.log1p(repo.stargazers_count) / 10, 6)


async def search_repositories(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    q = request.query.get("q", "")
    if not q.strip():
        return _validation_failed([{"resource": "Search", "field": "q", "code": "missing"}])
    query = _parse_query(q)
    owners, repo_ids, ok = _resolve_scopes(state, query, login)
    if not ok:
        return _validation_failed(
            [
                {
                    "message": UNSEARCHABLE_MESSAGE,
                    "resource": "Search",
                    "field": "q",
                    "code": "invalid",
                }
            ]
        )
    page, per_page = _paging(request)
    cap = state.max_search_results
    if (page - 1) * per_page >= cap:
        return _error(422, SEARCH_CAP_MESSAGE, DOCS_SEARCH)

    candidates: Iterable[Repo]
    if owners is not None or repo_ids is not None:
        pool: dict[int, Repo] = {}
        for owner in owners or ():
            pool.update((r.id, r) for r in state.repos_of(owner))
        for rid in repo_ids or ():
            found = state.repo_by_id(rid)
            assert found is not None  # _resolve_scopes names only repositories that exist
            pool[rid] = found
        candidates = pool.values()
    else:
        candidates = state.repos
    scored: list[tuple[float, Repo]] = []
    for repo in candidates:
        if not state.can_see(repo, login):
            continue
        if query.fork is None or query.fork == "false":
            if repo.fork:
                continue
        elif query.fork == "only" and not repo.fork:
            continue
        if query.languages and (repo.language or "").lower() not in query.languages:
            continue
        if not all(f(repo) for f in query.filters):
            continue
        if query.excluded and (
            repo.owner.login.lower() in query.excluded or repo.full_name.lower() in query.excluded
        ):
            continue
        score = _score_repo(repo, query)
        if score is None:
            continue
        scored.append((score, repo))

    sort = request.query.get("sort")
    order = request.query.get("order", "desc")
    sort_keys: dict[str, Callable[[Repo], Any]] = {
        "stars": lambda r: r.stargazers_count,
        "forks": lambda r: r.forks_count,
        "help-wanted-issues": lambda r: r.help_wanted_issues_count,
        "updated": lambda r: r.updated_at,
    }
    if sort in sort_keys:
        key = sort_keys[sort]
        sign = -1 if order != "asc" else 1
        scored.sort(key=lambda sr: (sign * key(sr[1]), sr[1].id))
    else:
        scored.sort(key=lambda sr: (-sr[0], -sr[1].stargazers_count, sr[1].id))

    total = len(scored)
    start = (page - 1) * per_page
    base = _base_url(request)
    items = []
    for score, repo in scored[start : start + per_page]:
        item = repo_json(state, repo, base, login, "search")
        item["score"] = score
        items.append(item)
    response = _json_response({"total_count": total, "incomplete_results": False, "items": items})
    last_page = max(1, math.ceil(min(total, cap) / per_page))
    link = _link_header(request, page, last_page) if total else None
    if link:
        response.headers["Link"] = link
    return response


async def search_code(request: web.Request) -> web.Response:
    state, login = _state(request), _login(request)
    q = request.query.get("q", "")
    if not q.strip():
        return _validation_failed(
            [{"resource": "Search", "field": "q", "code": "missing"}], DOCS_SEARCH_CODE
        )
    query = _parse_query(q)
    owners, repo_ids, ok = _resolve_scopes(state, query, login)
    if not ok:
        return _validation_failed(
            [
                {
                    "message": UNSEARCHABLE_MESSAGE,
                    "resource": "Search",
                    "field": "q",
                    "code": "invalid",
                }
            ],
            DOCS_SEARCH_CODE,
        )
    scoped = owners is not None or repo_ids is not None
    file_qualifiers = query.paths or query.filenames or query.extensions
    if not query.terms and not (scoped and file_qualifiers):
        # "You must always include at least one search term when searching source code."
        return _validation_failed(
            [
                {
                    "message": "Search text is required when searching code. Searches that "
                    "use qualifiers only are not allowed.",
                    "resource": "Search",
                    "field": "q",
                    "code": "invalid",
                }
            ],
            DOCS_SEARCH_CODE,
        )
    per_page = _int_param(request, "per_page", 30)
    per_page = 30 if per_page <= 0 else min(per_page, 100)
    page = max(1, _int_param(request, "page", 1))
    cap = state.max_search_results
    if page * per_page > cap:
        return _error(422, SEARCH_CAP_MESSAGE, DOCS_SEARCH)

    if scoped:
        pool: dict[int, Repo] = {}
        for owner in owners or ():
            pool.update((r.id, r) for r in state.repos_of(owner))
        for rid in repo_ids or ():
            found = state.repo_by_id(rid)
            assert found is not None  # _resolve_scopes names only repositories that exist
            pool[rid] = found
        candidates: Iterable[Repo] = sorted(pool.values(), key=lambda r: r.id)
    else:
        candidates = state.repos
    hits: list[tuple[float, Repo, str, bytes]] = []
    for repo in candidates:
        if repo.fork or not state.can_see(repo, login):
            continue
        for path, data in repo.files.items():
            if len(data) >= 384 * 1024 or _is_binary(data):
                continue
            low_path = path.lower()
            filename = low_path.rsplit("/", 1)[-1]
            if query.paths and not any(
                low_path.startswith(p + "/") or low_path == p for p in query.paths
            ):
                continue
            if query.filenames and filename not in query.filenames:
                continue
            if query.extensions and filename.rsplit(".", 1)[-1] not in query.extensions:
                continue
            if query.languages and _language_of(filename) not in query.languages:
                continue
            score = 1.0
            if query.terms:
                in_fields = query.in_fields or {"file"}
                words = _file_words(data) if "file" in in_fields else []
                path_words = _words(path) if "path" in in_fields else []
                for term in query.terms:
                    if _contains_seq(words, term):
                        score += 1.0
                    elif _contains_seq(path_words, term):
                        score += 0.5
                    else:
                        score = 0.0
                        break
            if score:
                hits.append((score, repo, path, data))
    hits.sort(key=lambda h: (-h[0], h[1].id, h[2]))
    total = len(hits)
    start = (page - 1) * per_page
    base = _base_url(request)
    items = []
    for score, repo, path, data in hits[start : start + per_page]:
        sha = blob_sha(data)
        items.append(
            {
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "sha": sha,
                "url": f"{base}/repositories/{repo.id}/contents/{path}?ref={repo.commit_sha}",
                "git_url": f"{base}/repositories/{repo.id}/git/blobs/{sha}",
                "html_url": f"https://github.com/{repo.full_name}/blob/{repo.commit_sha}/{path}",
                "repository": _search_code_repo_json(repo, base),
                "score": score,
            }
        )
    response = _json_response({"total_count": total, "incomplete_results": False, "items": items})
    # Code search refuses a page that would reach past the cap, so its last page is the
    # last one that ends at or before it.
    last_page = max(1, min(math.ceil(total / per_page), cap // per_page))
    link = (
        _link_header(
            request,
            page,
            last_page,
            per_page_override=per_page if "per_page" in request.query else None,
        )
        if total
        else None
    )
    if link:
        response.headers["Link"] = link
    return response


_EXT_LANGUAGES = {
    "py": "python",
    "go": "go",
    "rs": "rust",
    "js": "javascript",
    "ts": "typescript",
    "c": "c",
    "md": "markdown",
    "txt": "text",
}


def _language_of(filename: str) -> str:
    return _EXT_LANGUAGES.get(filename.rsplit(".", 1)[-1], "")


def _b64_lines(data: bytes) -> str:
    """Base64 with a newline after every 60 characters, as GitHub (Ruby's encode64) sends."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def _content_links(
    repo: Repo, path: str, ref: str, base: str, kind: str, sha: str
) -> dict[str, Any]:
    api = f"{base}/repos/{repo.full_name}/contents/{path}?ref={ref}"
    tree_or_blob = "blob" if kind == "file" else "tree"
    html = f"https://github.com/{repo.full_name}/{tree_or_blob}/{ref}/{path}"
    git = f"{base}/repos/{repo.full_name}/git/{'blobs' if kind == 'file' else 'trees'}/{sha}"
    return {
        "url": api,
        "html_url": html,
        "git_url": git,
        "download_url": (
            f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}"
            if kind == "file"
            else None
        ),
        "_links": {"self": api, "git": git, "html": html},
    }


def _entry_json(repo: Repo, path: str, ref: str, base: str, data: bytes | None) -> dict[str, Any]:
    kind = "file" if data is not None else "dir"
    sha = (
        blob_sha(data)
        if data is not None
        else hashlib.sha1(f"tree:{repo.id}:{path}".encode()).hexdigest()
    )
    entry: dict[str, Any] = {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "size": len(data) if data is not None else 0,
    }
    links = _content_links(repo, path, ref, base, kind, sha)
    entry.update({k: links[k] for k in ("url", "html_url", "git_url", "download_url")})
    entry["type"] = kind
    entry["_links"] = links["_links"]
    return entry


async def _contents(request: web.Request, repo: Repo | None) -> web.StreamResponse:
    state, login = _state(request), _login(request)
    if repo is None or not state.can_see(repo, login):
        return _error(404, "Not Found", DOCS_GET_CONTENT)
    ref = request.query.get("ref") or repo.default_branch
    if ref not in (repo.default_branch, repo.commit_sha, f"refs/heads/{repo.default_branch}"):
        return _error(404, f"No commit found for the ref {ref}", DOCS_GET_CONTENT)
    path = request.match_info.get("path", "").strip("/")
    base = _base_url(request)
    data = repo.files.get(path)
    if data is not None:
        accept = request.headers.get("Accept", "")
        if "application/vnd.github.raw" in accept or "application/vnd.github.v3.raw" in accept:
            return web.Response(
                body=data,
                headers={"Content-Type": "application/vnd.github.raw; charset=utf-8"},
            )
        sha = blob_sha(data)
        links = _content_links(repo, path, ref, base, "file", sha)
        body = {
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "size": len(data),
            "url": links["url"],
            "html_url": links["html_url"],
            "git_url": links["git_url"],
            "download_url": links["download_url"],
            "type": "file",
            "content": _b64_lines(data),
            "encoding": "base64",
            "_links": links["_links"],
        }
        return _json_response(body)
    prefix = f"{path}/" if path else ""
    children: dict[str, bytes | None] = {}
    for file_path, file_data in repo.files.items():
        if not file_path.startswith(prefix):
            continue
        rest = file_path[len(prefix) :]
        head, sep, _ = rest.partition("/")
        child = prefix + head
        children[child] = None if sep else file_data
    if not children:
        return _error(404, "Not Found", DOCS_GET_CONTENT)
    entries = [_entry_json(repo, p, ref, base, d) for p, d in sorted(children.items())]
    return _json_response(entries)


async def get_contents(request: web.Request) -> web.StreamResponse:
    repo = _state(request).repo(request.match_info["owner"], request.match_info["repo"])
    return await _contents(request, repo)


async def get_contents_by_id(request: web.Request) -> web.StreamResponse:
    try:
        repo = _state(request).repo_by_id(int(request.match_info["id"]))
    except ValueError:
        repo = None
    return await _contents(request, repo)


# --------------------------------------------------------------------------------------
# App and fault helpers
# --------------------------------------------------------------------------------------


def make_app(state: GitHubState) -> web.Application:
    app = web.Application(
        middlewares=[controls_middleware(state.controls), github_middleware(state)]
    )
    app[STATE_KEY] = state
    r = app.router
    r.add_get("/rate_limit", rate_limit)
    r.add_get("/user", get_authenticated_user)
    r.add_get("/user/repos", list_authenticated_repos)
    r.add_get("/user/{id:\\d+}/repos", list_user_repos_by_id)
    r.add_get("/users/{username}", get_user)
    r.add_get("/users/{username}/repos", list_user_repos)
    r.add_get("/orgs/{org}/repos", list_org_repos)
    r.add_get("/organizations/{id}/repos", list_org_repos_by_id)
    r.add_get("/repos/{owner}/{repo}", get_repo)
    r.add_get("/repos/{owner}/{repo}/contents", get_contents)
    r.add_get("/repos/{owner}/{repo}/contents/{path:.*}", get_contents)
    r.add_get("/repositories/{id}", get_repo_by_id)
    r.add_get("/repositories/{id}/contents", get_contents_by_id)
    r.add_get("/repositories/{id}/contents/{path:.*}", get_contents_by_id)
    r.add_get("/search/repositories", search_repositories)
    r.add_get("/search/code", search_code)
    return app


def _fault_rate_headers(limit: int, reset: int, resource: str) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-used": str(limit),
        "x-ratelimit-resource": resource,
    }


def primary_rate_limit_fault(
    state: GitHubState,
    reset_in: float = 1.0,
    *,
    resource: str = "core",
    authenticated: bool = True,
    times: int = 1,
    path_prefix: str | None = None,
    status: int = 403,
) -> int:
    """Inject GitHub's primary-rate-limit answer for the next ``times`` requests.

    403 (GitHub's usual status; its docs allow 429 too) with ``x-ratelimit-remaining: 0``,
    ``x-ratelimit-reset`` = now + ``reset_in`` (rounded up to whole epoch seconds) and the
    body ``{"message": "API rate limit exceeded for user ID ...", "documentation_url": ...,
    "status": "403"}``. Returns the reset epoch. The real bucket is untouched; see
    :func:`exhaust_rate_limit` for that.
    """
    reset = math.ceil(time.time() + reset_in)
    login = state.authenticated_login if authenticated else None
    limit = state.limit_for(resource, login)
    if login is not None:
        account = state.account(login)
        message = f"API rate limit exceeded for user ID {account.id if account else 0}."
    else:
        message = (
            "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated "
            "requests get a higher rate limit. Check out the documentation for more details.)"
        )
    state.controls.inject(
        status,
        headers=_fault_rate_headers(limit, reset, resource),
        body={"message": message, "documentation_url": DOCS_RATE_LIMITS, "status": str(status)},
        times=times,
        path_prefix=path_prefix,
    )
    return reset


def secondary_rate_limit_fault(
    state: GitHubState,
    retry_after: int = 1,
    *,
    times: int = 1,
    path_prefix: str | None = None,
    status: int = 403,
) -> None:
    """Inject GitHub's secondary-rate-limit answer for the next ``times`` requests.

    403 (or 429) with ``retry-after: <seconds>``, ``x-ratelimit-remaining`` still above 0,
    and the body ``{"message": "You have exceeded a secondary rate limit. Please wait a few
    minutes before you try again. ...", "documentation_url": ...#about-secondary-rate-limits,
    "status": "403"}``.
    """
    login = state.authenticated_login
    bucket = state.bucket("core", login)
    headers = _rate_headers(bucket, "core")
    headers["retry-after"] = str(retry_after)
    message = SECONDARY_MESSAGE
    state.controls.inject(
        status,
        headers=headers,
        body={"message": message, "documentation_url": DOCS_SECONDARY, "status": str(status)},
        times=times,
        path_prefix=path_prefix,
    )


def server_error_fault(
    state: GitHubState, status: int = 502, *, times: int = 1, path_prefix: str | None = None
) -> None:
    """Inject a 502 (``{"message": "Server Error"}``) or 503 (``{"message": "Service
    Unavailable", ...}``, the shape of the spec's ``service_unavailable`` response)."""
    if status == 503:
        body: dict[str, Any] = {
            "message": "Service Unavailable",
            "documentation_url": DOCS_REST,
            "status": "503",
        }
    else:
        body = {"message": "Server Error"}
    state.controls.inject(
        status,
        body=body,
        times=times,
        path_prefix=path_prefix,
    )


def exhaust_rate_limit(
    state: GitHubState,
    resource: str = "core",
    *,
    authenticated: bool = True,
    reset_in: float = 1.0,
) -> RateBucket:
    """Spend the real bucket: the fake answers 403 until ``reset_in`` seconds pass."""
    login = state.authenticated_login if authenticated else None
    bucket = state.bucket(resource, login)
    bucket.used = bucket.limit
    bucket.reset = math.ceil(time.time() + reset_in)
    return bucket


__all__ = [
    "Account",
    "GitHubState",
    "RateBucket",
    "Repo",
    "blob_sha",
    "exhaust_rate_limit",
    "make_app",
    "make_dataset",
    "primary_rate_limit_fault",
    "repo_json",
    "secondary_rate_limit_fault",
    "server_error_fault",
]
