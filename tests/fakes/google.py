"""A fake of Google's Drive v3, Gmail v1 and Calendar v3 REST APIs and of the OAuth 2.0 token
endpoint, on one aiohttp application.

Written from Google's discovery documents (``drive.v3.json``, ``gmail.v1.json``,
``calendar.v3.json``, Apache License 2.0, © Google LLC; parameter names, defaults, caps and
resource shapes are taken from them) and from Google's published behaviour:

* auth: ``Authorization: Bearer <token>``; unknown token -> 401 ``authError``
  (``UNAUTHENTICATED``); a token without a scope the method needs -> 403
  ``insufficientPermissions`` with ``WWW-Authenticate: ... error="insufficient_scope",
  scope="..."``. Errors use Google's body ``{"error": {"code", "message", "errors":
  [{"message", "domain", "reason"}], "status"}}``;
* ``POST /token``: the JWT-bearer grant google-auth's service-account credentials send. The
  assertion's RS256 signature is verified against the registered public key; ``aud`` must be
  the token URI; the issued token carries the ``scope`` claim's scopes; ``sub`` is recorded;
* Drive ``files.list``: ``q`` parsed by a real tokenizer/parser of the Drive query language
  subset (``and``/``or``/``not``, parentheses, ``'x' in parents``, ``name``/``fullText``
  ``contains``, ``mimeType``, ``modifiedTime``/``createdTime`` comparisons, ``trashed``);
  string literals are single-quoted with ``\\'`` and ``\\\\`` as the only escapes (anything
  else is 400). ``fullText contains`` matches whole word tokens (Drive matches whole tokens);
  ``name contains`` is a prefix match (as Drive documents). ``pageSize`` defaults to 100 and
  values above 1000 are set to 1000; ``fields`` is a real partial-response selector and the
  default is Drive's (``kind, incompleteSearch, files(kind, id, name, mimeType)``);
  ``orderBy`` with a ``fullText`` query is refused (Drive sorts those by relevance); shared
  drives need ``corpora=drive`` + ``driveId`` + ``includeItemsFromAllDrives=true``, and
  ``files.get`` of a shared-drive file needs ``supportsAllDrives=true`` (404 otherwise);
* ``alt=media`` and ``files/{id}/export`` (Google Docs editors files only).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ._common import FakeControls, controls_middleware

DRIVE = "https://www.googleapis.com/auth/drive"
DRIVE_READONLY = "https://www.googleapis.com/auth/drive.readonly"
DRIVE_METADATA = "https://www.googleapis.com/auth/drive.metadata.readonly"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
ALL_SCOPES = frozenset({DRIVE, DRIVE_READONLY, GMAIL_READONLY, CALENDAR_READONLY})

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
EXPORTS = {
    DOC: {"text/plain", "text/html", "application/pdf"},
    SHEET: {"text/csv", "application/pdf"},
    SLIDES: {"text/plain", "application/pdf"},
}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    410: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
}


def google_error(
    status: int,
    message: str,
    reason: str,
    *,
    headers: dict[str, str] | None = None,
    domain: str = "global",
) -> web.Response:
    """An error in Google's JSON dialect."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": _STATUS.get(status, "UNKNOWN"),
        }
    }
    return web.json_response(body, status=status, headers=headers)


def rfc3339(when: datetime) -> str:
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no offset")
    return value


# -- state ----------------------------------------------------------------------------------


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    created: datetime
    modified: datetime
    parents: list[str] = field(default_factory=list)
    description: str | None = None
    trashed: bool = False
    drive_id: str | None = None
    content: bytes = b""
    exports: dict[str, bytes] = field(default_factory=dict)
    modifier: tuple[str, str] = ("Ada Lovelace", "ada@example.com")

    def resource(self) -> dict[str, Any]:
        """The full v3 File resource (``fields=*``)."""
        data: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "createdTime": rfc3339(self.created),
            "modifiedTime": rfc3339(self.modified),
            "webViewLink": f"https://drive.google.com/file/d/{self.id}/view?usp=drivesdk",
            "lastModifyingUser": {
                "kind": "drive#user",
                "displayName": self.modifier[0],
                "emailAddress": self.modifier[1],
                "me": False,
                "permissionId": hashlib.sha1(self.modifier[1].encode()).hexdigest()[:20],
            },
            "version": "1",
        }
        if self.mime_type.startswith("application/vnd.google-apps."):
            if self.mime_type in EXPORTS:
                data["webViewLink"] = f"https://docs.google.com/document/d/{self.id}/edit"
        else:
            data["size"] = str(len(self.content))
            data["md5Checksum"] = hashlib.md5(self.content).hexdigest()
        if self.description is not None:
            data["description"] = self.description
        if self.drive_id is not None:
            data["driveId"] = self.drive_id
        return data

    def full_text(self) -> str:
        parts = [self.name, self.description or ""]
        if self.mime_type in EXPORTS:
            parts.extend(v.decode("utf-8", "replace") for v in self.exports.values())
        elif self.mime_type.startswith("text/"):
            parts.append(self.content.decode("utf-8", "replace"))
        return "\n".join(parts)


@dataclass
class GoogleState:
    controls: FakeControls = field(default_factory=FakeControls)
    #: access token -> its scopes
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    #: service-account client_email -> PEM public key (for the JWT-bearer grant)
    service_accounts: dict[str, bytes] = field(default_factory=dict)
    #: the verified claims of every assertion /token accepted
    grants: list[dict[str, Any]] = field(default_factory=list)
    token_lifetime: int = 3600
    files: dict[str, DriveFile] = field(default_factory=dict)
    drives: set[str] = field(default_factory=set)
    messages: dict[str, GmailMessage] = field(default_factory=dict)
    gmail_user: str = "me@example.com"
    gmail_gets: int = 0
    #: seconds each messages.get takes, and the most of them seen in flight at once
    gmail_get_delay: float = 0.0
    gmail_in_flight: int = 0
    gmail_max_in_flight: int = 0
    primary_calendar: str = "me@example.com"
    calendars: set[str] = field(default_factory=lambda: {"me@example.com"})
    events: dict[str, list[CalendarEvent]] = field(default_factory=dict)
    #: a change counter: sync tokens remember it; tokens older than this answer 410
    clock: int = 0
    sync_expired_before: int = 0
    #: every Drive ``q`` parsed, as (q, tree), for tests of the escaping
    parsed_queries: list[tuple[str, Any]] = field(default_factory=list)
    _counter: int = 0

    def issue_token(self, scopes: frozenset[str] = ALL_SCOPES) -> str:
        self._counter += 1
        token = f"ya29.fake-{self._counter}-{hashlib.sha1(str(self._counter).encode()).hexdigest()}"
        self.tokens[token] = scopes
        return token

    def add_message(
        self, message: Message, *, at: datetime, labels: list[str] | None = None
    ) -> GmailMessage:
        self._counter += 1
        ms = int(at.timestamp() * 1000)
        found = GmailMessage(
            f"{ms:x}{self._counter:05x}"[-16:],
            f"{ms:x}"[-16:],
            list(labels or ["INBOX"]),
            ms,
            message,
        )
        self.messages[found.id] = found
        return found

    def add_event(
        self,
        summary: str,
        start: datetime,
        *,
        calendar: str | None = None,
        hours: float = 1.0,
        updated: datetime | None = None,
        **kwargs: Any,
    ) -> CalendarEvent:
        self.clock += 1
        calendar = calendar or self.primary_calendar
        self.calendars.add(calendar)
        event = CalendarEvent(
            id=hashlib.sha1(f"event{self.clock}".encode()).hexdigest()[:26],
            summary=summary,
            start=start,
            end=start + timedelta(hours=hours),
            created=updated or start,
            updated=updated or start,
            seq=self.clock,
            **kwargs,
        )
        self.events.setdefault(calendar, []).append(event)
        return event

    def change_event(self, event: CalendarEvent, *, at: datetime, **changes: Any) -> None:
        """Edit (or, with ``status="cancelled"``, delete) an event: sync tokens see it."""
        self.clock += 1
        for name, value in changes.items():
            setattr(event, name, value)
        event.updated = at
        event.seq = self.clock

    def next_id(self, prefix: str) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{prefix}{self._counter}".encode()).digest()
        return prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:24]

    def add_file(
        self,
        name: str,
        *,
        mime_type: str = "text/plain",
        content: bytes = b"",
        modified: datetime | None = None,
        created: datetime | None = None,
        parents: list[str] | None = None,
        **kwargs: Any,
    ) -> DriveFile:
        now = datetime(2025, 1, 1, tzinfo=UTC)
        file = DriveFile(
            id=self.next_id("1"),
            name=name,
            mime_type=mime_type,
            created=created or modified or now,
            modified=modified or created or now,
            parents=list(parents or ["root"]),
            content=content,
            **kwargs,
        )
        self.files[file.id] = file
        return file


STATE_KEY: web.AppKey[GoogleState] = web.AppKey("google_state", GoogleState)


# -- auth -----------------------------------------------------------------------------------


def _check_auth(
    state: GoogleState, request: web.Request, accepted: set[str]
) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    scopes = state.tokens.get(header[7:]) if header.startswith("Bearer ") else None
    if scopes is None:
        return google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            "authError",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )
    if not scopes & accepted:
        wanted = " ".join(sorted(accepted))
        return google_error(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            headers={
                "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                f'error="insufficient_scope", scope="{wanted}"'
            },
        )
    return None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def token_endpoint(request: web.Request) -> web.StreamResponse:
    """The OAuth 2.0 JWT-bearer grant (RFC 7523), as google-auth's service accounts use it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    state = request.app[STATE_KEY]
    form = dict(parse_qsl((await request.read()).decode()))

    def refuse(error: str, description: str) -> web.Response:
        return web.json_response({"error": error, "error_description": description}, status=400)

    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return refuse("unsupported_grant_type", "Invalid grant_type")
    try:
        head, payload, signature = form["assertion"].split(".")
        header = orjson.loads(_b64url(head))
        claims = orjson.loads(_b64url(payload))
    except (KeyError, ValueError):
        return refuse("invalid_grant", "Invalid JWT")
    if header.get("alg") != "RS256":
        return refuse("invalid_grant", "Invalid JWT signature algorithm")
    pem = state.service_accounts.get(claims.get("iss", ""))
    if pem is None:
        return refuse("invalid_grant", "Invalid JWT: unknown issuer")
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(
            _b64url(signature),
            f"{head}.{payload}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return refuse("invalid_grant", "Invalid JWT Signature.")
    now = time.time()
    if claims.get("aud") != GOOGLE_TOKEN_URI:  # Google's own, whatever the token_uri
        return refuse("invalid_grant", "Invalid JWT: audience")
    if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300):
        return refuse("invalid_grant", "Invalid JWT: Token must be a short-lived token")
    scopes = frozenset(str(claims.get("scope", "")).split())
    if not scopes:
        return refuse("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    state.grants.append(claims)
    token = state.issue_token(scopes)
    return web.json_response(
        {"access_token": token, "expires_in": state.token_lifetime, "token_type": "Bearer"}
    )


# -- Drive query language -------------------------------------------------------------------


class QueryError(ValueError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|=|<|>)|(?P<paren>[()])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))",
    re.DOTALL,
)


def unquote_literal(text: str) -> str:
    """A Drive string literal's value: ``\\'`` and ``\\\\`` are the only escapes."""
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in ("'", "\\"):
                raise QueryError(f"invalid escape \\{nxt} in a string literal")
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(q: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        match = _TOKEN.match(q, pos)
        if match is None or match.end() == pos:
            raise QueryError(f"cannot read the query at {q[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        tokens.append((kind, unquote_literal(value) if kind == "string" else value))
        pos = match.end()
    return tokens


_FIELDS = {"name", "fullText", "mimeType", "modifiedTime", "createdTime", "trashed", "starred"}
_OPS = {"contains", "=", "!=", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("the query ends too early")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Any:
        tree = self.or_expr()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()!r}")
        return tree

    def or_expr(self) -> Any:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def and_expr(self) -> Any:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def unary(self) -> Any:
        if self.keyword("not"):
            return ("not", self.unary())
        token = self.peek()
        if token == ("paren", "("):
            self.take()
            tree = self.or_expr()
            if self.take() != ("paren", ")"):
                raise QueryError("missing )")
            return tree
        return self.term()

    def term(self) -> Any:
        kind, value = self.take()
        if kind == "string":  # 'x' in parents
            if not self.keyword("in"):
                raise QueryError("a string must be followed by 'in'")
            where = self.take()
            if where not in (("word", "parents"), ("word", "owners"), ("word", "writers")):
                raise QueryError(f"cannot use 'in' with {where[1]!r}")
            return ("in", where[1], value)
        if kind != "word" or value not in _FIELDS:
            raise QueryError(f"Invalid Value: unknown field {value!r}")
        op_kind, op = self.take()
        if not ((op_kind == "op" and op in _OPS) or (op_kind == "word" and op == "contains")):
            raise QueryError(f"unknown operator {op!r}")
        operand_kind, operand = self.take()
        if value in ("trashed", "starred"):
            if operand_kind != "word" or operand not in ("true", "false") or op not in ("=", "!="):
                raise QueryError(f"{value} takes = true or = false")
            return ("cmp", value, op, operand == "true")
        if operand_kind != "string":
            raise QueryError(f"{value} needs a quoted string")
        if value in ("modifiedTime", "createdTime"):
            if op == "contains":
                raise QueryError("dates take comparisons")
            try:
                return ("cmp", value, op, parse_time(operand))
            except ValueError:
                raise QueryError(f"Invalid Value: not an RFC 3339 date {operand!r}") from None
        if value == "fullText" and op != "contains":
            raise QueryError("fullText only takes contains")
        if value == "name" and op not in ("contains", "=", "!="):
            raise QueryError("name takes contains, = or !=")
        if value == "mimeType" and op not in ("contains", "=", "!="):
            raise QueryError("mimeType takes contains, = or !=")
        return ("cmp", value, op, operand)


def parse_drive_query(q: str) -> Any:
    """The parse tree of a Drive ``q`` (``QueryError`` for anything outside the subset)."""
    return _Parser(tokenize(q)).parse()


def query_strings(tree: Any) -> list[str]:
    """Every string literal in a parse tree, in order."""
    out: list[str] = []
    if tree[0] in ("and", "or"):
        for part in tree[1]:
            out.extend(query_strings(part))
    elif tree[0] == "not":
        out.extend(query_strings(tree[1]))
    elif tree[0] == "in":
        out.append(tree[2])
    elif isinstance(tree[3], str):
        out.append(tree[3])
    return out


_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def matches(tree: Any, file: DriveFile) -> bool:
    kind = tree[0]
    if kind == "and":
        return all(matches(part, file) for part in tree[1])
    if kind == "or":
        return any(matches(part, file) for part in tree[1])
    if kind == "not":
        return not matches(tree[1], file)
    if kind == "in":
        return tree[1] == "parents" and tree[2] in file.parents
    _, name, op, value = tree
    if name == "fullText":
        wanted = _words(value)
        if not wanted:
            return False
        have = _words(file.full_text())
        # whole tokens, in sequence (a phrase)
        n = len(wanted)
        return any(have[i : i + n] == wanted for i in range(len(have) - n + 1))
    if name == "name":
        if op == "contains":
            return file.name.casefold().startswith(value.casefold())
        return _compare(file.name, op, value)
    if name == "mimeType":
        if op == "contains":
            return value in file.mime_type
        return _compare(file.mime_type, op, value)
    if name == "modifiedTime":
        return _compare(
            file.modified.replace(microsecond=file.modified.microsecond // 1000 * 1000), op, value
        )
    if name == "createdTime":
        return _compare(file.created, op, value)
    if name == "trashed":
        return _compare(file.trashed, op, value)
    return _compare(False, op, value)  # starred: nothing is starred


# -- partial responses (fields=) ------------------------------------------------------------


def parse_fields(text: str) -> dict[str, Any]:
    """``a,b(c,d/e)`` -> ``{"a": None, "b": {"c": None, "d": {"e": None}}}``."""
    pos = 0

    def parse_list() -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(text):
            match = re.compile(r"\s*([A-Za-z_*][A-Za-z0-9_]*)").match(text, pos)
            if match is None:
                raise QueryError(f"Invalid field selection at {text[pos:]!r}")
            name = match.group(1)
            pos = match.end()
            sub: Any = None
            if pos < len(text) and text[pos] == "(":
                pos += 1
                sub = parse_list()
                if pos >= len(text) or text[pos] != ")":
                    raise QueryError("Invalid field selection: missing )")
                pos += 1
            elif pos < len(text) and text[pos] == "/":
                pos += 1
                sub = parse_list_one()
            out[name] = sub
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            break
        return out

    def parse_list_one() -> dict[str, Any]:
        nonlocal pos
        match = re.compile(r"([A-Za-z_*][A-Za-z0-9_]*)").match(text, pos)
        if match is None:
            raise QueryError("Invalid field selection")
        pos = match.end()
        return {match.group(1): None}

    result = parse_list()
    if pos != len(text):
        raise QueryError(f"Invalid field selection at {text[pos:]!r}")
    return result


def select(data: Any, selector: dict[str, Any] | None) -> Any:
    if selector is None or "*" in selector:
        return data
    if isinstance(data, list):
        return [select(item, selector) for item in data]
    if not isinstance(data, dict):
        return data
    return {k: select(data[k], sub) for k, sub in selector.items() if k in data}


# -- Drive handlers -------------------------------------------------------------------------

_DRIVE_SCOPES = {DRIVE, DRIVE_READONLY, DRIVE_METADATA}
_DRIVE_CONTENT_SCOPES = {DRIVE, DRIVE_READONLY}
_DEFAULT_LIST_FIELDS = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"
_DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
_ORDER_KEYS = {"createdTime", "modifiedTime", "name", "folder"}


def _bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


def _fields(request: web.Request, default: str) -> dict[str, Any]:
    return parse_fields(request.query.get("fields") or default)


def _page_token(query_key: str, offset: int) -> str:
    raw = orjson.dumps({"k": hashlib.sha1(query_key.encode()).hexdigest()[:12], "o": offset})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str, query_key: str) -> int | None:
    try:
        data = orjson.loads(_b64url(token))
        if data["k"] != hashlib.sha1(query_key.encode()).hexdigest()[:12]:
            return None
        offset = int(data["o"])
    except (ValueError, KeyError, TypeError):
        return None
    return offset if offset >= 0 else None


def _sort_key(order_by: str) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in order_by.split(","):
        words = part.split()
        if not words or words[0] not in _ORDER_KEYS or len(words) > 2:
            raise QueryError(f"Invalid Value: orderBy {part!r}")
        desc = len(words) == 2 and words[1].lower() == "desc"
        if len(words) == 2 and words[1].lower() not in ("asc", "desc"):
            raise QueryError(f"Invalid Value: orderBy {part!r}")
        keys.append((words[0], desc))
    return keys


def _sort(files: list[DriveFile], keys: list[tuple[str, bool]]) -> list[DriveFile]:
    for name, desc in reversed(keys):
        if name == "folder":
            files.sort(key=lambda f: f.mime_type != FOLDER, reverse=desc)
        elif name == "name":
            files.sort(key=lambda f: f.name, reverse=desc)
        elif name == "createdTime":
            files.sort(key=lambda f: f.created, reverse=desc)
        else:
            files.sort(key=lambda f: f.modified, reverse=desc)
    return files


async def drive_list(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request, _DRIVE_SCOPES)
    if denied is not None:
        return denied
    query = request.query
    q = query.get("q", "")
    order_by = query.get("orderBy", "")
    corpora = query.get("corpora", "user")
    drive_id = query.get("driveId")
    try:
        tree = parse_drive_query(q) if q.strip() else None
        if tree is not None:
            state.parsed_queries.append((q, tree))
        keys = _sort_key(order_by) if order_by else []
        selector = _fields(request, _DEFAULT_LIST_FIELDS)
        size = int(query.get("pageSize", "100"))
    except (QueryError, ValueError) as exc:
        return google_error(400, f"Invalid Value: {exc}", "invalid")
    if size < 1:
        return google_error(400, "Invalid Value: pageSize", "invalid")
    size = min(size, 1000)  # "values above 1000 are changed to 1000"
    if keys and tree is not None and "'fullText'" in repr(tree):
        return google_error(
            400,
            "Sorting is not supported for queries with fullText terms. Results are always in "
            "descending relevance order.",
            "invalid",
        )
    if corpora not in ("user", "drive", "allDrives", "domain"):
        return google_error(400, f"Invalid Value: corpora {corpora!r}", "invalid")
    if corpora == "drive" and not drive_id:
        return google_error(
            400,
            "The driveId parameter must be specified if and only if corpora is set to drive.",
            "invalid",
        )
    if drive_id and corpora != "drive":
        return google_error(
            400,
            "The driveId parameter must be specified if and only if corpora is set to drive.",
            "invalid",
        )
    all_drives = _bool_param(request, "includeItemsFromAllDrives")
    if corpora in ("drive", "allDrives") and not (
        all_drives and _bool_param(request, "supportsAllDrives")
    ):
        return google_error(
            403,
            "The includeItemsFromAllDrives parameter must be set to true when corpora is "
            f"{corpora}.",
            "teamDrivesParameterRequired",
        )
    if drive_id and drive_id not in state.drives:
        return google_error(404, f"Shared drive not found: {drive_id}", "notFound")
    files = list(state.files.values())
    if corpora == "drive":
        files = [f for f in files if f.drive_id == drive_id]
    elif corpora == "user" or not all_drives:
        files = [f for f in files if f.drive_id is None]
    if tree is not None:
        files = [f for f in files if matches(tree, f)]
    if keys:
        files = _sort(files, keys)
    query_key = "|".join((q, order_by, corpora, drive_id or ""))
    offset = 0
    if "pageToken" in query:
        found = _read_page_token(query["pageToken"], query_key)
        if found is None:
            return google_error(400, "Invalid Value", "invalid")
        offset = found
    page = files[offset : offset + size]
    body: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [f.resource() for f in page],
    }
    if offset + size < len(files):
        body["nextPageToken"] = _page_token(query_key, offset + size)
    return web.json_response(select(body, selector))


def _find_file(request: web.Request) -> DriveFile | web.Response:
    state = request.app[STATE_KEY]
    file_id = request.match_info["file_id"]
    file = state.files.get(file_id)
    if file is None or (
        file.drive_id is not None and not _bool_param(request, "supportsAllDrives")
    ):
        return google_error(404, f"File not found: {file_id}.", "notFound")
    return file


async def drive_get(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    media = request.query.get("alt") == "media"
    denied = _check_auth(state, request, _DRIVE_CONTENT_SCOPES if media else _DRIVE_SCOPES)
    if denied is not None:
        return denied
    found = _find_file(request)
    if isinstance(found, web.Response):
        return found
    if media:
        if found.mime_type.startswith("application/vnd.google-apps."):
            return google_error(
                403,
                "Only files with binary content can be downloaded. Use Export with Docs "
                "Editors files.",
                "fileNotDownloadable",
            )
        return web.Response(body=found.content, content_type=found.mime_type)
    try:
        selector = _fields(request, _DEFAULT_FILE_FIELDS)
    except QueryError as exc:
        return google_error(400, str(exc), "invalidParameter")
    return web.json_response(select(found.resource(), selector))


async def drive_export(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request, _DRIVE_CONTENT_SCOPES)
    if denied is not None:
        return denied
    found = _find_file(request)
    if isinstance(found, web.Response):
        return found
    wanted = request.query.get("mimeType")
    if not wanted:
        return google_error(400, "Required parameter: mimeType", "required")
    if found.mime_type not in EXPORTS:
        return google_error(403, "Export only supports Docs Editors files.", "fileNotExportable")
    if wanted not in EXPORTS[found.mime_type]:
        return google_error(400, "The requested conversion is not supported.", "badRequest")
    data = found.exports.get(wanted, b"")
    return web.Response(body=data, content_type=wanted.split(";")[0], charset="utf-8")


# -- the application ------------------------------------------------------------------------


def make_app(state: GoogleState) -> web.Application:
    app = web.Application(middlewares=[controls_middleware(state.controls)])
    app[STATE_KEY] = state
    app.router.add_post("/token", token_endpoint)
    app.router.add_get("/drive/v3/files", drive_list)
    app.router.add_get("/drive/v3/files/{file_id}", drive_get)
    app.router.add_get("/drive/v3/files/{file_id}/export", drive_export)
    _add_gmail_routes(app)
    _add_calendar_routes(app)
    return app


# -- Gmail ----------------------------------------------------------------------------------

_GMAIL_SCOPES = {
    GMAIL_READONLY,
    "https://mail.google.com/",
    "https://www.googleapis.com/auth/gmail.modify",
}
_GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"


@dataclass
class GmailMessage:
    id: str
    thread_id: str
    labels: list[str]
    internal_ms: int
    message: Message

    def payload(self, part: Message | None = None, part_id: str = "") -> dict[str, Any]:
        """Gmail's MessagePart for a MIME part: headers as sent (encoded words decoded),
        leaf bodies as base64url of their decoded transfer encoding, in their charset."""
        part = self.message if part is None else part
        data: dict[str, Any] = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": part.get_filename() or "",
            "headers": [{"name": k, "value": str(v)} for k, v in part.items()],
        }
        if part.is_multipart():
            data["body"] = {"size": 0}
            children = part.get_payload()
            assert isinstance(children, list)
            data["parts"] = [
                self.payload(child, f"{part_id}.{n}" if part_id else str(n))
                for n, child in enumerate(children)
            ]
        else:
            raw = part.get_payload(decode=True)
            assert isinstance(raw, bytes)
            data["body"] = {
                "size": len(raw),
                "data": base64.urlsafe_b64encode(raw).decode().rstrip("="),
            }
        return data

    def text(self) -> str:
        chunks = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text":
                raw = part.get_payload(decode=True)
                if isinstance(raw, bytes):
                    chunks.append(raw.decode(part.get_content_charset() or "utf-8", "replace"))
        return " ".join(
            [str(self.message.get("Subject", "")), str(self.message.get("From", "")), *chunks]
        )

    def resource(self, fmt: str, metadata_headers: list[str]) -> dict[str, Any]:
        raw = self.message.as_bytes()
        data: dict[str, Any] = {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": list(self.labels),
            "snippet": " ".join(self.text().split())[:100],
            "historyId": str(1000 + int(self.internal_ms % 997)),
            "internalDate": str(self.internal_ms),
            "sizeEstimate": len(raw),
        }
        if fmt == "raw":
            data["raw"] = base64.urlsafe_b64encode(raw).decode()
        elif fmt == "full":
            data["payload"] = self.payload()
        elif fmt == "metadata":
            headers = [{"name": k, "value": str(v)} for k, v in self.message.items()]
            if metadata_headers:
                wanted = {h.lower() for h in metadata_headers}
                headers = [h for h in headers if h["name"].lower() in wanted]
            data["payload"] = {
                "partId": "",
                "mimeType": self.message.get_content_type(),
                "filename": "",
                "headers": headers,
                "body": {"size": 0},
            }
        return data


_GMAIL_TERM = re.compile(
    r'\s*(?:(?P<op>[a-z]+):(?P<arg>"[^"]*"|[^\s()]+)|"(?P<phrase>[^"]*)"|(?P<word>[^\s()]+)|[()])'
)


def gmail_matches(q: str, message: GmailMessage) -> bool:
    """A subset of Gmail's search: words and "phrases" (in subject, from and the text parts,
    case-insensitive), from:, subject:, label:, after:/before: (epoch seconds or
    YYYY/MM/DD); parentheses group; terms are ANDed."""
    text = message.text().casefold()
    pos = 0
    while pos < len(q):
        match = _GMAIL_TERM.match(q, pos)
        if match is None or match.end() == pos:
            break
        pos = match.end()
        op, arg = match.group("op"), match.group("arg")
        if op is not None:
            arg = arg.strip('"')
            if op in ("after", "before"):
                if arg.isdigit():
                    bound = int(arg) * 1000
                else:
                    bound = int(
                        datetime.strptime(arg, "%Y/%m/%d").replace(tzinfo=UTC).timestamp() * 1000
                    )
                ok = message.internal_ms > bound if op == "after" else message.internal_ms < bound
            elif op == "from":
                ok = arg.casefold() in str(message.message.get("From", "")).casefold()
            elif op == "subject":
                ok = arg.casefold() in str(message.message.get("Subject", "")).casefold()
            elif op == "label":
                ok = arg.upper() in [label.upper() for label in message.labels]
            else:
                ok = f"{op}:{arg}".casefold() in text
        elif match.group("phrase") is not None:
            ok = match.group("phrase").casefold() in text
        elif match.group("word") is not None:
            ok = match.group("word").casefold() in _words(text)
        else:
            continue
        if not ok:
            return False
    return True


def _gmail_user(request: web.Request) -> web.Response | None:
    user = request.match_info["user"]
    if user not in ("me", request.app[STATE_KEY].gmail_user):
        return google_error(403, "Delegation denied for " + user, "forbidden")
    return None


async def gmail_list(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request, _GMAIL_SCOPES | {_GMAIL_METADATA}) or _gmail_user(request)
    if denied is not None:
        return denied
    query = request.query
    q = query.get("q", "")
    if q and not (state.tokens[request.headers["Authorization"][7:]] & _GMAIL_SCOPES):
        return google_error(403, "Metadata scope does not support 'q' parameter", "forbidden")
    try:
        size = min(int(query.get("maxResults", "100")), 500)
    except ValueError:
        return google_error(400, "Invalid maxResults", "invalidArgument")
    labels = query.getall("labelIds", [])
    spam = query.get("includeSpamTrash", "false") == "true"
    found = [
        m
        for m in sorted(state.messages.values(), key=lambda m: -m.internal_ms)
        if all(label in m.labels for label in labels)
        and (spam or not {"SPAM", "TRASH"} & set(m.labels))
        and (not q or gmail_matches(q, m))
    ]
    key = "|".join([q, ",".join(labels), str(spam)])
    offset = 0
    if "pageToken" in query:
        got = _read_page_token(query["pageToken"], key)
        if got is None:
            return google_error(400, "Invalid pageToken", "invalidArgument")
        offset = got
    page = found[offset : offset + size]
    body: dict[str, Any] = {"resultSizeEstimate": len(found)}
    if page:  # Gmail leaves "messages" out of an empty answer
        body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
    if offset + size < len(found):
        body["nextPageToken"] = _page_token(key, offset + size)
    return web.json_response(body)


async def gmail_get(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request, _GMAIL_SCOPES | {_GMAIL_METADATA}) or _gmail_user(request)
    if denied is not None:
        return denied
    state.gmail_gets += 1
    if state.gmail_get_delay:
        state.gmail_in_flight += 1
        state.gmail_max_in_flight = max(state.gmail_max_in_flight, state.gmail_in_flight)
        try:
            await asyncio.sleep(state.gmail_get_delay)
        finally:
            state.gmail_in_flight -= 1
    message = state.messages.get(request.match_info["message_id"])
    if message is None:
        return google_error(404, "Requested entity was not found.", "notFound")
    fmt = request.query.get("format", "full").lower()
    if fmt not in ("full", "metadata", "minimal", "raw"):
        return google_error(400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
    return web.json_response(message.resource(fmt, request.query.getall("metadataHeaders", [])))


def _add_gmail_routes(app: web.Application) -> None:
    app.router.add_get("/gmail/v1/users/{user}/messages", gmail_list)
    app.router.add_get("/gmail/v1/users/{user}/messages/{message_id}", gmail_get)


# -- Calendar -------------------------------------------------------------------------------

_CALENDAR_SCOPES = {
    CALENDAR_READONLY,
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events.readonly",
}
_SYNC_CONFLICTS = ("iCalUID", "orderBy", "q", "timeMin", "timeMax", "updatedMin")


@dataclass
class CalendarEvent:
    id: str
    summary: str
    start: datetime
    end: datetime
    created: datetime
    updated: datetime
    seq: int  # the state's clock when the event last changed (for sync tokens)
    description: str | None = None
    location: str | None = None
    organizer: tuple[str, str] = ("Grace Hopper", "grace@example.com")
    status: str = "confirmed"
    daily_count: int = 0  # > 0: a recurring event, "RRULE:FREQ=DAILY;COUNT=n"

    def resource(self, calendar: str) -> dict[str, Any]:
        if self.status == "cancelled":  # what Calendar keeps of a deleted event
            return {"kind": "calendar#event", "id": self.id, "status": "cancelled"}
        data: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": f'"{self.seq}"',
            "id": self.id,
            "status": self.status,
            "htmlLink": "https://www.google.com/calendar/event?eid="
            + base64.urlsafe_b64encode(f"{self.id} {calendar}".encode()).decode().rstrip("="),
            "created": rfc3339(self.created),
            "updated": rfc3339(self.updated),
            "summary": self.summary,
            "creator": {"email": self.organizer[1]},
            "organizer": {"email": self.organizer[1], "displayName": self.organizer[0]},
            "start": {"dateTime": rfc3339(self.start), "timeZone": "UTC"},
            "end": {"dateTime": rfc3339(self.end), "timeZone": "UTC"},
            "iCalUID": f"{self.id}@google.com",
            "sequence": 0,
            "eventType": "default",
        }
        if self.description is not None:
            data["description"] = self.description
        if self.location is not None:
            data["location"] = self.location
        if self.daily_count:
            data["recurrence"] = [f"RRULE:FREQ=DAILY;COUNT={self.daily_count}"]
        return data

    def instances(self, calendar: str) -> list[tuple[datetime, dict[str, Any]]]:
        """(start, resource) of each occurrence (``singleEvents=true``)."""
        if not self.daily_count or self.status == "cancelled":
            return [(self.start, self.resource(calendar))]
        out = []
        for n in range(self.daily_count):
            start = self.start + timedelta(days=n)
            data = self.resource(calendar)
            del data["recurrence"]
            stamp = start.strftime("%Y%m%dT%H%M%SZ")
            data["id"] = f"{self.id}_{stamp}"
            data["recurringEventId"] = self.id
            data["originalStartTime"] = {"dateTime": rfc3339(start), "timeZone": "UTC"}
            data["start"] = {"dateTime": rfc3339(start), "timeZone": "UTC"}
            data["end"] = {"dateTime": rfc3339(start + (self.end - self.start)), "timeZone": "UTC"}
            out.append((start, data))
        return out

    def text(self) -> str:
        return " ".join(
            [self.summary, self.description or "", self.location or "", *self.organizer]
        )


def _calendar_user(request: web.Request) -> str | None:
    calendar = request.match_info["calendar"]
    state = request.app[STATE_KEY]
    if calendar == "primary":
        return state.primary_calendar
    return calendar if calendar in state.calendars else None


def _sync_token(calendar: str, clock: int) -> str:
    raw = orjson.dumps({"c": calendar, "k": clock})
    return "CP" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def calendar_list(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request, _CALENDAR_SCOPES)
    if denied is not None:
        return denied
    calendar = _calendar_user(request)
    if calendar is None:
        return google_error(404, "Not Found", "notFound")
    query = request.query
    single = query.get("singleEvents", "false") == "true"
    show_deleted = query.get("showDeleted")
    order = query.get("orderBy")
    q = query.get("q")
    sync = query.get("syncToken")
    try:
        size = min(int(query.get("maxResults", "250")), 2500)
        updated_min = parse_time(query["updatedMin"]) if "updatedMin" in query else None
        time_min = parse_time(query["timeMin"]) if "timeMin" in query else None
        time_max = parse_time(query["timeMax"]) if "timeMax" in query else None
    except ValueError:
        return google_error(400, "Bad Request", "badRequest")
    if size < 1:
        return google_error(400, "Bad Request", "badRequest")
    if order not in (None, "startTime", "updated"):
        return google_error(400, "Invalid value for: orderBy", "invalid")
    if order == "startTime" and not single:
        return google_error(
            400, "The requested ordering is not available for the particular query.", "badRequest"
        )
    since_clock = None
    if sync is not None:
        if any(name in query for name in _SYNC_CONFLICTS) or show_deleted == "false":
            return google_error(
                400, "Sync token cannot be used with other query parameters.", "invalid"
            )
        try:
            data = orjson.loads(_b64url(sync[2:]))
            if not sync.startswith("CP") or data["c"] != calendar:
                raise ValueError
            since_clock = int(data["k"])
        except (ValueError, KeyError, TypeError):
            return google_error(400, "Invalid sync token value.", "invalid")
        if since_clock < state.sync_expired_before:
            return google_error(
                410,
                "Sync token is no longer valid, a full sync is required.",
                "fullSyncRequired",
            )
    events = state.events.get(calendar, [])
    found: list[tuple[datetime, CalendarEvent, dict[str, Any]]] = []
    for event in events:
        deleted = event.status == "cancelled"
        if since_clock is not None:
            if event.seq <= since_clock:
                continue
        elif deleted and not (
            show_deleted == "true" or (updated_min is not None and event.updated >= updated_min)
        ):
            continue
        if updated_min is not None and event.updated < updated_min:
            continue
        if q and not all(w in _words(event.text()) for w in _words(q)):
            continue
        occurrences = (
            event.instances(calendar) if single else [(event.start, event.resource(calendar))]
        )
        for start, resource in occurrences:
            end = start + (event.end - event.start)
            if time_min is not None and end <= time_min:
                continue
            if time_max is not None and start >= time_max:
                continue
            found.append((start, event, resource))
    if order == "startTime":
        found.sort(key=lambda row: row[0])
    elif order == "updated":
        found.sort(key=lambda row: row[1].updated)
    key = "|".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "pageToken")
    offset = 0
    if "pageToken" in query:
        got = _read_page_token(query["pageToken"], key)
        if got is None:
            return google_error(400, "Invalid page token value.", "invalid")
        offset = got
    page = found[offset : offset + size]
    body: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": f'"{state.clock}"',
        "summary": calendar,
        "updated": rfc3339(max((e.updated for e in events), default=datetime.now(UTC))),
        "timeZone": "UTC",
        "accessRole": "owner",
        "items": [resource for _, _, resource in page],
    }
    if offset + size < len(found):
        body["nextPageToken"] = _page_token(key, offset + size)
    else:
        body["nextSyncToken"] = _sync_token(calendar, state.clock)
    return web.json_response(body)


async def calendar_get(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    denied = _check_auth(state, request, _CALENDAR_SCOPES)
    if denied is not None:
        return denied
    calendar = _calendar_user(request)
    if calendar is None:
        return google_error(404, "Not Found", "notFound")
    wanted = request.match_info["event_id"]
    for event in state.events.get(calendar, []):
        for _, resource in [*event.instances(calendar), (event.start, event.resource(calendar))]:
            if resource["id"] == wanted:
                return web.json_response(resource)
    return google_error(404, "Not Found", "notFound")


def _add_calendar_routes(app: web.Application) -> None:
    app.router.add_get("/calendar/v3/calendars/{calendar}/events", calendar_list)
    app.router.add_get("/calendar/v3/calendars/{calendar}/events/{event_id}", calendar_get)
