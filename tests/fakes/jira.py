"""A fake Jira (Cloud and Data Center) speaking Jira's REST wire protocol on 127.0.0.1.

``make_app(JiraState)`` builds the aiohttp app; ``make_dataset()`` builds a deterministic state.

Cloud mode (``deployment="cloud"``):

* ``GET``/``POST /rest/api/{2,3,latest}/search/jql``: enhanced search. Token paging only
  (``nextPageToken``, opaque standard base64 that may hold ``+``, ``/`` and ``=``; absent on the
  last page), no ``total``/``startAt``. Without ``fields`` every issue is just ``{"id": ...}``.
  ``maxResults`` defaults to 50 and is capped at 5000 when only ``id``/``key`` are requested,
  else at 100. An unbounded JQL (empty, or only ``ORDER BY``) answers 400.
  ``isLast`` is sent according to ``JiraState.is_last`` ("always", "never", "sometimes").
* ``POST /rest/api/{2,3}/issue/bulkfetch`` (1..100 ids or keys; issues in ascending id order,
  unknown ones silently left out, as the spec says).
* ``GET /rest/api/{2,3}/issue/{idOrKey}``; ``GET /rest/api/3/project/search``;
  ``GET /rest/api/{2,3}/project`` (deprecated non-paged array); ``.../project/{idOrKey}``;
  ``.../serverInfo``; ``.../myself``.
* ``/rest/api/{2,3,latest}/search`` (GET and POST) answer 410 Gone with Atlassian's body.

Data Center mode (``deployment="datacenter"``): ``/rest/api/{2,latest}/search`` with
``startAt``/``maxResults``/``total`` (``maxResults`` capped at ``max_results_cap``, echoed in
the response), ``issue/{idOrKey}``, ``project`` (plain array), ``project/{idOrKey}``,
``serverInfo`` (``deploymentType`` "Server" by default, as DC really reports), ``myself``.
Every ``/rest/api/3`` path answers 404.

Descriptions and comment bodies are stored as Atlassian Document Format (ADF) and served as
ADF on Cloud v3, as wiki markup strings on v2 (Cloud v2 and DC). Timestamps are stored in UTC
(``2024-03-05T10:15:30.123+0000``) and served in the user's time zone offset (what Jira does;
``render_dates_in_user_tz=False`` serves them as stored).

JQL: a real tokenizer and recursive-descent parser (``parse_jql``) for a subset: ``project``,
``issuetype``/``type``, ``status``, ``key``/``issue``/``issuekey``, ``id``, ``text``,
``summary``, ``description``, ``comment``, ``created``/``updated`` (+ ``createdDate``/
``updatedDate``), ``reporter``, ``assignee``, ``labels``; operators ``= != < > <= >= ~ !~ IN
NOT IN IS IS NOT``; ``AND``/``OR``/``NOT`` (and ``&&``, ``||``, ``!``), parentheses; functions
``currentUser() now() startOfDay() endOfDay()``; ``ORDER BY`` created/updated/key/id/summary.
Quoted strings take Jira's escapes (``\\" \\' \\\\ \\t \\n \\r \\<space> \\uXXXX``); other escapes,
unterminated strings, reserved characters and bad grammar answer 400 with Jira's messages.
Date literals (``yyyy/MM/dd HH:mm``, ``yyyy-MM-dd HH:mm``, ``yyyy/MM/dd``, ``yyyy-MM-dd``) are read
in the user's time zone (``JiraState.time_zone``); a bare integer is epoch milliseconds; periods
like ``-1w``, ``-36500d``, ``"4w 2d"`` are relative to ``JiraState.clock()``.
``state.last_jql_ast`` holds the ``Query`` parsed from the last JQL a search received;
``clauses(query)`` flattens its terminal clauses.

Text clauses (``~``) match case-insensitively on words (English stop words ignored, a trailing
``*`` is a prefix); a value wrapped in inner double quotes is a phrase. Lucene syntax inside the
value is NOT interpreted (no stemming, no operators), so the fake will not catch a client that
forgets Lucene escaping. A continuation page (with ``nextPageToken``) reuses the result list of
its first page while the issue list keeps its length and last element.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web

try:  # the project's JSON codec: faster for the 10,000-issue benchmarks
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

from ._common import FakeControls, controls_middleware, parse_basic_auth

# --------------------------------------------------------------------------------------------
# Vendor messages (copied from observed Jira responses; see the module docstring)
# --------------------------------------------------------------------------------------------

REMOVED_SEARCH_MESSAGE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
UNBOUNDED_JQL_MESSAGE = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
ISSUE_NOT_FOUND_MESSAGE = "Issue does not exist or you do not have permission to see it."
CLOUD_UNAUTHORIZED_BODY = "Client must be authenticated to access this resource."
DC_UNAUTHORIZED_HTML = (
    "<html><head><title>Unauthorized (401)</title></head><body>"
    '<p>Encountered a "401 - Unauthorized" error while loading this page.</p>'
    "<p>Basic Authentication Failure - Reason : AUTHENTICATED_FAILED</p>"
    '<a href="/secure/MyJiraHome.jspa">Go to Jira home</a></body></html>'
)
DC_NOT_AUTHENTICATED_MESSAGE = (
    "You are not authenticated. Authentication required to perform this operation."
)
# Not found in public material: our wording (documented as such).
INVALID_TOKEN_MESSAGE = "The provided nextPageToken is invalid or has expired."
BULKFETCH_LIMIT_MESSAGE = "You can request a maximum of 100 issues. You requested {n}."
BULKFETCH_EMPTY_MESSAGE = "You must specify at least one issue ID or key."

VALID_OPERATORS_TEXT = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', "
    "'IS' and 'IS NOT'."
)
DATE_FORMATS_TEXT = (
    "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', "
    "'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
)

SEARCH_JQL_DEFAULT_MAX = 50
SEARCH_JQL_MAX_IDS_ONLY = 5000
SEARCH_JQL_MAX_WITH_FIELDS = 100
PROJECT_SEARCH_MAX = 100
BULKFETCH_MAX = 100
RECONCILE_MAX = 50
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"

# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class JiraState:
    deployment: Literal["cloud", "datacenter"] = "cloud"
    # login (email on Cloud, username on DC) -> API token (Cloud) or password (DC)
    users: dict[str, str] = field(default_factory=lambda: {"me@example.com": "api-token-123"})
    # DC personal access tokens (``Authorization: Bearer <token>``) -> login
    personal_access_tokens: dict[str, str] = field(default_factory=dict)
    # login -> profile {accountId, displayName, emailAddress, name, key}; filled on demand
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    controls: FakeControls = field(default_factory=FakeControls)
    time_zone: str = "America/New_York"  # the user's profile time zone (JQL literals, output)
    render_dates_in_user_tz: bool = True
    clock: Callable[[], float] = time.time  # "now" for relative JQL dates and serverTime
    is_last: Literal["always", "never", "sometimes"] = "always"  # Cloud search/jql isLast
    max_results_cap: int = 50  # DC: jira.search.views.default.max
    dc_deployment_type: str = "Server"  # what DC's serverInfo reports ("DataCenter" also seen)
    base_url: str | None = None  # overrides the request's origin in self/baseUrl links
    last_jql: str | None = None
    last_jql_ast: Query | None = None
    _search_responses: int = 0
    _index: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _index_stamp: tuple[int, int | None] = (-1, None)

    # -- lookups ---------------------------------------------------------------------------
    def issue(self, id_or_key: str) -> dict[str, Any] | None:
        """Find an issue by id or key (keys case-insensitively, as Jira does)."""
        stamp = (len(self.issues), id(self.issues[-1]) if self.issues else None)
        if self._index_stamp != stamp:
            self._index = {i["id"]: i for i in self.issues}
            self._index.update({i["key"].upper(): i for i in self.issues})
            self._index_stamp = stamp
        found = self._index.get(str(id_or_key).strip().upper())
        # an issue edited in place (key or id changed) is re-checked before being trusted
        if found is not None and str(id_or_key).strip().upper() in (
            found["id"],
            found["key"].upper(),
        ):
            return found
        wanted = str(id_or_key).strip().upper()
        return next((i for i in self.issues if wanted in (i["id"], i["key"].upper())), None)

    def project(self, id_or_key: str) -> dict[str, Any] | None:
        wanted = str(id_or_key).strip()
        for project in self.projects:
            if project["id"] == wanted or project["key"].upper() == wanted.upper():
                return project
        return None

    def profile(self, login: str) -> dict[str, Any]:
        if login not in self.profiles:
            self.profiles[login] = _make_profile(login, len(self.profiles))
        return self.profiles[login]

    # -- building --------------------------------------------------------------------------
    def add_project(self, key: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
        pid = str(10000 + len(self.projects))
        project = {
            "id": pid,
            "key": key,
            "name": name or f"{key.title()} project",
            "projectTypeKey": "software",
            "simplified": False,
            "style": "classic",
            "isPrivate": False,
            "description": f"Issues of the {key} team.",
            "lead": self.profile(next(iter(self.users), "lead@example.com")),
            **extra,
        }
        self.projects.append(project)
        return project

    def add_issue(
        self,
        project_key: str,
        summary: str,
        *,
        description: dict[str, Any] | str | None = None,
        created: str | datetime | int | None = None,
        updated: str | datetime | int | None = None,
        issuetype: str = "Task",
        status: str = "To Do",
        comments: list[dict[str, Any] | str] | None = None,
        labels: list[str] | None = None,
        reporter: str | None = None,
        assignee: str | None = None,
    ) -> dict[str, Any]:
        """Append an issue (ids and key numbers continue the existing sequence).

        ``description`` and comment bodies: an ADF doc, or a plain string (one paragraph per
        line). ``created``/``updated``: a Jira timestamp string, an aware datetime or epoch ms.
        """
        project = self.project(project_key) or self.add_project(project_key)
        number = 1 + max(
            (
                int(i["key"].rsplit("-", 1)[1])
                for i in self.issues
                if i["key"].startswith(f"{project['key']}-")
            ),
            default=0,
        )
        issue_id = str(1 + max((int(i["id"]) for i in self.issues), default=10000))
        created_s = _as_jira_ts(created if created is not None else int(self.clock() * 1000))
        updated_s = _as_jira_ts(updated) if updated is not None else created_s
        reporter_p = self.profile(reporter or next(iter(self.users), "me@example.com"))
        body_comments = []
        for n, c in enumerate(comments or []):
            body_comments.append(
                {
                    "id": str(int(issue_id) * 10 + n),
                    "author": reporter_p,
                    "body": _as_adf(c),
                    "created": updated_s,
                    "updated": updated_s,
                }
            )
        resolved = status in ("Done",)
        issue = {
            "id": issue_id,
            "key": f"{project['key']}-{number}",
            "fields": {
                "summary": summary,
                "description": _as_adf(description) if description is not None else None,
                "created": created_s,
                "updated": updated_s,
                "reporter": reporter_p,
                "creator": reporter_p,
                "assignee": self.profile(assignee) if assignee else None,
                "project": project,
                "status": STATUSES[status],
                "issuetype": ISSUE_TYPES[issuetype],
                "priority": PRIORITIES["Medium"],
                "labels": list(labels or []),
                "resolution": RESOLUTION_DONE if resolved else None,
                "resolutiondate": updated_s if resolved else None,
                "comment": body_comments,
            },
        }
        self.issues.append(issue)
        return issue


def _make_profile(login: str, n: int) -> dict[str, Any]:
    local = login.split("@", 1)[0]
    email = login if "@" in login else f"{login}@example.com"
    digest = hashlib.sha1(login.encode()).hexdigest()
    return {
        "accountId": f"5b10a2844c20165700ede{digest[:3]}",
        "displayName": " ".join(p.capitalize() for p in re.split(r"[._-]+", local) if p) or login,
        "emailAddress": email,
        "name": local,
        "key": f"JIRAUSER{10000 + n}",
    }


# --------------------------------------------------------------------------------------------
# Static catalogue
# --------------------------------------------------------------------------------------------

STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = {
    "To Do": {"id": "10000", "name": "To Do", "category": "new"},
    "In Progress": {"id": "3", "name": "In Progress", "category": "indeterminate"},
    "In Review": {"id": "10001", "name": "In Review", "category": "indeterminate"},
    "Done": {"id": "10002", "name": "Done", "category": "done"},
}
ISSUE_TYPES = {
    "Task": {"id": "10001", "name": "Task", "description": "A small, distinct piece of work."},
    "Bug": {"id": "10004", "name": "Bug", "description": "A problem or error."},
    "Story": {"id": "10002", "name": "Story", "description": "A user story."},
    "Epic": {"id": "10000", "name": "Epic", "description": "A big user story."},
}
PRIORITIES = {
    "Highest": {"id": "1", "name": "Highest"},
    "High": {"id": "2", "name": "High"},
    "Medium": {"id": "3", "name": "Medium"},
    "Low": {"id": "4", "name": "Low"},
}
RESOLUTION_DONE = {"id": "10000", "name": "Done", "description": "Work has been completed."}

ALL_FIELDS = (
    "summary",
    "description",
    "created",
    "updated",
    "reporter",
    "creator",
    "assignee",
    "project",
    "status",
    "issuetype",
    "priority",
    "labels",
    "resolution",
    "resolutiondate",
    "comment",
)
NAVIGABLE_FIELDS = tuple(f for f in ALL_FIELDS if f != "comment")
FIELD_NAMES = {
    "summary": "Summary",
    "description": "Description",
    "created": "Created",
    "updated": "Updated",
    "reporter": "Reporter",
    "creator": "Creator",
    "assignee": "Assignee",
    "project": "Project",
    "status": "Status",
    "issuetype": "Issue Type",
    "priority": "Priority",
    "labels": "Labels",
    "resolution": "Resolution",
    "resolutiondate": "Resolved",
    "comment": "Comment",
}

# --------------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------------

_JIRA_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})([+-])(\d{2})(\d{2})$"
)


@functools.cache
def jira_ts_to_ms(value: str) -> int:
    """``2024-03-05T10:15:30.123+0000`` -> epoch milliseconds."""
    m = _JIRA_TS.match(value)
    if not m:
        raise ValueError(f"not a Jira timestamp: {value!r}")
    y, mo, d, h, mi, s, ms, sign, oh, om = m.groups()
    offset = (int(oh) * 60 + int(om)) * (1 if sign == "+" else -1)
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    return int((dt - timedelta(minutes=offset)).timestamp()) * 1000 + int(ms)


def ms_to_jira_ts(ms: int, tz: str = "UTC") -> str:
    if tz == "UTC":
        t = time.gmtime(ms // 1000)
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000" % (*t[:6], ms % 1000)  # noqa: UP031
    dt = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(tz))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + dt.strftime("%z")


@functools.lru_cache(maxsize=65536)
def _render_ts(value: str, tz: str) -> str:
    return ms_to_jira_ts(jira_ts_to_ms(value), tz)


def _as_jira_ts(value: str | datetime | int) -> str:
    if isinstance(value, str):
        jira_ts_to_ms(value)
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give it a tzinfo")
        value = int(value.timestamp() * 1000)
    return ms_to_jira_ts(int(value))


# --------------------------------------------------------------------------------------------
# ADF, wiki markup, HTML and plain text
# --------------------------------------------------------------------------------------------


def _as_adf(value: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
            for line in value.split("\n")
        ],
    }


def adf_to_wiki(node: dict[str, Any] | None) -> str | None:
    """Render ADF as Jira wiki markup (what v2 and Data Center serve)."""
    if node is None:
        return None
    return _wiki_blocks(node.get("content", []), "").rstrip("\n")


def _wiki_inline(nodes: list[dict[str, Any]]) -> str:
    out = []
    for n in nodes:
        t = n["type"]
        if t == "text":
            text = n["text"]
            for mark in n.get("marks", []):
                kind = mark["type"]
                if kind == "strong":
                    text = f"*{text}*"
                elif kind == "em":
                    text = f"_{text}_"
                elif kind == "code":
                    text = "{{" + text + "}}"
                elif kind == "strike":
                    text = f"-{text}-"
                elif kind == "link":
                    text = f"[{text}|{mark['attrs']['href']}]"
            out.append(text)
        elif t == "hardBreak":
            out.append("\n")
        elif t == "mention":
            out.append(f"[~accountid:{n['attrs']['id']}]")
    return "".join(out)


def _wiki_blocks(nodes: list[dict[str, Any]], bullet: str) -> str:
    out = []
    for n in nodes:
        t = n["type"]
        if t == "paragraph":
            out.append(_wiki_inline(n.get("content", [])) + "\n\n")
        elif t == "heading":
            out.append(f"h{n['attrs']['level']}. {_wiki_inline(n.get('content', []))}\n")
        elif t == "bulletList":
            for item in n.get("content", []):
                inner = _wiki_blocks(item.get("content", []), bullet + "*").strip("\n")
                out.append(f"{bullet}* {inner}\n")
            out.append("\n")
        elif t == "codeBlock":
            lang = (n.get("attrs") or {}).get("language")
            code = "".join(c.get("text", "") for c in n.get("content", []))
            out.append(("{code:" + lang + "}" if lang else "{code}") + f"\n{code}\n" + "{code}\n\n")
    return "".join(out)


def adf_to_html(node: dict[str, Any] | None) -> str | None:
    if node is None:
        return None
    return _html_blocks(node.get("content", []))


def _html_inline(nodes: list[dict[str, Any]]) -> str:
    out = []
    for n in nodes:
        t = n["type"]
        if t == "text":
            text = html.escape(n["text"], quote=False)
            for mark in n.get("marks", []):
                kind = mark["type"]
                if kind == "strong":
                    text = f"<b>{text}</b>"
                elif kind == "em":
                    text = f"<em>{text}</em>"
                elif kind == "code":
                    text = f"<tt>{text}</tt>"
                elif kind == "strike":
                    text = f"<del>{text}</del>"
                elif kind == "link":
                    text = f'<a href="{html.escape(mark["attrs"]["href"])}">{text}</a>'
            out.append(text)
        elif t == "hardBreak":
            out.append("<br/>\n")
        elif t == "mention":
            out.append(f'<a class="user-hover">{html.escape(n["attrs"].get("text", ""))}</a>')
    return "".join(out)


def _html_blocks(nodes: list[dict[str, Any]]) -> str:
    out = []
    for n in nodes:
        t = n["type"]
        if t == "paragraph":
            out.append(f"<p>{_html_inline(n.get('content', []))}</p>\n")
        elif t == "heading":
            lvl = n["attrs"]["level"]
            out.append(f"<h{lvl}>{_html_inline(n.get('content', []))}</h{lvl}>\n")
        elif t == "bulletList":
            items = "".join(
                f"<li>{_html_blocks(i.get('content', [])).strip()}</li>"
                for i in n.get("content", [])
            )
            out.append(f'<ul class="alternate" type="square">{items}</ul>\n')
        elif t == "codeBlock":
            code = html.escape("".join(c.get("text", "") for c in n.get("content", [])))
            out.append(f'<div class="code panel"><pre>{code}</pre></div>\n')
    return "".join(out)


def adf_to_text(node: dict[str, Any] | None) -> str:
    if node is None:
        return ""
    parts: list[str] = []

    def walk(n: dict[str, Any]) -> None:
        if n.get("type") == "text":
            parts.append(n.get("text", ""))
        elif n.get("type") == "mention":
            parts.append(n.get("attrs", {}).get("text", ""))
        elif n.get("type") == "hardBreak":
            parts.append("\n")
        for child in n.get("content", []) or []:
            walk(child)
        if n.get("type") in ("paragraph", "heading", "codeBlock", "listItem"):
            parts.append("\n")

    walk(node)
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# JQL: tokenizer, parser, AST
# --------------------------------------------------------------------------------------------


class JqlError(Exception):
    def __init__(self, *messages: str) -> None:
        super().__init__(messages[0])
        self.messages = list(messages)


@dataclass(frozen=True)
class Token:
    kind: str  # "word" | "string" | "op" | "(" | ")" | "," | "eof"
    text: str  # the value (unescaped for strings/words)
    raw: str  # as written
    line: int
    col: int

    @property
    def where(self) -> str:
        return f"(line {self.line}, character {self.col})"


@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Function:
    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Empty:
    pass


Operand = Value | Function | Empty | tuple[Value | Function, ...]


@dataclass(frozen=True)
class Clause:
    field: str  # as written (case preserved)
    operator: str  # normalized: = != < > <= >= ~ !~ in "not in" is "is not"
    operand: Operand


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Clause | And | Or | Not


@dataclass(frozen=True)
class Query:
    where: Node | None
    order_by: tuple[tuple[str, str], ...] = ()  # (field, "ASC"|"DESC")


def clauses(query: Query | Node | None) -> list[Clause]:
    """Every terminal clause of a parsed query, left to right."""
    if query is None:
        return []
    if isinstance(query, Query):
        return clauses(query.where)
    if isinstance(query, Clause):
        return [query]
    if isinstance(query, Not):
        return clauses(query.child)
    return [c for child in query.children for c in clauses(child)]


_JQL_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "n": "\n", "r": "\r", " ": " "}
_RESERVED_CHARS = set("+.;?*/%^$#@[]{}")
_OPERATOR_CHARS = set("=!<>~")
_WORD_STOP = set(" \t\r\n(),\"'") | _OPERATOR_CHARS | _RESERVED_CHARS | {"&", "|"}
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}


def _illegal_escape(seq: str, tok_line: int, tok_col: int) -> JqlError:
    return JqlError(
        f"Error in the JQL Query: '{seq}' is an illegal JQL escape sequence. The valid escape "
        "sequences are \\', \\\", \\t, \\n, \\r, \\\\, '\\ ' and \\uXXXX. "
        f"(line {tok_line}, character {tok_col})"
    )


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, line, line_start = 0, 1, 0
    n = len(text)
    while i < n:
        ch = text[i]
        col = i - line_start + 1
        if ch == "\n":
            i += 1
            line, line_start = line + 1, i
            continue
        if ch in " \t\r":
            i += 1
            continue
        if ch in "(),":
            tokens.append(Token(ch, ch, ch, line, col))
            i += 1
            continue
        if ch in "&|":
            j = i + 1 if i + 1 < n and text[i + 1] == ch else i
            word = "and" if ch == "&" else "or"
            tokens.append(Token("word", word, text[i : j + 1], line, col))
            i = j + 1
            continue
        if ch in _OPERATOR_CHARS:
            two = text[i : i + 2]
            if two in ("!=", "<=", ">=", "!~"):
                tokens.append(Token("op", two, two, line, col))
                i += 2
            elif ch == "!":
                tokens.append(Token("word", "not", "!", line, col))
                i += 1
            else:
                tokens.append(Token("op", ch, ch, line, col))
                i += 1
            continue
        if ch in "\"'":
            quote, j, out = ch, i + 1, []
            while True:
                if j >= n or text[j] in "\n\r":
                    seen = text[i + 1 : j]
                    raise JqlError(
                        f"Error in the JQL Query: The quoted string '{seen}' has not been "
                        f"completed. (line {line}, character {col})"
                    )
                c = text[j]
                if c == quote:
                    break
                if c == "\\":
                    j, piece = _read_escape(text, j, line, j - line_start + 1)
                    out.append(piece)
                    continue
                out.append(c)
                j += 1
            tokens.append(Token("string", "".join(out), text[i : j + 1], line, col))
            i = j + 1
            continue
        if ch in _RESERVED_CHARS:
            raise JqlError(
                f"Error in the JQL Query: The character '{ch}' is a reserved JQL character. You "
                f"must enclose it in a string or use the escape '\\u{ord(ch):04x}' instead. "
                f"(line {line}, character {col})"
            )
        j, out = i, []
        while j < n and text[j] not in _WORD_STOP:
            if text[j] == "\\":
                j, piece = _read_escape(text, j, line, j - line_start + 1)
                out.append(piece)
                continue
            out.append(text[j])
            j += 1
        tokens.append(Token("word", "".join(out), text[i:j], line, col))
        i = j
    tokens.append(Token("eof", "", "", line, len(text) - line_start + 1))
    return tokens


def _read_escape(text: str, j: int, line: int, col: int) -> tuple[int, str]:
    """``text[j]`` is a backslash: return (index after the escape, the character it means)."""
    nxt = text[j + 1] if j + 1 < len(text) else ""
    if nxt in _JQL_ESCAPES and nxt:
        return j + 2, _JQL_ESCAPES[nxt]
    if nxt == "u":
        hexdigits = text[j + 2 : j + 6]
        if len(hexdigits) == 4 and all(c in "0123456789abcdefABCDEF" for c in hexdigits):
            return j + 6, chr(int(hexdigits, 16))
        raise _illegal_escape("\\u" + hexdigits, line, col)
    raise _illegal_escape("\\" + nxt, line, col)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def is_word(self, tok: Token, *words: str) -> bool:
        return tok.kind == "word" and tok.text.lower() in words

    def parse(self) -> Query:
        where = None
        if not (self.peek().kind == "eof" or self.is_word(self.peek(), "order")):
            where = self.parse_or()
        order: list[tuple[str, str]] = []
        tok = self.peek()
        if self.is_word(tok, "order"):
            self.next()
            by = self.next()
            if not self.is_word(by, "by"):
                raise self.expected("'by'", by)
            while True:
                f = self.next()
                if f.kind not in ("word", "string") or (
                    f.kind == "word" and f.text.lower() in _KEYWORDS
                ):
                    raise self.expected("a field name", f)
                direction = "ASC"
                if self.is_word(self.peek(), "asc", "desc"):
                    direction = self.next().text.upper()
                order.append((f.text, direction))
                if self.peek().kind == ",":
                    self.next()
                    continue
                break
            tok = self.peek()
        if tok.kind != "eof":
            if where is None or order:
                raise JqlError(
                    "Error in the JQL Query: Expecting end of query but got "
                    f"'{tok.raw}'. {tok.where}"
                )
            raise JqlError(
                "Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                f"'{tok.raw}'. {tok.where}"
            )
        return Query(where, tuple(order))

    def expected(self, what: str, tok: Token) -> JqlError:
        if tok.kind == "eof":
            return JqlError(
                f"Error in the JQL Query: Expecting {what} before the end of the query."
            )
        return JqlError(
            f"Error in the JQL Query: Expecting {what} but got '{tok.raw}'. {tok.where}"
        )

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while self.is_word(self.peek(), "or"):
            self.next()
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children = [self.parse_not()]
        while self.is_word(self.peek(), "and"):
            self.next()
            children.append(self.parse_not())
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_not(self) -> Node:
        tok = self.peek()
        if self.is_word(tok, "not"):
            self.next()
            return Not(self.parse_not())
        if tok.kind == "(":
            self.next()
            inner = self.parse_or()
            close = self.next()
            if close.kind != ")":
                if close.kind == "eof":
                    raise JqlError(
                        "Error in the JQL Query: Expecting ')' before the end of the query."
                    )
                raise JqlError(
                    "Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                    f"'{close.raw}'. {close.where}"
                )
            return inner
        return self.parse_clause()

    def parse_clause(self) -> Clause:
        f = self.next()
        if f.kind not in ("word", "string") or (f.kind == "word" and f.text.lower() in _KEYWORDS):
            raise self.expected("a field name", f)
        op_tok = self.next()
        if op_tok.kind == "op":
            op = op_tok.text
        elif self.is_word(op_tok, "in"):
            op = "in"
        elif self.is_word(op_tok, "not"):
            nxt = self.next()
            if not self.is_word(nxt, "in"):
                raise self.expected("'IN'", nxt)
            op = "not in"
        elif self.is_word(op_tok, "is"):
            op = "is"
            if self.is_word(self.peek(), "not"):
                self.next()
                op = "is not"
        elif op_tok.kind == "eof":
            raise JqlError(
                f"Error in the JQL Query: Expecting operator before the end of the query. "
                f"{VALID_OPERATORS_TEXT}"
            )
        else:
            raise JqlError(
                f"Error in the JQL Query: Expecting operator but got '{op_tok.raw}'. "
                f"{VALID_OPERATORS_TEXT} {op_tok.where}"
            )
        operand: Operand
        if op in ("is", "is not"):
            tok = self.next()
            if not self.is_word(tok, "empty", "null"):
                raise self.expected("'EMPTY' or 'NULL'", tok)
            operand = Empty()
        elif op in ("in", "not in"):
            tok = self.next()
            if tok.kind != "(":
                raise self.expected("'('", tok)
            items = [self.parse_value()]
            while self.peek().kind == ",":
                self.next()
                items.append(self.parse_value())
            close = self.next()
            if close.kind != ")":
                raise self.expected("')'", close)
            operand = tuple(items)
        else:
            if self.peek().kind == "(":
                tok = self.peek()
                raise JqlError(
                    f"Error in the JQL Query: Expecting either a value, list or function but got "
                    f"'('. {tok.where}"
                )
            operand = self.parse_value()
        return Clause(f.text, op, operand)

    def parse_value(self) -> Value | Function:
        tok = self.next()
        if tok.kind == "string":
            return Value(tok.text, quoted=True)
        if tok.kind == "word":
            if tok.text.lower() in _KEYWORDS:
                upper = tok.raw.upper()
                raise JqlError(
                    f"Error in the JQL Query: Expecting either a value, list or function but got "
                    f"'{upper}'. You must surround '{upper}' in quotation marks to use it as a "
                    f"value. {tok.where}"
                )
            if self.peek().kind == "(":
                self.next()
                args = []
                while self.peek().kind != ")":
                    a = self.next()
                    if a.kind not in ("word", "string"):
                        raise self.expected("')'", a)
                    args.append(a.text)
                    if self.peek().kind == ",":
                        self.next()
                self.next()
                return Function(tok.text, tuple(args))
            return Value(tok.text, quoted=False)
        raise self.expected("either a value, list or function", tok)


def parse_jql(text: str) -> Query:
    """Parse JQL (syntax only); raises ``JqlError`` with Jira's messages."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# JQL: semantics (validation + compilation to a predicate)
# --------------------------------------------------------------------------------------------

_FIELD_ALIASES = {
    "project": "project",
    "issuetype": "issuetype",
    "type": "issuetype",
    "status": "status",
    "key": "key",
    "issue": "key",
    "issuekey": "key",
    "id": "id",
    "text": "text",
    "summary": "summary",
    "description": "description",
    "comment": "comment",
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
    "reporter": "reporter",
    "assignee": "assignee",
    "labels": "labels",
}
_FIELD_OPERATORS = {
    "project": {"=", "!=", "in", "not in"},
    "issuetype": {"=", "!=", "in", "not in"},
    "status": {"=", "!=", "in", "not in"},
    "key": {"=", "!=", "in", "not in", "<", ">", "<=", ">="},
    "id": {"=", "!=", "in", "not in", "<", ">", "<=", ">="},
    "text": {"~"},
    "summary": {"~", "!~", "is", "is not"},
    "description": {"~", "!~", "is", "is not"},
    "comment": {"~", "!~"},
    "created": {"=", "!=", "<", ">", "<=", ">=", "is", "is not"},
    "updated": {"=", "!=", "<", ">", "<=", ">=", "is", "is not"},
    "reporter": {"=", "!=", "in", "not in", "is", "is not"},
    "assignee": {"=", "!=", "in", "not in", "is", "is not"},
    "labels": {"=", "!=", "in", "not in", "is", "is not"},
}
_ORDERABLE = {
    "created": "created",
    "updated": "updated",
    "key": "key",
    "id": "key",
    "summary": "summary",
}
_ORDERABLE.update(
    {"createddate": "created", "updateddate": "updated", "issuekey": "key", "issue": "key"}
)
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
_WORD_RE = re.compile(r"[^\W_]+")
_KEY_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)-(\d+)$")
_PERIOD_RE = re.compile(r"^([+-]?)((?:\s*\d+\s*[wdhm])+)$", re.IGNORECASE)
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")

Predicate = Callable[[dict[str, Any]], bool]


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def is_unbounded(query: Query) -> bool:
    return query.where is None


class _Compiler:
    def __init__(self, state: JiraState, login: str | None) -> None:
        self.state = state
        self.login = login
        self.errors: list[str] = []
        self.tz = ZoneInfo(state.time_zone)

    # -- values ----------------------------------------------------------------------------
    def scalar(self, operand: Value | Function, fname: str) -> str | None:
        if isinstance(operand, Function):
            fn = operand.name.lower()
            if fn == "currentuser" and fname in ("reporter", "assignee"):
                return self.login
            self.errors.append(
                f"Unable to find JQL function '{operand.name}({', '.join(operand.args)})'."
                if fn not in ("currentuser", "now", "startofday", "endofday")
                else f"The field '{fname}' does not support the function '{operand.name}'."
            )
            return None
        return operand.text

    def date_ms(self, operand: Operand, fname: str) -> int | None:
        if isinstance(operand, Function):
            fn = operand.name.lower()
            now = self.state.clock()
            if fn == "now":
                return int(now * 1000)
            if fn in ("startofday", "endofday"):
                local = datetime.fromtimestamp(now, self.tz).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                if fn == "endofday":
                    local = local + timedelta(days=1) - timedelta(milliseconds=1)
                return int(local.timestamp() * 1000)
            self.errors.append(f"Unable to find JQL function '{operand.name}()'.")
            return None
        assert isinstance(operand, Value)
        text = operand.text.strip()
        if re.fullmatch(r"-?\d+", text):  # epoch milliseconds (absolute, no time zone)
            return int(text)
        m = _PERIOD_RE.match(text)
        if m:
            sign = -1 if m.group(1) == "-" else 1
            delta = 0
            for amount, unit in re.findall(r"(\d+)\s*([wdhm])", m.group(2), re.IGNORECASE):
                delta += int(amount) * {"w": 604800, "d": 86400, "h": 3600, "m": 60}[unit.lower()]
            return int((self.state.clock() + sign * delta) * 1000)
        for fmt in _DATE_FORMATS:
            try:
                dt = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return int(dt.replace(tzinfo=self.tz).timestamp() * 1000)
        self.errors.append(
            f"Date value '{operand.text}' for field '{fname}' is invalid. {DATE_FORMATS_TEXT}"
        )
        return None

    # -- compile ---------------------------------------------------------------------------
    def compile(self, node: Node) -> Predicate:
        if isinstance(node, And):
            parts = [self.compile(c) for c in node.children]
            return lambda issue: all(p(issue) for p in parts)
        if isinstance(node, Or):
            parts = [self.compile(c) for c in node.children]
            return lambda issue: any(p(issue) for p in parts)
        if isinstance(node, Not):
            inner = self.compile(node.child)
            return lambda issue: not inner(issue)
        return self.clause(node)

    def clause(self, c: Clause) -> Predicate:
        fname = _FIELD_ALIASES.get(c.field.lower())
        never: Predicate = lambda issue: False  # noqa: E731
        if fname is None:
            self.errors.append(
                f"Field '{c.field}' does not exist or you do not have permission to view it."
            )
            return never
        if c.operator not in _FIELD_OPERATORS[fname]:
            self.errors.append(
                f"The operator '{c.operator}' is not supported by the '{c.field}' field."
            )
            return never
        if c.operator in ("is", "is not"):
            positive = c.operator == "is"
            return lambda issue: _is_empty(issue, fname) == positive
        operands: tuple[Value | Function, ...]
        if isinstance(c.operand, tuple):
            operands = c.operand
        elif isinstance(c.operand, Value | Function):
            operands = (c.operand,)
        else:  # pragma: no cover - the parser only builds Empty for IS
            return never
        negate = c.operator in ("!=", "not in", "!~")
        if fname in ("project", "issuetype", "status"):
            pred = self.named(fname, c.field, operands)
        elif fname in ("key", "id"):
            pred = self.keyed(fname, c.field, c.operator, operands)
        elif fname in ("text", "summary", "description", "comment"):
            value = self.scalar(operands[0], c.field)
            if value is not None and not value.strip():
                self.errors.append(
                    f"The field '{c.field}' does not support searching for an empty string."
                )
                return never
            pred = _text_predicate(fname, value or "")
        elif fname in ("created", "updated"):
            ms = self.date_ms(operands[0], c.field)
            if ms is None:
                return never
            pred = _date_predicate(fname, c.operator, ms)
            negate = False
        elif fname in ("reporter", "assignee"):
            wanted = {v.lower() for v in (self.scalar(o, c.field) for o in operands) if v}
            pred = lambda issue: _user_matches(issue["fields"].get(fname), wanted)  # noqa: E731
        else:  # labels
            wanted = {v for v in (self.scalar(o, c.field) for o in operands) if v}
            pred = lambda issue: bool(wanted & set(issue["fields"].get("labels") or []))  # noqa: E731
        if negate:
            inner = pred
            return lambda issue: not inner(issue)
        return pred

    def named(self, fname: str, written: str, operands: tuple[Value | Function, ...]) -> Predicate:
        ids: set[str] = set()
        for o in operands:
            v = self.scalar(o, written)
            if v is None:
                continue
            found = None
            if fname == "project":
                p = self.state.project(v) or next(
                    (p for p in self.state.projects if p["name"].lower() == v.lower()), None
                )
                found = p["id"] if p else None
            else:
                catalogue = STATUSES if fname == "status" else ISSUE_TYPES
                for entry in catalogue.values():
                    if v.lower() in (entry["name"].lower(), entry["id"]):
                        found = entry["id"]
            if found is None:
                self.errors.append(f"The value '{v}' does not exist for the field '{written}'.")
            else:
                ids.add(found)
        return lambda issue: issue["fields"][fname]["id"] in ids

    def keyed(
        self, fname: str, written: str, op: str, operands: tuple[Value | Function, ...]
    ) -> Predicate:
        targets: list[int] = []  # issue ids (numeric)
        for o in operands:
            v = self.scalar(o, written)
            if v is None:
                continue
            v = v.strip()
            if v.isdigit():
                target = self.state.issue(v) if fname == "key" else None
                targets.append(int(target["id"]) if target else int(v))
            elif _KEY_RE.match(v):
                target = self.state.issue(v)
                if target is None:
                    self.errors.append(
                        f"An issue with key '{v}' does not exist for field '{written}'."
                    )
                    continue
                targets.append(int(target["id"]))
            else:
                self.errors.append(f"The issue key '{v}' for field '{written}' is invalid.")
        if op in ("=", "!=", "in", "not in"):
            wanted = {str(t) for t in targets}
            return lambda issue: issue["id"] in wanted
        if not targets:
            return lambda issue: False
        target_issue = self.state.issue(str(targets[0]))
        bound = targets[0]
        project_id = target_issue["fields"]["project"]["id"] if target_issue else None
        cmp = _COMPARATORS[op]

        def ranged(issue: dict[str, Any]) -> bool:
            if project_id is not None and issue["fields"]["project"]["id"] != project_id:
                return False
            return cmp(int(issue["id"]), bound)

        return ranged


_COMPARATORS: dict[str, Callable[[int, int], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _date_predicate(fname: str, op: str, ms: int) -> Predicate:
    cmp = _COMPARATORS[op]
    return lambda issue: cmp(jira_ts_to_ms(issue["fields"][fname]), ms)


def _is_empty(issue: dict[str, Any], fname: str) -> bool:
    value = issue["fields"].get(fname)
    return value is None or value == [] or value == ""


def _user_matches(user: dict[str, Any] | None, wanted: set[str]) -> bool:
    if not user:
        return False
    return any(
        str(user.get(k, "")).lower() in wanted
        for k in ("accountId", "emailAddress", "name", "key", "displayName")
    )


_TEXT_CACHE: dict[str, tuple[tuple[Any, ...], dict[str, list[str]]]] = {}


def _issue_words(issue: dict[str, Any]) -> dict[str, list[str]]:
    f = issue["fields"]
    comments = f.get("comment") or []
    stamp = (f.get("summary"), id(f.get("description")), len(comments), id(comments))
    cached = _TEXT_CACHE.get(issue["id"])
    if cached and cached[0] == stamp:
        return cached[1]
    words = {
        "summary": _words(f.get("summary") or ""),
        "description": _words(adf_to_text(f.get("description"))),
        "comment": _words(" \n ".join(adf_to_text(c.get("body")) for c in comments)),
    }
    words["text"] = words["summary"] + ["\0"] + words["description"] + ["\0"] + words["comment"]
    _TEXT_CACHE[issue["id"]] = (stamp, words)
    return words


def _text_predicate(fname: str, value: str) -> Predicate:
    stripped = value.strip()
    phrase = len(stripped) >= 2 and stripped.startswith('"') and stripped.endswith('"')
    terms = [w for w in _words(stripped) if w not in _STOP_WORDS]
    if not terms:
        return lambda issue: False
    prefix: set[str] = set()  # terms written with a trailing * (prefix match)
    if not phrase:
        for raw in re.split(r"\s+", stripped):
            if raw.endswith("*") and _words(raw):
                prefix.add(_words(raw)[-1])

    def has(word_list: list[str], term: str) -> bool:
        if term in prefix:
            return any(w.startswith(term) for w in word_list)
        return term in word_list

    if phrase:
        n = len(terms)

        def phrase_pred(issue: dict[str, Any]) -> bool:
            ws = [w for w in _issue_words(issue)[fname] if w not in _STOP_WORDS]
            first = terms[0]
            return any(ws[i : i + n] == terms for i, w in enumerate(ws) if w == first)

        return phrase_pred

    def all_terms(issue: dict[str, Any]) -> bool:
        ws = _issue_words(issue)[fname]
        return all(has(ws, t) for t in terms)

    return all_terms


def _sort_key(fname: str) -> Callable[[dict[str, Any]], Any]:
    if fname in ("created", "updated"):
        return lambda issue: jira_ts_to_ms(issue["fields"][fname])
    if fname == "summary":
        return lambda issue: issue["fields"]["summary"].lower()
    return lambda issue: (issue["key"].rsplit("-", 1)[0], int(issue["key"].rsplit("-", 1)[1]))


def run_query(state: JiraState, query: Query, login: str | None) -> list[dict[str, Any]]:
    """Evaluate a parsed query against the state; raises ``JqlError`` on semantic errors."""
    compiler = _Compiler(state, login)
    predicate = compiler.compile(query.where) if query.where is not None else None
    for fname, _ in query.order_by:
        if fname.lower() not in _ORDERABLE and fname.lower() not in _FIELD_ALIASES:
            compiler.errors.append(
                f"Field '{fname}' does not exist or you do not have permission to view it."
            )
        elif fname.lower() not in _ORDERABLE:
            compiler.errors.append(f"Field '{fname}' does not support sorting.")
    if compiler.errors:
        raise JqlError(*compiler.errors)
    found = [i for i in state.issues if predicate is None or predicate(i)]
    # Jira's default order (no ORDER BY) is newest first; ties broken by id for stable paging.
    order = list(query.order_by) or [("created", "DESC")]
    found.sort(key=lambda i: int(i["id"]), reverse=order[0][1] == "DESC")
    for fname, direction in reversed(order):
        found.sort(key=_sort_key(_ORDERABLE[fname.lower()]), reverse=direction == "DESC")
    return found


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass
class _Render:
    state: JiraState
    base: str
    version: str  # "2" | "3"

    @property
    def cloud(self) -> bool:
        return self.state.deployment == "cloud"

    @property
    def api(self) -> str:
        return f"{self.base}/rest/api/{self.version}"

    def ts(self, value: str | None) -> str | None:
        if value is None or not self.state.render_dates_in_user_tz:
            return value
        return _render_ts(value, self.state.time_zone)

    def avatars(self, kind: str, ident: str) -> dict[str, str]:
        if kind == "project":
            sizes = {"48x48": "large", "24x24": "small", "16x16": "xsmall", "32x32": "medium"}
            return {
                k: f"{self.base}/secure/projectavatar?size={v}&pid={ident}"
                for k, v in sizes.items()
            }
        return {
            k: f"https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/{ident}/{k}.png"
            for k in ("48x48", "24x24", "16x16", "32x32")
        }

    def user(self, p: dict[str, Any] | None) -> dict[str, Any] | None:
        if p is None:
            return None
        if self.cloud:
            return {
                "self": f"{self.api}/user?accountId={p['accountId']}",
                "accountId": p["accountId"],
                "emailAddress": p["emailAddress"],
                "avatarUrls": self.avatars("user", p["accountId"]),
                "displayName": p["displayName"],
                "active": True,
                "timeZone": self.state.time_zone,
                "accountType": "atlassian",
            }
        return {
            "self": f"{self.api}/user?username={p['name']}",
            "name": p["name"],
            "key": p["key"],
            "emailAddress": p["emailAddress"],
            "avatarUrls": self.avatars("user", p["key"]),
            "displayName": p["displayName"],
            "active": True,
            "timeZone": self.state.time_zone,
        }

    def project_ref(self, p: dict[str, Any]) -> dict[str, Any]:
        ref = {
            "self": f"{self.api}/project/{p['id']}",
            "id": p["id"],
            "key": p["key"],
            "name": p["name"],
            "projectTypeKey": p["projectTypeKey"],
            "avatarUrls": self.avatars("project", p["id"]),
        }
        if self.cloud:
            ref["simplified"] = p.get("simplified", False)
        return ref

    def project_full(self, p: dict[str, Any]) -> dict[str, Any]:
        out = {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            **self.project_ref(p),
            "description": p.get("description", ""),
            "lead": self.user(p.get("lead")),
            "components": [],
            "issueTypes": [self.issuetype(t) for t in ISSUE_TYPES.values()],
            "assigneeType": "UNASSIGNED",
            "versions": [],
            "roles": {},
        }
        if self.cloud:
            out["style"] = p.get("style", "classic")
            out["isPrivate"] = p.get("isPrivate", False)
            out["properties"] = {}
        else:
            out["archived"] = False
        return out

    def project_listed(self, p: dict[str, Any]) -> dict[str, Any]:
        out = {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            **self.project_ref(p),
        }
        if self.cloud:
            out.update(
                {
                    "style": p.get("style", "classic"),
                    "isPrivate": p.get("isPrivate", False),
                    "properties": {},
                }
            )
        else:
            out["archived"] = False
        return out

    def status(self, s: dict[str, Any]) -> dict[str, Any]:
        cat = STATUS_CATEGORIES[s["category"]]
        return {
            "self": f"{self.api}/status/{s['id']}",
            "description": "",
            "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
            "name": s["name"],
            "id": s["id"],
            "statusCategory": {"self": f"{self.api}/statuscategory/{cat['id']}", **cat},
        }

    def issuetype(self, t: dict[str, Any]) -> dict[str, Any]:
        return {
            "self": f"{self.api}/issuetype/{t['id']}",
            "id": t["id"],
            "description": t["description"],
            "iconUrl": f"{self.base}/secure/viewavatar?size=medium&avatarId=10318"
            "&avatarType=issuetype",
            "name": t["name"],
            "subtask": False,
            "avatarId": 10318,
            **({"hierarchyLevel": 1 if t["name"] == "Epic" else 0} if self.cloud else {}),
        }

    def body(self, adf: dict[str, Any] | None) -> Any:
        if self.cloud and self.version == "3":
            return adf
        return adf_to_wiki(adf)

    def comment_field(self, issue: dict[str, Any]) -> dict[str, Any]:
        comments = [
            {
                "self": f"{self.api}/issue/{issue['id']}/comment/{c['id']}",
                "id": c["id"],
                "author": self.user(c.get("author")),
                "body": self.body(c.get("body")),
                "updateAuthor": self.user(c.get("author")),
                "created": self.ts(c["created"]),
                "updated": self.ts(c["updated"]),
                "jsdPublic": True,
            }
            for c in issue["fields"].get("comment") or []
        ]
        return {
            "comments": comments,
            "self": f"{self.api}/issue/{issue['id']}/comment",
            "maxResults": len(comments),
            "total": len(comments),
            "startAt": 0,
        }

    def field(self, issue: dict[str, Any], name: str) -> Any:
        f = issue["fields"]
        if name in ("created", "updated", "resolutiondate"):
            return self.ts(f.get(name))
        if name in ("reporter", "creator", "assignee"):
            return self.user(f.get(name))
        if name == "project":
            return self.project_ref(f["project"])
        if name == "status":
            return self.status(f["status"])
        if name == "issuetype":
            return self.issuetype(f["issuetype"])
        if name == "priority":
            p = f["priority"]
            return {
                "self": f"{self.api}/priority/{p['id']}",
                "iconUrl": f"{self.base}/images/icons/priorities/medium.svg",
                **p,
            }
        if name == "resolution":
            r = f.get("resolution")
            return None if r is None else {"self": f"{self.api}/resolution/{r['id']}", **r}
        if name == "description":
            return self.body(f.get("description"))
        if name == "comment":
            return self.comment_field(issue)
        return f.get(name)

    def rendered(self, issue: dict[str, Any], names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            f = issue["fields"]
            if name == "description":
                out[name] = adf_to_html(f.get("description")) or ""
            elif name in ("created", "updated", "resolutiondate") and f.get(name):
                ms = jira_ts_to_ms(f[name])
                out[name] = datetime.fromtimestamp(
                    ms / 1000, ZoneInfo(self.state.time_zone)
                ).strftime("%d/%b/%y %I:%M %p")
            elif name == "comment":
                comment = self.comment_field(issue)
                for c, raw in zip(comment["comments"], f.get("comment") or [], strict=True):
                    c["body"] = adf_to_html(raw.get("body")) or ""
                out[name] = comment
            else:
                out[name] = None
        return out

    def issue(self, issue: dict[str, Any], names: list[str], expand: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "expand": ISSUE_EXPAND,
            "id": issue["id"],
            "self": f"{self.api}/issue/{issue['id']}",
            "key": issue["key"],
            "fields": {n: self.field(issue, n) for n in names},
        }
        if "renderedfields" in expand:
            out["renderedFields"] = self.rendered(issue, names)
        return out


def select_fields(specs: list[str], default: str) -> tuple[list[str], bool]:
    """Resolve Jira's ``fields`` parameter: (field names in order, ids-only?)."""
    items = [s.strip() for spec in specs for s in str(spec).split(",") if s.strip()]
    if not items:
        items = [default]
    include: list[str] = []
    exclude: set[str] = set()
    for item in items:
        if item == "*all":
            include += ALL_FIELDS
        elif item == "*navigable":
            include += NAVIGABLE_FIELDS
        elif item.startswith("-"):
            exclude.add(item[1:])
        elif item in ALL_FIELDS:
            include.append(item)
    if exclude and not include:
        include = list(NAVIGABLE_FIELDS)
    chosen = [f for f in dict.fromkeys(include) if f not in exclude]
    ids_only = all(i == "id" for i in items)
    return chosen, ids_only


def _only_ids_or_keys(specs: list[str]) -> bool:
    items = [s.strip() for spec in specs for s in str(spec).split(",") if s.strip()]
    return all(i in ("id", "key") for i in items)


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode() if orjson is not None else json.dumps(obj)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps)


def _errors(status: int, *messages: str, errors: dict[str, str] | None = None) -> web.Response:
    return _json({"errorMessages": list(messages), "errors": errors or {}}, status=status)


def _base(request: web.Request, state: JiraState) -> str:
    return (state.base_url or str(request.url.origin())).rstrip("/")


def _unauthorized(state: JiraState, failed: bool) -> web.Response:
    if state.deployment == "cloud":
        headers = {
            "WWW-Authenticate": 'OAuth realm="https%3A%2F%2Fexample.atlassian.net"',
            "X-Seraph-LoginReason": "AUTHENTICATED_FAILED" if failed else "OK",
        }
        return web.Response(
            status=401, text=CLOUD_UNAUTHORIZED_BODY, content_type="text/plain", headers=headers
        )
    if failed:
        headers = {
            "WWW-Authenticate": 'Basic realm="protected-area"',
            "X-Seraph-LoginReason": "AUTHENTICATED_FAILED",
            "X-AUSERNAME": "anonymous",
        }
        return web.Response(
            status=401, text=DC_UNAUTHORIZED_HTML, content_type="text/html", headers=headers
        )
    response = _errors(401, DC_NOT_AUTHENTICATED_MESSAGE)
    response.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
    response.headers["X-AUSERNAME"] = "anonymous"
    return response


def _login(request: web.Request, state: JiraState) -> tuple[str | None, bool]:
    """(login, failed): (None, False) = anonymous; (None, True) = bad credentials."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None, False
    if header.startswith("Bearer ") and state.deployment == "datacenter":
        login = state.personal_access_tokens.get(header[7:].strip())
        return (login, False) if login else (None, True)
    creds = parse_basic_auth(request)
    if creds is None:
        return None, True
    user, secret = creds
    if state.users.get(user) == secret:
        return user, False
    return None, True


class _Handlers:
    def __init__(self, state: JiraState) -> None:
        self.state = state
        self._results: dict[tuple[str, str | None], tuple[Any, list[dict[str, Any]]]] = {}

    # -- common ----------------------------------------------------------------------------
    def auth(self, request: web.Request, anonymous_ok: bool = False) -> str | web.Response | None:
        login, failed = _login(request, self.state)
        if failed or (login is None and not anonymous_ok):
            return _unauthorized(self.state, failed)
        return login

    def version(self, request: web.Request) -> str | None:
        """ "2" or "3" for the requested API version; None when this deployment has no such API."""
        ver = request.match_info["ver"]
        if ver == "latest":
            ver = "2" if self.state.deployment == "datacenter" else "3"
        if ver == "3" and self.state.deployment == "datacenter":
            return None
        return ver

    def dc_not_found(self, request: web.Request) -> web.Response:
        return _json({"message": f"null for uri: {request.url}", "status-code": 404}, status=404)

    async def read_json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _errors(
                400, "Invalid request payload. Refer to the REST API documentation and try again."
            )
        if not isinstance(body, dict):
            return _errors(
                400, "Invalid request payload. Refer to the REST API documentation and try again."
            )
        return body

    def parse(self, jql: str, login: str | None) -> Query | web.Response:
        self.state.last_jql = jql
        self.state.last_jql_ast = None
        try:
            query = parse_jql(jql)
        except JqlError as exc:
            return _errors(400, *exc.messages)
        self.state.last_jql_ast = query
        return query

    def search(self, query: Query, login: str | None) -> list[dict[str, Any]] | web.Response:
        try:
            return run_query(self.state, query, login)
        except JqlError as exc:
            return _errors(400, *exc.messages)

    # -- removed (Cloud) / DC search --------------------------------------------------------
    async def legacy_search(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None:
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        if self.state.deployment == "cloud":
            return _errors(410, REMOVED_SEARCH_MESSAGE)
        if request.method == "POST":
            body = await self.read_json(request)
            if isinstance(body, web.Response):
                return body
        else:
            body = {
                "jql": request.query.get("jql", ""),
                "startAt": request.query.get("startAt", "0"),
                "maxResults": request.query.get("maxResults", str(SEARCH_JQL_DEFAULT_MAX)),
                "fields": request.query.getall("fields", []),
                "expand": request.query.get("expand", ""),
            }
        try:
            start_at = int(body.get("startAt") or 0)
            max_results = int(body.get("maxResults", SEARCH_JQL_DEFAULT_MAX))
        except (TypeError, ValueError):
            return _errors(
                400, "The request parameters are invalid: startAt and maxResults must be integers."
            )
        start_at = max(start_at, 0)
        if max_results < 0:
            max_results = SEARCH_JQL_DEFAULT_MAX
        max_results = min(max_results, self.state.max_results_cap)
        query = self.parse(str(body.get("jql") or ""), login)
        if isinstance(query, web.Response):
            return query
        found = self.search(query, login)
        if isinstance(found, web.Response):
            return found
        fields_spec = body.get("fields") or []
        if isinstance(fields_spec, str):
            fields_spec = [fields_spec]
        names, _ = select_fields(fields_spec, "*navigable")
        expand = _expand_set(body.get("expand"))
        render = _Render(self.state, _base(request, self.state), "2")
        page = found[start_at : start_at + max_results]
        out: dict[str, Any] = {
            "expand": "schema,names",
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(found),
            "issues": [render.issue(i, names, expand) for i in page],
        }
        if "names" in expand:
            out["names"] = {n: FIELD_NAMES[n] for n in names}
        return _json(out)

    # -- Cloud enhanced search --------------------------------------------------------------
    async def search_jql(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None or self.state.deployment == "datacenter":
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        if request.method == "POST":
            body = await self.read_json(request)
            if isinstance(body, web.Response):
                return body
            fields_spec = body.get("fields") or []
            if isinstance(fields_spec, str):
                fields_spec = [fields_spec]
            reconcile = body.get("reconcileIssues") or []
        else:
            q = request.query
            body = {k: q[k] for k in ("jql", "nextPageToken", "maxResults", "expand") if k in q}
            fields_spec = q.getall("fields", [])
            reconcile = [r for v in q.getall("reconcileIssues", []) for r in v.split(",") if r]
        try:
            max_results = int(body.get("maxResults", SEARCH_JQL_DEFAULT_MAX))
            reconcile_ids = [int(r) for r in reconcile]
        except (TypeError, ValueError):
            return _errors(400, "The request parameters are invalid.")
        if len(reconcile_ids) > RECONCILE_MAX:
            return _errors(400, f"The maximum number of reconcileIssues is {RECONCILE_MAX}.")
        cap = (
            SEARCH_JQL_MAX_IDS_ONLY
            if _only_ids_or_keys(fields_spec)
            else SEARCH_JQL_MAX_WITH_FIELDS
        )
        max_results = max(0, min(max_results, cap))
        jql = str(body.get("jql") or "")
        query = self.parse(jql, login)
        if isinstance(query, web.Response):
            return query
        if is_unbounded(query):
            return _errors(400, UNBOUNDED_JQL_MESSAGE)
        offset = 0
        token = body.get("nextPageToken")
        if token:
            offset_or_none = _decode_token(str(token), jql)
            if offset_or_none is None:
                return _errors(400, INVALID_TOKEN_MESSAGE)
            offset = offset_or_none
        # A continuation page reuses the result list computed for the first page (Jira's token
        # paging is not a fresh search either); a first page always searches afresh.
        stamp = (len(self.state.issues), id(self.state.issues[-1]) if self.state.issues else 0)
        cached = self._results.get((jql, login))
        if token and cached is not None and cached[0] == stamp:
            found = cached[1]
        else:
            searched = self.search(query, login)
            if isinstance(searched, web.Response):
                return searched
            found = searched
            if len(self._results) > 32:
                self._results.clear()
            self._results[(jql, login)] = (stamp, found)
        names, ids_only = select_fields(fields_spec, "id")
        expand = _expand_set(body.get("expand"))
        render = _Render(self.state, _base(request, self.state), ver)
        page = found[offset : offset + max_results]
        if ids_only:
            issues = [{"id": i["id"]} for i in page]
        else:
            issues = [render.issue(i, names, expand) for i in page]
        out: dict[str, Any] = {"issues": issues}
        more = offset + max_results < len(found)
        if more:
            out["nextPageToken"] = _encode_token(jql, offset + max_results)
        self.state._search_responses += 1
        mode = self.state.is_last
        if mode == "always" or (mode == "sometimes" and self.state._search_responses % 2 == 1):
            out["isLast"] = not more
        if "names" in expand and not ids_only:
            out["names"] = {n: FIELD_NAMES[n] for n in names}
        return _json(out)

    async def bulkfetch(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None or self.state.deployment == "datacenter":
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        body = await self.read_json(request)
        if isinstance(body, web.Response):
            return body
        wanted = body.get("issueIdsOrKeys")
        if not isinstance(wanted, list) or not wanted:
            return _errors(400, BULKFETCH_EMPTY_MESSAGE)
        if len(wanted) > BULKFETCH_MAX:
            return _errors(400, BULKFETCH_LIMIT_MESSAGE.format(n=len(wanted)))
        fields_spec = body.get("fields") or []
        if isinstance(fields_spec, str):
            fields_spec = [fields_spec]
        names, _ = select_fields(fields_spec, "*navigable")
        expand = _expand_set(body.get("expand"))
        found: dict[str, dict[str, Any]] = {}
        for ident in wanted:
            issue = self.state.issue(str(ident))
            if issue is not None:
                found[issue["id"]] = issue
        render = _Render(self.state, _base(request, self.state), ver)
        ordered = sorted(found.values(), key=lambda i: int(i["id"]))  # spec: ascending id order
        out: dict[str, Any] = {
            "expand": "schema,names",
            "issues": [render.issue(i, names, expand) for i in ordered],
            "issueErrors": [],
        }
        if "names" in expand:
            out["names"] = {n: FIELD_NAMES[n] for n in names}
        return _json(out)

    async def get_issue(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None:
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        issue = self.state.issue(request.match_info["idOrKey"])
        if issue is None:
            return _errors(404, ISSUE_NOT_FOUND_MESSAGE)
        names, _ = select_fields(request.query.getall("fields", []), "*all")
        expand = _expand_set(request.query.get("expand"))
        render = _Render(self.state, _base(request, self.state), ver)
        out = render.issue(issue, names, expand)
        if "names" in expand:
            out["names"] = {n: FIELD_NAMES[n] for n in names}
        return _json(out)

    # -- projects --------------------------------------------------------------------------
    async def project_search(self, request: web.Request) -> web.StreamResponse:
        if self.state.deployment == "datacenter":
            return await self.get_project(request, "search")
        ver = self.version(request)
        assert ver is not None
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        q = request.query
        try:
            start_at = max(0, int(q.get("startAt", "0")))
            max_results = int(q.get("maxResults", "50"))
        except ValueError:
            return _errors(400, "The request parameters are invalid.")
        max_results = max(0, min(max_results, PROJECT_SEARCH_MAX))
        projects = list(self.state.projects)
        keys = {k for v in q.getall("keys", []) for k in v.split(",") if k}
        ids = {k for v in q.getall("id", []) for k in v.split(",") if k}
        if keys:
            projects = [p for p in projects if p["key"] in keys]
        if ids:
            projects = [p for p in projects if p["id"] in ids]
        if "query" in q:
            needle = q["query"].lower()
            projects = [
                p for p in projects if needle in p["key"].lower() or needle in p["name"].lower()
            ]
        order = q.get("orderBy", "key")
        desc = order.startswith("-")
        field_name = order.lstrip("+-")
        sort_field = "name" if field_name == "name" else "key"
        projects.sort(key=lambda p: p[sort_field].lower(), reverse=desc)
        render = _Render(self.state, _base(request, self.state), ver)
        page = projects[start_at : start_at + max_results]
        is_last = start_at + max_results >= len(projects)
        url = f"{render.api}/project/search"
        out: dict[str, Any] = {
            "self": f"{url}?maxResults={max_results}&startAt={start_at}",
            "maxResults": max_results,
            "startAt": start_at,
            "total": len(projects),
            "isLast": is_last,
            "values": [render.project_listed(p) for p in page],
        }
        if not is_last:
            out["nextPage"] = f"{url}?maxResults={max_results}&startAt={start_at + max_results}"
        return _json(out)

    async def list_projects(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None:
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        render = _Render(self.state, _base(request, self.state), ver)
        projects = sorted(self.state.projects, key=lambda p: p["key"])
        return _json([render.project_listed(p) for p in projects])

    async def get_project(
        self, request: web.Request, ident: str | None = None
    ) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None:
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        ident = ident or request.match_info["idOrKey"]
        project = self.state.project(ident)
        if project is None:
            what = "id" if ident.isdigit() else "key"
            return _errors(404, f"No project could be found with {what} '{ident}'.")
        render = _Render(self.state, _base(request, self.state), ver)
        return _json(render.project_full(project))

    # -- instance / user -------------------------------------------------------------------
    async def server_info(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None:
            return self.dc_not_found(request)
        login = self.auth(request, anonymous_ok=True)  # anonymous is fine; bad credentials are not
        if isinstance(login, web.Response):
            return login
        base = _base(request, self.state)
        now = ms_to_jira_ts(int(self.state.clock() * 1000), self.state.time_zone)
        if self.state.deployment == "cloud":
            info = {
                "baseUrl": base,
                "displayUrl": base,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": "Cloud",
                "buildNumber": 100285,
                "buildDate": "2025-06-02T00:00:00.000+0000",
                "serverTime": now,
                "scmInfo": "4a8e1b4d1c0e7a4c1b9b1e4f6f2d5c7d9a0b3c2e",
                "serverTitle": "Jira",
                "defaultLocale": {"locale": "en_US"},
                "serverTimeZone": "Etc/UTC",
            }
        else:
            info = {
                "baseUrl": base,
                "version": "9.12.15",
                "versionNumbers": [9, 12, 15],
                "deploymentType": self.state.dc_deployment_type,
                "buildNumber": 9120015,
                "buildDate": "2024-10-01T00:00:00.000+0000",
                "databaseBuildNumber": 9120015,
                "serverTime": now,
                "scmInfo": "9b1f5b0f1e2c3d4e5f60718293a4b5c6d7e8f901",
                "serverTitle": "Jira",
            }
        return _json(info)

    async def myself(self, request: web.Request) -> web.StreamResponse:
        ver = self.version(request)
        if ver is None:
            return self.dc_not_found(request)
        login = self.auth(request)
        if isinstance(login, web.Response):
            return login
        assert isinstance(login, str)
        render = _Render(self.state, _base(request, self.state), ver)
        out = render.user(self.state.profile(login))
        assert out is not None
        out["locale"] = "en_US"
        return _json(out)


def _expand_set(value: Any) -> set[str]:
    if not value:
        return set()
    items = value if isinstance(value, list) else [value]
    return {e.strip().lower() for item in items for e in str(item).split(",") if e.strip()}


def _jql_fingerprint(jql: str) -> str:
    return hashlib.sha256(jql.encode()).hexdigest()[:24]


def _encode_token(jql: str, offset: int) -> str:
    payload = json.dumps(
        {
            "q": _jql_fingerprint(jql),
            "o": offset,
            "r": hashlib.md5(f"{jql}{offset}".encode()).hexdigest()[:12],
        }
    )
    return base64.b64encode(b"\x0a\x1d" + payload.encode()).decode()


def _decode_token(token: str, jql: str) -> int | None:
    try:
        raw = base64.b64decode(token.encode(), validate=True)
        if not raw.startswith(b"\x0a\x1d"):
            return None
        payload = json.loads(raw[2:])
        if payload["q"] != _jql_fingerprint(jql):
            return None
        offset = int(payload["o"])
    except (ValueError, KeyError, TypeError):
        return None
    return offset if offset >= 0 else None


def make_app(state: JiraState) -> web.Application:
    app = web.Application(middlewares=[controls_middleware(state.controls)])
    h = _Handlers(state)
    ver = "{ver:2|3|latest}"
    r = app.router
    for method in ("GET", "POST"):
        r.add_route(method, f"/rest/api/{ver}/search", h.legacy_search)
        r.add_route(method, f"/rest/api/{ver}/search/jql", h.search_jql)
    r.add_post(f"/rest/api/{ver}/issue/bulkfetch", h.bulkfetch)
    r.add_get(f"/rest/api/{ver}/issue/{{idOrKey}}", h.get_issue)
    r.add_get(f"/rest/api/{ver}/project/search", h.project_search)
    r.add_get(f"/rest/api/{ver}/project", h.list_projects)
    r.add_get(f"/rest/api/{ver}/project/{{idOrKey}}", h.get_project)
    r.add_get(f"/rest/api/{ver}/serverInfo", h.server_info)
    r.add_get(f"/rest/api/{ver}/myself", h.myself)
    return app


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------

_NOUNS = [
    "login",
    "dashboard",
    "timeout",
    "cache",
    "invoice",
    "export",
    "webhook",
    "scheduler",
    "database",
    "migration",
    "token",
    "sidebar",
    "search",
    "index",
    "upload",
    "report",
    "billing",
    "gateway",
    "session",
    "widget",
    "pipeline",
    "cluster",
]
_VERBS = [
    "fix",
    "improve",
    "refactor",
    "investigate",
    "add",
    "remove",
    "document",
    "optimize",
    "migrate",
    "audit",
]
_ADJ = [
    "slow",
    "broken",
    "flaky",
    "intermittent",
    "missing",
    "duplicate",
    "stale",
    "legacy",
    "unicode",
    "nightly",
]
_SPECIAL_SUMMARIES = (
    'Handle "quoted" values in {noun} filter',
    "Path C:\\temp\\{noun} fails on Windows",
    'Escape backslash \\ and quote " in {noun} names',
    "{noun}: it's 100% broken (again)",
    "Support ünïcödé in {noun} titles",
)


def _dataset_adf(
    rng: random.Random, words: list[str], profiles: list[dict[str, Any]]
) -> dict[str, Any]:
    noun = words[0]
    content: list[dict[str, Any]] = [
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": f"The {noun} is {words[1]} since the last deploy. "},
                {"type": "text", "text": words[2], "marks": [{"type": "strong"}]},
                {"type": "text", "text": " happens when "},
                {"type": "text", "text": f"{words[3]}()", "marks": [{"type": "code"}]},
                {"type": "hardBreak"},
                {
                    "type": "text",
                    "text": "See the runbook",
                    "marks": [{"type": "link", "attrs": {"href": "https://example.com/runbook"}}],
                },
            ],
        }
    ]
    kind = rng.randrange(4)
    if kind == 0:
        content.insert(
            0,
            {
                "type": "heading",
                "attrs": {"level": 2},
                "content": [{"type": "text", "text": "Steps to reproduce"}],
            },
        )
        content.append(
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [{"type": "text", "text": f"Open the {w}"}],
                            }
                        ],
                    }
                    for w in words[1:4]
                ],
            }
        )
    elif kind == 1:
        content.append(
            {
                "type": "codeBlock",
                "attrs": {"language": "python"},
                "content": [{"type": "text", "text": f"{noun}.run(retries=3)\nassert {noun}.ok"}],
            }
        )
    elif kind == 2:
        p = profiles[rng.randrange(len(profiles))]
        content.append(
            {
                "type": "paragraph",
                "content": [
                    {
                        "type": "mention",
                        "attrs": {
                            "id": p["accountId"],
                            "text": f"@{p['displayName']}",
                            "accessLevel": "",
                        },
                    },
                    {"type": "text", "text": " please take a look", "marks": [{"type": "em"}]},
                ],
            }
        )
    return {"type": "doc", "version": 1, "content": content}


def make_dataset(
    n_issues: int = 2000,
    projects: tuple[str, ...] = ("AS", "ENG", "OPS"),
    deployment: Literal["cloud", "datacenter"] = "cloud",
    seed: int = 0,
) -> JiraState:
    """A deterministic Jira: ``n_issues`` spread round-robin-ish over ``projects``.

    Issues are created from 2019-01-01 to 2025-01-01 (UTC) in id order; ``updated`` is
    ``created`` plus up to 90 days. About 1 issue in 10 has a summary with quotes, backslashes
    or other awkward characters; about 1 in 3 has comments. Users: ``me@example.com`` with
    token ``api-token-123`` (and, on DC, the PAT ``dc-pat-123`` for the same login).
    """
    rng = random.Random(seed)
    state = JiraState(deployment=deployment)
    if deployment == "datacenter":
        state.personal_access_tokens = {"dc-pat-123": "me@example.com"}
    people = [
        "me@example.com",
        "alice.smith@example.com",
        "bob.jones@example.com",
        "carol.ng@example.com",
    ]
    profiles = [state.profile(p) for p in people]
    for key in projects:
        state.add_project(
            key, name={"AS": "Async Search", "ENG": "Engineering", "OPS": "Operations"}.get(key)
        )
    start_ms = 1546300800000  # 2019-01-01T00:00:00Z
    span_ms = 6 * 365 * 86400 * 1000
    step = span_ms / max(n_issues, 1)
    numbers = dict.fromkeys(projects, 0)
    statuses = list(STATUSES.values())
    types = list(ISSUE_TYPES.values())
    label_pool = ["backend", "frontend", "customer", "security", "tech-debt"]
    for n in range(n_issues):
        key = projects[rng.randrange(len(projects))] if n >= len(projects) else projects[n]
        numbers[key] += 1
        created = int(start_ms + n * step + rng.randrange(int(step) or 1))
        updated = created + rng.randrange(90 * 86400 * 1000)
        words = rng.sample(_NOUNS, 4)
        if rng.random() < 0.1:
            summary = rng.choice(_SPECIAL_SUMMARIES).format(noun=words[0])
        else:
            summary = (
                f"{rng.choice(_VERBS).capitalize()} {rng.choice(_ADJ)} {words[0]} in {words[1]}"
            )
        status = statuses[rng.randrange(len(statuses))]
        reporter = profiles[rng.randrange(len(profiles))]
        comments = []
        for c in range(rng.choice((0, 0, 1, 2))):
            author = profiles[rng.randrange(len(profiles))]
            ts = ms_to_jira_ts(updated - c * 3600 * 1000)
            comments.append(
                {
                    "id": str(20000 + n * 3 + c),
                    "author": author,
                    "body": _as_adf(
                        f"Seen again on {rng.choice(_NOUNS)} after {rng.choice(_NOUNS)} restart."
                    ),
                    "created": ts,
                    "updated": ts,
                }
            )
        resolved = status["name"] == "Done"
        state.issues.append(
            {
                "id": str(10001 + n),
                "key": f"{key}-{numbers[key]}",
                "fields": {
                    "summary": summary,
                    "description": _dataset_adf(rng, words, profiles)
                    if rng.random() < 0.9
                    else None,
                    "created": ms_to_jira_ts(created),
                    "updated": ms_to_jira_ts(updated),
                    "reporter": reporter,
                    "creator": reporter,
                    "assignee": profiles[rng.randrange(len(profiles))]
                    if rng.random() < 0.7
                    else None,
                    "project": state.project(key),
                    "status": status,
                    "issuetype": types[rng.randrange(len(types))],
                    "priority": list(PRIORITIES.values())[rng.randrange(4)],
                    "labels": rng.sample(label_pool, rng.randrange(3)),
                    "resolution": RESOLUTION_DONE if resolved else None,
                    "resolutiondate": ms_to_jira_ts(updated) if resolved else None,
                    "comment": comments,
                },
            }
        )
    return state


def iter_project_issues(state: JiraState, key: str) -> Iterator[dict[str, Any]]:
    """The issues of one project, in id order (for tests' expectations)."""
    return (i for i in state.issues if i["fields"]["project"]["key"] == key)
