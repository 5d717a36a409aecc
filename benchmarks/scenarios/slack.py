"""Slack: ``Messages.list()`` against a raw aiohttp loop over ``conversations.history``.

The project's Slack fake (``tests/fakes/slack.py``) serves 10,000 messages (300 in smoke
mode) with 20 ms of latency per request, in a process of its own. Two comparisons:

* one channel: the raw loop is what Slack's pagination guide shows, ``GET
  conversations.history?channel=C&limit=200`` with a Bearer token, following
  ``response_metadata.next_cursor``; it decodes every page (orjson) and builds a record per
  message (channel, ts, user, text). asyncrepo asks the same pages (``page_size`` 200), plus
  ``auth.test`` once (for permalinks) alongside the first page, and turns Slack markup into
  text;
* every channel (20 channels of 500 messages): the raw loop lists the channels, then reads
  each channel's history in turn; asyncrepo reads up to ``concurrency`` (4) channels ahead.

Both run with ``rate_limits=False``: Slack's tiers (50 history requests a minute) would make
either side wait minutes, and the fake does not limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import SLACK_TOKEN, serve

MODULE = "asyncrepo.repositories.slack.messages"
CHANNEL = "C00000001"


async def _history(session: Any, base_url: str, channel: str) -> tuple[int, str]:
    import orjson

    count, last = 0, ""
    params = {"channel": channel, "limit": "200"}
    while True:
        async with session.get(f"{base_url}/conversations.history", params=params) as response:
            response.raise_for_status()
            page = orjson.loads(await response.read())
        if not page["ok"]:
            raise RuntimeError(page["error"])
        for raw in page["messages"]:
            record = (channel, raw["ts"], raw.get("user"), raw.get("text"))
            count += 1
            last = f"{record[0]}:{record[1]}"
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return count, last
        params["cursor"] = cursor


async def raw_channel(probe: Any, base_url: str) -> tuple[int, str]:
    import aiohttp

    headers = {"Authorization": f"Bearer {SLACK_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        return await _history(session, base_url, CHANNEL)


async def raw_every_channel(probe: Any, base_url: str) -> tuple[int, str]:
    import aiohttp
    import orjson

    headers = {"Authorization": f"Bearer {SLACK_TOKEN}"}
    count, last = 0, ""
    async with aiohttp.ClientSession(headers=headers) as session:
        ids: list[str] = []
        params = {"types": "public_channel,private_channel", "limit": "1000"}
        while True:
            async with session.get(f"{base_url}/conversations.list", params=params) as response:
                page = orjson.loads(await response.read())
            ids += [c["id"] for c in page["channels"]]
            cursor = page["response_metadata"]["next_cursor"]
            if not cursor:
                break
            params["cursor"] = cursor
        for channel in sorted(ids):
            n, last = await _history(session, base_url, channel)
            count += n
    return count, last


async def asyncrepo_list(probe: Any, base_url: str, channel: str | None) -> tuple[int, str]:
    from asyncrepo.repositories.slack.messages import Messages

    count, last = 0, ""
    async with Messages(SLACK_TOKEN, channel, base_url=base_url, rate_limits=False) as repo:
        async for item in repo.list():
            count += 1
            last = item.identifier
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 300 if smoke else 10_000
    here = "benchmarks.scenarios.slack"
    with (
        serve("slack", n_messages=n, n_channels=1, latency=0.02) as one,
        serve("slack", n_messages=n, n_channels=20, latency=0.02) as many,
    ):
        yield [
            Comparison(
                f"slack one channel ({n:,} messages, 20 ms)",
                Variant(
                    "aiohttp history loop",
                    f"{here}:raw_channel",
                    {"base_url": one + "/api"},
                    ["aiohttp", "orjson"],
                    expect=n,
                ),
                Variant(
                    "Messages(channel).list()",
                    f"{here}:asyncrepo_list",
                    {"base_url": one + "/api", "channel": CHANNEL},
                    [MODULE],
                    expect=n,
                ),
                [Target("wall", 1.1)],
                show=["cpu"],
            ),
            Comparison(
                f"slack 20 channels ({n:,} messages, 20 ms)",
                Variant(
                    "aiohttp list + history loops",
                    f"{here}:raw_every_channel",
                    {"base_url": many + "/api"},
                    ["aiohttp", "orjson"],
                    expect=n,
                ),
                Variant(
                    "Messages().list()",
                    f"{here}:asyncrepo_list",
                    {"base_url": many + "/api", "channel": None},
                    [MODULE],
                    expect=n,
                ),
                [Target("wall", 1.1)],
                show=["cpu"],
            ),
        ]
