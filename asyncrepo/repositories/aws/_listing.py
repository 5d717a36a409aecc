"""Fast parsing of AWS rest-xml answers (S3's ``ListObjectsV2``), beside botocore's own.

botocore parses a 1,000-key ``ListObjectsV2`` page in about 130 ms of CPU (a recursive,
generic walk over its service model, per element and per field). botocore still does
everything else here: credentials, signing, endpoints, retries and error answers. Only the
body of a *successful* answer is taken away from its parser:

* ``keep_body`` is a ``before-parse`` handler registered on the client's own event system
  (``client.meta.events``). When the running task asked for it (``capturing(operation)``,
  a context variable, so that concurrent calls on the same client that did not ask are
  untouched), it moves the body of a 2xx answer into ``customized_response_dict`` (which
  botocore merges into its result) and leaves botocore an empty body to parse: headers and
  ``ResponseMetadata`` are still botocore's. Error answers (3xx-5xx) are left alone, so
  botocore parses them, retries them and raises its ``ClientError`` as before.
* ``ShapeParser`` is compiled once from the operation's botocore output shape and turns the
  body (``xml.etree.ElementTree.fromstring``, C expat) into the same dict botocore would:
  members in the shape's order, empty elements as ``""``, booleans ``text == "true"``,
  integers ``int``, timestamps through the client's timestamp parser, flattened lists,
  namespaces ignored, unknown elements skipped.

Why ``fromstring``: on a 1,000-key page (350 KB) it builds the tree in about 3 ms;
``XMLPullParser``/``iterparse`` make the same tree plus an event per element (about 20%
slower here, and the body is already in memory), and lxml parses in about 2 ms but is one
more compiled dependency for a millisecond a page: the dict building, not the XML parsing,
is most of what is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote_plus
from xml.etree.ElementTree import Element, ParseError, fromstring

__all__ = [
    "RAW_BODY",
    "ParseError",
    "ShapeParser",
    "capturing",
    "decode_listing",
    "keep_body",
]

#: The key under which ``keep_body`` hands the raw body over in botocore's result.
RAW_BODY = "_asyncrepo_raw_body"

_capture: ContextVar[str | None] = ContextVar("asyncrepo_aws_capture", default=None)
_NAMESPACE = re.compile(r"^\{[^}]*\}")

Converter = Callable[[Element], Any]


@contextmanager
def capturing(operation: str) -> Iterator[None]:
    """Within this block (this task), the 2xx body of ``operation`` skips botocore's parser."""
    token = _capture.set(operation)
    try:
        yield
    finally:
        _capture.reset(token)


def keep_body(
    operation_model: Any = None,
    response_dict: Any = None,
    customized_response_dict: Any = None,
    **_: Any,
) -> None:
    """botocore ``before-parse`` handler (see the module docstring)."""
    wanted = _capture.get()
    if wanted is None or operation_model is None or operation_model.name != wanted:
        return
    if not isinstance(response_dict, dict) or not isinstance(customized_response_dict, dict):
        return
    status = response_dict.get("status_code")
    body = response_dict.get("body")
    if not isinstance(status, int) or not 200 <= status < 300:
        return
    if not isinstance(body, bytes | bytearray):
        return  # a streaming body: not ours to take
    customized_response_dict[RAW_BODY] = bytes(body)
    response_dict["body"] = b""


def _text(node: Element) -> str:
    text = node.text
    return "" if text is None else text


def _boolean(node: Element) -> bool:
    return node.text == "true"


def _integer(node: Element) -> int:
    return int(_text(node))


def _float(node: Element) -> float:
    return float(_text(node))


class _Struct:
    """One structure shape: its members by XML tag, and the order botocore builds them in."""

    __slots__ = ("by_tag", "order")

    def __init__(self) -> None:
        #: tag (bare, and namespaced ones as met) -> (member name, converter, repeated)
        self.by_tag: dict[str, tuple[str, Converter, bool] | None] = {}
        self.order: tuple[str, ...] = ()

    def lookup(self, tag: str) -> tuple[str, Converter, bool] | None:
        bare = _NAMESPACE.sub("", tag)
        entry = self.by_tag.get(bare)
        self.by_tag[tag] = entry  # remembered, unknown tags too
        return entry

    def __call__(self, node: Element) -> dict[str, Any]:
        by_tag = self.by_tag
        values: dict[str, Any] = {}
        for child in node:
            tag = child.tag
            entry = by_tag[tag] if tag in by_tag else self.lookup(tag)
            if entry is None:
                continue  # an element the model does not know: botocore skips it too
            name, convert, repeated = entry
            if repeated:
                if name in values:
                    values[name].append(convert(child))
                else:
                    values[name] = [convert(child)]
            elif name in values:
                raise ValueError(f"element {name!r} repeated")
            else:
                values[name] = convert(child)
        return {name: values[name] for name in self.order if name in values}


class ShapeParser:
    """A botocore rest-xml output shape compiled into converters over ElementTree nodes."""

    def __init__(self, shape: Any, timestamp: Callable[[str], Any]) -> None:
        self._timestamp = timestamp
        self._structs: dict[str, _Struct] = {}
        self._root = self._compile(shape)

    def parse(self, body: bytes) -> dict[str, Any]:
        """The answer's body as botocore's parser would give it (body members only).
        ``ParseError``/``ValueError``/``TypeError`` on a body that does not fit."""
        if not body.strip():
            return {}
        root = fromstring(body)
        parsed = self._root(root)
        if not isinstance(parsed, dict):
            raise TypeError("the answer is not a structure")
        return parsed

    def _compile(self, shape: Any) -> Converter:
        kind = shape.type_name
        if kind == "structure":
            return self._struct(shape)
        if kind == "list":
            member = self._compile(shape.member)

            def wrapped_list(node: Element) -> list[Any]:
                return [member(child) for child in node]

            return wrapped_list
        if kind in ("integer", "long"):
            return _integer
        if kind == "boolean":
            return _boolean
        if kind in ("float", "double"):
            return _float
        if kind == "timestamp":
            parse = self._timestamp

            def timestamp(node: Element) -> Any:
                return parse(_text(node))

            return timestamp
        if kind == "string":
            return _text
        raise TypeError(f"no fast parser for {kind} shapes")

    def _struct(self, shape: Any) -> _Struct:
        known = self._structs.get(shape.name)
        if known is not None:
            return known  # recursive shapes end here
        struct = self._structs[shape.name] = _Struct()
        order: list[str] = []
        for name, member in shape.members.items():
            serialization = member.serialization
            if serialization.get("location") or serialization.get("eventheader"):
                continue  # headers, status code: botocore's part
            if serialization.get("xmlAttribute"):
                raise TypeError("no fast parser for XML attribute members")
            tag = serialization.get("name") or name
            if member.type_name == "list" and serialization.get("flattened"):
                tag = member.member.serialization.get("name") or tag
                struct.by_tag[tag] = (name, self._compile(member.member), True)
            else:
                struct.by_tag[tag] = (name, self._compile(member), False)
            order.append(name)
        struct.order = tuple(order)
        return struct


def decode_listing(parsed: dict[str, Any], top: tuple[str, ...], nested: Mapping[str, str]) -> None:
    """Undo ``EncodingType=url`` when the answer says it applied, as botocore does
    (``unquote_plus``): the ``top`` fields (``Delimiter``, ``Prefix``, ``StartAfter`` for
    ``ListObjectsV2``) and ``nested`` list members (``{"Contents": "Key", ...}``)."""
    if parsed.get("EncodingType") != "url":
        return
    for name in top:
        value = parsed.get(name)
        if isinstance(value, str):
            parsed[name] = unquote_plus(value)
    for outer, inner in nested.items():
        for record in parsed.get(outer) or ():
            value = record.get(inner)
            if isinstance(value, str):
                record[inner] = unquote_plus(value)
