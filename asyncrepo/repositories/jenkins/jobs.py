"""Jenkins jobs (``jenkins.jobs``), folders and multibranch projects walked recursively.

``Jobs(base_url, username=None, api_token=None, *, folder="", levels=3, max_depth=10,
retry=None, timeout=60.0)``

* ``list``: ``GET {folder}/api/json?tree=jobs[FIELDS,jobs[FIELDS,jobs[FIELDS,
  jobs[name]{0,1}]]]{o,o+n}``: ``levels`` levels of folders per request, the top level
  ranged by the page size. Folders found at the deepest level of a response (the
  ``jobs[name]{0,1}`` probe says they have jobs) are listed by requests of their own after
  the current container. Folders deeper than ``max_depth`` levels are listed, their jobs
  are not. Jobs come in pre-order within a response.
* ``get("a/b")``: ``GET /job/a/job/b/api/json?tree=FIELDS``; 404 -> ``ItemNotFound``.
* ``search``: naive (Jenkins has no search API worth using). ``since``: client-side, on
  the last build's start (jobs never built are kept: they have no date).

Items: identifier = ``fullName`` (``team/inner/deep job``; a multibranch branch keeps
Jenkins' encoded name, ``app/feature%2Flogin``); title = ``fullDisplayName``; text =
description; url; updated_at = the last build's start; kind = ``freestyle``, ``pipeline``,
``folder``, ``multibranch``... (from ``_class``). ``raw`` is the job as sent, without its
nested ``jobs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiolimiter import AsyncLimiter

from ...convert import parse_datetime
from ...exceptions import ConfigurationError, MalformedResponse
from ...http import RetryPolicy
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest
from ...rest import RESTRepository
from ._client import JOB_FIELDS, JobWalk, job_kind, job_path, make_client

__all__ = ["Jobs"]

JSON = Any


class Jobs(RESTRepository):
    """Jobs of a Jenkins instance (or of one folder), see the module docstring."""

    name: ClassVar[str] = "jenkins.jobs"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native", search="naive", since="client", max_page_size=1000
    )
    default_page_size = 100

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        api_token: str | None = None,
        *,
        folder: str = "",
        levels: int = 3,
        max_depth: int = 10,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        if (
            not isinstance(levels, int)
            or levels < 1
            or not isinstance(max_depth, int)
            or (max_depth < 1)
        ):
            raise ConfigurationError("levels and max_depth must be positive", source=self.name)
        self.client = make_client(
            base_url,
            username,
            api_token,
            source=self.name,
            retry=retry,
            timeout=timeout,
            max_connections=max_connections,
            headers=headers,
            limiter=limiter,
        )
        self.base_url = self.client.base_url
        self.folder = folder.strip("/")
        self.walk = JobWalk(
            self.client, self.name, root=self.folder, levels=levels, max_depth=max_depth
        )

    def scope(self) -> JSON:
        return {"site": self.base_url, "folder": self.folder}

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        page = await self.walk.page(state, request.page_size)
        items = [self._item(raw) for raw, _depth in page.jobs]
        return Batch(items, page.next_state)

    def _item(self, raw: dict[str, Any]) -> Item:
        try:
            return self.to_item(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponse(
                f"unexpected job shape ({type(exc).__name__}: {exc})", source=self.name
            ) from None

    async def get(self, identifier: str) -> Item:
        """The job with this full name (``folder/job``); ``ItemNotFound`` if there is none
        or it is outside the repository's folder."""
        wanted = str(identifier).strip("/")
        if not wanted or "" in wanted.split("/"):
            raise self.not_found(str(identifier), "not a job's full name")
        if self.folder and not wanted.startswith(self.folder + "/"):
            raise self.not_found(wanted, f"it is not in folder {self.folder!r}")
        return await self.get_item(
            job_path(wanted) + "/api/json", wanted, params={"tree": JOB_FIELDS}
        )

    def to_item(self, raw: Any) -> Item:
        raw.pop("jobs", None)
        full = raw.get("fullName") or raw["name"]
        last = raw.get("lastBuild")
        stamp = last.get("timestamp") if isinstance(last, dict) else None
        description = raw.get("description")
        return Item(
            str(full),
            raw,
            self,
            title=raw.get("fullDisplayName") or str(full),
            text=description if isinstance(description, str) and description else None,
            url=raw.get("url"),
            updated_at=parse_datetime(stamp / 1000) if isinstance(stamp, int | float) else None,
            kind=job_kind(raw.get("_class")),
        )

    def __repr__(self) -> str:
        folder = f" folder={self.folder!r}" if self.folder else ""
        return f"<{type(self).__name__} {self.name} {self.base_url}{folder}>"
