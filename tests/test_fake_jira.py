"""The fake Jira checked over the wire with raw aiohttp (no asyncrepo code involved)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes._common import serve
from tests.fakes.jira import (
    ISSUE_NOT_FOUND_MESSAGE,
    REMOVED_SEARCH_MESSAGE,
    UNBOUNDED_JQL_MESSAGE,
    Clause,
    JiraState,
    JqlError,
    Value,
    clauses,
    make_app,
    make_dataset,
    parse_jql,
)

AUTH = {"Authorization": aiohttp.encode_basic_auth("me@example.com", "api-token-123")}


@pytest.fixture(scope="module")
def cloud_state() -> JiraState:
    return make_dataset(150)


class Site:
    def __init__(self, base: str, session: aiohttp.ClientSession, state: JiraState) -> None:
        self.base, self.http, self.state = base, session, state

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.base + path, **kw) as r:
            return r.status, await _body(r)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.base + path, **kw) as r:
            return r.status, await _body(r)


async def _body(r: aiohttp.ClientResponse) -> Any:
    if r.content_type == "application/json":
        return await r.json()
    return await r.text()


async def _site(state: JiraState) -> AsyncIterator[Site]:
    async with serve(make_app(state)) as base, aiohttp.ClientSession(headers=AUTH) as http:
        yield Site(base, http, state)


@pytest.fixture
async def cloud(cloud_state: JiraState) -> AsyncIterator[Site]:
    cloud_state.is_last = "always"
    async for site in _site(cloud_state):
        yield site


@pytest.fixture
async def dc() -> AsyncIterator[Site]:
    async for site in _site(make_dataset(120, deployment="datacenter")):
        yield site


def _ids(state: JiraState, project: str) -> set[str]:
    return {i["id"] for i in state.issues if i["fields"]["project"]["key"] == project}


# ---------------------------------------------------------------------------- Cloud search/jql


@pytest.mark.parametrize("page_size", [1, 7, 100])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_search_jql_pages_by_token_through_every_issue_once(
    cloud: Site, page_size: int, method: str
) -> None:
    jql = "project = AS ORDER BY created DESC"
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        if method == "GET":
            params: dict[str, Any] = {"jql": jql, "maxResults": page_size, "fields": "summary"}
            if token:
                params["nextPageToken"] = token
            status, body = await cloud.get("/rest/api/3/search/jql", params=params)
        else:
            payload: dict[str, Any] = {"jql": jql, "maxResults": page_size, "fields": ["summary"]}
            if token:
                payload["nextPageToken"] = token
            status, body = await cloud.post("/rest/api/3/search/jql", json=payload)
        assert status == 200, body
        assert "total" not in body and "startAt" not in body
        assert len(body["issues"]) <= page_size
        seen += [i["id"] for i in body["issues"]]
        pages += 1
        token = body.get("nextPageToken")
        assert body["isLast"] is (token is None)
        if token is None:
            break
        assert not token.isdigit()
    assert len(seen) == len(set(seen))
    assert set(seen) == _ids(cloud.state, "AS")
    assert pages == -(-len(seen) // page_size)


async def test_search_jql_without_fields_returns_ids_only(cloud: Site) -> None:
    status, body = await cloud.get("/rest/api/3/search/jql", params={"jql": "project = ENG"})
    assert status == 200
    assert len(body["issues"]) == min(50, len(_ids(cloud.state, "ENG")))
    assert all(set(i) == {"id"} for i in body["issues"])
    status, body = await cloud.get(
        "/rest/api/3/search/jql", params={"jql": "project = ENG", "fields": "summary,description"}
    )
    issue = body["issues"][0]
    assert {"id", "key", "self", "fields"} <= set(issue)
    assert set(issue["fields"]) == {"summary", "description"}


async def test_descriptions_are_adf_on_v3_and_wiki_strings_on_v2(cloud: Site) -> None:
    issue = next(i for i in cloud.state.issues if i["fields"]["description"])
    _, v3 = await cloud.get(f"/rest/api/3/issue/{issue['key']}")
    _, v2 = await cloud.get(f"/rest/api/2/issue/{issue['id']}")
    assert v3["fields"]["description"]["type"] == "doc"
    assert isinstance(v2["fields"]["description"], str)
    assert v3["self"].endswith(f"/rest/api/3/issue/{issue['id']}")
    assert "comment" in v3["fields"]  # GET issue defaults to *all
    # timestamps come in the user's zone offset, Jira's format
    assert v3["fields"]["created"][-5:] in ("-0500", "-0400")


async def test_search_jql_caps_max_results(cloud: Site) -> None:
    _, body = await cloud.post(
        "/rest/api/3/search/jql",
        json={"jql": "created >= -36500d", "maxResults": 1000, "fields": ["summary"]},
    )
    assert len(body["issues"]) == 100 and "nextPageToken" in body
    _, body = await cloud.post(
        "/rest/api/3/search/jql", json={"jql": "created >= -36500d", "maxResults": 5000}
    )
    assert len(body["issues"]) == len(cloud.state.issues) and "nextPageToken" not in body


async def test_search_jql_is_last_can_be_omitted(cloud: Site) -> None:
    cloud.state.is_last = "never"
    _, body = await cloud.get("/rest/api/3/search/jql", params={"jql": "project = OPS"})
    assert "isLast" not in body


async def test_search_jql_rejects_foreign_or_garbage_tokens(cloud: Site) -> None:
    _, first = await cloud.get(
        "/rest/api/3/search/jql", params={"jql": "project = AS", "maxResults": 5}
    )
    token = first["nextPageToken"]
    for jql, tok in [("project = ENG", token), ("project = AS", "5"), ("project = AS", "!!")]:
        status, body = await cloud.get(
            "/rest/api/3/search/jql", params={"jql": jql, "nextPageToken": tok}
        )
        assert status == 400 and body["errors"] == {} and body["errorMessages"]


@pytest.mark.parametrize("jql", ["", "ORDER BY created DESC", "order by key"])
async def test_unbounded_jql_is_refused(cloud: Site, jql: str) -> None:
    status, body = await cloud.post("/rest/api/3/search/jql", json={"jql": jql})
    assert status == 400
    assert body == {"errorMessages": [UNBOUNDED_JQL_MESSAGE], "errors": {}}


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        (
            'summary ~ "abc',
            "Error in the JQL Query: The quoted string 'abc' has not been completed. "
            "(line 1, character 11)",
        ),
        ("project = AS AND (status = Done", "Error in the JQL Query: Expecting ')' before the end"),
        ("project ENG", "Error in the JQL Query: Expecting operator but got 'ENG'."),
        ("project = AS status = Done", "Expecting either 'OR' or 'AND' but got 'status'"),
        ("project = OR", "You must surround 'OR' in quotation marks"),
        ('text ~ "a\\qb"', "'\\q' is an illegal JQL escape sequence"),
        ("nosuch = 1", "Field 'nosuch' does not exist or you do not have permission to view it."),
        ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
        ('created > "yesterday"', "Date value 'yesterday' for field 'created' is invalid."),
        ("key = AS-99999", "An issue with key 'AS-99999' does not exist for field 'key'."),
    ],
)
async def test_invalid_jql_is_a_400_error_collection(cloud: Site, jql: str, message: str) -> None:
    status, body = await cloud.get("/rest/api/3/search/jql", params={"jql": jql})
    assert status == 400
    assert body["errors"] == {}
    assert any(m.startswith(message) or message in m for m in body["errorMessages"]), body


@pytest.mark.parametrize("version", ["2", "3", "latest"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_removed_search_endpoints_answer_410(cloud: Site, version: str, method: str) -> None:
    path = f"/rest/api/{version}/search"
    if method == "GET":
        status, body = await cloud.get(path, params={"jql": "project = AS"})
    else:
        status, body = await cloud.post(path, json={"jql": "project = AS"})
    assert status == 410
    assert body == {"errorMessages": [REMOVED_SEARCH_MESSAGE], "errors": {}}


# ------------------------------------------------------------------------- Cloud other routes


async def test_bulkfetch_shape_order_and_limit(cloud: Site) -> None:
    issues = cloud.state.issues
    wanted = [issues[5]["key"], issues[1]["id"], "AS-99999", issues[3]["key"].lower()]
    status, body = await cloud.post(
        "/rest/api/3/issue/bulkfetch", json={"issueIdsOrKeys": wanted, "fields": ["summary"]}
    )
    assert status == 200
    assert body["issueErrors"] == []
    got = [i["id"] for i in body["issues"]]
    assert got == sorted([issues[5]["id"], issues[1]["id"], issues[3]["id"]], key=int)
    assert set(body["issues"][0]["fields"]) == {"summary"}
    status, body = await cloud.post(
        "/rest/api/3/issue/bulkfetch", json={"issueIdsOrKeys": [i["id"] for i in issues[:101]]}
    )
    assert status == 400 and body["errorMessages"] and body["errors"] == {}
    status, _ = await cloud.post("/rest/api/3/issue/bulkfetch", json={"issueIdsOrKeys": []})
    assert status == 400


async def test_missing_issue_is_404_with_jira_body(cloud: Site) -> None:
    status, body = await cloud.get("/rest/api/3/issue/AS-99999")
    assert status == 404
    assert body == {"errorMessages": [ISSUE_NOT_FOUND_MESSAGE], "errors": {}}


async def test_project_search_pages_and_project_lookup(cloud: Site) -> None:
    status, body = await cloud.get("/rest/api/3/project/search", params={"maxResults": 2})
    assert status == 200
    assert body["total"] == 3 and body["isLast"] is False and body["startAt"] == 0
    assert [p["key"] for p in body["values"]] == ["AS", "ENG"]
    async with cloud.http.get(body["nextPage"]) as r:
        second = await r.json()
    assert second["isLast"] is True and [p["key"] for p in second["values"]] == ["OPS"]
    assert "nextPage" not in second
    status, project = await cloud.get("/rest/api/3/project/ENG")
    assert status == 200 and project["key"] == "ENG" and project["id"].isdigit()
    status, body = await cloud.get("/rest/api/3/project/NOPE")
    assert status == 404 and body["errorMessages"]


async def test_server_info_cloud(cloud: Site) -> None:
    status, body = await cloud.get("/rest/api/2/serverInfo")
    assert status == 200
    assert body["deploymentType"] == "Cloud" and body["baseUrl"] == cloud.base


async def test_wrong_or_missing_credentials_are_401(cloud: Site) -> None:
    bad = {"Authorization": aiohttp.encode_basic_auth("me@example.com", "wrong")}
    async with aiohttp.ClientSession() as anon:
        async with anon.get(
            cloud.base + "/rest/api/3/search/jql", params={"jql": "project = AS"}, headers=bad
        ) as r:
            assert r.status == 401
            assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
        async with anon.get(cloud.base + "/rest/api/3/issue/AS-1") as r:
            assert r.status == 401
        async with anon.get(cloud.base + "/rest/api/2/serverInfo", headers=bad) as r:
            assert r.status == 401


# --------------------------------------------------------------------------------- Data Center


async def test_dc_search_pages_by_start_at_with_a_capped_max_results(dc: Site) -> None:
    expected = _ids(dc.state, "AS")
    seen: list[str] = []
    start = 0
    while True:
        status, body = await dc.get(
            "/rest/api/2/search",
            params={"jql": "project = AS ORDER BY key", "startAt": start, "maxResults": 1000},
        )
        assert status == 200
        assert body["maxResults"] == 50  # jira.search.views.default.max
        assert body["total"] == len(expected) and body["startAt"] == start
        assert isinstance(body["issues"][0]["fields"]["description"], str | None)
        seen += [i["id"] for i in body["issues"]]
        start += len(body["issues"])
        if start >= body["total"]:
            break
    assert sorted(seen, key=int) == sorted(expected, key=int)
    dc.state.max_results_cap = 10
    _, body = await dc.post("/rest/api/2/search", json={"jql": "", "maxResults": 100})
    assert body["maxResults"] == 10 and len(body["issues"]) == 10
    assert body["total"] == len(dc.state.issues)  # DC allows unbounded JQL


async def test_dc_has_no_v3_and_no_search_jql(dc: Site) -> None:
    for path in ("/rest/api/3/search/jql", "/rest/api/3/issue/AS-1", "/rest/api/2/search/jql"):
        status, _ = await dc.get(path, params={"jql": "project = AS"})
        assert status == 404, path


async def test_dc_projects_server_info_and_auth(dc: Site) -> None:
    status, projects = await dc.get("/rest/api/2/project")
    assert status == 200 and [p["key"] for p in projects] == ["AS", "ENG", "OPS"]
    status, info = await dc.get("/rest/api/2/serverInfo")
    assert info["deploymentType"] == "Server" and info["versionNumbers"][0] == 9
    status, issue = await dc.get("/rest/api/2/issue/AS-1")
    assert status == 200 and "accountId" not in issue["fields"]["reporter"]
    async with aiohttp.ClientSession() as anon:
        bad = {"Authorization": aiohttp.encode_basic_auth("me@example.com", "nope")}
        async with anon.get(dc.base + "/rest/api/2/issue/AS-1", headers=bad) as r:
            assert r.status == 401
            assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
            assert "AUTHENTICATED_FAILED" in await r.text()
        pat = {"Authorization": "Bearer dc-pat-123"}
        async with anon.get(dc.base + "/rest/api/2/issue/AS-1", headers=pat) as r:
            assert r.status == 200


# ------------------------------------------------------------------------------------- JQL


def test_parser_reads_jira_escapes() -> None:
    query = parse_jql('text ~ "a \\"quoted\\" \\\\ back" AND project in (AS, "ENG")')
    first = clauses(query)[0]
    assert first == Clause("text", "~", Value('a "quoted" \\ back', quoted=True))
    assert parse_jql("summary ~ 'it\\'s'").where == Clause("summary", "~", Value("it's", True))
    assert parse_jql('text ~ "\\u0041\\t"').where == Clause("text", "~", Value("A\t", True))
    with pytest.raises(JqlError):
        parse_jql('text ~ "a\\"')


def _jql_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30))
def test_parser_round_trips_any_escaped_string(value: str) -> None:
    value = value.replace("\r", "")
    query = parse_jql(f"project = AS AND text ~ {_jql_quote(value)}")
    text_clauses = [c for c in clauses(query) if c.field == "text"]
    assert text_clauses == [Clause("text", "~", Value(value, quoted=True))]


async def test_escaped_text_search_over_the_wire(cloud: Site) -> None:
    issue = cloud.state.add_issue("AS", 'Parser sees a "quoted" \\ backslash zebra')
    jql = 'project = AS AND text ~ "a \\"quoted\\" \\\\ backslash zebra"'
    status, body = await cloud.post("/rest/api/3/search/jql", json={"jql": jql})
    try:
        assert status == 200, body
        assert [i["id"] for i in body["issues"]] == [issue["id"]]
        texts = [c for c in clauses(cloud.state.last_jql_ast) if c.field == "text"]
        assert texts == [Clause("text", "~", Value('a "quoted" \\ backslash zebra', True))]
        status, body = await cloud.post(
            "/rest/api/3/search/jql",
            json={"jql": 'project = AS AND text ~ "\\"zebra backslash\\""'},
        )
        assert body["issues"] == []  # a phrase must match in order
    finally:
        cloud.state.issues.remove(issue)


async def test_date_literals_use_the_user_time_zone_and_millis_are_absolute() -> None:
    state = JiraState(time_zone="America/New_York")
    early = state.add_issue("AS", "early", created="2024-01-01T14:30:00.000+0000")  # 09:30 NY
    late = state.add_issue("AS", "late", created="2024-01-01T15:30:00.000+0000")  # 10:30 NY
    ms_1400z = 1704117600000  # 2024-01-01T14:00:00Z
    ms_1500z = ms_1400z + 3600_000
    cases = {
        'created >= "2024/01/01 10:00"': [late],  # 15:00Z, not 10:00Z
        'created >= "2024-01-01 09:00" AND created < "2024-01-01 10:00"': [early],
        f"created >= {ms_1400z}": [late, early],  # no ORDER BY: newest first
        f"created > {ms_1500z}": [late],
        "created >= 2024-01-01 ORDER BY created ASC": [early, late],
        'created < "2024/01/01"': [],
        "created >= -36500d": [late, early],
    }
    async for site in _site(state):
        for jql, expected in cases.items():
            _, body = await site.post("/rest/api/3/search/jql", json={"jql": jql})
            assert [i["id"] for i in body["issues"]] == [i["id"] for i in expected], jql
        _, got = await site.get(f"/rest/api/3/issue/{early['key']}", params={"fields": "created"})
        assert got["fields"] == {"created": "2024-01-01T09:30:00.000-0500"}


def test_dataset_is_deterministic_and_shaped_like_jira() -> None:
    a, b = make_dataset(50, seed=3), make_dataset(50, seed=3)
    assert a.issues == b.issues
    issue = a.issues[0]
    assert issue["id"].isdigit() and issue["key"] == "AS-1"
    assert issue["fields"]["created"].endswith("+0000") and "T" in issue["fields"]["created"]
