"""What the AWS sources share: one aiobotocore client per repository, and error mapping.

The client is created lazily, on first use inside the running event loop, reused for every
call and closed by ``aclose()``. Credentials, region and endpoint come from botocore's
standard chain (environment, ``AWS_PROFILE``, ``~/.aws``, ``AWS_ENDPOINT_URL``, instance
roles...), overridden by ``session_kwargs`` (boto3 ``Session`` keywords:
``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, ``region_name``,
``profile_name``, ``aws_account_id``, ``botocore_session``) and ``client_kwargs`` (keywords
of ``create_client``: ``endpoint_url``, ``region_name``, ``config``, ``verify``...).

Retries are botocore's own (``DEFAULT_RETRIES``: standard mode, 3 attempts, which covers
throttling, 5xx and connection errors), with connect and read timeouts; a ``config`` in
``client_kwargs`` is merged over these defaults. Errors botocore gives up on are mapped to
asyncrepo's (``map_error``), with the operation name as ``method``, an ``s3://`` URL as
``url``, and the vendor's message with every known secret scrubbed.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import os
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime
from typing import Any, Literal
from xml.etree.ElementTree import Element

# ``import aiobotocore`` first: a missing package must fail under its own name (a cached
# submodule would otherwise import even with the package itself marked missing).
import aiobotocore  # noqa: F401
import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as boto_errors
from botocore.loaders import JSONFileLoader
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp as _botocore_parse_timestamp

from ...exceptions import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
    RateLimited,
    SourceTimeout,
    SourceUnavailable,
)
from ...http import redact_url
from ._listing import RAW_BODY, ShapeParser, capturing, install

__all__ = [
    "DEFAULT_RETRIES",
    "AWSClient",
    "check_search_mode",
    "jsonable",
    "map_error",
]

_MODES = ("prefix", "contains")


def check_search_mode(operation: str, options: Mapping[str, Any], source: str) -> None:
    """The ``mode`` option both S3 repositories take: ``"prefix"`` (the vendor filters by
    prefix) or ``"contains"`` (a naive scan), for search only."""
    if "mode" not in options:
        return
    if operation != "search":
        raise InvalidQuery("mode= applies to search only", source=source)
    if options["mode"] not in _MODES:
        raise InvalidQuery(
            f"mode must be 'prefix' or 'contains', not {options['mode']!r}", source=source
        )


#: botocore's retry configuration for every AWS repository (override with
#: ``client_kwargs={"config": AioConfig(retries=...)}``).
DEFAULT_RETRIES: dict[str, Any] = {"max_attempts": 3, "mode": "standard"}
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MAX_POOL_CONNECTIONS = 16

#: boto3 ``Session`` keywords accepted in ``session_kwargs``.
SESSION_KEYS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "region_name",
        "profile_name",
        "aws_account_id",
        "botocore_session",
    }
)
_SECRET_KEYS = ("aws_secret_access_key", "aws_session_token")

# Error codes, by what they mean (S3's and the generic AWS ones).
_MISSING_BUCKET = frozenset({"NoSuchBucket"})
_MISSING = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchVersion", "NoSuchUpload"})
_AUTH = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "MissingAuthenticationToken",
        "AuthFailure",
        "RequestExpired",
        "RequestTimeTooSkewed",
        "401",
    }
)
_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "AccountProblem", "403"}
)
_THROTTLED = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
        "429",
    }
)
_CONFIG = frozenset(
    {
        "PermanentRedirect",
        "TemporaryRedirect",
        "301",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraintException",
        "InvalidBucketName",
        "InvalidRequest",
    }
)

Missing = Literal["item", "config"]


def jsonable(value: Any) -> Any:
    """A botocore value made JSON-serialisable: datetimes as ISO strings, bytes as base64."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parsing, fast for the two forms S3 sends.

    botocore parses every timestamp with dateutil (~0.3 ms each): most of the client's time
    on a 1,000-key ``ListObjectsV2`` page. S3 sends ISO 8601 in bodies and RFC 1123 in
    headers; both have a fast standard-library parser. Anything else goes to botocore's.
    """
    if isinstance(value, str):
        try:
            if value[4:5] == "-":  # 2024-01-31T12:00:00.000Z
                parsed = datetime.fromisoformat(value)
            elif value[3:5] == ", ":  # Wed, 31 Jan 2024 12:00:00 GMT
                parsed = email.utils.parsedate_to_datetime(value)
            else:
                parsed = None
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    result: datetime = _botocore_parse_timestamp(value)
    return result


def _scrubber(secrets: list[str]) -> Any:
    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return scrub


def map_error(
    exc: BaseException,
    *,
    source: str,
    operation: str | None,
    url: str | None,
    missing: Missing = "item",
    identifier: str | None = None,
    secrets: list[str] | None = None,
) -> AsyncRepoError:
    """The asyncrepo error for a botocore error (one that botocore's retries gave up on).

    ``missing`` says what a missing bucket means: ``"item"`` for a get (``ItemNotFound``),
    ``"config"`` for a listing (``ConfigurationError``: the repository points nowhere).
    """
    scrub = _scrubber([s for s in secrets or [] if s])
    context: dict[str, Any] = {"source": source, "method": operation, "url": url}
    if isinstance(exc, boto_errors.ClientError):
        response: Mapping[str, Any] = exc.response or {}
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        vendor = scrub(str(error.get("Message") or "")) or None
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if not isinstance(status, int):
            status = None
        context.update(status=status, vendor_message=vendor)
        label = f"{code}: {vendor}" if vendor and vendor != code else code or "error"
        bucket_missing = code in _MISSING_BUCKET
        if bucket_missing or code in _MISSING or status == 404:
            if missing == "config":
                what = "the bucket does not exist" if bucket_missing else "not found"
                return ConfigurationError(f"{what} ({code})", **context)
            what = "no such bucket" if bucket_missing else "no such object"
            if identifier is None:
                return ItemNotFound(f"{what} ({code})", **context)
            return ItemNotFound(f"no item {identifier!r}: {what}", identifier=identifier, **context)
        if code in _AUTH or status == 401:
            return AuthenticationError(f"the AWS credentials were refused ({label})", **context)
        if code in _DENIED or status == 403:
            return PermissionDenied(f"access denied ({label})", **context)
        if code in _THROTTLED or status == 429:
            return RateLimited(f"throttled, retries exhausted ({label})", **context)
        if code == "RequestTimeout":
            return SourceTimeout(f"the request timed out ({label})", **context)
        if code in _CONFIG or status in (301, 307):
            return ConfigurationError(
                f"the request does not fit the bucket (wrong region or name?) ({label})",
                **context,
            )
        if status is not None and status >= 500:
            return SourceUnavailable(f"S3 failed, retries exhausted ({label})", **context)
        if status is not None and 400 <= status < 500:
            return InvalidQuery(f"the request was rejected ({label})", **context)
        return SourceUnavailable(f"unexpected answer ({label})", **context)

    text = scrub(str(exc))
    if isinstance(exc, boto_errors.ConnectTimeoutError | boto_errors.ReadTimeoutError):
        return SourceTimeout(f"timed out, retries exhausted: {text}", **context)
    if isinstance(exc, asyncio.TimeoutError):
        return SourceTimeout("timed out", **context)
    if isinstance(exc, boto_errors.ConnectionError | boto_errors.HTTPClientError):
        return SourceUnavailable(f"cannot reach the endpoint, retries exhausted: {text}", **context)
    if isinstance(
        exc,
        boto_errors.NoCredentialsError
        | boto_errors.PartialCredentialsError
        | boto_errors.CredentialRetrievalError
        | boto_errors.TokenRetrievalError
        | boto_errors.SSOError,
    ):
        return AuthenticationError(f"no usable AWS credentials: {text}", **context)
    if isinstance(exc, boto_errors.ParamValidationError):
        return InvalidQuery(f"invalid request: {text}", **context)
    if isinstance(exc, ResponseParserError):
        return MalformedResponse(f"unreadable answer: {text}", **context)
    if isinstance(
        exc,
        boto_errors.ProfileNotFound
        | boto_errors.NoRegionError
        | boto_errors.InvalidRegionError
        | boto_errors.InvalidConfigError
        | boto_errors.InvalidEndpointConfigurationError
        | boto_errors.EndpointResolutionError
        | boto_errors.UnknownEndpointError,
    ):
        return ConfigurationError(f"AWS configuration: {text}", **context)
    if isinstance(exc, boto_errors.BotoCoreError):
        return SourceUnavailable(f"AWS SDK error: {text}", **context)
    return SourceUnavailable(f"{type(exc).__name__}: {text}", **context)


def _mapped(exc: BaseException) -> bool:
    return isinstance(
        exc,
        boto_errors.BotoCoreError
        | boto_errors.ClientError
        | ResponseParserError
        | asyncio.TimeoutError,
    )


def session_options(
    session_kwargs: Mapping[str, Any] | None,
    aioboto_session_kwargs: Mapping[str, Any] | None,
    *,
    source: str,
) -> dict[str, Any]:
    """``session_kwargs`` (or its older name ``aioboto_session_kwargs``), checked."""
    if session_kwargs is not None and aioboto_session_kwargs is not None:
        raise ConfigurationError(
            "pass session_kwargs= or its alias aioboto_session_kwargs=, not both", source=source
        )
    options = dict(session_kwargs or aioboto_session_kwargs or {})
    unknown = set(options) - SESSION_KEYS
    if unknown:
        raise ConfigurationError(
            f"unknown session_kwargs {', '.join(sorted(unknown))} "
            f"(accepted: {', '.join(sorted(SESSION_KEYS))}; client options such as "
            "endpoint_url go in client_kwargs=)",
            source=source,
        )
    return options


_shared_loader: Any = None


class _OrjsonFileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's model files read with orjson: about 3x faster than ``json.loads`` with an
    ``OrderedDict`` hook, and reading them is most of a client's creation (~0.1 s for S3,
    once per process). A file orjson refuses goes to botocore's own reader."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            payload = fp.read()
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return super()._load_file(full_path, open_method)


def _new_session(profile: str | None) -> AioSession:
    """A fresh session (it reads the environment and profile now), sharing the process's
    botocore data loader: loading the S3 service model costs ~0.25 s per session, and the
    loader only caches botocore's bundled JSON files."""
    global _shared_loader
    session = AioSession(profile=profile)
    if _shared_loader is None:
        _shared_loader = session.get_component("data_loader")
        if type(getattr(_shared_loader, "file_loader", None)) is JSONFileLoader:
            _shared_loader.file_loader = _OrjsonFileLoader()
    else:
        session.register_component("data_loader", _shared_loader)
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    return session


class AWSClient:
    """One aiobotocore client for one repository: created on first use, then reused."""

    def __init__(
        self,
        service: str,
        *,
        source: str,
        session_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.service = service
        self.source = source
        self._session_kwargs = dict(session_kwargs or {})
        self._client_kwargs = dict(client_kwargs or {})
        config = self._client_kwargs.get("config")
        if config is not None and not isinstance(config, AioConfig):
            raise ConfigurationError(
                "client_kwargs['config'] must be an aiobotocore.config.AioConfig", source=source
            )
        self.secrets = [
            str(options[key])
            for options in (self._session_kwargs, self._client_kwargs)
            for key in _SECRET_KEYS
            if options.get(key)
        ]
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._parsers: dict[str, ShapeParser] = {}

    def __repr__(self) -> str:
        return f"<AWSClient {self.service} endpoint={self.endpoint!r}>"

    @property
    def endpoint(self) -> str | None:
        """The configured endpoint URL (redacted), if one was given in ``client_kwargs``."""
        url = self._client_kwargs.get("endpoint_url")
        return redact_url(str(url)) if url else None

    def _config(self) -> AioConfig:
        config = AioConfig(
            retries=dict(DEFAULT_RETRIES),
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        user = self._client_kwargs.get("config")
        return config.merge(user) if user is not None else config

    async def get(self) -> Any:
        """The aiobotocore client, created on first use in the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        if self._lock is None or self._loop is not loop:
            # First use, or the repository moved to another event loop (a client is bound
            # to the loop that made it): start afresh in this one.
            self._client, self._stack, self._loop = None, None, loop
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                self._client = await self._create()
        return self._client

    async def _create(self) -> Any:
        options = dict(self._session_kwargs)
        session = options.pop("botocore_session", None)
        profile = options.pop("profile_name", None)
        kwargs: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        kwargs.update(self._client_kwargs)
        kwargs["config"] = self._config()
        stack = AsyncExitStack()
        try:
            if session is None:
                session = _new_session(profile)
            elif profile is not None:
                session.set_config_variable("profile", profile)
            client = await stack.enter_async_context(session.create_client(self.service, **kwargs))
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, boto_errors.BotoCoreError):
                raise ConfigurationError(
                    f"cannot create the {self.service} client: {_scrubber(self.secrets)(str(exc))}",
                    source=self.source,
                ) from None
            if isinstance(exc, TypeError | ValueError):
                raise ConfigurationError(
                    f"bad client_kwargs/session_kwargs: {_scrubber(self.secrets)(str(exc))}",
                    source=self.source,
                ) from None
            raise
        self._stack = stack
        # The fast listing path (``call_raw``) takes successful bodies from botocore's
        # parser; the handler does nothing for calls that did not ask (see ``_listing``).
        install(client.meta.events, client.meta.service_model.service_id.hyphenize())
        await self._learn_secrets(session)
        return client

    async def _learn_secrets(self, session: Any) -> None:
        """Add the secret key and token the credential chain found (environment, profile)
        to the values scrubbed from error messages. botocore's messages do not quote them;
        this is a second line of defence."""
        try:
            credentials = await session.get_credentials()
            if credentials is None:
                return
            frozen = await credentials.get_frozen_credentials()
        except Exception:  # no credentials (yet): the first call reports that
            return
        for value in (getattr(frozen, "secret_key", None), getattr(frozen, "token", None)):
            if value and str(value) not in self.secrets:
                self.secrets.append(str(value))

    async def call(
        self,
        method: str,
        *,
        url: str,
        missing: Missing = "item",
        identifier: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """``await client.<method>(**params)``, with botocore errors mapped."""
        client = await self.get()
        try:
            response: dict[str, Any] = await getattr(client, method)(**params)
        except Exception as exc:
            if not _mapped(exc):
                raise
            raise self.error(
                exc,
                operation=self.operation(method),
                url=url,
                missing=missing,
                identifier=identifier,
            ) from None
        return response

    async def call_raw(
        self,
        method: str,
        *,
        url: str,
        missing: Missing = "item",
        identifier: str | None = None,
        **params: Any,
    ) -> tuple[bytes | Element | None, dict[str, Any]]:
        """``call``, but the body of a successful answer is not parsed by botocore:
        ``(body, response)`` where ``response`` holds what botocore parsed (headers,
        ``ResponseMetadata``) and ``body`` is the raw body or its parsed XML root (see
        ``_listing``). Signing, retries and errors are botocore's as in ``call``. ``body``
        is ``None`` if botocore parsed the body after all (``response`` has it)."""
        await self.get()
        with capturing(self.operation(method)):
            response = await self.call(
                method, url=url, missing=missing, identifier=identifier, **params
            )
        if RAW_BODY not in response:
            return None, response
        body = response.pop(RAW_BODY)
        return (b"" if body is None else body), response

    async def output_parser(self, method: str) -> ShapeParser:
        """The fast parser of ``method``'s answers (compiled once per client)."""
        client = await self.get()
        operation = self.operation(method)
        parser = self._parsers.get(operation)
        if parser is None:
            shape = client.meta.service_model.operation_model(operation).output_shape
            parser = self._parsers[operation] = ShapeParser(shape, parse_timestamp)
        return parser

    async def read_body(
        self, body: Any, size: int | None = None, *, operation: str, url: str
    ) -> bytes:
        """``await body.read(size)`` on a streaming response body, with errors mapped."""
        try:
            data: bytes = await body.read(size)
        except Exception as exc:
            if not _mapped(exc):
                raise
            raise self.error(exc, operation=operation, url=url) from None
        return data

    def operation(self, method: str) -> str:
        """The API operation name of a client method (``list_objects_v2`` -> ``ListObjectsV2``)."""
        client = self._client
        mapping = getattr(getattr(client, "meta", None), "method_to_api_mapping", None)
        if isinstance(mapping, Mapping) and method in mapping:
            return str(mapping[method])
        return "".join(part[:1].upper() + part[1:] for part in method.split("_"))

    def error(
        self,
        exc: BaseException,
        *,
        operation: str | None,
        url: str | None,
        missing: Missing = "item",
        identifier: str | None = None,
    ) -> AsyncRepoError:
        return map_error(
            exc,
            source=self.source,
            operation=operation,
            url=url,
            missing=missing,
            identifier=identifier,
            secrets=self.secrets,
        )

    async def aclose(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
