"""google.drive against the fake Drive v3 (tests/fakes/google.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    RateLimited,
    RetryPolicy,
    UnsupportedOption,
)
from asyncrepo.repositories.google.drive import LIST_FIELDS, Files, drive_string
from asyncrepo.repository import PageRequest
from tests.fakes._common import FakeControls, serve
from tests.fakes.google import (
    DOC,
    DRIVE_READONLY,
    FOLDER,
    GMAIL_READONLY,
    SHEET,
    GoogleState,
    make_app,
    parse_drive_query,
    query_strings,
    tokenize,
)

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0, rate_limit_floor=0.01)
START = datetime(2025, 3, 1, tzinfo=UTC)
N_ROOT = 230


def make_state() -> GoogleState:
    state = GoogleState()
    for n in range(N_ROOT):
        state.add_file(
            f"note {n:03d} {'alpha' if n % 3 == 0 else 'beta'}",
            content=f"body of note {n}".encode(),
            modified=START + timedelta(hours=n, microseconds=n * 1001),
            created=START - timedelta(days=n % 17),
        )
    folder = state.add_file("Projects", mime_type=FOLDER)
    state.folder_id = folder.id  # type: ignore[attr-defined]
    for n in range(30):
        state.add_file(f"project file {n}", parents=[folder.id], modified=START + timedelta(n))
    for n in range(5):
        state.add_file(f"trashed {n} alpha", trashed=True)
    doc = state.add_file(
        "Quarterly report",
        mime_type=DOC,
        exports={"text/plain": b"Revenue grew.\r\nCosts fell."},
        description="the Q3 report",
    )
    sheet = state.add_file(
        "Budget", mime_type=SHEET, exports={"text/csv": b"item,amount\r\ntea,3\r\n"}
    )
    state.add_file("Valentine's Day \\ back\\slash plans", content=b"roses")
    state.drives.add("0ADRIVE")
    for n in range(12):
        state.add_file(f"team file {n}", drive_id="0ADRIVE", parents=["0ADRIVE"])
    state.doc_id, state.sheet_id = doc.id, sheet.id  # type: ignore[attr-defined]
    return state


class Site:
    def __init__(self, base: str, state: GoogleState) -> None:
        self.base, self.state = base, state
        self.token = state.issue_token()

    def files(self, **kwargs: Any) -> Files:
        kwargs.setdefault("retry", FAST)
        if "credentials" not in kwargs and "credentials_file" not in kwargs:
            kwargs.setdefault("token", self.token)
        return Files(base_url=self.base, **kwargs)

    @property
    def controls(self) -> FakeControls:
        return self.state.controls

    def list_requests(self) -> list[Any]:
        return [r for r in self.controls.requests if r.path == "/drive/v3/files"]


@pytest.fixture(scope="module")
def state() -> GoogleState:
    return make_state()


@pytest.fixture
async def site(state: GoogleState) -> AsyncIterator[Site]:
    state.controls.requests.clear()
    state.controls.injections.clear()
    state.grants.clear()
    async with serve(make_app(state)) as base:
        yield Site(base, state)


def visible(state: GoogleState, **filters: Any) -> list[str]:
    """Ids the fake would list for My Drive, untrashed, in insertion order."""
    return [f.id for f in state.files.values() if f.drive_id is None and not f.trashed]


async def pages_of(repo: Files, **kwargs: Any) -> list[list[str]]:
    return [[item.identifier for item in page] async for page in repo.list_pages(**kwargs)]


# -- listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_pages_lose_nothing_and_repeat_nothing(site: Site, page_size: int) -> None:
    folder = site.state.folder_id  # type: ignore[attr-defined]
    expected = [f.id for f in site.state.files.values() if folder in f.parents]
    async with site.files(folder=folder) as repo:
        pages = await pages_of(repo, page_size=page_size)
    ids = [i for page in pages for i in page]
    assert ids == expected and len(set(ids)) == 30
    assert all(len(page) == page_size for page in pages[:-1])
    sent = site.list_requests()
    assert all(r.query["pageSize"] == str(page_size) for r in sent)
    assert all(r.query["q"] == f"'{folder}' in parents and trashed = false" for r in sent)


async def test_whole_listing_asks_minimal_fields_and_big_pages(site: Site) -> None:
    async with site.files() as repo:
        items = [item async for item in repo.list(page_size=5000)]
    assert [i.identifier for i in items] == visible(site.state)
    sent = site.list_requests()
    assert len(sent) == 1  # 267 files < Drive's 1,000 cap
    assert sent[0].query["pageSize"] == "1000"
    assert sent[0].query["fields"] == LIST_FIELDS
    assert sent[0].query["q"] == "trashed = false"
    assert not any(i.title and i.title.startswith("trashed") for i in items)


async def test_abandoned_listing_cancels_its_prefetch(site: Site) -> None:
    async with site.files() as repo:
        stream = repo.list_pages(page_size=5)
        first = await anext(stream)
        assert len(first) == 5
        await stream.aclose()
        assert not [t for t in repo.background_tasks if not t.done()]
        pages = len(site.list_requests())
    assert pages <= 2  # the first page and at most the one prefetched behind it


async def test_item_fields(site: Site) -> None:
    async with site.files() as repo:
        items = {i.title: i async for i in repo.list()}
    note = items["note 005 beta"]
    assert note.url == f"https://drive.google.com/file/d/{note.identifier}/view?usp=drivesdk"
    assert note.author == "Ada Lovelace"
    assert note.updated_at == START + timedelta(hours=5, microseconds=5000)
    assert note.created_at == START - timedelta(days=5)
    assert note.kind == "file" and note.source == "google.drive"
    assert items["Projects"].kind == "folder"
    assert items["Quarterly report"].text == "the Q3 report"


def test_to_item_sets_every_slot() -> None:
    from asyncrepo.item import Item

    repo = Files(token="t")
    full = {
        "id": "f1",
        "name": "n",
        "mimeType": FOLDER,
        "createdTime": "2025-01-01T00:00:00.000Z",
        "modifiedTime": "2025-01-02T00:00:00.000Z",
        "webViewLink": "https://drive.google.com/drive/folders/f1",
        "lastModifyingUser": {"emailAddress": "a@example.com"},
    }
    for raw in (full, {"id": 7}):
        item = repo.to_item(raw)
        for slot in Item.__slots__:
            getattr(item, slot)  # AttributeError if a slot was left unset
    item = repo.to_item(full)
    assert (item.author, item.kind, item.identifier) == ("a@example.com", "folder", "f1")
    assert repo.to_item({"id": 7}).identifier == "7"


async def test_since_is_sent_as_modified_time(site: Site) -> None:
    since = START + timedelta(hours=200, microseconds=200_500)
    async with site.files() as repo:
        ids = [i.identifier async for i in repo.list(since=since)]
    expected = [
        f.id
        for f in site.state.files.values()
        if f.drive_id is None and not f.trashed and f.modified >= since.replace(microsecond=200_000)
    ]
    assert ids == expected and 0 < len(ids) < len(visible(site.state)) - 100
    q = site.list_requests()[0].query["q"]
    assert q == "trashed = false and modifiedTime >= '2025-03-09T08:00:00.200Z'"


async def test_search_is_native_full_text(site: Site) -> None:
    async with site.files() as repo:
        titles = [i.title async for i in repo.search("alpha", page_size=10)]
        revenue = [i.title async for i in repo.search("revenue")]
    assert len(titles) == 77 and all(t and "alpha" in t for t in titles)
    assert revenue == ["Quarterly report"]  # found in the exported text
    assert site.list_requests()[0].query["q"] == "trashed = false and fullText contains 'alpha'"


@pytest.mark.parametrize(
    "query",
    ["Valentine's", "back\\slash", "' or trashed = true or name contains '", "\\'", "x\\"],
)
async def test_hostile_search_text_stays_one_literal(site: Site, query: str) -> None:
    async with site.files() as repo:
        titles = [i.title async for i in repo.search(query)]
    _q, tree = site.state.parsed_queries[-1]
    assert query_strings(tree) == [query]
    assert all(t and not t.startswith("trashed") for t in titles)
    if query == "Valentine's":
        assert titles == ["Valentine's Day \\ back\\slash plans"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=1, max_size=40), folder=st.text(min_size=1, max_size=10))
def test_query_escaping_fuzz(text: str, folder: str) -> None:
    literal = drive_string(text)
    assert tokenize(literal) == [("string", text)]
    if not folder.strip():
        return
    repo = Files(token="t", folder=folder)
    since = datetime(2024, 1, 1, tzinfo=UTC)
    q = repo.query(PageRequest(query=text, page_size=10, since=since))
    tree = parse_drive_query(q)
    assert tree[0] == "and" and len(tree[1]) == 4  # nothing in the text changed the structure
    assert query_strings(tree) == [folder.strip(), text]


async def test_order_is_pushed_down(site: Site) -> None:
    async with site.files() as repo:
        items = [i async for i in repo.list(order="-updated")]
        by_name = [i.title async for i in repo.list(order="name")]
    stamps = [i.updated_at for i in items]
    assert stamps == sorted(stamps, reverse=True)  # type: ignore[type-var]
    assert by_name == sorted(by_name)  # type: ignore[type-var]
    assert site.list_requests()[0].query["orderBy"] == "modifiedTime desc"
    async with site.files() as repo:
        with pytest.raises(UnsupportedOption, match="relevance"):
            [i async for i in repo.search("alpha", order="-updated")]


async def test_mime_types_scope(site: Site) -> None:
    async with site.files(mime_types=[DOC, SHEET]) as repo:
        titles = sorted([i.title async for i in repo.list()])  # type: ignore[type-var]
    assert titles == ["Budget", "Quarterly report"]
    assert site.list_requests()[0].query["q"] == (
        f"(mimeType = '{DOC}' or mimeType = '{SHEET}') and trashed = false"
    )


async def test_include_trashed(site: Site) -> None:
    async with site.files(include_trashed=True) as repo:
        n = len([i async for i in repo.list()])
    assert n == len([f for f in site.state.files.values() if f.drive_id is None])
    assert "q" not in site.list_requests()[0].query


async def test_shared_drive(site: Site) -> None:
    async with site.files(drive="0ADRIVE") as repo:
        titles = [i.title async for i in repo.list(page_size=5)]
        one = await repo.get(next(f.id for f in site.state.files.values() if f.drive_id))
    assert titles == [f"team file {n}" for n in range(12)]
    assert one.raw["driveId"] == "0ADRIVE"
    query = site.list_requests()[0].query
    assert query["corpora"] == "drive" and query["driveId"] == "0ADRIVE"
    assert query["includeItemsFromAllDrives"] == "true" and query["supportsAllDrives"] == "true"
    async with site.files(all_drives=True) as repo:
        n = len([i async for i in repo.list()])
    assert n == len(visible(site.state)) + 12


# -- get and content --------------------------------------------------------------------------


async def test_get(site: Site) -> None:
    folder = site.state.folder_id  # type: ignore[attr-defined]
    inside = next(f for f in site.state.files.values() if folder in f.parents)
    async with site.files() as repo:
        item = await repo.get(inside.id)
        assert item.title == inside.name and item.author == "Ada Lovelace"
        with pytest.raises(ItemNotFound) as caught:
            await repo.get("nope")
        assert caught.value.identifier == "nope" and caught.value.status == 404
    async with site.files(folder=folder) as repo:
        assert (await repo.get(inside.id)).identifier == inside.id
        with pytest.raises(ItemNotFound, match="not in folder"):
            await repo.get(site.state.doc_id)  # type: ignore[attr-defined]
    got = [r for r in site.controls.requests if r.path.startswith("/drive/v3/files/")]
    assert (
        got[0].query["supportsAllDrives"] == "true"
        and "lastModifyingUser" in got[0].query["fields"]
    )


async def test_content_streams_media_and_exports_docs(site: Site) -> None:
    state = site.state
    note = next(f for f in state.files.values() if f.name == "note 003 alpha")
    async with site.files() as repo:
        item = await repo.get(note.id)
        assert await repo.content(item) == b"body of note 3"
        assert await repo.content(note.id, max_bytes=4) == b"body"
        doc = await repo.get(state.doc_id)  # type: ignore[attr-defined]
        assert await repo.content(doc) == b"Revenue grew.\r\nCosts fell."
        sheet = await repo.get(state.sheet_id)  # type: ignore[attr-defined]
        chunks = [c async for c in repo.iter_content(sheet, chunk_size=4)]
        assert b"".join(chunks) == b"item,amount\r\ntea,3\r\n"
        folder = await repo.get(state.folder_id)  # type: ignore[attr-defined]
        with pytest.raises(UnsupportedOption):
            await repo.content(folder)
        with pytest.raises(ItemNotFound):
            await repo.content("missing-id")
    exports = [r for r in site.controls.requests if r.path.endswith("/export")]
    assert [r.query["mimeType"] for r in exports] == ["text/plain", "text/csv"]
    media = [r for r in site.controls.requests if r.query.get("alt") == "media"]
    assert len(media) == 2


# -- errors and credentials -------------------------------------------------------------------


def _error(status: int, reason: str, message: str = "x") -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "usageLimits", "reason": reason}],
            "status": "PERMISSION_DENIED" if status == 403 else "RESOURCE_EXHAUSTED",
        }
    }


async def test_rate_limits_are_retried(site: Site) -> None:
    site.controls.inject(403, body=_error(403, "userRateLimitExceeded"), times=2)
    site.controls.inject(429, body=_error(429, "rateLimitExceeded"), headers={"Retry-After": "0"})
    async with site.files() as repo:
        n = len([i async for i in repo.list()])
    assert n == len(visible(site.state))
    assert [r.status for r in site.list_requests()] == [403, 403, 429, 200]


async def test_rate_limit_that_persists_is_rate_limited(site: Site) -> None:
    site.controls.inject(403, body=_error(403, "rateLimitExceeded", "Rate Limit Exceeded"), times=9)
    async with site.files(retry=RetryPolicy(attempts=3, backoff=0.01, rate_limit_floor=0.01)) as r:
        with pytest.raises(RateLimited, match="Rate Limit Exceeded"):
            await r.get("x")
    assert len(site.controls.requests) == 3


async def test_retry_after_is_read(site: Site) -> None:
    """A stated wait past the retry cap raises at once, carrying the vendor's wait."""
    site.controls.inject(
        429, body=_error(429, "rateLimitExceeded"), headers={"Retry-After": "30"}, times=3
    )
    policy = RetryPolicy(attempts=3, backoff=0.01, max_wait=5.0)
    async with site.files(retry=policy) as repo:
        with pytest.raises(RateLimited) as caught:
            await repo.get("x")
    assert caught.value.retry_after == 30.0
    assert len(site.controls.requests) == 1


async def test_other_403_is_permission_denied_and_400_invalid_query(site: Site) -> None:
    site.controls.inject(403, body=_error(403, "domainPolicy", "The domain forbids it"))
    async with site.files() as repo:
        with pytest.raises(asyncrepo.PermissionDenied, match="domain forbids"):
            await repo.get("x")
    async with site.files(folder="f") as repo:
        repo.capabilities  # noqa: B018
        site.controls.inject(400, body=_error(400, "invalid", "Invalid Value"))
        with pytest.raises(InvalidQuery, match="Invalid Value"):
            [i async for i in repo.list()]


async def test_missing_scope_names_it(site: Site) -> None:
    token = site.state.issue_token(frozenset({GMAIL_READONLY}))
    async with site.files(token=token) as repo:
        with pytest.raises(AuthenticationError, match="drive") as caught:
            [i async for i in repo.list()]
    assert DRIVE_READONLY in str(caught.value)
    assert token not in str(caught.value) and token not in repr(caught.value)
    assert len(site.controls.requests) == 1


async def test_static_token_rejected_once(site: Site) -> None:
    async with site.files(token="ya29.revoked-token") as repo:
        with pytest.raises(AuthenticationError, match="cannot be refreshed") as caught:
            await repo.get("x")
    assert caught.value.status == 401 and "ya29.revoked-token" not in str(caught.value)
    assert len(site.controls.requests) == 1


def service_account(tmp_path: Path, state: GoogleState, base: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = "reader@asyncrepo-test.iam.gserviceaccount.com"
    state.service_accounts[email] = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "asyncrepo-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": email,
                "client_id": "1",
                "token_uri": f"{base}/token",
            }
        )
    )
    return path


async def test_service_account_refreshes_on_401(site: Site, tmp_path: Path) -> None:
    pytest.importorskip("google.auth")
    key = service_account(tmp_path, site.state, site.base)
    async with site.files(credentials_file=str(key), subject="boss@example.com") as repo:
        first = [i.identifier async for i in repo.list(page_size=1000)]
        assert len(site.state.grants) == 1
        site.state.tokens.clear()  # every token revoked: the next request gets a 401
        item = await repo.get(first[0])
    assert item.identifier == first[0]
    grants = site.state.grants
    assert len(grants) == 2
    assert grants[0]["sub"] == "boss@example.com"
    assert grants[0]["scope"] == DRIVE_READONLY
    statuses = [(r.path, r.status) for r in site.controls.requests]
    assert statuses[-3][1] == 401 and statuses[-2][0] == "/token" and statuses[-1][1] == 200


async def test_concurrent_first_requests_share_one_token(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("google.auth")
    import asyncio

    key = service_account(tmp_path, site.state, site.base)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    ids = [f.id for f in list(site.state.files.values())[:6]]
    async with site.files(token=None) as repo:
        items = await asyncio.gather(*(repo.get(i) for i in ids))
    assert [i.identifier for i in items] == ids
    assert len(site.state.grants) == 1 and "sub" not in site.state.grants[0]


async def test_content_download_refreshes_on_401(site: Site, tmp_path: Path) -> None:
    pytest.importorskip("google.auth")
    key = service_account(tmp_path, site.state, site.base)
    note = next(f for f in site.state.files.values() if f.name == "note 004 beta")
    async with site.files(token=None, credentials_file=key) as repo:
        item = await repo.get(note.id)
        site.state.tokens.clear()
        assert await repo.content(item) == b"body of note 4"
    assert len(site.state.grants) == 2


async def test_credentials_objects_and_default_credentials(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("google.auth")
    import google.auth
    from google.oauth2 import service_account as sa

    key = service_account(tmp_path, site.state, site.base)
    given = sa.Credentials.from_service_account_file(str(key), scopes=[DRIVE_READONLY])
    async with site.files(token=None, credentials=given, subject="a@example.com") as repo:
        assert len([i async for i in repo.list()]) == len(visible(site.state))
    assert site.state.grants[-1]["sub"] == "a@example.com"

    asked: list[Any] = []

    def default(scopes: Any = None, **kwargs: Any) -> Any:  # no metadata server probing
        asked.append(scopes)
        return sa.Credentials.from_service_account_file(str(key), scopes=scopes), "p"

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setattr(google.auth, "default", default)
    async with site.files(token=None) as repo:
        assert (await repo.get(given_id(site))).identifier == given_id(site)
    assert asked == [[DRIVE_READONLY]]


def given_id(site: Site) -> str:
    return next(iter(site.state.files))


async def test_a_rejected_refresh_is_an_authentication_error(site: Site, tmp_path: Path) -> None:
    pytest.importorskip("google.auth")
    key = service_account(tmp_path, site.state, site.base)
    site.state.service_accounts.clear()  # the token endpoint no longer knows the key
    async with site.files(credentials_file=key) as repo:
        with pytest.raises(AuthenticationError, match="could not refresh"):
            await repo.get("x")


def test_credentials_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="only one"):
        Files(token="t", credentials_file="k.json")
    with pytest.raises(ConfigurationError, match="subject"):
        Files(token="t", subject="a@b.c")
    with pytest.raises(ConfigurationError):
        Files(token="t", drive="D", all_drives=True)
    assert "secret-token" not in repr(Files(token="secret-token").client)


# -- hostile servers --------------------------------------------------------------------------


async def _hostile(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/drive/v3/files", handler)
    async with serve(app) as base:
        yield base


async def test_cyclic_page_tokens_end_in_our_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("pageToken")
        nxt = {None: "A", "A": "B", "B": "A"}[token]
        return web.json_response({"files": [{"id": f"f{token}"}], "nextPageToken": nxt})

    async for base in _hostile(handler):
        async with Files(token="t", base_url=base, retry=FAST) as repo:
            with pytest.raises(MalformedResponse, match="page"):
                [i async for i in repo.list()]


async def test_endless_empty_pages_end_in_our_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        n = int(request.query.get("pageToken", "0"))
        return web.json_response({"files": [], "nextPageToken": str(n + 1)})

    async for base in _hostile(handler):
        async with Files(token="t", base_url=base, retry=FAST) as repo:
            with pytest.raises(MalformedResponse, match="empty pages"):
                [i async for i in repo.list()]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"files": {"id": 1}}', b'{"files": [{"name": "no id"}]}', b"[1, 2]"],
)
async def test_malformed_bodies_end_in_our_error(body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async for base in _hostile(handler):
        async with Files(token="t", base_url=base, retry=FAST) as repo:
            with pytest.raises(MalformedResponse):
                [i async for i in repo.list()]


async def test_partial_pages_continue(site: Site) -> None:
    """Drive may answer an empty page with a next token before the end."""
    pages = iter([[], [{"id": "a"}], [], [], [{"id": "b"}]])

    async def handler(request: web.Request) -> web.Response:
        files = next(pages, None)
        if files is None:
            return web.json_response({"files": []})
        n = int(request.query.get("pageToken", "0"))
        return web.json_response({"files": files, "nextPageToken": str(n + 1)})

    async for base in _hostile(handler):
        async with Files(token="t", base_url=base, retry=FAST) as repo:
            assert [i.identifier async for i in repo.list()] == ["a", "b"]


# -- URIs -------------------------------------------------------------------------------------


def test_uris() -> None:
    repo = asyncrepo.open("gdrive://?folder=F1", token="t")
    assert isinstance(repo, Files) and repo.folder == "F1"
    repo = asyncrepo.open("gdrive://?drive=D1", token="t")
    assert isinstance(repo, Files) and repo.drive == "D1"
    with pytest.raises(ConfigurationError, match="token"):
        asyncrepo.open("gdrive://?token=abc")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("gdrive://somewhere")
