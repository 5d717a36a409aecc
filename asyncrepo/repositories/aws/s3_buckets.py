"""The S3 buckets of an account (``aws.s3_buckets``).

Listing: ``ListBuckets``, paginated with ``MaxBuckets``/``ContinuationToken`` (AWS rejects
unpaginated calls for accounts allowed more than 10,000 buckets). Each call asks for the
API's maximum, 10,000 buckets, whatever the caller's ``page_size`` (pages are assembled
here): S3-compatible servers that honour ``MaxBuckets`` but return no token (moto does so)
would otherwise cut the listing short silently.

Get: ``HeadBucket`` (which works for any bucket the credentials may reach), its region from
the ``BucketRegion`` header or else ``GetBucketLocation``, and its creation date from a
``ListBuckets`` narrowed to the name (only known for the account's own buckets).

Search: the query is a bucket-name prefix, sent as ``ListBuckets``' ``Prefix`` and checked
again here (servers that ignore ``Prefix`` still give the right answer); with
``mode="contains"`` the query is matched naively against every bucket instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from ...exceptions import (
    ConfigurationError,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
)
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest, Repository
from ._client import AWSClient, check_search_mode, jsonable, session_options

__all__ = ["S3Buckets"]

#: ListBuckets' page cap.
MAX_BUCKETS = 10_000


class S3Buckets(Repository):
    """The buckets the credentials may list.

    Items: identifier and title = the bucket name, ``url`` = ``s3://name``, ``created_at``
    = its creation date, ``kind="bucket"``; ``raw`` has ``Name``, ``CreationDate`` (ISO)
    and ``BucketRegion`` (the region, where ListBuckets reports it, which AWS does; ``get``
    always reports it).

    ``session_kwargs`` (alias ``aioboto_session_kwargs``) and ``client_kwargs``: see
    ``asyncrepo.repositories.aws._client``. Search options: ``mode="prefix"`` (default) or
    ``"contains"``.
    """

    name = "aws.s3_buckets"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="prefix",
        since="client",
        options=frozenset({"mode"}),
        max_page_size=MAX_BUCKETS,
    )

    def __init__(
        self,
        *,
        page_size: int = 100,
        session_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        aioboto_session_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.default_page_size = page_size
        self.client = AWSClient(
            "s3",
            source=self.name,
            session_kwargs=session_options(
                session_kwargs, aioboto_session_kwargs, source=self.name
            ),
            client_kwargs=client_kwargs,
        )

    def scope(self) -> Any:
        return "s3://"

    def __repr__(self) -> str:
        endpoint = self.client.endpoint
        return "<S3Buckets aws.s3_buckets" + (f" endpoint={endpoint!r}>" if endpoint else ">")

    async def aclose(self) -> None:
        await super().aclose()  # cancels page fetches of abandoned streams first
        await self.client.aclose()

    # -- options --------------------------------------------------------------------------

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        check_search_mode(operation, options, self.name)

    def search_is_naive(self, options: Mapping[str, Any]) -> bool:
        return options.get("mode") == "contains"

    # -- listing --------------------------------------------------------------------------

    def to_item(self, raw: Mapping[str, Any]) -> Item:
        name = str(raw["Name"])
        created = raw.get("CreationDate")
        record = jsonable(dict(raw))
        return Item(
            name,
            record,
            self,
            title=name,
            url=f"s3://{name}",
            created_at=created if isinstance(created, datetime) else None,
            kind="bucket",
        )

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        prefix = None
        if request.query is not None and request.options.get("mode") != "contains":
            prefix = request.query
        params: dict[str, Any] = {"MaxBuckets": MAX_BUCKETS}
        if prefix:
            params["Prefix"] = prefix
        if state is not None:
            params["ContinuationToken"] = state
        response = await self.client.call("list_buckets", url="s3://", missing="config", **params)
        try:
            records = list(response.get("Buckets") or [])
            items = [self.to_item(raw) for raw in records]
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedResponse(
                f"unexpected ListBuckets answer: {exc!r}",
                source=self.name,
                method="ListBuckets",
                url="s3://",
            ) from None
        if prefix:  # a server that ignores Prefix still yields the right answer
            items = [item for item in items if item.identifier.startswith(prefix)]
        token = response.get("ContinuationToken")
        if not token or not records:
            return Batch(items)
        if token == state:
            raise MalformedResponse(
                "ListBuckets repeated its continuation token",
                source=self.name,
                method="ListBuckets",
                url="s3://",
            )
        return Batch(items, token)

    # -- get ------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        name = str(identifier)
        if not name or "/" in name:
            raise self.not_found(name, "not a bucket name")
        url = f"s3://{name}"
        head = await self.client.call("head_bucket", url=url, identifier=name, Bucket=name)
        listed = await self._listed(name)
        region = head.get("BucketRegion")
        if not region:
            region = await self._location(name)
        raw: dict[str, Any] = dict(listed or {"Name": name})
        raw["Name"] = name
        if region:
            raw["BucketRegion"] = region
        for key in ("BucketLocationType", "BucketLocationName", "AccessPointAlias"):
            if head.get(key) is not None:
                raw[key] = head[key]
        return self.to_item(raw)

    async def _listed(self, name: str) -> dict[str, Any] | None:
        """The bucket's ListBuckets record (creation date), if the account owns it."""
        token = None
        try:
            while True:
                params: dict[str, Any] = {"MaxBuckets": MAX_BUCKETS, "Prefix": name}
                if token:
                    params["ContinuationToken"] = token
                response = await self.client.call(
                    "list_buckets", url="s3://", missing="config", **params
                )
                for raw in response.get("Buckets") or []:
                    if raw.get("Name") == name:
                        return dict(raw)
                next_token = response.get("ContinuationToken")
                if not next_token or next_token == token:
                    return None
                token = next_token
        except (PermissionDenied, ConfigurationError, ItemNotFound):
            # HeadBucket decides whether the bucket is reachable; without
            # s3:ListAllMyBuckets the creation date is simply unknown.
            return None

    async def _location(self, name: str) -> str | None:
        try:
            response = await self.client.call(
                "get_bucket_location", url=f"s3://{name}", identifier=name, Bucket=name
            )
        except PermissionDenied:
            return None
        constraint = response.get("LocationConstraint")
        if not constraint:
            return "us-east-1"  # S3's historical answer for us-east-1
        if constraint == "EU":
            return "eu-west-1"
        return str(constraint)
