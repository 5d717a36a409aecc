"""Gmail messages (``google.mail``).

``Mail(token=None, *, user="me", labels=None, format="full", include_spam_trash=False,
concurrency=10, credentials=None, credentials_file=None, subject=None, ...)``

* ``list``: ``GET /gmail/v1/users/{user}/messages`` (``users.messages.list``: message ids,
  newest first, ``maxResults`` up to 500, following ``nextPageToken``), then
  ``users.messages.get`` for every id of the page, ``concurrency`` at a time, the items
  returned in the listing's order. A message deleted between the two calls (404) is
  skipped. ``labels``: label ids every message must carry (``labelIds``, repeated).
* ``format``: ``"full"`` (default: headers and body, so ``text`` is set) or ``"metadata"``
  (headers only, with ``metadataHeaders`` Subject/From/To/Date: lighter, ``text`` is None).
* ``search(query)``: natively, ``q`` = the query in Gmail's search syntax (``from:``,
  ``subject:``, ``has:attachment``...), in parentheses when other clauses are added.
* ``since``: natively, ``after:<epoch seconds>`` in ``q`` (one second earlier than asked, as
  Gmail's ``after:`` is strict), and messages older than ``since`` (by ``internalDate``)
  are dropped from the results. No ``order``: Gmail lists newest first.
* ``get(id)``: ``users.messages.get``.

Items: ``identifier`` = message id, ``title`` = Subject, ``author`` = From, ``text`` = the
first ``text/plain`` part (base64url decoded, in its declared charset; multipart walked
depth-first; attachments skipped), else the first ``text/html`` part as text; ``created_at``
= ``internalDate``; ``url`` = ``https://mail.google.com/mail/u/<user or 0>/#all/<id>``;
``kind`` = ``"message"``. A body Gmail keeps as an attachment (``attachmentId``, very large
bodies) is not fetched: ``text`` is then None.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.header
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from ...convert import html_to_text
from ...exceptions import ConfigurationError, ItemNotFound
from ...http import Repeated, RetryPolicy
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint
from ._client import (
    GoogleRepository,
    PageToken,
    RawPage,
    positive_int,
)

__all__ = ["Mail", "message_text"]

DEFAULT_BASE_URL = "https://gmail.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/gmail.readonly",)
FORMATS = ("full", "metadata")
METADATA_HEADERS = ("Subject", "From", "To", "Date")
MAX_PAGE_SIZE = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _header(headers: Any, name: str) -> str | None:
    wanted = name.lower()
    for header in headers or ():
        if isinstance(header, dict) and str(header.get("name", "")).lower() == wanted:
            value = header.get("value")
            if not isinstance(value, str):
                return None
            if "=?" in value:  # an RFC 2047 encoded word Gmail left as it was
                try:
                    return str(email.header.make_header(email.header.decode_header(value)))
                except (ValueError, LookupError, UnicodeDecodeError):
                    return value
            return value
    return None


def _charset(part: dict[str, Any]) -> str:
    content_type = _header(part.get("headers"), "Content-Type") or ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _decode(part: dict[str, Any]) -> str | None:
    body = part.get("body") or {}
    data = body.get("data")
    if not isinstance(data, str):
        return None
    try:
        raw = _b64url(data)
    except (binascii.Error, ValueError):
        raise ValueError("a message part's body is not base64url") from None
    try:
        return raw.decode(_charset(part), "replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", "replace")


def _parts(part: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaf parts, depth-first, attachments left out."""
    children = part.get("parts")
    if isinstance(children, list) and children:
        out: list[dict[str, Any]] = []
        for child in children:
            if isinstance(child, dict):
                out.extend(_parts(child))
        return out
    if part.get("filename"):
        return []
    disposition = _header(part.get("headers"), "Content-Disposition") or ""
    return [] if disposition.lower().startswith("attachment") else [part]


def message_text(payload: Any) -> str | None:
    """The plain text of a Gmail ``payload``: the first text/plain part, else the first
    text/html part converted to text; None when the payload has neither (or no body)."""
    if not isinstance(payload, dict):
        return None
    leaves = _parts(payload)
    for wanted in ("text/plain", "text/html"):
        for part in leaves:
            if str(part.get("mimeType", "")).lower() == wanted:
                text = _decode(part)
                if text is None:
                    continue
                return html_to_text(text) if wanted == "text/html" else text
    return None


class Mail(GoogleRepository):
    """Messages of a Gmail mailbox (see the module docstring)."""

    name: ClassVar[str] = "google.mail"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        max_page_size=MAX_PAGE_SIZE,
    )
    default_page_size = 100

    def __init__(
        self,
        token: str | None = None,
        *,
        user: str = "me",
        labels: Sequence[str] | str | None = None,
        format: str = "full",
        include_spam_trash: bool = False,
        concurrency: int = 10,
        credentials: Any = None,
        credentials_file: str | os.PathLike[str] | None = None,
        subject: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        scopes: Sequence[str] = SCOPES,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
    ) -> None:
        if not isinstance(user, str) or not user.strip():
            raise ConfigurationError("user must be 'me' or an email address", source=self.name)
        if format not in FORMATS:
            raise ConfigurationError(
                f"format must be one of {', '.join(FORMATS)}, not {format!r}", source=self.name
            )
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        self.user = user.strip()
        self.labels = tuple(labels or ())
        self.format = format
        self.include_spam_trash = bool(include_spam_trash)
        self.concurrency = positive_int(concurrency, "concurrency", self.name)
        self.connect(
            base_url,
            token=token,
            credentials=credentials,
            credentials_file=credentials_file,
            subject=subject,
            scopes=scopes,
            retry=retry,
            timeout=timeout,
            max_connections=max(
                positive_int(max_connections, "max_connections", self.name), self.concurrency
            ),
        )
        self._gate: asyncio.Semaphore | None = None
        self._messages = f"/gmail/v1/users/{quote(self.user, safe='@')}/messages"

    def scope(self) -> Any:
        return {"user": self.user, "labels": list(self.labels), "spam": self.include_spam_trash}

    # -- listing --------------------------------------------------------------------------

    def query(self, request: PageRequest) -> str | None:
        clauses: list[str] = []
        if request.query is not None:
            clauses.append(f"({request.query})" if request.since is not None else request.query)
        if request.since is not None:
            seconds = (request.since - _EPOCH) // timedelta(seconds=1)
            clauses.append(f"after:{max(0, seconds - 1)}")
        return " ".join(clauses) or None

    def endpoint(self, request: PageRequest) -> Endpoint:
        path = self._messages
        params: dict[str, Any] = {}
        if self.labels:
            params["labelIds"] = Repeated(self.labels)  # labelIds=A&labelIds=B
        q = self.query(request)
        if q:
            params["q"] = q
        if self.include_spam_trash:
            params["includeSpamTrash"] = True
        return Endpoint(
            path,
            params=params,
            records=lambda body: body.get("messages", []) if isinstance(body, dict) else None,
            paginator=PageToken("maxResults"),
        )

    async def build(self, request: PageRequest, page: RawPage) -> Batch:
        """The page's messages, fetched concurrently (while the next id page is listed)."""
        try:
            ids = [str(record["id"]) for record in page.records]
        except (KeyError, TypeError) as exc:
            raise self.malformed_record(page.response, exc) from None
        items = await self._messages_of(ids)
        if request.since is not None:
            since = request.since
            items = [i for i in items if i.created_at is None or i.created_at >= since]
        return Batch(items, page.next_state)

    async def _messages_of(self, ids: list[str]) -> list[Item]:
        gate = self._gate
        if gate is None:  # one bound for the repository: prefetched pages share it
            gate = self._gate = asyncio.Semaphore(self.concurrency)

        async def one(message_id: str) -> Item | None:
            async with gate:
                try:
                    return await self._get(message_id)
                except ItemNotFound:
                    return None  # deleted since the listing

        found = await asyncio.gather(*(one(i) for i in ids))
        return [item for item in found if item is not None]

    def _get_params(self) -> dict[str, Any] | str:
        if self.format == "metadata":
            return "?" + urlencode(
                [("format", "metadata"), *(("metadataHeaders", h) for h in METADATA_HEADERS)]
            )
        return {"format": "full"}

    async def _get(self, message_id: str) -> Item:
        params = self._get_params()
        path = f"{self._messages}/{quote(message_id, safe='')}"
        if isinstance(params, str):
            return await self.get_item(path + params, message_id)
        return await self.get_item(path, message_id, params=params)

    async def get(self, identifier: str) -> Item:
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        item = await self._get(wanted)
        missing = [label for label in self.labels if label not in (item.raw.get("labelIds") or [])]
        if missing:
            raise self.not_found(wanted, f"it does not carry label(s) {', '.join(missing)}")
        return item

    def to_item(self, raw: Any) -> Item:
        payload = raw.get("payload") or {}
        headers = payload.get("headers")
        internal = raw.get("internalDate")
        created = (
            datetime.fromtimestamp(int(internal) / 1000, UTC) if internal is not None else None
        )
        account = self.user if self.user != "me" else "0"
        identifier = str(raw["id"])
        return Item(
            identifier,
            raw,
            self,
            title=_header(headers, "Subject"),
            text=message_text(payload) if self.format == "full" else None,
            url=f"https://mail.google.com/mail/u/{quote(account, safe='@')}/#all/{identifier}",
            created_at=created,
            author=_header(headers, "From"),
            kind="message",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} user={self.user!r}>"
