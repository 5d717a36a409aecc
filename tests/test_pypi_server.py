"""``pypi.packages`` against a real index server: pypiserver (a test dependency), started on
127.0.0.1 over a directory of tiny wheels built here. pypiserver serves the Simple API as
PEP 503 HTML only (it ignores the JSON ``Accept``) and has no JSON API or feed, so this
checks the HTML fallback, project pages and redirects of a real server."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asyncrepo import ItemNotFound, UnsupportedOption
from asyncrepo.repositories.pypi.packages import Packages

# (distribution name as spelled, version): two spellings of one project on purpose.
WHEELS = [
    ("Alpha_Pkg", "1.0"),
    ("alpha-pkg", "1.1"),
    ("beta", "0.1"),
    ("zeta.tools", "2.0"),
    ("Gamma-Lib", "0.3"),
]
EXPECTED = ["alpha-pkg", "beta", "gamma-lib", "zeta-tools"]


def build_wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal valid wheel (a package, METADATA, WHEEL, RECORD)."""
    dist = name.replace("-", "_").replace(".", "_")
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist}/__init__.py", f'__version__ = "{version}"\n')
        wheel.writestr(
            f"{info}/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test {name}\n",
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: asyncrepo-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("pypiserver") is None:
        pytest.skip("pypiserver is not installed (pip install 'asyncrepo[test]')")
    directory = tmp_path_factory.mktemp("wheels")
    for name, version in WHEELS:
        build_wheel(directory, name, version)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "pypiserver",
        "run",
        "-p",
        str(port),
        "-i",
        "127.0.0.1",
        "-a",
        ".",
        "-P",
        ".",
        "--disable-fallback",
        "--log-stream",
        "none",
        str(directory),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/simple/") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    for _ in range(300):
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            pytest.skip(f"pypiserver could not start: {error[-300:]}")
        if asyncio.run(probe()):
            return
        time.sleep(0.1)
    pytest.skip("pypiserver did not answer within 30 s")


async def collect(stream: Any) -> list[Any]:
    return [x async for x in stream]


@pytest.fixture
async def packages(server: str) -> AsyncIterator[Packages]:
    async with Packages(server + "/simple") as repo:
        yield repo


def test_the_real_server_serves_html_only(server: str) -> None:
    # what the fallback is for: pypiserver answers the PEP 691 JSON Accept with HTML
    async def content_type() -> str:
        headers = {"Accept": "application/vnd.pypi.simple.v1+json"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(server + "/simple/", headers=headers) as r,
        ):
            return r.headers["Content-Type"]

    assert asyncio.run(content_type()).startswith("text/html")


@pytest.mark.parametrize("page_size", [1, 3, 100])
async def test_list_through_the_html_fallback(packages, page_size) -> None:
    pages = await collect(packages.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert sorted(ids) == EXPECTED and len(ids) == len(set(ids))
    assert all(len(page) == page_size for page in pages[:-1])
    assert all(item.url == f"{packages.index_url}/{item.identifier}/" for p in pages for item in p)


async def test_get_reads_the_project_page(packages) -> None:
    item = await packages.get("Alpha_Pkg")  # pypiserver redirects to the normalised name
    assert item.identifier == "alpha-pkg"
    files = sorted(f["filename"] for f in item.raw["files"])
    assert files == ["Alpha_Pkg-1.0-py3-none-any.whl", "alpha_pkg-1.1-py3-none-any.whl"]
    assert all("#sha256=" in f["url"] for f in item.raw["files"])
    with pytest.raises(ItemNotFound):
        await packages.get("no-such-thing")


async def test_search_over_names(packages) -> None:
    assert [i.identifier async for i in packages.search("ALPHA")] == ["alpha-pkg"]
    found = sorted([i.identifier async for i in packages.search("a", mode="prefix")])
    assert found == ["alpha-pkg"]
    details = [i async for i in packages.search("tools", details=True)]
    assert [i.identifier for i in details] == ["zeta-tools"] and details[0].raw["files"]


async def test_since_is_unsupported_without_a_feed(packages) -> None:
    with pytest.raises(UnsupportedOption):
        await collect(packages.list(since=datetime(2020, 1, 1, tzinfo=UTC)))
