"""Slack channels (``slack.channels``).

``Channels(token=None, types="public_channel,private_channel", exclude_archived=False, *,
base_url="https://slack.com/api", team_url=None, rate_limits=True, retry=None, timeout=60.0,
max_connections=20)``; the token defaults to ``$SLACK_TOKEN``.

* ``list``: ``conversations.list`` (Tier 2), cursor pagination through
  ``response_metadata.next_cursor``, ``limit`` up to 1,000. Slack filters after paging, so
  a page may be short or empty and still have a cursor: the listing goes on until the cursor
  is empty. ``types`` (``public_channel``, ``private_channel``, ``mpim``, ``im``, comma
  separated) and ``exclude_archived`` are passed through. Private channels are listed only
  where the token's user or bot is a member (Slack's rule).
* ``get(id)``: ``conversations.info``; ``channel_not_found`` is ``ItemNotFound``.
* ``search``: naive, over the name, the topic and the purpose.
* ``since``: client-side, on the creation time. No ``order``.

Item fields: ``title`` = name (a DM has none: the other user's id); ``text`` = purpose and
topic, one per line; ``url`` = ``https://WORKSPACE.slack.com/archives/ID``; ``created_at`` =
``created``; ``author`` = the creator's user id; ``kind`` = ``"channel"`` (``"im"``,
``"mpim"`` for direct messages).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...exceptions import ConfigurationError
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint
from ._client import SlackCursor, SlackRepository, ts_datetime

__all__ = ["CONVERSATION_TYPES", "Channels"]

CONVERSATION_TYPES = ("public_channel", "private_channel", "mpim", "im")
LIST_MAX = 1000


def check_types(types: Any, source: str) -> str:
    if isinstance(types, list | tuple):
        types = ",".join(str(t) for t in types)
    if not isinstance(types, str) or not types.strip():
        raise ConfigurationError("types must name conversation types", source=source)
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in CONVERSATION_TYPES]
    if unknown or not wanted:
        raise ConfigurationError(
            f"unknown conversation type(s) {', '.join(unknown)} (accepted: "
            f"{', '.join(CONVERSATION_TYPES)})",
            source=source,
        )
    return ",".join(wanted)


class Channels(SlackRepository):
    """Slack conversations the token can see (see the module docstring)."""

    name: ClassVar[str] = "slack.channels"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native", search="naive", since="client", max_page_size=LIST_MAX
    )
    default_page_size = 200

    def __init__(
        self,
        token: str | None = None,
        types: str = "public_channel,private_channel",
        exclude_archived: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(token, **options)
        self.types = check_types(types, self.name)
        self.exclude_archived = bool(exclude_archived)

    def scope(self) -> Any:
        return {"api": self.client.base_url, "types": self.types, "x": self.exclude_archived}

    def endpoint(self, request: PageRequest) -> Endpoint:
        return Endpoint(
            "conversations.list",
            params={"types": self.types, "exclude_archived": self.exclude_archived},
            records="channels",
            paginator=SlackCursor(),
            limiter=self.limiter("conversations.list"),
        )

    async def get(self, identifier: str) -> Item:
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        return await self.get_record("conversations.info", {"channel": wanted}, "channel", wanted)

    def search_fields(self, raw: Any) -> list[Any]:
        return [raw.get("name"), _value(raw.get("topic")), _value(raw.get("purpose"))]

    def to_item(self, raw: Any) -> Item:
        kind = "im" if raw.get("is_im") else "mpim" if raw.get("is_mpim") else "channel"
        text = "\n".join(v for v in (_value(raw.get("purpose")), _value(raw.get("topic"))) if v)
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=raw.get("name") or raw.get("user"),
            text=text or None,
            created_at=ts_datetime(raw.get("created")),
            author=raw.get("creator") or None,
            kind=kind,
        )

    def item_url(self, item: Item, team_url: str) -> str | None:
        return f"{team_url}archives/{item.identifier}"


def _value(field: Any) -> str | None:
    if isinstance(field, dict):
        value = field.get("value")
        return value if isinstance(value, str) and value else None
    return None
