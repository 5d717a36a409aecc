"""Slack channels and users (``slack.channels``, ``slack.users``) against the fake Slack API,
and ``slack://`` URIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

import asyncrepo
from asyncrepo import ConfigurationError, ItemNotFound, RetryPolicy
from asyncrepo.registry import get_class
from asyncrepo.repositories.slack.channels import Channels
from asyncrepo.repositories.slack.messages import Messages
from asyncrepo.repositories.slack.users import Users
from tests.fakes._common import serve
from tests.fakes.slack import (
    ALL_SCOPES,
    BOT_TOKEN,
    USER_TOKEN,
    SlackState,
    Token,
    make_app,
    make_dataset,
)

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05)


@pytest.fixture
def state() -> SlackState:
    return make_dataset(5, seed=2, extra_channels=20)


@pytest.fixture
async def api(state: SlackState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url + "/api"


def options(api: str) -> dict[str, Any]:
    return {"base_url": api, "rate_limits": False, "retry": FAST}


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


def requests(state: SlackState, method: str) -> list[dict[str, str]]:
    return [r.query for r in state.controls.requests if r.path == f"/api/{method}"]


# -- channels -------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_channels_pages_without_loss(state, api, page_size) -> None:
    expected = [c["id"] for c in state.channels]
    async with Channels(USER_TOKEN, **options(api)) as channels:
        pages = await collect(channels.list_pages(page_size=page_size))
    ids = [i.identifier for p in pages for i in p]
    assert ids == expected and len(ids) == 25
    assert all(len(p) == page_size for p in pages[:-1])
    sent = requests(state, "conversations.list")
    assert {q["limit"] for q in sent} == {str(page_size)}
    assert all(q["types"] == "public_channel,private_channel" for q in sent)


@pytest.mark.parametrize("page_size", [1, 3])
async def test_exclude_archived_goes_on_past_empty_pages(state, api, page_size) -> None:
    archived = {c["id"] for c in state.channels if c["is_archived"]}
    assert archived == {"C00000004"}
    expected = [c["id"] for c in state.channels if c["id"] not in archived]
    async with Channels(USER_TOKEN, exclude_archived=True, **options(api)) as channels:
        ids = [i.identifier async for i in channels.list(page_size=page_size)]
    assert ids == expected  # channels after the archived one are not lost
    assert all(q["exclude_archived"] == "true" for q in requests(state, "conversations.list"))


async def test_channel_items_get_and_types(state, api) -> None:
    async with Channels(USER_TOKEN, **options(api)) as channels:
        item = await channels.get("C00000002")
        assert item.title == "random" and item.kind == "channel"
        assert item.text == "Non-work banter\nWater cooler"
        assert item.url == "https://asyncrepo.slack.com/archives/C00000002"
        assert item.created_at == datetime.fromtimestamp(state.channels[1]["created"], UTC)
        assert item.author == state.channels[1]["creator"]
        with pytest.raises(ItemNotFound) as info:
            await channels.get("C99999999")
        assert info.value.identifier == "C99999999"
    async with Channels(USER_TOKEN, types="public_channel", **options(api)) as public:
        ids = [i.identifier async for i in public.list()]
    assert "G00000003" not in ids and len(ids) == 24
    async with Channels(BOT_TOKEN, **options(api)) as bot:
        assert "G00000003" in [i.identifier async for i in bot.list()]  # a member
    with pytest.raises(ConfigurationError):
        Channels(USER_TOKEN, types="public_channel,dm", **options(api))


async def test_channel_search_looks_at_name_topic_and_purpose_only(state, api) -> None:
    async with Channels(USER_TOKEN, **options(api)) as channels:
        assert [i.identifier async for i in channels.search("banter")] == ["C00000002"]
        assert [i.identifier async for i in channels.search("ENGINEERING")] == ["G00000003"]
        assert [i.identifier async for i in channels.search("deploys incidents")] == ["C00000005"]
        # The creator's id is in every raw record, but not a searched field.
        assert [i async for i in channels.search(state.channels[0]["creator"])] == []
        since = datetime.fromtimestamp(state.channels[-2]["created"], UTC)
        recent = [i.identifier async for i in channels.list(since=since)]
        assert recent == [c["id"] for c in state.channels[-2:]]


# -- users ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_users_pages_without_loss(state, api, page_size) -> None:
    expected = [u["id"] for u in state.users]
    async with Users(USER_TOKEN, **options(api)) as users:
        pages = await collect(users.list_pages(page_size=page_size))
    assert [i.identifier for p in pages for i in p] == expected
    assert {q["limit"] for q in requests(state, "users.list")} == {str(page_size)}


async def test_user_items_get_and_search(state, api) -> None:
    async with Users(USER_TOKEN, **options(api)) as users:
        ann = await users.get("U00000001")
        assert ann.title == "Ann Archer" and ann.text == "Engineering Manager"
        assert ann.url == "https://asyncrepo.slack.com/team/U00000001" and ann.kind == "user"
        assert ann.updated_at == datetime.fromtimestamp(state.users[0]["updated"], UTC)
        assert (await users.get("UBOT00001")).kind == "bot"
        with pytest.raises(ItemNotFound):
            await users.get("U99999999")
        assert [i.identifier async for i in users.search("engineer")] == [
            "U00000001",
            "U00000002",
            "U00000004",
        ]
        assert [i.identifier async for i in users.search("cleo@example.com")] == ["U00000003"]
        assert [i.identifier async for i in users.search("Gomez")] == ["U00000007"]
        assert [i async for i in users.search("Europe/London")] == []  # tz: not searched


async def test_email_is_searched_only_where_visible(state, api) -> None:
    state.tokens["xoxp-no-email"] = Token("user", "U00000002", ALL_SCOPES - {"users:read.email"})
    async with Users("xoxp-no-email", **options(api)) as users:
        assert [i async for i in users.search("cleo@example.com")] == []
        assert [i.identifier async for i in users.search("cleo")] == ["U00000003"]


# -- URIs and configuration -----------------------------------------------------------------


async def test_uris(api, monkeypatch) -> None:
    monkeypatch.setenv("SLACK_TOKEN", USER_TOKEN)
    opts = options(api)
    repo = asyncrepo.open("slack://messages?channel=C00000002&threads=true", **opts)
    assert isinstance(repo, Messages) and repo.channel == "C00000002" and repo.threads
    async with repo:
        items = [i async for i in repo.list()]
    assert items and {i.identifier.split(":")[0] for i in items} == {"C00000002"}
    channels = asyncrepo.open("slack://channels?types=public_channel&exclude_archived=1", **opts)
    assert isinstance(channels, Channels) and channels.types == "public_channel"
    assert channels.exclude_archived
    await channels.aclose()
    users = asyncrepo.open("slack://users", token=BOT_TOKEN, **opts)
    assert isinstance(users, Users) and users.bot_token
    await users.aclose()
    everything = asyncrepo.open("slack://messages", **opts)
    assert isinstance(everything, Messages) and everything.channel is None
    await everything.aclose()
    for bad in (
        "slack://messages?token=xoxp-1",
        "slack://users?channel=C1",
        "slack://files",
        "slack://messages?threads=maybe",
        "slack://channels/extra",
    ):
        with pytest.raises(ConfigurationError):
            asyncrepo.open(bad, **opts)
    for name, cls in (("slack.channels", Channels), ("slack.users", Users)):
        assert get_class(name) is cls
    assert get_class("slack.messages") is Messages


def test_token_from_env_never_shown(monkeypatch) -> None:
    monkeypatch.delenv("SLACK_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="SLACK_TOKEN"):
        Users()
    monkeypatch.setenv("SLACK_TOKEN", "xoxp-secret-from-env")
    users = Users()
    assert users.client.auth.headers() == {"Authorization": "Bearer xoxp-secret-from-env"}
    for text in (repr(users), repr(users.client), str(users.client.auth)):
        assert "secret" not in text
