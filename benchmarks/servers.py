"""Servers the benchmarks talk to, each in a process of its own (so that they never share
the GIL with the measured client), on 127.0.0.1.

``with serve("github", n_repos=5000, latency=0.02) as url: ...`` starts
``python -m benchmarks.servers github '{"n_repos": 5000, "latency": 0.02}'``, waits for it
to print ``READY <url>``, and stops it on exit (the server also exits when its stdin
closes, so it cannot outlive the benchmark).

Kinds: ``github`` (the project's GitHub fake: every repository owned by ``octocat``, rate
limits lifted), ``jira`` (the Jira Cloud fake), ``file`` (one static file: the CSV
scenario's), ``moto`` (moto's S3 server, filled through its backend store) and ``s3`` (a
fast ``ListObjectsV2`` server over the same keys: ``scenarios.s3.fast_s3_app``).

The vendor fakes render every answer in Python (tens of milliseconds of CPU for a page of
100 repositories or issues), one request at a time: left alone they would be the
bottleneck, and a benchmark of the client would measure the fake. So ``replay`` wraps them:
it answers every request after ``latency`` seconds (requests wait concurrently, as on a
real service), rendering a response the first time it is asked for and replaying the same
bytes for the same request afterwards (the warm-up round fills it).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

from .harness import ROOT, BenchmarkError, python_path

GITHUB_TOKEN = "ghp_testtoken"
GITHUB_USER = "octocat"
JIRA_USER = "me@example.com"
JIRA_TOKEN = "api-token-123"
GOOGLE_TOKEN = "ya29.benchmark-token"
JENKINS_USER = "admin"
JENKINS_TOKEN = "api-token-admin"
SLACK_TOKEN = "xoxp-1111-2222-3333-benchtoken"
S3_BUCKET = "bench-bucket"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAASYNCREPOBENCH00",
    "AWS_SECRET_ACCESS_KEY": "asyncrepo-benchmark-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
START_TIMEOUT = 120.0


@contextmanager
def serve(kind: str, **params: Any) -> Iterator[str]:
    """Run a server process; yield its base URL."""
    with serve_all([(kind, params)]) as urls:
        yield urls[0]


@contextmanager
def serve_all(specs: list[tuple[str, dict[str, Any]]]) -> Iterator[list[str]]:
    """Run several server processes (started in parallel); yield their base URLs."""
    with ExitStack() as stack:
        started = []
        for kind, params in specs:
            errors = stack.enter_context(tempfile.TemporaryFile("w+"))
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.servers", kind, json.dumps(params)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                cwd=ROOT,
                env={**os.environ, **AWS_ENV, "PYTHONPATH": python_path()},
            )
            stack.callback(_stop, process)
            started.append((kind, process, errors))
        yield [_wait_ready(kind, process, errors) for kind, process, errors in started]


def _wait_ready(kind: str, process: subprocess.Popen[str], errors: IO[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        process.kill()
        process.wait()
        errors.seek(0)
        tail = "\n".join(errors.read().strip().splitlines()[-15:])
        raise BenchmarkError(f"the {kind} server did not start:\n{tail}")
    return line.split()[1]


def _stop(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the server exits when its stdin closes
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- inside the server process ------------------------------------------------------------


def replay(app: Any, latency: float) -> Any:
    """``app`` behind a per-request latency and a response cache (see the module docstring)."""
    from aiohttp import web

    cache: dict[tuple[str, str, str, bytes], tuple[int, dict[str, str], bytes]] = {}
    skip = {"date", "content-length", "server", "transfer-encoding"}

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if latency:
            await asyncio.sleep(latency)
        body = await request.read()
        key = (request.method, request.path_qs, request.headers.get("Authorization", ""), body)
        hit = cache.get(key)
        if hit is None:
            response = await handler(request)
            if response.status != 200 or not isinstance(response.body, bytes):
                return response  # type: ignore[no-any-return]
            headers = {k: v for k, v in response.headers.items() if k.lower() not in skip}
            hit = cache[key] = (response.status, headers, response.body)
        status, headers, payload = hit
        return web.Response(status=status, headers=headers, body=payload)

    app.middlewares.insert(0, middleware)
    return app


def _github_app(n_repos: int, latency: float = 0.0) -> Any:
    from tests.fakes.github import make_app, make_dataset

    state = make_dataset(n_repos, private_fraction=0.0, fork_fraction=0.0)
    owner = state.accounts[GITHUB_USER]
    taken: set[str] = set()
    for repo in state.repos:  # one account owns them all: a single listing of n_repos
        repo.owner = owner
        base, k = repo.name, 2
        while repo.name.lower() in taken:
            repo.name = f"{base}-{k}"
            k += 1
        taken.add(repo.name.lower())
    state.reindex()
    state.core_limit_authenticated = 10**9
    return replay(make_app(state), latency)


def _jira_app(n_issues: int, latency: float = 0.0) -> Any:
    from tests.fakes.jira import make_app, make_dataset

    state = make_dataset(n_issues, deployment="cloud")
    return replay(make_app(state), latency)


def _jenkins_app(n_builds: int, latency: float = 0.0) -> Any:
    from tests.fakes.jenkins import make_app, make_dataset

    state = make_dataset(n_builds=n_builds)
    state.users[JENKINS_USER] = JENKINS_TOKEN
    return replay(make_app(state), latency)


def _slack_app(n_messages: int, n_channels: int = 1, latency: float = 0.0) -> Any:
    from tests.fakes.slack import SlackState, Token, make_app

    state = SlackState()
    user = state.add_user("bench", "Bench Mark")
    state.tokens[SLACK_TOKEN] = Token("user", user["id"])
    channels = [state.add_channel(f"bench-{i:02d}")["id"] for i in range(n_channels)]
    for i in range(n_messages):  # channel by channel, ts ascending in each
        channel = channels[i * n_channels // max(1, n_messages)]
        state.post(channel, f"message {i}: see <https://example.com/{i}|the docs> <@{user['id']}>")
    return replay(make_app(state), latency)


def _google_app(n_files: int, latency: float = 0.0) -> Any:
    from datetime import UTC, datetime, timedelta

    from tests.fakes.google import GoogleState, make_app

    state = GoogleState()
    state.tokens[GOOGLE_TOKEN] = frozenset({"https://www.googleapis.com/auth/drive.readonly"})
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(n_files):
        state.add_file(f"file {n:05d}.txt", modified=start + timedelta(seconds=n))
    return replay(make_app(state), latency)


def _pypi_app(n_projects: int, latency: float = 0.0) -> Any:
    from tests.fakes.pypi import make_app, make_big

    state = make_big(n_projects)
    state.list_json()  # rendered once, before the first request
    return replay(make_app(state), latency)


def _file_app(path: str) -> Any:
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "text/csv; charset=utf-8"})

    app = web.Application()
    app.router.add_get("/{name}", handler)
    return app


APPS: dict[str, Callable[..., Any]] = {
    "github": _github_app,
    "jira": _jira_app,
    "jenkins": _jenkins_app,
    "pypi": _pypi_app,
    "google": _google_app,
    "slack": _slack_app,
    "file": _file_app,
    "s3": lambda **params: _import("benchmarks.scenarios.s3").fast_s3_app(**params),
}


def _import(module: str) -> Any:
    import importlib

    return importlib.import_module(module)


async def _run_app(app: Any) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"READY http://{host}:{port}", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def _run_moto(n_objects: int, bucket: str = S3_BUCKET) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, AWS_ENV["AWS_DEFAULT_REGION"])
    width = len(str(n_objects))
    for i in range(n_objects):  # straight into the store: microseconds, not an HTTP put
        backend.put_object(bucket, f"data/{i % 50:02d}/object-{i:0{width}d}.json", b"{}")
    print(f"READY http://{host}:{port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


def main() -> None:
    kind, params = sys.argv[1], json.loads(sys.argv[2])
    if kind == "moto":
        _run_moto(**params)
        return
    app = APPS[kind](**params)
    # Exit when the parent goes away, even if the loop is busy.
    watchdog = threading.Thread(target=_exit_on_orphan, daemon=True)
    watchdog.start()
    asyncio.run(_run_app(app))


def _exit_on_orphan() -> None:
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    main()
