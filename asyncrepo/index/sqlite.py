"""The embedded index: one SQLite file with FTS5 (BM25 ranking, snippets), in WAL mode.

``SQLiteIndex("asyncrepo.db")`` or ``asyncrepo.open("sqlite:///asyncrepo.db")`` (three
slashes: a path relative to the working directory; four: an absolute path, as in
SQLAlchemy). The standard library's ``sqlite3`` runs in two threads of our own, one with the
writing connection and one with a reading connection: the event loop never waits on the
disk, and WAL mode lets searches (``asyncrepo serve``) run while a sync writes, from this
process or another. No extra dependency (``aiosqlite`` would be the same thread under a
wrapper, and one connection for reads and writes).

Tables: ``items`` (one row per ``(source, identifier)``: the common fields, dates as epoch
seconds, the raw record as JSON, the listing ``generation`` that last saw it and a
``deleted_at`` tombstone), ``items_fts`` (an external-content FTS5 table over title, body
and author) and ``sources`` (one JSON ``SourceState`` per source). ``upsert(...,
state=...)`` writes a page in one transaction: the page is staged in a temporary table, the
full-text entries of changed items are replaced set-wise (an unchanged item is not
re-indexed; per-row triggers cost three to four times as much), the items are upserted, and
the state written.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote

import orjson

from ..exceptions import ConfigurationError, InvalidQuery, SourceUnavailable
from ..item import collect_strings
from ..pagination import Batch
from ..repository import Item, PageRequest
from .base import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    Index,
    IndexedItem,
    SourceState,
    check_source_key,
    filter_values,
    split_identifier,
)

__all__ = ["DEFAULT_PATH", "SQLiteIndex", "from_uri", "fts_query"]

DEFAULT_PATH = "asyncrepo.db"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    rowid INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    identifier TEXT NOT NULL,
    title TEXT,
    body TEXT,
    has_text INTEGER NOT NULL,
    url TEXT,
    author TEXT,
    kind TEXT,
    created_at REAL,
    updated_at REAL,
    stamp REAL,
    raw BLOB NOT NULL,
    seen INTEGER NOT NULL,
    deleted_at REAL,
    indexed_at REAL NOT NULL,
    UNIQUE (source, identifier)
);
CREATE INDEX IF NOT EXISTS items_stamp ON items (stamp);
CREATE INDEX IF NOT EXISTS items_source_seen ON items (source, seen);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5 (
    title, body, author,
    content = 'items', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS items_ad AFTER DELETE ON items BEGIN
    INSERT INTO items_fts (items_fts, rowid, title, body, author)
    VALUES ('delete', old.rowid, old.title, old.body, old.author);
END;
-- Inserts and updates keep items_fts in step in upsert() (set-based, three to four times
-- cheaper than row triggers); earlier files had triggers for them.
DROP TRIGGER IF EXISTS items_ai;
DROP TRIGGER IF EXISTS items_au;
CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, state TEXT NOT NULL);
"""

# One page of an upsert, staged (per writer connection): the last row of an identifier wins.
_PAGE_TABLE = """
PRAGMA temp_store = MEMORY;
CREATE TEMP TABLE IF NOT EXISTS page (
    identifier TEXT PRIMARY KEY, title TEXT, body TEXT, has_text INTEGER, url TEXT,
    author TEXT, kind TEXT, created_at REAL, updated_at REAL, stamp REAL, raw BLOB,
    reindex INTEGER NOT NULL DEFAULT 1
);
"""
_STAGE = """
INSERT OR REPLACE INTO temp.page (identifier, title, body, has_text, url, author, kind,
                                  created_at, updated_at, stamp, raw)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Rows whose indexed text (title, body, author) is unchanged are not re-indexed.
_MARK_UNCHANGED = """
UPDATE temp.page SET reindex = 0 WHERE EXISTS (
    SELECT 1 FROM items i WHERE i.source = ?1 AND i.identifier = page.identifier
    AND i.title IS page.title AND i.body IS page.body AND i.author IS page.author)
"""
# CROSS JOIN fixes the join order: from the page (small) to items by (source, identifier);
# the planner would otherwise walk every item of the source for each page.
_FTS_DELETE_OLD = """
INSERT INTO items_fts (items_fts, rowid, title, body, author)
SELECT 'delete', i.rowid, i.title, i.body, i.author
FROM temp.page p CROSS JOIN items i ON i.source = ?1 AND i.identifier = p.identifier
WHERE p.reindex = 1
"""
_UPSERT = """
INSERT INTO items (source, identifier, title, body, has_text, url, author, kind,
                   created_at, updated_at, stamp, raw, seen, deleted_at, indexed_at)
SELECT ?1, identifier, title, body, has_text, url, author, kind, created_at, updated_at,
       stamp, raw, ?2, NULL, ?3
FROM temp.page WHERE true
ON CONFLICT (source, identifier) DO UPDATE SET
    title = excluded.title, body = excluded.body, has_text = excluded.has_text,
    url = excluded.url, author = excluded.author, kind = excluded.kind,
    created_at = excluded.created_at, updated_at = excluded.updated_at,
    stamp = excluded.stamp, raw = excluded.raw, seen = excluded.seen,
    deleted_at = NULL, indexed_at = excluded.indexed_at
"""
_FTS_INSERT_NEW = """
INSERT INTO items_fts (rowid, title, body, author)
SELECT i.rowid, i.title, i.body, i.author
FROM temp.page p CROSS JOIN items i ON i.source = ?1 AND i.identifier = p.identifier
WHERE p.reindex = 1
"""


_COLUMNS = (
    "i.source, i.identifier, i.title, i.body, i.has_text, i.url, i.author, i.kind, "
    "i.created_at, i.updated_at, i.raw, i.deleted_at"
)
#: BM25 column weights: title, body, author.
_WEIGHTS = "10.0, 1.0, 2.0"
_SNIPPET_TOKENS = 24


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _date(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def fts_query(query: str) -> str:
    """A user's query as an FTS5 expression: every term must occur (AND); quoted phrases
    stay phrases; a trailing ``*`` is a prefix search. FTS5 syntax in the query is taken
    literally (quoted), so no query is a syntax error."""
    try:
        parts = shlex.split(query)
    except ValueError:
        parts = query.split()
    terms = []
    for part in parts:
        prefix = part.endswith("*")
        word = part.rstrip("*").strip()
        if not word:
            continue
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    if not terms:
        raise InvalidQuery(f"nothing to search for in {query!r}", source=SQLiteIndex.name)
    return " AND ".join(terms)


class _Connection:
    """One sqlite3 connection owned by one thread; ``run(fn)`` calls ``fn(conn)`` there."""

    def __init__(self, path: str, *, writer: bool) -> None:
        self.path = path
        self.writer = writer
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="asyncrepo-sqlite")
        self.conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self.conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            if self.writer:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SCHEMA)
                conn.executescript(_PAGE_TABLE)
            else:
                conn.execute("PRAGMA query_only = 1")
            self.conn = conn
        return self.conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            return fn(self._open())

        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def close(self) -> None:
        def shut() -> None:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        self.executor.submit(shut).result()
        self.executor.shutdown(wait=True)


class SQLiteIndex(Index):
    """Items of every synced source in one SQLite file. See the module docstring."""

    name = "index.sqlite"

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH) -> None:
        self.path = str(path)
        if self.path == ":memory:" or not self.path:
            raise ConfigurationError("the SQLite index needs a file path", source=self.name)
        self._writer = _Connection(self.path, writer=True)
        self._reader = _Connection(self.path, writer=False)
        self._ready = False
        self._closed = False

    def scope(self) -> Any:
        return os.path.abspath(self.path)

    async def _ensure(self) -> None:
        if self._closed:
            raise SourceUnavailable("the index is closed", source=self.name)
        if not self._ready:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            await self._write(lambda conn: None)  # opens it, WAL on, schema made
            self._ready = True

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._writer.run(fn)
        except sqlite3.DatabaseError as exc:
            raise SourceUnavailable(f"SQLite index {self.path}: {exc}", source=self.name) from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        await self._ensure()
        try:
            return await self._reader.run(fn)
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc) or "syntax" in str(exc):
                raise InvalidQuery(
                    f"the index cannot run this query: {exc}", source=self.name
                ) from exc
            raise SourceUnavailable(f"SQLite index {self.path}: {exc}", source=self.name) from exc
        except sqlite3.DatabaseError as exc:
            raise SourceUnavailable(f"SQLite index {self.path}: {exc}", source=self.name) from exc

    async def aclose(self) -> None:
        await super().aclose()
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._close_all)

    def _close_all(self) -> None:
        self._reader.close()
        self._writer.close()

    # -- writing ---------------------------------------------------------------------------

    async def upsert(
        self,
        source: str,
        items: Sequence[Item],
        *,
        generation: int = 0,
        state: SourceState | None = None,
    ) -> None:
        check_source_key(source)
        await self._ensure()
        state_json = orjson.dumps(state.to_json()).decode() if state is not None else None

        def work(conn: sqlite3.Connection) -> None:
            now = time.time()
            rows = []
            for item in items:
                text = item.text
                if text:
                    body = text
                else:
                    strings: list[str] = []
                    collect_strings(item.raw, strings)
                    body = " ".join(strings)
                created, updated = item.created_at, item.updated_at
                created_s = created.timestamp() if created is not None else None
                updated_s = updated.timestamp() if updated is not None else None
                rows.append(
                    (
                        str(item.identifier),
                        item.title,
                        body,
                        1 if text is not None else 0,
                        item.url,
                        item.author,
                        item.kind,
                        created_s,
                        updated_s,
                        updated_s if updated_s is not None else created_s,
                        orjson.dumps(item.raw, default=str),
                    )
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM temp.page")
                conn.executemany(_STAGE, rows)
                conn.execute(_MARK_UNCHANGED, (source,))
                conn.execute(_FTS_DELETE_OLD, (source,))
                conn.execute(_UPSERT, (source, generation, now))
                conn.execute(_FTS_INSERT_NEW, (source,))
                if state_json is not None:
                    _put_state(conn, source, state_json)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._write(work)

    async def delete(
        self,
        source: str,
        identifiers: Iterable[str] = (),
        *,
        not_seen_since: int | None = None,
        state: SourceState | None = None,
    ) -> int:
        check_source_key(source)
        await self._ensure()
        wanted = [str(i) for i in identifiers]

        def work(conn: sqlite3.Connection) -> int:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                count = 0
                if wanted:
                    cur = conn.executemany(
                        "UPDATE items SET deleted_at = ? WHERE source = ? AND identifier = ? "
                        "AND deleted_at IS NULL",
                        [(now, source, i) for i in wanted],
                    )
                    count += cur.rowcount
                if not_seen_since is not None:
                    cur = conn.execute(
                        "UPDATE items SET deleted_at = ? WHERE source = ? AND seen < ? "
                        "AND deleted_at IS NULL",
                        (now, source, not_seen_since),
                    )
                    count += cur.rowcount
                if state is not None:
                    state.items = _count(conn, source)
                    _put_state(conn, source, orjson.dumps(state.to_json()).decode())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return count

        return await self._write(work)

    async def purge(self, source: str) -> int:
        """Remove a source from the index entirely: its items (even tombstones) and state."""
        await self._ensure()

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute("DELETE FROM items WHERE source = ?", (source,))
            conn.execute("DELETE FROM sources WHERE source = ?", (source,))
            conn.execute("COMMIT")
            return cur.rowcount

        return await self._write(work)

    async def save_state(self, state: SourceState) -> None:
        check_source_key(state.source)
        await self._ensure()
        text = orjson.dumps(state.to_json()).decode()
        await self._write(lambda conn: _put_state(conn, state.source, text))

    # -- reading ---------------------------------------------------------------------------

    async def state(self, source: str) -> SourceState | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT state FROM sources WHERE source = ?", (source,)
            ).fetchone()
        )
        return SourceState.from_json(orjson.loads(row[0])) if row else None

    async def states(self) -> dict[str, SourceState]:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT source, state FROM sources ORDER BY source"
            ).fetchall()
        )
        return {key: SourceState.from_json(orjson.loads(text)) for key, text in rows}

    async def count(self, source: str | None = None) -> int:
        def work(conn: sqlite3.Connection) -> int:
            if source is None:
                row = conn.execute("SELECT count(*) FROM items WHERE deleted_at IS NULL")
                return int(row.fetchone()[0])
            return _count(conn, source)

        return await self._read(work)

    async def get(self, identifier: str) -> Item:
        key, ident = split_identifier(identifier, self.name)
        row = await self._read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM items i WHERE i.source = ? AND i.identifier = ? "
                "AND i.deleted_at IS NULL",
                (key, ident),
            ).fetchone()
        )
        if row is None:
            raise self.not_found(str(identifier))
        return self._item(row)

    def _item(
        self, row: Sequence[Any], snippet: str | None = None, score: float | None = None
    ) -> Item:
        source, ident, title, body, has_text, url, author, kind, created, updated, raw, gone = row
        item = IndexedItem(
            source,
            ident,
            orjson.loads(raw),
            self,
            snippet=snippet,
            score=score,
            deleted_at=_date(gone),
            title=title,
            text=body if has_text else None,
            url=url,
            author=author,
            kind=kind,
            created_at=_date(created),
            updated_at=_date(updated),
        )
        return item

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        where: list[str] = ["i.deleted_at IS NULL"]
        params: list[Any] = []
        options = request.options
        for name in ("source", "kind", "author"):
            values = filter_values(options.get(name))
            if values is not None:
                where.append(f"i.{name} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if request.since is not None:
            where.append("i.stamp >= ?")
            params.append(request.since.timestamp())
        until = options.get("until")
        if until is not None:
            where.append("i.stamp < ?")
            params.append(until.timestamp())
        size = request.page_size
        by_date = options.get("sort") == "date" or request.order == "-updated"
        if request.order == "updated":
            order = "i.stamp ASC, i.rowid ASC"
        elif by_date:
            order = "i.stamp DESC, i.rowid DESC"
        else:
            order = None
        if request.query is not None:
            match = fts_query(request.query)
            offset = int(state or 0)
            sql = (
                f"SELECT {_COLUMNS}, snippet(items_fts, -1, ?, ?, '…', {_SNIPPET_TOKENS}), "
                f"bm25(items_fts, {_WEIGHTS}) AS rank "
                "FROM items_fts JOIN items i ON i.rowid = items_fts.rowid "
                f"WHERE items_fts MATCH ? AND {' AND '.join(where)} "
                f"ORDER BY {order or 'rank, i.rowid'} LIMIT ? OFFSET ?"
            )
            args = [HIGHLIGHT_START, HIGHLIGHT_END, match, *params, size, offset]

            def search(conn: sqlite3.Connection) -> list[Item]:
                rows = conn.execute(sql, args).fetchall()
                return [self._item(r[:12], r[12], -float(r[13])) for r in rows]

            items = await self._read(search)
            following = offset + len(items) if len(items) == size else None
            return Batch(items, following)
        if order is None:  # a plain listing: keyset pagination on rowid
            after = int(state or 0)
            sql = (
                f"SELECT {_COLUMNS}, i.rowid FROM items i "
                f"WHERE i.rowid > ? AND {' AND '.join(where)} ORDER BY i.rowid LIMIT ?"
            )
            args = [after, *params, size]

            def listing(conn: sqlite3.Connection) -> tuple[list[Item], int]:
                rows = conn.execute(sql, args).fetchall()
                return [self._item(r[:12]) for r in rows], (rows[-1][12] if rows else after)

            items, last = await self._read(listing)
            return Batch(items, last if len(items) == size else None)
        offset = int(state or 0)
        sql = (
            f"SELECT {_COLUMNS} FROM items i WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT ? OFFSET ?"
        )
        args = [*params, size, offset]
        items = await self._read(
            lambda conn: [self._item(r) for r in conn.execute(sql, args).fetchall()]
        )
        return Batch(items, offset + len(items) if len(items) == size else None)


def _count(conn: sqlite3.Connection, source: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM items WHERE source = ? AND deleted_at IS NULL", (source,)
    ).fetchone()
    return int(row[0])


def _put_state(conn: sqlite3.Connection, source: str, text: str) -> None:
    conn.execute(
        "INSERT INTO sources (source, state) VALUES (?, ?) "
        "ON CONFLICT (source) DO UPDATE SET state = excluded.state",
        (source, text),
    )


def path_from_uri(parts: SplitResult) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``;
    ``sqlite:rel.db`` -> ``rel.db``; ``sqlite://`` -> the default ``asyncrepo.db``."""
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URIs name a local file (sqlite:///relative.db, sqlite:////absolute.db), "
            f"not a host ({parts.netloc!r})"
        )
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]
    return path or DEFAULT_PATH


def from_uri(parts: SplitResult, options: dict[str, Any]) -> SQLiteIndex:
    for key, _value in parse_qsl(parts.query):
        raise ConfigurationError(f"the SQLite index takes no URI option {key!r}")
    return SQLiteIndex(path_from_uri(parts), **options)
