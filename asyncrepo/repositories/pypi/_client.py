"""What the PyPI source needs besides the shared transport: name normalisation (PEP 503),
content negotiation (PEP 691), incremental parsers of the Simple API's project list (JSON
by orjson over runs of whole entries, with ijson's C parser as the fallback; HTML through
``html.parser``), and the updates feed (RSS).

The project list of a large index is one document (about 600,000 entries on the public
index): it is parsed as its bytes arrive, each run of projects handed on at once, and
never held whole.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from xml.etree import ElementTree

import ijson  # type: ignore[import-untyped]  # the pypi extra
import orjson

from ...exceptions import ConfigurationError

__all__ = [
    "ACCEPT",
    "CappedReader",
    "HTMLProjects",
    "ParseError",
    "default_index",
    "json_errors",
    "json_projects",
    "normalize",
    "parse_feed",
    "simple_format",
]


def default_index() -> tuple[str, str | None, str | None]:
    """``(index_url, json_url, rss_url)`` when none is given: the index pip installs from.

    ``PIP_INDEX_URL`` if set (a mirror: its JSON API and feed are unknown, so ``None``),
    else pip's own default, the public index, with its JSON API and updates feed. The
    address comes from pip, which every Python environment has, so asyncrepo carries no
    registry address of its own."""
    configured = os.environ.get("PIP_INDEX_URL", "").strip()
    public = _pip_default()
    if configured and (public is None or configured.rstrip("/") != public[0]):
        return configured.rstrip("/"), None, None
    if public is None:
        raise ConfigurationError(
            "no index given and pip, which knows the default one, is not installed: pass "
            "index_url= (or set PIP_INDEX_URL)",
            source="pypi.packages",
        )
    return public


def _pip_default() -> tuple[str, str, str] | None:
    try:
        from pip._internal.models.index import PyPI
    except ImportError:  # pip missing, or its internals moved
        return None
    root = PyPI.url.rstrip("/")
    return PyPI.simple_url.rstrip("/"), PyPI.pypi_url.rstrip("/"), f"{root}/rss/updates.xml"


JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
#: PEP 691's recommended client header: JSON preferred, HTML accepted.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
_JSON_TYPES = {JSON_V1, "application/vnd.pypi.simple.latest+json", "application/json"}
_HTML_TYPES = {HTML_V1, "application/vnd.pypi.simple.latest+html", "text/html"}

_DASHES = re.compile(r"-+")


def normalize(name: str) -> str:
    """PEP 503: lower case, runs of ``-``, ``_`` and ``.`` made one ``-``."""
    low = name.lower().replace("_", "-").replace(".", "-")
    return _DASHES.sub("-", low) if "--" in low else low


def simple_format(content_type: str | None) -> str | None:
    """``"json"``, ``"html"`` or ``None`` (not a Simple API answer) for a Content-Type."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in _JSON_TYPES:
        return "json"
    if kind in _HTML_TYPES:
        return "html"
    return None


class ParseError(ValueError):
    """The document is not what the Simple API sends."""


class CappedReader:
    """An async file over a streamed body for ijson: refuses to read past ``cap`` bytes
    (``OverflowError``) and notes whether the top-level ``"projects"`` key went by."""

    def __init__(self, content: Any, cap: int | None) -> None:
        self._content = content
        self._cap = cap
        self.received = 0
        self.saw_projects = False
        self._tail = b""

    async def read(self, size: int = -1) -> bytes:
        chunk: bytes = await self._content.read(size)
        self.received += len(chunk)
        if self._cap is not None and self.received > self._cap:
            raise OverflowError(self._cap)
        if not self.saw_projects and chunk:
            window = self._tail + chunk
            self.saw_projects = b'"projects"' in window
            self._tail = window[-16:]
        return chunk


_ARRAY_START = re.compile(rb'"projects"\s*:\s*\[')
_SPACE = b" \t\r\n"
#: The fast path gives up on a document whose "projects" key is not in its first MiB.
_PREFIX_MAX = 1024 * 1024


async def json_projects(reader: CappedReader, buf_size: int) -> AsyncIterator[list[Any]]:
    """The entries of the JSON project list (``projects`` of the top-level object), in
    batches as the bytes arrive.

    Fast path: the list is cut after its last complete entry in the bytes so far (at the
    last ``},``) and each run of entries is decoded by orjson. Project names cannot hold
    ``}``, so a cut lands between entries; should one not (an entry with nested objects,
    a name a server made up), the rest of the document goes to ijson's C parser, which
    reads any JSON. At the end, the text before and after the list must make a JSON
    object with the list in it, or the document is refused (``ParseError``)."""
    prefix_buffer = b""
    prefix: bytes | None = None
    buffer = b""
    first = True
    while True:
        chunk = await reader.read(buf_size)
        if prefix is None:
            if not chunk:
                raise ParseError("the document has no projects list")
            prefix_buffer += chunk
            found = _ARRAY_START.search(prefix_buffer)
            if found is None:
                if len(prefix_buffer) > _PREFIX_MAX:
                    break  # not the usual shape: ijson reads it all
                continue
            prefix = prefix_buffer[: found.end() - 1]
            buffer = prefix_buffer[found.end() :]
            prefix_buffer = b""
        elif chunk:
            buffer += chunk
        else:  # the end: the list's last entries, "]", and what follows it
            yield _last_entries(prefix, buffer, first)
            return
        cut = buffer.rfind(b"},")
        if cut < 0:
            continue
        segment = _entries_text(buffer[: cut + 1], first)
        try:
            entries = orjson.loads(b"[" + segment + b"]")
        except orjson.JSONDecodeError:
            break  # a cut inside an entry: ijson takes over from the last good cut
        buffer = buffer[cut + 1 :]
        first = False
        if entries:
            yield entries
    # The fallback: ijson over the rest, as a document of its own.
    if prefix is None:
        head = prefix_buffer
    else:
        _check_prefix(prefix)
        head = b'{"projects": [' + _entries_text(buffer, first)
    rest = _Prepended(head, reader)
    batch: list[Any] = []
    async for entry in ijson.items(rest, "projects.item", buf_size=buf_size):
        batch.append(entry)
        if len(batch) >= 4096:
            yield batch
            batch = []
    yield batch


def _entries_text(text: bytes, first: bool) -> bytes:
    """Entries text after a cut: one comma before it unless it is the list's start."""
    text = text.lstrip(_SPACE)
    if not first:
        if not text.startswith(b","):
            raise ParseError("the project list is not valid JSON (entries not comma-separated)")
        text = text[1:]
    return text


def _check_prefix(prefix: bytes) -> None:
    try:
        orjson.loads(prefix + b"[]}")
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"the project list is not valid JSON ({exc})") from None


def _last_entries(prefix: bytes, buffer: bytes, first: bool) -> list[Any]:
    """The entries before the list's closing ``]``; the text around the list must then be
    a JSON object with the list at ``projects``."""
    end = len(buffer)
    for _ in range(8):  # the "]" that ends the list is among the last few
        end = buffer.rfind(b"]", 0, end)
        if end < 0:
            break
        try:
            skeleton = orjson.loads(prefix + b"[]" + buffer[end + 1 :])
            text = _entries_text(buffer[:end], first) if buffer[:end].strip(_SPACE) else b""
            entries = orjson.loads(b"[" + text + b"]")
        except (orjson.JSONDecodeError, ParseError):
            continue
        if isinstance(skeleton, dict) and skeleton.get("projects") == []:
            return list(entries)
    raise ParseError("the project list is not valid JSON (it does not end as a list)")


class _Prepended:
    """An async file: ``head``, then the rest of ``reader``."""

    def __init__(self, head: bytes, reader: CappedReader) -> None:
        self._head = head
        self._reader = reader

    async def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return await self._reader.read(size)


def json_errors() -> tuple[type[Exception], ...]:
    return (ijson.JSONError,)


class HTMLProjects(HTMLParser):
    """Feed the PEP 503 HTML project list chunk by chunk: every ``<a>`` is a project, its
    text the name (``{"name": text, "href": href}``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._found: list[dict[str, Any]] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._in_anchor = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._in_anchor = True
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._in_anchor:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._in_anchor:
            self._in_anchor = False
            name = "".join(self._text).strip()
            if name:
                self._found.append({"name": name, "href": self._href})

    def feed_bytes(self, chunk: bytes) -> list[dict[str, Any]]:
        self.feed(self._decoder.decode(chunk))
        return self._take()

    def finish(self) -> list[dict[str, Any]]:
        self.feed(self._decoder.decode(b"", final=True))
        self.close()
        return self._take()

    def _take(self) -> list[dict[str, Any]]:
        out, self._found = self._found, []
        return out


def parse_feed(body: bytes) -> list[dict[str, Any]]:
    """The entries of an RSS 2.0 updates feed, as sent (newest first): ``name``,
    ``version`` (from the title ``NAME VERSION``), ``link``, ``description``, ``author``,
    ``published`` (a datetime)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ParseError(f"the updates feed is not XML ({exc})") from None
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ParseError("the updates feed is not RSS")
    entries = []
    for item in channel.iter("item"):
        title = (item.findtext("title") or "").strip()
        name, _, version = title.rpartition(" ")
        if not name:
            name, version = title, ""
        published = _rfc822(item.findtext("pubDate"))
        if not name or published is None:
            raise ParseError(f"a feed entry without a title or a date ({title!r})")
        entries.append(
            {
                "name": name,
                "version": version,
                "link": (item.findtext("link") or "").strip() or None,
                "description": (item.findtext("description") or "").strip() or None,
                "author": (item.findtext("author") or "").strip() or None,
                "published": published,
            }
        )
    return entries


def _rfc822(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return when
