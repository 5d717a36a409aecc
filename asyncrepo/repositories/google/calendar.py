"""Google Calendar events (``google.calendar``).

``Events(token=None, *, calendar="primary", show_deleted=False, single_events=True,
time_min=None, time_max=None, credentials=None, credentials_file=None, subject=None, ...)``

* ``list``: ``GET /calendar/v3/calendars/{calendar}/events`` (``events.list``), following
  ``nextPageToken`` with ``maxResults`` up to 2,500. ``singleEvents=true`` by default:
  recurring events come as their instances. Calendar may answer partial or empty pages
  before the end: the listing goes on while a ``nextPageToken`` comes back.
  ``time_min``/``time_max`` (aware datetimes) bound the events' times.
* ``order``: ``"start"`` (``orderBy=startTime``, needs ``single_events``) or ``"updated"``
  (``orderBy=updated``); both ascending, as Calendar only has those. Without ``order``:
  Calendar's "unspecified, stable order".
* ``since``: natively, ``updatedMin``. Calendar then also returns events deleted since
  then; they are dropped unless ``show_deleted=True`` (``showDeleted=true``).
* ``search(query)``: natively, ``q`` (summary, description, location, attendees...).
* ``get(id)``: ``events.get`` (a cancelled event is ``ItemNotFound`` unless
  ``show_deleted``).
* Incremental sync: the last page of a plain listing (no query, ``since``, ``order`` or time
  bounds) carries Calendar's ``nextSyncToken``; the repository keeps it as ``sync_token``
  once the listing is complete. ``list(sync_token=TOKEN)`` lists only the events changed
  since (``syncToken``), deleted ones included (``raw["status"] == "cancelled"``, ``kind``
  ``"cancelled"``), and updates ``sync_token`` again at its end. When Calendar answers 410
  ``fullSyncRequired`` (an expired token), the listing restarts cleanly as a full listing
  from the first page, and ``full_sync_required`` is True for that listing: the caller
  should replace, not patch, what it stored. ``sync_token`` cannot be combined with
  ``since``, ``search``, ``order`` or time bounds (Calendar forbids it: ``InvalidQuery``).

Items: ``identifier`` = event id (an instance's id for recurring events), ``title`` =
summary, ``text`` = description (HTML made plain), ``url`` = ``htmlLink``,
``created_at``/``updated_at``, ``author`` = organizer's display name (else email),
``kind`` = ``"event"`` (``"cancelled"`` for deleted events).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from ...convert import html_to_text, parse_datetime
from ...exceptions import ConfigurationError, InvalidCursor, InvalidQuery, SourceUnavailable
from ...http import RetryPolicy
from ...pagination import Batch, PreparedRequest
from ...repository import Capabilities, Item, PageRequest
from ._client import (
    GoogleRepository,
    PageToken,
    RawPage,
    positive_int,
    rfc3339,
)

__all__ = ["Events"]

DEFAULT_BASE_URL = "https://www.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/calendar.readonly",)
ORDER_BY = {"start": "startTime", "updated": "updated"}
MAX_PAGE_SIZE = 2500
_FULL = "full"  # marks the states of a listing restarted as a full sync


class Events(GoogleRepository):
    """Events of one Google calendar (see the module docstring)."""

    name: ClassVar[str] = "google.calendar"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=frozenset(ORDER_BY),
        options=frozenset({"sync_token"}),
        max_page_size=MAX_PAGE_SIZE,
    )
    default_page_size = 250

    def __init__(
        self,
        token: str | None = None,
        *,
        calendar: str = "primary",
        show_deleted: bool = False,
        single_events: bool = True,
        time_min: datetime | None = None,
        time_max: datetime | None = None,
        credentials: Any = None,
        credentials_file: str | os.PathLike[str] | None = None,
        subject: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        scopes: Sequence[str] = SCOPES,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
    ) -> None:
        if not isinstance(calendar, str) or not calendar.strip():
            raise ConfigurationError(
                "calendar must be 'primary' or a calendar id", source=self.name
            )
        for label, bound in (("time_min", time_min), ("time_max", time_max)):
            if bound is not None and (not isinstance(bound, datetime) or bound.tzinfo is None):
                raise ConfigurationError(
                    f"{label} must be a timezone-aware datetime", source=self.name
                )
        self.calendar = calendar.strip()
        self.show_deleted = bool(show_deleted)
        self.single_events = bool(single_events)
        self.time_min = time_min
        self.time_max = time_max
        #: Calendar's nextSyncToken from the last complete plain or incremental listing.
        self.sync_token: str | None = None
        #: True when the last incremental listing had to restart as a full one (410).
        self.full_sync_required = False
        self.connect(
            base_url,
            token=token,
            credentials=credentials,
            credentials_file=credentials_file,
            subject=subject,
            scopes=scopes,
            retry=retry,
            timeout=timeout,
            max_connections=positive_int(max_connections, "max_connections", self.name),
        )
        self._events = f"/calendar/v3/calendars/{quote(self.calendar, safe='@')}/events"

    def scope(self) -> Any:
        return {
            "calendar": self.calendar,
            "deleted": self.show_deleted,
            "single": self.single_events,
            "min": self.time_min.isoformat() if self.time_min else None,
            "max": self.time_max.isoformat() if self.time_max else None,
        }

    def check_options(self, operation: str, options: Any) -> None:
        token = options.get("sync_token")
        if token is None:
            return
        if not isinstance(token, str) or not token:
            raise InvalidQuery(
                "sync_token must be a token from Events.sync_token", source=self.name
            )
        if operation == "search":
            raise InvalidQuery("Calendar cannot search with a sync_token", source=self.name)

    # -- listing --------------------------------------------------------------------------

    def params(self, request: PageRequest, sync_token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"singleEvents": self.single_events}
        if sync_token is not None:
            if request.since is not None or request.order is not None or self._bounded():
                raise InvalidQuery(
                    "sync_token cannot be combined with since, order or time bounds (Calendar "
                    "forbids it)",
                    source=self.name,
                )
            params["syncToken"] = sync_token
            if self.show_deleted:
                params["showDeleted"] = True
            return params
        if self.show_deleted:
            params["showDeleted"] = True
        if request.order is not None:
            if request.order == "start" and not self.single_events:
                raise InvalidQuery(
                    "order='start' needs single_events=True (Calendar's rule)", source=self.name
                )
            params["orderBy"] = ORDER_BY[request.order]
        if request.query is not None:
            params["q"] = request.query
        if request.since is not None:
            params["updatedMin"] = rfc3339(request.since)
        if self.time_min is not None:
            params["timeMin"] = rfc3339(self.time_min)
        if self.time_max is not None:
            params["timeMax"] = rfc3339(self.time_max)
        return params

    def _bounded(self) -> bool:
        return self.time_min is not None or self.time_max is not None

    async def fetch_raw(self, request: PageRequest, state: Any) -> RawPage:
        full, token = self._read_state(state)
        sync = None if full else request.options.get("sync_token")
        if sync is not None and token is None:
            self.full_sync_required = False
        paginator = PageToken("maxResults")
        base = PreparedRequest("GET", self.client.url(self._events), self.params(request, sync))
        try:
            response = await self.client.send(paginator.prepare(base, token, request.page_size))
        except SourceUnavailable as exc:
            if exc.status == 410 and sync is not None and token is None:
                # fullSyncRequired: the token expired. Start over as a full listing.
                self.full_sync_required = True
                return await self.fetch_raw(request, [_FULL, None])
            raise
        body = response.json()
        records = self.records(response, body, "items")
        next_token, _ = paginator.advance(response, body, records, token, request.page_size)
        next_state = None
        if next_token is not None:
            next_state = [_FULL, next_token] if full else next_token
        return RawPage(state, response, body, records, next_state)

    async def build(self, request: PageRequest, page: RawPage) -> Batch:
        items = self.items(page.response, page.records)
        sync = request.options.get("sync_token") is not None and not isinstance(page.state, list)
        if not (self.show_deleted or sync):
            items = [item for item in items if item.kind != "cancelled"]
        if page.next_state is None:
            plain = request.query is None and request.since is None and request.order is None
            body = page.body
            found = body.get("nextSyncToken") if isinstance(body, dict) else None
            if isinstance(found, str) and found and plain and not self._bounded():
                self.sync_token = found
        return Batch(items, page.next_state)

    def _read_state(self, state: Any) -> tuple[bool, str | None]:
        if state is None or isinstance(state, str):
            return False, state
        if (
            isinstance(state, list)
            and len(state) == 2
            and state[0] == _FULL
            and (state[1] is None or isinstance(state[1], str))
        ):
            return True, state[1]
        raise InvalidCursor("this cursor does not come from a Calendar listing", source=self.name)

    # -- items ----------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        item = await self.get_item(f"{self._events}/{quote(wanted, safe='')}", wanted)
        if item.kind == "cancelled" and not self.show_deleted:
            raise self.not_found(wanted, "the event was deleted")
        return item

    def to_item(self, raw: Any) -> Item:
        organizer = raw.get("organizer") or raw.get("creator") or {}
        description = raw.get("description")
        if isinstance(description, str) and "<" in description:
            description = html_to_text(description)
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=raw.get("summary"),
            text=description,
            url=raw.get("htmlLink"),
            created_at=parse_datetime(raw.get("created")),
            updated_at=parse_datetime(raw.get("updated")),
            author=organizer.get("displayName") or organizer.get("email"),
            kind="cancelled" if raw.get("status") == "cancelled" else "event",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} calendar={self.calendar!r}>"
