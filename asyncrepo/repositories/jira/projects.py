"""Jira projects, on Jira Cloud and on Jira Data Center / Server.

* Cloud: ``GET /rest/api/3/project/search`` (``startAt`` / ``maxResults`` <= 100, ``total``
  and ``isLast``; ordered by key, so pages are stable), the core ``OffsetTotal`` paginator.
* Data Center / Server: ``GET /rest/api/2/project``, a plain array (one page).
* ``get(id or key)``: ``/rest/api/3/project/{idOrKey}`` or ``/rest/api/2/project/{idOrKey}``.
* Search is naive (every term in the project's fields). No ``since``, no ``order``.

``deployment="auto"`` asks ``/rest/api/2/serverInfo`` once per repository.

Items: identifier = the project's numeric id (the key is in ``raw["key"]``); title = name;
text = description (when Jira includes it); url = ``<base>/browse/<KEY>``; author = the
project lead's display name (when included).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...http import RetryPolicy
from ...pagination import Batch, OffsetTotal, SinglePage
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint, RESTRepository
from ._client import DeploymentProbe, browse_url, display_name, make_client, path_segment

__all__ = ["Projects"]

JSON = Any
PROJECT_SEARCH_MAX = 100
_EXPAND = "description,lead"


class Projects(RESTRepository):
    """Jira projects visible to the credentials.

    ``Projects(base_url, username, password, deployment="auto")``; ``retry``, ``timeout``:
    the transport's.
    """

    name: ClassVar[str] = "jira.projects"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native", search="naive", max_page_size=PROJECT_SEARCH_MAX
    )
    default_page_size = PROJECT_SEARCH_MAX

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        deployment: str = "auto",
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
    ) -> None:
        self.client = make_client(
            base_url,
            username,
            password,
            source=self.name,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
        )
        self.base_url = self.client.base_url
        self._deployment = DeploymentProbe(self.client, deployment, self.name)

    def scope(self) -> JSON:
        return {"site": self.base_url}

    async def deployment(self) -> str:
        """``"cloud"`` or ``"server"`` (Data Center / Server), detected once if ``"auto"``."""
        return await self._deployment.get()

    def endpoint(self, request: PageRequest) -> Endpoint:
        if self._deployment.known == "cloud":
            return Endpoint(
                "/rest/api/3/project/search",
                params={"orderBy": "key", "expand": _EXPAND},
                records="values",
                paginator=OffsetTotal(last_field="isLast"),
            )
        return Endpoint("/rest/api/2/project", params={"expand": _EXPAND}, paginator=SinglePage())

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        await self._deployment.get()  # endpoint() needs to know
        return await super().fetch_page(request, state)

    async def get(self, identifier: str) -> Item:
        """The project with this id or key; ``ItemNotFound`` if there is none."""
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        version = "3" if await self._deployment.get() == "cloud" else "2"
        return await self.get_item(
            f"/rest/api/{version}/project/{path_segment(wanted)}",
            wanted,
            params={"expand": _EXPAND},
        )

    def to_item(self, raw: Any) -> Item:
        description = raw.get("description")
        return Item(
            str(raw["id"]),
            raw,
            self,
            title=raw.get("name"),
            text=description if isinstance(description, str) and description else None,
            url=browse_url(self.base_url, raw.get("key")),
            author=display_name(raw.get("lead")),
            kind="project",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url}>"
