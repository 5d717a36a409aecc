"""Declarative REST sources: a connector says *where* (an ``Endpoint``) and *what* (``to_item``);
this module does the requests, pagination, error mapping and malformed-body checks.

A connector subclasses ``RESTRepository``, builds its ``HTTPClient`` in ``__init__``, and
implements ``endpoint(request)`` (the listing or, for a native search, the search endpoint)
and ``to_item(raw)``. A native get is one line with ``get_item(path)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter

from .exceptions import AsyncRepoError, ItemNotFound, MalformedResponse
from .http import HTTPClient, Response, redact_url
from .pagination import Batch, Paginator, PreparedRequest, SinglePage, dig
from .repository import Item, PageRequest, Repository

__all__ = ["Endpoint", "RESTRepository"]

JSON = Any


@dataclass(frozen=True)
class Endpoint:
    """One listing endpoint: path (relative to the client's base URL, or absolute), fixed
    parameters or JSON body, where the records are in the body (``records``: a dotted path,
    a function, or ``None`` when the body is the list) and how pages follow each other."""

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    json: Any = None
    records: str | Callable[[Any], Any] | None = None
    paginator: Paginator = field(default_factory=SinglePage)
    limiter: AsyncLimiter | None = None


class RESTRepository(Repository):
    """A repository over an HTTP API through the shared transport."""

    client: HTTPClient

    # -- what a connector implements ------------------------------------------------------

    def endpoint(self, request: PageRequest) -> Endpoint:
        """The endpoint for this listing (or native search, when ``request.query`` is set)."""
        raise NotImplementedError

    def to_item(self, raw: Any) -> Item:
        """Map one vendor record to an ``Item``. A ``KeyError``/``TypeError``/``ValueError``
        raised here becomes ``MalformedResponse``."""
        raise NotImplementedError

    # -- machinery ------------------------------------------------------------------------

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        return await self.fetch_records(request, state, defer=False)

    def page_fetcher(self, request: PageRequest) -> Callable[[JSON], Awaitable[Batch]]:
        if type(self).fetch_page is not RESTRepository.fetch_page:
            return super().page_fetcher(request)  # the connector reworks its pages itself
        return lambda state: self.fetch_records(request, state, defer=True)

    async def fetch_records(self, request: PageRequest, state: JSON, *, defer: bool) -> Batch:
        """One page from the endpoint. ``defer=True`` leaves making the items to ``pump``
        (``Batch.build``), after it has sent the next page's request."""
        endpoint = self.endpoint(request)
        base = PreparedRequest(
            endpoint.method, self.client.url(endpoint.path), dict(endpoint.params), endpoint.json
        )
        prepared = endpoint.paginator.prepare(base, state, request.page_size)
        response = await self.client.send(prepared, limiter=endpoint.limiter)
        body = response.json()
        records = self.records(response, body, endpoint.records)
        next_state, following = endpoint.paginator.advance(
            response, body, records, state, request.page_size
        )
        if defer:
            return Batch([], next_state, following, build=lambda: self.items(response, records))
        return Batch(self.items(response, records), next_state, following)

    def records(self, response: Response, body: Any, where: Any) -> list[Any]:
        records = where(body) if callable(where) else dig(body, where)
        if not isinstance(records, list):
            raise response.malformed(
                f"expected a list of records at {where or 'the top level'!s}, "
                f"got {type(records).__name__}"
            )
        return records

    def items(self, response: Response, records: list[Any]) -> list[Item]:
        to_item = self.to_item
        try:
            return [to_item(raw) for raw in records]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self.malformed_record(response, exc) from None

    def item(self, response: Response, raw: Any) -> Item:
        try:
            return self.to_item(raw)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self.malformed_record(response, exc) from None

    def malformed_record(self, response: Response, exc: Exception) -> MalformedResponse:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        return MalformedResponse(
            f"unexpected record shape ({type(exc).__name__}: {what})",
            source=self.name,
            method=response.method,
            url=redact_url(response.url),
            status=response.status,
        )

    async def get_item(
        self, path: str, identifier: str, *, params: Mapping[str, Any] | None = None
    ) -> Item:
        """GET one record and map it; a 404 is ``ItemNotFound`` for ``identifier``."""
        try:
            response = await self.client.request("GET", path, params=params)
        except ItemNotFound as exc:
            raise self.not_found_from(identifier, exc) from None
        return self.item(response, response.json())

    def not_found_from(self, identifier: str, error: AsyncRepoError) -> ItemNotFound:
        return ItemNotFound(
            f"no item {identifier!r}",
            identifier=identifier,
            source=self.name,
            method=error.method,
            url=error.url,
            status=error.status,
            vendor_message=error.vendor_message,
        )

    async def aclose(self) -> None:
        await super().aclose()
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.client.base_url}>"
