"""A fake Jenkins (the JSON flavour of the Remote Access API) on 127.0.0.1.

Written from the unofficial OpenAPI description of Jenkins' Remote Access API
(``oapicf/swaggy-jenkins``'s ``specification/jenkins.yml``: ``/api/json`` (``Hudson``),
``/job/{name}/api/json`` (``FreeStyleProject``), builds (``FreeStyleBuild``)) and the
Remote Access API's own documentation (the ``/api`` page every Jenkins serves):

* ``GET /api/json``, ``GET /job/A/job/B/api/json`` (a job in folder ``A``; every level of
  folders and multibranch projects adds ``/job/NAME``), ``GET /job/A/job/B/123/api/json``
  (a build).
* ``tree=``: ``name,url,jobs[name,url,jobs[name]]``; any field may be followed by a range
  ``{M,N}`` (from ``M`` inclusive to ``N`` exclusive), ``{M,}``, ``{,N}`` or ``{N}`` (just
  ``N``), which applies to a list. A nested object named without brackets renders as
  ``{"_class": ...}``. ``_class`` is always sent for every object, as Jenkins does.
* ``depth=`` (default 0) when there is no ``tree``: the top object shows its default
  properties; nested objects show their default properties down to ``depth`` levels, and
  below that only their summary (jobs: ``_class,name,url,color``; builds:
  ``_class,number,url``).
* ``allBuilds`` (every build, newest first) is only sent when ``tree`` names it (its
  export visibility is below the default); ``builds`` holds the newest 100.
* Folder (``com.cloudbees.hudson.plugins.folder.Folder``) and multibranch
  (``org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject``) objects have
  ``jobs``; branch jobs of a multibranch project have URL-encoded names (``feature%2Fx``),
  so their URL segment is ``feature%252Fx``, and ``fullName`` joins names with ``/``.
* Folders have no ``color``, no builds. ``timestamp`` and ``duration`` are milliseconds.
* Errors: a wrong user or API token -> 401 (HTML, ``WWW-Authenticate``); anonymous when
  anonymous read is off -> 403 ("Authentication required", ``X-You-Are-Authenticated-As:
  anonymous``); a user without Overall/Read -> 403 ("is missing the Overall/Read
  permission"); an unknown job or build -> 404 (an HTML page); a malformed ``tree`` -> 400.
  Every response carries ``X-Jenkins``.

``JenkinsState.hold`` holds every request a while and counts how many were held at once.

Hostile modes for tests (``JenkinsState.range_mode``): ``"ignore"`` sends the whole list
whatever the range; ``"stuck"`` sends the first ``N - M`` items whatever ``M`` is (the same
builds for every page).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import orjson
from aiohttp import web

from ._common import FakeControls, controls_middleware, parse_basic_auth

FREESTYLE = "hudson.model.FreeStyleProject"
PIPELINE = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
FREESTYLE_BUILD = "hudson.model.FreeStyleBuild"
PIPELINE_BUILD = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
HUDSON = "hudson.model.Hudson"
JENKINS_VERSION = "2.462.3"
NEW_BUILDS_LIMIT = 100
CONTAINERS = {FOLDER, MULTIBRANCH}

_COLORS = {"SUCCESS": "blue", "FAILURE": "red", "UNSTABLE": "yellow", "ABORTED": "aborted"}


@dataclass
class Build:
    number: int
    timestamp: int  # ms since the epoch
    duration: int  # ms
    result: str | None  # None while building
    description: str | None = None


@dataclass
class Job:
    name: str  # as Jenkins stores it (branch names URL-encoded)
    cls: str
    description: str | None = None
    display_name: str | None = None
    builds: list[Build] = field(default_factory=list)  # newest first
    children: list[Job] = field(default_factory=list)
    parent: Job | None = field(default=None, repr=False)

    @property
    def container(self) -> bool:
        return self.cls in CONTAINERS

    @property
    def full_name(self) -> str:
        names = []
        job: Job | None = self
        while job is not None:
            names.append(job.name)
            job = job.parent
        return "/".join(reversed(names))

    def path(self) -> str:
        parts = self.full_name.split("/")
        return "".join(f"job/{quote(p, safe='')}/" for p in parts)

    def add(self, child: Job) -> Job:
        child.parent = self
        self.children.append(child)
        return child


@dataclass
class JenkinsState:
    jobs: list[Job] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=lambda: {"admin": "api-token-admin"})
    #: Users whose credentials are good but who lack Overall/Read.
    no_read: set[str] = field(default_factory=set)
    anonymous_read: bool = False
    range_mode: str = "honest"  # "honest", "ignore" or "stuck"
    #: Seconds each API request is held before it is answered, and the most requests seen
    #: held at once (tests read it to see that requests were sent concurrently).
    hold: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    controls: FakeControls = field(default_factory=FakeControls)
    base_url: str = ""  # filled per request from the Host header

    def find(self, names: list[str]) -> Job | None:
        level = self.jobs
        job = None
        for name in names:
            job = next((j for j in level if j.name == name), None)
            if job is None:
                return None
            level = job.children
        return job


STATE_KEY: web.AppKey[JenkinsState] = web.AppKey("jenkins_state", JenkinsState)


# -- data set ---------------------------------------------------------------------------


def make_builds(
    n: int, *, start_ms: int = 1_700_000_000_000, step_ms: int = 600_000, seed: int = 0
) -> list[Build]:
    """``n`` builds numbered 1..n, newest first, ``step_ms`` apart; the newest is running."""
    rng = random.Random(seed)
    results = ["SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "UNSTABLE", "ABORTED"]
    builds = []
    for number in range(n, 0, -1):
        running = number == n and n > 3
        builds.append(
            Build(
                number=number,
                timestamp=start_ms + number * step_ms,
                duration=0 if running else rng.randint(1_000, 500_000),
                result=None if running else rng.choice(results),
                description=f"build {number} of the nightly run" if number % 10 == 0 else None,
            )
        )
    return builds


def make_dataset(n_builds: int = 250, seed: int = 0) -> JenkinsState:
    """A small instance: top-level jobs, a folder two levels deep, a multibranch project
    with encoded branch names, and ``big`` with ``n_builds`` builds."""
    state = JenkinsState()
    jobs = state.jobs
    jobs.append(
        Job("big", FREESTYLE, "the job with many builds", builds=make_builds(n_builds, seed=seed))
    )
    jobs.append(Job("empty", FREESTYLE, None))  # never built
    jobs.append(Job("deploy", PIPELINE, "deploys to staging", builds=make_builds(12, seed=1)))
    team = Job("team", FOLDER, "the team's folder", display_name="Team")
    jobs.append(team)
    team.add(Job("lint", FREESTYLE, "lints the code", builds=make_builds(5, seed=2)))
    inner = team.add(Job("inner", FOLDER, None))
    inner.add(Job("deep job", PIPELINE, "a job with a space", builds=make_builds(3, seed=3)))
    inner.add(Job("empty-folder", FOLDER, None))
    app = Job("app", MULTIBRANCH, "multibranch pipeline of the app")
    jobs.append(app)
    app.add(Job("main", PIPELINE, None, builds=make_builds(8, seed=4)))
    app.add(
        Job(
            "feature%2Flogin",
            PIPELINE,
            None,
            display_name="feature/login",
            builds=make_builds(2, seed=5),
        )
    )
    for i in range(20):
        jobs.append(
            Job(
                f"job-{i:02d}",
                FREESTYLE if i % 2 else PIPELINE,
                f"generated job {i}",
                builds=make_builds(i % 4, seed=10 + i),
            )
        )
    return state


def make_flat(n_jobs: int, builds_per_job: int) -> JenkinsState:
    """``n_jobs`` top-level freestyle jobs with ``builds_per_job`` builds each."""
    state = JenkinsState()
    for i in range(n_jobs):
        state.jobs.append(
            Job(f"job-{i:04d}", FREESTYLE, None, builds=make_builds(builds_per_job, seed=i))
        )
    return state


# -- tree= parsing ----------------------------------------------------------------------


@dataclass
class TreeNode:
    name: str
    children: list[TreeNode] | None = None
    range: tuple[int | None, int | None] | None = None


class TreeError(ValueError):
    pass


def parse_tree(text: str) -> list[TreeNode]:
    nodes, rest = _parse_fields(text, 0)
    if rest != len(text):
        raise TreeError(f"unexpected {text[rest]!r} at {rest}")
    return nodes


def _parse_fields(text: str, i: int) -> tuple[list[TreeNode], int]:
    nodes: list[TreeNode] = []
    while True:
        start = i
        while i < len(text) and text[i] not in ",[]{}":
            i += 1
        name = text[start:i].strip()
        if not name:
            raise TreeError(f"empty field name at {start}")
        node = TreeNode(name)
        if i < len(text) and text[i] == "[":
            node.children, i = _parse_fields(text, i + 1)
            if i >= len(text) or text[i] != "]":
                raise TreeError("unclosed [")
            i += 1
        if i < len(text) and text[i] == "{":
            end = text.find("}", i)
            if end < 0:
                raise TreeError("unclosed {")
            node.range = _parse_range(text[i + 1 : end])
            i = end + 1
        nodes.append(node)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        return nodes, i


def _parse_range(spec: str) -> tuple[int | None, int | None]:
    def number(s: str) -> int | None:
        s = s.strip()
        if not s:
            return None
        if not s.isdigit():
            raise TreeError(f"bad range bound {s!r}")
        return int(s)

    if "," not in spec:
        n = number(spec)
        if n is None:
            raise TreeError("empty range")
        return n, n + 1
    low, high = spec.split(",", 1)
    return number(low), number(high)


# -- rendering --------------------------------------------------------------------------


def _build_summary(state: JenkinsState, job: Job, build: Build) -> dict[str, Any]:
    return {
        "_class": _build_class(job),
        "number": build.number,
        "url": _build_url(state, job, build),
    }


def _build_class(job: Job) -> str:
    return PIPELINE_BUILD if job.cls == PIPELINE else FREESTYLE_BUILD


def _job_url(state: JenkinsState, job: Job) -> str:
    return f"{state.base_url}/{job.path()}"


def _build_url(state: JenkinsState, job: Job, build: Build) -> str:
    return f"{_job_url(state, job)}{build.number}/"


def _color(job: Job) -> str:
    if not job.builds:
        return "notbuilt"
    last = job.builds[0]
    if last.result is None:
        previous = next((b for b in job.builds if b.result is not None), None)
        base = _COLORS.get(previous.result or "", "notbuilt") if previous else "notbuilt"
        return base + "_anime"
    return _COLORS.get(last.result, "grey")


def _display(job: Job) -> str:
    return job.display_name or unquote(job.name)


def _full_display(job: Job) -> str:
    names = []
    current: Job | None = job
    while current is not None:
        names.append(_display(current))
        current = current.parent
    return " » ".join(reversed(names))


@dataclass
class Obj:
    """A model object being rendered: its class, its properties (name -> value or thunk),
    the names shown by default, and its summary names (shown past the depth)."""

    cls: str
    props: dict[str, Callable[[], Any]]
    default: list[str]
    summary: list[str]


def _build_obj(state: JenkinsState, job: Job, build: Build) -> Obj:
    props: dict[str, Callable[[], Any]] = {
        "number": lambda: build.number,
        "url": lambda: _build_url(state, job, build),
        "id": lambda: str(build.number),
        "displayName": lambda: f"#{build.number}",
        "fullDisplayName": lambda: f"{_full_display(job)} #{build.number}",
        "description": lambda: build.description,
        "timestamp": lambda: build.timestamp,
        "duration": lambda: build.duration,
        "estimatedDuration": lambda: 120_000,
        "result": lambda: build.result,
        "building": lambda: build.result is None,
        "keepLog": lambda: False,
        "queueId": lambda: 1000 + build.number,
        "actions": lambda: [],
        "artifacts": lambda: [],
        "inProgress": lambda: build.result is None,
    }
    default = [k for k in props if k != "inProgress" or job.cls == PIPELINE]
    return Obj(_build_class(job), props, default, ["number", "url"])


def _job_obj(state: JenkinsState, job: Job) -> Obj:
    props: dict[str, Callable[[], Any]] = {
        "actions": lambda: [],
        "description": lambda: job.description,
        "displayName": lambda: _display(job),
        "displayNameOrNull": lambda: job.display_name,
        "fullDisplayName": lambda: _full_display(job),
        "fullName": lambda: job.full_name,
        "name": lambda: job.name,
        "url": lambda: _job_url(state, job),
        "healthReport": lambda: [],
    }
    summary = ["name", "url"]
    if job.container:
        props["jobs"] = lambda: [_job_obj(state, child) for child in job.children]
        props["primaryView"] = lambda: {"_class": "hudson.model.AllView", "name": "All"}
        props["views"] = lambda: [{"_class": "hudson.model.AllView", "name": "All"}]
    else:
        builds = job.builds

        def build(b: Build | None) -> Obj | None:
            return _build_obj(state, job, b) if b is not None else None

        def last(pred: Callable[[Build], bool]) -> Obj | None:
            return build(next((b for b in builds if pred(b)), None))

        props.update(
            {
                "buildable": lambda: True,
                "builds": lambda: [build(b) for b in builds[:NEW_BUILDS_LIMIT]],
                "allBuilds": lambda: _LazyBuilds(state, job),
                "color": lambda: _color(job),
                "firstBuild": lambda: build(builds[-1] if builds else None),
                "inQueue": lambda: False,
                "keepDependencies": lambda: False,
                "lastBuild": lambda: build(builds[0] if builds else None),
                "lastCompletedBuild": lambda: last(lambda b: b.result is not None),
                "lastFailedBuild": lambda: last(lambda b: b.result == "FAILURE"),
                "lastStableBuild": lambda: last(lambda b: b.result == "SUCCESS"),
                "lastSuccessfulBuild": lambda: last(lambda b: b.result in ("SUCCESS", "UNSTABLE")),
                "lastUnstableBuild": lambda: last(lambda b: b.result == "UNSTABLE"),
                "lastUnsuccessfulBuild": lambda: last(lambda b: b.result not in (None, "SUCCESS")),
                "nextBuildNumber": lambda: (builds[0].number + 1) if builds else 1,
                "property": lambda: [],
                "queueItem": lambda: None,
                "concurrentBuild": lambda: False,
            }
        )
        summary = ["name", "url", "color"]
    default = [k for k in props if k != "allBuilds"]
    return Obj(job.cls, props, default, summary)


class _LazyBuilds:
    """``allBuilds``: sliced before the builds are rendered (Jenkins loads a range lazily)."""

    def __init__(self, state: JenkinsState, job: Job) -> None:
        self.state, self.job = state, job

    def slice(self, low: int, high: int | None) -> list[Obj]:
        return [_build_obj(self.state, self.job, b) for b in self.job.builds[low:high]]


def _root_obj(state: JenkinsState) -> Obj:
    props: dict[str, Callable[[], Any]] = {
        "assignedLabels": lambda: [{"_class": "hudson.model.labels.LabelAtom", "name": "built-in"}],
        "mode": lambda: "NORMAL",
        "nodeDescription": lambda: "the Jenkins controller's built-in node",
        "nodeName": lambda: "",
        "numExecutors": lambda: 2,
        "description": lambda: None,
        "jobs": lambda: [_job_obj(state, job) for job in state.jobs],
        "primaryView": lambda: {"_class": "hudson.model.AllView", "name": "all"},
        "quietingDown": lambda: False,
        "slaveAgentPort": lambda: -1,
        "useCrumbs": lambda: True,
        "useSecurity": lambda: True,
        "views": lambda: [{"_class": "hudson.model.AllView", "name": "all"}],
    }
    return Obj(HUDSON, props, list(props), [])


def _apply_range(state: JenkinsState, value: Any, rng: tuple[int | None, int | None] | None) -> Any:
    if isinstance(value, _LazyBuilds):
        low, high = rng or (None, None)
        low = low or 0
        if rng is None or state.range_mode == "ignore":
            return value.slice(0, None)
        if state.range_mode == "stuck":
            return value.slice(0, None if high is None else max(0, high - low))
        return value.slice(low, high)
    if isinstance(value, list) and rng is not None:
        low, high = rng
        if state.range_mode == "ignore":
            return value
        if state.range_mode == "stuck":
            return value[: None if high is None else max(0, high - (low or 0))]
        return value[(low or 0) : high]
    return value


def render_tree(state: JenkinsState, obj: Obj, nodes: list[TreeNode]) -> dict[str, Any]:
    out: dict[str, Any] = {"_class": obj.cls}
    for node in nodes:
        thunk = obj.props.get(node.name)
        if thunk is None:
            continue  # Jenkins omits unknown properties
        value = _apply_range(state, thunk(), node.range)
        out[node.name] = _render_value(state, value, node.children)
    return out


def _render_value(state: JenkinsState, value: Any, children: list[TreeNode] | None) -> Any:
    if isinstance(value, Obj):
        return render_tree(state, value, children or [])
    if isinstance(value, list):
        return [_render_value(state, v, children) for v in value]
    if isinstance(value, _LazyBuilds):
        return [_render_value(state, v, children) for v in value.slice(0, None)]
    return value


def render_depth(state: JenkinsState, obj: Obj, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"_class": obj.cls}
    for name in obj.default:
        out[name] = _depth_value(state, obj.props[name](), depth)
    return out


def _depth_value(state: JenkinsState, value: Any, depth: int) -> Any:
    if isinstance(value, Obj):
        if depth <= 0:
            out = {"_class": value.cls}
            for name in value.summary:
                out[name] = value.props[name]()
            return out
        return render_depth(state, value, depth - 1)
    if isinstance(value, list):
        return [_depth_value(state, v, depth) for v in value]
    return value


# -- handlers ---------------------------------------------------------------------------


def _html_error(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = (
        f"<html><head><title>Error {status} {title}</title></head><body>"
        f"<h2>HTTP ERROR {status} {title}</h2><p>{detail}</p></body></html>"
    )
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        headers={"X-Jenkins": JENKINS_VERSION, **(headers or {})},
    )


def _authorise(state: JenkinsState, request: web.Request) -> web.Response | None:
    creds = parse_basic_auth(request)
    if "Authorization" in request.headers:
        if creds is None or state.users.get(creds[0]) != creds[1]:
            user = creds[0] if creds else "?"
            return _html_error(
                401,
                "Unauthorized",
                f"Invalid password/token for user: {user}",
                {"WWW-Authenticate": 'Basic realm="Jenkins"'},
            )
        if creds[0] in state.no_read:
            return _html_error(
                403,
                "Forbidden",
                f"{creds[0]} is missing the Overall/Read permission",
                {
                    "X-You-Are-Authenticated-As": creds[0],
                    "X-Required-Permission": "hudson.model.Hudson.Read",
                },
            )
        return None
    if not state.anonymous_read:
        return _html_error(
            403,
            "Forbidden",
            "Authentication required",
            {
                "X-You-Are-Authenticated-As": "anonymous",
                "X-Required-Permission": "hudson.model.Hudson.Read",
            },
        )
    return None


async def api_json(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if state.hold:
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.hold)
        finally:
            state.in_flight -= 1
    state.base_url = f"{request.scheme}://{request.host}"
    denied = _authorise(state, request)
    if denied is not None:
        return denied
    raw = request.raw_path.split("?", 1)[0]
    segments = [s for s in raw.split("/") if s]
    if segments[-2:] != ["api", "json"]:
        return _html_error(404, "Not Found", "Not Found")
    segments = segments[:-2]
    names: list[str] = []
    build_number: int | None = None
    i = 0
    while i < len(segments):
        if segments[i] == "job" and i + 1 < len(segments):
            names.append(unquote(segments[i + 1]))
            i += 2
        elif i == len(segments) - 1 and names and segments[i].isdigit():
            build_number = int(segments[i])
            i += 1
        else:
            return _html_error(404, "Not Found", "Not Found")
    obj: Obj
    if not names:
        obj = _root_obj(state)
    else:
        job = state.find(names)
        if job is None:
            return _html_error(404, "Not Found", "Not Found")
        if build_number is None:
            obj = _job_obj(state, job)
        else:
            build = next((b for b in job.builds if b.number == build_number), None)
            if build is None or job.container:
                return _html_error(404, "Not Found", "Not Found")
            obj = _build_obj(state, job, build)
    tree = request.query.get("tree")
    if tree is not None:
        try:
            nodes = parse_tree(tree)
        except TreeError as exc:
            return _html_error(400, "Bad Request", f"Malformed tree expression: {exc}")
        body = render_tree(state, obj, nodes)
    else:
        try:
            depth = int(request.query.get("depth", "0"))
        except ValueError:
            return _html_error(400, "Bad Request", "depth must be a number")
        body = render_depth(state, obj, depth)
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        charset="utf-8",
        headers={"X-Jenkins": JENKINS_VERSION},
    )


def make_app(state: JenkinsState) -> web.Application:
    app = web.Application(middlewares=[controls_middleware(state.controls)])
    app[STATE_KEY] = state
    app.router.add_get("/{tail:.*}", api_json)
    return app
