"""A moto S3 server for the AWS tests (server mode, on 127.0.0.1, in this process).

Fixtures (import ``*_fixture`` into a test module; they are named without the suffix):
``moto_server`` (session: the endpoint URL), ``aws_env`` (fake credentials and config files,
so nothing reads the developer's ``~/.aws`` or reaches AWS) and ``s3`` (a fresh moto state
and helpers to fill it). Large fixtures go
straight into moto's backend store: an HTTP put costs ~10 ms, a backend put microseconds.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

ACCESS_KEY = "AKIAASYNCREPOTESTKEY"
SECRET_KEY = "asyncrepo-test-secret-DO-NOT-LEAK-0123456789"
REGION = "us-east-1"


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(name="aws_env")
def aws_env_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _post(url: str, data: bytes = b"") -> None:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request) as response:
        response.read()


class MotoS3:
    """Helpers over moto's in-process S3 backend."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    @property
    def client_kwargs(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint}

    @property
    def backend(self) -> Any:
        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def create_bucket(self, name: str, region: str = REGION) -> None:
        self.backend.create_bucket(name, region)

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes = b"x",
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        last_modified: datetime | None = None,
    ) -> None:
        fake = self.backend.put_object(bucket, key, body)
        if content_type is not None or metadata:
            headers = {f"x-amz-meta-{k}": v for k, v in (metadata or {}).items()}
            if content_type is not None:
                headers["Content-Type"] = content_type
            fake.set_metadata(headers)
        if last_modified is not None:
            fake.last_modified = last_modified.astimezone(UTC).replace(tzinfo=None)

    def reset(self) -> None:
        _post(f"{self.endpoint}/moto-api/reset")

    def require_auth(self, enabled: bool) -> None:
        """Make moto check credentials (IAM) from now on, or stop checking."""
        _post(f"{self.endpoint}/moto-api/reset-auth", b"0" if enabled else b"inf")


@pytest.fixture(name="s3")
def s3_fixture(moto_server: str, aws_env: None) -> Iterator[MotoS3]:
    helper = MotoS3(moto_server)
    helper.reset()
    try:
        yield helper
    finally:
        helper.require_auth(False)
        helper.reset()
