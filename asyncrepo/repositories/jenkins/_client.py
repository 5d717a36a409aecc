"""What the Jenkins sources share: the client (Jenkins' error dialect), job paths, the
``tree=`` expressions, and the job walk (folders and multibranch projects, recursively).

Jenkins' JSON API (``.../api/json``) sends what ``tree=`` names and nothing else; a range
``{M,N}`` after a field takes items ``M`` (inclusive) to ``N`` (exclusive) of a list. Every
request here names its fields and ranges its lists, so a large instance is read in pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiolimiter import AsyncLimiter

from ...exceptions import AsyncRepoError, AuthenticationError, InvalidCursor
from ...http import Auth, BasicAuth, HTTPClient, Response, RetryPolicy
from ...repository import Item

__all__ = [
    "BUILD_FIELDS",
    "JOB_FIELDS",
    "JenkinsClient",
    "JobWalk",
    "job_kind",
    "job_path",
    "make_client",
]

#: What a job item carries (``lastBuild`` gives ``updated_at``).
JOB_FIELDS = (
    "_class,name,fullName,displayName,fullDisplayName,url,color,description,buildable,"
    "lastBuild[number,timestamp,result]"
)
#: What a build item carries.
BUILD_FIELDS = (
    "number,url,result,timestamp,duration,building,displayName,fullDisplayName,description,id"
)

_KINDS = {
    "hudson.model.FreeStyleProject": "freestyle",
    "org.jenkinsci.plugins.workflow.job.WorkflowJob": "pipeline",
    "com.cloudbees.hudson.plugins.folder.Folder": "folder",
    "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject": "multibranch",
    "jenkins.branch.OrganizationFolder": "organization-folder",
    "hudson.matrix.MatrixProject": "matrix",
    "hudson.maven.MavenModuleSet": "maven",
}


def job_kind(cls: Any) -> str | None:
    """``freestyle``, ``pipeline``, ``folder``, ``multibranch``... from a ``_class``."""
    if not isinstance(cls, str) or not cls:
        return None
    return _KINDS.get(cls) or cls.rsplit(".", 1)[-1].lower()


def job_path(full_name: str) -> str:
    """``/job/a/job/b`` for the job ``a/b`` (each name quoted once more: a multibranch
    branch ``feature%2Fx`` is the segment ``feature%252Fx``); ``""`` for the root."""
    if not full_name:
        return ""
    return "".join("/job/" + quote(name, safe="") for name in full_name.split("/"))


class JenkinsClient(HTTPClient):
    """The shared transport, reading Jenkins' dialect: a 403 sent to an anonymous request
    (``X-You-Are-Authenticated-As: anonymous``) means credentials are needed, so it is an
    ``AuthenticationError``; Jenkins' HTML error pages become their text."""

    def classify(self, response: Response) -> AsyncRepoError | None:
        error = super().classify(response)
        if (
            response.status == 403
            and response.headers.get("X-You-Are-Authenticated-As", "").strip() == "anonymous"
            and error is not None
            and not isinstance(error, AuthenticationError)
        ):
            return AuthenticationError(
                "Jenkins needs credentials for this (anonymous read is off): pass username= "
                "and api_token=",
                source=error.source,
                method=error.method,
                url=error.url,
                status=error.status,
                vendor_message=error.vendor_message,
            )
        return error


def make_client(
    base_url: str,
    username: str | None,
    api_token: str | None,
    *,
    source: str,
    retry: RetryPolicy | None = None,
    timeout: float | None = 60.0,
    max_connections: int = 20,
    headers: Mapping[str, str] | None = None,
    limiter: AsyncLimiter | None = None,
) -> JenkinsClient:
    auth: Auth | None = None
    if username or api_token:
        auth = BasicAuth(username or "", api_token or "")
    return JenkinsClient(
        base_url.rstrip("/"),
        source=source,
        auth=auth,
        retry=retry,
        timeout=timeout,
        max_connections=max_connections,
        headers=headers,
        limiter=limiter,
    )


def jobs_tree(fields: str, levels: int, first: int | None, count: int | None) -> str:
    """``jobs[FIELDS,jobs[FIELDS,...,jobs[name]{0,1}]]{first,first+count}``: ``levels``
    levels of jobs with ``fields``, and below the last one a probe (``jobs[name]{0,1}``)
    that tells a container with children from an empty one or a plain job."""
    inner = "jobs[name]{0,1}"
    for _ in range(levels - 1):
        inner = f"jobs[{fields},{inner}]"
    rng = f"{{{first},{first + count}}}" if first is not None and count is not None else ""
    return f"jobs[{fields},{inner}]{rng}"


@dataclass
class WalkPage:
    """One page of the walk: jobs in pre-order (``(raw, depth)``, nested ``jobs`` removed)
    and the state of the next page (``None``: the walk is over)."""

    jobs: list[tuple[dict[str, Any], int]]
    next_state: Any


class JobWalk:
    """Every job of an instance (or of a folder), folders and multibranch projects walked
    recursively, ``levels`` levels of folders per request, to ``max_depth`` levels in all.

    The state of a page is ``{"q": [[container, depth], ...], "o": offset}``: the
    containers still to list (the first is being listed, from ``offset``). A container's
    jobs are ranged ``{o,o+n}``; containers found at the deepest level of a response are
    queued and listed after the current one.
    """

    def __init__(
        self,
        client: HTTPClient,
        source: str,
        *,
        root: str = "",
        fields: str = JOB_FIELDS,
        levels: int = 3,
        max_depth: int = 10,
    ) -> None:
        self.client = client
        self.source = source
        self.root = root
        self.fields = fields
        self.levels = max(1, levels)
        self.max_depth = max(1, max_depth)

    def check_state(self, state: Any) -> tuple[list[list[Any]], int]:
        if state is None:
            return [[self.root, 0]], 0
        try:
            queue, offset = state["q"], state["o"]
            ok = (
                isinstance(queue, list)
                and queue
                and all(
                    isinstance(e, list)
                    and len(e) == 2
                    and isinstance(e[0], str)
                    and isinstance(e[1], int)
                    for e in queue
                )
                and isinstance(offset, int)
                and offset >= 0
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise InvalidCursor(
                "this cursor does not come from a Jenkins job listing", source=self.source
            )
        return [list(e) for e in queue], offset

    async def page(self, state: Any, page_size: int) -> WalkPage:
        queue, offset = self.check_state(state)
        container, depth = queue[0]
        levels = max(1, min(self.levels, self.max_depth - depth))
        tree = jobs_tree(self.fields, levels, offset, page_size)
        response = await self.client.request(
            "GET", job_path(container) + "/api/json", params={"tree": tree}
        )
        body = response.json()
        top = body.get("jobs") if isinstance(body, dict) else None
        if top is None:
            top = []  # not a container (or no jobs property): nothing under it
        if not isinstance(top, list):
            raise response.malformed("jobs is not a list")
        if len(top) > page_size:
            raise response.malformed(
                f"Jenkins sent {len(top)} jobs for a range of {page_size}: the server ignores "
                "tree ranges, so the listing cannot be paged"
            )
        out: list[tuple[dict[str, Any], int]] = []
        found: list[list[Any]] = []
        self._flatten(response, top, container, depth + 1, levels, out, found)
        queue = queue + found
        if len(top) == page_size:
            return WalkPage(out, {"q": queue, "o": offset + page_size})
        rest = queue[1:]
        return WalkPage(out, {"q": rest, "o": 0} if rest else None)

    def _flatten(
        self,
        response: Response,
        jobs: list[Any],
        parent: str,
        depth: int,
        levels: int,
        out: list[tuple[dict[str, Any], int]],
        found: list[list[Any]],
    ) -> None:
        for raw in jobs:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise response.malformed("a job without a name")
            children = raw.pop("jobs", None)
            full = raw.get("fullName")
            if not isinstance(full, str) or not full:
                full = f"{parent}/{raw['name']}" if parent else raw["name"]
                raw["fullName"] = full
            out.append((raw, depth))
            if not isinstance(children, list) or not children:
                continue
            if depth >= self.max_depth:
                continue  # the depth bound: its jobs are not listed
            if levels > 1:
                self._flatten(response, children, full, depth + 1, levels - 1, out, found)
            else:
                found.append([full, depth])


def build_item(repository: Any, job: str, raw: dict[str, Any]) -> Item:
    """A build item: ``job#number``; created_at = start, updated_at = end once finished
    (else the start). Runs once per build: dates straight from epoch milliseconds."""
    number = raw["number"]
    if type(number) is not int:
        raise TypeError(f"build number is not an integer: {number!r}")
    started = raw.get("timestamp")
    created = updated = None
    if type(started) is int or type(started) is float:
        created = updated = _from_ms(started)
        duration = raw.get("duration")
        if duration and not raw.get("building") and type(duration) in (int, float):
            updated = _from_ms(started + duration)
    elif started is not None:
        raise TypeError(f"timestamp is not a number: {started!r}")
    description = raw.get("description")
    item = Item(f"{job}#{number}", raw, repository)
    item.title = raw.get("fullDisplayName") or f"{job} #{number}"
    item.text = description if description and type(description) is str else None
    item.url = raw.get("url")
    item.created_at = created
    item.updated_at = updated
    item.kind = "build"
    return item


def _from_ms(value: float) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)
