"""Incremental sync of any sources into an index (``asyncrepo.index``): unified search.

``await sync({"jira": jira, "wiki": wiki}, index)`` brings the index up to date with every
source, through the sources' public ``list_pages`` (so third-party sources sync too):

* **First run: full, resumable.** The listing's page cursor is stored in the source's
  ``SourceState`` *in the same write* as the page's items (``Index.upsert(..., state=)``),
  so a crash (even SIGKILL) resumes after the last committed page and loses nothing.
* **Later runs: incremental.** ``since = high-water mark - overlap`` (the newest
  ``updated_at``/``created_at`` a completed listing saw, less ``overlap`` for clock skew
  and vendor indexing lag); items are upserted by ``(source, identifier)``. An unfinished
  incremental listing resumes with the same ``since``; the high-water mark moves only when
  a listing completes (a listing need not be in date order).
* **Sources that cannot filter by date** (``Capabilities.since is None``) are re-listed
  completely each run and diffed: unchanged items cost no full-text re-indexing, and the
  run ends with the deletion sweep below.
* **Deletions.** A full listing (first run, every ``full_every``, default daily, and every
  run of a source without ``since``) stamps the items it sees with a new generation number;
  only when it has *completed* are the items with an older stamp marked deleted. A failed
  or partial listing never deletes.
* **Isolation.** At most ``concurrency`` sources sync at once; a failing source is recorded
  (``status="failed"``, ``last_error``; its cursor kept for the next run) and does not stop
  the others. ``sync`` returns a ``SyncReport`` per source.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .exceptions import AsyncRepoError, ConfigurationError, InvalidCursor
from .index.base import Index, SourceState, check_source_key
from .repository import Page, Repository

__all__ = [
    "DEFAULT_FULL_EVERY",
    "DEFAULT_OVERLAP",
    "SyncReport",
    "parse_duration",
    "parse_source_spec",
    "source_key",
    "sync",
    "sync_forever",
]

DEFAULT_OVERLAP = timedelta(minutes=10)
DEFAULT_FULL_EVERY = timedelta(days=1)
DEFAULT_CONCURRENCY = 4


@dataclass
class SyncReport:
    """What one run did for one source (also what the progress callback gets)."""

    source: str
    mode: str = "pending"  # full, incremental (resumed: ``resumed`` is True)
    resumed: bool = False
    since: datetime | None = None
    pages: int = 0
    seen: int = 0
    deleted: int = 0
    items: int | None = None  # live items of the source in the index after the run
    ok: bool | None = None  # None while running
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Items per second so far."""
        return self.seen / max(self.seconds, 1e-9)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "mode": self.mode,
            "resumed": self.resumed,
            "since": self.since.isoformat() if self.since else None,
            "pages": self.pages,
            "seen": self.seen,
            "deleted": self.deleted,
            "items": self.items,
            "ok": self.ok,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[SyncReport], None]

_SECRET_PARAMS = re.compile(r"(token|key|secret|password|passwd|pass|auth|sig|signature)", re.I)


def source_key(uri: str) -> str:
    """A stable name for a source given by URI: the URI without credentials (user:password,
    secret-looking query parameters), ``://`` as ``/`` and no ``:`` (index identifiers are
    ``<source>:<identifier>``). ``demo:`` -> ``demo``; ``./a.csv`` -> ``./a.csv``;
    ``jira+https://me:tok@example.net?project=AS`` -> ``jira+https/example.net?project=AS``."""
    parts = urlsplit(uri.strip())
    if len(parts.scheme) <= 1:  # a path (or a Windows drive letter)
        return uri.strip().replace(":", "_") or "source"
    netloc = parts.netloc.rpartition("@")[2].replace(":", "_")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not _SECRET_PARAMS.search(k)])
    key = (
        parts.scheme
        + ("/" + netloc if netloc else "")
        + parts.path
        + ("?" + query if query else "")
    )
    return key.replace(":", "_").rstrip("/") or parts.scheme


_NAMED = re.compile(r"^([A-Za-z0-9_.\-]+)=(.+)$")


def parse_source_spec(spec: str) -> tuple[str, str]:
    """``name=URI`` -> ``(name, URI)``; a bare URI -> ``(source_key(URI), URI)``."""
    match = _NAMED.match(spec.strip())
    if match:
        return match.group(1), match.group(2)
    return source_key(spec), spec.strip()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1w"`` (a bare number: seconds)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigurationError(f"a duration is like 30s, 15m, 2h, 1d; not {text!r}")
    unit = (match.group(2) or "s").lower()
    return timedelta(seconds=float(match.group(1)) * _UNITS[unit])


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _named(repositories: Mapping[str, Repository] | Iterable[Repository]) -> dict[str, Repository]:
    if isinstance(repositories, Mapping):
        named = dict(repositories)
    else:
        named = {}
        for repo in repositories:
            key, n = repo.name, 2
            while key in named:
                key, n = f"{repo.name}#{n}", n + 1
            named[key] = repo
    for key in named:
        check_source_key(key)
    return named


async def sync(
    repositories: Mapping[str, Repository] | Iterable[Repository],
    index: Index,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    full_every: timedelta = DEFAULT_FULL_EVERY,
    full: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    page_size: int | None = None,
    progress: Progress | None = None,
    uris: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> dict[str, SyncReport]:
    """Sync every source into ``index`` (see the module docstring). ``repositories`` maps a
    stable source key to a repository (a plain iterable uses registry names). ``full=True``
    forces a full listing (and its deletion sweep) now. ``uris`` (key -> URI without
    credentials) is stored in the state for ``--status``. Never raises for a source's
    failure: see each report's ``ok`` and ``error``."""
    named = _named(repositories)
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)
    reports = {key: SyncReport(key) for key in named}

    async def one(key: str, repo: Repository) -> None:
        async with gate:
            report = reports[key]
            report.started = time.monotonic()
            job = _SourceSync(
                key, repo, index, report, overlap, full_every, full, page_size, progress, clock
            )
            job.uri = (uris or {}).get(key)
            await job.run()

    await asyncio.gather(*(one(key, repo) for key, repo in named.items()))
    return reports


async def sync_forever(
    repositories: Mapping[str, Repository] | Iterable[Repository],
    index: Index,
    every: timedelta,
    *,
    on_round: Callable[[dict[str, SyncReport]], None] | None = None,
    **options: Any,
) -> None:
    """``sync`` now and then every ``every`` (measured from the start of a round), until
    cancelled."""
    while True:
        begun = time.monotonic()
        reports = await sync(repositories, index, **options)
        if on_round is not None:
            on_round(reports)
        await asyncio.sleep(max(0.0, every.total_seconds() - (time.monotonic() - begun)))


def _stamp(page: Page) -> datetime | None:
    newest: datetime | None = None
    for item in page.items:
        stamp = item.updated_at or item.created_at
        if stamp is not None and stamp.tzinfo is not None and (newest is None or stamp > newest):
            newest = stamp
    return newest


class _SourceSync:
    def __init__(
        self,
        key: str,
        repo: Repository,
        index: Index,
        report: SyncReport,
        overlap: timedelta,
        full_every: timedelta,
        force_full: bool,
        page_size: int | None,
        progress: Progress | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.key, self.repo, self.index, self.report = key, repo, index, report
        self.overlap, self.full_every, self.force_full = overlap, full_every, force_full
        self.page_size, self.progress, self.clock = page_size, progress, clock
        self.uri: str | None = None

    def _tell(self) -> None:
        if self.progress is not None:
            self.progress(self.report)

    async def run(self) -> None:
        report = self.report
        state: SourceState | None = None
        try:
            state = await self.index.state(self.key) or SourceState(self.key)
            if self.uri is not None:
                state.uri = self.uri
            await self._run(state)
            report.ok = True
        except Exception as error:  # one source's failure never stops the others
            report.ok = False
            report.error = _describe(error)
            if state is not None:
                state.status = "failed"
                state.last_error = report.error
                state.seen_last_run = report.seen
                state.pages_last_run = report.pages
                try:
                    await self.index.save_state(state)
                except Exception as second:  # the index itself is failing: report both
                    report.error += f" (and the state could not be saved: {_describe(second)})"
        finally:
            report.finished = time.monotonic()
            self._tell()

    async def _run(self, state: SourceState) -> None:
        report = self.report
        now = self.clock()
        state.last_run = now
        state.status = "running"
        state.last_error = None
        if state.listing is not None:  # an unfinished listing: go on with it
            report.resumed = True
        else:
            caps = self.repo.capabilities
            due = (
                self.force_full
                or caps.since is None
                or state.last_full is None
                or state.high_water is None
                or now - state.last_full >= self.full_every
            )
            state.listing = "full" if due else "incremental"
            state.listing_started = now
            state.pending_high_water = None
            state.cursor = None
            state.extra.pop("listed", None)
            if due:
                state.generation += 1
                state.cursor_since = None
            else:
                assert state.high_water is not None
                state.cursor_since = state.high_water - self.overlap
        # Checkpoints are cursors, sealed with the repository's cursor key: a key kept with
        # the source's state lets a later process (after a crash) resume them.
        key = state.extra.get("cursor_key")
        if not isinstance(key, str):
            key = state.extra["cursor_key"] = secrets.token_hex(32)
        if isinstance(getattr(type(self.repo), "cursor_key", None), property):
            self.repo.cursor_key = key
        report.mode = state.listing
        report.since = state.cursor_since
        self._tell()
        await self.index.save_state(state)
        if not state.extra.get("listed"):
            await self._list(state)
        await self._finish(state)

    async def _list(self, state: SourceState) -> None:
        report = self.report
        kwargs: dict[str, Any] = {}
        if self.page_size is not None:
            kwargs["page_size"] = self.page_size
        if state.cursor_since is not None:
            kwargs["since"] = state.cursor_since
        try:
            pages = self.repo.list_pages(cursor=state.cursor, **kwargs)
        except InvalidCursor:
            # The source no longer accepts the stored cursor (its configuration changed):
            # start this listing again from the beginning; upserts are idempotent.
            state.cursor = None
            pages = self.repo.list_pages(**kwargs)
        async with aclosing(pages):
            async for page in pages:
                newest = _stamp(page)
                pending = state.pending_high_water
                if newest is not None and (pending is None or newest > pending):
                    state.pending_high_water = newest
                state.cursor = page.cursor
                if page.cursor is None:
                    state.extra["listed"] = True
                # The items and the checkpoint past them, in one write.
                await self.index.upsert(
                    self.key, page.items, generation=state.generation, state=state
                )
                report.pages += 1
                report.seen += len(page.items)
                self._tell()
        if not state.extra.get("listed"):  # an empty listing (no page at all) is complete too
            state.extra["listed"] = True
            await self.index.save_state(state)

    async def _finish(self, state: SourceState) -> None:
        report = self.report
        newest = state.pending_high_water or state.listing_started
        if state.listing == "full":
            state.high_water = newest
            state.last_full = state.listing_started
        elif newest is not None and (state.high_water is None or newest > state.high_water):
            state.high_water = newest
        full = state.listing == "full"
        state.listing = None
        state.cursor = None
        state.cursor_since = None
        state.pending_high_water = None
        state.listing_started = None
        state.extra.pop("listed", None)
        state.status = "ok"
        state.last_success = state.last_run
        state.seen_last_run = report.seen
        state.pages_last_run = report.pages
        state.deleted_last_run = 0
        if full:
            # Only now, after a complete listing: what it did not see is gone.
            report.deleted = await self.index.delete(
                self.key, not_seen_since=state.generation, state=state
            )
            if report.deleted:
                state.deleted_last_run = report.deleted
                await self.index.save_state(state)
        else:
            state.items = await self.index.count(self.key)
            await self.index.save_state(state)
        report.items = state.items


def _describe(error: BaseException) -> str:
    if isinstance(error, AsyncRepoError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
