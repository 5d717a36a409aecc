"""google.calendar against the fake Calendar v3 (tests/fakes/google.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    RetryPolicy,
)
from asyncrepo.repositories.google.calendar import Events
from tests.fakes._common import serve
from tests.fakes.google import DRIVE_READONLY, CalendarEvent, GoogleState, make_app

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0, rate_limit_floor=0.01)
START = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
N_EVENTS = 60


def make_state() -> GoogleState:
    state = GoogleState()
    for n in range(N_EVENTS):
        state.add_event(
            f"Meeting {n}" + (" standup" if n % 6 == 0 else ""),
            START + timedelta(hours=(n * 37) % N_EVENTS),  # start order differs from insertion
            updated=START - timedelta(days=1) + timedelta(minutes=(n * 11) % N_EVENTS),
            description="<p>Agenda: <b>budget</b></p>" if n == 3 else f"notes {n}",
            location="Room A" if n % 2 else "Room B",
        )
    state.add_event("Daily sync", START, updated=START - timedelta(days=2), daily_count=5)
    gone = state.add_event("Cancelled one", START, updated=START - timedelta(days=2))
    state.change_event(gone, at=START - timedelta(hours=12), status="cancelled")
    state.add_event("Other calendar", START, calendar="team@group.calendar.google.com")
    return state


class Site:
    def __init__(self, base: str, state: GoogleState) -> None:
        self.base, self.state = base, state
        self.token = state.issue_token()

    def events(self, **kwargs: Any) -> Events:
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("token", self.token)
        return Events(base_url=self.base, **kwargs)

    def lists(self) -> list[Any]:
        return [r for r in self.state.controls.requests if r.path.endswith("/events")]


@pytest.fixture
def state() -> GoogleState:
    return make_state()  # function scope: some tests change events


@pytest.fixture
async def site(state: GoogleState) -> AsyncIterator[Site]:
    async with serve(make_app(state)) as base:
        yield Site(base, state)


def live(state: GoogleState) -> list[CalendarEvent]:
    return [e for e in state.events["me@example.com"] if e.status != "cancelled"]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_pages_lose_nothing_and_repeat_nothing(site: Site, page_size: int) -> None:
    async with site.events() as repo:
        pages = [[i.identifier for i in p] async for p in repo.list_pages(page_size=page_size)]
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids)) == N_EVENTS + 5  # the recurring event as 5 instances
    assert all(len(page) == page_size for page in pages[:-1])
    first = site.lists()[0].query
    assert first["singleEvents"] == "true" and first["maxResults"] == str(page_size)
    assert "showDeleted" not in first


async def test_items(site: Site) -> None:
    async with site.events() as repo:
        items = {i.title: i async for i in repo.list()}
    three = items["Meeting 3"]
    assert three.text == "Agenda: budget"
    assert three.author == "Grace Hopper"
    assert three.url and three.url.startswith("https://www.google.com/calendar/event?eid=")
    assert three.updated_at == START - timedelta(days=1) + timedelta(minutes=33)
    assert three.kind == "event" and three.source == "google.calendar"
    assert "Cancelled one" not in items and "Other calendar" not in items


async def test_order_start_and_updated(site: Site) -> None:
    async with site.events() as repo:
        starts = [i.raw["start"]["dateTime"] async for i in repo.list(order="start", page_size=9)]
        updated = [i.updated_at async for i in repo.list(order="updated")]
    assert starts == sorted(starts) and len(starts) == N_EVENTS + 5
    assert updated == sorted(updated)  # type: ignore[type-var]
    assert [r.query.get("orderBy") for r in site.lists()][-1] == "updated"
    async with site.events(single_events=False) as repo:
        with pytest.raises(InvalidQuery, match="single_events"):
            [i async for i in repo.list(order="start")]
        masters = [i.title async for i in repo.list()]
    assert masters.count("Daily sync") == 1


async def test_since_and_search_are_pushed_down(site: Site) -> None:
    since = START - timedelta(days=1) + timedelta(minutes=50)
    async with site.events() as repo:
        recent = [i async for i in repo.list(since=since)]
        standups = [i.title async for i in repo.search("standup", page_size=3)]
    assert recent and all(i.updated_at and i.updated_at >= since for i in recent)
    assert len(recent) == len([e for e in live(site.state) if e.updated >= since])
    assert site.lists()[0].query["updatedMin"] == "2025-03-31T09:50:00.000Z"
    wanted = sorted(f"Meeting {n} standup" for n in range(0, N_EVENTS, 6))
    assert sorted(map(str, standups)) == wanted
    assert site.lists()[-1].query["q"] == "standup"


async def test_since_drops_deleted_events_unless_asked(site: Site) -> None:
    since = START - timedelta(days=1)
    async with site.events() as repo:
        titles = [i.kind async for i in repo.list(since=since)]
    assert "cancelled" not in titles
    async with site.events(show_deleted=True) as repo:
        kinds = [i.kind async for i in repo.list(since=since)]
    assert kinds.count("cancelled") == 1


async def test_incremental_sync(site: Site) -> None:
    async with site.events() as repo:
        assert repo.sync_token is None
        full = [i.identifier async for i in repo.list(page_size=25)]
        token = repo.sync_token
        assert token is not None and len(full) == N_EVENTS + 5
        nothing = [i async for i in repo.list(sync_token=token)]
        assert nothing == []
        state = site.state
        moved, deleted = live(state)[4], live(state)[5]
        state.change_event(moved, at=START, summary="Moved meeting")
        state.change_event(deleted, at=START, status="cancelled")
        changes = [(i.identifier, i.kind, i.title) async for i in repo.list(sync_token=token)]
        assert sorted(changes) == sorted(
            [(moved.id, "event", "Moved meeting"), (deleted.id, "cancelled", None)]
        )
        assert repo.sync_token != token and not repo.full_sync_required
        sync_requests = [r.query for r in site.lists() if "syncToken" in r.query]
        assert all("showDeleted" not in q and "updatedMin" not in q for q in sync_requests)


async def test_expired_sync_token_restarts_as_a_full_listing(site: Site) -> None:
    async with site.events() as repo:
        [i async for i in repo.list()]
        token = repo.sync_token
        assert token is not None
        site.state.sync_expired_before = site.state.clock + 1
        site.state.clock += 1
        ids = [i.identifier async for i in repo.list(sync_token=token, page_size=10)]
        assert repo.full_sync_required
        assert len(ids) == len(set(ids)) == N_EVENTS + 5
        assert repo.sync_token not in (None, token)
    statuses = [r.status for r in site.lists()]
    assert 410 in statuses
    after = site.lists()[statuses.index(410) + 1 :]
    assert after and all("syncToken" not in r.query for r in after)


async def test_sync_token_conflicts(site: Site) -> None:
    async with site.events() as repo:
        with pytest.raises(InvalidQuery):
            [i async for i in repo.list(sync_token="x", since=START)]
        with pytest.raises(InvalidQuery):
            [i async for i in repo.search("a", sync_token="x")]


async def test_get(site: Site) -> None:
    event = live(site.state)[7]
    gone = next(e for e in site.state.events["me@example.com"] if e.status == "cancelled")
    async with site.events() as repo:
        item = await repo.get(event.id)
        assert item.title == event.summary
        with pytest.raises(ItemNotFound, match="deleted"):
            await repo.get(gone.id)
        with pytest.raises(ItemNotFound):
            await repo.get("missing")
    async with site.events(show_deleted=True) as repo:
        assert (await repo.get(gone.id)).kind == "cancelled"


async def test_other_calendar_and_uri(site: Site) -> None:
    async with site.events(calendar="team@group.calendar.google.com") as repo:
        assert [i.title async for i in repo.list()] == ["Other calendar"]
    opened = asyncrepo.open("gcal://team@group.calendar.google.com?show_deleted=true", token="t")
    assert isinstance(opened, Events) and opened.calendar == "team@group.calendar.google.com"
    assert opened.show_deleted
    assert isinstance(asyncrepo.open("gcal://primary", token="t"), Events)
    with pytest.raises(ConfigurationError):
        Events(token="t", time_min=datetime(2025, 1, 1))


async def test_scope_and_rate_limit(site: Site) -> None:
    token = site.state.issue_token(frozenset({DRIVE_READONLY}))
    async with site.events(token=token) as repo:
        with pytest.raises(AuthenticationError, match="calendar"):
            [i async for i in repo.list()]
    body = {
        "error": {
            "code": 403,
            "message": "Rate Limit Exceeded",
            "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded"}],
        }
    }
    site.state.controls.inject(403, body=body, times=2)
    async with site.events() as repo:
        assert len([i async for i in repo.list()]) == N_EVENTS + 5


async def test_time_bounds(site: Site) -> None:
    async with site.events(
        time_min=START + timedelta(hours=10), time_max=START + timedelta(hours=20)
    ) as repo:
        items = [i async for i in repo.list()]
    assert len(items) == 10 and repo.sync_token is None
    query = site.lists()[0].query
    assert query["timeMin"] == "2025-04-01T19:00:00.000Z"


async def test_hostile_pages() -> None:
    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("pageToken")
        nxt = {None: "A", "A": "B", "B": "A"}[token]
        return web.json_response({"items": [], "nextPageToken": nxt})

    app = web.Application()
    app.router.add_get("/calendar/v3/calendars/primary/events", handler)
    async with serve(app) as base, Events(token="t", base_url=base, retry=FAST) as repo:
        with pytest.raises(MalformedResponse):
            [i async for i in repo.list()]
