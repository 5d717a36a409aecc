"""The objects of an S3 bucket, under an optional key prefix (``aws.s3_objects``).

Listing: ``ListObjectsV2``, one call per vendor page, each following the previous page's
``NextContinuationToken`` (the 0.0.9 connector restarted its paginator on every page and
returned page 1 forever past 1,000 keys). A page state is ``{"token": ..., "max_keys": ...}``:
the page at a state is always fetched with the ``MaxKeys`` it was first fetched with, so a
cursor (state + index in the page) resumes at the right key whatever ``page_size`` the
resuming call asks for. A listing whose token repeats, or that says it is truncated but
gives no token, raises ``MalformedResponse`` instead of looping.

Parsing (``parser=``): ``"fast"`` (the default) lets botocore sign, send, retry and parse
errors, and parses the body of each successful page itself (``_listing``); ``"botocore"``
leaves it all to botocore. On the fast path a listing also reads ahead: the next page is
asked for as soon as a page's XML tree is there (its token is in it), so it travels while
the page is made into items (``_raw_page``). Both give the same items, byte for
byte (tested on tricky keys); the fast path always asks for ``EncodingType=url`` and decodes
keys as botocore does, so keys with control characters survive XML.
``fetch_owner=True`` asks for each object's ``Owner``.

Options of ``list``/``search``: ``delimiter="/"`` lists the "folders" (``CommonPrefixes``)
as items of their own (``kind="prefix"``, identifier = the prefix) beside the objects
(``kind="object"``), in key order; ``mode="contains"`` (search only) matches the query
anywhere (naive search over the whole listing) instead of as a key prefix.

``partitions=N`` (2 to 64, opt-in; not with ``delimiter``): one listing in ``N`` key
ranges fetched at once, for buckets with millions of keys. Discovery lists one page with
``Delimiter="/"`` per "folder" level (up to 3 levels, 64 folders a level) and picks
``N - 1`` of the folders or keys it saw as range boundaries; each range is then listed with
its own paginator (``StartAfter`` just below its first key, stopping at the next range's),
up to ``N`` ranges ahead of the one being read (at most 3 pages buffered per range), and
the ranges are handed out in key order: the same items, in the same order, as without
partitions; every key in exactly one range. Pages are 1,000 keys whatever ``page_size``.
Cursors work: a partitioned state is ``{"after": last key handed out, ...}``; resuming
fetches the page right after that key, then partitions the rest again. A bucket without
"/" folders still splits (on keys of the first discovery page), but its first ``N - 1``
boundaries all fall within its first 1,000 keys: no speed-up there.

Items (objects): identifier = the full key, ``title`` = its last path segment, ``url`` =
``s3://bucket/key``, ``updated_at`` = ``LastModified``; ``raw`` = the listing record
(``Key``, ``Size``, ``ETag``, ``StorageClass``, ``LastModified`` as ISO...) plus
``Bucket``. ``get`` answers with ``HeadObject``: the same fields plus ``ContentType``,
``Metadata`` (user metadata) and the other headers. ``since`` filters on ``LastModified``
client-side (S3 has no server-side filter); folder items have no date and always pass.

Content: ``await repo.read(key, max_bytes=None)`` and ``repo.open_stream(key)``. With
``text=True``, ``Item.text`` holds the decoded content of text-like objects no larger than
``text_max_bytes``: on ``get`` (by content type or extension), and on ``list``/``search``
(by extension; one ``GetObject`` per such item, ``text_concurrency`` at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from ...exceptions import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
)
from ...pagination import Batch, pump
from ...repository import Capabilities, Item, PageRequest, Repository
from ._client import AWSClient, check_search_mode, jsonable, session_options
from ._listing import Element, ParseError, decode_listing

__all__ = ["TEXT_EXTENSIONS", "TEXT_TYPES", "ObjectStream", "S3Objects"]

#: ListObjectsV2's page cap.
MAX_KEYS = 1000
DEFAULT_CHUNK_SIZE = 1 << 20
#: ``parser=``: how ``ListObjectsV2`` answers are read (see ``_listing``).
PARSERS = ("fast", "botocore")
_LISTING_TOP = ("Delimiter", "Prefix", "StartAfter")
_LISTING_NESTED = {"Contents": "Key", "CommonPrefixes": "Prefix"}
#: ``partitions=``: the delimiter of the "folders" whose names split the key space, how many
#: folder levels deep discovery may look, and at most how many folders it lists at once.
PARTITION_DELIMITER = "/"
DISCOVERY_DEPTH = 3
DISCOVERY_FANOUT = 64
MAX_PARTITIONS = 64
_END = object()  # a partition's last batch has been queued
_PLAIN = frozenset({str, int, bool})  # JSON-ready as botocore gives them
#: Read-ahead requests (see ``S3Objects._raw_page``) waiting at once, at most.
READ_AHEAD_PAGES = 4
#: Loop turns given to a read-ahead request to be signed and sent before parsing goes on.
READ_AHEAD_TURNS = 3

#: Content types read as text with ``text=True`` (a trailing ``/`` matches a whole family;
#: ``+json`` / ``+xml`` suffixes match too).
TEXT_TYPES: frozenset[str] = frozenset(
    {
        "text/",
        "application/json",
        "application/x-ndjson",
        "application/jsonl",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/csv",
        "application/sql",
        "application/x-sh",
        "application/x-python",
        "application/xhtml+xml",
    }
)
#: Key extensions read as text with ``text=True``.
TEXT_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".txt", ".text", ".md", ".markdown", ".rst", ".adoc", ".org", ".tex",
        ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".geojson",
        ".xml", ".html", ".htm", ".xhtml", ".svg", ".css",
        ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".properties", ".env",
        ".log", ".sql", ".sh", ".bash", ".zsh", ".ps1", ".bat",
        ".py", ".pyi", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".scala",
        ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".pl",
        ".swift", ".r", ".lua", ".srt", ".vtt",
    }
)  # fmt: skip


def basename(key: str) -> str:
    """The last path segment of a key or prefix (``a/b/c.txt`` -> ``c.txt``, ``a/b/`` -> ``b``)."""
    stripped = key.rstrip("/")
    return stripped.rsplit("/", 1)[-1] or key


def _extension(key: str) -> str:
    name = basename(key)
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """``("text/plain", "latin-1")`` from ``"text/plain; charset=latin-1"``."""
    if not content_type:
        return "", None
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return media.strip().lower(), charset


class ObjectStream:
    """The content of one object, in chunks.

    ``async with repo.open_stream(key) as stream: async for chunk in stream: ...`` (the
    response is released on exit), or directly ``async for chunk in repo.open_stream(key)``
    (released when the loop ends). After opening, ``size``, ``content_type``, ``etag``,
    ``last_modified`` and ``metadata`` describe the object.
    """

    def __init__(self, repository: S3Objects, key: str, chunk_size: int) -> None:
        self.repository = repository
        self.key = key
        self.chunk_size = chunk_size
        self.size: int | None = None
        self.content_type: str | None = None
        self.etag: str | None = None
        self.last_modified: datetime | None = None
        self.metadata: dict[str, str] = {}
        self._body: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<ObjectStream {self.repository.url_of(self.key)!r}>"

    async def open(self) -> None:
        """Send the ``GetObject`` (done by ``async with`` and by iteration)."""
        if self._closed:
            raise ValueError("I/O operation on a closed ObjectStream")
        if self._body is not None:
            return
        response = await self.repository._get_object(self.key)
        self.size = response.get("ContentLength")
        self.content_type = response.get("ContentType")
        self.etag = response.get("ETag")
        self.last_modified = response.get("LastModified")
        self.metadata = dict(response.get("Metadata") or {})
        self._body = response["Body"]

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        owned = self._body is None
        if owned:
            await self.open()
        try:
            while True:
                chunk = await self.read(self.chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            if owned:
                await self.aclose()

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (everything left when negative); ``b""`` at the end."""
        await self.open()
        return await self.repository.client.read_body(
            self._body,
            size if size >= 0 else None,
            operation="GetObject",
            url=self.repository.url_of(self.key),
        )

    async def aclose(self) -> None:
        """Release the response (the rest of the body is not read). Safe to call twice."""
        self._closed = True
        body, self._body = self._body, None
        if body is not None:
            body.close()


class S3Objects(Repository):
    """The objects of ``bucket_name`` whose keys start with ``prefix``.

    ``page_size``: the default page size. ``text``: fill ``Item.text`` for text-like
    objects of at most ``text_max_bytes`` bytes (``text_types`` / ``text_extensions``
    say what is text-like; see the module docstring for the cost). ``session_kwargs``
    (alias ``aioboto_session_kwargs``, its 0.0.9 name) and ``client_kwargs``: see
    ``asyncrepo.repositories.aws._client``.
    """

    name = "aws.s3_objects"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="prefix",
        since="client",
        options=frozenset({"delimiter", "mode", "partitions"}),
        max_page_size=MAX_KEYS,
    )

    def __init__(
        self,
        bucket_name: str,
        prefix: str | None = None,
        *,
        page_size: int = MAX_KEYS,
        text: bool = False,
        text_max_bytes: int = 1_000_000,
        text_types: Iterable[str] | None = None,
        text_extensions: Iterable[str] | None = None,
        text_concurrency: int = 8,
        fetch_owner: bool = False,
        parser: str = "fast",
        session_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        aioboto_session_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(bucket_name, str) or not bucket_name or "/" in bucket_name:
            raise ConfigurationError(
                f"a bucket name is required (no '/'), not {bucket_name!r}", source=self.name
            )
        if prefix is not None and not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string", source=self.name)
        if not isinstance(text_max_bytes, int) or text_max_bytes < 0:
            raise ConfigurationError(
                "text_max_bytes must be a non-negative integer", source=self.name
            )
        if parser not in PARSERS:
            raise ConfigurationError(
                f"parser must be 'fast' or 'botocore', not {parser!r}", source=self.name
            )
        self.bucket_name = bucket_name
        self.prefix = prefix or ""
        self.parser = parser
        self.fetch_owner = bool(fetch_owner)
        self._ahead: dict[tuple[tuple[str, str], ...], asyncio.Task[Any]] = {}
        self.default_page_size = page_size
        self.text = bool(text)
        self.text_max_bytes = text_max_bytes
        self.text_types = frozenset(
            t.lower() for t in (TEXT_TYPES if text_types is None else text_types)
        )
        self.text_extensions = frozenset(
            e.lower() if e.startswith(".") else "." + e.lower()
            for e in (TEXT_EXTENSIONS if text_extensions is None else text_extensions)
        )
        self.text_concurrency = max(1, text_concurrency)
        self.client = AWSClient(
            "s3",
            source=self.name,
            session_kwargs=session_options(
                session_kwargs, aioboto_session_kwargs, source=self.name
            ),
            client_kwargs=client_kwargs,
        )

    def scope(self) -> Any:
        return f"s3://{self.bucket_name}/{self.prefix}"

    def url_of(self, key: str) -> str:
        return f"s3://{self.bucket_name}/{key}"

    async def aclose(self) -> None:
        await super().aclose()  # cancels page fetches (and read-aheads) of abandoned streams
        self._ahead.clear()
        await self.client.aclose()

    # -- options --------------------------------------------------------------------------

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        delimiter = options.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
            raise InvalidQuery(
                f"delimiter must be a non-empty string, not {delimiter!r}", source=self.name
            )
        check_search_mode(operation, options, self.name)
        partitions = options.get("partitions")
        if partitions is not None:
            if (
                not isinstance(partitions, int)
                or isinstance(partitions, bool)
                or not 1 <= partitions <= MAX_PARTITIONS
            ):
                raise InvalidQuery(
                    f"partitions must be an integer from 1 to {MAX_PARTITIONS}, not {partitions!r}",
                    source=self.name,
                )
            if delimiter is not None and partitions > 1:
                raise InvalidQuery(
                    "partitions= lists every key; it cannot be combined with delimiter=",
                    source=self.name,
                )

    def search_is_naive(self, options: Mapping[str, Any]) -> bool:
        return options.get("mode") == "contains"

    # -- listing --------------------------------------------------------------------------

    def _list_prefix(self, request: PageRequest) -> str:
        if request.query is not None and request.options.get("mode") != "contains":
            return self.prefix + request.query
        return self.prefix

    def _first_state(self, request: PageRequest) -> dict[str, Any]:
        # A naive search scans everything: fetch full pages whatever the user page size.
        max_keys = MAX_KEYS if request.terms is not None else request.page_size
        return {"token": None, "max_keys": max(1, min(MAX_KEYS, max_keys))}

    def stream(self, request: PageRequest, state: Any) -> AsyncIterator[tuple[Any, Batch]]:
        partitions = request.options.get("partitions")
        if isinstance(partitions, int) and partitions > 1:
            return self._partitioned(request, state, partitions)
        # The first page gets an explicit state too, so that cursors into it record the
        # MaxKeys it was fetched with.
        start = self._first_state(request) if state is None else state
        return super().stream(request, start)

    def _parse_state(self, state: Any) -> tuple[str | None, int]:
        if (
            isinstance(state, dict)
            and isinstance(state.get("max_keys"), int)
            and 1 <= state["max_keys"] <= MAX_KEYS
            and (state.get("token") is None or isinstance(state.get("token"), str))
        ):
            return state.get("token"), state["max_keys"]
        raise InvalidCursor("not an S3 listing state", source=self.name)

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        token, max_keys = self._parse_state(self._first_state(request) if state is None else state)
        entries, next_token = await self._page(
            self._list_prefix(request),
            max_keys,
            token,
            delimiter=request.options.get("delimiter"),
            read_ahead=True,
        )
        items = [item for _, item in entries]
        if self.text:
            await self._fill_texts(items)
        if next_token is None:
            return Batch(items)
        return Batch(items, {"token": next_token, "max_keys": max_keys})

    async def _page(
        self,
        prefix: str,
        max_keys: int,
        token: str | None,
        *,
        delimiter: str | None = None,
        start_after: str | None = None,
        stop_at: str | None = None,
        read_ahead: bool = False,
    ) -> tuple[list[tuple[str, Item]], str | None]:
        """One ``ListObjectsV2`` page: ``(key, item)`` in key order (objects and folders),
        and the next page's token (``None`` on the last page). With ``stop_at`` (no
        delimiter), no item is made from that key on (a partition's end)."""
        params: dict[str, Any] = {"Bucket": self.bucket_name, "MaxKeys": max_keys}
        if prefix:
            params["Prefix"] = prefix
        if delimiter:
            params["Delimiter"] = delimiter
        if token:
            params["ContinuationToken"] = token
        elif start_after:
            params["StartAfter"] = start_after
        if self.fetch_owner:
            params["FetchOwner"] = True
        url = self.url_of(prefix)
        response = await self._list_objects(url, params, read_ahead=read_ahead)
        try:
            entries: list[tuple[str, Item]] = []
            for raw in response.get("Contents") or []:
                if stop_at is not None and raw["Key"] >= stop_at:
                    entries.append((str(raw["Key"]), self._prefix_item(stop_at)))  # a marker
                    break
                entries.append((str(raw["Key"]), self._object_item(raw)))
            for raw in response.get("CommonPrefixes") or []:
                entries.append((str(raw["Prefix"]), self._prefix_item(str(raw["Prefix"]))))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponse(
                f"unexpected ListObjectsV2 answer: {exc!r}",
                source=self.name,
                method="ListObjectsV2",
                url=url,
            ) from None
        if response.get("CommonPrefixes"):
            entries.sort(key=lambda entry: entry[0])  # S3's order: objects and folders by key
        if not response.get("IsTruncated"):
            return entries, None
        next_token = response.get("NextContinuationToken")
        if not next_token or next_token == token or not isinstance(next_token, str):
            problem = "repeated its continuation token" if next_token else "gave no token"
            raise MalformedResponse(
                f"ListObjectsV2 said the listing continues but {problem}",
                source=self.name,
                method="ListObjectsV2",
                url=url,
            )
        return entries, next_token

    async def _list_objects(
        self, url: str, params: dict[str, Any], *, read_ahead: bool = False
    ) -> dict[str, Any]:
        """A ``ListObjectsV2`` answer as botocore's parser gives it, keys URL-decoded.

        ``parser="fast"``: botocore signs, sends, retries and parses errors; the body of a
        successful answer is parsed by ``_listing.ShapeParser`` (``EncodingType=url`` is
        always asked for, and undone here). ``parser="botocore"``: botocore does it all.
        """
        if self.parser == "botocore":
            try:
                return await self.client.call(
                    "list_objects_v2", url=url, missing="config", **params
                )
            except (ValueError, TypeError) as exc:  # botocore's parser lets these out
                raise MalformedResponse(
                    f"unreadable ListObjectsV2 answer: {exc}",
                    source=self.name,
                    method="ListObjectsV2",
                    url=url,
                ) from None
        body, response = await self._raw_page(url, params, read_ahead=read_ahead)
        if body is not None:
            try:
                parser = await self.client.output_parser("list_objects_v2")
                response = parser.parse(body)
            except (ParseError, ValueError, TypeError) as exc:
                raise MalformedResponse(
                    f"unreadable ListObjectsV2 answer: {exc}",
                    source=self.name,
                    method="ListObjectsV2",
                    url=url,
                ) from None
        decode_listing(response, _LISTING_TOP, _LISTING_NESTED)
        return response

    async def _raw_page(
        self, url: str, params: dict[str, Any], *, read_ahead: bool
    ) -> tuple[Any, dict[str, Any]]:
        """``call_raw`` of one page, with read-ahead: as soon as a page's XML tree is there,
        the page after it is asked for (its token is in the tree), so that it travels while
        this one is parsed into items; ``pump`` only learns the next state once they are
        made. At most ``READ_AHEAD_PAGES`` such requests wait for their page at once; the
        others are cancelled (and ``aclose()`` cancels them all)."""
        key = _page_key(params)
        ahead = self._ahead.pop(key, None)
        if ahead is not None:
            body, response = await ahead
        else:
            body, response = await self.client.call_raw(
                "list_objects_v2", url=url, missing="config", EncodingType="url", **params
            )
        token = _next_token(body) if read_ahead else None
        if token is not None and token != params.get("ContinuationToken"):
            following = {k: v for k, v in params.items() if k != "StartAfter"}
            following["ContinuationToken"] = token
            task = self._spawn(
                self.client.call_raw(
                    "list_objects_v2", url=url, missing="config", EncodingType="url", **following
                )
            )
            task.add_done_callback(_retrieved)
            self._ahead[_page_key(following)] = task
            while len(self._ahead) > READ_AHEAD_PAGES:  # abandoned read-aheads
                self._ahead.pop(next(iter(self._ahead))).cancel()
            for _ in range(READ_AHEAD_TURNS):  # let it reach the network before we parse
                await asyncio.sleep(0)
        return body, response

    # -- partitioned listing ----------------------------------------------------------------

    async def _partitioned(
        self, request: PageRequest, state: Any, count: int
    ) -> AsyncIterator[tuple[Any, Batch]]:
        """The listing in key ranges fetched ``count`` at a time (see ``partitions=`` in the
        module docstring). States: ``{"after": last key before the batch, "max_keys"}``."""
        after = self._parse_after(state)
        prefix = self._list_prefix(request)
        if after is not None:
            # A resumed listing: first the page right after the cursor's key, as one plain
            # request, so that the cursor's index counts from the same key as before.
            entries, token = await self._page(prefix, MAX_KEYS, None, start_after=after)
            items = [item for _, item in entries]
            if self.text:
                await self._fill_texts(items)
            first_last = items[-1].identifier if items else after
            yield _after(after), Batch(items, None if token is None else _after(first_last))
            if token is None:
                return
            after = first_last
        bounds = await self._boundaries(prefix, count)
        ranges = [
            (lo, hi)
            for lo, hi in zip([None, *bounds], [*bounds, None], strict=True)
            if after is None or hi is None or hi > after
        ]
        queues: list[asyncio.Queue[Any] | None] = []
        runners: list[asyncio.Task[None]] = []
        last = after
        try:
            for index in range(len(ranges)):
                while len(runners) < min(len(ranges), index + count):
                    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
                    lo, hi = ranges[len(runners)]
                    runners.append(self._spawn(self._run_range(prefix, lo, hi, after, queue)))
                    queues.append(queue)
                current = queues[index]
                assert current is not None
                final = index == len(ranges) - 1
                while True:
                    got = await current.get()
                    if got is _END:
                        break
                    if isinstance(got, BaseException):
                        raise got
                    batch_state = _after(last)
                    if got.items:
                        last = got.items[-1].identifier
                    more = not final or got.next_state is not None
                    yield batch_state, Batch(got.items, _after(last) if more else None)
                queues[index] = None  # let the partition's pages go
        finally:
            for runner in runners:
                runner.cancel()
            if runners:
                await asyncio.gather(*runners, return_exceptions=True)

    def _parse_after(self, state: Any) -> str | None:
        if state is None:
            return None
        if (
            isinstance(state, dict)
            and set(state) == {"after", "max_keys"}
            and (state["after"] is None or isinstance(state["after"], str))
        ):
            after: str | None = state["after"]
            return after
        raise InvalidCursor("not a partitioned S3 listing state", source=self.name)

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        tracked = self.background_tasks
        tracked.add(task)
        task.add_done_callback(tracked.discard)
        return task

    async def _boundaries(self, prefix: str, count: int) -> list[str]:
        """Up to ``count - 1`` keys splitting the listing into ranges: from one page of
        ``Delimiter="/"`` listing per "folder", one folder level deeper while a level has
        fewer than ``count - 1`` entries (at most ``DISCOVERY_DEPTH`` levels and
        ``DISCOVERY_FANOUT`` folders a level)."""
        levels: list[set[str]] = []
        frontier = [prefix]
        for _ in range(DISCOVERY_DEPTH):
            pages = await _all(
                [self._page(p, MAX_KEYS, None, delimiter=PARTITION_DELIMITER) for p in frontier]
            )
            level = {key for entries, _ in pages for key, _ in entries}
            levels.append(level)
            folders = sorted(
                key for entries, _ in pages for key, item in entries if item.kind == "prefix"
            )
            if len(level) >= count - 1 or not folders or len(folders) > DISCOVERY_FANOUT:
                break
            frontier = folders
        wide = [level for level in levels if len(level) >= count - 1]
        candidates = sorted(wide[-1] if wide else set().union(*levels))
        if len(candidates) <= count - 1:
            return candidates
        step = len(candidates) / count
        return sorted({candidates[int(step * (i + 1))] for i in range(count - 1)})

    async def _run_range(
        self,
        prefix: str,
        lo: str | None,
        hi: str | None,
        after: str | None,
        queue: asyncio.Queue[Any],
    ) -> None:
        """List the keys ``k`` with ``lo <= k < hi`` (and ``k > after``) into ``queue``:
        batches, then ``_END`` (or the exception that stopped it)."""
        start_after = _before(lo) if lo is not None else None
        if after is not None and (start_after is None or after > start_after):
            start_after = after

        async def fetch(state: Any) -> Batch:
            token = state["token"]
            entries, next_token = await self._page(
                prefix, MAX_KEYS, token, start_after=None if token else start_after, stop_at=hi
            )
            items: list[Item] = []
            done = next_token is None
            for key, item in entries:
                if hi is not None and key >= hi:
                    done = True
                    break
                if (lo is None or key >= lo) and (after is None or key > after):
                    items.append(item)
            if self.text:
                await self._fill_texts(items)
            return Batch(items, None if done else {"token": next_token})

        try:
            async for _, batch in pump(
                fetch, {"token": None}, concurrency=1, track=self.background_tasks
            ):
                await queue.put(batch)
        except Exception as exc:
            await queue.put(exc)
            return
        await queue.put(_END)

    def _object_item(self, raw: Mapping[str, Any]) -> Item:
        key = str(raw["Key"])
        # {"Bucket": ..., **jsonable(raw)}, without jsonable's walk over the plain values
        # (a third of a listing's CPU before).
        record: dict[str, Any] = {"Bucket": self.bucket_name, **raw}
        for name, value in raw.items():
            if value.__class__ not in _PLAIN:
                record[name] = value.isoformat() if value.__class__ is datetime else jsonable(value)
        modified = raw.get("LastModified")
        return Item(
            key,
            record,
            self,
            title=basename(key),
            url=f"s3://{self.bucket_name}/{key}",
            updated_at=modified if isinstance(modified, datetime) else None,
            kind="object",
        )

    def _prefix_item(self, prefix: str) -> Item:
        return Item(
            prefix,
            {"Bucket": self.bucket_name, "Prefix": prefix},
            self,
            title=basename(prefix),
            url=self.url_of(prefix),
            kind="prefix",
        )

    # -- get ------------------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if not key:
            raise self.not_found(key, "an object key is required")
        if not key.startswith(self.prefix):
            raise self.not_found(key, f"outside the prefix {self.prefix!r}")

    async def get(self, identifier: str) -> Item:
        """The object's metadata (``HeadObject``), or a folder (``kind="prefix"``) for an
        identifier ending in ``/`` that no object has but some keys start with."""
        key = str(identifier)
        self._check_key(key)
        try:
            head = await self.client.call(
                "head_object",
                url=self.url_of(key),
                identifier=key,
                Bucket=self.bucket_name,
                Key=key,
            )
        except ItemNotFound:
            if key.endswith("/") and await self._is_folder(key):
                return self._prefix_item(key)
            raise
        raw: dict[str, Any] = {
            "Bucket": self.bucket_name,
            "Key": key,
            "Size": head.get("ContentLength"),
            "StorageClass": head.get("StorageClass") or "STANDARD",  # omitted when STANDARD
            "Metadata": {},
        }
        raw.update(jsonable({k: v for k, v in head.items() if k != "ResponseMetadata"}))
        modified = head.get("LastModified")
        item = Item(
            key,
            raw,
            self,
            title=basename(key),
            url=self.url_of(key),
            updated_at=modified if isinstance(modified, datetime) else None,
            kind="object",
        )
        size = head.get("ContentLength")
        if (
            self.text
            and isinstance(size, int)
            and size <= self.text_max_bytes
            and self._text_like(key, head.get("ContentType"))
        ):
            try:
                item.text = await self._read_text(key)
            except ItemNotFound:  # deleted since the HeadObject
                raise self.not_found(key, "deleted while being read") from None
        return item

    async def _is_folder(self, prefix: str) -> bool:
        response = await self.client.call(
            "list_objects_v2",
            url=self.url_of(prefix),
            identifier=prefix,
            Bucket=self.bucket_name,
            Prefix=prefix,
            MaxKeys=1,
        )
        return bool(response.get("Contents") or response.get("CommonPrefixes"))

    # -- content --------------------------------------------------------------------------

    async def _get_object(self, key: str, max_bytes: int | None = None) -> dict[str, Any]:
        self._check_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket_name, "Key": key}
        if max_bytes is not None:
            params["Range"] = f"bytes=0-{max_bytes - 1}"
        return await self.client.call("get_object", url=self.url_of(key), identifier=key, **params)

    async def read(self, identifier: str, max_bytes: int | None = None) -> bytes:
        """The object's content (its first ``max_bytes`` bytes when given: a ranged
        ``GetObject``). ``ItemNotFound`` when there is no such object."""
        key = str(identifier)
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0
        ):
            raise InvalidQuery(
                f"max_bytes must be a non-negative integer, not {max_bytes!r}", source=self.name
            )
        if max_bytes == 0:
            await self.client.call(
                "head_object",
                url=self.url_of(key),
                identifier=key,
                Bucket=self.bucket_name,
                Key=key,
            )
            return b""
        try:
            response = await self._get_object(key, max_bytes)
        except InvalidQuery as exc:
            if exc.status == 416:  # a range on an empty object
                return b""
            raise
        body = response["Body"]
        try:
            data = await self.client.read_body(body, operation="GetObject", url=self.url_of(key))
        finally:
            body.close()
        return data

    def open_stream(self, identifier: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        """The object's content in chunks of at most ``chunk_size`` bytes: an async context
        manager and an async iterator (see ``ObjectStream``)."""
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidQuery("chunk_size must be a positive integer", source=self.name)
        return ObjectStream(self, str(identifier), chunk_size)

    # -- text -----------------------------------------------------------------------------

    def _text_like(self, key: str, content_type: str | None) -> bool:
        if _extension(key) in self.text_extensions:
            return True
        media, _ = _media_type(content_type)
        if not media:
            return False
        family = media.split("/", 1)[0] + "/"
        return (
            media in self.text_types
            or family in self.text_types
            or media.endswith(("+json", "+xml"))
        )

    async def _read_text(self, key: str) -> str | None:
        response = await self._get_object(key)
        body = response["Body"]
        try:
            data = await self.client.read_body(body, operation="GetObject", url=self.url_of(key))
        finally:
            body.close()
        _, charset = _media_type(response.get("ContentType"))
        try:
            return data.decode(charset or "utf-8-sig")
        except (LookupError, UnicodeDecodeError):
            if charset is None:
                return None  # not text after all
            try:
                return data.decode("utf-8-sig")
            except UnicodeDecodeError:
                return None

    async def _fill_texts(self, items: list[Item]) -> None:
        wanted = [
            item
            for item in items
            if item.kind == "object"
            and isinstance(item.raw.get("Size"), int)
            and item.raw["Size"] <= self.text_max_bytes
            and _extension(item.identifier) in self.text_extensions
        ]
        if not wanted:
            return
        gate = asyncio.Semaphore(self.text_concurrency)

        async def fill(item: Item) -> None:
            async with gate:
                try:
                    item.text = await self._read_text(item.identifier)
                except ItemNotFound:  # deleted since the listing
                    item.text = None

        try:
            async with asyncio.TaskGroup() as group:
                for item in wanted:
                    group.create_task(fill(item))
        except BaseExceptionGroup as errors:  # the first failure, as itself
            raise errors.exceptions[0] from None


_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _page_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _next_token(body: Any) -> str | None:
    """The continuation token of a truncated page, from its XML tree (``None`` if there is
    none, or the body is not a tree)."""
    if not isinstance(body, Element):
        return None
    for ns in (_S3_NS, ""):
        if body.findtext(f"{ns}IsTruncated") == "true":
            token = body.findtext(f"{ns}NextContinuationToken")
            return token or None
    return None


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A read-ahead nobody awaited: its failure is not an unretrieved exception."""
    if not task.cancelled():
        task.exception()


def _after(key: str | None) -> dict[str, Any]:
    """A partitioned listing's state: the batch starts right after ``key``."""
    return {"after": key, "max_keys": MAX_KEYS}


def _before(key: str) -> str:
    """A string just below ``key`` (``StartAfter`` is exclusive). Only keys ending in
    U+10FFFF characters fall between it and ``key``; the range filter drops those."""
    last = ord(key[-1])
    if last == 0:
        return key[:-1]
    below = last - 1
    if 0xD800 <= below <= 0xDFFF:  # no surrogates in keys
        below = 0xD7FF
    return key[:-1] + chr(below) + "\U0010ffff"


async def _all(work: list[Any]) -> list[Any]:
    """Run coroutines at once; the first failure, as itself, cancels the others."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one) for one in work]
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [task.result() for task in tasks]
