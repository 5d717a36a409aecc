"""google.drive against google-drive-mock, a third-party Drive v3 server (npm, MIT), run
with ``node``: the connector against a server we did not write.

The package is installed on first use into ``.cache/npm`` (gitignored) with ``npm install
--prefix``; the group is skipped, with the reason, when node or npm is missing or the install
fails (no registry access). What the mock does not implement is not tested here (it treats
``fullText contains`` as "match everything", ignores shared drives and has no export): those
are covered against the project's own fake in ``test_google_drive.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from asyncrepo import AuthenticationError, ItemNotFound, RetryPolicy
from asyncrepo.repositories.google.drive import Files

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "npm"
PACKAGES = ["google-drive-mock@1.2.0", "express@5.2.1", "cors@2.8.6"]
TOKEN = "valid-token"  # the mock's own accepted token
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0)
START = datetime(2025, 6, 1, tzinfo=UTC)
SERVER = (
    "const s = require('google-drive-mock').startServer(0, '127.0.0.1');"
    "s.on('listening', () => console.log('READY ' + s.address().port));"
)


def _install() -> str | None:
    """Install the mock if needed; the reason to skip, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if (CACHE / "node_modules" / "google-drive-mock" / "package.json").exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (needed once, to install google-drive-mock)"
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(CACHE),
                "--no-audit",
                "--no-fund",
                "--no-save",
                # fail fast without registry access: inside pytest-timeout's 120 s
                "--fetch-timeout=20000",
                "--fetch-retries=1",
                *PACKAGES,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm install google-drive-mock failed: {exc}"
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-2:])
        return f"npm install google-drive-mock failed: {tail[:300]}"
    return None


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    reason = _install()
    if reason is not None:
        pytest.skip(reason)
    node = shutil.which("node")
    assert node is not None
    process = subprocess.Popen(
        [node, "-e", SERVER],
        cwd=CACHE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NODE_ENV": "test"},
    )
    try:
        assert process.stdout is not None
        port = None
        for _ in range(10):  # it prints "Server is running..." first
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                port = int(line.split()[1])
                break
        if port is None:
            pytest.skip("google-drive-mock did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


class Drive:
    """A populated google-drive-mock: its ids, through its own create routes."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.folder = ""
        self.in_folder: list[str] = []
        self.all: list[str] = []
        self.modified: dict[str, datetime] = {}
        self.text_file = ""

    async def create(self, session: aiohttp.ClientSession, **metadata: Any) -> str:
        async with session.post(f"{self.base}/drive/v3/files", json=metadata) as response:
            assert response.status == 200, await response.text()
            created: dict[str, Any] = await response.json()
        self.all.append(created["id"])
        return str(created["id"])

    async def upload(self, session: aiohttp.ClientSession, name: str, data: str) -> str:
        boundary = "asyncrepo" + uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            + orjson.dumps({"name": name, "mimeType": "text/plain"}).decode()
            + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n{data}\r\n--{boundary}--"
        )
        async with session.post(
            f"{self.base}/upload/drive/v3/files?uploadType=multipart",
            data=body.encode(),
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        ) as response:
            assert response.status == 200, await response.text()
            created: dict[str, Any] = await response.json()
        self.all.append(created["id"])
        return str(created["id"])

    async def fill(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{self.base}/debug/clear") as response:
                assert response.status == 200
            self.folder = await self.create(
                session, name="Projects", mimeType="application/vnd.google-apps.folder"
            )
            for n in range(23):
                when = START + timedelta(hours=n)
                file_id = await self.create(
                    session,
                    name=f"file {n:02d}",
                    mimeType="text/plain",
                    parents=[self.folder],
                    modifiedTime=when.isoformat().replace("+00:00", "Z"),
                )
                self.in_folder.append(file_id)
                self.modified[file_id] = when
            await self.create(session, name="binned", mimeType="text/plain", trashed=True)
            self.all.pop()  # the trashed one is not listed
            self.text_file = await self.upload(session, "hello.txt", "hello from the mock")


@pytest.fixture
async def drive(mock_url: str) -> AsyncIterator[Drive]:
    filled = Drive(mock_url)
    await filled.fill()
    yield filled


def files(drive: Drive, **kwargs: Any) -> Files:
    kwargs.setdefault("token", TOKEN)
    return Files(base_url=drive.base, retry=FAST, **kwargs)


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_pages_against_the_mock(drive: Drive, page_size: int) -> None:
    async with files(drive, folder=drive.folder) as repo:
        pages = [
            [i.identifier for i in page] async for page in repo.list_pages(page_size=page_size)
        ]
    ids = [i for page in pages for i in page]
    assert sorted(ids) == sorted(drive.in_folder) and len(set(ids)) == len(ids) == 23
    assert all(len(page) == page_size for page in pages[:-1])


async def test_whole_listing_and_trash(drive: Drive) -> None:
    async with files(drive) as repo:
        items = [i async for i in repo.list()]
    assert sorted(i.identifier for i in items) == sorted(drive.all)
    assert all(i.title != "binned" for i in items)


async def test_since_against_the_mock(drive: Drive) -> None:
    since = START + timedelta(hours=15)
    async with files(drive, folder=drive.folder) as repo:
        ids = [i.identifier async for i in repo.list(since=since)]
    assert sorted(ids) == sorted(i for i, when in drive.modified.items() if when >= since)
    assert len(ids) == 8


async def test_order_against_the_mock(drive: Drive) -> None:
    async with files(drive, folder=drive.folder) as repo:
        stamps = [i.updated_at async for i in repo.list(order="-updated", page_size=5)]
    assert stamps == sorted(stamps, reverse=True)  # type: ignore[type-var]
    assert len(stamps) == 23


async def test_get_content_and_errors_against_the_mock(drive: Drive) -> None:
    async with files(drive) as repo:
        item = await repo.get(drive.text_file)
        assert item.title == "hello.txt"
        assert await repo.content(item) == b"hello from the mock"
        with pytest.raises(ItemNotFound):
            await repo.get("no-such-file")
    async with files(drive, token="wrong-token") as repo:
        with pytest.raises(AuthenticationError) as caught:
            [i async for i in repo.list()]
    assert caught.value.status == 401 and "wrong-token" not in str(caught.value)
