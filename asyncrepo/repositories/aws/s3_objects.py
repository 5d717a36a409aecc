"""The objects of an S3 bucket, under an optional key prefix (``aws.s3_objects``).

Listing: ``ListObjectsV2``, one call per vendor page, each following the previous page's
``NextContinuationToken`` (the 0.0.9 connector restarted its paginator on every page and
returned page 1 forever past 1,000 keys). A page state is ``{"token": ..., "max_keys": ...}``:
the page at a state is always fetched with the ``MaxKeys`` it was first fetched with, so a
cursor (state + index in the page) resumes at the right key whatever ``page_size`` the
resuming call asks for. A listing whose token repeats, or that says it is truncated but
gives no token, raises ``MalformedResponse`` instead of looping.

Options of ``list``/``search``: ``delimiter="/"`` lists the "folders" (``CommonPrefixes``)
as items of their own (``kind="prefix"``, identifier = the prefix) beside the objects
(``kind="object"``), in key order; ``mode="contains"`` (search only) matches the query
anywhere (naive search over the whole listing) instead of as a key prefix.

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
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest, Repository
from ._client import AWSClient, check_search_mode, jsonable, session_options

__all__ = ["TEXT_EXTENSIONS", "TEXT_TYPES", "ObjectStream", "S3Objects"]

#: ListObjectsV2's page cap.
MAX_KEYS = 1000
DEFAULT_CHUNK_SIZE = 1 << 20

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
        options=frozenset({"delimiter", "mode"}),
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
        self.bucket_name = bucket_name
        self.prefix = prefix or ""
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
        await super().aclose()  # cancels page fetches of abandoned streams first
        await self.client.aclose()

    # -- options --------------------------------------------------------------------------

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        delimiter = options.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
            raise InvalidQuery(
                f"delimiter must be a non-empty string, not {delimiter!r}", source=self.name
            )
        check_search_mode(operation, options, self.name)

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
        prefix = self._list_prefix(request)
        params: dict[str, Any] = {"Bucket": self.bucket_name, "MaxKeys": max_keys}
        if prefix:
            params["Prefix"] = prefix
        delimiter = request.options.get("delimiter")
        if delimiter:
            params["Delimiter"] = delimiter
        if token:
            params["ContinuationToken"] = token
        url = self.url_of(prefix)
        response = await self.client.call("list_objects_v2", url=url, missing="config", **params)
        try:
            entries: list[tuple[str, Item]] = []
            for raw in response.get("Contents") or []:
                entries.append((str(raw["Key"]), self._object_item(raw)))
            for raw in response.get("CommonPrefixes") or []:
                entries.append((str(raw["Prefix"]), self._prefix_item(str(raw["Prefix"]))))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedResponse(
                f"unexpected ListObjectsV2 answer: {exc!r}",
                source=self.name,
                method="ListObjectsV2",
                url=url,
            ) from None
        entries.sort(key=lambda entry: entry[0])  # S3's order: objects and folders by key
        items = [item for _, item in entries]
        if self.text:
            await self._fill_texts(items)
        if not response.get("IsTruncated"):
            return Batch(items)
        next_token = response.get("NextContinuationToken")
        if not next_token or next_token == token:
            problem = "repeated its continuation token" if next_token else "gave no token"
            raise MalformedResponse(
                f"ListObjectsV2 said the listing continues but {problem}",
                source=self.name,
                method="ListObjectsV2",
                url=url,
            )
        return Batch(items, {"token": next_token, "max_keys": max_keys})

    def _object_item(self, raw: Mapping[str, Any]) -> Item:
        key = str(raw["Key"])
        modified = raw.get("LastModified")
        record: dict[str, Any] = {"Bucket": self.bucket_name, **jsonable(dict(raw))}
        return Item(
            key,
            record,
            self,
            title=basename(key),
            url=self.url_of(key),
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
