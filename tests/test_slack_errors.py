"""Slack's error dialect, rate limits and lying servers, against the fake Slack API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    SourceUnavailable,
)
from asyncrepo.repositories.slack._client import TIERS, SlackRateLimits
from asyncrepo.repositories.slack.channels import Channels
from asyncrepo.repositories.slack.messages import Messages
from asyncrepo.repositories.slack.users import Users
from tests.fakes._common import serve
from tests.fakes.slack import ALL_SCOPES, USER_TOKEN, SlackState, Token, make_app, make_dataset

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05)
GENERAL = "C00000001"
USERS = "/api/users.list"
FATAL = {"ok": False, "error": "fatal_error"}


@pytest.fixture
def state() -> SlackState:
    return make_dataset(12, seed=3)


@pytest.fixture
async def api(state: SlackState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url + "/api"


def options(api: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": api, "rate_limits": False, "retry": FAST, **extra}


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


def count(state: SlackState, method: str) -> int:
    return state.controls.count(f"/api/{method}")


# -- ok: false ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["xoxp-wrong-token", "xoxp-revoked-token"])
async def test_bad_tokens_are_authentication_errors_without_the_token(state, api, token) -> None:
    state.tokens["xoxp-revoked-token"] = Token("user", "U00000001", revoked=True)
    async with Channels(token, **options(api)) as channels:
        with pytest.raises(AuthenticationError) as info:
            await collect(channels.list())
    error = info.value
    code = "invalid_auth" if "wrong" in token else "token_revoked"
    assert error.status == 200 and error.vendor_message == code
    assert error.source == "slack.channels" and error.url and "conversations.list" in error.url
    for text in (str(error), repr(error), repr(channels)):
        assert token not in text and "token-" not in text.replace("-token", "")


async def test_missing_scope_is_permission_denied_naming_the_scope(state, api) -> None:
    state.tokens["xoxp-narrow"] = Token("user", "U00000001", ALL_SCOPES - {"channels:history"})
    async with Messages("xoxp-narrow", channel=GENERAL, **options(api)) as messages:
        with pytest.raises(PermissionDenied, match="channels:history"):
            await collect(messages.list())


async def test_not_found_codes(state, api) -> None:
    async with Messages(USER_TOKEN, channel="C99999999", **options(api)) as messages:
        # The core reports a listing's 404 as a configuration error (no item to miss).
        with pytest.raises((ConfigurationError, ItemNotFound), match=r"channel.not.found"):
            await collect(messages.list())
    async with Users(USER_TOKEN, **options(api)) as users:
        with pytest.raises(ItemNotFound) as info:
            await users.get("U404")
    assert info.value.identifier == "U404" and info.value.vendor_message == "user_not_found"


async def test_a_refused_token_type_is_an_authentication_error(state, api) -> None:
    # A bot token that does not look like one (say, a rotated token): Slack refuses it.
    state.tokens["xoxe-rotated-bot"] = Token("bot", "UBOT00001")
    async with Messages("xoxe-rotated-bot", **options(api)) as messages:
        with pytest.raises(AuthenticationError, match="user token") as info:
            await collect(messages.search("deploy"))
    assert info.value.vendor_message == "not_allowed_token_type"


async def test_other_codes(state, api) -> None:
    async with Users(USER_TOKEN, **options(api)) as users:
        state.controls.inject(200, body={"ok": False, "error": "invalid_cursor"}, path_prefix=USERS)
        with pytest.raises(InvalidCursor):
            await collect(users.list())
        state.controls.inject(
            200, body={"ok": False, "error": "invalid_arg_name"}, path_prefix=USERS
        )
        with pytest.raises(InvalidQuery):
            await collect(users.list())
        # fatal_error is retried, then the listing succeeds.
        state.controls.inject(200, body=FATAL, times=2, path_prefix=USERS)
        assert len(await collect(users.list())) == len(state.users)
        state.controls.inject(200, body=FATAL, times=9, path_prefix=USERS)
        with pytest.raises(SourceUnavailable):
            await collect(users.list())


# -- rate limits ----------------------------------------------------------------------------


async def test_429_waits_for_retry_after_then_succeeds(state, api) -> None:
    state.controls.inject(
        429,
        headers={"Retry-After": "1"},
        body={"ok": False, "error": "ratelimited"},
        path_prefix="/api/users.list",
    )
    async with Users(USER_TOKEN, **options(api)) as users:
        items = await collect(users.list())
    assert len(items) == len(state.users)
    assert count(state, "users.list") == 2
    first, second = [r for r in state.controls.requests if r.path == "/api/users.list"]
    assert first.status == 429 and second.status == 200


async def test_a_wait_past_the_cap_raises_rate_limited_at_once(state, api) -> None:
    state.rate_limits["users.list"] = (1, 3600.0)  # the fake's own limiter: 1 an hour
    policy = RetryPolicy(max_wait=5.0, backoff=0.01)
    async with Users(USER_TOKEN, **options(api, retry=policy)) as users:
        await collect(users.list())
        with pytest.raises(RateLimited) as info:
            await collect(users.list())
    assert info.value.retry_after is not None and info.value.retry_after > 3000
    assert info.value.vendor_message == "ratelimited"
    assert count(state, "users.list") == 2  # no retry loop against a long limit


class CountingLimiter(AsyncLimiter):
    def __init__(self) -> None:
        super().__init__(1000, 1)
        self.acquired = 0

    async def acquire(self, amount: float = 1) -> None:
        self.acquired += 1
        await super().acquire(amount)


async def test_every_request_goes_through_its_methods_limiter(state, api) -> None:
    history, listing, replies, auth = (CountingLimiter() for _ in range(4))
    limits = SlackRateLimits(
        {
            "conversations.history": history,
            "conversations.list": listing,
            "conversations.replies": replies,
            "auth.test": auth,
        }
    )
    async with Messages(USER_TOKEN, threads=True, **options(api, rate_limits=limits)) as repo:
        await collect(repo.list(page_size=5))
    assert history.acquired == count(state, "conversations.history") > 5
    assert listing.acquired == count(state, "conversations.list") >= 1
    assert replies.acquired == count(state, "conversations.replies") > 1
    assert auth.acquired == count(state, "auth.test") == 1


def test_default_limits_follow_the_tiers() -> None:
    messages = Messages(USER_TOKEN, channel=GENERAL)
    history = messages.limiter("conversations.history")
    assert history is not None and (history.max_rate, history.time_period) == (50, 60)
    listing = messages.limiter("conversations.list")
    assert listing is not None and (listing.max_rate, listing.time_period) == (20, 60)
    search = messages.limiter("search.messages")
    assert search is not None and search.max_rate == 20
    assert set(TIERS) >= {"users.list", "users.info", "conversations.replies"}
    info = Users(USER_TOKEN).limiter("users.info")
    assert info is not None and info.max_rate == 100
    replies = messages.limiter("conversations.replies")
    assert replies is not None and replies.max_rate == 50
    shared = SlackRateLimits()
    one, two = Users(USER_TOKEN, rate_limits=shared), Channels(USER_TOKEN, rate_limits=shared)
    assert one.limiter("conversations.list") is two.limiter("conversations.list") is not None
    relaxed = Messages(USER_TOKEN, rate_limits={"conversations.history": 600})
    changed = relaxed.limiter("conversations.history")
    assert changed is not None and changed.max_rate == 600
    assert relaxed.limiter("conversations.list") is not None  # the others keep their tier
    off = Messages(USER_TOKEN, rate_limits=False)
    assert off.limiter("conversations.history") is None
    with pytest.raises(ConfigurationError):
        Messages(USER_TOKEN, rate_limits={"conversations.history": "fast"})


# -- lying servers --------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("cls", "method"), [(Channels, "conversations.list"), (Users, "users.list")]
)
async def test_a_cycling_next_cursor_ends_in_our_error(state, api, cls, method) -> None:
    state.cyclic_cursor.add(method)  # A -> B -> A -> ...
    async with cls(USER_TOKEN, **options(api)) as repo:
        with pytest.raises(MalformedResponse):
            await collect(repo.list(page_size=2))
    assert count(state, method) < 10


@pytest.mark.timeout(30)
async def test_a_cycling_history_cursor_ends_in_our_error(state, api) -> None:
    state.cyclic_cursor.add("conversations.history")
    async with Messages(USER_TOKEN, channel=GENERAL, **options(api)) as messages:
        with pytest.raises(MalformedResponse):
            await collect(messages.list(page_size=2))


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"ok": true, "channels": {"not": "a list"}}',
        b'{"ok": true, "channels": [{"name": "no id"}]}',
        b'{"ok": true, "channels": [], "response_metadata": {"next_cursor": 42}}',
    ],
)
async def test_malformed_bodies(state, api, body) -> None:
    state.controls.inject(200, body=body, path_prefix="/api/conversations.list")
    async with Channels(USER_TOKEN, **options(api)) as channels:
        with pytest.raises(MalformedResponse):
            await collect(channels.list())


@pytest.mark.parametrize(
    "messages",
    [[{"type": "message", "text": "no ts"}], [{"type": "message", "ts": "yesterday"}], ["x"]],
)
async def test_malformed_messages(state, api, messages) -> None:
    body = {"ok": True, "messages": messages, "has_more": False}
    state.controls.inject(200, body=body, path_prefix="/api/conversations.history")
    async with Messages(USER_TOKEN, channel=GENERAL, **options(api)) as repo:
        with pytest.raises(MalformedResponse):
            await collect(repo.list())


async def test_a_stuck_forward_walk_ends_in_our_error(state, api) -> None:
    stuck = {
        "ok": True,
        "messages": [{"type": "message", "text": "old", "ts": "1000000000.000001"}],
        "has_more": True,
    }
    state.controls.inject(200, body=stuck, path_prefix="/api/conversations.history", times=5)
    async with Messages(USER_TOKEN, channel=GENERAL, **options(api)) as repo:
        with pytest.raises(MalformedResponse):
            await collect(repo.list(order="created"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("cls", "method", "extra"),
    [
        (Channels, "conversations.list", {}),
        (Users, "users.list", {}),
        (Messages, "conversations.history", {"channel": GENERAL}),
    ],
)
async def test_endless_fresh_cursors_over_the_same_page_end_in_our_error(
    state, api, cls, method, extra
) -> None:
    state.endless_cursor.add(method)  # a new cursor every time, the same items every time
    async with cls(USER_TOKEN, **extra, **options(api)) as repo:
        with pytest.raises(MalformedResponse):
            await collect(repo.list(page_size=3))
    assert count(state, method) < 50


async def test_an_absurd_search_page_count_is_capped(state, api) -> None:
    async with Messages(USER_TOKEN, **options(api)) as repo:
        expected = [i.identifier async for i in repo.search("deploy", page_size=5)]
        honest = count(state, "search.messages")
        state.search_pages = 10**9
        lied = [i.identifier async for i in repo.search("deploy", page_size=5)]
    assert lied == expected and len(expected) > 5
    asked = count(state, "search.messages") - honest
    assert asked <= honest + 4  # the real pages and the few fetched ahead, not a billion
    assert all(int(q.query["page"]) <= 100 for q in state.controls.requests if q.query.get("page"))


async def test_the_limiter_keeps_a_crawl_under_slacks_limit(state, api) -> None:
    # The fake allows 24 history requests in any quarter second; the crawl (52 requests) is
    # paced at 10 a quarter second (a leaky bucket may burst to twice its rate: still under).
    for i in range(40):
        state.post(GENERAL, f"more {i}", "U00000001")
    state.rate_limits["conversations.history"] = (24, 0.25)
    no_wait = RetryPolicy(max_wait=0.1, backoff=0.01)
    paced = SlackRateLimits({"conversations.history": AsyncLimiter(10, 0.25)})
    async with Messages(
        USER_TOKEN, channel=GENERAL, **options(api, rate_limits=paced, retry=no_wait)
    ) as repo:
        items = await collect(repo.list(page_size=1))
    assert len(items) == len(state.top_level(GENERAL))
    assert not [r for r in state.controls.requests if r.status == 429]
    # Unpaced, the same crawl runs into a limit (24 in ten seconds here, so that even a slow
    # machine sends more than that in time) and the short retry cap gives up.
    state.rate_limits["conversations.history"] = (24, 10.0)
    state._calls.clear()
    async with Messages(
        USER_TOKEN, channel=GENERAL, **options(api, rate_limits=False, retry=no_wait)
    ) as repo:
        with pytest.raises(RateLimited):
            await collect(repo.list(page_size=1))
