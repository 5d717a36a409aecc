"""What the Greenhouse Job Board sources share: the client and the board repository base.

The Job Board API (``https://boards-api.greenhouse.io/v1/boards/{board_token}/...``) is
public and read-only: no authentication. Every listing (jobs, departments, offices) comes
in one response, so each source is a single-page source (``SinglePage``); the core slices
that one batch into pages of ``page_size`` and its cursors hold the index into it (resuming
downloads the listing once more).

Errors: the API answers 404 ``{"status": 404, "error": "Job not found"}`` both for an
unknown id and for anything under an unknown board, so ``get`` raises ``ItemNotFound``
either way, while a listing that answers 404 can only mean the board does not exist and
raises ``ConfigurationError`` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from aiolimiter import AsyncLimiter

from ...exceptions import ConfigurationError, ItemNotFound
from ...http import HTTPClient, RetryPolicy
from ...pagination import Batch, SinglePage
from ...repository import Item, PageRequest
from ...rest import Endpoint, RESTRepository

__all__ = ["DEFAULT_BASE_URL", "BoardRepository", "GreenhouseClient", "record_id"]

#: The public Job Board API host; paths start with ``/v1/boards/...``.
DEFAULT_BASE_URL = "https://boards-api.greenhouse.io"

# Greenhouse ids are JSON integers; identifiers are their canonical decimal strings.
_CANONICAL_ID = re.compile(r"0|[1-9][0-9]*")


class GreenhouseClient(HTTPClient):
    """The shared transport for the Job Board API (anonymous; the vendor's
    ``{"status": ..., "error": ...}`` bodies become the errors' ``vendor_message``)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        source: str,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if base.endswith("/v1"):  # the paths carry /v1 themselves
            base = base[: -len("/v1")]
        super().__init__(
            base,
            source=source,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            headers=headers,
            limiter=limiter,
        )


def record_id(raw: Any) -> str:
    """The identifier of a Greenhouse record: its integer ``id`` as a decimal string."""
    value = raw["id"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"id is not an integer: {value!r}")
    return str(value)


class BoardRepository(RESTRepository):
    """A resource of one Greenhouse job board (``/v1/boards/{board_token}/{resource}``).

    Subclasses set ``resource`` (the path segment, also the key of the records in the list
    body) and implement ``to_item``; ``list_params``/``get_params`` add query parameters.
    """

    #: Path segment under the board and key of the record list in the body.
    resource: ClassVar[str]

    def __init__(
        self,
        board_token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        if not isinstance(board_token, str) or not board_token.strip():
            raise ConfigurationError("a Greenhouse board token is required", source=self.name)
        self.board_token = board_token.strip()
        self.client = GreenhouseClient(
            base_url,
            source=self.name,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            headers=headers,
            limiter=limiter,
        )

    # -- paths and parameters -------------------------------------------------------------

    def path(self, identifier: str | None = None) -> str:
        path = f"/v1/boards/{quote(self.board_token, safe='')}/{self.resource}"
        return path if identifier is None else f"{path}/{identifier}"

    def list_params(self, request: PageRequest) -> dict[str, Any]:
        return {}

    def get_params(self) -> dict[str, Any]:
        return {}

    # -- the Repository interface ---------------------------------------------------------

    def scope(self) -> Any:
        return {"board": self.board_token}

    def endpoint(self, request: PageRequest) -> Endpoint:
        return Endpoint(
            self.path(),
            params=self.list_params(request),
            records=self.resource,
            paginator=SinglePage(),
        )

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        try:
            return await super().fetch_page(request, state)
        except ItemNotFound as exc:
            # A listing has no id in its path: a 404 means the board does not exist.
            raise ConfigurationError(
                f"no Greenhouse job board {self.board_token!r} (check the board token)",
                source=self.name,
                method=exc.method,
                url=exc.url,
                status=exc.status,
                vendor_message=exc.vendor_message,
            ) from None

    async def get(self, identifier: str) -> Item:
        """The record with this id (its decimal string). A non-numeric identifier is
        ``ItemNotFound`` without a request; so is an unknown id or an unknown board (the
        API answers both with the same 404)."""
        wanted = str(identifier)
        if not _CANONICAL_ID.fullmatch(wanted):
            raise self.not_found(wanted, "Greenhouse ids are decimal integers")
        return await self.get_item(self.path(wanted), wanted, params=self.get_params())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.board_token!r} {self.client.base_url}>"
