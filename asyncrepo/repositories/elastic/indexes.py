"""Indexes of an Elasticsearch / OpenSearch cluster.

* ``list``: ``GET /_cat/indices[/{pattern}]?format=json`` (one answer, sorted by name),
  open and closed indexes. Hidden indexes (``index.hidden``) and system / dot-prefixed ones
  (``.kibana``, ``.security``...) are left out unless ``include_hidden=True``
  (``expand_wildcards=all``; the dot-prefixed ones are also dropped client-side, as
  Elasticsearch lists some of them anyway).
* ``get(name)``: ``GET /{name}``: the index's aliases, mappings and settings (404 ->
  ``ItemNotFound``). A name that is an alias of one index gives that index.
* ``search``: naive, over the listed rows (names, health, status...).

Items: identifier = title = the index name; ``created_at`` from the creation date;
``url`` = ``<base>/<index>``; ``raw`` = the ``_cat/indices`` row (list) or
``{"index": name, "aliases", "mappings", "settings"}`` (get).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...exceptions import InvalidQuery, ItemNotFound
from ...http import RetryPolicy
from ...pagination import Batch, SinglePage
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint, RESTRepository
from ._client import ElasticClient, Flavour, make_client, segment
from .documents import _date

__all__ = ["Indexes"]

JSON = Any
_COLUMNS = (
    "index",
    "health",
    "status",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "creation.date",
)


class Indexes(RESTRepository):
    """Indexes of a cluster, optionally those matching ``pattern`` (``logs-*``).

    ``Indexes(base_url, pattern=None, *, include_hidden=False, api_key=, username=,
    password=, token=, flavour="auto", retry=, timeout=, max_connections=, verify_ssl=True)``.
    """

    name: ClassVar[str] = "elastic.indexes"
    capabilities: ClassVar[Capabilities] = Capabilities(get="native", search="naive")

    def __init__(
        self,
        base_url: str,
        pattern: str | None = None,
        *,
        include_hidden: bool = False,
        api_key: str | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        flavour: str = "auto",
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        verify_ssl: bool = True,
    ) -> None:
        self.client: ElasticClient = make_client(
            base_url,
            source=self.name,
            api_key=api_key,
            username=username,
            password=password,
            token=token,
            flavour=flavour,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            verify_ssl=verify_ssl,
        )
        self.base_url = self.client.base_url
        self.pattern = pattern.strip() if pattern and pattern.strip() else None
        self.include_hidden = include_hidden

    def scope(self) -> JSON:
        return {"base_url": self.base_url, "pattern": self.pattern, "hidden": self.include_hidden}

    async def flavour(self) -> Flavour:
        return await self.client.flavour()

    def endpoint(self, request: PageRequest) -> Endpoint:
        path = "/_cat/indices" + (f"/{segment(self.pattern)}" if self.pattern else "")
        return Endpoint(
            path,
            params={
                "format": "json",
                "h": ",".join(_COLUMNS),
                "s": "index",
                "bytes": "b",
                "expand_wildcards": "all" if self.include_hidden else "open,closed",
            },
            paginator=SinglePage(),
        )

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        batch = await super().fetch_page(request, state)
        if not self.include_hidden:
            batch.items = [i for i in batch.items if not i.identifier.startswith(".")]
        return batch

    async def get(self, identifier: str) -> Item:
        """The index (or the one index behind an alias); ``ItemNotFound`` if none."""
        wanted = str(identifier).strip()
        if not wanted or any(c in wanted for c in "*?,/"):
            raise self.not_found(wanted, "expected one index name")
        try:
            response = await self.client.request("GET", f"/{segment(wanted)}")
        except ItemNotFound as exc:
            raise self.not_found_from(wanted, exc) from None
        body = response.json()
        if isinstance(body, dict) and len(body) > 1:
            raise InvalidQuery(
                f"{wanted!r} is an alias of {len(body)} indexes; get takes one index",
                source=self.name,
            )
        return self.item(response, body)

    def to_item(self, raw: Any) -> Item:
        if "index" in raw:  # a _cat/indices row
            name = raw["index"]
            created = _date(_number(raw.get("creation.date")))
        else:  # GET /{index}: {"<name>": {"aliases", "mappings", "settings"}}
            if len(raw) != 1:
                raise ValueError(f"expected one index, got {len(raw)}")
            ((name, meta),) = raw.items()
            if not isinstance(meta, dict):
                raise TypeError("index metadata is not an object")
            settings = meta.get("settings")
            index_settings = settings.get("index") if isinstance(settings, dict) else None
            created = None
            if isinstance(index_settings, dict):
                created = _date(_number(index_settings.get("creation_date")))
            raw = {"index": name, **meta}
        if not isinstance(name, str) or not name:
            raise TypeError("an index without a name")
        return Item(
            name,
            raw,
            self,
            title=name,
            url=f"{self.base_url}/{segment(name)}",
            created_at=created,
            kind="index",
        )

    def __repr__(self) -> str:
        pattern = f" {self.pattern!r}" if self.pattern else ""
        return f"<{type(self).__name__} {self.name} {self.base_url}{pattern}>"


def _number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
