"""Confluence Cloud spaces (``confluence.spaces``).

``Spaces(base_url, username, password, base_path="/wiki")``:

* ``list``: REST v2 ``/api/v2/spaces`` (``description-format=plain``, so ``text`` is the
  space description), following the whole ``_links.next`` URL; archived spaces only when
  asked (``status="archived"`` or ``["current", "archived"]``).
* ``search``: naive (spaces are few; the match covers key, name and description).
* ``get``: by id (all digits) or by key. The identifier of a space item is its id (keys
  can be renamed); a numeric identifier that is no space id is tried as a key too.
* ``since``: client-side on ``created_at`` (spaces carry no modification date in v2).
* ``author``: the account id of the space's creator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiolimiter import AsyncLimiter

from ...convert import parse_datetime
from ...exceptions import ItemNotFound
from ...http import RetryPolicy
from ...pagination import NextURL
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint, RESTRepository
from ._client import V2_MAX_LIMIT, ConfluenceClient, basic_auth, parse_statuses, site_and_base

__all__ = ["Spaces"]

JSON = Any
_STATUSES = ("current", "archived")


class Spaces(RESTRepository):
    """Spaces of a Confluence Cloud site."""

    name: ClassVar[str] = "confluence.spaces"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="naive",
        since="client",
        options=frozenset({"status"}),
        max_page_size=V2_MAX_LIMIT,
    )

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        base_path: str = "/wiki",
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        limiter: AsyncLimiter | None = None,
        default_page_size: int | None = None,
    ) -> None:
        source = self.name
        self.site, self.base_path = site_and_base(base_url, base_path, source)
        self.client = ConfluenceClient(
            self.site + self.base_path,
            source=source,
            auth=basic_auth(username, password, source),
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            limiter=limiter,
        )
        if default_page_size is not None:
            self.default_page_size = default_page_size

    def scope(self) -> JSON:
        return {"site": self.site + self.base_path}

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        parse_statuses(options.get("status"), _STATUSES, "current", self.name)

    def endpoint(self, request: PageRequest) -> Endpoint:
        statuses = parse_statuses(request.options.get("status"), _STATUSES, "current", self.name)
        params: dict[str, Any] = {"description-format": "plain"}
        if len(statuses) == 1:  # v2 takes one status; both = no filter
            params["status"] = statuses[0]
        return Endpoint(
            "/api/v2/spaces",
            params=params,
            records="results",
            paginator=NextURL(next_field="_links.next", page_size_param="limit"),
        )

    def to_item(self, raw: Any) -> Item:
        description = raw.get("description") or {}
        plain = description.get("plain") or {}
        webui = (raw.get("_links") or {}).get("webui")
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=raw["name"],
            text=plain.get("value") or None,
            url=self.site + self.base_path + "/" + webui.lstrip("/") if webui else None,
            created_at=parse_datetime(raw.get("createdAt")),
            author=raw.get("authorId"),
            kind="space",
        )

    async def get(self, identifier: str) -> Item:
        """A space by id (digits) or by key."""
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "a space id or key is required")
        params = {"description-format": "plain"}
        if wanted.isdigit() and wanted.isascii():
            try:
                return await self.get_item(f"/api/v2/spaces/{wanted}", wanted, params=params)
            except ItemNotFound:
                pass  # maybe a numeric key
        response = await self.client.request(
            "GET", "/api/v2/spaces", params={**params, "keys": wanted, "limit": 1}
        )
        body = response.json()
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise response.malformed("expected a list of spaces at results")
        for raw in results:
            if isinstance(raw, dict) and raw.get("key") == wanted:
                return self.item(response, raw)
        raise self.not_found(wanted, "no space with this id or key")
