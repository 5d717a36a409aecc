"""The search page in a real browser: headless Chromium (Debian's ``chromium`` package),
driven over the DevTools protocol (a WebSocket, with aiohttp: no extra dependency).

The page loads, searches, shows results with highlighted snippets, source, date and link,
shows a failing source's error, loads more with the cursor, and filters by source. Skipped,
with the reason, where no Chromium binary is installed (``.ci/run`` installs it when apt is
available). ``ASYNCREPO_SCREENSHOT=path.png`` also saves a screenshot (docs/serve.png is one).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from asyncrepo.index.sqlite import SQLiteIndex
from asyncrepo.serve import make_app
from asyncrepo.sync import sync
from tests.sync_sources import MemorySource, handbook, record

CHROMIUM = next(
    (
        p
        for p in (os.environ.get("CHROMIUM"), *map(shutil.which, ("chromium", "chromium-browser")))
        if p
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (apt-get install chromium) for the browser test"
)
WAIT = 30.0  # seconds any one step may take before the test fails (never reached normally)


@contextlib.contextmanager
def server(db: Path) -> Iterator[str]:
    """The API and page on 127.0.0.1 in a thread of its own (the browser is a subprocess)."""
    ready: list[str] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        async with SQLiteIndex(db) as index:
            runner = web.AppRunner(make_app(index), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.append(f"http://127.0.0.1:{port}")
            stop.append(asyncio.Event())
            started.set()
            await stop[0].wait()
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(WAIT)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(WAIT)
        loop.close()


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, method: str, **params: Any) -> Any:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), WAIT)
            if message.get("id") == self.n:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str) -> Any:
        """Poll ``expression`` until it is truthy (bounded by WAIT)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"never true: {expression}")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,820",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            endpoint = None
            while endpoint is None:
                line = await asyncio.wait_for(process.stderr.readline(), WAIT)
                if not line:
                    raise AssertionError("chromium exited before its DevTools endpoint was up")
                found = re.search(rb"ws://127\.0\.0\.1:(\d+)/", line)
                if found:
                    endpoint = f"http://127.0.0.1:{found.group(1).decode()}"
            drain = asyncio.create_task(_drain(process.stderr))
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{endpoint}/json/list") as response:
                    targets = await response.json()
                page = next(t for t in targets if t["type"] == "page")
                async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    browser = Browser(ws)
                    await browser.call("Page.enable")
                    await browser.call("Runtime.enable")
                    yield browser
            drain.cancel()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def _make_index(db: Path) -> None:
    async with SQLiteIndex(db) as index:
        sources = {key: MemorySource(records) for key, records in handbook().items()}
        sources["notes"] = MemorySource({f"n{i:03d}": record(i) for i in range(30)})
        await sync(sources, index)
        await sync({"confluence": MemorySource({"x": record(1)}, fail_at_page=0)}, index)


async def test_the_search_page_in_headless_chromium(tmp_path: Path) -> None:
    db = tmp_path / "asyncrepo.db"
    await _make_index(db)
    with server(db) as base:
        async with chromium() as browser:
            await browser.call("Page.navigate", url=f"{base}/?q=search")
            count = await browser.until("document.querySelectorAll('li.result').length")
            assert count == 7  # every handbook entry says "search"
            first = await browser.js(
                "(() => { const li = document.querySelector('li.result');"
                " return {title: li.querySelector('.title').textContent,"
                " href: li.querySelector('a.title') && li.querySelector('a.title').href,"
                " mark: li.querySelector('.snippet mark') !== null,"
                " source: li.querySelector('.source').textContent,"
                " date: li.querySelector('.date').textContent}; })()"
            )
            assert first["mark"] and first["href"].startswith("https://example.invalid/")
            assert first["source"] in ("jira", "wiki", "github")
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", first["date"])
            errors = await browser.until("document.getElementById('errors').textContent")
            assert "confluence" in errors and "broke" in errors
            options = await browser.js(
                "[...document.querySelectorAll('#source option')].map(o => o.value)"
            )
            assert options == ["", "confluence", "github", "jira", "notes", "wiki"]

            # Escaped markup: a title with <b> shows as text.
            await browser.js(
                "document.getElementById('q').value = 'fails';document.getElementById('go').click()"
            )
            await browser.until(
                "document.querySelectorAll('li.result').length === 1 && "
                "document.querySelector('li.result .title').textContent.includes('<b>')"
            )

            # Load more with the cursor: 30 notes, 20 a page.
            await browser.js(
                "document.getElementById('q').value = 'record';"
                "document.getElementById('go').click()"
            )
            await browser.until("document.querySelectorAll('li.result').length === 20")
            assert await browser.js("getComputedStyle(document.getElementById('more')).display")
            await browser.js("document.getElementById('more').click()")
            await browser.until("document.querySelectorAll('li.result').length === 30")
            await browser.until(
                "getComputedStyle(document.getElementById('more')).display === 'none'"
            )
            ids = await browser.js(
                "[...document.querySelectorAll('li.result')].map(li => li.dataset.identifier)"
            )
            assert sorted(ids) == [f"n{i:03d}" for i in range(30)]

            # A filter: one source.
            await browser.js(
                "document.getElementById('q').value = 'search';"
                "document.getElementById('source').value = 'wiki';"
                "document.getElementById('go').click()"
            )
            await browser.until(
                "[...document.querySelectorAll('li.result')].length > 0 && "
                "[...document.querySelectorAll('li.result')]"
                ".every(li => li.dataset.source === 'wiki')"
            )

            target = os.environ.get("ASYNCREPO_SCREENSHOT")
            if target:
                await browser.js(
                    "document.getElementById('source').value = '';"
                    "document.getElementById('q').value = 'search index';"
                    "document.getElementById('go').click()"
                )
                await browser.until("document.querySelectorAll('li.result').length > 2")
                shot = await browser.call("Page.captureScreenshot", format="png")
                with open(target, "wb") as f:  # noqa: ASYNC230 (a test's one small write)
                    f.write(base64.b64decode(shot["data"]))
