"""The shared transport over the wire: retries, rate limits, the wait cap, timeouts, error
mapping, malformed bodies, redaction of secrets, conditional requests."""

from __future__ import annotations

import email.utils
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    SourceTimeout,
    SourceUnavailable,
)
from asyncrepo.http import BasicAuth, BearerAuth, HTTPClient, ResponseCache, redact_url
from tests.fakes._common import serve
from tests.fakes.generic_api import GenericState, make_app, make_state

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02, max_wait=5)
SECRET = "s3cr3t-t0ken-value"


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, GenericState]]:
    state = make_state(10)
    async with serve(make_app(state)) as base_url:
        yield base_url, state


def client(base_url: str, **kwargs: Any) -> HTTPClient:
    kwargs.setdefault("retry", FAST)
    return HTTPClient(base_url, source="test.api", **kwargs)


def gaps(state: GenericState) -> list[float]:
    times = [r.at for r in state.controls.requests]
    return [b - a for a, b in itertools.pairwise(times)]


async def test_429_is_retried_honouring_retry_after_seconds(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    state.controls.inject(429, headers={"Retry-After": "0.3"}, times=2)
    async with client(base_url) as http:
        body = await http.get_json("/numbered")
    assert len(body) == 10
    assert state.controls.count("/numbered") == 3
    assert all(gap >= 0.29 for gap in gaps(state))


async def test_retry_after_as_an_http_date(api: tuple[str, GenericState]) -> None:
    base_url, state = api
    when = email.utils.formatdate(time.time() + 1.2, usegmt=True)  # whole seconds
    state.controls.inject(503, headers={"Retry-After": when})
    async with client(base_url) as http:
        await http.get_json("/numbered")
    assert state.controls.count("/numbered") == 2
    assert gaps(state)[0] >= 0.15  # the date was honoured, not the 10 ms backoff


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried_with_backoff(api: tuple[str, GenericState], status: int) -> None:
    base_url, state = api
    state.controls.inject(status, times=3)
    async with client(base_url) as http:
        await http.get_json("/numbered")
    assert state.controls.count("/numbered") == 4


async def test_retries_give_up_with_source_unavailable(api: tuple[str, GenericState]) -> None:
    base_url, state = api
    state.controls.inject(503, times=10, body={"message": "maintenance"})
    async with client(base_url) as http:
        with pytest.raises(SourceUnavailable) as caught:
            await http.get_json("/numbered")
    assert state.controls.count("/numbered") == FAST.attempts
    error = caught.value
    assert error.status == 503 and error.source == "test.api" and error.method == "GET"
    assert error.vendor_message == "maintenance"
    assert "after 4 attempts" in str(error)


async def test_403_with_exhausted_quota_waits_for_the_reset(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    reset = time.time() + 1.0
    state.controls.inject(
        403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        body={"message": "API rate limit exceeded"},
    )
    async with client(base_url) as http:
        await http.get_json("/numbered")
    assert state.controls.count("/numbered") == 2
    assert state.controls.requests[1].at >= state.controls.requests[0].at + 0.5


async def test_a_wait_past_the_cap_raises_rate_limited_at_once(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    reset = int(time.time() + 3600)
    state.controls.inject(
        429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    )
    started = time.monotonic()
    async with client(base_url, retry=RetryPolicy(max_wait=30)) as http:
        with pytest.raises(RateLimited) as caught:
            await http.get_json("/numbered")
    assert time.monotonic() - started < 5  # did not block for the hour
    assert state.controls.count("/numbered") == 1
    error = caught.value
    assert error.reset_at == datetime.fromtimestamp(reset, UTC)
    assert error.retry_after is not None and error.retry_after > 3000
    assert "cap" in str(error)


async def test_403_without_rate_limit_headers_is_permission_denied(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    state.controls.inject(403, body={"message": "Must have admin rights"})
    async with client(base_url) as http:
        with pytest.raises(PermissionDenied, match="admin rights"):
            await http.get_json("/numbered")
    assert state.controls.count("/numbered") == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (404, ItemNotFound),
        (400, InvalidQuery),
        (422, InvalidQuery),
        (410, SourceUnavailable),
    ],
)
async def test_status_mapping(
    api: tuple[str, GenericState], status: int, error: type[Exception]
) -> None:
    base_url, state = api
    state.controls.inject(status, body={"errorMessages": ["vendor says no"], "errors": {}})
    async with client(base_url) as http:
        with pytest.raises(error, match="vendor says no"):
            await http.get_json("/numbered")
    assert state.controls.count("/numbered") == 1  # not retried


async def test_timeouts_are_retried_then_raise_source_timeout(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    state.slow = 2.0
    policy = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.01)
    async with client(base_url, timeout=0.2, retry=policy) as http:
        with pytest.raises(SourceTimeout):
            await http.get_json("/slow")
    assert state.controls.count("/slow") == 2


async def test_connection_refused_is_source_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = RetryPolicy(attempts=2, backoff=0.01)
    async with client(f"http://127.0.0.1:{port}", retry=policy) as http:
        with pytest.raises(SourceUnavailable, match="could not reach"):
            await http.get_json("/x")


async def test_malformed_json_is_malformed_response(api: tuple[str, GenericState]) -> None:
    base_url, _ = api
    async with client(base_url) as http:
        with pytest.raises(MalformedResponse, match="not JSON") as caught:
            await http.get_json("/broken")
    url = caught.value.url
    assert caught.value.status == 200 and url is not None and url.endswith("/broken")


async def test_secrets_never_appear_in_messages_reprs_or_logs(
    api: tuple[str, GenericState], caplog: pytest.LogCaptureFixture
) -> None:
    base_url, state = api
    state.controls.inject(503, body={"message": f"echo of your token {SECRET}"})
    state.controls.inject(401, body={"message": f"bad token {SECRET}"})
    caplog.set_level(logging.DEBUG, logger="asyncrepo")
    http = client(base_url, auth=BearerAuth(SECRET))
    with pytest.raises(AuthenticationError) as caught:
        await http.get_json(f"/numbered?access_token={SECRET}")
    await http.aclose()
    texts = [str(caught.value), repr(caught.value), repr(http), repr(http.auth), caplog.text]
    assert caplog.text  # the retry was logged
    for text in texts:
        assert SECRET not in text
    assert "REDACTED" in str(caught.value)
    basic = BasicAuth("me@example.com", SECRET)
    assert SECRET not in repr(basic) and "me@example.com" in repr(basic)


def test_redact_url() -> None:
    assert redact_url("https://user:pw@h.example/p?token=abc&x=1") == (
        "https://h.example/p?token=REDACTED&x=1"
    )
    assert redact_url("https://h.example/p?q=1") == "https://h.example/p?q=1"


def test_credentials_in_the_base_url_are_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        HTTPClient("https://me:hunter2@h.example", source="test.api")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError):
        HTTPClient("ftp://h.example", source="test.api")


async def test_one_session_sends_user_agent_and_auth(api: tuple[str, GenericState]) -> None:
    base_url, _state = api
    async with client(base_url, auth=BasicAuth("me", "pw")) as http:
        first = await http.get_json("/echo")
        session = http.session
        await http.get_json("/echo")
        assert http.session is session
    assert first["headers"]["User-Agent"].startswith("asyncrepo/")
    assert first["headers"]["Authorization"].startswith("Basic ")
    assert http._session is None  # released by aclose()


async def test_conditional_requests_reuse_the_cached_body(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    async with client(base_url, cache=ResponseCache()) as http:
        first = await http.request("GET", "/cached")
        second = await http.request("GET", "/cached")
    assert first.json() == second.json()
    assert second.from_cache and not first.from_cache
    assert state.controls.requests[1].headers["If-None-Match"] == '"v1"'


async def test_a_quota_spent_by_a_success_pauses_the_next_request(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    reset = time.time() + 0.6
    state.controls.inject(
        200, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}, body=[]
    )
    async with client(base_url) as http:
        await http.get_json("/numbered")
        await http.get_json("/numbered")
    assert state.controls.requests[1].at - state.controls.requests[0].at >= 0.4


async def test_an_html_error_page_becomes_its_text(api: tuple[str, GenericState]) -> None:
    base_url, state = api
    page = "<html><head><title>x</title></head><body><h1>Basic Authentication Failure</h1>"
    state.controls.inject(401, body=page + "<p>Reason: AUTHENTICATED_FAILED</p></body></html>")
    async with client(base_url) as http:
        with pytest.raises(AuthenticationError) as caught:
            await http.get_json("/numbered")
    assert caught.value.vendor_message == (
        "Basic Authentication Failure Reason: AUTHENTICATED_FAILED"
    )


async def test_a_netrc_entry_for_the_host_does_not_clash_with_our_authorization(
    api: tuple[str, GenericState], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's own trust_env would read ~/.netrc and refuse a request that also carries an
    Authorization header; proxies come from the environment without it."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    base_url, state = api
    async with HTTPClient(base_url, source="test", auth=BearerAuth(SECRET), retry=FAST) as http:
        await http.get_json("/numbered")
    assert state.controls.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"


async def test_repeated_parameters_are_sent_once_per_value() -> None:
    from aiohttp import web

    from asyncrepo.http import Repeated

    seen: list[list[tuple[str, str]]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(list(request.query.items()))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/q", echo)
    async with serve(app) as base, HTTPClient(base, source="test", retry=FAST) as http:
        await http.get_json(
            "/q", params={"labelIds": Repeated(["A", "B"]), "fields": ["x", "y"], "n": True}
        )
    assert seen == [[("labelIds", "A"), ("labelIds", "B"), ("fields", "x,y"), ("n", "true")]]
