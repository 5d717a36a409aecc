"""Jenkins builds (``jenkins.builds``): of one job, or of every job of an instance or folder.

``Builds(base_url, username=None, api_token=None, *, job=None, folder="",
job_concurrency=4, levels=3, max_depth=10, retry=None, timeout=60.0)``

* ``list`` of one job: ``GET /job/a/job/b/api/json?tree=allBuilds[FIELDS]{o,o+n}``, one
  range of ``page_size`` builds a request (a job with 10,000 builds is never loaded whole),
  newest first. The first request also asks ``firstBuild[number],lastBuild[number]``:
  there are at most ``last - first + 1`` builds, so the following ranges are planned and
  fetched ``page_concurrency`` (4) at once; a short range ends the listing, and a full
  last planned range goes on range by range. Builds started meanwhile shift the ranges:
  builds already given are skipped (by number), so none comes twice. A server that
  ignores ranges (more builds than asked) or sends the same builds for every range ends
  in ``MalformedResponse``.
* ``list`` without ``job``: the jobs are walked first (as ``jenkins.jobs`` does, a light
  tree; jobs never built are skipped), then each job's builds in walk order, newest first
  within a job; the first pages of the next ``job_concurrency`` jobs are fetched ahead.
* ``since``: native, on the build's start (``timestamp``): builds come newest first, so a
  job's listing stops at its first older build; without ``job``, jobs whose last build
  started before ``since`` are not asked at all.
* ``get("a/b#123")``: ``GET /job/a/job/b/123/api/json?tree=FIELDS``; 404 -> ``ItemNotFound``.
* ``search``: naive.

Items: identifier ``job#number`` (``team/lint#5``); title = ``fullDisplayName``; text =
description; url; created_at = start; updated_at = end (start + duration) once finished,
else the start; kind ``build``. ``raw`` is the build as sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from aiolimiter import AsyncLimiter

from ...exceptions import ConfigurationError, InvalidCursor, ItemNotFound, MalformedResponse
from ...http import Response, RetryPolicy
from ...pagination import Batch, pump
from ...repository import Capabilities, Item, PageRequest
from ...rest import RESTRepository
from ._client import BUILD_FIELDS, build_item, job_path, make_client
from .jobs import Jobs

__all__ = ["Builds"]

JSON = Any
_T = TypeVar("_T")
_WALK_FIELDS = "_class,name,fullName,lastBuild[number,timestamp]"


class Builds(RESTRepository):
    """Builds of one Jenkins job, or of every job (see the module docstring)."""

    name: ClassVar[str] = "jenkins.builds"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native", search="naive", since="native", max_page_size=1000
    )
    default_page_size = 100

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        api_token: str | None = None,
        *,
        job: str | None = None,
        folder: str = "",
        job_concurrency: int = 4,
        levels: int = 3,
        max_depth: int = 10,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
        headers: Mapping[str, str] | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
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
        self.job = job.strip("/") if job else None
        if job is not None and not self.job:
            raise ConfigurationError("job must be a job's full name", source=self.name)
        self.folder = folder.strip("/")
        if self.job and self.folder:
            raise ConfigurationError("give job= or folder=, not both", source=self.name)
        self.job_concurrency = max(1, int(job_concurrency))
        # The job walk, over this repository's client.
        self._jobs = Jobs(self.base_url, folder=self.folder, levels=levels, max_depth=max_depth)
        self._jobs.client = self._jobs.walk.client = self.client
        self._jobs.walk.fields = _WALK_FIELDS

    def scope(self) -> JSON:
        return {"site": self.base_url, "job": self.job, "folder": self.folder}

    # -- listing ----------------------------------------------------------------------------

    def _check_state(self, state: JSON) -> tuple[str, int, int | None]:
        if state is None:
            assert self.job is not None
            return self.job, 0, None
        if (
            isinstance(state, list)
            and len(state) == 3
            and isinstance(state[0], str)
            and isinstance(state[1], int)
            and state[1] >= 0
            and (state[2] is None or isinstance(state[2], int))
            and (self.job is None or state[0] == self.job)
        ):
            return state[0], state[1], state[2]
        raise InvalidCursor(
            "this cursor does not come from this Jenkins build listing", source=self.name
        )

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        job, offset, floor = self._check_state(state)
        return await self._job_page(request, job, offset, floor)

    async def _job_page(
        self, request: PageRequest, job: str, offset: int, floor: int | None, plan: bool = False
    ) -> _Page:
        """Builds ``offset`` to ``offset + page_size`` of ``job`` with numbers below
        ``floor`` (those above were given already). With ``plan``, the first and last build
        numbers bound the count of builds, and the following ranges are planned."""
        size = request.page_size
        tree = f"allBuilds[{BUILD_FIELDS}]{{{offset},{offset + size}}}"
        if plan:
            tree += ",firstBuild[number],lastBuild[number]"
        try:
            response = await self.client.request(
                "GET", job_path(job) + "/api/json", params={"tree": tree}
            )
        except ItemNotFound as exc:
            if self.job is None:
                return _Page([])  # deleted since the walk: nothing to list
            raise ConfigurationError(
                f"no Jenkins job {job!r} (check the job's full name)",
                source=self.name,
                method=exc.method,
                url=exc.url,
                status=exc.status,
            ) from None
        body = response.json()
        raws = body.get("allBuilds") if isinstance(body, dict) else None
        if raws is None:
            if self.job is None:
                return _Page([])
            raise ConfigurationError(
                f"Jenkins job {job!r} has no builds of its own (a folder or multibranch "
                "project? give one of its jobs)",
                source=self.name,
            )
        if not isinstance(raws, list):
            raise response.malformed("allBuilds is not a list")
        if len(raws) > size:
            raise response.malformed(
                f"Jenkins sent {len(raws)} builds for a range of {size}: the server ignores "
                "tree ranges, so the builds cannot be paged"
            )
        since_ms = _epoch_ms(request.since) if request.since is not None else None
        items: list[Item] = []
        lowest = floor
        stop = False
        for raw in raws:
            item = self._build(response, job, raw)
            number = item.raw["number"]
            if lowest is not None and number >= lowest:
                continue  # given already (newer builds shifted the range), or out of order
            lowest = number
            if since_ms is not None:
                stamp = item.raw.get("timestamp")
                if isinstance(stamp, int | float) and stamp < since_ms:
                    stop = True
                    break
            items.append(item)
        full = len(raws) == size and not stop
        if full and lowest == floor:
            raise self._stuck(response, offset, size)
        page = _Page(items, [job, offset + size, lowest] if full else None)
        page.full, page.offset, page.response = full, offset, response
        if plan and full:
            first, last = _number(body.get("firstBuild")), _number(body.get("lastBuild"))
            if first is not None and last is not None and last >= first:
                # At most last - first + 1 builds: plan their ranges (fetched concurrently);
                # a short page ends the listing early, a full last one goes on one by one.
                page.following = (
                    [job, start, None] for start in range(size, last - first + 1, size)
                )  # taken as fetches start: a job numbered in the millions costs nothing
        return page

    def _stuck(self, response: Response, offset: int, size: int) -> MalformedResponse:
        return response.malformed(
            f"Jenkins sent, for the range {{{offset},{offset + size}}}, only builds it had "
            "sent before: the server does not honour tree ranges"
        )

    def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        if self.job is not None:
            return self._one_job(request, state)
        return self._every_job(request, state)

    async def _one_job(
        self, request: PageRequest, state: JSON
    ) -> AsyncIterator[tuple[JSON, Batch]]:
        """One job's builds: the ranges planned from the first page fetched concurrently
        (``pump``), then, should the last planned range be full (builds started meanwhile
        pushed older ones past it), range after range. Builds are kept in order here: a
        build at or above the lowest number given so far is dropped, and the state
        handed out for a page carries that floor, so a cursor resumes on the same items."""
        job, offset, floor = self._check_state(state)
        current: JSON = [job, offset, floor]
        plan = offset == 0 and floor is None

        def fetch(page_state: JSON) -> Awaitable[_Page]:
            name, start, page_floor = self._check_state(page_state)
            return self._job_page(request, name, start, page_floor, plan=plan and start == 0)

        while current is not None:
            pages = pump(
                fetch, current, concurrency=self.page_concurrency, track=self.background_tasks
            )
            current = None
            try:
                async for _state, batch in pages:
                    assert isinstance(batch, _Page)
                    items = batch.items
                    if floor is not None and items and items[0].raw["number"] >= floor:
                        items = [item for item in items if item.raw["number"] < floor]
                        if batch.full and not items:
                            assert batch.response is not None
                            raise self._stuck(batch.response, batch.offset, request.page_size)
                    page_state = [job, batch.offset, floor]
                    if items:
                        floor = items[-1].raw["number"]
                    following = (
                        [job, batch.offset + request.page_size, floor] if batch.full else None
                    )
                    yield page_state, Batch(items, following)
                    if following is None:
                        return
                    current = following
            finally:
                aclose = getattr(pages, "aclose", None)
                if aclose is not None:
                    await aclose()
            plan = False

    async def _leaf_jobs(self, since: datetime | None) -> list[str]:
        """Full names of the jobs that have builds (started at or after ``since``)."""
        since_ms = _epoch_ms(since) if since is not None else None
        names: list[str] = []
        stream = self._jobs.list(page_size=500)
        try:
            async for item in stream:
                last = item.raw.get("lastBuild")
                if not isinstance(last, dict):
                    continue  # a folder, or never built
                stamp = last.get("timestamp")
                if since_ms is not None and isinstance(stamp, int | float) and stamp < since_ms:
                    continue
                names.append(item.identifier)
        finally:
            await stream.aclose()
        return names

    async def _every_job(
        self, request: PageRequest, state: JSON
    ) -> AsyncIterator[tuple[JSON, Batch]]:
        jobs = await self._leaf_jobs(request.since)
        start, first_state = 0, None
        if state is not None:
            job, _offset, _last = self._check_state(state)
            if job not in jobs:
                raise InvalidCursor(
                    f"the cursor's job {job!r} is gone (or has no builds now)", source=self.name
                )
            start, first_state = jobs.index(job), state
        ahead: deque[tuple[JSON, asyncio.Task[Batch]]] = deque()
        following: asyncio.Task[Batch] | None = None
        next_index = start

        def launch() -> None:
            nonlocal next_index
            while next_index < len(jobs) and len(ahead) < self.job_concurrency:
                job_state: JSON = (
                    first_state
                    if next_index == start and first_state is not None
                    else [jobs[next_index], 0, None]
                )
                ahead.append((job_state, self._start(self.fetch_page(request, job_state))))
                next_index += 1

        try:
            launch()
            while ahead:
                page_state, task = ahead.popleft()
                batch = await task
                launch()
                while True:
                    if batch.next_state is None:
                        nxt = ahead[0][0] if ahead else None
                        yield page_state, Batch(batch.items, nxt)
                        break
                    next_state = batch.next_state
                    following = self._start(self.fetch_page(request, next_state))
                    yield page_state, batch
                    page_state, batch = next_state, await following
                    following = None
        finally:
            tasks = [task for _, task in ahead]
            if following is not None:
                tasks.append(following)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = asyncio.ensure_future(work)
        background = self.background_tasks
        background.add(task)
        task.add_done_callback(background.discard)
        return task

    # -- items ------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        """The build ``job#number``; ``ItemNotFound`` if there is none, or if it is not of
        this repository's job or folder."""
        wanted = str(identifier)
        job, _, number = wanted.rpartition("#")
        job = job.strip("/")
        if not job or not number.isdigit() or "" in job.split("/"):
            raise self.not_found(wanted, "a build identifier is JOB#NUMBER")
        if self.job is not None and job != self.job:
            raise self.not_found(wanted, f"it is not a build of {self.job!r}")
        if self.folder and not job.startswith(self.folder + "/"):
            raise self.not_found(wanted, f"it is not in folder {self.folder!r}")
        try:
            response = await self.client.request(
                "GET", f"{job_path(job)}/{int(number)}/api/json", params={"tree": BUILD_FIELDS}
            )
        except ItemNotFound as exc:
            raise self.not_found_from(wanted, exc) from None
        return self._build(response, job, response.json())

    def _build(self, response: Response, job: str, raw: Any) -> Item:
        try:
            return build_item(self, job, raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.malformed_record(response, exc) from None

    def __repr__(self) -> str:
        what = (
            f" job={self.job!r}"
            if self.job
            else (f" folder={self.folder!r}" if self.folder else "")
        )
        return f"<{type(self).__name__} {self.name} {self.base_url}{what}>"

    async def aclose(self) -> None:
        await super().aclose()
        await self._jobs.cancel_background()


class _Page(Batch):
    """A batch of one job's builds, with what the stream needs to keep them in order."""

    full: bool = False  # a full range: more may follow
    offset: int = 0
    response: Response | None = None


def _number(value: Any) -> int | None:
    number = value.get("number") if isinstance(value, dict) else None
    return number if type(number) is int else None


def _epoch_ms(when: datetime) -> float:
    return when.timestamp() * 1000
