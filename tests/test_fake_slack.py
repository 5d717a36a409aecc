"""The fake Slack Web API against Slack's own OpenAPI description (a subset, in
``tests/fakes/slack_spec/``): every success and error body the fake sends for the methods
asyncrepo uses validates against the spec's response schema, over the wire with raw aiohttp.

Reading the spec: Slack writes "one of" as ``items: [A, B]`` on a non-array schema; that is
read as ``anyOf`` here (on an array it stays JSON Schema's positional ``items``, which is
what ``conversations.replies`` means: the parent first). Known gaps of the 2020 spec, kept
visible here: the ``conversations.history`` and ``.replies`` schemas omit the
``response_metadata`` their own examples carry (allowed here), and the history error enum
predates ``not_in_channel``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.fakes._common import serve
from tests.fakes.slack import BOT_TOKEN, USER_TOKEN, SlackState, make_app, make_dataset

SPEC = json.loads(
    (
        Path(__file__).parent / "fakes" / "slack_spec" / "slack_web_openapi_v2.subset.json"
    ).read_text()
)


def _anyof(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _anyof(v) for k, v in node.items()}
        items = out.get("items")
        if isinstance(items, list) and out.get("type") != "array":
            del out["items"]
            out["anyOf"] = items
        return out
    if isinstance(node, list):
        return [_anyof(v) for v in node]
    return node


DEFINITIONS = _anyof(SPEC["definitions"])


def schema(method: str, status: str) -> dict[str, Any]:
    found = _anyof(SPEC["paths"][f"/{method}"]["get"]["responses"][status]["schema"])
    if method in ("conversations.history", "conversations.replies") and status == "200":
        found["properties"]["response_metadata"] = {"$ref": "#/definitions/objs_response_metadata"}
    return {**found, "definitions": DEFINITIONS}


def check(method: str, body: Any, status: str = "200") -> None:
    jsonschema.Draft4Validator(schema(method, status)).validate(body)


@pytest.fixture
def state() -> SlackState:
    return make_dataset(30, seed=4)


@pytest.fixture
async def call(state: SlackState) -> AsyncIterator[Any]:
    async with serve(make_app(state)) as base, aiohttp.ClientSession() as session:

        async def get(method: str, token: str | None = USER_TOKEN, **params: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            query = {k: str(v) for k, v in params.items()}
            async with session.get(f"{base}/api/{method}", params=query, headers=headers) as r:
                assert r.headers["Content-Type"] == "application/json; charset=utf-8"
                return r.status, await r.json()

        yield get


async def test_list_methods_match_the_spec(state, call) -> None:
    status, body = await call("conversations.list", types="public_channel,private_channel", limit=2)
    assert status == 200 and body["ok"] is True and len(body["channels"]) == 2
    check("conversations.list", body)
    assert body["response_metadata"]["next_cursor"]
    status, body = await call("users.list", limit=3)
    check("users.list", body)
    status, body = await call("users.list")  # no limit: everyone, an empty cursor
    check("users.list", body)
    assert len(body["members"]) == len(state.users) and body["response_metadata"] == {
        "next_cursor": ""
    }
    for method, params in (
        ("auth.test", {}),
        ("conversations.info", {"channel": "C00000001"}),
        ("users.info", {"user": "U00000002"}),
        (
            "chat.getPermalink",
            {"channel": "C00000001", "message_ts": state.messages["C00000001"][0]["ts"]},
        ),
    ):
        status, body = await call(method, **params)
        assert status == 200 and body["ok"] is True, body
        check(method, body)
    status, body = await call("auth.test", token=BOT_TOKEN)
    check("auth.test", body)
    assert body["bot_id"] == "B0BOT0001"


async def test_history_and_replies_match_the_spec(state, call) -> None:
    _, body = await call("conversations.history", channel="C00000001", limit=5)
    check("conversations.history", body)
    assert body["has_more"] is True and body["response_metadata"]["next_cursor"]
    ts = [m["ts"] for m in body["messages"]]
    assert ts == sorted(ts, reverse=True)  # newest first
    parent = next(m for m in state.top_level("C00000001") if m.get("thread_ts"))
    _, body = await call("conversations.replies", channel="C00000001", ts=parent["ts"], limit=2)
    check("conversations.replies", body)
    assert body["messages"][0]["ts"] == parent["ts"] and body["has_more"] is True
    cursor = body["response_metadata"]["next_cursor"]
    _, body = await call(
        "conversations.replies", channel="C00000001", ts=parent["ts"], limit=2, cursor=cursor
    )
    check("conversations.replies", body)
    assert body["messages"][0]["ts"] == parent["ts"]  # the parent again, as Slack does


async def test_search_matches_the_spec_example(call) -> None:
    example = SPEC["paths"]["/search.messages"]["get"]["responses"]["200"]["examples"]
    shape = example["application/json"]
    _, body = await call("search.messages", query="deploy", count=3, sort="timestamp")
    check("search.messages", body)
    assert set(body) == set(shape) and set(body["messages"]) == set(shape["messages"])
    match, model = body["messages"]["matches"][0], shape["messages"]["matches"][0]
    assert set(match) == set(model) and set(match["channel"]) == set(model["channel"])
    for key in ("pagination", "paging"):
        assert set(body["messages"][key]) == set(shape["messages"][key])


@pytest.mark.parametrize(
    ("method", "token", "params", "code"),
    [
        ("conversations.list", "xoxp-unknown", {}, "invalid_auth"),
        ("conversations.list", None, {}, "not_authed"),
        ("conversations.history", USER_TOKEN, {"channel": "C404"}, "channel_not_found"),
        (
            "conversations.history",
            USER_TOKEN,
            {"channel": "C00000001", "oldest": "x"},
            "invalid_ts_oldest",
        ),
        ("conversations.info", USER_TOKEN, {"channel": "G00000003x"}, "channel_not_found"),
        (
            "conversations.replies",
            USER_TOKEN,
            {"channel": "C00000001", "ts": "1.2"},
            "thread_not_found",
        ),
        ("users.list", USER_TOKEN, {"cursor": "bm9wZQ=="}, "invalid_cursor"),
        ("users.info", USER_TOKEN, {"user": "U404"}, "user_not_found"),
        (
            "chat.getPermalink",
            USER_TOKEN,
            {"channel": "C00000001", "message_ts": "1.2"},
            "message_not_found",
        ),
    ],
)
async def test_errors_match_the_spec(call, method, token, params, code) -> None:
    status, body = await call(method, token=token, **params)
    assert status == 200 and body == {"ok": False, "error": code}
    check(method, body, "default")


async def test_token_types_and_rate_limits(state, call) -> None:
    status, body = await call("search.messages", token=BOT_TOKEN, query="deploy")
    assert (status, body) == (200, {"ok": False, "error": "not_allowed_token_type"})
    status, body = await call("conversations.history", token=BOT_TOKEN, channel="C00000001")
    assert body == {"ok": False, "error": "not_in_channel"}  # not in the 2020 spec's enum
    status, body = await call("conversations.history", token=BOT_TOKEN, channel="C00000005")
    assert body["ok"] is True  # a member
    status, body = await call("conversations.list", token=BOT_TOKEN, types="private_channel")
    assert [c["id"] for c in body["channels"]] == ["G00000003"]
    state.rate_limits["users.info"] = (1, 60.0)
    assert (await call("users.info", user="U00000001"))[0] == 200
    status, body = await call("users.info", user="U00000001")
    assert status == 429 and body == {"ok": False, "error": "ratelimited"}
    limited = [r for r in state.controls.requests if r.status == 429]
    assert len(limited) == 1
