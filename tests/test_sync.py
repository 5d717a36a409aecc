"""The sync engine (asyncrepo.sync) into the SQLite index: full, resumable, incremental,
diffed, deletion sweeps, isolation, bounded concurrency; against a real connector and its
fake (Jira) for the request count of an incremental run."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asyncrepo import ConfigurationError, InvalidQuery, RetryPolicy
from asyncrepo.index.sqlite import SQLiteIndex
from asyncrepo.repositories.jira.issues import Issues
from asyncrepo.sync import (
    parse_duration,
    parse_source_spec,
    source_key,
    sync,
)
from tests.fakes._common import serve
from tests.fakes.jira import make_app, make_dataset
from tests.sync_sources import BASE, MemorySource, record


def records(n: int, start: int = 0) -> dict[str, dict[str, Any]]:
    return {f"r{i:04d}": record(i) for i in range(start, start + n)}


@pytest.fixture
async def index(tmp_path: Path):
    async with SQLiteIndex(tmp_path / "asyncrepo.db") as idx:
        yield idx


async def contents(index: SQLiteIndex, source: str) -> dict[str, tuple[Any, ...]]:
    out = {}
    async for item in index.list(source=source, page_size=500):
        assert item.source == source
        key = item.identifier.split(":", 1)[1]
        out[key] = (item.title, item.text, item.author, item.kind, item.updated_at)
    return out


def expected(source: MemorySource) -> dict[str, tuple[Any, ...]]:
    out = {}
    for key in source.records:
        item = source.item(key)
        out[key] = (item.title, item.text, item.author, item.kind, item.updated_at)
    return out


async def test_first_run_is_full_later_runs_incremental(index: SQLiteIndex) -> None:
    source = MemorySource(records(95), page_size=10)
    reports = await sync({"mem": source}, index)
    report = reports["mem"]
    assert (report.mode, report.ok, report.seen, report.pages, report.items) == (
        "full",
        True,
        95,
        10,
        95,
    )
    assert len(source.calls) == 10
    assert await contents(index, "mem") == expected(source)
    state = await index.state("mem")
    assert state is not None
    assert state.status == "ok" and state.cursor is None and state.generation == 1
    assert state.high_water == BASE + timedelta(minutes=94)  # the newest updated_at seen

    # Nothing changed: the incremental run asks since = high water - overlap.
    source.calls.clear()
    reports = await sync({"mem": source}, index, overlap=timedelta(minutes=5))
    report = reports["mem"]
    assert report.mode == "incremental"
    assert report.since == BASE + timedelta(minutes=89)
    assert report.seen == 6  # minutes 89..94: the overlap window
    assert len(source.calls) == 1

    # One change and one new record: both arrive, nothing else is re-read.
    source.records["r0003"] = record(3, title="Record 3 rewritten", updated=_at(200))
    source.records["r0500"] = record(500)
    source.calls.clear()
    report = (await sync({"mem": source}, index, overlap=timedelta(minutes=5)))["mem"]
    assert report.mode == "incremental" and report.ok
    assert await contents(index, "mem") == expected(source)
    state = await index.state("mem")
    assert state is not None and state.high_water == BASE + timedelta(minutes=500)
    assert state.items == 96


def _at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()


async def test_incremental_with_nothing_changed_costs_one_request_per_page_of_results(
    tmp_path: Path,
) -> None:
    """A real connector (jira.issues on Data Center: one GET /search per page, native
    since) against its fake: the unchanged incremental run makes one request per page of
    ``since`` results, and no other request."""
    state = make_dataset(300, projects=("AS",), deployment="datacenter")
    newest = max(datetime.fromisoformat(_jira_iso(i["fields"]["updated"])) for i in _issues(state))
    async with serve(make_app(state)) as base, SQLiteIndex(tmp_path / "i.db") as index:
        fast = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0)
        jira = Issues(base, "me@example.com", "api-token-123", retry=fast, deployment="datacenter")
        async with jira:
            first = (await sync({"jira": jira}, index, page_size=50))["jira"]
            assert first.ok and first.seen == 300, first.error
            overlap = timedelta(days=900)  # about 120 of the 300 issues
            window = [
                i
                for i in _issues(state)
                if datetime.fromisoformat(_jira_iso(i["fields"]["updated"])) >= newest - overlap
            ]
            assert 50 < len(window) < 300  # several pages of since results, not everything
            state.controls.requests.clear()
            second = (await sync({"jira": jira}, index, page_size=50, overlap=overlap))["jira"]
            assert second.ok and second.mode == "incremental", second.error
            assert second.seen == len(window)
            searches = [r for r in state.controls.requests if "search" in r.path]
            assert len(searches) == math.ceil(len(window) / 50)
            assert len(state.controls.requests) == len(searches)
        assert await index.count("jira") == 300


def _issues(state: Any) -> list[dict[str, Any]]:
    return list(state.issues)


def _jira_iso(value: str) -> str:
    # "2024-06-01T12:00:00.000+0000" -> ISO 8601 with a colon in the offset
    return value[:-2] + ":" + value[-2:] if value[-5] in "+-" and value[-3] != ":" else value


async def test_a_failing_source_does_not_stop_the_others_and_resumes(index: SQLiteIndex) -> None:
    good = MemorySource(records(30), page_size=10)
    bad = MemorySource(records(50), page_size=10, fail_at_page=3)
    reports = await sync({"good": good, "bad": bad}, index)
    assert reports["good"].ok and reports["good"].seen == 30
    assert reports["bad"].ok is False
    assert "SourceUnavailable" in (reports["bad"].error or "")
    assert reports["bad"].seen == 30  # three pages were committed before the failure
    state = await index.state("bad")
    assert state is not None
    assert state.status == "failed" and "broke" in (state.last_error or "")
    assert state.cursor is not None and state.listing == "full"
    assert await index.count("bad") == 30

    bad.fail_at_page = None
    bad.calls.clear()
    report = (await sync({"bad": bad}, index))["bad"]
    assert report.ok and report.resumed and report.mode == "full"
    assert report.seen == 20  # resumed at the checkpoint: pages 4 and 5 only
    assert bad.calls[0] == 30
    assert await contents(index, "bad") == expected(bad)
    state = await index.state("bad")
    assert state is not None and state.status == "ok" and state.last_error is None


async def test_a_partial_listing_never_deletes(index: SQLiteIndex) -> None:
    source = MemorySource(records(40), page_size=10)
    await sync({"mem": source}, index)
    for key in ("r0001", "r0035"):
        del source.records[key]
    source.fail_at_page = 2
    report = (await sync({"mem": source}, index, full=True))["mem"]
    assert not report.ok and report.deleted == 0
    assert await index.count("mem") == 40  # nothing deleted on a failed listing
    source.fail_at_page = None
    report = (await sync({"mem": source}, index))["mem"]  # resumes the full listing
    assert report.ok and report.mode == "full" and report.resumed
    assert report.deleted == 2
    assert await contents(index, "mem") == expected(source)
    with pytest.raises(Exception, match="no item"):
        await index.get("mem:r0001")


async def test_periodic_full_listing_sweeps_deletions(index: SQLiteIndex) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    source = MemorySource(records(25), page_size=10)
    await sync({"mem": source}, index, clock=lambda: now[0])
    del source.records["r0004"]
    now[0] += timedelta(hours=23)
    report = (await sync({"mem": source}, index, clock=lambda: now[0]))["mem"]
    assert report.mode == "incremental" and report.deleted == 0
    assert await index.count("mem") == 25  # an incremental run cannot see deletions
    now[0] += timedelta(hours=2)  # a day after the last full listing
    report = (await sync({"mem": source}, index, clock=lambda: now[0]))["mem"]
    assert report.mode == "full" and report.deleted == 1
    assert await contents(index, "mem") == expected(source)
    state = await index.state("mem")
    assert state is not None
    assert (state.generation, state.deleted_last_run, state.items) == (2, 1, 24)
    assert state.last_full == now[0]


async def test_sources_without_since_are_relisted_and_diffed(index: SQLiteIndex) -> None:
    source = MemorySource(records(30), page_size=10, since=False)
    await sync({"csv": source}, index)
    source.records["r0002"] = record(2, title="changed title")
    del source.records["r0007"]
    source.records["r0099"] = record(99)
    report = (await sync({"csv": source}, index))["csv"]
    assert report.mode == "full" and report.seen == 30 and report.deleted == 1
    assert await contents(index, "csv") == expected(source)
    hits = [item.identifier async for item in index.search("changed")]
    assert hits == ["csv:r0002"]
    await _fts_is_consistent(index)


async def _fts_is_consistent(index: SQLiteIndex) -> None:
    def check(conn: Any) -> None:
        conn.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")

    await index._write(check)


async def test_concurrency_across_sources_is_bounded(index: SQLiteIndex) -> None:
    sources = {f"s{n}": MemorySource(records(20), page_size=5, delay=0.01) for n in range(6)}
    active = {"now": 0, "max": 0}
    originals = {}
    for key, source in sources.items():
        originals[key] = source.fetch_page

        async def counted(request: Any, state: Any, _key: str = key) -> Any:
            if state is None:  # a source's listing begins
                active["now"] += 1
                active["max"] = max(active["max"], active["now"])
            batch = await originals[_key](request, state)
            if batch.next_state is None:  # and ends
                active["now"] -= 1
            return batch

        source.fetch_page = counted  # type: ignore[method-assign]
    reports = await sync(sources, index, concurrency=2)
    assert all(r.ok for r in reports.values())
    assert active["max"] == 2
    assert await index.count() == 6 * 20


async def test_progress_and_state_for_status(index: SQLiteIndex) -> None:
    seen: list[tuple[str, int, bool | None]] = []
    source = MemorySource(records(12), page_size=5)
    await sync(
        {"mem": source},
        index,
        progress=lambda r: seen.append((r.source, r.seen, r.ok)),
        uris={"mem": "memory://x"},
    )
    assert ("mem", 5, None) in seen and seen[-1] == ("mem", 12, True)
    states = await index.states()
    assert list(states) == ["mem"]
    assert states["mem"].uri == "memory://x"
    assert states["mem"].to_json()["high_water"] == _at(11)


async def test_an_unusable_index_is_reported_per_source(tmp_path: Path) -> None:
    index = SQLiteIndex(tmp_path / "i.db")
    await index.aclose()
    reports = await sync({"mem": MemorySource(records(3))}, index)
    assert reports["mem"].ok is False and "closed" in (reports["mem"].error or "")


async def test_bad_arguments(index: SQLiteIndex) -> None:
    with pytest.raises(InvalidQuery):
        await sync({"a:b": MemorySource({})}, index)
    with pytest.raises(ConfigurationError):
        await sync({"a": MemorySource({})}, index, concurrency=0)


def test_source_keys_are_stable_and_carry_no_credentials() -> None:
    assert source_key("demo:") == "demo"
    assert source_key("./data/a.csv") == "./data/a.csv"
    assert source_key("C:\\data\\a.csv") == "C_\\data\\a.csv"
    key = source_key("jira+https://me:s3cret@example.net:8443/x?project=AS&token=abc")
    assert key == "jira+https/example.net_8443/x?project=AS"
    assert "s3cret" not in key and "abc" not in key
    assert parse_source_spec("wiki=confluence+https://x.net/wiki") == (
        "wiki",
        "confluence+https://x.net/wiki",
    )
    assert parse_source_spec("github://orgs/python") == (
        "github/orgs/python",
        "github://orgs/python",
    )


def test_durations() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("2h") == timedelta(hours=2)
    with pytest.raises(ConfigurationError):
        parse_duration("soon")
