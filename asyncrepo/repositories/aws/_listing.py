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
  botocore parses them, retries them and raises its ``ClientError`` as before. For S3,
  ``take_s3_body`` does the same in the place of botocore's own check of 200 answers, which
  would parse every body once more (see its docstring).
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

import gc
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote_plus
from xml.etree.ElementTree import Element, ParseError, fromstring

__all__ = [
    "RAW_BODY",
    "Element",
    "ParseError",
    "ShapeParser",
    "capturing",
    "decode_listing",
    "install",
    "keep_body",
    "take_s3_body",
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


def _wanted(operation_model: Any, response_dict: Any, customized_response_dict: Any) -> bool:
    wanted = _capture.get()
    if wanted is None or operation_model is None or operation_model.name != wanted:
        return False
    if not isinstance(response_dict, dict) or not isinstance(customized_response_dict, dict):
        return False
    status = response_dict.get("status_code")
    if not isinstance(status, int) or not 200 <= status < 300:
        return False
    return isinstance(response_dict.get("body"), bytes | bytearray)  # not a streaming body


def keep_body(
    operation_model: Any = None,
    response_dict: Any = None,
    customized_response_dict: Any = None,
    **_: Any,
) -> None:
    """botocore ``before-parse`` handler (see the module docstring): the raw body."""
    if _wanted(operation_model, response_dict, customized_response_dict):
        customized_response_dict[RAW_BODY] = bytes(response_dict["body"])
        response_dict["body"] = b""


def take_s3_body(
    operation_model: Any = None,
    response_dict: Any = None,
    customized_response_dict: Any = None,
    **kwargs: Any,
) -> None:
    """``keep_body`` in the place of botocore's check of S3's 200 answers.

    botocore parses every 200 body of S3 once before its parser does (``_handle_200_error``:
    a body that is not XML, or whose root is ``<Error>``, becomes a 500, to be retried).
    For the calls we take, this does that check itself with the tree it hands over (one
    parse, not two; the same 500s and retries); other calls get botocore's check."""
    if not _wanted(operation_model, response_dict, customized_response_dict):
        if _BOTOCORE_200_CHECK is not None:
            _BOTOCORE_200_CHECK(
                operation_model=operation_model, response_dict=response_dict, **kwargs
            )
        return
    body = bytes(response_dict["body"])
    root: Element | None = None
    if body:
        try:
            root = parse_xml(body)
        except ParseError:
            response_dict["status_code"] = 500  # as botocore: a disrupted answer, retried
            return
        if root.tag == "Error":
            response_dict["status_code"] = 500
            return
    customized_response_dict[RAW_BODY] = root
    response_dict["body"] = b""


def parse_xml(body: bytes) -> Element:
    """``fromstring(body)`` with the cyclic garbage collector held off while the tree is
    built.

    Why: a 1,000-key page is about 9,000 elements, every one tracked by the collector, so
    building it runs the collector a dozen times, and the elements that outlive those runs
    push it into full collections, which walk every object of the process (botocore's
    service models alone are hundreds of thousands): measured on ``benchmarks/``'s fast S3
    server, the parse took about 10 µs of CPU an object, against 3 µs with the collector
    held off (a whole listing: about 32 µs an object, then 21 µs). The elements die with
    their page (the tree holds no cycles), so the collector has nothing to find in them; it
    runs again at the next allocation after the parse. The parse itself
    (``XMLParser.feed``) is one C call that keeps the GIL, so other threads barely run
    while the collector is held off, and a collector the application turned off is left
    off.
    """
    if not gc.isenabled():
        return fromstring(body)
    gc.disable()
    try:
        return fromstring(body)
    finally:
        gc.enable()


try:  # a private botocore function: without it, botocore's check stays (and parses twice)
    from botocore.handlers import _handle_200_error as _BOTOCORE_200_CHECK
except ImportError:  # pragma: no cover - another botocore
    _BOTOCORE_200_CHECK = None


def install(events: Any, service_id: str) -> bool:
    """Register the body taker on a client's event system. True when it also took over
    botocore's S3 200 check (one XML parse a page instead of two)."""
    if service_id == "s3" and _BOTOCORE_200_CHECK is not None:
        try:
            events.unregister("before-parse.s3.*", _BOTOCORE_200_CHECK)
        except Exception:  # not there: nothing to replace
            pass
        else:
            events.register_first(
                "before-parse.s3.*", take_s3_body, unique_id="asyncrepo-take-s3-body"
            )
            return True
    events.register(f"before-parse.{service_id}", keep_body, unique_id="asyncrepo-keep-body")
    return False


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
        #: tag (bare, and namespaced ones as met) -> (name, converter, repeated, rank)
        self.by_tag: dict[str, tuple[str, Converter, bool, int] | None] = {}
        self.order: tuple[str, ...] = ()

    def lookup(self, tag: str) -> tuple[str, Converter, bool, int] | None:
        bare = _NAMESPACE.sub("", tag)
        entry = self.by_tag.get(bare)
        self.by_tag[tag] = entry  # remembered, unknown tags too
        return entry

    def __call__(self, node: Element) -> dict[str, Any]:
        by_tag = self.by_tag
        values: dict[str, Any] = {}
        last = -1
        ordered = True  # the elements came in the shape's order: no reordering needed
        for child in node:
            tag = child.tag
            entry = by_tag[tag] if tag in by_tag else self.lookup(tag)
            if entry is None:
                continue  # an element the model does not know: botocore skips it too
            name, convert, repeated, rank = entry
            if repeated:
                if name in values:
                    values[name].append(convert(child))
                else:
                    values[name] = [convert(child)]
            elif name in values:
                raise ValueError(f"element {name!r} repeated")
            elif convert is _text:
                text = child.text
                values[name] = "" if text is None else text
            else:
                values[name] = convert(child)
            if rank < last:
                ordered = False
            last = rank
        if ordered:
            return values
        return {name: values[name] for name in self.order if name in values}


class ShapeParser:
    """A botocore rest-xml output shape compiled into converters over ElementTree nodes."""

    def __init__(self, shape: Any, timestamp: Callable[[str], Any]) -> None:
        self._timestamp = timestamp
        self._structs: dict[str, _Struct] = {}
        self._root = self._compile(shape)

    def parse(self, body: bytes | Element | None) -> dict[str, Any]:
        """The answer's body (bytes, or its root element) as botocore's parser would give
        it (body members only). ``ParseError``/``ValueError``/``TypeError`` on a body that
        does not fit."""
        if body is None:
            return {}
        if isinstance(body, bytes | bytearray):
            if not body.strip():
                return {}
            body = parse_xml(body)
        parsed = self._root(body)
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
            rank = len(order)
            if member.type_name == "list" and serialization.get("flattened"):
                tag = member.member.serialization.get("name") or tag
                struct.by_tag[tag] = (name, self._compile(member.member), True, rank)
            else:
                struct.by_tag[tag] = (name, self._compile(member), False, rank)
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
            if isinstance(value, str) and ("%" in value or "+" in value):
                record[inner] = unquote_plus(value)
