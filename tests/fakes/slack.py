"""A fake Slack Web API (``https://slack.com/api``) on 127.0.0.1.

Written from Slack's OpenAPI description (``slackapi/slack-api-specs``,
``web-api/slack_web_openapi_v2.json``, MIT; see ``tests/fakes/slack_spec/``) and Slack's
method documentation. ``make_app(SlackState)`` builds the aiohttp app; ``make_dataset()`` a
deterministic workspace. Methods answer ``GET`` (query parameters) and ``POST`` (form), at
``/api/<method>``:

* ``auth.test``, ``conversations.list``, ``conversations.info``, ``conversations.history``,
  ``conversations.replies``, ``users.list``, ``users.info``, ``search.messages``,
  ``chat.getPermalink``. Any other method: HTTP 404 ``unknown_method``.
* Tokens: ``Authorization: Bearer <token>`` or a ``token`` parameter. None:
  ``not_authed``; unknown: ``invalid_auth``; revoked: ``token_revoked``. Bot tokens
  (``xoxb-``) and user tokens (``xoxp-``) differ as on Slack: ``search.messages`` refuses
  bot tokens (``not_allowed_token_type``); a bot reads the history of a channel only as a
  member (``not_in_channel``); private channels exist only for their members. A token
  without the method's scope gets ``missing_scope`` with ``needed`` and ``provided``; the
  email of a profile is shown only with ``users:read.email``.
* Every failure but rate limits is HTTP 200 with ``{"ok": false, "error": "<code>"}``.
  Rate limits (``SlackState.rate_limits``: method -> (requests, seconds), per token, sliding
  window) answer HTTP 429 with ``Retry-After`` (whole seconds) and
  ``{"ok": false, "error": "ratelimited"}``.
* Cursor pagination: ``limit`` + ``cursor``; the next cursor is in
  ``response_metadata.next_cursor`` (``""`` on the last page of the list methods; history
  and replies leave ``response_metadata`` out on their last page). Cursors look like
  Slack's (base64 of ``team:C…``, ``user:U…``, ``next_ts:…``); a cursor the fake did not
  make answers ``invalid_cursor``. ``conversations.list`` applies ``exclude_archived`` after
  cutting the page, so a page may be short, even empty, with a cursor (Slack documents
  that fewer items than ``limit`` may come back before the end).
* ``conversations.history``: newest first; ``oldest``/``latest``/``inclusive``; with
  ``oldest`` and no ``latest`` (and no cursor) the page is the messages closest to
  ``oldest`` (still newest first), so a client can walk forward. Thread replies are not in
  the history, only their parent (with ``reply_count``, ``reply_users``, ``latest_reply``).
  ``limit`` defaults to 100 and is capped at 999.
* ``conversations.replies``: the parent first on *every* page, then the replies oldest
  first (cursor over the replies). A ``ts`` that is a reply, or a message without replies,
  answers just that message.
* ``search.messages``: ``query`` words (case-insensitive, all must occur), ``in:#name``,
  ``in:<#C…>``, ``from:<@U…>``, ``after:``/``before:``/``on:`` ``YYYY-MM-DD`` (exclusive,
  UTC days); ``count`` (default 20, at most 100) and ``page`` (at most 100 pages);
  ``sort=timestamp`` or ``score`` (the fake cannot score: newest first); ``sort_dir``.
  Matches have the shape of the spec's example (``channel`` object, ``permalink``, ``iid``).

Hostile modes for tests: ``SlackState.cyclic_cursor`` (methods whose next cursor
alternates between two values forever), ``endless_cursor`` (a fresh cursor every time, with
the first page again), ``search_pages`` (a lying ``paging.pages``) and
``FakeControls.inject``.
"""

from __future__ import annotations

import base64
import bisect
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from ._common import FakeControls, controls_middleware

USER_TOKEN = "xoxp-1111-2222-3333-usertoken"
BOT_TOKEN = "xoxb-1111-4444-bottoken"
ALL_SCOPES = frozenset(
    {
        "channels:read",
        "groups:read",
        "im:read",
        "mpim:read",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "users:read",
        "users:read.email",
        "search:read",
        "team:read",
    }
)
BOT_SCOPES = ALL_SCOPES - {"search:read"}
LIST_MAX = 1000
HISTORY_MAX = 999
SEARCH_MAX_COUNT = 100
SEARCH_MAX_PAGES = 100


@dataclass
class Token:
    kind: str  # "bot" or "user"
    user_id: str
    scopes: frozenset[str] = ALL_SCOPES
    revoked: bool = False
    bot_id: str | None = None


@dataclass
class SlackState:
    team_id: str = "T0ASYNC01"
    team_name: str = "Asyncrepo"
    domain: str = "asyncrepo"
    tokens: dict[str, Token] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    members: dict[str, set[str]] = field(default_factory=dict)  # channel id -> user ids
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # ts ascending
    rate_limits: dict[str, tuple[int, float]] = field(default_factory=dict)
    cyclic_cursor: set[str] = field(default_factory=set)
    endless_cursor: set[str] = field(default_factory=set)  # a fresh cursor, the same page
    search_pages: int | None = None  # a lying paging.pages for search.messages
    controls: FakeControls = field(default_factory=FakeControls)
    clock: Callable[[], float] = time.time
    _calls: dict[tuple[str, str], deque[float]] = field(default_factory=dict, repr=False)
    _next_ts: int = 1_700_000_000_000_000  # microseconds

    @property
    def url(self) -> str:
        return f"https://{self.domain}.slack.com/"

    # -- building ---------------------------------------------------------------------------
    def add_user(self, name: str, real_name: str, **extra: Any) -> dict[str, Any]:
        uid = extra.pop("id", None) or f"U{len(self.users) + 1:08d}"
        profile = {
            "avatar_hash": f"g{len(self.users):011x}",
            "display_name": extra.pop("display_name", name),
            "display_name_normalized": name,
            "email": extra.pop("email", f"{name}@example.com"),
            "fields": None,
            "first_name": real_name.split()[0],
            "image_72": f"https://avatars.example.com/{uid}_72.png",
            "last_name": real_name.split()[-1],
            "phone": "",
            "real_name": real_name,
            "real_name_normalized": real_name,
            "skype": "",
            "status_emoji": "",
            "status_text": "",
            "team": self.team_id,
            "title": extra.pop("title", ""),
        }
        user = {
            "id": uid,
            "team_id": self.team_id,
            "name": name,
            "deleted": extra.pop("deleted", False),
            "color": "9f69e7",
            "real_name": real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": extra.pop("is_bot", False),
            "is_app_user": False,
            "updated": extra.pop("updated", 1_690_000_000 + 3_600 * len(self.users)),
            **extra,
        }
        self.users.append(user)
        return user

    def add_channel(
        self,
        name: str,
        *,
        private: bool = False,
        archived: bool = False,
        members: set[str] | None = None,
        topic: str = "",
        purpose: str = "",
        cid: str | None = None,
    ) -> dict[str, Any]:
        cid = cid or f"{'G' if private else 'C'}{len(self.channels) + 1:08d}"
        creator = self.users[0]["id"] if self.users else "U00000001"
        channel: dict[str, Any] = {
            "id": cid,
            "name": name,
            "name_normalized": name,
            "created": 1_600_000_000 + 86_400 * len(self.channels),
            "creator": creator,
            "is_archived": archived,
            "is_channel": not private,
            "is_general": name == "general",
            "is_group": private,
            "is_im": False,
            "is_mpim": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "is_private": private,
            "is_shared": False,
            "pending_shared": [],
            "previous_names": [],
            "unlinked": 0,
            "topic": {"value": topic, "creator": creator if topic else "", "last_set": 0},
            "purpose": {"value": purpose, "creator": creator if purpose else "", "last_set": 0},
        }
        self.channels.append(channel)
        self.members[cid] = set(members or ())
        self.messages[cid] = []
        return channel

    def post(
        self,
        channel: str,
        text: str,
        user: str | None = None,
        *,
        thread_ts: str | None = None,
        ts: str | None = None,
        bot: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        if ts is None:
            self._next_ts += 1_000_123
            ts = f"{self._next_ts // 1_000_000}.{self._next_ts % 1_000_000:06d}"
        message: dict[str, Any] = {"type": "message", "text": text, "ts": ts}
        if bot:
            message.update(subtype="bot_message", bot_id="B0BOT0001", username="deploybot")
        else:
            message["user"] = user or self.users[0]["id"]
            message["team"] = self.team_id
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            if not bot:
                parent = self.message(channel, thread_ts)
                assert parent is not None, "no such thread parent"
                parent.setdefault("thread_ts", thread_ts)  # a parent carries its own ts
                message["parent_user_id"] = parent.get("user") or "U00000001"
        message.update(extra)
        messages = self.messages[channel]
        if not messages or _ts_key(messages[-1]["ts"]) < _ts_key(ts):
            messages.append(message)  # the usual case: a new message is the newest
        else:
            keys = [_ts_key(m["ts"]) for m in messages]
            messages.insert(bisect.bisect(keys, _ts_key(ts)), message)
        return message

    # -- lookups ----------------------------------------------------------------------------
    def channel(self, cid: str) -> dict[str, Any] | None:
        return next((c for c in self.channels if c["id"] == cid), None)

    def user(self, uid: str) -> dict[str, Any] | None:
        return next((u for u in self.users if u["id"] == uid), None)

    def message(self, cid: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(cid, ()) if m["ts"] == ts), None)

    def replies(self, cid: str, parent_ts: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages.get(cid, ())
            if m.get("thread_ts") == parent_ts and m["ts"] != parent_ts
        ]

    def top_level(self, cid: str) -> list[dict[str, Any]]:
        """History: messages not in a thread, thread parents and broadcast replies."""
        return [
            m
            for m in self.messages.get(cid, ())
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]

    def visible(self, token: Token, channel: dict[str, Any]) -> bool:
        return not channel["is_private"] or token.user_id in self.members[channel["id"]]

    def permalink(self, cid: str, message: dict[str, Any]) -> str:
        url = f"{self.url}archives/{cid}/p{message['ts'].replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            url += f"?thread_ts={thread_ts}&cid={cid}"
        return url


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros.ljust(6, "0")[:6] or 0)


_TS_RE = re.compile(r"^\d{1,12}(\.\d{1,6})?$")


class SlackError(Exception):
    def __init__(self, code: str, status: int = 200, **extra: Any) -> None:
        self.code = code
        self.status = status
        self.extra = extra
        super().__init__(code)


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def _cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _read_cursor(cursor: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    try:
        kind, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    if kind not in kinds or not value:
        raise SlackError("invalid_cursor")
    return kind, value


def _limit(params: dict[str, str], default: int, cap: int) -> int:
    raw = params.get("limit", "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SlackError("invalid_limit") from None
    return default if value <= 0 else min(value, cap)


def _bool(params: dict[str, str], name: str) -> bool:
    return params.get(name, "").lower() in ("true", "1")


def _ts_param(params: dict[str, str], name: str, error: str) -> tuple[int, int] | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _TS_RE.match(raw):
        raise SlackError(error)
    return _ts_key(raw)


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------

Method = Callable[[SlackState, Token, dict[str, str]], Awaitable[dict[str, Any]]]


def make_app(state: SlackState) -> web.Application:
    app = web.Application(middlewares=[controls_middleware(state.controls)])

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"]
        method = METHODS.get(name)
        if method is None:
            return _json({"ok": False, "error": "unknown_method", "req_method": name}, 404)
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        try:
            token = _authenticate(state, request, params)
            limited = _rate_limited(state, name, token)
            if limited is not None:
                return _json(
                    {"ok": False, "error": "ratelimited"},
                    429,
                    headers={"Retry-After": str(limited)},
                )
            body = await method(state, token, params)
        except SlackError as exc:
            return _json({"ok": False, "error": exc.code, **exc.extra}, exc.status)
        return _json({"ok": True, **body})

    app.router.add_route("GET", "/api/{method}", handle)
    app.router.add_route("POST", "/api/{method}", handle)
    return app


def _authenticate(state: SlackState, request: web.Request, params: dict[str, str]) -> Token:
    header = request.headers.get("Authorization", "")
    value = header[7:].strip() if header.startswith("Bearer ") else params.get("token", "")
    if not value:
        raise SlackError("not_authed")
    token = state.tokens.get(value)
    if token is None:
        raise SlackError("invalid_auth")
    if token.revoked:
        raise SlackError("token_revoked")
    return token


def _rate_limited(state: SlackState, method: str, token: Token) -> int | None:
    rule = state.rate_limits.get(method)
    if rule is None:
        return None
    allowed, window = rule
    now = time.monotonic()
    calls = state._calls.setdefault((method, token.user_id), deque())
    while calls and calls[0] <= now - window:
        calls.popleft()
    if len(calls) >= allowed:
        return max(1, math.ceil(calls[0] + window - now))
    calls.append(now)
    return None


def _need(token: Token, *scopes: str) -> None:
    """The token needs one of ``scopes``."""
    if not any(scope in token.scopes for scope in scopes):
        raise SlackError(
            "missing_scope", needed=",".join(scopes), provided=",".join(sorted(token.scopes))
        )


def _visible_channel(state: SlackState, token: Token, params: dict[str, str]) -> dict[str, Any]:
    channel = state.channel(params.get("channel", ""))
    if channel is None or not state.visible(token, channel):
        raise SlackError("channel_not_found")
    return channel


def _history_scope(token: Token, channel: dict[str, Any]) -> None:
    _need(token, "groups:history" if channel["is_private"] else "channels:history")


def _next(state: SlackState, method: str, params: dict[str, str], cursor: str | None) -> str | None:
    """The hostile modes: a next cursor that alternates between two values, or a fresh one
    every time (with the first page again)."""
    if method in state.endless_cursor:
        return _cursor("team", f"X{uuid.uuid4().hex.upper()}")
    if method not in state.cyclic_cursor:
        return cursor
    first, second = _cursor("team", "CYCLEA"), _cursor("team", "CYCLEB")
    return second if params.get("cursor") == first else first


def _hostile(state: SlackState, method: str) -> bool:
    return method in state.cyclic_cursor or method in state.endless_cursor


async def auth_test(state: SlackState, token: Token, params: dict[str, str]) -> dict[str, Any]:
    user = state.user(token.user_id)
    body: dict[str, Any] = {
        "url": state.url,
        "team": state.team_name,
        "user": user["name"] if user else "bot",
        "team_id": state.team_id,
        "user_id": token.user_id,
    }
    if token.bot_id:
        body["bot_id"] = token.bot_id
        body["is_enterprise_install"] = False
    return body


async def conversations_list(
    state: SlackState, token: Token, params: dict[str, str]
) -> dict[str, Any]:
    types = [t.strip() for t in params.get("types", "public_channel").split(",") if t.strip()]
    for kind in types:
        if kind not in ("public_channel", "private_channel", "mpim", "im"):
            raise SlackError("invalid_types")
    if "public_channel" in types:
        _need(token, "channels:read")
    if "private_channel" in types:
        _need(token, "groups:read")
    wanted = [
        c
        for c in state.channels
        if (("private_channel" in types) if c["is_private"] else ("public_channel" in types))
        and state.visible(token, c)
    ]
    limit = _limit(params, 100, LIST_MAX)
    start = 0
    if params.get("cursor") and not _hostile(state, "conversations.list"):
        _, cid = _read_cursor(params["cursor"], ("team",))
        ids = [c["id"] for c in wanted]
        if cid not in ids:
            raise SlackError("invalid_cursor")
        start = ids.index(cid)
    page = [_for_token(state, token, c) for c in wanted[start : start + limit]]
    more = start + limit < len(wanted)
    if _bool(params, "exclude_archived"):
        page = [c for c in page if not c["is_archived"]]  # after cutting the page, as Slack
    cursor = _cursor("team", wanted[start + limit]["id"]) if more else None
    cursor = _next(state, "conversations.list", params, cursor)
    return {"channels": page, "response_metadata": {"next_cursor": cursor or ""}}


async def conversations_info(
    state: SlackState, token: Token, params: dict[str, str]
) -> dict[str, Any]:
    channel = _visible_channel(state, token, params)
    _need(token, "groups:read" if channel["is_private"] else "channels:read")
    return {"channel": {**_for_token(state, token, channel), "last_read": "0000000000.000000"}}


def _for_token(state: SlackState, token: Token, channel: dict[str, Any]) -> dict[str, Any]:
    """A conversation as a token sees it: ``is_member`` is the token's own membership."""
    return {**channel, "is_member": token.user_id in state.members[channel["id"]]}


def _with_thread_fields(state: SlackState, cid: str, message: dict[str, Any]) -> dict[str, Any]:
    if message.get("thread_ts") != message["ts"]:
        return message
    replies = state.replies(cid, message["ts"])
    if not replies:
        return message
    users = list(dict.fromkeys(r["user"] for r in replies if r.get("user")))
    return {
        **message,
        "reply_count": len(replies),
        "reply_users": users,
        "reply_users_count": len(users),
        "latest_reply": replies[-1]["ts"],
        "subscribed": False,
    }


def _in_range(
    key: tuple[int, int],
    oldest: tuple[int, int] | None,
    latest: tuple[int, int] | None,
    inclusive: bool,
) -> bool:
    if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
        return False
    return latest is None or key < latest or (key == latest and inclusive)


async def conversations_history(
    state: SlackState, token: Token, params: dict[str, str]
) -> dict[str, Any]:
    channel = _visible_channel(state, token, params)
    _history_scope(token, channel)
    cid = channel["id"]
    if token.kind == "bot" and token.user_id not in state.members[cid]:
        raise SlackError("not_in_channel")
    oldest = _ts_param(params, "oldest", "invalid_ts_oldest")
    latest = _ts_param(params, "latest", "invalid_ts_latest")
    inclusive = _bool(params, "inclusive")
    limit = _limit(params, 100, HISTORY_MAX)
    candidates = [
        m for m in state.top_level(cid) if _in_range(_ts_key(m["ts"]), oldest, latest, inclusive)
    ]
    forward = oldest is not None and latest is None
    if params.get("cursor") and not _hostile(state, "conversations.history"):
        kind, value = _read_cursor(params["cursor"], ("next_ts", "prev_ts"))
        if not value.isdigit():
            raise SlackError("invalid_cursor")
        bound = (int(value) // 1_000_000, int(value) % 1_000_000)
        forward = kind == "prev_ts"
        if forward:
            candidates = [m for m in candidates if _ts_key(m["ts"]) >= bound]
        else:
            candidates = [m for m in candidates if _ts_key(m["ts"]) <= bound]
    if forward:
        page, rest = candidates[:limit], candidates[limit:]
        marker = "prev_ts"
        page.reverse()  # newest first, as always
    else:
        candidates.reverse()
        page, rest = candidates[:limit], candidates[limit:]
        marker = "next_ts"
    body: dict[str, Any] = {
        "messages": [_with_thread_fields(state, cid, m) for m in page],
        "has_more": bool(rest),
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
    }
    cursor = _cursor(marker, rest[0]["ts"].replace(".", "")) if rest else None
    cursor = _next(state, "conversations.history", params, cursor)
    if cursor:
        body["response_metadata"] = {"next_cursor": cursor}
    return body


async def conversations_replies(
    state: SlackState, token: Token, params: dict[str, str]
) -> dict[str, Any]:
    channel = _visible_channel(state, token, params)
    _history_scope(token, channel)
    cid = channel["id"]
    if token.kind == "bot" and token.user_id not in state.members[cid]:
        raise SlackError("not_in_channel")
    ts = params.get("ts", "")
    message = state.message(cid, ts) if ts else None
    if message is None:
        raise SlackError("thread_not_found")
    replies = state.replies(cid, ts) if message.get("thread_ts") == ts else []
    if not replies:  # a reply, or a message without a thread: just that message
        return {"messages": [_with_thread_fields(state, cid, message)], "has_more": False}
    oldest = _ts_param(params, "oldest", "invalid_ts_oldest")
    latest = _ts_param(params, "latest", "invalid_ts_latest")
    inclusive = _bool(params, "inclusive")
    replies = [r for r in replies if _in_range(_ts_key(r["ts"]), oldest, latest, inclusive)]
    if params.get("cursor"):
        _, value = _read_cursor(params["cursor"], ("next_ts",))
        if not value.isdigit():
            raise SlackError("invalid_cursor")
        bound = (int(value) // 1_000_000, int(value) % 1_000_000)
        replies = [r for r in replies if _ts_key(r["ts"]) >= bound]
    limit = _limit(params, 10, LIST_MAX)
    page, rest = replies[: max(1, limit - 1)], replies[max(1, limit - 1) :]
    body: dict[str, Any] = {
        "messages": [_with_thread_fields(state, cid, message), *page],
        "has_more": bool(rest),
    }
    if rest:
        body["response_metadata"] = {
            "next_cursor": _cursor("next_ts", rest[0]["ts"].replace(".", ""))
        }
    return body


def _shown_user(token: Token, user: dict[str, Any]) -> dict[str, Any]:
    if "users:read.email" in token.scopes:
        return user
    profile = {k: v for k, v in user["profile"].items() if k != "email"}
    return {**user, "profile": profile}


async def users_list(state: SlackState, token: Token, params: dict[str, str]) -> dict[str, Any]:
    _need(token, "users:read")
    limit = _limit(params, 0, LIST_MAX)
    start = 0
    if params.get("cursor") and not _hostile(state, "users.list"):
        _, uid = _read_cursor(params["cursor"], ("user",))
        ids = [u["id"] for u in state.users]
        if uid not in ids:
            raise SlackError("invalid_cursor")
        start = ids.index(uid)
    end = len(state.users) if limit == 0 else start + limit
    page = state.users[start:end]
    cursor = _cursor("user", state.users[end]["id"]) if end < len(state.users) else None
    cursor = _next(state, "users.list", params, cursor)
    return {
        "members": [_shown_user(token, u) for u in page],
        "cache_ts": int(state.clock()),
        "response_metadata": {"next_cursor": cursor or ""},
    }


async def users_info(state: SlackState, token: Token, params: dict[str, str]) -> dict[str, Any]:
    _need(token, "users:read")
    user = state.user(params.get("user", ""))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": _shown_user(token, user)}


async def chat_get_permalink(
    state: SlackState, token: Token, params: dict[str, str]
) -> dict[str, Any]:
    channel = _visible_channel(state, token, params)
    message = state.message(channel["id"], params.get("message_ts", ""))
    if message is None:
        raise SlackError("message_not_found")
    return {"channel": channel["id"], "permalink": state.permalink(channel["id"], message)}


_SEARCH_TOKEN = re.compile(r'"[^"]*"|\S+')
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: str) -> datetime:
    if not _DAY.match(value):
        raise SlackError("invalid_search_date")  # our wording; Slack ignores bad dates
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


async def search_messages(
    state: SlackState, token: Token, params: dict[str, str]
) -> dict[str, Any]:
    if token.kind == "bot":
        raise SlackError("not_allowed_token_type")
    _need(token, "search:read")
    query = params.get("query", "").strip()
    if not query:
        raise SlackError("No query passed")  # sic: the spec's own example
    words: list[str] = []
    channels: set[str] | None = None
    authors: set[str] | None = None
    after: datetime | None = None
    before: datetime | None = None
    for part in _SEARCH_TOKEN.findall(query):
        lower = part.lower()
        if lower.startswith("in:"):
            target = part[3:]
            found = {
                c["id"]
                for c in state.channels
                if target in (f"#{c['name']}", c["name"], f"<#{c['id']}>")
                or target.startswith(f"<#{c['id']}|")
            }
            channels = found if channels is None else channels & found
        elif lower.startswith("from:"):
            target = part[5:].strip("<>@")
            authors = {u["id"] for u in state.users if target in (u["id"], u["name"])}
        elif lower.startswith("after:"):
            after = _day(part[6:]) + timedelta(days=1)
        elif lower.startswith("before:"):
            before = _day(part[7:])
        elif lower.startswith("on:"):
            after, before = _day(part[3:]), _day(part[3:]) + timedelta(days=1)
        else:
            words.append(part.strip('"').lower())
    matches: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for channel in state.channels:
        if not state.visible(token, channel):
            continue
        if channels is not None and channel["id"] not in channels:
            continue
        for message in state.messages[channel["id"]]:
            text = message["text"].lower()
            if not all(word in text for word in words):
                continue
            if authors is not None and message.get("user") not in authors:
                continue
            when = datetime.fromtimestamp(_ts_key(message["ts"])[0], UTC)
            if (after is not None and when < after) or (before is not None and when >= before):
                continue
            matches.append((channel, message))
    ascending = params.get("sort_dir", "desc").lower() == "asc"
    matches.sort(key=lambda pair: _ts_key(pair[1]["ts"]), reverse=not ascending)
    try:
        count = min(max(1, int(params.get("count") or 20)), SEARCH_MAX_COUNT)
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        raise SlackError("invalid_arguments") from None
    total = len(matches)
    pages = min(max(1, math.ceil(total / count)), SEARCH_MAX_PAGES)
    if state.search_pages is not None:
        pages = state.search_pages
    chosen = matches[(page - 1) * count : page * count] if page <= pages else []
    users = {u["id"]: u for u in state.users}
    shaped = []
    for channel, message in chosen:
        user = users.get(message.get("user", ""))
        shaped.append(
            {
                "channel": {
                    "id": channel["id"],
                    "is_ext_shared": False,
                    "is_mpim": False,
                    "is_org_shared": False,
                    "is_pending_ext_shared": False,
                    "is_private": channel["is_private"],
                    "is_shared": False,
                    "name": channel["name"],
                    "pending_shared": [],
                },
                "iid": str(uuid.uuid5(uuid.NAMESPACE_URL, channel["id"] + message["ts"])),
                "permalink": state.permalink(channel["id"], message),
                "team": state.team_id,
                "text": message["text"],
                "ts": message["ts"],
                "type": "message",
                "user": message.get("user", ""),
                "username": user["name"] if user else message.get("username", ""),
            }
        )
    first = (page - 1) * count + 1 if chosen else 0
    return {
        "query": query,
        "messages": {
            "matches": shaped,
            "pagination": {
                "first": first,
                "last": first + len(chosen) - 1 if chosen else 0,
                "page": page,
                "page_count": pages,
                "per_page": count,
                "total_count": total,
            },
            "paging": {"count": count, "page": page, "pages": pages, "total": total},
            "total": total,
        },
    }


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "conversations.list": conversations_list,
    "conversations.info": conversations_info,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "users.list": users_list,
    "users.info": users_info,
    "chat.getPermalink": chat_get_permalink,
    "search.messages": search_messages,
}


# --------------------------------------------------------------------------------------------
# Data set
# --------------------------------------------------------------------------------------------

_NAMES = [
    ("ann", "Ann Archer", "Engineering Manager"),
    ("bob", "Bob Baker", "Backend Engineer"),
    ("cleo", "Cleo Carter", "Designer"),
    ("dev", "Dev Dhar", "Site Reliability Engineer"),
    ("eve", "Eve Evans", "Product Manager"),
    ("finn", "Finn Foster", "Support"),
    ("gia", "Gia Gomez", "Data Scientist"),
    ("hal", "Hal Hughes", "Recruiter"),
]
_WORDS = [
    *("deploy", "release", "incident", "search", "index", "latency", "cache", "budget"),
    *("review", "design", "roadmap", "database", "migration", "pager", "alert", "metrics"),
    *("dashboard", "customer", "invoice", "onboarding"),
]


def make_dataset(
    messages_per_channel: int = 40,
    *,
    seed: int = 0,
    thread_every: int = 7,
    replies_per_thread: int = 3,
    extra_channels: int = 0,
) -> SlackState:
    """A workspace: 8 people and a bot user; channels ``general``, ``random``,
    ``engineering`` (private: ann, bob and the bot), ``old-project`` (archived),
    ``ops`` (the bot is a member) and ``extra_channels`` more; ``messages_per_channel``
    top-level messages in each (fewer in ``old-project``), every ``thread_every``-th a
    thread with ``replies_per_thread`` replies, with Slack markup here and there.
    Tokens: ``USER_TOKEN`` (ann, every scope) and ``BOT_TOKEN`` (no ``search:read``)."""
    rng = random.Random(seed)
    state = SlackState()
    people = [state.add_user(n, r, title=t) for n, r, t in _NAMES]
    bot = state.add_user("deploybot", "Deploy Bot", is_bot=True, id="UBOT00001")
    state.tokens[USER_TOKEN] = Token("user", people[0]["id"])
    state.tokens[BOT_TOKEN] = Token("bot", bot["id"], scopes=BOT_SCOPES, bot_id="B0BOT0001")
    everyone = {u["id"] for u in people}
    specs = [
        ("general", False, False, everyone, "Company-wide announcements", "Everyone is here"),
        ("random", False, False, everyone, "Water cooler", "Non-work banter"),
        (
            "engineering",
            True,
            False,
            {people[0]["id"], people[1]["id"], bot["id"]},
            "Build",
            "Private engineering talk",
        ),
        ("old-project", False, True, everyone, "", "Archived work"),
        ("ops", False, False, everyone | {bot["id"]}, "On call", "Deploys & incidents"),
    ]
    specs += [(f"team-{i:02d}", False, False, everyone, "", "") for i in range(extra_channels)]
    for name, private, archived, members, topic, purpose in specs:
        channel = state.add_channel(
            name, private=private, archived=archived, members=members, topic=topic, purpose=purpose
        )
        count = messages_per_channel // 4 if archived else messages_per_channel
        for i in range(count):
            author = rng.choice(people)
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
            text = f"{words} #{i} in {name}"
            if i % 5 == 1:
                text = f"<@{rng.choice(people)['id']}> please look at {words}"
            elif i % 5 == 2:
                link = f"<https://docs.example.com/{i}|the runbook>"
                text = f"see {link} &amp; <#{channel['id']}|{name}>"
            elif i % 5 == 3:
                text = f"{words}\nsecond line &lt;b&gt; with x &gt; y"
            if i % 11 == 10:
                message = state.post(channel["id"], f"deployed build {i}", bot=True)
            else:
                message = state.post(channel["id"], text, author["id"])
            if thread_every and i % thread_every == thread_every - 1:
                for j in range(replies_per_thread):
                    state.post(
                        channel["id"],
                        f"reply {j} to {i}: {rng.choice(_WORDS)}",
                        rng.choice(people)["id"],
                        thread_ts=message["ts"],
                    )
    return state
