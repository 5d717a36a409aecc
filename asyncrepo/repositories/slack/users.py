"""Slack users (``slack.users``).

``Users(token=None, *, base_url="https://slack.com/api", team_url=None, rate_limits=True,
retry=None, timeout=60.0, max_connections=20)``; the token defaults to ``$SLACK_TOKEN``.

* ``list``: ``users.list`` (Tier 2), cursor pagination through
  ``response_metadata.next_cursor``, ``limit`` up to 1,000. Deactivated users are listed
  too (``raw["deleted"]``), as Slack lists them.
* ``get(id)``: ``users.info`` (Tier 4); ``user_not_found`` is ``ItemNotFound``.
* ``search``: naive, over the user name, the real name, the display name, the title and
  the email address. Slack shows the email only to tokens with the ``users:read.email``
  scope; without it, the email is neither returned nor searched.
* ``since``: client-side, on ``updated``. No ``order``.

Item fields: ``title`` = the real name (else the display name, else the user name);
``text`` = the profile's title; ``url`` = ``https://WORKSPACE.slack.com/team/ID``;
``updated_at`` = ``updated``; ``kind`` = ``"user"`` or ``"bot"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint
from ._client import SlackCursor, SlackRepository, ts_datetime

__all__ = ["Users"]

LIST_MAX = 1000


class Users(SlackRepository):
    """Members of the token's Slack workspace (see the module docstring)."""

    name: ClassVar[str] = "slack.users"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native", search="naive", since="client", max_page_size=LIST_MAX
    )
    default_page_size = 200

    def endpoint(self, request: PageRequest) -> Endpoint:
        return Endpoint(
            "users.list",
            records="members",
            paginator=SlackCursor(),
            limiter=self.limiter("users.list"),
        )

    async def get(self, identifier: str) -> Item:
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        return await self.get_record("users.info", {"user": wanted}, "user", wanted)

    def search_fields(self, raw: Any) -> list[Any]:
        profile = raw.get("profile") or {}
        return [
            raw.get("name"),
            raw.get("real_name"),
            profile.get("real_name"),
            profile.get("display_name"),
            profile.get("title"),
            profile.get("email"),
        ]

    def to_item(self, raw: Any) -> Item:
        profile = raw.get("profile") or {}
        title = (
            profile.get("real_name")
            or raw.get("real_name")
            or profile.get("display_name")
            or raw.get("name")
        )
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=title or None,
            text=profile.get("title") or None,
            updated_at=ts_datetime(raw.get("updated")),
            kind="bot" if raw.get("is_bot") else "user",
        )

    def item_url(self, item: Item, team_url: str) -> str | None:
        return f"{team_url}team/{item.identifier}"
