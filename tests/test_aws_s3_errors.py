"""How the AWS sources report failures: moto with IAM checks on, a closed port, and the
mapping of botocore's error shapes that moto cannot produce (throttling, 5xx...)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from botocore import exceptions as boto_errors
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

from asyncrepo import (
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
from asyncrepo.repositories.aws._client import map_error, parse_timestamp
from asyncrepo.repositories.aws.s3_buckets import S3Buckets
from asyncrepo.repositories.aws.s3_objects import S3Objects
from tests.aws_moto import (  # noqa: F401 (fixtures)
    SECRET_KEY,
    MotoS3,
    aws_env_fixture,
    moto_server_fixture,
    s3_fixture,
)


def iam_user(name: str) -> tuple[str, str]:
    """An IAM user with an access key and no policy, made in moto's backend."""
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user("us-east-1", name)
    key = iam.create_access_key(name)
    return key.access_key_id, key.secret_access_key


def objects_as(s3: MotoS3, key_id: str, secret: str) -> S3Objects:
    return S3Objects(
        "guarded",
        "private/",
        session_kwargs={"aws_access_key_id": key_id, "aws_secret_access_key": secret},
        client_kwargs=s3.client_kwargs,
    )


async def test_unknown_access_key_is_an_authentication_error(s3: MotoS3) -> None:
    s3.create_bucket("guarded")
    s3.require_auth(True)
    async with S3Objects("guarded", "private/", client_kwargs=s3.client_kwargs) as repo:
        with pytest.raises(AuthenticationError) as info:
            _ = [item async for item in repo.list()]
    error = info.value
    assert "InvalidAccessKeyId" in str(error)
    assert error.source == "aws.s3_objects"
    assert error.method == "ListObjectsV2"
    assert error.url == "s3://guarded/private/"
    assert error.status == 403
    assert error.vendor_message
    assert SECRET_KEY not in str(error) and SECRET_KEY not in repr(error)
    assert SECRET_KEY in repo.client.secrets  # learnt from the environment, to be scrubbed


async def test_wrong_secret_is_an_authentication_error(s3: MotoS3) -> None:
    s3.create_bucket("guarded")
    key_id, _secret = iam_user("wrong-secret")
    s3.require_auth(True)
    bad_secret = "definitely-not-the-right-secret-key-0000"
    async with objects_as(s3, key_id, bad_secret) as repo:
        with pytest.raises(AuthenticationError) as info:
            _ = [item async for item in repo.list()]
    assert "SignatureDoesNotMatch" in str(info.value)
    assert bad_secret not in str(info.value)
    assert bad_secret not in repr(repo)


async def test_valid_key_without_permission_is_permission_denied(s3: MotoS3) -> None:
    s3.create_bucket("guarded")
    key_id, secret = iam_user("no-policy")
    s3.require_auth(True)
    async with objects_as(s3, key_id, secret) as repo:
        with pytest.raises(PermissionDenied) as info:
            _ = [item async for item in repo.list()]
        assert "AccessDenied" in str(info.value)
        assert secret not in str(info.value)
    async with S3Buckets(
        session_kwargs={"aws_access_key_id": key_id, "aws_secret_access_key": secret},
        client_kwargs=s3.client_kwargs,
    ) as buckets:
        with pytest.raises(PermissionDenied) as denied:
            _ = [item async for item in buckets.list()]
        assert denied.value.method == "ListBuckets"


async def test_no_credentials_at_all(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with S3Objects("guarded", client_kwargs=s3.client_kwargs) as repo:
        with pytest.raises(AuthenticationError, match="credentials"):
            await repo.get("key")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_endpoint_is_source_unavailable(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    # Fewer attempts than the default 3 to keep the test fast; the mapping is the same.
    config = AioConfig(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2)
    async with S3Objects(
        "bucket",
        "logs/",
        session_kwargs={"aws_access_key_id": "AKIA1", "aws_secret_access_key": SECRET_KEY},
        client_kwargs={"endpoint_url": endpoint, "config": config},
    ) as repo:
        with pytest.raises(SourceUnavailable) as info:
            _ = [item async for item in repo.list()]
    error = info.value
    assert error.method == "ListObjectsV2"
    assert error.url == "s3://bucket/logs/"
    assert error.retryable
    assert SECRET_KEY not in str(error)
    once = AioConfig(retries={"max_attempts": 1})
    async with S3Buckets(client_kwargs={"endpoint_url": endpoint, "config": once}) as repo:
        with pytest.raises(SourceUnavailable):
            _ = [item async for item in repo.list()]
        with pytest.raises(SourceUnavailable):
            await repo.get("bucket")
    async with S3Objects("bucket", client_kwargs={"endpoint_url": endpoint, "config": once}) as o:
        with pytest.raises(SourceUnavailable) as got:
            await o.get("key")
        assert got.value.method == "HeadObject"
        with pytest.raises(SourceUnavailable):
            await o.read("key")


async def test_default_retry_configuration() -> None:
    repo = S3Objects("bucket")
    config = repo.client._config()
    assert config.retries == {"max_attempts": 3, "mode": "standard"}
    assert config.connect_timeout and config.read_timeout
    merged = S3Objects(
        "bucket", client_kwargs={"config": AioConfig(retries={"max_attempts": 7})}
    ).client._config()
    assert merged.retries["max_attempts"] == 7
    assert merged.read_timeout == config.read_timeout


# -- the mapping itself, on botocore's error shapes --------------------------------------------


def client_error(code: str, status: int, message: str = "", operation: str = "ListObjectsV2"):
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RequestId": "R", "HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return boto_errors.ClientError(response, operation)


def mapped(exc: BaseException, **kwargs: Any) -> AsyncRepoError:
    options: dict[str, Any] = {
        "source": "aws.s3_objects",
        "operation": "ListObjectsV2",
        "url": "s3://bucket/prefix",
        "secrets": [SECRET_KEY],
    }
    options.update(kwargs)
    return map_error(exc, **options)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("InvalidAccessKeyId", 403, AuthenticationError),
        ("SignatureDoesNotMatch", 403, AuthenticationError),
        ("ExpiredToken", 400, AuthenticationError),
        ("AccessDenied", 403, PermissionDenied),
        ("403", 403, PermissionDenied),
        ("SlowDown", 503, RateLimited),
        ("ThrottlingException", 400, RateLimited),
        ("InternalError", 500, SourceUnavailable),
        ("ServiceUnavailable", 503, SourceUnavailable),
        ("RequestTimeout", 400, SourceTimeout),
        ("PermanentRedirect", 301, ConfigurationError),
        ("InvalidArgument", 400, InvalidQuery),
        ("NoSuchKey", 404, ItemNotFound),
        ("404", 404, ItemNotFound),
    ],
)
def test_client_error_mapping(code: str, status: int, expected: type[AsyncRepoError]) -> None:
    error = mapped(client_error(code, status, f"details mentioning {SECRET_KEY}"))
    assert type(error) is expected
    assert error.status == status
    assert error.method == "ListObjectsV2"
    assert error.url == "s3://bucket/prefix"
    assert error.source == "aws.s3_objects"
    assert SECRET_KEY not in str(error)
    assert "***" in (error.vendor_message or "")


def test_missing_bucket_depends_on_the_call() -> None:
    exc = client_error("NoSuchBucket", 404, "The specified bucket does not exist")
    assert isinstance(mapped(exc, missing="config"), ConfigurationError)
    found = mapped(exc, missing="item", identifier="k")
    assert isinstance(found, ItemNotFound)
    assert found.identifier == "k"


def test_sdk_error_mapping() -> None:
    url = "http://127.0.0.1:9/bucket"
    assert isinstance(
        mapped(boto_errors.EndpointConnectionError(endpoint_url=url)), SourceUnavailable
    )
    assert isinstance(mapped(boto_errors.ConnectTimeoutError(endpoint_url=url)), SourceTimeout)
    assert isinstance(
        mapped(boto_errors.ReadTimeoutError(endpoint_url=url, error="slow")), SourceTimeout
    )
    assert isinstance(mapped(boto_errors.NoCredentialsError()), AuthenticationError)
    assert isinstance(mapped(boto_errors.ProfileNotFound(profile="p")), ConfigurationError)
    assert isinstance(mapped(boto_errors.ParamValidationError(report="bad")), InvalidQuery)
    from botocore.parsers import ResponseParserError

    assert isinstance(mapped(ResponseParserError("garbled")), MalformedResponse)


def test_timestamp_parser_matches_botocore() -> None:
    from botocore.utils import parse_timestamp as slow

    for value in (
        "2024-01-31T12:34:56.000Z",
        "2024-01-31T12:34:56Z",
        "Wed, 31 Jan 2024 12:34:56 GMT",
        "1706704496",
    ):
        assert parse_timestamp(value) == slow(value)
        assert parse_timestamp(value).tzinfo is not None
