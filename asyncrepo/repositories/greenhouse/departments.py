"""Departments of a Greenhouse job board (``greenhouse.departments``).

``Departments(board_token, base_url="https://boards-api.greenhouse.io", *, retry=None,
timeout=60.0, headers=None, limiter=None)``

* ``list``: ``GET /v1/boards/{board_token}/departments`` (``render_as=list``, the default:
  every department, flat, with ``parent_id`` and ``child_ids``), one response, sliced into
  pages client-side.
* ``get(id)``: ``GET /v1/boards/{board_token}/departments/{id}``.
* ``search``: naive, over the raw department: its name and the titles, locations and URLs
  of its jobs (so ``search("Engineer")`` also finds departments with engineering posts).
* No ``since`` (departments carry no dates) and no ``order``.

Item fields: ``title`` = ``name``; ``text`` = the titles of the department's job posts,
one per line (``None`` when it has none); ``url``/dates: ``None`` (the API has none);
``kind`` = ``"department"``. The Job Board API lists only departments of the board; the
board's jobs appear under each department's ``jobs`` (short form, no content).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...repository import Capabilities, Item
from ._client import BoardRepository, record_id

__all__ = ["Departments"]


class Departments(BoardRepository):
    """Departments of one Greenhouse job board (see the module docstring)."""

    name = "greenhouse.departments"
    resource = "departments"
    capabilities: ClassVar[Capabilities] = Capabilities(get="native", search="naive")

    def to_item(self, raw: Any) -> Item:
        jobs = raw.get("jobs") or []
        titles = [job["title"] for job in jobs if job.get("title")]
        return Item(
            record_id(raw),
            raw,
            self,
            title=raw["name"],
            text="\n".join(titles) or None,
            kind="department",
        )
