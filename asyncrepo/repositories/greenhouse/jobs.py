"""Job posts of a Greenhouse job board (``greenhouse.jobs``).

``Jobs(board_token, base_url="https://boards-api.greenhouse.io", *, questions=False,
pay_transparency=False, retry=None, timeout=60.0, headers=None, limiter=None)``

* ``list``: ``GET /v1/boards/{board_token}/jobs?content=true``: every post in one response
  (the endpoint is not paginated), with content, departments and offices. ``page_size``
  slices that one batch client-side; a cursor is an index into it, and resuming downloads
  the list once more.
* ``get(id)``: ``GET /v1/boards/{board_token}/jobs/{id}``. ``get`` has a fixed signature, so
  the application form is a constructor option: ``questions=True`` adds ``questions`` (and,
  where the post has them, ``location_questions``, ``compliance``,
  ``demographic_questions``) to ``raw``; ``pay_transparency=True`` adds
  ``pay_input_ranges``. Listed items never carry them.
* ``search``: naive, over the raw post (title, ``location.name``, department and office
  names and locations, ``content``, metadata...) and the plain ``text``.
* ``since``: client-side, on ``updated_at``. ``order``: ``"updated"`` / ``"-updated"``,
  client-side (the list is one batch; ties by id).

Identifiers are the decimal strings of the posts' integer ``id`` (the job *post* id,
not ``internal_job_id``). Item fields: ``title``; ``url`` = ``absolute_url``;
``updated_at``; ``created_at`` = ``first_published`` when the API sends it; ``text`` =
the post's description as plain text. ``raw`` is the post as sent: its ``content`` stays
entity-escaped HTML (``&lt;p&gt;...``), unescaped once and stripped of tags for ``text``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiolimiter import AsyncLimiter

from ...convert import html_to_text, parse_datetime
from ...http import RetryPolicy
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest
from ._client import DEFAULT_BASE_URL, BoardRepository, record_id

__all__ = ["Jobs"]

_OLDEST = datetime.min.replace(tzinfo=UTC)


class Jobs(BoardRepository):
    """Job posts of one Greenhouse job board (see the module docstring)."""

    name = "greenhouse.jobs"
    resource = "jobs"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="naive",
        since="client",
        orders=frozenset({"updated", "-updated"}),
        max_page_size=None,
    )

    def __init__(
        self,
        board_token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        questions: bool = False,
        pay_transparency: bool = False,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        super().__init__(
            board_token,
            base_url,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            headers=headers,
            limiter=limiter,
        )
        self.questions = bool(questions)
        self.pay_transparency = bool(pay_transparency)

    def list_params(self, request: PageRequest) -> dict[str, Any]:
        return {"content": True}

    def get_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.questions:
            params["questions"] = True
        if self.pay_transparency:
            params["pay_transparency"] = True
        return params

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        batch = await super().fetch_page(request, state)
        if request.order in ("updated", "-updated"):
            # The whole listing is this one batch, so sorting it orders the listing; the
            # sort is deterministic (ties by id), so cursor indices stay valid on resume.
            batch.items.sort(
                key=lambda item: (item.updated_at or _OLDEST, int(item.identifier)),
                reverse=request.order == "-updated",
            )
        return batch

    def to_item(self, raw: Any) -> Item:
        content = raw.get("content")
        return Item(
            record_id(raw),
            raw,
            self,
            title=raw.get("title"),
            text=html_to_text(content, unescape_first=True) if content is not None else None,
            url=raw.get("absolute_url"),
            created_at=parse_datetime(raw.get("first_published")),
            updated_at=parse_datetime(raw.get("updated_at")),
            kind="job",
        )
