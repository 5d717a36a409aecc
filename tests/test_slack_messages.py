"""Slack messages (``slack.messages``) against the fake Slack Web API."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from asyncrepo import InvalidCursor, Item, ItemNotFound, RetryPolicy, UnsupportedOption
from asyncrepo.repositories.slack._client import slack_to_text, ts_datetime
from asyncrepo.repositories.slack.messages import Messages
from tests.fakes._common import serve
from tests.fakes.slack import BOT_TOKEN, USER_TOKEN, SlackState, make_app, make_dataset

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05)
GENERAL = "C00000001"


@pytest.fixture
def state() -> SlackState:
    return make_dataset(40, seed=1)


@pytest.fixture
async def api(state: SlackState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url + "/api"


def repo(api: str, token: str = USER_TOKEN, **options: Any) -> Messages:
    options.setdefault("rate_limits", False)
    options.setdefault("retry", FAST)
    return Messages(token, base_url=api, **options)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


def history_ids(state: SlackState, channel: str, *, newest_first: bool = True) -> list[str]:
    ids = [f"{channel}:{m['ts']}" for m in state.top_level(channel)]
    return ids[::-1] if newest_first else ids


def requests(state: SlackState, method: str) -> list[dict[str, str]]:
    return [r.query for r in state.controls.requests if r.path == f"/api/{method}"]


# -- one channel ----------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_channel_pages_newest_first_without_loss(state, api, page_size) -> None:
    expected = history_ids(state, GENERAL)
    async with repo(api, channel=GENERAL) as messages:
        pages = await collect(messages.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert ids == expected and len(set(ids)) == len(ids)
    assert all(len(page) == page_size for page in pages[:-1])
    sent = requests(state, "conversations.history")
    assert {q["limit"] for q in sent} == {str(page_size)}
    assert all(q["channel"] == GENERAL for q in sent)
    assert "cursor" not in sent[0] and all("cursor" in q for q in sent[1:])


async def test_items_have_the_common_fields(state, api) -> None:
    async with repo(api, channel=GENERAL) as messages:
        items = await collect(messages.list())
    raw = state.top_level(GENERAL)[-1]
    item = items[0]
    assert item.identifier == f"{GENERAL}:{raw['ts']}" and item.raw["ts"] == raw["ts"]
    assert item.created_at == ts_datetime(raw["ts"]) and item.created_at.tzinfo is not None
    assert (
        item.url == f"https://asyncrepo.slack.com/archives/{GENERAL}/p{raw['ts'].replace('.', '')}"
    )
    assert item.kind == "message" and item.source == "slack.messages"
    bots = [i for i in items if i.raw.get("subtype") == "bot_message"]
    assert bots and all(i.author == "B0BOT0001" for i in bots)
    humans = [i for i in items if "user" in i.raw]
    assert all(i.author == i.raw["user"] for i in humans)
    assert len(requests(state, "auth.test")) == 1  # the workspace URL, asked once


async def test_cursor_resumes_in_a_fresh_repository(state, api) -> None:
    expected = history_ids(state, GENERAL)
    async with repo(api, channel=GENERAL) as messages:
        stream = messages.list_pages(page_size=7)
        first = [await anext(stream) for _ in range(2)]
        await stream.aclose()
    cursor = first[-1].cursor
    assert cursor is not None
    async with repo(api, channel=GENERAL) as fresh:
        rest = await collect(fresh.list_pages(page_size=5, cursor=cursor))
    assert [i.identifier for p in [*first, *rest] for i in p] == expected
    async with repo(api, channel="C00000002") as other:
        with pytest.raises(InvalidCursor):
            await collect(other.list_pages(cursor=cursor))


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_order_created_walks_forward_with_oldest(state, api, page_size) -> None:
    expected = history_ids(state, GENERAL, newest_first=False)
    async with repo(api, channel=GENERAL) as messages:
        pages = await collect(messages.list_pages(page_size=page_size, order="created"))
    assert [i.identifier for p in pages for i in p] == expected
    sent = requests(state, "conversations.history")
    assert all("cursor" not in q and "latest" not in q for q in sent)
    assert sent[0]["oldest"] == "0" and sent[0]["inclusive"] == "true"
    for before, after in itertools.pairwise(sent):
        assert after["inclusive"] == "false" and float(after["oldest"]) > float(before["oldest"])


@pytest.mark.parametrize("order", [None, "created"])
async def test_since_is_sent_as_oldest(state, api, order) -> None:
    top = state.top_level(GENERAL)
    pivot = top[len(top) // 2]
    since = ts_datetime(pivot["ts"])
    assert since is not None
    expected = [f"{GENERAL}:{m['ts']}" for m in top if (ts_datetime(m["ts"]) or since) >= since]
    if order is None:
        expected.reverse()
    async with repo(api, channel=GENERAL) as messages:
        items = await collect(messages.list(since=since, order=order, page_size=5))
    assert [i.identifier for i in items] == expected
    assert f"{GENERAL}:{pivot['ts']}" in expected  # since is inclusive
    first = requests(state, "conversations.history")[0]
    assert first["oldest"] == pivot["ts"] and first["inclusive"] == "true"


# -- threads --------------------------------------------------------------------------------


async def test_threads_put_replies_after_their_parent(state, api) -> None:
    async with repo(api, channel=GENERAL, threads=True) as messages:
        items = await collect(messages.list(page_size=7))
    ids = [i.identifier for i in items]
    assert len(ids) == len(set(ids)) == len(state.messages[GENERAL])
    parents = [i for i, item in enumerate(items) if item.raw.get("reply_count")]
    assert parents
    for index in parents:
        parent = items[index]
        count = parent.raw["reply_count"]
        replies = items[index + 1 : index + 1 + count]
        assert [r.kind for r in replies] == ["reply"] * count
        assert all(r.raw["thread_ts"] == parent.raw["ts"] for r in replies)
        assert [r.raw["ts"] for r in replies] == sorted(r.raw["ts"] for r in replies)
        reply = replies[0]
        assert reply.url is not None
        assert reply.url.endswith(f"?thread_ts={parent.raw['ts']}&cid={GENERAL}")
    assert len(requests(state, "conversations.replies")) == len(parents)


async def test_a_long_thread_over_several_reply_pages(state, api) -> None:
    parent = state.post(GENERAL, "a long thread", state.users[0]["id"])
    for i in range(450):
        state.post(GENERAL, f"reply {i}", state.users[1]["id"], thread_ts=parent["ts"])
    async with repo(api, channel=GENERAL, threads=True) as messages:
        items = await collect(messages.list(page_size=3))
    replies = [i for i in items if i.raw.get("thread_ts") == parent["ts"] and i.kind == "reply"]
    assert [r.text for r in replies] == [f"reply {i}" for i in range(450)]
    assert [i.identifier for i in items].count(f"{GENERAL}:{parent['ts']}") == 1
    assert (
        len([q for q in requests(state, "conversations.replies") if q["ts"] == parent["ts"]]) == 3
    )


# -- every channel ----------------------------------------------------------------------------


def fan_out_expected(state: SlackState, channels: list[str]) -> list[str]:
    return [i for channel in sorted(channels) for i in history_ids(state, channel)]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_every_channel_in_channel_order_without_loss(state, api, page_size) -> None:
    expected = fan_out_expected(state, [c["id"] for c in state.channels])
    async with repo(api, concurrency=3) as messages:
        pages = await collect(messages.list_pages(page_size=page_size))
    ids = [i.identifier for p in pages for i in p]
    assert ids == expected and len(set(ids)) == len(ids)
    assert all(len(p) == page_size for p in pages[:-1])


async def test_every_channel_cursor_resumes_mid_channel_and_at_a_boundary(state, api) -> None:
    expected = fan_out_expected(state, [c["id"] for c in state.channels])
    async with repo(api) as messages:
        pages = await collect(messages.list_pages(page_size=13))
    for page in pages[:-1]:
        assert page.cursor is not None
        async with repo(api) as fresh:
            rest = await collect(fresh.list(cursor=page.cursor, page_size=13))
        done = pages.index(page) + 1
        seen = [i.identifier for p in pages[:done] for i in p]
        assert seen + [i.identifier for i in rest] == expected
    # 40 messages a channel: a page of 40 ends exactly at the first channel's end.
    async with repo(api) as messages:
        stream = messages.list_pages(page_size=40)
        first = await anext(stream)
        await stream.aclose()
    assert {i.identifier.split(":")[0] for i in first} == {"C00000001"}
    async with repo(api) as fresh:
        rest = await collect(fresh.list(cursor=first.cursor))
    assert [i.identifier for i in first] + [i.identifier for i in rest] == expected


async def test_every_channel_resume_survives_a_removed_channel(state, api) -> None:
    async with repo(api) as messages:
        stream = messages.list_pages(page_size=50)
        first = await anext(stream)
        await stream.aclose()
    resumed_in = first.cursor
    state.channels = [c for c in state.channels if c["id"] != "C00000002"]  # deleted meanwhile
    async with repo(api) as fresh:
        rest = await collect(fresh.list(cursor=resumed_in))
    remaining = [c["id"] for c in state.channels if c["id"] > "C00000002"]
    assert [i.identifier for i in rest] == fan_out_expected(state, remaining)


async def test_a_bot_reads_only_its_channels(state, api) -> None:
    async with repo(api, token=BOT_TOKEN) as messages:
        items = await collect(messages.list())
    assert [i.identifier for i in items] == fan_out_expected(state, ["C00000005", "G00000003"])
    asked = {q["channel"] for q in requests(state, "conversations.history")}
    assert asked == {"C00000005", "G00000003"}  # no not_in_channel round trips


@pytest.mark.parametrize("code", ["not_in_channel", "channel_not_found"])
async def test_an_unreadable_channel_is_skipped(state, api, code) -> None:
    state.controls.inject(
        200,
        body={"ok": False, "error": code},
        path_prefix="/api/conversations.history",
    )
    async with repo(api, concurrency=1) as messages:
        items = await collect(messages.list())
    channels = [c["id"] for c in state.channels]
    assert [i.identifier for i in items] == fan_out_expected(state, channels[1:])


# -- get ------------------------------------------------------------------------------------


async def test_get_a_message_and_a_reply(state, api) -> None:
    parent = next(m for m in state.top_level(GENERAL) if m.get("thread_ts"))
    reply = state.replies(GENERAL, parent["ts"])[1]
    async with repo(api) as messages:
        got = await messages.get(f"{GENERAL}:{parent['ts']}")
        assert got.raw["ts"] == parent["ts"] and got.kind == "message"
        got_reply = await messages.get(f"{GENERAL}:{reply['ts']}")
        assert got_reply.raw["ts"] == reply["ts"] and got_reply.kind == "reply"
        assert got_reply.text == reply["text"]
        for missing in (f"{GENERAL}:1111111111.000001", "nope", f"C99999999:{parent['ts']}"):
            with pytest.raises(ItemNotFound) as info:
                await messages.get(missing)
            assert info.value.identifier == missing
    async with repo(api, channel="C00000002") as scoped:
        with pytest.raises(ItemNotFound):
            await scoped.get(f"{GENERAL}:{parent['ts']}")


# -- search ---------------------------------------------------------------------------------


def search_expected(state: SlackState, word: str, channels: set[str] | None = None) -> list[str]:
    found = [
        (m["ts"], f"{c['id']}:{m['ts']}")
        for c in state.channels
        if channels is None or c["id"] in channels
        if not c["is_private"] or state.tokens[USER_TOKEN].user_id in state.members[c["id"]]
        for m in state.messages[c["id"]]
        if word in m["text"].lower()
    ]
    return [identifier for _, identifier in sorted(found, reverse=True)]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_search_pages_without_loss(state, api, page_size) -> None:
    expected = search_expected(state, "deploy")
    assert len(expected) > 20
    async with repo(api) as messages:
        pages = await collect(messages.search_pages("deploy", page_size=page_size))
    ids = [i.identifier for p in pages for i in p]
    assert ids == expected
    sent = requests(state, "search.messages")
    assert all(q["sort"] == "timestamp" and q["sort_dir"] == "desc" for q in sent)
    assert {q["count"] for q in sent} == {str(min(page_size, 100))}


async def test_search_items_and_options(state, api) -> None:
    async with repo(api) as messages:
        items = await collect(messages.search("deploy"))
        item = items[0]
        channel, ts = item.identifier.split(":")
        assert item.url == state.permalink(channel, state.message(channel, ts) or {})
        ascending = await collect(messages.search("deploy", order="created"))
        assert [i.identifier for i in ascending] == [i.identifier for i in items][::-1]
        assert requests(state, "search.messages")[-1]["sort_dir"] == "asc"
        since = items[len(items) // 2].created_at
        recent = await collect(messages.search("deploy", since=since))
        assert [i.identifier for i in recent] == [
            i.identifier for i in items if i.created_at >= since
        ]
        assert since is not None
        day = since.date().toordinal() - 1
        query = requests(state, "search.messages")[-1]["query"]
        assert query == f"deploy after:{datetime.fromordinal(day).date().isoformat()}"
    async with repo(api, channel="C00000005") as scoped:
        found = await collect(scoped.search("deploy"))
    assert [i.identifier for i in found] == search_expected(state, "deploy", {"C00000005"})
    assert requests(state, "search.messages")[-1]["query"] == "deploy in:#ops"


async def test_search_refuses_a_bot_token_before_asking(state, api) -> None:
    async with repo(api, token=BOT_TOKEN) as messages:
        with pytest.raises(UnsupportedOption, match="user token"):
            await collect(messages.search("deploy"))
    assert requests(state, "search.messages") == []


# -- markup ---------------------------------------------------------------------------------


def test_markup_to_text() -> None:
    cases = {
        "<@U123> hi": "@U123 hi",
        "<@U123|ann> hi": "@ann hi",
        "in <#C123|general>": "in #general",
        "in <#C123>": "in #C123",
        "see <https://x.example/a?b=1&amp;c=2|the docs>": "see the docs (https://x.example/a?b=1&c=2)",
        "see <https://x.example>": "see https://x.example",
        "<https://x.example|https://x.example>": "https://x.example",
        "mail <mailto:a@b.example|a@b.example>": "mail a@b.example",
        "<!here> <!channel> <!everyone>": "@here @channel @everyone",
        "<!subteam^S1|@oncall> and <!subteam^S2>": "@oncall and @S2",
        "<!date^1392734382^{date}|Feb 18, 2014>": "Feb 18, 2014",
        "a &lt;b&gt; &amp;amp; c": "a <b> &amp; c",
        "x <> y": "x <> y",
    }
    for markup, text in cases.items():
        assert slack_to_text(markup) == text, markup
    assert slack_to_text(None) is None


async def test_message_markup_becomes_plain_text(state, api) -> None:
    ts = state.post(
        GENERAL,
        "hey <@U00000002>, see <https://docs.example.com|the runbook> in <#C00000005|ops>\n"
        "x &lt; y &amp;&amp; z",
        state.users[0]["id"],
    )["ts"]
    async with repo(api) as messages:
        item = await messages.get(f"{GENERAL}:{ts}")
    assert item.text == (
        "hey @U00000002, see the runbook (https://docs.example.com) in #ops\nx < y && z"
    )
    assert item.title == "hey @U00000002, see the runbook (https://docs.example.com) in #ops"


def test_message_items_set_every_slot_of_item() -> None:
    # message_item fills the slots itself (no Item.__init__ call): none may be left unset.
    messages = Messages(USER_TOKEN, channel=GENERAL, rate_limits=False)
    raw = {"type": "message", "ts": "1512085950.000216", "text": "hi", "user": "U1"}
    item = messages.message_item(raw, GENERAL)
    reference = Item("x", raw)
    for name in Item.__slots__:
        getattr(item, name)  # AttributeError if message_item forgot a slot
        getattr(reference, name)
    assert item.identifier == f"{GENERAL}:1512085950.000216" and item.raw is raw
    assert item.repository is messages and item.source == "slack.messages"
    assert (item.title, item.text, item.author, item.kind) == ("hi", "hi", "U1", "message")
    assert item.url is None and item.updated_at is None


def test_dates_are_exact() -> None:
    assert ts_datetime("1512085950.000216") == datetime(2017, 11, 30, 23, 52, 30, 216, tzinfo=UTC)


async def test_every_channel_oldest_first_within_each_channel(state, api) -> None:
    channels = sorted(c["id"] for c in state.channels)
    expected = [i for c in channels for i in history_ids(state, c, newest_first=False)]
    async with repo(api) as messages:
        items = await collect(messages.list(order="created", page_size=9))
    assert [i.identifier for i in items] == expected


async def test_a_given_team_url_skips_auth_test(state, api) -> None:
    async with repo(api, channel=GENERAL, team_url="https://acme.enterprise.slack.com") as ms:
        items = await collect(ms.list())
    assert requests(state, "auth.test") == []
    assert items[0].url is not None
    assert items[0].url.startswith(f"https://acme.enterprise.slack.com/archives/{GENERAL}/p")
