"""HTTP sources honour HTTP_PROXY / NO_PROXY (``trust_env`` in the shared transport), from
the command line: a small forwarding proxy on 127.0.0.1 sees the requests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fakes._common import serve
from tests.fakes.greenhouse import make_app as make_greenhouse
from tests.fakes.greenhouse import make_dataset

ROOT = Path(__file__).resolve().parent.parent
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
    "content-length",
    "content-encoding",
}


def make_proxy(seen: list[str]) -> web.Application:
    """A forward proxy for plain HTTP (absolute-form requests): logs and forwards each."""

    async def forward(request: web.Request) -> web.StreamResponse:
        target = str(request.url)  # absolute-form: the URL the client asked the proxy for
        seen.append(f"{request.method} {target}")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method, target, headers=headers, data=await request.read()
            ) as upstream,
        ):
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            if "Content-Encoding" in upstream.headers:
                kept["Content-Encoding"] = upstream.headers["Content-Encoding"]
            return web.Response(status=upstream.status, headers=kept, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@pytest.fixture
async def sites() -> AsyncIterator[tuple[str, str, list[str]]]:
    seen: list[str] = []
    async with (
        serve(make_greenhouse(make_dataset("acme", n_jobs=5))) as board,
        serve(make_proxy(seen)) as proxy,
    ):
        yield board, proxy, seen


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncrepo.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def proxy_env(proxy: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.update(HTTP_PROXY=proxy, **extra)
    return env


async def test_a_source_goes_through_http_proxy(sites: tuple[str, str, list[str]]) -> None:
    board, proxy, seen = sites
    code, out, err = await run_cli(
        "list", "greenhouse://acme", "-o", f"base_url={board}", "-f", "jsonl", env=proxy_env(proxy)
    )
    assert code == 0, err
    assert len(out.splitlines()) == 5
    assert any(line.startswith(f"GET {board}/v1/boards/acme/jobs") for line in seen), seen


async def test_no_proxy_is_honoured(sites: tuple[str, str, list[str]]) -> None:
    board, proxy, seen = sites
    env = proxy_env(proxy, NO_PROXY="127.0.0.1")
    code, out, err = await run_cli(
        "list", "greenhouse://acme", "-o", f"base_url={board}", "-f", "jsonl", env=env
    )
    assert code == 0, err
    assert len(out.splitlines()) == 5
    assert seen == []


async def test_a_csv_url_goes_through_http_proxy(
    sites: tuple[str, str, list[str]], tmp_path: Path
) -> None:
    _, proxy, seen = sites
    files = web.Application()
    (tmp_path / "people.csv").write_text("id,name\n1,Ada\n2,Grace\n")
    files.router.add_static("/", tmp_path)
    async with serve(files) as base:
        code, out, err = await run_cli(
            "list", f"{base}/people.csv", "-f", "jsonl", env=proxy_env(proxy)
        )
    assert code == 0, err
    assert [json.loads(line)["raw"]["name"] for line in out.splitlines()] == ["Ada", "Grace"]
    assert any(f"{base}/people.csv" in line for line in seen), seen
