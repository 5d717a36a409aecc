"""Slack messages (``slack.messages``).

``Messages(token=None, channel=None, *, threads=False, types="public_channel,private_channel",
concurrency=4, base_url="https://slack.com/api", team_url=None, rate_limits=True, retry=None,
timeout=60.0, max_connections=20)``; the token defaults to ``$SLACK_TOKEN``.

Listing
-------
* With a ``channel``: ``conversations.history`` (Tier 3), ``limit`` up to 999 (the default
  page is 200, Slack's advice). Newest first by default (``order="-created"``), following
  ``response_metadata.next_cursor``. ``order="created"`` (oldest first) walks forward with
  ``oldest``: each request asks for the messages after the newest one seen (Slack then
  answers the ones closest to ``oldest``), and the page is put oldest first.
* ``since`` is native: sent as ``oldest`` (with ``inclusive=true``), so Slack returns only
  messages posted at or after it (newest first, ``latest`` is set a day ahead: with
  ``oldest`` alone Slack would answer the messages closest to ``oldest``). Edits do not
  move a message (``since`` is about the post).
* Without a channel: every conversation of ``types`` that ``conversations.list`` shows the
  token, read one after the other in channel-id order, each in the order asked (the order
  holds *within* a channel; a global order would need every channel read first). Up to
  ``concurrency`` channels are fetched ahead at once, a few pages each. A bot token reads
  only the channels it is a member of (``is_member``); a channel that answers
  ``not_in_channel`` or ``channel_not_found`` (left or deleted meanwhile) is skipped. The
  cursor holds the channel's id and that channel's own cursor, so it resumes in the same
  channel even if channels were added or removed meanwhile.
* ``threads=True``: the replies of every thread (``conversations.replies``, all its pages;
  the parent Slack repeats on each page is dropped) follow their parent, oldest first,
  fetched concurrently for a page's threads. ``order`` and ``since`` apply to the top-level
  messages; the replies of an older thread that got new replies are not revisited.

Search
------
Native: ``search.messages`` (Tier 2) with ``sort=timestamp`` (``sort_dir=desc``, or
``asc`` for ``order="created"``), ``count`` up to 100, pages by number (fetched
concurrently once the first page tells how many there are; Slack serves at most 100 pages).
It needs a **user** token (``xoxp-``) with ``search:read``: with a bot token (``xoxb-``)
``search`` raises ``UnsupportedOption`` before any request; a token Slack refuses for the
method (``not_allowed_token_type``) raises ``AuthenticationError``. With a ``channel`` the
query gets ``in:#NAME`` (the name from ``conversations.info``, once) and results from other
channels are dropped; ``since`` adds ``after:`` (the day before, as Slack's ``after:`` is
exclusive and by day) and results older than ``since`` are dropped. Query syntax is
Slack's.

Items
-----
``identifier`` = ``CHANNEL:ts`` (``get`` takes the same: ``conversations.history`` bounded
to that ``ts``, else ``conversations.replies`` for a thread reply). ``title`` = the first
line of the text; ``text`` = the message text with Slack's markup made plain (see
``slack_to_text``: ``<@U1>`` -> ``@U1``, ``<#C1|general>`` -> ``#general``,
``<https://x|label>`` -> ``label (https://x)``; user ids are not resolved to names);
``author`` = the user id (a bot message: its ``bot_id`` or ``username``); ``created_at`` =
``ts``; ``updated_at`` = the last edit (``edited.ts``), if any; ``url`` = the permalink
(search gives it; otherwise built as Slack builds it, from the workspace URL that
``auth.test`` gives once: ``https://W.slack.com/archives/C/p<ts without dot>``, with
``?thread_ts=...&cid=C`` for a reply: no ``chat.getPermalink`` call per message);
``kind`` = ``"message"`` or ``"reply"``.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from ...exceptions import (
    ConfigurationError,
    InvalidCursor,
    ItemNotFound,
    PermissionDenied,
    UnsupportedOption,
)
from ...pagination import Batch, PreparedRequest, pump
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint
from ...wire import Response
from ._client import (
    OldestWalk,
    SearchPages,
    SlackCursor,
    SlackRepository,
    check_positive,
    datetime_ts,
    first_line,
    key_datetime,
    slack_to_text,
    ts_datetime,
    ts_key,
)
from .channels import check_types

__all__ = ["Messages"]

HISTORY_MAX = 999
SEARCH_MAX = 100
LIST_PAGE = 1000  # channels per conversations.list request when fanning out
REPLIES_PAGE = 200
_SKIPPED = ("not_in_channel", "channel_not_found")

_Feed = asyncio.Queue[tuple[str, Any]]
_new = object.__new__


def _ts_sort_key(raw: Any) -> tuple[int, int]:
    key = ts_key(raw.get("ts")) if isinstance(raw, dict) else None
    return key or (0, 0)


def _oldest_first(body: Any) -> Any:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return messages
    return sorted(messages, key=_ts_sort_key)


class Messages(SlackRepository):
    """Messages of one Slack channel, or of every channel the token reads (see the module)."""

    name: ClassVar[str] = "slack.messages"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=frozenset({"created", "-created"}),
        max_page_size=HISTORY_MAX,
    )
    default_page_size = 200

    def __init__(
        self,
        token: str | None = None,
        channel: str | None = None,
        *,
        threads: bool = False,
        types: str = "public_channel,private_channel",
        concurrency: int = 4,
        **options: Any,
    ) -> None:
        super().__init__(token, **options)
        if channel is not None and (not isinstance(channel, str) or not channel.strip()):
            raise ConfigurationError("channel must be a channel id such as C123", source=self.name)
        self.channel = channel.strip() if channel is not None else None
        self.threads = bool(threads)
        self.types = check_types(types, self.name)
        self.concurrency = check_positive(concurrency, "concurrency", self.name)
        self._channel_name: str | None = None

    def scope(self) -> Any:
        return {
            "api": self.client.base_url,
            "channel": self.channel,
            "threads": self.threads,
            "types": None if self.channel else self.types,
        }

    def check_options(self, operation: str, options: Any) -> None:
        if operation == "search" and self.bot_token:
            raise UnsupportedOption(
                "Slack's search.messages needs a user token (xoxp-) with the search:read "
                "scope; this is a bot token (xoxb-). List the channel's messages and search "
                "them client-side, or use a user token",
                source=self.name,
            )

    # -- endpoints --------------------------------------------------------------------------

    def history_endpoint(self, request: PageRequest, channel: str) -> Endpoint:
        since = datetime_ts(request.since) if request.since is not None else None
        limiter = self.limiter("conversations.history")
        if request.order == "created":
            return Endpoint(
                "conversations.history",
                params={"channel": channel},
                records=_oldest_first,
                paginator=OldestWalk(start=since),
                limiter=limiter,
            )
        params: dict[str, Any] = {"channel": channel}
        if since is not None:
            # With ``oldest`` alone Slack answers the messages closest to ``oldest``; a
            # ``latest`` (a day ahead, clocks differ) keeps the pages newest first.
            params["oldest"] = since
            params["inclusive"] = True
            params["latest"] = datetime_ts(datetime.now(UTC) + timedelta(days=1))
        return Endpoint(
            "conversations.history",
            params=params,
            records="messages",
            paginator=SlackCursor(),
            limiter=limiter,
        )

    def search_endpoint(self, request: PageRequest, query: str) -> Endpoint:
        return Endpoint(
            "search.messages",
            params={
                "query": query,
                "sort": "timestamp",
                "sort_dir": "asc" if request.order == "created" else "desc",
                "highlight": False,
            },
            records="messages.matches",
            paginator=SearchPages(),
            limiter=self.limiter("search.messages"),
        )

    def endpoint(self, request: PageRequest) -> Endpoint:
        if request.query is not None:
            return self.search_endpoint(request, request.query)
        if self.channel is None:
            raise NotImplementedError("a listing of every channel goes through stream()")
        return self.history_endpoint(request, self.channel)

    # -- pages ------------------------------------------------------------------------------

    def stream(self, request: PageRequest, state: Any) -> AsyncIterator[tuple[Any, Batch]]:
        if request.query is not None:
            return super().stream(request, state)
        if self.channel is not None:
            return self._channel_stream(request, self.channel, state)
        return self._fan_out(request, state)

    async def _channel_stream(
        self, request: PageRequest, channel: str, state: Any
    ) -> AsyncIterator[tuple[Any, Batch]]:
        """A channel's pages, pipelined: ``pump`` sends the next page's request as soon as
        this page's cursor is read, and the items are built while it is in flight."""
        workspace = self.start_workspace()
        pages = pump(
            lambda page_state: self._raw_page(request, channel, page_state),
            state,
            concurrency=1,
            track=self.background_tasks,
        )
        try:
            async for page_state, page in pages:
                assert isinstance(page, _RawPage) and page.response is not None
                # Let the next page's request leave before this page's items are built.
                await asyncio.sleep(0)
                items = self.message_items(page.response, page.records, channel)
                if self.threads:
                    items = await self._with_replies(items, channel)
                await self.with_urls(items, workspace)
                workspace = None
                yield page_state, Batch(items, page.next_state)
        finally:
            await _close(pages)

    async def _raw_page(self, request: PageRequest, channel: str, state: Any) -> _RawPage:
        endpoint = self.history_endpoint(request, channel)
        base = PreparedRequest("GET", self.client.url(endpoint.path), dict(endpoint.params))
        prepared = endpoint.paginator.prepare(base, state, request.page_size)
        response = await self.client.send(prepared, limiter=endpoint.limiter)
        body = response.json()
        records = self.records(response, body, endpoint.records)
        try:
            next_state, _ = endpoint.paginator.advance(
                response, body, records, state, request.page_size
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.malformed_record(response, exc) from None
        return _RawPage([], next_state, None, response, records)

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        if request.query is not None:
            return await self._search_page(request, state)
        if self.channel is not None:
            return await self.channel_page(request, self.channel, state)
        # Every channel (``stream`` is what listings use; this serves a single page).
        ids = await self._readable_channels()
        if state is None:
            if not ids:
                return Batch([])
            channel, channel_state = ids[0], None
        else:
            channel, channel_state = _fan_state(state, self.name)
        batch = await self.channel_page(request, channel, channel_state)
        return Batch(batch.items, _next_fan_state(ids, channel, batch.next_state))

    async def channel_page(self, request: PageRequest, channel: str, state: Any) -> Batch:
        """One ``conversations.history`` page of ``channel`` (and its threads' replies)."""
        endpoint = self.history_endpoint(request, channel)
        workspace = self.start_workspace()
        base = PreparedRequest("GET", self.client.url(endpoint.path), dict(endpoint.params))
        prepared = endpoint.paginator.prepare(base, state, request.page_size)
        response = await self.client.send(prepared, limiter=endpoint.limiter)
        body = response.json()
        records = self.records(response, body, endpoint.records)
        items = self.message_items(response, records, channel)
        try:
            next_state, _ = endpoint.paginator.advance(
                response, body, records, state, request.page_size
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.malformed_record(response, exc) from None
        if self.threads:
            items = await self._with_replies(items, channel)
        await self.with_urls(items, workspace)
        return Batch(items, next_state)

    async def _search_page(self, request: PageRequest, state: Any) -> Batch:
        assert request.query is not None
        query = request.query
        if self.channel is not None:
            name = await self._name_of_channel()
            if name:
                query += f" in:#{name}"
        since = request.since
        if since is not None:
            day = since.astimezone(UTC).date() - timedelta(days=1)
            query += f" after:{day.isoformat()}"
        request = replace(request, page_size=min(request.page_size, SEARCH_MAX))
        batch = await self.fetch_endpoint(self.search_endpoint(request, query), request, state)
        if self.channel is not None or since is not None:
            prefix = f"{self.channel}:" if self.channel is not None else ""
            batch.items = [
                item
                for item in batch.items
                if item.identifier.startswith(prefix)
                and (since is None or (item.created_at is not None and item.created_at >= since))
            ]
        return batch

    async def _name_of_channel(self) -> str | None:
        if self._channel_name is None and self.channel is not None:
            _, body = await self.call("conversations.info", {"channel": self.channel})
            channel = body.get("channel")
            name = channel.get("name") if isinstance(channel, dict) else None
            self._channel_name = name if isinstance(name, str) else ""
        return self._channel_name or None

    # -- every channel ----------------------------------------------------------------------

    async def _readable_channels(self) -> list[str]:
        """The ids of the conversations to read, sorted (the fan-out's order)."""
        endpoint = Endpoint(
            "conversations.list",
            params={"types": self.types, "exclude_archived": False},
            records="channels",
            paginator=SlackCursor(),
            limiter=self.limiter("conversations.list"),
        )
        ids: set[str] = set()

        async def page(state: Any) -> Batch:
            base = PreparedRequest("GET", self.client.url(endpoint.path), dict(endpoint.params))
            prepared = endpoint.paginator.prepare(base, state, LIST_PAGE)
            response = await self.client.send(prepared, limiter=endpoint.limiter)
            body = response.json()
            records = self.records(response, body, endpoint.records)
            for raw in records:
                if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                    raise response.malformed("a conversation without an id")
                if self.bot_token and raw.get("is_member") is False:
                    continue  # a bot reads only the channels it is in
                ids.add(raw["id"])
            next_state, _ = endpoint.paginator.advance(response, body, records, state, LIST_PAGE)
            return Batch([], next_state)

        pages = pump(page, None, concurrency=1, track=self.background_tasks)
        try:
            async for _ in pages:
                pass
        finally:
            await _close(pages)
        return sorted(ids)

    async def _fan_out(self, request: PageRequest, state: Any) -> AsyncIterator[tuple[Any, Batch]]:
        """Every readable channel in id order, up to ``concurrency`` channels fetched ahead
        (each into a small queue, so memory stays bounded), yielded in order."""
        start_channel, start_state = (None, None) if state is None else _fan_state(state, self.name)
        ids = await self._readable_channels()
        index = 0
        if start_channel is not None:
            index = bisect.bisect_left(ids, start_channel)
            if index >= len(ids) or ids[index] != start_channel:
                # That channel is gone: an empty page in its place takes the cursor's skip
                # (which counted that channel's items), then the next channel follows.
                following_state = [ids[index], None] if index < len(ids) else None
                yield state, Batch([], following_state)
                start_state = None
        running: deque[tuple[str, _Feed, asyncio.Task[None]]] = deque()
        following = index
        try:
            while running or following < len(ids):
                while len(running) < self.concurrency and following < len(ids):
                    channel = ids[following]
                    first = start_state if following == index else None
                    feed: _Feed = asyncio.Queue(maxsize=2)
                    task = self._start(self._feed(request, channel, first, feed))
                    running.append((channel, feed, task))
                    following += 1
                channel, feed, _task = running[0]
                while True:
                    kind, payload = await feed.get()
                    if kind == "error":
                        raise payload
                    if kind == "done":
                        break
                    page_state, batch = payload
                    next_state = _next_fan_state(ids, channel, batch.next_state)
                    yield [channel, page_state], Batch(batch.items, next_state)
                running.popleft()
        finally:
            tasks = [task for _, _, task in running]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _feed(self, request: PageRequest, channel: str, state: Any, feed: _Feed) -> None:
        pages = self._channel_stream(request, channel, state)
        produced = False
        try:
            async for pair in pages:
                produced = True
                await feed.put(("page", pair))
            await feed.put(("done", None))
        except (PermissionDenied, ItemNotFound) as exc:
            code = (exc.vendor_message or "").split(" ", 1)[0]
            if not produced and code in _SKIPPED:
                await feed.put(("done", None))  # not readable (any more): skipped
            else:
                await feed.put(("error", exc))
        except Exception as exc:
            await feed.put(("error", exc))
        finally:
            await _close(pages)

    def _start(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        background = self.background_tasks
        background.add(task)
        task.add_done_callback(background.discard)
        return task

    # -- threads ----------------------------------------------------------------------------

    async def _with_replies(self, items: list[Item], channel: str) -> list[Item]:
        parents = [
            item
            for item in items
            if _reply_count(item.raw) > 0 and item.raw.get("thread_ts") == item.raw.get("ts")
        ]
        if not parents:
            return items
        gate = asyncio.Semaphore(self.concurrency)

        async def replies(parent: Item) -> list[Item]:
            async with gate:
                return await self._replies(channel, str(parent.raw["ts"]))

        async with asyncio.TaskGroup() as group:
            tasks = {parent.identifier: group.create_task(replies(parent)) for parent in parents}
        out: list[Item] = []
        for item in items:
            out.append(item)
            task = tasks.get(item.identifier)
            if task is not None:
                out.extend(task.result())
        return out

    async def _replies(self, channel: str, parent_ts: str) -> list[Item]:
        """Every reply of a thread, oldest first, without the parent."""
        paginator = SlackCursor()
        limiter = self.limiter("conversations.replies")
        params = {"channel": channel, "ts": parent_ts}

        async def page(state: Any) -> Batch:
            base = PreparedRequest("GET", self.client.url("conversations.replies"), dict(params))
            prepared = paginator.prepare(base, state, REPLIES_PAGE)
            response = await self.client.send(prepared, limiter=limiter)
            body = response.json()
            records = self.records(response, body, "messages")
            replies = [r for r in records if not (isinstance(r, dict) and r.get("ts") == parent_ts)]
            next_state, _ = paginator.advance(response, body, replies, state, REPLIES_PAGE)
            return Batch(self.message_items(response, replies, channel), next_state)

        out: list[Item] = []
        pages = pump(page, None, concurrency=1, track=self.background_tasks)
        try:
            async for _, batch in pages:
                out.extend(batch.items)
        except ItemNotFound as exc:
            if not (exc.vendor_message or "").startswith("thread_not_found"):
                raise
            return []  # the thread went away meanwhile
        finally:
            await _close(pages)
        out.sort(key=lambda item: _ts_sort_key(item.raw))
        return out

    # -- items ------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        """The message ``CHANNEL:ts`` (a thread reply too); ``ItemNotFound`` if there is none
        or if it is outside the repository's channel."""
        wanted = str(identifier).strip()
        channel, _, ts = wanted.rpartition(":")
        if not channel or ts_key(ts) is None:
            raise self.not_found(wanted, "not a CHANNEL:ts identifier")
        if self.channel is not None and channel != self.channel:
            raise self.not_found(wanted, f"it is not in channel {self.channel}")
        workspace = self.start_workspace()
        bounds = {"channel": channel, "latest": ts, "oldest": ts, "inclusive": True}
        response, body = await self.call("conversations.history", {**bounds, "limit": 1}, wanted)
        found = [r for r in _messages(response, body) if r.get("ts") == ts]
        if not found:  # maybe a thread reply
            try:
                response, body = await self.call("conversations.replies", {**bounds, "ts": ts})
            except ItemNotFound:
                raise self.not_found(wanted) from None
            found = [r for r in _messages(response, body) if r.get("ts") == ts]
        if not found:
            raise self.not_found(wanted)
        (item,) = self.message_items(response, found[:1], channel)
        await self.with_urls([item], workspace)
        return item

    def message_items(self, response: Response, records: list[Any], channel: str) -> list[Item]:
        try:
            return [self.message_item(raw, channel) for raw in records]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self.malformed_record(response, exc) from None

    def message_item(self, raw: Any, channel: str) -> Item:
        ts = raw["ts"]
        key = ts_key(ts) if isinstance(ts, str) else None
        if key is None:
            raise ValueError(f"not a Slack ts: {ts!r}")
        text = slack_to_text(raw.get("text"))
        thread_ts = raw.get("thread_ts")
        reply = bool(thread_ts) and thread_ts != ts
        edited = raw.get("edited")
        team_url = self.workspace.url  # known after the first page: the URL is made here
        url = None
        if team_url is not None:
            url = f"{team_url}archives/{channel}/p{ts.replace('.', '')}"
            if reply and isinstance(thread_ts, str):
                url += f"?thread_ts={thread_ts}&cid={channel}"
        # Every slot set directly: about a third of an item's cost is Item.__init__'s keyword
        # call (tests/test_slack_messages.py checks that every slot of Item is set here).
        item: Item = _new(Item)
        item.identifier = f"{channel}:{ts}"
        item.raw = raw
        item.repository = self
        item.title = first_line(text)
        item.text = text
        item.url = url
        item.created_at = key_datetime(key)
        item.updated_at = ts_datetime(edited.get("ts")) if isinstance(edited, dict) else None
        item.author = raw.get("user") or raw.get("bot_id") or raw.get("username") or None
        item.kind = "reply" if reply else "message"
        return item

    def to_item(self, raw: Any) -> Item:
        """A ``search.messages`` match (its channel is an object; it has a permalink)."""
        channel = raw["channel"]
        channel_id = channel["id"] if isinstance(channel, dict) else channel
        if not isinstance(channel_id, str) or not channel_id:
            raise ValueError("a match without a channel id")
        item = self.message_item(raw, channel_id)
        permalink = raw.get("permalink")
        if isinstance(permalink, str) and permalink.startswith(("http://", "https://")):
            item.url = permalink
        return item

    def item_url(self, item: Item, team_url: str) -> str | None:
        channel, _, ts = item.identifier.rpartition(":")
        url = f"{team_url}archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = item.raw.get("thread_ts")
        if item.kind == "reply" and isinstance(thread_ts, str):
            url += f"?thread_ts={thread_ts}&cid={channel}"
        return url


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


@dataclass
class _RawPage(Batch):
    """A history page before its items are built (``items`` stays empty)."""

    response: Response | None = None
    records: list[Any] = field(default_factory=list)


def _reply_count(raw: Any) -> int:
    count = raw.get("reply_count") if isinstance(raw, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _messages(response: Response, body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise response.malformed("expected a list of messages")
    return [m for m in messages if isinstance(m, dict)]


def _fan_state(state: Any, source: str) -> tuple[str, Any]:
    if (
        isinstance(state, list)
        and len(state) == 2
        and isinstance(state[0], str)
        and state[0]
        and (state[1] is None or isinstance(state[1], str))
    ):
        return state[0], state[1]
    raise InvalidCursor(
        "this cursor does not come from a Slack listing of every channel", source=source
    )


def _next_fan_state(ids: list[str], channel: str, channel_next: Any) -> Any:
    if channel_next is not None:
        return [channel, channel_next]
    after = bisect.bisect_right(ids, channel)
    return [ids[after], None] if after < len(ids) else None
