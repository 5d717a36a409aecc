"""The fake Confluence Cloud, checked over the wire with raw aiohttp (no asyncrepo code)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes._common import serve
from tests.fakes.confluence import (
    DEFAULT_EMAIL,
    DEFAULT_TOKEN,
    Clause,
    ConfluenceState,
    CqlError,
    inject_rate_limit,
    make_app,
    make_dataset,
    parse_cql,
)

AUTH = {"Authorization": aiohttp.encode_basic_auth(DEFAULT_EMAIL, DEFAULT_TOKEN)}


@pytest.fixture
def state() -> ConfluenceState:
    return make_dataset(n_pages=150, n_blogposts=30, seed=7)


@pytest.fixture
async def site(state: ConfluenceState) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with serve(make_app(state)) as origin, aiohttp.ClientSession(headers=AUTH) as http:
        yield origin, http


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, Any]:
    async with http.get(url, params=params or None) as resp:
        return resp.status, await resp.json(content_type=None)


def current_pages(state: ConfluenceState, space: str | None = None) -> set[str]:
    return {
        c.id
        for c in state.content.values()
        if c.type == "page" and c.status == "current" and (space is None or c.space_key == space)
    }


def cql_string(text: str) -> str:
    """Quote a string for CQL: backslash-escape backslashes and double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ------------------------------------------------------------------------------ v1 search


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_v1_next_links_joined_to_base_yield_every_page_once(site, state, limit):
    origin, http = site
    seen: list[str] = []
    status, body = await get(
        http,
        f"{origin}/wiki/rest/api/content/search",
        cql="type = page AND space = ENG",
        limit=str(limit),
    )
    requests = 1
    while True:
        assert status == 200
        assert body["_links"]["base"] == f"{origin}/wiki"
        assert body["_links"]["context"] == "/wiki"
        assert body["limit"] == limit and body["size"] == len(body["results"])
        seen.extend(r["id"] for r in body["results"])
        nxt = body["_links"].get("next")
        if nxt is None:
            break
        assert nxt.startswith("/rest/api/content/search?") and "cursor=" in nxt
        status, body = await get(http, body["_links"]["base"] + nxt)
        requests += 1
    assert len(seen) == len(set(seen))
    assert set(seen) == current_pages(state, "ENG")
    assert requests == -(-len(seen) // limit)


async def test_v1_start_is_ignored(site):
    origin, http = site
    url = f"{origin}/wiki/rest/api/content/search"
    _, first = await get(http, url, cql="type = page", limit="7")
    _, by_start = await get(http, url, cql="type = page", limit="7", start="7")
    assert [r["id"] for r in by_start["results"]] == [r["id"] for r in first["results"]]
    _, second = await get(http, first["_links"]["base"] + first["_links"]["next"])
    assert not {r["id"] for r in second["results"]} & {r["id"] for r in first["results"]}


async def test_v1_prev_link_goes_back(site):
    origin, http = site
    _, first = await get(
        http, f"{origin}/wiki/rest/api/content/search", cql="type = page", limit="5"
    )
    assert "prev" not in first["_links"]
    _, second = await get(http, first["_links"]["base"] + first["_links"]["next"])
    _, back = await get(http, second["_links"]["base"] + second["_links"]["prev"])
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]


async def test_v1_limit_is_capped_by_expansions(site):
    origin, http = site
    url = f"{origin}/wiki/rest/api/content/search"
    _, body = await get(http, url, cql="type = page", limit="500", expand="body.storage")
    assert body["limit"] == 50 and body["size"] == 50
    storage = body["results"][0]["body"]["storage"]
    assert storage["representation"] == "storage" and storage["value"].startswith("<p>")
    _, body = await get(http, url, cql="type = page", limit="500", expand="version")
    assert body["limit"] == 200 and "number" in body["results"][0]["version"]
    assert "body" not in body["results"][0] and "body" in body["results"][0]["_expandable"]


async def test_v1_archived_excluded_unless_context_asks(site, state):
    origin, http = site
    url = f"{origin}/wiki/rest/api/content/search"
    archived = {c.id for c in state.content.values() if c.status == "archived"}
    assert archived
    _, body = await get(http, url, cql="type = page", limit="1000")
    ids = {r["id"] for r in body["results"]}
    assert ids == current_pages(state)
    _, body = await get(
        http,
        url,
        cql="type = page",
        limit="1000",
        cqlcontext='{"contentStatuses":["archived"]}',
    )
    assert {r["id"] for r in body["results"]} == archived
    assert {r["status"] for r in body["results"]} == {"archived"}


async def test_v1_type_and_space_filters(site, state):
    origin, http = site
    url = f"{origin}/wiki/rest/api/content/search"
    _, body = await get(http, url, cql="type = blogpost", limit="1000")
    blogs = {c.id for c in state.content.values() if c.type == "blogpost" and c.status == "current"}
    assert {r["id"] for r in body["results"]} == blogs
    assert {r["type"] for r in body["results"]} == {"blogpost"}
    _, body = await get(http, url, cql="type in (page, blogpost)", limit="1000")
    assert {r["id"] for r in body["results"]} == current_pages(state) | blogs
    _, body = await get(http, url, cql='space in (OPS, "HR") AND NOT type = blogpost', limit="1000")
    assert {r["id"] for r in body["results"]} == current_pages(state, "OPS") | current_pages(
        state, "HR"
    )
    _, body = await get(http, url, cql="space.key = HR and type = page", limit="1000")
    assert {r["id"] for r in body["results"]} == current_pages(state, "HR")


async def test_v1_dates_and_order_by(site, state):
    origin, http = site
    url = f"{origin}/wiki/rest/api/content/search"
    _, body = await get(
        http,
        url,
        cql='type = page AND lastmodified >= "2022/01/01" order by lastmodified desc',
        limit="1000",
        expand="version",
    )
    expected = {
        c.id
        for c in state.content.values()
        if c.type == "page" and c.status == "current" and c.last_modified.year >= 2022
    }
    assert expected and {r["id"] for r in body["results"]} == expected
    whens = [r["version"]["when"] for r in body["results"]]
    assert whens == sorted(whens, reverse=True)
    _, body = await get(http, url, cql='created < "2017-01-01 00:00" order by title', limit="1000")
    titles = [r["title"].lower() for r in body["results"]]
    assert titles and titles == sorted(titles)


async def test_v1_text_search_and_search_endpoint(site, state):
    origin, http = site
    target = next(c for c in state.content.values() if c.status == "current" and '"' in c.title)
    word = target.title.split('"')[1]
    cql = f"text ~ {cql_string(target.title)} AND space = {target.space_key}"
    status, body = await get(http, f"{origin}/wiki/rest/api/search", cql=cql, limit="5")
    assert status == 200
    assert body["results"] and body["results"][0]["content"]["id"] == target.id
    first = body["results"][0]
    assert f'"@@@hl@@@{word}@@@endhl@@@"' in first["title"]
    assert first["content"]["title"] == target.title  # the content itself is not marked up
    assert first["url"].startswith(f"/spaces/{target.space_key}/")
    assert body["totalSize"] >= 1 and body["cqlQuery"] == cql
    assert body["_links"]["base"] == f"{origin}/wiki"


async def test_v1_search_endpoint_pages_by_cursor(site, state):
    origin, http = site
    seen: list[str] = []
    status, body = await get(http, f"{origin}/wiki/rest/api/search", cql="type = page", limit="40")
    while True:
        assert status == 200 and body["totalSize"] == len(current_pages(state))
        seen.extend(r["content"]["id"] for r in body["results"])
        if "next" not in body["_links"]:
            break
        assert body["_links"]["next"].startswith("/rest/api/search?")
        status, body = await get(http, body["_links"]["base"] + body["_links"]["next"])
    assert sorted(seen) == sorted(current_pages(state))


# ------------------------------------------------------------------------------ CQL


async def test_cql_escaping_round_trip_over_the_wire(site, state):
    origin, http = site
    for raw in ['say "hi"', "C:\\temp\\dir", 'both \\" mixed', "it's", "(a AND b) OR c"]:
        cql = f"type = page AND text ~ {cql_string(raw)}"
        status, _ = await get(http, f"{origin}/wiki/rest/api/content/search", cql=cql)
        assert status == 200
        assert state.last_cql == cql
        texts = [c for c in state.last_cql_ast.clauses() if c.field == "text"]
        assert texts == [Clause("text", "~", raw)]


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_cql_string_escaping_parses_back_to_the_original(raw):
    query = parse_cql(f"text ~ {cql_string(raw)} AND space = ENG")
    assert [c for c in query.clauses() if c.field == "text"] == [Clause("text", "~", raw)]


@pytest.mark.parametrize(
    "cql",
    [
        "type = page AND (",
        'text ~ "unterminated',
        'text ~ "bad \\q escape"',
        "type = page order by",
        "type page",
        "AND type = page",
        "type in (page, blogpost",
        "order by created",
    ],
)
async def test_malformed_cql_is_400(site, cql):
    origin, http = site
    with pytest.raises(CqlError):
        parse_cql(cql)
    status, body = await get(http, f"{origin}/wiki/rest/api/content/search", cql=cql)
    assert status == 400
    assert body["statusCode"] == 400
    assert body["message"].endswith(f"Could not parse cql : {cql}")
    assert set(body["data"]) >= {"authorized", "valid", "errors", "successful"}


async def test_unknown_cql_field_and_bad_date_are_400(site):
    origin, http = site
    url = f"{origin}/wiki/rest/api/content/search"
    status, body = await get(http, url, cql="bogus = 1")
    assert status == 400 and "No field exists with the name: 'bogus'" in body["message"]
    status, body = await get(http, url, cql='lastmodified > "yesterday"')
    assert status == 400 and body["statusCode"] == 400
    status, body = await get(http, url)
    assert status == 400


def test_cql_precedence_and_structure():
    query = parse_cql("type = page OR space = ENG AND NOT title ~ x order by created desc, title")
    assert query.order_by == (("created", "desc"), ("title", "asc"))
    assert type(query.where).__name__ == "Or"
    assert len(query.clauses()) == 3


# ------------------------------------------------------------------------------ v2


def parse_link_header(value: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]*)>;\s*rel="([^"]+)"', value)}


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_v2_next_joined_to_origin_yields_every_page_once(site, state, limit):
    origin, http = site
    seen: list[str] = []
    url = f"{origin}/wiki/api/v2/pages?limit={limit}&sort=-modified-date&status=current"
    while True:
        async with http.get(url) as resp:
            assert resp.status == 200
            body = await resp.json()
            link = resp.headers.get("Link")
        assert body["_links"]["base"] == f"{origin}/wiki"
        assert len(body["results"]) <= limit
        seen.extend(p["id"] for p in body["results"])
        nxt = body["_links"].get("next")
        if nxt is None:
            assert link is None
            break
        assert nxt.startswith("/wiki/api/v2/pages?")
        assert parse_link_header(link) == {"next": nxt, "base": f"{origin}/wiki"}
        names = [k for k, _ in parse_qsl(urlsplit(nxt).query)]
        assert "cursor" in names and names[-1] != "cursor"
        url = origin + nxt  # NOT _links.base + next: that would double the /wiki
    assert len(seen) == len(set(seen))
    assert set(seen) == current_pages(state)


async def test_v2_next_joined_to_base_is_a_404(site):
    origin, http = site
    _, body = await get(http, f"{origin}/wiki/api/v2/pages", limit="3")
    async with http.get(body["_links"]["base"] + body["_links"]["next"]) as resp:
        assert resp.status == 404


async def test_v2_pages_default_statuses_include_archived(site, state):
    origin, http = site
    _, body = await get(http, f"{origin}/wiki/api/v2/pages", limit="250")
    ids = {p["id"] for p in body["results"]}
    archived = {c.id for c in state.content.values() if c.status == "archived"}
    assert ids == current_pages(state) | archived
    _, body = await get(http, f"{origin}/wiki/api/v2/pages", limit="250", status="archived")
    assert {p["id"] for p in body["results"]} == archived
    _, body = await get(http, f"{origin}/wiki/api/v2/blogposts", limit="250")
    assert {p["status"] for p in body["results"]} == {"current"}


async def test_v2_space_scoping_and_page_shape(site, state):
    origin, http = site
    eng = state.space_by_key("ENG")
    status, body = await get(http, f"{origin}/wiki/api/v2/spaces", keys="ENG,HR")
    assert status == 200 and {s["key"] for s in body["results"]} == {"ENG", "HR"}
    space = next(s for s in body["results"] if s["key"] == "ENG")
    assert space["id"] == str(eng.id) and space["homepageId"] == eng.homepage_id
    _, body = await get(
        http,
        f"{origin}/wiki/api/v2/spaces/{eng.id}/pages",
        limit="250",
        status="current",
        **{"body-format": "storage"},
    )
    assert {p["id"] for p in body["results"]} == current_pages(state, "ENG")
    page = body["results"][0]
    assert page["spaceId"] == str(eng.id)
    assert page["body"]["storage"]["representation"] == "storage"
    assert set(page["version"]) == {"createdAt", "message", "number", "minorEdit", "authorId"}
    assert page["_links"]["webui"].startswith(f"/spaces/ENG/pages/{page['id']}/")
    _, body = await get(
        http, f"{origin}/wiki/api/v2/pages", limit="250", status="current", **{"space-id": eng.id}
    )
    assert {p["id"] for p in body["results"]} == current_pages(state, "ENG")
    assert all(p["body"] == {} for p in body["results"])
    _, body = await get(http, f"{origin}/wiki/api/v2/spaces/{eng.id}/blogposts", limit="250")
    blogs = {
        c.id
        for c in state.content.values()
        if c.type == "blogpost" and c.status == "current" and c.space_key == "ENG"
    }
    assert {p["id"] for p in body["results"]} == blogs


async def test_v2_cursor_is_opaque_base64(site):
    origin, http = site
    _, body = await get(http, f"{origin}/wiki/api/v2/blogposts", limit="2", sort="-created-date")
    cursor = dict(parse_qsl(urlsplit(body["_links"]["next"]).query))["cursor"]
    assert b"contentOrder" in base64.b64decode(cursor)
    status, err = await get(http, f"{origin}/wiki/api/v2/blogposts", cursor="garbage!")
    assert status == 400 and err["errors"][0]["code"] == "INVALID_REQUEST_PARAMETER"


async def test_v2_limit_bounds():
    big = make_dataset(n_pages=300, n_blogposts=0, spaces=("ENG",), seed=1)
    async with serve(make_app(big)) as origin, aiohttp.ClientSession(headers=AUTH) as http:
        _, body = await get(http, f"{origin}/wiki/api/v2/pages", limit="1000")
        assert len(body["results"]) == 250 and "next" in body["_links"]  # clamped to the max
        _, body = await get(http, f"{origin}/wiki/api/v2/pages")
        assert len(body["results"]) == 25  # the default
        status, body = await get(http, f"{origin}/wiki/api/v2/pages", limit="0")
        assert status == 400 and body["errors"][0]["status"] == 400
        status, body = await get(http, f"{origin}/wiki/api/v2/pages", sort="size")
        assert status == 400 and body["errors"][0]["code"] == "INVALID_REQUEST_PARAMETER"


async def test_v2_single_items_and_404_bodies(site, state):
    origin, http = site
    page = next(c for c in state.content.values() if c.type == "page" and c.status == "current")
    blog = next(c for c in state.content.values() if c.type == "blogpost")
    status, body = await get(
        http, f"{origin}/wiki/api/v2/pages/{page.id}", **{"body-format": "storage"}
    )
    assert status == 200 and body["id"] == page.id and body["body"]["storage"]["value"] == page.body
    assert body["_links"]["base"] == f"{origin}/wiki"
    not_found = {
        "errors": [{"status": 404, "code": "NOT_FOUND", "title": "Not Found", "detail": None}]
    }
    for path in (f"pages/{blog.id}", "pages/999999999", "blogposts/1", "spaces/424242"):
        status, body = await get(http, f"{origin}/wiki/api/v2/{path}")
        assert (status, body) == (404, not_found), path
    status, body = await get(http, f"{origin}/wiki/api/v2/blogposts/{blog.id}", status="any")
    assert status == 400 and body["errors"][0]["code"] == "INVALID_REQUEST_PARAMETER"


# ------------------------------------------------------------------------------ v1 content


async def test_v1_content_by_id_and_404(site, state):
    origin, http = site
    page = next(c for c in state.content.values() if c.type == "page" and c.status == "current")
    status, body = await get(http, f"{origin}/wiki/rest/api/content/{page.id}")
    assert status == 200
    assert {"space", "history", "version"} <= set(body)  # the documented default expansions
    assert (
        body["space"]["key"] == page.space_key and body["version"]["number"] == page.version.number
    )
    status, body = await get(
        http, f"{origin}/wiki/rest/api/content/{page.id}", expand="body.storage"
    )
    assert body["body"]["storage"]["value"] == page.body and "version" not in body
    status, body = await get(http, f"{origin}/wiki/rest/api/content/12345")
    assert status == 404
    assert body["statusCode"] == 404
    assert body["message"] == "No content found with id: ContentId{id=12345}"


# ------------------------------------------------------------------------------ auth, faults


async def test_wrong_or_missing_credentials_are_403(state):
    async with serve(make_app(state)) as origin:
        for headers in (
            {"Authorization": aiohttp.encode_basic_auth(DEFAULT_EMAIL, "wrong")},
            {"Authorization": aiohttp.encode_basic_auth("nobody@example.com", DEFAULT_TOKEN)},
            {},
        ):
            async with aiohttp.ClientSession(headers=headers) as http:
                for path in ("/wiki/rest/api/content/search?cql=type=page", "/wiki/api/v2/pages"):
                    status, body = await get(http, origin + path)
                    assert status == 403
                    assert body == {
                        "message": "Current user not permitted to use Confluence",
                        "statusCode": 403,
                    }


async def test_anonymous_access_sees_public_spaces_only(state):
    state.anonymous_access = True
    state.public_spaces = {"HR"}
    hidden = next(c for c in state.content.values() if c.space_key == "ENG")
    async with serve(make_app(state)) as origin, aiohttp.ClientSession() as http:
        _, body = await get(http, f"{origin}/wiki/api/v2/pages", limit="250", status="current")
        assert {p["id"] for p in body["results"]} == current_pages(state, "HR")
        status, _ = await get(http, f"{origin}/wiki/api/v2/pages/{hidden.id}")
        assert status == 404


async def test_flaky_500s_at_the_configured_rate(state):
    state.flaky_500_rate = 0.25
    async with serve(make_app(state)) as origin, aiohttp.ClientSession(headers=AUTH) as http:
        statuses = []
        for _ in range(200):
            async with http.get(
                f"{origin}/wiki/rest/api/content/search", params={"cql": "id = 1"}
            ) as resp:
                statuses.append(resp.status)
                if resp.status == 500:
                    assert (await resp.json())["statusCode"] == 500
        # v2 endpoints are not affected
        async with http.get(f"{origin}/wiki/api/v2/spaces") as resp:
            assert resp.status == 200
    failures = statuses.count(500)
    assert set(statuses) == {200, 500}
    assert 25 <= failures <= 75  # 50 expected; the RNG is seeded so this is deterministic


async def test_injected_429_carries_retry_after(site, state):
    origin, http = site
    inject_rate_limit(state.controls, retry_after=3, path_prefix="/wiki/api/v2/")
    async with http.get(f"{origin}/wiki/api/v2/pages") as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "3"
        assert "X-RateLimit-Reset" in resp.headers
    async with http.get(f"{origin}/wiki/api/v2/pages") as resp:
        assert resp.status == 200
    assert state.controls.count("/wiki/api/v2/pages") == 2


def test_dataset_is_deterministic_and_varied():
    a, b = make_dataset(seed=3), make_dataset(n_pages=2000, n_blogposts=300, seed=3)
    assert [(c.id, c.title, c.body) for c in a.content.values()] == [
        (c.id, c.title, c.body) for c in b.content.values()
    ]
    assert len(a.content) == 2300
    assert sum(c.type == "blogpost" for c in a.content.values()) == 300
    statuses = {c.status for c in a.content.values()}
    assert {"current", "archived", "trashed", "draft"} <= statuses
    assert any('"' in c.title for c in a.content.values())
    assert any("\\" in c.title for c in a.content.values())
    years = {c.created_at.year for c in a.content.values()}
    assert len(years) >= 8
