"""A real OpenSearch-compatible server for tests and benchmarks: ``osmem-server``.

The PyPI package ``osmem-server`` bundles a static binary (an in-memory server speaking the
OpenSearch 3.x REST API) that starts in milliseconds. This module starts it as a plain
subprocess::

    osmem-server --addr 127.0.0.1:0 --no-ja --parent-pid <our pid>

reads the one JSON line it prints when ready (``{"url": "http://127.0.0.1:PORT", ...}``),
and stops it by closing its stdin (it exits when stdin closes; ``--parent-pid`` also ends
it if this process dies). The binary is found through the package (``OSMEM_SERVER_BIN``
overrides it).

* ``running_osmem()``: a context manager yielding the base URL;
* ``osmem_base_url``: a session-scoped pytest fixture over it, which skips the test with
  the reason when the package is missing or the server cannot start;
* ``bulk_index(base_url, index, docs, ...)``: create an index and load documents with
  ``_bulk`` (async, aiohttp), for seeding.

The package also registers a pytest plugin of its own (fixtures ``osmem_server``,
``osmem_clone``, ``osmem_url``); this module's names do not clash with those.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import IO, Any

import pytest

__all__ = [
    "OsmemUnavailable",
    "bulk_index",
    "open_points_in_time",
    "osmem_base_url",
    "osmem_binary",
    "running_osmem",
]

START_TIMEOUT = 30.0


class OsmemUnavailable(RuntimeError):
    """The osmem-server binary is not installed here or did not start."""


def osmem_binary() -> str:
    """The path of the osmem-server binary (``OSMEM_SERVER_BIN`` first)."""
    override = os.environ.get("OSMEM_SERVER_BIN")
    if override:
        return override
    try:
        from osmem_server import (  # type: ignore[import-untyped]
            OsmemError,
            resolve_binary,
        )
    except ImportError as exc:
        raise OsmemUnavailable(
            "the osmem-server package is not installed (pip install osmem-server)"
        ) from exc
    try:
        return str(resolve_binary())
    except OsmemError as exc:
        raise OsmemUnavailable(str(exc)) from exc


def _drain(stream: IO[str]) -> None:
    for _ in stream:  # keep the pipe empty so the server never blocks on a write
        pass


@contextmanager
def running_osmem(*, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Start osmem-server on 127.0.0.1 (a free port); yield its base URL; stop it on exit."""
    binary = osmem_binary()
    args = [binary, "--addr", "127.0.0.1:0", "--no-ja", "--parent-pid", str(os.getpid())]
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except OSError as exc:
        raise OsmemUnavailable(f"cannot run {binary}: {exc}") from exc
    assert process.stdout is not None and process.stdin is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else ""
        try:
            url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            raise OsmemUnavailable(
                f"osmem-server did not start within {timeout:g} s (it printed {line[:200]!r})"
            ) from None
        drainer = threading.Thread(target=_drain, args=(process.stdout,), daemon=True)
        drainer.start()
        yield str(url).rstrip("/")
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture(scope="session")
def osmem_base_url() -> Iterator[str]:
    """The base URL of an osmem-server shared by the session (tests use their own indexes);
    skips, with the reason, where the server cannot run."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(running_osmem())
        except OsmemUnavailable as exc:
            pytest.skip(f"osmem-server unavailable: {exc}")
        yield url


async def bulk_index(
    base_url: str,
    index: str,
    docs: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    mappings: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    chunk: int = 5000,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Create ``index`` (with ``mappings``/``settings``) and load ``(id, source)`` pairs
    with ``_bulk`` in chunks, refreshing at the end. Returns the number loaded; raises
    ``RuntimeError`` if the server reports an error."""
    import aiohttp
    import orjson

    count = 0
    async with aiohttp.ClientSession(headers=dict(headers or {})) as session:
        definition: dict[str, Any] = {}
        if mappings:
            definition["mappings"] = dict(mappings)
        if settings:
            definition["settings"] = dict(settings)
        async with session.put(f"{base_url}/{index}", json=definition) as response:
            if response.status >= 300:
                raise RuntimeError(f"creating {index}: {response.status} {await response.text()}")

        async def send(lines: list[bytes]) -> None:
            body = b"\n".join(lines) + b"\n"
            async with session.post(
                f"{base_url}/_bulk",
                data=body,
                headers={"Content-Type": "application/x-ndjson"},
            ) as response:
                answer = orjson.loads(await response.read())
                if response.status >= 300 or answer.get("errors"):
                    raise RuntimeError(f"bulk load into {index} failed: {str(answer)[:300]}")

        lines: list[bytes] = []
        for doc_id, source in docs:
            lines.append(orjson.dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(orjson.dumps(source))
            count += 1
            if len(lines) >= 2 * chunk:
                await send(lines)
                lines = []
        if lines:
            await send(lines)
        async with session.post(f"{base_url}/{index}/_refresh") as response:
            if response.status >= 300:
                raise RuntimeError(f"refresh of {index}: {response.status}")
    return count


async def open_points_in_time(base_url: str) -> list[str]:
    """The ids of the points in time the server holds (OpenSearch's
    ``GET /_search/point_in_time/_all``)."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/_search/point_in_time/_all") as response,
    ):
        body = await response.json()
    return [p["pit_id"] for p in body.get("pits", [])]
