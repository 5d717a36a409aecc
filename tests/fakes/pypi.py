"""A fake Python package index (Simple API and PyPI's JSON API) on 127.0.0.1.

Written from PEP 691 and the "Simple repository API" living spec (content negotiation,
JSON shapes), and Warehouse's own docs (``docs/user/api/index-api.md``, ``json.md``):

* ``GET /simple/`` -> the project list. Content negotiation by ``Accept`` (q-values; order
  does not matter): ``application/vnd.pypi.simple.v1+json`` (or ``latest+json``) gives
  ``{"meta": {"_last-serial": N, "api-version": "1.4"}, "projects": [{"_last-serial": n,
  "name": "Display_Name"}, ...]}``; ``application/vnd.pypi.simple.v1+html``, ``text/html``,
  ``*/*`` or no ``Accept`` give the HTML page (``<a href="/simple/name/">Display_Name</a>``).
  Anything else -> 406. ``Content-Type`` is the chosen type; ``X-PyPI-Last-Serial`` and
  ``Vary: Accept`` are sent. The list is streamed (chunked), as a large index does.
* ``GET /simple/<project>/`` -> the project's files (JSON: ``name``, ``files`` with
  ``filename``, ``url``, ``hashes``, ``requires-python``, ``size``, ``upload-time``,
  ``yanked``; ``versions``; ``meta``), or HTML anchors. A name that is not normalised
  redirects (301) to the normalised URL, as Warehouse does; an unknown project is 404.
* ``GET /pypi/<project>/json`` -> ``{"info": {...}, "last_serial", "releases", "urls",
  "vulnerabilities", "ownership"}`` (``urls`` are the latest release's files,
  ``upload_time_iso_8601`` in UTC with microseconds and ``Z``). A name other than the
  project's own redirects (301) to ``/pypi/<Own_Name>/json``. Unknown -> 404
  ``{"message": "Not Found"}``.
* ``GET /rss/updates.xml[?before=EPOCH_SECONDS]`` -> RSS 0.91 as Warehouse renders it
  (``templates/rss/base.xml``, ``updates.xml``; ``rss/views.py``): the latest
  ``rss_size`` (100) releases created before ``before`` (default: now), newest first:
  ``<item><title>NAME VERSION</title><link>BASE/project/NORMALISED/VERSION/</link>
  <description>SUMMARY</description><author>EMAILS</author><pubDate>RFC 822</pubDate>``
  (``author`` only when the release's author e-mail holds addresses).

Hostile modes (``PyPIState.simple_mode``): ``"endless"`` streams project entries for
ever; ``"truncated"`` ends the response halfway through the JSON document; ``"garbage"``
sends broken JSON.
``json_only`` / ``html_only`` restrict the formats served. ``auth`` requires basic auth.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, getaddresses
from typing import Any

import orjson
from aiohttp import web

from ._common import FakeControls, controls_middleware, parse_basic_auth

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
_SEP = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    return _SEP.sub("-", name).lower()


@dataclass
class Release:
    version: str
    uploaded: datetime
    files: list[str]


@dataclass
class Project:
    name: str
    summary: str = ""
    description: str = ""
    author: str = ""
    author_email: str = ""
    releases: list[Release] = field(default_factory=list)  # oldest first
    serial: int = 1


@dataclass
class PyPIState:
    projects: dict[str, Project] = field(default_factory=dict)  # by normalised name
    controls: FakeControls = field(default_factory=FakeControls)
    simple_mode: str = "normal"  # "normal", "endless", "truncated", "garbage"
    json_only: bool = False
    html_only: bool = False
    auth: tuple[str, str] | None = None
    rss_size: int = 100
    rss_paging: bool = True  # honour ?before= (False: an older server that ignores it)
    chunk: int = 64 * 1024
    #: A JSON project list to send instead of the projects' (any shape, for parser tests).
    simple_body: bytes | None = None
    _list_json: bytes | None = None

    def add(self, project: Project) -> Project:
        self.projects[normalize(project.name)] = project
        self._list_json = None
        return project

    def last_serial(self) -> int:
        return max((p.serial for p in self.projects.values()), default=0)

    def list_json(self) -> bytes:
        if self._list_json is None:
            self._list_json = orjson.dumps(
                {
                    "meta": {"_last-serial": self.last_serial(), "api-version": "1.4"},
                    "projects": [
                        {"_last-serial": p.serial, "name": p.name} for p in self.projects.values()
                    ],
                }
            )
        return self._list_json


STATE_KEY: web.AppKey[PyPIState] = web.AppKey("pypi_state", PyPIState)

_START = datetime(2024, 1, 1, tzinfo=UTC)


def make_dataset(n_projects: int = 40, seed: int = 0) -> PyPIState:
    """Projects with display names in mixed forms (``Alpha_Tools``, ``beta.lib``...), each
    with 1-4 releases an hour or more apart; the newest release was an hour before now."""
    rng = random.Random(seed)
    state = PyPIState()
    words = ["alpha", "beta", "gamma", "delta", "requests", "tools", "async", "repo", "data"]
    seps = ["-", "_", ".", ""]
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(n_projects):
        a, b = rng.choice(words), rng.choice(words)
        name = f"{a.capitalize() if i % 3 == 0 else a}{rng.choice(seps)}{b}{i}"
        project = Project(
            name,
            summary=f"The {a} {b} package number {i}",
            description=f"# {name}\n\nLong description of {name}.",
            author=f"Author {i}" if i % 2 else "",
            author_email=f'"Dev {i}" <dev{i}@example.com>',
            serial=1000 + i,
        )
        n = 1 + i % 4
        for k in range(n):
            uploaded = now - timedelta(hours=1 + (n_projects - i) * 5 + (n - 1 - k) * 3)
            version = f"{k}.{i % 3}.0"
            dist = normalize(name).replace("-", "_")
            project.releases.append(
                Release(
                    version,
                    uploaded,
                    [f"{dist}-{version}-py3-none-any.whl", f"{dist}-{version}.tar.gz"],
                )
            )
        state.add(project)
    return state


def make_big(n_projects: int) -> PyPIState:
    """``n_projects`` minimal projects (for the list benchmark)."""
    state = PyPIState()
    for i in range(n_projects):
        project = Project(f"Project_{i:06d}.pkg", serial=i + 1)
        state.projects[f"project-{i:06d}-pkg"] = project
    return state


# -- content negotiation ----------------------------------------------------------------


def negotiate(accept: str | None, state: PyPIState) -> str | None:
    """The content type to send for ``accept`` (None: 406)."""
    offered = []
    if not state.html_only:
        offered.append(JSON_V1)
    if not state.json_only:
        offered += [HTML_V1, "text/html"]
    if not accept:
        return offered[1] if not state.html_only and len(offered) > 1 else offered[0]
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        kind = _ALIASES.get(fields[0].lower(), fields[0].lower())
        quality = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if kind == "*/*":
            candidates = [offered[1] if len(offered) > 1 and not state.html_only else offered[0]]
        else:
            candidates = [kind] if kind in offered else []
        for candidate in candidates:
            key = (quality, -position, candidate)
            if best is None or key[:2] > best[:2]:
                best = key
    return best[2] if best else None


def _check_auth(state: PyPIState, request: web.Request) -> web.Response | None:
    if state.auth is None:
        return None
    if parse_basic_auth(request) != state.auth:
        return web.Response(
            status=401, text="401 Unauthorized", headers={"WWW-Authenticate": 'Basic realm="pypi"'}
        )
    return None


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- handlers ---------------------------------------------------------------------------


async def simple_index(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request)
    if denied is not None:
        return denied
    kind = negotiate(request.headers.get("Accept"), state)
    if kind is None:
        return web.Response(status=406, text="406 Not Acceptable")
    response = web.StreamResponse(
        headers={
            "Content-Type": kind + ("; charset=utf-8" if kind == "text/html" else ""),
            "X-PyPI-Last-Serial": str(state.last_serial()),
            "Vary": "Accept",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    if kind == JSON_V1:
        if state.simple_mode == "endless":
            await response.write(b'{"meta": {"api-version": "1.4"}, "projects": [')
            n = 0
            while True:  # until the client goes away
                block = b"".join(
                    b'{"_last-serial": 1, "name": "endless-%d"},' % (n + k) for k in range(2000)
                )
                n += 2000
                await response.write(block)
        body = state.simple_body if state.simple_body is not None else state.list_json()
        if state.simple_mode == "truncated":
            body = body[: len(body) // 2]
        elif state.simple_mode == "garbage":
            body = body[: len(body) // 2] + b"}}]]nonsense" + body[len(body) // 2 :]
    else:
        links = "".join(
            f'    <a href="/simple/{normalize(p.name)}/">{html.escape(p.name)}</a><br/>\n'
            for p in state.projects.values()
        )
        body = (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.4">\n'
            "    <title>Simple index</title>\n  </head>\n  <body>\n"
            f"{links}  </body>\n</html>\n"
        ).encode()
    for start in range(0, len(body), state.chunk):
        await response.write(body[start : start + state.chunk])
    await response.write_eof()
    return response


def _files(request: web.Request, project: Project, release: Release) -> list[dict[str, Any]]:
    base = f"{request.scheme}://{request.host}"
    out = []
    for k, filename in enumerate(release.files):
        digest = hashlib.sha256(f"{project.name}/{filename}".encode()).hexdigest()
        out.append(
            {
                "filename": filename,
                "url": f"{base}/packages/{digest[:2]}/{digest[2:4]}/{filename}",
                "hashes": {"sha256": digest},
                "requires-python": ">=3.9",
                "size": 1000 + k,
                "upload-time": _iso(release.uploaded + timedelta(seconds=k)),
                "yanked": False,
                "core-metadata": False,
                "data-dist-info-metadata": False,
            }
        )
    return out


async def simple_project(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request)
    if denied is not None:
        return denied
    given = request.match_info["project"]
    wanted = normalize(given)
    project = state.projects.get(wanted)
    if project is None:
        return web.Response(status=404, text="404 Not Found")
    if given != wanted:
        raise web.HTTPMovedPermanently(f"/simple/{wanted}/")
    kind = negotiate(request.headers.get("Accept"), state)
    if kind is None:
        return web.Response(status=406, text="406 Not Acceptable")
    files = [f for r in project.releases for f in _files(request, project, r)]
    headers = {"X-PyPI-Last-Serial": str(project.serial), "Vary": "Accept"}
    if kind == JSON_V1:
        body = {
            "meta": {"_last-serial": project.serial, "api-version": "1.4"},
            "name": wanted,
            "files": files,
            "versions": [r.version for r in project.releases],
            "project-status": {"status": "active"},
        }
        return web.Response(body=orjson.dumps(body), content_type=JSON_V1, headers=headers)
    links = "".join(
        f'    <a href="{f["url"]}#sha256={f["hashes"]["sha256"]}" '
        f'data-requires-python="&gt;=3.9">{f["filename"]}</a><br />\n'
        for f in files
    )
    text = (
        f"<!DOCTYPE html>\n<html>\n  <head>\n    <title>Links for {wanted}</title>\n  </head>\n"
        f"  <body>\n    <h1>Links for {wanted}</h1>\n{links}  </body>\n</html>\n"
    )
    return web.Response(text=text, content_type="text/html", headers=headers)


async def json_project(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request)
    if denied is not None:
        return denied
    given = request.match_info["project"]
    project = state.projects.get(normalize(given))
    if project is None:
        return web.json_response({"message": "Not Found"}, status=404)
    if given != project.name:
        raise web.HTTPMovedPermanently(f"/pypi/{project.name}/json")
    base = f"{request.scheme}://{request.host}"
    latest = project.releases[-1] if project.releases else None

    def files(release: Release) -> list[dict[str, Any]]:
        out = []
        for f in _files(request, project, release):
            uploaded = datetime.fromisoformat(f["upload-time"].replace("Z", "+00:00"))
            out.append(
                {
                    "comment_text": "",
                    "core-metadata": False,
                    "digests": {"sha256": f["hashes"]["sha256"], "md5": "0" * 32},
                    "downloads": -1,
                    "filename": f["filename"],
                    "has_sig": False,
                    "md5_digest": "0" * 32,
                    "packagetype": "bdist_wheel" if f["filename"].endswith(".whl") else "sdist",
                    "python_version": "py3",
                    "requires_python": ">=3.9",
                    "size": f["size"],
                    "upload_time": uploaded.strftime("%Y-%m-%dT%H:%M:%S"),
                    "upload_time_iso_8601": f["upload-time"],
                    "url": f["url"],
                    "yanked": False,
                    "yanked_reason": None,
                }
            )
        return out

    info = {
        "author": project.author,
        "author_email": project.author_email,
        "bugtrack_url": None,
        "classifiers": ["Programming Language :: Python :: 3"],
        "description": project.description,
        "description_content_type": "text/markdown",
        "docs_url": None,
        "download_url": "",
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "home_page": "",
        "keywords": "",
        "license": "MIT",
        "maintainer": "",
        "maintainer_email": "",
        "name": project.name,
        "package_url": f"{base}/project/{project.name}/",
        "platform": None,
        "project_url": f"{base}/project/{project.name}/",
        "project_urls": {"Homepage": f"https://example.com/{normalize(project.name)}"},
        "release_url": f"{base}/project/{project.name}/{latest.version if latest else ''}/",
        "requires_dist": None,
        "requires_python": ">=3.9",
        "summary": project.summary,
        "version": latest.version if latest else "",
        "yanked": False,
        "yanked_reason": None,
    }
    body = {
        "info": info,
        "last_serial": project.serial,
        "releases": {r.version: files(r) for r in project.releases},
        "urls": files(latest) if latest else [],
        "vulnerabilities": [],
        "ownership": {"roles": [{"role": "Owner", "user": "someone"}], "organization": None},
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json", charset="UTF-8")


async def rss_updates(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    base = f"{request.scheme}://{request.host}"
    releases = sorted(
        ((r.uploaded, p, r) for p in state.projects.values() for r in p.releases),
        key=lambda t: t[0],
        reverse=True,
    )
    before = request.query.get("before")
    if before is not None and state.rss_paging:
        try:
            cursor = datetime.fromtimestamp(int(before), UTC)
        except ValueError:
            return web.Response(status=400, text="'before' must be a UTC timestamp integer")
        releases = [t for t in releases if t[0] < cursor]
    items = "".join(
        "    <item>\n"
        f"      <title>{html.escape(p.name)} {html.escape(r.version)}</title>\n"
        f"      <link>{base}/project/{normalize(p.name)}/{html.escape(r.version)}/</link>\n"
        f"      <description>{html.escape(p.summary)}</description>\n"
        + (
            f"      <author>{html.escape(_email(p.author_email))}</author>\n"
            if _email(p.author_email)
            else ""
        )
        + f"      <pubDate>{format_datetime(when, usegmt=True)}</pubDate>\n"
        "    </item>\n"
        for when, p, r in releases[: state.rss_size]
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://www.rssboard.org/rss-0.91.dtd">\n'
        '<rss version="0.91">\n <channel>\n'
        "  <title>PyPI recent updates</title>\n"
        f"  <link>{base}/</link>\n"
        "  <description>Recent updates to the Python Package Index</description>\n"
        "  <language>en</language>\n"
        f"{items}  </channel>\n</rss>\n"
    )
    return web.Response(text=text, content_type="text/xml")


def _email(author_email: str) -> str:
    """Warehouse's feed author: the e-mail addresses only (``getaddresses``)."""
    found = [address for _, address in getaddresses([author_email]) if "@" in address]
    return ", ".join(found)


def make_app(state: PyPIState) -> web.Application:
    app = web.Application(middlewares=[controls_middleware(state.controls)])
    app[STATE_KEY] = state
    r = app.router
    r.add_get("/simple/", simple_index)
    r.add_get("/simple/{project}/", simple_project)
    r.add_get("/pypi/{project}/json", json_project)
    r.add_get("/rss/updates.xml", rss_updates)
    return app
