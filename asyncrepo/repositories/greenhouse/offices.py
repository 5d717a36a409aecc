"""Offices of a Greenhouse job board (``greenhouse.offices``).

``Offices(board_token, base_url="https://boards-api.greenhouse.io", *, retry=None,
timeout=60.0, headers=None, limiter=None)``

* ``list``: ``GET /v1/boards/{board_token}/offices`` (``render_as=list``, the default:
  every office, flat, with ``parent_id`` and ``child_ids``), one response, sliced into
  pages client-side.
* ``get(id)``: ``GET /v1/boards/{board_token}/offices/{id}``.
* ``search``: naive, over the raw office: name, location, and the names of its
  departments and the titles of their jobs.
* No ``since`` (offices carry no dates) and no ``order``.

Item fields: ``title`` = ``name``; ``text`` = ``location`` (e.g. ``"New York, NY, United
States"``; ``None`` for offices without one, such as regions or "Remote"); ``url``/dates:
``None``; ``kind`` = ``"office"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...repository import Capabilities, Item
from ._client import BoardRepository, record_id

__all__ = ["Offices"]


class Offices(BoardRepository):
    """Offices of one Greenhouse job board (see the module docstring)."""

    name = "greenhouse.offices"
    resource = "offices"
    capabilities: ClassVar[Capabilities] = Capabilities(get="native", search="naive")

    def to_item(self, raw: Any) -> Item:
        location = raw.get("location")
        return Item(
            record_id(raw),
            raw,
            self,
            title=raw["name"],
            text=location if isinstance(location, str) and location else None,
            kind="office",
        )
