"""Google Drive files (``google.drive``).

``Files(token=None, *, folder=None, drive=None, mime_types=None, include_trashed=False,
all_drives=False, credentials=None, credentials_file=None, subject=None, ...)``

* ``list``: ``GET /drive/v3/files`` (``files.list``), following ``nextPageToken`` with
  ``pageSize`` up to 1,000 (Drive's cap, also the default ``page_size``), the next page
  prefetched while the caller consumes one. ``fields=`` asks only for what an item needs:
  ``nextPageToken, files(id, name, mimeType, description, parents, trashed, createdTime,
  modifiedTime, webViewLink, size, driveId, lastModifyingUser(displayName, emailAddress))``.
  Drive may return partial or even empty pages before the end: the listing goes on while a
  ``nextPageToken`` comes back (a token seen twice, or 100 empty pages in a row, end in our
  error instead of looping).
* Scope, as a ``q``: ``'<folder>' in parents`` (direct children of ``folder``), ``mimeType =
  '...'`` (any of ``mime_types``), ``trashed = false`` (unless ``include_trashed``).
  ``drive=ID`` lists a shared drive (``corpora=drive&driveId=ID&includeItemsFromAllDrives=
  true&supportsAllDrives=true``); ``all_drives=True`` lists My Drive and every shared drive
  (``corpora=allDrives``).
* ``since``: natively, ``modifiedTime >= '<RFC 3339, UTC, ms>'``.
* ``search(query)``: natively, ``fullText contains '<query>'``: Drive matches the words in
  the name, description and content (whole words; a phrase in double quotes inside the
  query is matched as a phrase). ``'`` and ``\\`` are escaped (``\\'``, ``\\\\``): a query
  cannot change the ``q`` around it.
* ``order``: ``created``/``-created``/``updated``/``-updated``/``name``/``-name`` ->
  ``orderBy`` (``createdTime``, ``modifiedTime desc``...). Drive refuses ``orderBy`` with a
  full-text query (it sorts by relevance): ``search(..., order=...)`` raises
  ``UnsupportedOption``.
* ``get(id)``: ``files.get`` with the same fields (``supportsAllDrives=true``).
* ``await repo.content(item_or_id)``: the bytes; ``repo.iter_content(item_or_id)`` streams
  them. Binary files stream ``alt=media``; Google Docs and Slides are exported as
  ``text/plain``, Sheets as ``text/csv`` (``files.export``, which Drive caps at 10 MB);
  other Google types (folders, forms...) raise ``UnsupportedOption``.

Items: ``identifier`` = file id, ``title`` = name, ``text`` = description, ``url`` =
``webViewLink``, ``created_at``/``updated_at`` = ``createdTime``/``modifiedTime``, ``author``
= ``lastModifyingUser.displayName`` (else its email), ``kind`` = ``"folder"`` or ``"file"``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from ...convert import parse_datetime
from ...exceptions import ConfigurationError, ItemNotFound, UnsupportedOption
from ...http import RetryPolicy
from ...repository import Capabilities, Item, PageRequest
from ...rest import Endpoint
from ._client import (
    GoogleRepository,
    PageToken,
    positive_int,
    rfc3339,
)

__all__ = ["EXPORT_FORMATS", "Files", "drive_string"]

DEFAULT_BASE_URL = "https://www.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/drive.readonly",)
FOLDER = "application/vnd.google-apps.folder"
GOOGLE_APPS = "application/vnd.google-apps."
#: What ``content`` exports each Google Docs editors type to.
EXPORT_FORMATS = {
    "application/vnd.google-apps.document": "text/plain",
    "application/vnd.google-apps.spreadsheet": "text/csv",
    "application/vnd.google-apps.presentation": "text/plain",
}
FILE_FIELDS = (
    "id,name,mimeType,description,parents,trashed,createdTime,modifiedTime,webViewLink,size,"
    "driveId,lastModifyingUser(displayName,emailAddress)"
)
LIST_FIELDS = f"nextPageToken,files({FILE_FIELDS})"
ORDER_BY = {
    "created": "createdTime",
    "-created": "createdTime desc",
    "updated": "modifiedTime",
    "-updated": "modifiedTime desc",
    "name": "name",
    "-name": "name desc",
}
MAX_PAGE_SIZE = 1000
_new = object.__new__


def drive_string(value: str) -> str:
    """``value`` as a Drive query string literal: single quotes, with ``\\`` and ``'``
    escaped by a backslash (the only escapes Drive's query language has)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Files(GoogleRepository):
    """Files of Google Drive (see the module docstring)."""

    name: ClassVar[str] = "google.drive"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=frozenset(ORDER_BY),
        max_page_size=MAX_PAGE_SIZE,
    )
    #: Drive's cap: a listing of 10,000 files takes 10 requests, not 100.
    default_page_size = MAX_PAGE_SIZE

    def __init__(
        self,
        token: str | None = None,
        *,
        folder: str | None = None,
        drive: str | None = None,
        mime_types: Sequence[str] | str | None = None,
        include_trashed: bool = False,
        all_drives: bool = False,
        credentials: Any = None,
        credentials_file: str | os.PathLike[str] | None = None,
        subject: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        scopes: Sequence[str] = SCOPES,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_connections: int = 20,
    ) -> None:
        for label, value in (("folder", folder), ("drive", drive)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"{label} must be a non-empty id", source=self.name)
        if drive is not None and all_drives:
            raise ConfigurationError("give drive= or all_drives=True, not both", source=self.name)
        if isinstance(mime_types, str):
            mime_types = [m.strip() for m in mime_types.split(",") if m.strip()]
        self.folder = folder.strip() if folder else None
        self.drive = drive.strip() if drive else None
        self.mime_types = tuple(mime_types or ())
        self.include_trashed = bool(include_trashed)
        self.all_drives = bool(all_drives)
        self.connect(
            base_url,
            token=token,
            credentials=credentials,
            credentials_file=credentials_file,
            subject=subject,
            scopes=scopes,
            retry=retry,
            timeout=timeout,
            max_connections=positive_int(max_connections, "max_connections", self.name),
        )

    def scope(self) -> Any:
        return {
            "folder": self.folder,
            "drive": self.drive,
            "all_drives": self.all_drives,
            "mime_types": list(self.mime_types),
            "trashed": self.include_trashed,
        }

    # -- listing --------------------------------------------------------------------------

    def query(self, request: PageRequest) -> str:
        """The ``q`` of a listing or search."""
        clauses: list[str] = []
        if self.folder is not None:
            clauses.append(f"{drive_string(self.folder)} in parents")
        if self.mime_types:
            kinds = " or ".join(f"mimeType = {drive_string(m)}" for m in self.mime_types)
            clauses.append(f"({kinds})" if len(self.mime_types) > 1 else kinds)
        if not self.include_trashed:
            clauses.append("trashed = false")
        if request.since is not None:
            clauses.append(f"modifiedTime >= {drive_string(rfc3339(request.since))}")
        if request.query is not None:
            clauses.append(f"fullText contains {drive_string(request.query)}")
        return " and ".join(clauses)

    def endpoint(self, request: PageRequest) -> Endpoint:
        params: dict[str, Any] = {"fields": LIST_FIELDS}
        q = self.query(request)
        if q:
            params["q"] = q
        if request.order is not None:
            if request.query is not None:
                raise UnsupportedOption(
                    "Drive sorts full-text search results by relevance: order= cannot be used "
                    "with search",
                    source=self.name,
                )
            params["orderBy"] = ORDER_BY[request.order]
        params.update(self._drive_params())
        return Endpoint(
            "/drive/v3/files", params=params, records="files", paginator=PageToken("pageSize")
        )

    def _drive_params(self) -> dict[str, Any]:
        if self.drive is not None:
            return {
                "corpora": "drive",
                "driveId": self.drive,
                "includeItemsFromAllDrives": True,
                "supportsAllDrives": True,
            }
        if self.all_drives:
            return {
                "corpora": "allDrives",
                "includeItemsFromAllDrives": True,
                "supportsAllDrives": True,
            }
        return {}

    # -- items ----------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        wanted = str(identifier).strip()
        if not wanted:
            raise self.not_found(wanted, "empty identifier")
        item = await self.get_item(
            f"/drive/v3/files/{quote(wanted, safe='')}",
            wanted,
            params={"fields": FILE_FIELDS, "supportsAllDrives": True},
        )
        reason = self._outside(item.raw)
        if reason is not None:
            raise self.not_found(wanted, reason)
        return item

    def _outside(self, raw: dict[str, Any]) -> str | None:
        if self.folder is not None and self.folder not in (raw.get("parents") or []):
            return f"it is not in folder {self.folder!r}"
        if self.drive is not None and raw.get("driveId") != self.drive:
            return f"it is not in shared drive {self.drive!r}"
        if self.mime_types and raw.get("mimeType") not in self.mime_types:
            return "its MIME type is outside the repository's mime_types"
        if not self.include_trashed and raw.get("trashed") is True:
            return "it is in the trash"
        return None

    def to_item(self, raw: Any) -> Item:
        # Every slot set directly, without Item.__init__'s keyword call: listings build
        # thousands of these (a test checks that every slot is set).
        get = raw.get
        user = get("lastModifyingUser")
        identifier = raw["id"]
        item = _new(Item)
        item.identifier = identifier if type(identifier) is str else str(identifier)
        item.raw = raw
        item.repository = self
        item.title = get("name")
        item.text = get("description")
        item.url = get("webViewLink")
        item.created_at = parse_datetime(get("createdTime"))
        item.updated_at = parse_datetime(get("modifiedTime"))
        item.author = (user.get("displayName") or user.get("emailAddress")) if user else None
        item.kind = "folder" if get("mimeType") == FOLDER else "file"
        return item

    # -- content --------------------------------------------------------------------------

    async def _content_path(self, item: Item | str) -> str:
        raw = item.raw if isinstance(item, Item) else (await self.get(str(item))).raw
        file_id = quote(str(raw["id"]), safe="")
        mime = str(raw.get("mimeType") or "")
        if mime in EXPORT_FORMATS:
            target = quote(EXPORT_FORMATS[mime], safe="")
            return f"/drive/v3/files/{file_id}/export?mimeType={target}&supportsAllDrives=true"
        if mime.startswith(GOOGLE_APPS):
            raise UnsupportedOption(
                f"Drive has no content to download for {mime} (only binary files and Google "
                "Docs, Sheets and Slides)",
                source=self.name,
            )
        return f"/drive/v3/files/{file_id}?alt=media&supportsAllDrives=true"

    async def iter_content(
        self, item: Item | str, *, chunk_size: int = 65536
    ) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive (Docs/Slides as text/plain, Sheets as text/csv)."""
        path = await self._content_path(item)
        try:
            async with self.client.stream(path) as response:
                async for chunk in response.content.iter_chunked(chunk_size):
                    yield chunk
        except ItemNotFound as exc:
            identifier = item.identifier if isinstance(item, Item) else str(item)
            raise self.not_found_from(identifier, exc) from None

    async def content(self, item: Item | str, *, max_bytes: int | None = None) -> bytes:
        """The file's bytes (see ``iter_content``); ``max_bytes`` stops reading past it."""
        chunks: list[bytes] = []
        total = 0
        stream = self.iter_content(item)
        try:
            async for chunk in stream:
                chunks.append(chunk)
                total += len(chunk)
                if max_bytes is not None and total >= max_bytes:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        data = b"".join(chunks)
        return data[:max_bytes] if max_bytes is not None else data

    def __repr__(self) -> str:
        where = f" folder={self.folder!r}" if self.folder else ""
        where += f" drive={self.drive!r}" if self.drive else ""
        return f"<{type(self).__name__} {self.name}{where}>"
