"""The SQLite index as an index (upsert, delete, state) and as a Repository (get, list,
search, pages, cursors, federation), opened by URI."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import asyncrepo
from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    Item,
    ItemNotFound,
    SourceUnavailable,
    UnsupportedOption,
)
from asyncrepo.federation import Federated
from asyncrepo.index import IndexedItem, SourceState, open_index
from asyncrepo.index.sqlite import SQLiteIndex, fts_query, path_from_uri
from tests.sync_sources import BASE, MemorySource, record


def item(key: str, **fields: Any) -> Item:
    common = {
        "title": f"title {key}",
        "text": f"text of {key}",
        "updated_at": BASE,
        "author": "ann",
        "kind": "doc",
        **fields,
    }
    return Item(key, {"key": key, "nested": {"tag": f"tag-{key}"}}, None, **common)


@pytest.fixture
async def index(tmp_path: Path):
    async with SQLiteIndex(tmp_path / "asyncrepo.db") as idx:
        yield idx


async def ids(stream: Any) -> list[str]:
    return [i.identifier async for i in stream]


async def test_upsert_get_and_round_trip(index: SQLiteIndex) -> None:
    created = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    await index.upsert(
        "src",
        [item("a", created_at=created, url="https://x.invalid/a"), item("b", text=None)],
    )
    got = await index.get("src:a")
    assert isinstance(got, IndexedItem)
    assert (got.source, got.source_identifier, got.identifier) == ("src", "a", "src:a")
    assert got.raw == {"key": "a", "nested": {"tag": "tag-a"}}
    assert (got.title, got.text, got.url, got.author, got.kind) == (
        "title a",
        "text of a",
        "https://x.invalid/a",
        "ann",
        "doc",
    )
    assert got.created_at == created and got.updated_at == BASE
    assert got.to_dict()["source"] == "src"
    b = await index.get("src:b")
    assert b.text is None  # a text-less item stays text-less...
    assert await ids(index.search("tag-b")) == ["src:b"]  # ...but its raw values are searchable
    with pytest.raises(ItemNotFound):
        await index.get("src:zzz")
    with pytest.raises(InvalidQuery):
        await index.get("no-source-part")


async def test_upsert_replaces_and_the_fts_table_follows(index: SQLiteIndex) -> None:
    await index.upsert("s", [item("a", title="old words")])
    await index.upsert("s", [item("a", title="new words")])
    await index.upsert("s", [item("a", title="new words")])  # unchanged: no FTS rewrite
    assert await ids(index.search("old")) == []
    assert await ids(index.search("new")) == ["s:a"]
    assert await index.count() == 1
    await index._write(
        lambda c: c.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
    )


async def test_delete_by_identifier_and_by_generation(index: SQLiteIndex) -> None:
    await index.upsert("s", [item("a"), item("b"), item("c")], generation=1)
    await index.upsert("t", [item("a")], generation=1)
    assert await index.delete("s", ["a"]) == 1
    assert await index.delete("s", ["a"]) == 0  # already gone
    await index.upsert("s", [item("b")], generation=2)
    state = SourceState("s", generation=2)
    assert await index.delete("s", not_seen_since=2, state=state) == 1  # c
    assert state.items == 1
    assert await ids(index.list()) == ["s:b", "t:a"]
    with pytest.raises(ItemNotFound):
        await index.get("s:c")
    await index.upsert("s", [item("c")], generation=2)  # it comes back
    assert await index.count("s") == 2


async def test_state_is_written_with_the_items(index: SQLiteIndex) -> None:
    state = SourceState("s", cursor="abc", generation=3, high_water=BASE)
    await index.upsert("s", [item("a")], state=state)
    loaded = await index.state("s")
    assert loaded == state
    assert await index.state("other") is None
    assert list(await index.states()) == ["s"]


async def test_a_failed_transaction_writes_neither_items_nor_state(index: SQLiteIndex) -> None:
    await index.upsert("s", [item("a")], state=SourceState("s", cursor="one"))
    await index._write(
        lambda c: c.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON items WHEN new.identifier = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    )
    with pytest.raises(SourceUnavailable, match="boom"):
        await index.upsert("s", [item("b"), item("boom")], state=SourceState("s", cursor="two"))
    assert await ids(index.list()) == ["s:a"]  # b was rolled back with the failing item
    state = await index.state("s")
    assert state is not None and state.cursor == "one"  # the checkpoint did not move


async def test_search_filters_sort_and_pages(index: SQLiteIndex) -> None:
    items = []
    for n in range(30):
        items.append(
            item(
                f"k{n:02d}",
                title=f"apple {n}" if n % 5 == 0 else f"pear {n}",
                text="fruit salad" + (" apple apple apple" if n == 7 else ""),
                updated_at=BASE + timedelta(days=n),
                author="ann" if n < 10 else "bob",
                kind="doc" if n % 3 else "note",
            )
        )
    await index.upsert("a", items[:15])
    await index.upsert("b", items[15:])
    hits = [i async for i in index.search("apple")]
    assert len(hits) == 7
    assert hits[-1].identifier == "a:k07"  # only in the text: title matches weigh more
    assert all(isinstance(h, IndexedItem) and h.snippet for h in hits)
    scores = [h.score or 0.0 for h in hits if isinstance(h, IndexedItem)]
    assert scores == sorted(scores, reverse=True) and len(scores) == 7
    assert await ids(index.search("apple", source="b")) == await ids(
        index.search("apple", source=["b"])
    )
    assert {i.split(":")[0] for i in await ids(index.search("fruit", source="b"))} == {"b"}
    assert len(await ids(index.search("fruit", author="ann"))) == 10
    assert len(await ids(index.search("fruit", kind=["note"]))) == 10
    window = await ids(
        index.search("fruit", since=BASE + timedelta(days=5), until=BASE + timedelta(days=8))
    )
    assert sorted(window) == ["a:k05", "a:k06", "a:k07"]
    newest = await ids(index.search("fruit", sort="date"))
    assert newest[:2] == ["b:k29", "b:k28"]
    oldest = await ids(index.search("fruit", order="updated"))
    assert oldest[:2] == ["a:k00", "a:k01"]
    assert await ids(index.search('"salad apple"')) == ["a:k07"]  # a phrase
    assert len(await ids(index.search("app*"))) == 7  # a prefix

    # Pages and cursors, resumed by a fresh page stream (as a client would).
    collected: list[str] = []
    cursor = None
    while True:
        stream = index.search_pages("fruit", page_size=7, cursor=cursor, sort="date")
        page = await anext(stream)
        await stream.aclose()
        collected += [i.identifier for i in page]
        cursor = page.cursor
        if cursor is None:
            break
    assert collected == newest and len(collected) == 30
    first = await anext(index.search_pages("fruit", page_size=2))
    assert first.cursor is not None
    with pytest.raises(InvalidCursor):
        index.search_pages("other", cursor=first.cursor)


async def test_odd_queries_are_literal_not_syntax_errors(index: SQLiteIndex) -> None:
    await index.upsert("s", [item("a", title='C++ "quoted" AND/OR NEAR(x) col:umn')])
    for query in ['"unbalanced', "AND", "NEAR(x", "col:umn", "C++", "-x", "a OR", "AND/OR"]:
        await ids(index.search(query))  # no SQL error: FTS5 syntax is taken literally
    assert await ids(index.search("NEAR(x")) == ["s:a"]
    with pytest.raises(InvalidQuery, match="nothing to search"):
        await ids(index.search("*"))
    assert await ids(index.search("col:umn")) == ["s:a"]
    assert fts_query('a "b c" d*') == '"a" AND "b c" AND "d"*'
    with pytest.raises(InvalidQuery):
        fts_query("* **")


async def test_bad_options(index: SQLiteIndex) -> None:
    with pytest.raises(InvalidQuery):
        index.search("x", sort="sideways")
    with pytest.raises(InvalidQuery):
        index.search("x", source=3)
    with pytest.raises(InvalidQuery):
        index.search("x", until=datetime(2024, 1, 1))  # naive
    with pytest.raises(UnsupportedOption):
        index.search("x", colour="red")
    with pytest.raises(InvalidQuery):
        await index.upsert("has:colon", [item("a")])


async def test_listing_is_keyset_paged_and_excludes_deleted(index: SQLiteIndex) -> None:
    await index.upsert("s", [item(f"i{n:03d}") for n in range(250)])
    await index.delete("s", ["i010", "i200"])
    pages = [len(p) async for p in index.list_pages(page_size=100)]
    assert pages == [100, 100, 48]
    assert len(await ids(index.list(since=BASE))) == 248


async def test_an_index_federates_with_a_live_source(index: SQLiteIndex) -> None:
    await index.upsert("old", [item("a", title="banana bread")])
    live = MemorySource({"x": record(1)})  # record 1's text mentions "banana"
    async with Federated({"index": index, "live": live}) as both:
        found = sorted(await ids(both.search("banana")))
    assert found == ["index:old:a", "live:x"]


async def test_open_by_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with asyncrepo.open("sqlite:///rel.db") as idx:
        assert isinstance(idx, SQLiteIndex) and idx.path == "rel.db"
        await idx.upsert("s", [item("a")])
    assert (tmp_path / "rel.db").exists()
    async with open_index(f"sqlite:///{tmp_path}/abs.db") as idx:
        assert (
            isinstance(idx, SQLiteIndex) and idx.path == f"{tmp_path}/abs.db"
        )  # sqlite:////abs.db: four slashes, absolute
    async with open_index() as idx:
        assert isinstance(idx, SQLiteIndex) and idx.path == "asyncrepo.db"
    monkeypatch.setenv("ASYNCREPO_INDEX", "sqlite:///env.db")
    async with open_index() as idx:
        assert isinstance(idx, SQLiteIndex) and idx.path == "env.db"
    assert path_from_uri(urlsplit("sqlite://")) == "asyncrepo.db"
    assert path_from_uri(urlsplit("sqlite:x.db")) == "x.db"
    with pytest.raises(ConfigurationError):
        asyncrepo.open("sqlite://host/x.db")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("sqlite:///x.db?mode=ro")
    with pytest.raises(ConfigurationError):
        SQLiteIndex(":memory:")
    with pytest.raises(ConfigurationError, match="not an index"):
        open_index("demo:")


async def test_two_processes_worth_of_connections_read_while_one_writes(tmp_path: Path) -> None:
    """WAL: a second index object (as `serve` in another process) reads while a write
    transaction is open."""
    path = tmp_path / "shared.db"
    async with SQLiteIndex(path) as writer, SQLiteIndex(path) as reader:
        await writer.upsert("s", [item("a")])

        def hold(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE items SET title = 'changed'")

        await writer._write(hold)
        assert (await reader.get("s:a")).title == "title a"  # not blocked, sees the last commit
        await writer._write(lambda c: c.execute("COMMIT"))
        assert (await reader.get("s:a")).title == "changed"


async def test_an_unchanged_item_is_not_reindexed(index: SQLiteIndex) -> None:
    def fts_pages(conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("SELECT count(*), sum(length(block)) FROM items_fts_data").fetchone()
        return int(row[0]), int(row[1] or 0)

    await index.upsert("s", [item(f"i{n}") for n in range(50)], generation=1)
    before = await index._write(fts_pages)
    await index.upsert("s", [item(f"i{n}") for n in range(50)], generation=2)  # same content
    assert await index._write(fts_pages) == before  # the full-text index was not touched
    await index.upsert("s", [item("i3", title="a new title")], generation=2)
    assert await index._write(fts_pages) != before
    assert await ids(index.search("new title")) == ["s:i3"]


async def test_purge_removes_a_source_entirely(index: SQLiteIndex) -> None:
    await index.upsert("gone", [item("a"), item("b")], state=SourceState("gone"))
    await index.upsert("kept", [item("a")])
    await index.delete("gone", ["b"])  # a tombstone is purged too
    assert await index.purge("gone") == 2
    assert await ids(index.list()) == ["kept:a"]
    assert await index.state("gone") is None
    assert await ids(index.search("text")) == ["kept:a"]
    await index._write(
        lambda c: c.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
    )
