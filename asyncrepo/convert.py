"""Converting vendor values to the common ``Item`` fields: dates, HTML, Atlassian Document
Format. Pure functions; every connector uses them instead of its own."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

__all__ = ["adf_to_text", "html_to_text", "parse_datetime"]

_JIRA_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime from ISO 8601 (``Z``, ``+00:00`` or Jira's ``+0000``),
    a ``datetime`` (naive ones are taken as UTC) or epoch seconds; ``None`` for empty.
    Raises ``ValueError`` for anything else (connectors turn that into MalformedResponse)."""
    if isinstance(value, str) and value:  # the common case first: it runs once per date
        return _parse_iso(value)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    raise ValueError(f"not a date: {value!r}")


def _parse_iso(value: str) -> datetime:
    try:  # fast: Python 3.11 reads "Z", "+00:00" and "+0000"
        parsed = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    text = value.strip()
    text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else _JIRA_OFFSET.sub(r"\1:\2", text)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_BLOCK_TAGS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
_SKIP_TAGS = {"script", "style", "head", "title"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def html_to_text(markup: str | None, *, unescape_first: bool = False) -> str | None:
    """Plain text from HTML (or Confluence storage XHTML): tags removed, entities decoded,
    block elements on their own lines. ``unescape_first`` for HTML that arrives
    entity-escaped (Greenhouse's ``content``)."""
    if markup is None:
        return None
    if unescape_first:
        markup = html.unescape(markup)
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = _SPACES.sub(" ", "".join(parser.parts))
    return _NEWLINES.sub("\n", text).strip()


_ADF_BLOCKS = {
    "paragraph",
    "heading",
    "blockquote",
    "codeBlock",
    "listItem",
    "rule",
    "panel",
    "tableRow",
    "mediaSingle",
    "decisionItem",
    "taskItem",
    "expand",
    "nestedExpand",
}


def adf_to_text(document: Any) -> str | None:
    """Plain text from an Atlassian Document Format node (Jira v3 descriptions)."""
    if document is None:
        return None
    if isinstance(document, str):
        return document
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        attrs_value = node.get("attrs")
        attrs: dict[str, Any] = attrs_value if isinstance(attrs_value, dict) else {}
        if kind == "text":
            parts.append(str(node.get("text", "")))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            parts.append(str(attrs.get("text") or ""))
        elif kind == "emoji":
            parts.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind in ("inlineCard", "blockCard"):
            parts.append(str(attrs.get("url") or ""))
        elif kind == "date" and attrs.get("timestamp"):
            stamp = datetime.fromtimestamp(int(attrs["timestamp"]) / 1000, UTC)
            parts.append(stamp.date().isoformat())
        elif kind == "status":
            parts.append(str(attrs.get("text") or ""))
        walk(node.get("content"))
        if kind in _ADF_BLOCKS:
            parts.append("\n")
        elif kind == "tableCell" or kind == "tableHeader":
            parts.append("\t")

    walk(document)
    text = _SPACES.sub(" ", "".join(parts))
    return _NEWLINES.sub("\n", text).strip()
