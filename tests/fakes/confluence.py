"""A fake Confluence Cloud: REST v1 search/content/space and REST v2 pages/blogposts/spaces.

Everything is served under ``/wiki`` exactly as on ``https://SITE.atlassian.net/wiki``:

* v1 ``GET /wiki/rest/api/content/search``, ``GET /wiki/rest/api/search`` (CQL, opaque
  ``cursor`` pagination, ``start`` ignored), ``GET /wiki/rest/api/content/{id}``,
  ``GET /wiki/rest/api/space``;
* v2 ``GET /wiki/api/v2/pages``, ``/pages/{id}``, ``/blogposts``, ``/blogposts/{id}``,
  ``/spaces``, ``/spaces/{id}``, ``/spaces/{id}/pages``, ``/spaces/{id}/blogposts``.

Where each behaviour comes from (spec = the vendor's OpenAPI files for v1 (2021) and v2;
docs = Atlassian developer docs / KB / community threads found while writing this):

* v1 search results page by an opaque cursor carried in ``_links.next``, a URL relative to
  ``_links.base`` (which already ends in ``/wiki``), shaped like the real one
  ``/rest/api/content/search?next=true&cursor=_sa_...&expand=...&limit=15&start=15&cql=...``
  (docs: community thread "search content by CQL cursor expiry"). The cursor is stateless
  (it encodes the sort key of the last item returned, like the real search-after cursor)
  and never expires. ``start`` was deprecated in 2020 and is IGNORED: without a cursor the
  first page comes back whatever ``start`` says (docs: "Upcoming changes to modernize search
  REST APIs"). A ``prev`` link is returned once a cursor is in use (spec).
* v1 ``limit`` caps (docs: Atlassian KB "Searching for content with the REST API and CQL
  always limits results to 50"): 50 when a ``body`` expansion is asked, 200 with other
  expansions, 1000 without expansions; the response's ``limit`` reports the capped value.
  That KB article is written for Server/DC; Cloud publishes no number (spec: "may be
  restricted by fixed system limits"), so clients must follow ``_links.next`` and never
  assume ``size == limit`` they asked for.
* Archived, trashed and draft content are excluded from CQL search unless the
  ``cqlcontext`` ``contentStatuses`` asks for them (spec: cqlcontext; docs: archived
  content is excluded from quick search, advanced search needs an explicit option).
* v2 lists: ``limit`` default 25, min 1, max 250 (spec; larger values are clamped to 250,
  smaller or non-numeric give a 400), pages default to statuses ``current`` and
  ``archived``, blog posts to ``current`` (spec); ``_links.next`` is a relative URL that
  already starts with ``/wiki/api/v2/`` and is joined to the ORIGIN, not to
  ``_links.base``; the same URL is sent in the ``Link`` header with
  ``rel="next"`` plus the base with ``rel="base"`` (spec: Link header description; docs:
  v2 intro). The cursor is base64 JSON ``{"id", "contentOrder", "contentOrderValue"}``
  (the shape of real v2 cursors) and deliberately sits between other query parameters.
* Error bodies: v2 ``{"errors":[{"status":404,"code":"NOT_FOUND","title":"Not Found",
  "detail":null}]}`` (docs: issue threads quoting real responses); v1 404
  ``{"statusCode":404,"data":{...},"message":"No content found with id: ContentId{id=N}"}``;
  v1 CQL errors ``{"statusCode":400,"data":{...},"message":"com.atlassian.confluence.api.
  service.exceptions.BadRequestException: Could not parse cql : ..."}`` / ``No field
  exists with the name: '...'`` (docs: issue threads quoting real responses).
* Authentication is HTTP basic (email + API token) on every endpoint. Confluence Cloud
  treats a wrong token like no credentials at all (an anonymous request), and on a site
  without anonymous access it answers 403 ``{"message":"Current user not permitted to use
  Confluence","statusCode":403}`` (docs: many issue threads; the project notes say 403, not
  401). The fake does the same for missing and wrong credentials. With
  ``state.anonymous_access = True`` anonymous callers instead see only
  ``state.public_spaces`` (lists are filtered, other items give 404), like a public wiki.
* ``flaky_500_rate``: the v1 search endpoints fail with a 500 at that rate (seeded RNG),
  modelling the sporadic search 500s seen under concurrency.
* 429s come from fault injection: ``inject_rate_limit(state.controls, retry_after=...)``
  sends the ``Retry-After`` / ``X-RateLimit-*`` headers of the Atlassian rate-limit docs.

CQL is tokenized and parsed properly (see ``parse_cql``); the parsed tree of the last query
is kept in ``state.last_cql_ast`` so tests can check what a client's escaping produced.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import html
import json
import random
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

from aiohttp import web

from ._common import FakeControls, Handler, controls_middleware, parse_basic_auth

__all__ = [
    "DEFAULT_EMAIL",
    "DEFAULT_TOKEN",
    "And",
    "Clause",
    "ConfluenceState",
    "Content",
    "CqlError",
    "CqlQuery",
    "Func",
    "Not",
    "Or",
    "Person",
    "Space",
    "Version",
    "analyze",
    "inject_rate_limit",
    "make_app",
    "make_dataset",
    "parse_cql",
    "plain_text",
]

DEFAULT_EMAIL = "alice@example.com"
DEFAULT_TOKEN = "ATATT3xFfGF0-alice-api-token"

NOT_PERMITTED = {"message": "Current user not permitted to use Confluence", "statusCode": 403}
_BAD_REQUEST_EXC = "com.atlassian.confluence.api.service.exceptions.BadRequestException"
_SERVICE_EXC = "com.atlassian.confluence.api.service.exceptions.ServiceException"


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass
class Person:
    account_id: str
    display_name: str
    email: str


@dataclass
class Space:
    id: int  # v1 gives it as a number, v2 as a numeric string
    key: str
    name: str
    type: str = "global"  # global | collaboration | knowledge_base | personal
    status: str = "current"  # current | archived
    homepage_id: str | None = None
    author_id: str = ""
    created_at: datetime = datetime(2015, 6, 1, tzinfo=UTC)
    description: str = ""


@dataclass
class Version:
    number: int
    created_at: datetime
    author_id: str
    message: str = ""
    minor_edit: bool = False


@dataclass
class Content:
    id: str  # numeric string
    type: str  # page | blogpost
    status: str  # current | archived (pages only) | draft | trashed
    title: str
    space_id: int
    space_key: str
    author_id: str
    created_at: datetime
    version: Version
    body: str  # storage format (XHTML)
    parent_id: str | None = None  # pages only
    position: int | None = None  # pages only
    owner_id: str | None = None
    labels: list[str] = field(default_factory=list)

    @property
    def last_modified(self) -> datetime:
        return self.version.created_at


@dataclass
class ConfluenceState:
    users: dict[str, str]  # email -> API token
    people: dict[str, Person]  # accountId -> person
    spaces: dict[int, Space]
    content: dict[str, Content]  # id -> page / blog post, in id order
    controls: FakeControls = field(default_factory=FakeControls)
    flaky_500_rate: float = 0.0
    seed: int = 0
    anonymous_access: bool = False
    public_spaces: set[str] = field(default_factory=set)
    last_cql: str | None = None
    last_cql_ast: CqlQuery | None = None
    rng: random.Random = field(init=False, repr=False)
    _text_cache: dict[str, tuple[str, str, list[str], list[str]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def space_by_key(self, key: str) -> Space | None:
        for space in self.spaces.values():
            if space.key == key:
                return space
        return None

    def account_for(self, email: str) -> str | None:
        for person in self.people.values():
            if person.email == email:
                return person.account_id
        return None

    def tokens(self, c: Content) -> tuple[list[str], list[str]]:
        """(title tokens, body tokens) of a content item, as the fake's analyzer sees them."""
        cached = self._text_cache.get(c.id)
        if cached is None or cached[0] is not c.title or cached[1] is not c.body:
            cached = (c.title, c.body, analyze(c.title), analyze(plain_text(c.body)))
            self._text_cache[c.id] = cached
        return cached[2], cached[3]


# --------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------

_CDATA_RE = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_PARAM_RE = re.compile(r"<ac:parameter\b[^>]*>.*?</ac:parameter>", re.S)
_TAG_RE = re.compile(r"<[^>]+>")
_INLINE_RE = re.compile(r"</?(?:strong|em|b|i|u|s|span|code|sup|sub)\b[^>]*>")
_WS_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w+")
_WORD_SPLIT_RE = re.compile(r"(\w+)")


def plain_text(storage: str) -> str:
    """Text content of a storage-format body (macro parameters dropped, CDATA kept)."""
    text = _PARAM_RE.sub(" ", storage)
    text = _CDATA_RE.sub(lambda m: " " + html.escape(m.group(1), quote=False) + " ", text)
    text = _INLINE_RE.sub("", text)
    text = _TAG_RE.sub(" ", text)
    return _WS_RE.sub(" ", html.unescape(text)).strip()


def analyze(text: str) -> list[str]:
    """The fake's analyzer: lower-cased runs of word characters (no stemming, no stop words)."""
    return [w.lower() for w in _WORD_RE.findall(text)]


def _render_view(storage: str) -> str:
    """A rough ``view`` rendering: Confluence macros unwrapped to their text."""
    text = _PARAM_RE.sub("", storage)
    text = _CDATA_RE.sub(lambda m: html.escape(m.group(1), quote=False), text)
    text = re.sub(r"</?(ac|ri):[^>]*>", "", text)
    return text


def _adf(storage: str) -> str:
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": plain_text(storage)}]}
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _tiny(content_id: str) -> str:
    """Confluence's tiny link: base64 of the little-endian id, trailing 'A's/'=' stripped."""
    raw = int(content_id).to_bytes(8, "little")
    encoded = base64.b64encode(raw).decode().rstrip("=").replace("/", "-").replace("+", "_")
    return "/x/" + encoded.rstrip("A")


def _webui(c: Content) -> str:
    slug = quote_plus(c.title)
    if c.type == "blogpost":
        day = c.created_at.strftime("%Y/%m/%d")
        return f"/spaces/{c.space_key}/blog/{day}/{c.id}/{slug}"
    return f"/spaces/{c.space_key}/pages/{c.id}/{slug}"


# --------------------------------------------------------------------------------------
# CQL
# --------------------------------------------------------------------------------------


class CqlError(Exception):
    """Malformed or invalid CQL (answered with a 400 in Confluence's v1 error body)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unsupported = unsupported  # valid CQL the fake does not implement (501)


@dataclass(frozen=True)
class Func:
    name: str
    args: tuple[str, ...] = ()


CqlValue = str | Func


@dataclass(frozen=True)
class Clause:
    field: str  # lower-cased: "text", "space.key", ...
    op: str  # = != ~ !~ > >= < <= in "not in"
    value: CqlValue | tuple[CqlValue, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Clause | And | Or | Not


@dataclass(frozen=True)
class CqlQuery:
    where: Node
    order_by: tuple[tuple[str, str], ...] = ()  # (field, "asc" | "desc")

    def clauses(self) -> list[Clause]:
        found: list[Clause] = []

        def walk(node: Node) -> None:
            if isinstance(node, Clause):
                found.append(node)
            elif isinstance(node, Not):
                walk(node.item)
            else:
                for item in node.items:
                    walk(item)

        walk(self.where)
        return found


@dataclass
class _Tok:
    kind: str  # STRING WORD OP ( ) ,
    text: str
    pos: int
    quoted: bool = False


_OPS2 = ("!=", ">=", "<=", "!~")
_OPS1 = ("=", "~", ">", "<")
_WORD_STOP = set("()=,!<>~\"'") | {" ", "\t", "\n", "\r"}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", " ": " ", "n": "\n", "t": "\t", "r": "\r"}


def _tokenize(cql: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(cql)
    while i < n:
        c = cql[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            toks.append(_Tok(c, c, i))
            i += 1
        elif c in "\"'":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise CqlError(f"unterminated string starting at {i}")
                ch = cql[j]
                if ch == "\\":
                    if j + 1 >= n:
                        raise CqlError("dangling escape at end of string")
                    esc = cql[j + 1]
                    if esc in _ESCAPES:
                        buf.append(_ESCAPES[esc])
                        j += 2
                    elif esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", cql[j + 2 : j + 6]):
                        buf.append(chr(int(cql[j + 2 : j + 6], 16)))
                        j += 6
                    else:
                        raise CqlError(f"illegal escape sequence '\\{esc}' at {j}")
                elif ch == c:
                    j += 1
                    break
                else:
                    buf.append(ch)
                    j += 1
            toks.append(_Tok("STRING", "".join(buf), i, quoted=True))
            i = j
        elif cql[i : i + 2] in _OPS2:
            toks.append(_Tok("OP", cql[i : i + 2], i))
            i += 2
        elif c in _OPS1:
            toks.append(_Tok("OP", c, i))
            i += 1
        elif c == "!":
            raise CqlError(f"unexpected '!' at {i}")
        else:
            j = i
            while j < n and cql[j] not in _WORD_STOP and not cql[j].isspace():
                j += 1
            toks.append(_Tok("WORD", cql[i:j], i))
            i = j
    return toks


_KEYWORDS = {"and", "or", "not", "in", "order", "by", "asc", "desc"}


class _Parser:
    def __init__(self, cql: str) -> None:
        self.toks = _tokenize(cql)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def kw(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "WORD" and tok.text.lower() == word

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise CqlError("unexpected end of query")
        self.i += 1
        return tok

    def expect(self, kind: str) -> _Tok:
        tok = self.take()
        if tok.kind != kind:
            raise CqlError(f"expected {kind!r} at {tok.pos}, found {tok.text!r}")
        return tok

    def parse(self) -> CqlQuery:
        if self.peek() is None or self.kw("order"):
            raise CqlError("empty query")
        where = self.or_expr()
        order: list[tuple[str, str]] = []
        if self.kw("order"):
            self.take()
            if not self.kw("by"):
                raise CqlError("expected BY after ORDER")
            self.take()
            while True:
                tok = self.take()
                if tok.kind not in ("WORD", "STRING") or tok.text.lower() in _KEYWORDS:
                    raise CqlError(f"expected an order by field at {tok.pos}")
                direction = "asc"
                if self.kw("asc") or self.kw("desc"):
                    direction = self.take().text.lower()
                order.append((tok.text.lower(), direction))
                nxt = self.peek()
                if nxt is not None and nxt.kind == ",":
                    self.take()
                    continue
                break
        rest = self.peek()
        if rest is not None:
            raise CqlError(f"unexpected {rest.text!r} at {rest.pos}")
        return CqlQuery(where, tuple(order))

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.kw("or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.kw("and"):
            self.take()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.kw("not"):
            self.take()
            return Not(self.not_expr())
        tok = self.peek()
        if tok is not None and tok.kind == "(":
            self.take()
            node = self.or_expr()
            self.expect(")")
            return node
        return self.clause()

    def clause(self) -> Clause:
        tok = self.take()
        if tok.kind not in ("WORD", "STRING") or (not tok.quoted and tok.text.lower() in _KEYWORDS):
            raise CqlError(f"expected a field name at {tok.pos}, found {tok.text!r}")
        name = tok.text.lower()
        if self.kw("not"):
            self.take()
            if not self.kw("in"):
                raise CqlError("expected IN after NOT")
            self.take()
            return Clause(name, "not in", self.value_list())
        if self.kw("in"):
            self.take()
            return Clause(name, "in", self.value_list())
        op = self.take()
        if op.kind != "OP":
            raise CqlError(f"expected an operator at {op.pos}, found {op.text!r}")
        return Clause(name, op.text, self.value())

    def value_list(self) -> tuple[CqlValue, ...]:
        self.expect("(")
        values = [self.value()]
        while True:
            tok = self.take()
            if tok.kind == ")":
                return tuple(values)
            if tok.kind != ",":
                raise CqlError(f"expected ',' or ')' at {tok.pos}")
            values.append(self.value())

    def value(self) -> CqlValue:
        tok = self.take()
        if tok.kind == "STRING":
            return tok.text
        if tok.kind != "WORD" or tok.text.lower() in _KEYWORDS:
            raise CqlError(f"expected a value at {tok.pos}, found {tok.text!r}")
        nxt = self.peek()
        if nxt is not None and nxt.kind == "(":
            self.take()
            args: list[str] = []
            while True:
                arg = self.take()
                if arg.kind == ")":
                    break
                if arg.kind == ",":
                    continue
                if arg.kind not in ("WORD", "STRING"):
                    raise CqlError(f"bad function argument at {arg.pos}")
                args.append(arg.text)
            return Func(tok.text, tuple(args))
        return tok.text


def parse_cql(cql: str) -> CqlQuery:
    """Parse the CQL subset; raises ``CqlError`` for malformed queries."""
    return _Parser(cql).parse()


# Fields the fake evaluates, and valid CQL fields it does not implement (-> 501).
_FIELDS = {
    "type",
    "space",
    "space.key",
    "space.title",
    "space.type",
    "text",
    "sitesearch",
    "title",
    "lastmodified",
    "created",
    "id",
    "content",
    "parent",
    "ancestor",
    "creator",
    "label",
}
_UNIMPLEMENTED_FIELDS = {
    "status",  # unclear whether Cloud CQL has it; use cqlcontext contentStatuses
    "container",
    "contributor",
    "favourite",
    "favorite",
    "macro",
    "mention",
    "watcher",
    "user",
    "user.fullname",
    "user.accountid",
    "space.category",
    "attachment",
}
_ORDER_FIELDS = {"lastmodified", "created", "title", "id", "content"}
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_REL_RE = re.compile(r"^([+-]?)(\d+)([mhdwy])$")


@dataclass
class _Ctx:
    state: ConfluenceState
    account_id: str | None
    now: datetime


Pred = Callable[[Content], bool]


def _scalar(value: CqlValue, ctx: _Ctx) -> str:
    if isinstance(value, Func):
        if value.name.lower() == "currentuser" and not value.args:
            return ctx.account_id or ""
        raise CqlError(f"function {value.name}() is not implemented", unsupported=True)
    return value


def _date(value: CqlValue, ctx: _Ctx) -> tuple[datetime, bool]:
    """(instant, date_only)."""
    if isinstance(value, Func):
        if value.name.lower() != "now":
            raise CqlError(f"function {value.name}() is not implemented", unsupported=True)
        ts = ctx.now
        for arg in value.args:
            m = _REL_RE.match(arg.strip())
            if not m:
                raise CqlError(f"invalid date offset '{arg}'")
            amount = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
            unit = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
            ts += timedelta(seconds=amount * unit[m.group(3)])
        return ts, False
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return parsed, "%H" not in fmt
    raise CqlError(
        f"Unable to parse date '{value}', expected yyyy/MM/dd HH:mm, yyyy-MM-dd HH:mm, "
        "yyyy/MM/dd or yyyy-MM-dd"
    )


def _text_terms(query: str) -> tuple[list[list[str]], list[str]]:
    """(phrases, single terms) of a Lucene-ish query string."""
    phrases = [analyze(p) for p in re.findall(r'"([^"]*)"', query)]
    rest = re.sub(r'"[^"]*"', " ", query)
    terms: list[str] = []
    for raw in rest.split():
        prefix = raw.endswith("*")
        words = analyze(raw)
        if not words:
            continue
        terms.extend(words[:-1])
        terms.append(words[-1] + ("*" if prefix else ""))
    return [p for p in phrases if p], terms


def _all_terms(query: str) -> list[str]:
    phrases, terms = _text_terms(query)
    return [w for p in phrases for w in p] + terms


def _contains_phrase(tokens: list[str], phrase: list[str]) -> bool:
    k = len(phrase)
    return any(tokens[i : i + k] == phrase for i in range(len(tokens) - k + 1))


def _term_in(tokens: list[str], term: str) -> bool:
    if term.endswith("*"):
        stem = term[:-1]
        return any(t.startswith(stem) for t in tokens)
    return term in tokens


def _text_match(tokens: list[str], query: str) -> bool:
    phrases, terms = _text_terms(query)
    if not phrases and not terms:
        return False
    return all(_contains_phrase(tokens, p) for p in phrases) and all(
        _term_in(tokens, t) for t in terms
    )


def _compile(node: Node, ctx: _Ctx) -> Pred:
    if isinstance(node, And):
        preds = [_compile(i, ctx) for i in node.items]
        return lambda c: all(p(c) for p in preds)
    if isinstance(node, Or):
        preds = [_compile(i, ctx) for i in node.items]
        return lambda c: any(p(c) for p in preds)
    if isinstance(node, Not):
        inner = _compile(node.item, ctx)
        return lambda c: not inner(c)
    return _compile_clause(node, ctx)


def _unsupported_op(clause: Clause) -> CqlError:
    return CqlError(f"The operator '{clause.op}' is not supported by the '{clause.field}' field.")


def _compile_clause(clause: Clause, ctx: _Ctx) -> Pred:
    name, op = clause.field, clause.op
    if name in _UNIMPLEMENTED_FIELDS:
        raise CqlError(f"CQL field '{name}' is not implemented", unsupported=True)
    if name not in _FIELDS:
        raise CqlError(f"No field exists with the name: '{name}'")
    state = ctx.state

    def equality(getter: Callable[[Content], Iterable[str]], fold: bool = False) -> Pred:
        values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
        wanted = {_scalar(v, ctx) for v in values}
        if fold:
            wanted = {w.lower() for w in wanted}
        if op in ("=", "in"):
            return lambda c: any((v.lower() if fold else v) in wanted for v in getter(c))
        if op in ("!=", "not in"):
            return lambda c: not any((v.lower() if fold else v) in wanted for v in getter(c))
        raise _unsupported_op(clause)

    if name == "type":
        return equality(lambda c: (c.type,))
    if name in ("space", "space.key"):
        return equality(lambda c: (c.space_key,))
    if name == "space.title":
        return equality(lambda c: (state.spaces[c.space_id].name,))
    if name == "space.type":
        return equality(lambda c: (state.spaces[c.space_id].type,))
    if name in ("id", "content"):
        return equality(lambda c: (c.id,))
    if name == "parent":
        return equality(lambda c: (c.parent_id,) if c.parent_id else ())
    if name == "creator":
        return equality(lambda c: (c.author_id,))
    if name == "label":
        return equality(lambda c: c.labels, fold=True)
    if name == "ancestor":

        def ancestors(c: Content) -> list[str]:
            out: list[str] = []
            parent = c.parent_id
            while parent is not None and parent in state.content and len(out) < 100:
                out.append(parent)
                parent = state.content[parent].parent_id
            return out

        return equality(ancestors)
    if name in ("text", "sitesearch", "title"):
        if name == "title" and op in ("=", "!=", "in", "not in"):
            return equality(lambda c: (c.title,), fold=True)
        if op not in ("~", "!~") or isinstance(clause.value, tuple):
            raise _unsupported_op(clause)
        query = _scalar(clause.value, ctx)

        def matches(c: Content) -> bool:
            title_tokens, body_tokens = state.tokens(c)
            if name == "title":
                return _text_match(title_tokens, query)
            return _text_match([*title_tokens, "", *body_tokens], query)

        return matches if op == "~" else (lambda c: not matches(c))
    # lastmodified / created
    if isinstance(clause.value, tuple) or op in ("~", "!~"):
        raise _unsupported_op(clause)
    instant, date_only = _date(clause.value, ctx)
    span = timedelta(days=1) if date_only else timedelta(minutes=1)

    def stamp(c: Content) -> datetime:
        return c.last_modified if name == "lastmodified" else c.created_at

    comparisons: dict[str, Pred] = {
        "=": lambda c: instant <= stamp(c) < instant + span,
        "!=": lambda c: not (instant <= stamp(c) < instant + span),
        ">": lambda c: stamp(c) > instant,
        ">=": lambda c: stamp(c) >= instant,
        "<": lambda c: stamp(c) < instant,
        "<=": lambda c: stamp(c) <= instant,
    }
    return comparisons[op]


# --------------------------------------------------------------------------------------
# Sorting and cursors (search-after on unique sort keys)
# --------------------------------------------------------------------------------------


def _desc_str(s: str) -> tuple[int, ...]:
    return (*(-ord(ch) for ch in s), 0)


def _sort_component(kind: str, c: Content, descending: bool, score: float = 0.0) -> Any:
    if kind == "title":
        return _desc_str(c.title.lower()) if descending else c.title.lower()
    value: float
    if kind in ("id", "content"):
        value = int(c.id)
    elif kind == "created":
        value = _ms(c.created_at)
    elif kind == "lastmodified":
        value = _ms(c.last_modified)
    else:  # score
        value = score
    return -value if descending else value


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value


def _encode_json_b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def _decode_json_b64(cursor: str) -> Any:
    try:
        return json.loads(base64.b64decode(cursor.encode(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------

_VOCAB_TEXT = (
    "deploy kubernetes roadmap quarterly budget incident postmortem onboarding payroll "
    "holiday migration database latency frontend backend security audit vendor contract "
    "hiring interview benefits runbook pager alert dashboard metrics release sprint retro "
    "design review proposal architecture network firewall backup restore policy compliance "
    "training expense travel laptop printer coffee offsite okr strategy customer support "
    "ticket escalation capacity storage cache queue python golang terraform"
)
_VOCAB = tuple(_VOCAB_TEXT.split())
_SPACE_NAMES = {"ENG": "Engineering", "OPS": "Operations", "HR": "Human Resources"}
_PEOPLE = (
    ("alice@example.com", "Alice Zhang"),
    ("bob@example.com", "Bob Okafor"),
    ("carol@example.com", "Carol Díaz"),
    ("dave@example.com", "Dave Müller"),
)


def _title(rng: random.Random, n: int) -> str:
    w1, w2, w3 = rng.choice(_VOCAB), rng.choice(_VOCAB), rng.choice(_VOCAB)
    if n % 41 == 7:
        return f'Release "{w1}" notes {n}'
    if n % 59 == 11:
        return f"Windows path C:\\{w1.title()}\\{w2} {n}"
    if n % 67 == 13:
        return f"Q&A: {w1}'s <{w2}> plan {n}"
    if n % 71 == 17:
        return f"Café {w1} naïve {w2} {n}"
    return f"{w1.title()} {w2} {w3} {n}"


def _body(rng: random.Random, title: str, related: str | None) -> str:
    def sentence(k: int) -> str:
        return " ".join(rng.choice(_VOCAB) for _ in range(k))

    esc = html.escape
    parts = [
        f"<p>Hello <strong>world</strong>. {esc(sentence(rng.randint(6, 14)), quote=False)}</p>",
        f"<h2>{esc(title, quote=False)}</h2>",
        '<ac:structured-macro ac:name="info" ac:schema-version="1" '
        f'ac:macro-id="{uuid.UUID(int=rng.getrandbits(128), version=4)}">'
        f"<ac:rich-text-body><p>{esc(sentence(rng.randint(4, 10)), quote=False)}</p>"
        "</ac:rich-text-body></ac:structured-macro>",
        "<ul>" + "".join(f"<li>{rng.choice(_VOCAB)}</li>" for _ in range(3)) + "</ul>",
    ]
    if rng.random() < 0.3:
        word = rng.choice(_VOCAB)
        parts.append(
            '<ac:structured-macro ac:name="code" ac:schema-version="1" '
            f'ac:macro-id="{uuid.UUID(int=rng.getrandbits(128), version=4)}">'
            '<ac:parameter ac:name="language">python</ac:parameter>'
            f'<ac:plain-text-body><![CDATA[print("{word} & \\"quoted\\" <tag>")]]>'
            "</ac:plain-text-body></ac:structured-macro>"
        )
    if related is not None and rng.random() < 0.3:
        parts.append(f'<p>See <ac:link><ri:page ri:content-title="{esc(related)}" /></ac:link></p>')
    return "".join(parts)


def make_dataset(
    n_pages: int = 2000,
    n_blogposts: int = 300,
    spaces: Iterable[str] = ("ENG", "OPS", "HR"),
    seed: int = 0,
) -> ConfluenceState:
    """A deterministic site: pages (some archived/trashed/draft) and blog posts over years."""
    rng = random.Random(seed)
    keys = list(spaces)
    people = {}
    users = {}
    for email, name in _PEOPLE:
        account = "5b10ac8d82e05b22cc7d4e" + f"{rng.getrandbits(16):04x}"
        people[account] = Person(account, name, email)
        users[email] = DEFAULT_TOKEN if email == DEFAULT_EMAIL else f"token-{email.split('@')[0]}"
    accounts = list(people)

    space_objs: dict[int, Space] = {}
    space_id = 98304
    for key in keys:
        space_id += rng.randint(1, 3000)
        space_objs[space_id] = Space(
            id=space_id,
            key=key,
            name=_SPACE_NAMES.get(key, key.title()),
            author_id=accounts[0],
            created_at=datetime(2015, 6, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 200)),
            description=f"The {_SPACE_NAMES.get(key, key.title())} space",
        )
    by_key = {s.key: s for s in space_objs.values()}

    start = datetime(2016, 1, 1, tzinfo=UTC)
    end = datetime(2024, 12, 31, tzinfo=UTC)
    span_ms = _ms(end) - _ms(start)
    total = n_pages + n_blogposts
    stamps = sorted(start + timedelta(milliseconds=rng.randrange(span_ms)) for _ in range(total))
    blog_slots = set(rng.sample(range(total), n_blogposts))
    weights = [len(keys) - i for i in range(len(keys))]

    content: dict[str, Content] = {}
    pages_in_space: dict[str, list[str]] = {k: [] for k in keys}
    next_id = 65536
    for n, created in enumerate(stamps):
        next_id += rng.randint(1, 40)
        cid = str(next_id)
        space = by_key[rng.choices(keys, weights)[0]]
        kind = "blogpost" if n in blog_slots else "page"
        author = rng.choice(accounts)
        number = 1 if rng.random() < 0.3 else rng.randint(2, 12)
        modified = created
        if number > 1:
            room = min(_ms(end) - _ms(created), 2 * 365 * 86400000)
            modified = created + timedelta(milliseconds=rng.randrange(max(1, room)))
        version = Version(
            number=number,
            created_at=modified,
            author_id=rng.choice(accounts),
            message="" if rng.random() < 0.7 else f"Updated {rng.choice(_VOCAB)}",
            minor_edit=rng.random() < 0.2,
        )
        siblings = pages_in_space[space.key]
        related = content[rng.choice(siblings)].title if siblings else None
        item = Content(
            id=cid,
            type=kind,
            status="current",
            title="",
            space_id=space.id,
            space_key=space.key,
            author_id=author,
            created_at=created,
            version=version,
            body="",
            owner_id=author if kind == "page" else None,
        )
        roll = rng.random()
        if kind == "page":
            if space.homepage_id is None:
                space.homepage_id = cid
                item.title = f"{space.name} Home"
                item.position = 0
            else:
                item.title = _title(rng, n)
                if rng.random() < 0.1:
                    item.parent_id = None
                else:
                    item.parent_id = rng.choice(siblings)
                item.position = rng.randint(0, 5000)
                if roll < 0.06:
                    item.status = "archived"
                elif roll < 0.075:
                    item.status = "trashed"
                elif roll < 0.085:
                    item.status = "draft"
            siblings.append(cid)
        else:
            item.title = _title(rng, n)
            if roll < 0.03:
                item.status = "trashed"
            elif roll < 0.045:
                item.status = "draft"
        if item.status == "draft":
            item.version = Version(1, created, author)
        item.body = _body(rng, item.title, related)
        if rng.random() < 0.2:
            item.labels = rng.sample(["howto", "meeting-notes", "decision", "draft-doc"], 1)
        content[cid] = item
    return ConfluenceState(
        users=users, people=people, spaces=space_objs, content=content, seed=seed
    )


# --------------------------------------------------------------------------------------
# Rate limiting helper
# --------------------------------------------------------------------------------------


def inject_rate_limit(
    controls: FakeControls,
    *,
    retry_after: int = 1,
    times: int = 1,
    path_prefix: str | None = None,
) -> None:
    """Answer the next ``times`` requests with a 429 as Atlassian documents it.

    Headers per the Confluence Cloud rate-limiting page: ``Retry-After`` (seconds) and
    ``X-RateLimit-Reset`` (ISO 8601, ``yyyy-MM-ddTHH:mmZ``), plus ``X-RateLimit-Limit`` /
    ``X-RateLimit-Remaining``. The body of a real 429 is not documented; the fake sends none
    so clients cannot come to depend on one.
    """
    reset = (datetime.now(UTC) + timedelta(seconds=retry_after)).strftime("%Y-%m-%dT%H:%MZ")
    controls.inject(
        429,
        headers={
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        },
        times=times,
        path_prefix=path_prefix,
    )


# --------------------------------------------------------------------------------------
# HTTP app
# --------------------------------------------------------------------------------------

_USER_KEY = web.RequestKey("confluence_account_id", str)  # accountId, "" if anonymous


def _site(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _base(request: web.Request) -> str:
    return _site(request) + "/wiki"


def _v1_error(status: int, message: str, *, authorized: bool = True) -> web.Response:
    body = {
        "statusCode": status,
        "data": {"authorized": authorized, "valid": True, "errors": [], "successful": False},
        "message": message,
    }
    return web.json_response(body, status=status)


def _v1_not_found(cid: str) -> web.Response:
    return _v1_error(404, f"No content found with id: ContentId{{id={cid}}}", authorized=False)


def _v2_error(status: int, code: str, title: str, detail: str | None = None) -> web.Response:
    body = {"errors": [{"status": status, "code": code, "title": title, "detail": detail}]}
    return web.json_response(body, status=status)


def _v2_not_found() -> web.Response:
    return _v2_error(404, "NOT_FOUND", "Not Found")


class _BadParam(Exception):
    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(name)
        self.name, self.value, self.expected = name, value, expected

    def response(self) -> web.Response:
        return _v2_error(
            400,
            "INVALID_REQUEST_PARAMETER",
            f"Provided value {{{self.value}}} for '{self.name}' is not the correct type. "
            f"Expected type is {self.expected}",
        )


def _multi(request: web.Request, name: str) -> list[str]:
    """A v2 array parameter: repeated and/or comma-separated."""
    out: list[str] = []
    for raw in request.query.getall(name, []):
        out.extend(part.strip() for part in raw.split(",") if part.strip())
    return out


def _expand_tree(values: Iterable[str], strip_prefix: str = "") -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for raw in values:
        for item in raw.split(","):
            item = item.strip()
            if strip_prefix:
                if not item.startswith(strip_prefix):
                    continue
                item = item[len(strip_prefix) :]
            node = tree
            for part in filter(None, item.split(".")):
                node = node.setdefault(part, {})
    return tree


def make_app(state: ConfluenceState) -> web.Application:
    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        creds = parse_basic_auth(request)
        account: str | None = None
        if creds is not None and state.users.get(creds[0]) == creds[1]:
            account = state.account_for(creds[0]) or creds[0]
        if account is None and not state.anonymous_access:
            # Cloud treats a wrong email/token like no credentials; a site without
            # anonymous access refuses anonymous callers with this 403.
            return web.json_response(NOT_PERMITTED, status=403)
        request[_USER_KEY] = account or ""
        return await handler(request)

    app = web.Application(middlewares=[controls_middleware(state.controls), auth_middleware])

    def visible(request: web.Request, c: Content) -> bool:
        return bool(request[_USER_KEY]) or c.space_key in state.public_spaces

    def space_visible(request: web.Request, s: Space) -> bool:
        return bool(request[_USER_KEY]) or s.key in state.public_spaces

    def person_v1(request: web.Request, account_id: str) -> dict[str, Any]:
        person = state.people.get(account_id)
        name = person.display_name if person else "Unknown user"
        return {
            "type": "known",
            "accountId": account_id,
            "accountType": "atlassian",
            "email": "",
            "publicName": name,
            "profilePicture": {
                "path": "/wiki/aa-avatar/" + account_id,
                "width": 48,
                "height": 48,
                "isDefault": False,
            },
            "displayName": name,
            "isExternalCollaborator": False,
            "_expandable": {"operations": "", "personalSpace": ""},
            "_links": {"self": f"{_base(request)}/rest/api/user?accountId={account_id}"},
        }

    def space_v1(
        request: web.Request, s: Space, expand: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        expand = expand or {}
        out: dict[str, Any] = {"id": s.id, "key": s.key, "name": s.name}
        if "description" in expand:
            out["description"] = {
                "plain": {"value": s.description, "representation": "plain"},
                "_expandable": {"view": ""},
            }
        if "homepage" in expand and s.homepage_id in state.content:
            out["homepage"] = content_v1(request, state.content[s.homepage_id], {})
        out["type"] = s.type
        out["status"] = s.status
        out["_expandable"] = {
            k: v
            for k, v in {
                "settings": f"/rest/api/space/{s.key}/settings",
                "metadata": "",
                "operations": "",
                "lookAndFeel": f"/rest/api/settings/lookandfeel?spaceKey={s.key}",
                "identifiers": "",
                "permissions": "",
                "icon": "",
                "description": "",
                "theme": f"/rest/api/space/{s.key}/theme",
                "history": "",
                "homepage": f"/rest/api/content/{s.homepage_id}",
            }.items()
            if k not in expand
        }
        out["_links"] = {
            "webui": f"/spaces/{s.key}",
            "self": f"{_base(request)}/rest/api/space/{s.key}",
        }
        return out

    def version_v1(request: web.Request, c: Content) -> dict[str, Any]:
        v = c.version
        return {
            "by": person_v1(request, v.author_id),
            "when": _iso(v.created_at),
            "friendlyWhen": v.created_at.strftime("%b %d, %Y"),
            "message": v.message,
            "number": v.number,
            "minorEdit": v.minor_edit,
            "contentTypeModified": False,
            "_expandable": {"collaborators": "", "content": f"/rest/api/content/{c.id}"},
            "_links": {"self": f"{_base(request)}/rest/api/content/{c.id}/version/{v.number}"},
        }

    def body_v1(c: Content, reps: dict[str, Any]) -> dict[str, Any]:
        all_reps = (
            "editor",
            "atlas_doc_format",
            "view",
            "export_view",
            "styled_view",
            "dynamic",
            "storage",
            "editor2",
            "anonymous_export_view",
        )
        out: dict[str, Any] = {}
        for rep in reps:
            if rep not in all_reps:
                continue
            if rep in ("storage", "editor", "editor2"):
                value = c.body
            elif rep == "atlas_doc_format":
                value = _adf(c.body)
            else:
                value = _render_view(c.body)
            out[rep] = {
                "value": value,
                "representation": rep,
                "embeddedContent": [],
                "_expandable": {"content": f"/rest/api/content/{c.id}"},
            }
        out["_expandable"] = {r: "" for r in all_reps if r not in reps}
        return out

    def content_v1(request: web.Request, c: Content, expand: dict[str, Any]) -> dict[str, Any]:
        space = state.spaces[c.space_id]
        out: dict[str, Any] = {"id": c.id, "type": c.type, "status": c.status, "title": c.title}
        if "space" in expand:
            out["space"] = space_v1(request, space, expand["space"])
        if "history" in expand:
            history: dict[str, Any] = {
                "latest": True,
                "createdBy": person_v1(request, c.author_id),
                "createdDate": _iso(c.created_at),
            }
            if "lastUpdated" in expand["history"]:
                history["lastUpdated"] = version_v1(request, c)
            history["_expandable"] = {
                k: ""
                for k in ("lastUpdated", "previousVersion", "contributors", "nextVersion")
                if k not in expand["history"]
            }
            history["_links"] = {"self": f"{_base(request)}/rest/api/content/{c.id}/history"}
            out["history"] = history
        if "version" in expand:
            out["version"] = version_v1(request, c)
        if "ancestors" in expand:
            chain, parent = [], c.parent_id
            while parent is not None and parent in state.content:
                chain.append(state.content[parent])
                parent = state.content[parent].parent_id
            out["ancestors"] = [content_v1(request, a, {}) for a in reversed(chain)]
        if "container" in expand:
            out["container"] = space_v1(request, space, {})
        if "metadata" in expand and "labels" in expand["metadata"]:
            out["metadata"] = {
                "labels": {
                    "results": [
                        {"prefix": "global", "name": lab, "id": str(abs(hash(lab)) % 10**9)}
                        for lab in c.labels
                    ],
                    "start": 0,
                    "limit": 200,
                    "size": len(c.labels),
                },
            }
        out["macroRenderedOutput"] = {}
        if "body" in expand:
            out["body"] = body_v1(c, expand["body"])
        if c.type == "page":
            out["extensions"] = {"position": c.position}
        expandable = {
            "childTypes": "",
            "container": f"/rest/api/space/{c.space_key}",
            "metadata": "",
            "operations": "",
            "schedulePublishDate": "",
            "children": f"/rest/api/content/{c.id}/child",
            "restrictions": f"/rest/api/content/{c.id}/restriction/byOperation",
            "history": f"/rest/api/content/{c.id}/history",
            "ancestors": "",
            "body": "",
            "version": "",
            "descendants": f"/rest/api/content/{c.id}/descendant",
            "space": f"/rest/api/space/{c.space_key}",
        }
        out["_expandable"] = {k: v for k, v in expandable.items() if k not in expand}
        out["_links"] = {
            "webui": _webui(c),
            "editui": f"/pages/resumedraft.action?draftId={c.id}",
            "tinyui": _tiny(c.id),
            "self": f"{_base(request)}/rest/api/content/{c.id}",
        }
        return out

    # ---------------------------------------------------------------- v1 search

    def v1_cap(expand: dict[str, Any]) -> int:
        if "body" in expand:
            return 50
        return 200 if expand else 1000

    def run_search(
        request: web.Request, expand: dict[str, Any], path: str
    ) -> web.Response | tuple[list[Content], dict[str, float], dict[str, Any]]:
        cql = request.query.get("cql", "")
        if not cql.strip():
            return _v1_error(400, f"{_BAD_REQUEST_EXC}: CQL query parameter is required")
        try:
            query = parse_cql(cql)
        except CqlError:
            return _v1_error(400, f"{_BAD_REQUEST_EXC}: Could not parse cql : {cql}")
        state.last_cql = cql
        state.last_cql_ast = query
        statuses = {"current"}
        context_space: str | None = None
        if "cqlcontext" in request.query:
            try:
                context = json.loads(request.query["cqlcontext"])
                if not isinstance(context, dict):
                    raise ValueError("cqlcontext must be an object")
            except ValueError:
                return _v1_error(400, f"{_BAD_REQUEST_EXC}: Invalid cqlcontext")
            context_space = context.get("spaceKey")
            if context.get("contentStatuses"):
                statuses = set(context["contentStatuses"])
        ctx = _Ctx(state, request[_USER_KEY] or None, datetime.now(UTC))
        try:
            pred = _compile(query.where, ctx)
            for field_name, _ in query.order_by:
                if field_name not in _ORDER_FIELDS:
                    raise CqlError(f"Cannot order by field: '{field_name}'")
        except CqlError as exc:
            if exc.unsupported:
                return web.json_response(
                    {"statusCode": 501, "message": f"fake Confluence: {exc.message}"},
                    status=501,
                )
            return _v1_error(400, f"{_BAD_REQUEST_EXC}: {exc.message}")
        include_archived_spaces = request.query.get("includeArchivedSpaces") == "true"
        hits = [
            c
            for c in state.content.values()
            if c.status in statuses
            and (context_space is None or c.space_key == context_space)
            and (include_archived_spaces or state.spaces[c.space_id].status == "current")
            and visible(request, c)
            and pred(c)
        ]
        # Relevance: how often the text/title terms occur (title hits weigh more).
        text_queries = [
            (cl.field, _scalar(cl.value, ctx))
            for cl in query.clauses()
            if cl.field in ("text", "sitesearch", "title")
            and cl.op == "~"
            and not isinstance(cl.value, tuple)
        ]
        scores: dict[str, float] = {}
        for c in hits:
            title_tokens, body_tokens = state.tokens(c)
            score = 0.0
            for fld, q in text_queries:
                for term in _all_terms(q):
                    score += 3 * sum(1 for t in title_tokens if _term_in([t], term))
                    if fld != "title":
                        score += sum(1 for t in body_tokens if _term_in([t], term))
            scores[c.id] = score
        order = list(query.order_by)
        if not order:
            # Default order (undocumented): relevance for text queries, else id ascending.
            order = [("score", "desc")] if text_queries else [("id", "asc")]

        def key(c: Content) -> tuple[Any, ...]:
            parts = [_sort_component(f, c, d == "desc", scores.get(c.id, 0.0)) for f, d in order]
            return (*parts, int(c.id))

        hits.sort(key=key)
        keys = [key(c) for c in hits]

        limit_raw = request.query.get("limit", "25")
        try:
            asked = int(limit_raw)
        except ValueError:
            return _v1_error(400, f"{_BAD_REQUEST_EXC}: Invalid limit: {limit_raw}")
        limit = max(0, min(asked, v1_cap(expand)))
        begin = 0
        cursor = request.query.get("cursor")
        if cursor:
            try:
                if not cursor.startswith("_sa_"):
                    raise ValueError(cursor)
                decoded = _decode_json_b64(cursor[4:])
                cursor_key = _to_tuple(decoded["k"])
                backwards = decoded.get("d") == "p"
                if backwards:
                    stop = bisect.bisect_left(keys, cursor_key)
                    begin = max(0, stop - limit)
                else:
                    begin = bisect.bisect_right(keys, cursor_key)
            except (ValueError, KeyError, TypeError):
                return _v1_error(400, f"{_BAD_REQUEST_EXC}: Invalid cursor: {cursor}")
            page = hits[begin:stop] if backwards else hits[begin : begin + limit]
        else:
            # ``start`` is deprecated and ignored: without a cursor this is the first page.
            page = hits[:limit]
        extras = [
            (k, v)
            for k, v in request.query.items()
            if k not in ("cursor", "next", "prev", "start", "limit", "cql")
        ]

        def link(direction: str, anchor: Content) -> str:
            token = "_sa_" + _encode_json_b64({"k": key(anchor), "d": direction[0]})
            params = [
                (direction, "true"),
                ("cursor", token),
                *extras,
                ("limit", str(limit)),
                ("start", str(max(0, begin + (len(page) if direction == "next" else -limit)))),
                ("cql", cql),
            ]
            return f"{path}?{urlencode(params)}"

        links: dict[str, Any] = {}
        if page and begin + len(page) < len(hits):
            links["next"] = link("next", page[-1])
        if page and begin > 0:
            links["prev"] = link("prev", page[0])
        meta = {
            "start": begin,
            "limit": limit,
            "size": len(page),
            "total": len(hits),
            "links": links,
            "query_text": text_queries,
        }
        return page, scores, meta

    def v1_links(request: web.Request, path: str, links: dict[str, Any]) -> dict[str, Any]:
        self_url = f"{_base(request)}{path}"
        if request.query_string:
            self_url += "?" + request.query_string
        return {"base": _base(request), "context": "/wiki", **links, "self": self_url}

    def flaky() -> web.Response | None:
        if state.flaky_500_rate and state.rng.random() < state.flaky_500_rate:
            return _v1_error(500, f"{_SERVICE_EXC}: Search failed")
        return None

    async def v1_content_search(request: web.Request) -> web.Response:
        if (failure := flaky()) is not None:
            return failure
        expand = _expand_tree(request.query.getall("expand", []))
        result = run_search(request, expand, "/rest/api/content/search")
        if isinstance(result, web.Response):
            return result
        page, _, meta = result
        return web.json_response(
            {
                "results": [content_v1(request, c, expand) for c in page],
                "start": meta["start"],
                "limit": meta["limit"],
                "size": meta["size"],
                "_links": v1_links(request, "/rest/api/content/search", meta["links"]),
            }
        )

    def highlight(text: str, terms: list[str], strategy: str) -> str:
        """Confluence's excerpt strategies: ``highlight`` wraps matched words in
        ``@@@hl@@@...@@@endhl@@@`` and HTML-escapes the rest; ``*_unescaped`` does not
        escape; ``indexed`` does not highlight; ``none`` gives no excerpt."""
        if strategy == "none":
            return ""
        escape = strategy in ("highlight", "indexed")
        out = []
        for i, piece in enumerate(_WORD_SPLIT_RE.split(text)):
            rendered = html.escape(piece, quote=False) if escape else piece
            is_word = i % 2 == 1
            if (
                is_word
                and strategy.startswith("highlight")
                and any(_term_in([piece.lower()], t) for t in terms)
            ):
                rendered = f"@@@hl@@@{rendered}@@@endhl@@@"
            out.append(rendered)
        return "".join(out)

    async def v1_search(request: web.Request) -> web.Response:
        if (failure := flaky()) is not None:
            return failure
        expand = _expand_tree(request.query.getall("expand", []), strip_prefix="content.")
        result = run_search(request, expand, "/rest/api/search")
        if isinstance(result, web.Response):
            return result
        page, scores, meta = result
        strategy = request.query.get("excerpt", "highlight")
        terms = [t for _, q in meta["query_text"] for t in _all_terms(q)]
        results = []
        for c in page:
            space = state.spaces[c.space_id]
            excerpt_words = plain_text(c.body).split(" ")[:30]
            results.append(
                {
                    "content": content_v1(request, c, expand),
                    "title": highlight(c.title, terms, strategy) or c.title,
                    "excerpt": highlight(" ".join(excerpt_words), terms, strategy),
                    "url": _webui(c),
                    "resultGlobalContainer": {
                        "title": space.name,
                        "displayUrl": f"/spaces/{space.key}",
                    },
                    "breadcrumbs": [],
                    "entityType": "content",
                    "iconCssClass": f"aui-icon content-type-{c.type}",
                    "lastModified": _iso(c.last_modified),
                    "friendlyLastModified": c.last_modified.strftime("%b %d, %Y"),
                    "score": scores.get(c.id, 0.0),
                }
            )
        return web.json_response(
            {
                "results": results,
                "start": meta["start"],
                "limit": meta["limit"],
                "size": meta["size"],
                "totalSize": meta["total"],
                "cqlQuery": request.query.get("cql", ""),
                "searchDuration": 42,
                "_links": v1_links(request, "/rest/api/search", meta["links"]),
            }
        )

    async def v1_content_get(request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        if not cid.isdigit():
            return _v1_error(400, f"{_BAD_REQUEST_EXC}: Content id must be a number: {cid}")
        statuses = set(request.query.getall("status", [])) or {"current", "archived"}
        c = state.content.get(cid)
        if c is None or not visible(request, c):
            return _v1_not_found(cid)
        if "any" not in statuses and c.status not in statuses:
            return _v1_not_found(cid)
        version = request.query.get("version")
        if version is not None and version != str(c.version.number):
            return web.json_response(
                {"statusCode": 501, "message": "fake Confluence keeps no version history"},
                status=501,
            )
        raw = request.query.getall("expand", [])
        expand = _expand_tree(raw) if raw else {"space": {}, "history": {}, "version": {}}
        body = content_v1(request, c, expand)
        body["_links"].update({"base": _base(request), "context": "/wiki"})
        return web.json_response(body)

    async def v1_space_list(request: web.Request) -> web.Response:
        keys = set(request.query.getall("spaceKey", []))
        try:
            start = max(0, int(request.query.get("start", "0")))
            limit = max(0, min(int(request.query.get("limit", "25")), 250))
        except ValueError:
            return _v1_error(400, f"{_BAD_REQUEST_EXC}: Invalid start or limit")
        kind = request.query.get("type")
        status = request.query.get("status")
        spaces = [
            s
            for s in sorted(state.spaces.values(), key=lambda s: s.key)
            if (not keys or s.key in keys)
            and (kind is None or s.type == kind)
            and (status is None or s.status == status)
            and space_visible(request, s)
        ]
        page = spaces[start : start + limit]
        expand = _expand_tree(request.query.getall("expand", []))
        links: dict[str, Any] = {}
        if start + limit < len(spaces):
            extras = [(k, v) for k, v in request.query.items() if k not in ("start", "limit")]
            links["next"] = "/rest/api/space?" + urlencode(
                [*extras, ("limit", str(limit)), ("start", str(start + limit))]
            )
        return web.json_response(
            {
                "results": [space_v1(request, s, expand) for s in page],
                "start": start,
                "limit": limit,
                "size": len(page),
                "_links": v1_links(request, "/rest/api/space", links),
            }
        )

    # ---------------------------------------------------------------- v2

    def v2_limit(request: web.Request) -> int:
        raw = request.query.get("limit", "25")
        try:
            value = int(raw)
        except ValueError:
            raise _BadParam("limit", raw, "int") from None
        if value < 1:
            raise _BadParam("limit", raw, "int (minimum 1)")
        return min(value, 250)

    def v2_body_format(request: web.Request, single: bool) -> str | None:
        fmt = request.query.get("body-format")
        allowed: tuple[str, ...] = ("storage", "atlas_doc_format")
        if single:
            allowed += ("view", "export_view", "anonymous_export_view", "styled_view", "editor")
        if fmt is not None and fmt not in allowed:
            raise _BadParam("body-format", fmt, "PrimaryBodyRepresentation")
        return fmt

    def v2_ids(request: web.Request, name: str, max_items: int) -> list[str]:
        values = _multi(request, name)
        for v in values:
            if not v.isdigit():
                raise _BadParam(name, v, "long")
        if len(values) > max_items:
            raise _BadParam(name, ",".join(values), f"array of at most {max_items} items")
        return values

    def version_v2(c: Content) -> dict[str, Any]:
        v = c.version
        return {
            "createdAt": _iso(v.created_at),
            "message": v.message,
            "number": v.number,
            "minorEdit": v.minor_edit,
            "authorId": v.author_id,
        }

    def body_v2(c: Content, fmt: str | None) -> dict[str, Any]:
        if fmt is None:
            return {}
        if fmt in ("storage", "editor"):
            value = c.body
        elif fmt == "atlas_doc_format":
            value = _adf(c.body)
        else:
            value = _render_view(c.body)
        return {fmt: {"representation": fmt, "value": value}}

    def links_v2(c: Content) -> dict[str, Any]:
        return {
            "editui": f"/pages/resumedraft.action?draftId={c.id}",
            "webui": _webui(c),
            "edituiv2": f"/spaces/{c.space_key}/{'pages' if c.type == 'page' else 'blog'}"
            f"/edit-v2/{c.id}",
            "tinyui": _tiny(c.id),
        }

    def page_v2(c: Content, fmt: str | None, include_version: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "parentType": "page" if c.parent_id else None,
            "parentId": c.parent_id,
            "ownerId": c.owner_id,
            "lastOwnerId": None,
            "createdAt": _iso(c.created_at),
            "authorId": c.author_id,
            "position": c.position,
        }
        if include_version:
            out["version"] = version_v2(c)
        out.update(
            {
                "spaceId": str(c.space_id),
                "status": c.status,
                "title": c.title,
                "id": c.id,
                "body": body_v2(c, fmt),
                "_links": links_v2(c),
            }
        )
        return out

    def blogpost_v2(c: Content, fmt: str | None, include_version: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"spaceId": str(c.space_id)}
        if include_version:
            out["version"] = version_v2(c)
        out.update(
            {
                "authorId": c.author_id,
                "createdAt": _iso(c.created_at),
                "status": c.status,
                "title": c.title,
                "id": c.id,
                "body": body_v2(c, fmt),
                "_links": links_v2(c),
            }
        )
        return out

    def space_v2(request: web.Request, s: Space) -> dict[str, Any]:
        fmt = request.query.get("description-format")
        description = None
        if fmt in ("plain", "view"):
            value = s.description if fmt == "plain" else f"<p>{html.escape(s.description)}</p>"
            description = {fmt: {"representation": fmt, "value": value}}
        icon = None
        if request.query.get("include-icon") == "true":
            icon = {"path": f"/wiki/aa-avatar/space/{s.key}", "apiDownloadLink": None}
        return {
            "id": str(s.id),
            "key": s.key,
            "name": s.name,
            "type": s.type,
            "status": s.status,
            "authorId": s.author_id,
            "createdAt": _iso(s.created_at),
            "homepageId": s.homepage_id,
            "description": description,
            "icon": icon,
            "_links": {"webui": f"/spaces/{s.key}"},
        }

    _V2_SORTS = {
        "id": "id",
        "created-date": "created",
        "modified-date": "lastmodified",
        "title": "title",
    }

    def v2_sort_value(c: Content, kind: str) -> Any:
        if kind == "id":
            return int(c.id)
        if kind == "created":
            return _ms(c.created_at)
        if kind == "lastmodified":
            return _ms(c.last_modified)
        return c.title.lower()

    def paginate_v2(
        request: web.Request,
        items: list[Any],
        sort: str,
        value_of: Callable[[Any, str], Any],
        id_of: Callable[[Any], int],
        fields: dict[str, str],
    ) -> tuple[list[Any], str | None]:
        descending = sort.startswith("-")
        kind = fields[sort.lstrip("-")]

        def key(item: Any) -> tuple[Any, ...]:
            value = value_of(item, kind)
            if descending:
                value = _desc_str(value) if isinstance(value, str) else -value
            return (value, -id_of(item) if descending else id_of(item))

        items = sorted(items, key=key)
        keys = [key(i) for i in items]
        limit = v2_limit(request)
        begin = 0
        cursor = request.query.get("cursor")
        if cursor:
            try:
                decoded = _decode_json_b64(cursor)
                if decoded["contentOrder"] != sort:
                    raise ValueError("cursor from another sort order")
                anchor_value = decoded["contentOrderValue"]
                anchor_id = int(decoded["id"])
                if descending:
                    anchor_value = (
                        _desc_str(anchor_value) if isinstance(anchor_value, str) else -anchor_value
                    )
                    anchor_id = -anchor_id
                begin = bisect.bisect_right(keys, (anchor_value, anchor_id))
            except (ValueError, KeyError, TypeError):
                raise _BadParam("cursor", cursor, "a cursor returned by this API") from None
        page = items[begin : begin + limit]
        if not page or begin + len(page) >= len(items):
            return page, None
        last = page[-1]
        token = _encode_json_b64(
            {
                "id": str(id_of(last)),
                "contentOrder": sort,
                "contentOrderValue": value_of(last, kind),
            }
        )
        # The cursor deliberately sits between other parameters (it is not always last).
        others = [(k, v) for k, v in request.query.items() if k not in ("cursor", "limit")]
        params = [("limit", str(limit)), ("cursor", token), *others]
        return page, f"{request.path}?{urlencode(params, quote_via=quote)}"

    def v2_list_response(
        request: web.Request, results: list[dict[str, Any]], next_url: str | None
    ) -> web.Response:
        links: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if next_url is not None:
            links["next"] = next_url
            headers["Link"] = f'<{next_url}>; rel="next", <{_base(request)}>; rel="base"'
        links["base"] = _base(request)
        return web.json_response({"results": results, "_links": links}, headers=headers)

    def content_list(request: web.Request, kind: str, space: Space | None) -> web.Response:
        try:
            sorts = dict(_V2_SORTS)
            if kind == "blogpost":
                sorts.pop("title")
            sort = request.query.get("sort", "id")
            if sort.lstrip("-") not in sorts:
                raise _BadParam(
                    "sort", sort, "PageSortOrder" if kind == "page" else "BlogPostSortOrder"
                )
            allowed = (
                ("current", "archived", "deleted", "trashed")
                if kind == "page"
                else (
                    "current",
                    "deleted",
                    "trashed",
                )
            )
            statuses = _multi(request, "status")
            for st in statuses:
                if st not in allowed:
                    raise _BadParam("status", st, "ContentStatus")
            wanted = set(statuses) or ({"current", "archived"} if kind == "page" else {"current"})
            ids = set(v2_ids(request, "id", 250)) if space is None else set()
            space_ids = set(v2_ids(request, "space-id", 100)) if space is None else set()
            depth = request.query.get("depth", "all")
            if depth not in ("all", "root"):
                raise _BadParam("depth", depth, "PageDepth")
            title = request.query.get("title")
            fmt = v2_body_format(request, single=False)
            items = [
                c
                for c in state.content.values()
                if c.type == kind
                and c.status in wanted
                and (space is None or c.space_id == space.id)
                and (not ids or c.id in ids)
                and (not space_ids or str(c.space_id) in space_ids)
                and (title is None or c.title == title)
                and (depth == "all" or c.parent_id is None)
                and visible(request, c)
            ]
            page, next_url = paginate_v2(
                request, items, sort, v2_sort_value, lambda c: int(c.id), sorts
            )
        except _BadParam as exc:
            return exc.response()
        render = page_v2 if kind == "page" else blogpost_v2
        return v2_list_response(request, [render(c, fmt) for c in page], next_url)

    def space_from_path(request: web.Request) -> Space | web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit():
            return _BadParam("id", raw, "long").response()
        space = state.spaces.get(int(raw))
        if space is None or not space_visible(request, space):
            return _v2_not_found()
        return space

    async def v2_pages(request: web.Request) -> web.Response:
        return content_list(request, "page", None)

    async def v2_blogposts(request: web.Request) -> web.Response:
        return content_list(request, "blogpost", None)

    async def v2_space_pages(request: web.Request) -> web.Response:
        space = space_from_path(request)
        return space if isinstance(space, web.Response) else content_list(request, "page", space)

    async def v2_space_blogposts(request: web.Request) -> web.Response:
        space = space_from_path(request)
        if isinstance(space, web.Response):
            return space
        return content_list(request, "blogpost", space)

    def content_single(request: web.Request, kind: str) -> web.Response:
        raw = request.match_info["id"]
        try:
            if not raw.isdigit():
                raise _BadParam("id", raw, "long")
            fmt = v2_body_format(request, single=True)
        except _BadParam as exc:
            return exc.response()
        c = state.content.get(raw)
        if c is None or c.type != kind or not visible(request, c):
            return _v2_not_found()
        statuses = set(_multi(request, "status"))
        allowed = {"current", "trashed", "deleted", "historical", "draft"}
        if kind == "page":
            allowed.add("archived")
        for st in statuses - allowed:
            return _BadParam("status", st, "ContentStatus").response()
        if request.query.get("get-draft") == "true":
            statuses.add("draft")
        default = {"current", "archived"} if kind == "page" else {"current"}
        if c.status not in (statuses or default):
            return _v2_not_found()
        include_version = request.query.get("include-version", "true") != "false"
        render = page_v2 if kind == "page" else blogpost_v2
        out = render(c, fmt, include_version)
        out["_links"]["base"] = _base(request)
        return web.json_response(out)

    async def v2_page(request: web.Request) -> web.Response:
        return content_single(request, "page")

    async def v2_blogpost(request: web.Request) -> web.Response:
        return content_single(request, "blogpost")

    async def v2_spaces(request: web.Request) -> web.Response:
        try:
            ids = set(v2_ids(request, "ids", 250))
            keys = set(_multi(request, "keys"))
            kind = request.query.get("type")
            if kind is not None and kind not in (
                "global",
                "collaboration",
                "knowledge_base",
                "personal",
            ):
                raise _BadParam("type", kind, "SpaceType")
            status = request.query.get("status")
            if status is not None and status not in ("current", "archived"):
                raise _BadParam("status", status, "SpaceStatus")
            labels = _multi(request, "labels")
            sort = request.query.get("sort", "id")
            fields = {"id": "id", "key": "key", "name": "name"}
            if sort.lstrip("-") not in fields:
                raise _BadParam("sort", sort, "SpaceSortOrder")
            spaces = [
                s
                for s in state.spaces.values()
                if (not ids or str(s.id) in ids)
                and (not keys or s.key in keys)
                and (kind is None or s.type == kind)
                and (status is None or s.status == status)
                and not labels  # the fake's spaces carry no labels
                and space_visible(request, s)
            ]

            def value_of(s: Space, field_kind: str) -> Any:
                return s.id if field_kind == "id" else getattr(s, field_kind).lower()

            page, next_url = paginate_v2(request, spaces, sort, value_of, lambda s: s.id, fields)
        except _BadParam as exc:
            return exc.response()
        return v2_list_response(request, [space_v2(request, s) for s in page], next_url)

    async def v2_space(request: web.Request) -> web.Response:
        space = space_from_path(request)
        if isinstance(space, web.Response):
            return space
        out = space_v2(request, space)
        out["_links"]["base"] = _base(request)
        return web.json_response(out)

    r = app.router
    r.add_get("/wiki/rest/api/content/search", v1_content_search)
    r.add_get("/wiki/rest/api/search", v1_search)
    r.add_get("/wiki/rest/api/content/{id}", v1_content_get)
    r.add_get("/wiki/rest/api/space", v1_space_list)
    r.add_get("/wiki/api/v2/pages", v2_pages)
    r.add_get("/wiki/api/v2/pages/{id}", v2_page)
    r.add_get("/wiki/api/v2/blogposts", v2_blogposts)
    r.add_get("/wiki/api/v2/blogposts/{id}", v2_blogpost)
    r.add_get("/wiki/api/v2/spaces", v2_spaces)
    r.add_get("/wiki/api/v2/spaces/{id}", v2_space)
    r.add_get("/wiki/api/v2/spaces/{id}/pages", v2_space_pages)
    r.add_get("/wiki/api/v2/spaces/{id}/blogposts", v2_space_blogposts)
    return app
