"""google.mail against the fake Gmail v1 (tests/fakes/google.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import pytest
from aiohttp import web

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    ItemNotFound,
    MalformedResponse,
    RetryPolicy,
)
from asyncrepo.repositories.google.mail import Mail, message_text
from tests.fakes._common import serve
from tests.fakes.google import GoogleState, make_app

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0, rate_limit_floor=0.01)
START = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
N_PLAIN = 40


def plain(n: int) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"Weekly update {n}"
    message["From"] = f"Sender {n % 4} <sender{n % 4}@example.com>"
    message["To"] = "me@example.com"
    message.set_content(f"Hello, this is update number {n}.\nBye.")
    return message


def make_state() -> GoogleState:
    state = GoogleState()
    for n in range(N_PLAIN):
        labels = ["INBOX", "UNREAD"] if n % 5 == 0 else ["INBOX"]
        state.add_message(plain(n), at=START + timedelta(minutes=n), labels=labels)
    # multipart/alternative in ISO-8859-1, quoted-printable, with an encoded-word subject
    alt = MIMEMultipart("alternative")
    alt["Subject"] = "=?utf-8?b?Q2Fmw6kgbWVudQ==?="  # "Café menu"
    alt["From"] = "Chef <chef@example.com>"
    alt.attach(MIMEText("Crème brûlée tonight", "plain", "iso-8859-1"))
    alt.attach(MIMEText("<p>Crème <b>brûlée</b> tonight</p>", "html", "iso-8859-1"))
    state.add_message(alt, at=START - timedelta(days=1), labels=["INBOX", "Label_7"])
    # HTML only, inside multipart/mixed with an attachment
    mixed = MIMEMultipart("mixed")
    mixed["Subject"] = "Invoice"
    mixed["From"] = "billing@example.com"
    mixed.attach(MIMEText("<h1>Invoice</h1><p>Total: 3 &euro;</p>", "html", "utf-8"))
    attachment = MIMEText("not the body", "plain", "utf-8")
    attachment.add_header("Content-Disposition", "attachment", filename="notes.txt")
    mixed.attach(attachment)
    state.add_message(mixed, at=START - timedelta(days=2))
    spam = plain(999)
    del spam["Subject"]
    spam["Subject"] = "Buy now"
    state.add_message(spam, at=START + timedelta(days=3), labels=["SPAM"])
    return state


class Site:
    def __init__(self, base: str, state: GoogleState) -> None:
        self.base, self.state = base, state
        self.token = state.issue_token()

    def mail(self, **kwargs: Any) -> Mail:
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("token", self.token)
        return Mail(base_url=self.base, **kwargs)

    def lists(self) -> list[Any]:
        return [r for r in self.state.controls.requests if r.path.endswith("/messages")]


@pytest.fixture(scope="module")
def state() -> GoogleState:
    return make_state()


@pytest.fixture
async def site(state: GoogleState) -> AsyncIterator[Site]:
    state.controls.requests.clear()
    state.controls.injections.clear()
    async with serve(make_app(state)) as base:
        yield Site(base, state)


def newest_first(state: GoogleState, *, spam: bool = False) -> list[str]:
    found = sorted(state.messages.values(), key=lambda m: -m.internal_ms)
    return [m.id for m in found if spam or "SPAM" not in m.labels]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_pages_in_list_order(site: Site, page_size: int) -> None:
    async with site.mail() as repo:
        pages = [[i.identifier for i in p] async for p in repo.list_pages(page_size=page_size)]
    ids = [i for page in pages for i in page]
    assert ids == newest_first(site.state)
    assert all(len(page) == page_size for page in pages[:-1])
    assert all(r.query["maxResults"] == str(page_size) for r in site.lists())


async def test_items(site: Site) -> None:
    async with site.mail() as repo:
        items = {i.title: i async for i in repo.list()}
    update = items["Weekly update 6"]
    assert update.author == "Sender 2 <sender2@example.com>"
    assert update.text == "Hello, this is update number 6.\nBye.\n"
    assert update.created_at == START + timedelta(minutes=6)
    assert update.url == f"https://mail.google.com/mail/u/0/#all/{update.identifier}"
    assert update.kind == "message"
    cafe = items["Café menu"]  # encoded word decoded; the plain part in ISO-8859-1
    assert cafe.text == "Crème brûlée tonight"
    invoice = items["Invoice"]  # no plain part: the HTML part as text, not the attachment
    assert invoice.text is not None and "Total: 3 €" in invoice.text
    assert "<" not in invoice.text and "not the body" not in invoice.text


def test_message_text_decoding() -> None:
    def part(mime: str, data: bytes, charset: str | None = None) -> dict[str, Any]:
        headers = [
            {"name": "Content-Type", "value": mime + (f"; charset={charset}" if charset else "")}
        ]
        return {
            "mimeType": mime,
            "headers": headers,
            "body": {"data": base64.urlsafe_b64encode(data).decode().rstrip("=")},
        }

    nested = {
        "mimeType": "multipart/mixed",
        "parts": [
            {
                "mimeType": "multipart/alternative",
                "parts": [
                    part("text/html", "<p>Grüße</p>".encode()),
                    part("text/plain", "Grüße ??>".encode("utf-16"), "utf-16"),
                ],
            }
        ],
    }
    assert message_text(nested) == "Grüße ??>"
    assert message_text(part("text/plain", b"\xe9t\xe9", "x-unknown-charset")) == "\ufffdt\ufffd"
    assert message_text(part("text/html", b"<b>bold</b> &amp; more")) == "bold & more"
    assert message_text({"mimeType": "image/png", "body": {"size": 3}}) is None
    assert message_text(None) is None


async def test_gets_are_concurrent_but_bounded(site: Site) -> None:
    site.state.gmail_get_delay = 0.2
    site.state.gmail_max_in_flight = 0
    try:
        async with site.mail(concurrency=3) as repo:
            stream = repo.list_pages(page_size=6)
            first = await anext(stream)
            await stream.aclose()
    finally:
        site.state.gmail_get_delay = 0.0
    assert [i.identifier for i in first] == newest_first(site.state)[:6]
    assert site.state.gmail_max_in_flight == 3  # concurrent, and never past the bound
    gets = [r for r in site.state.controls.requests if "/messages/" in r.path]
    assert all(r.query["format"] == "full" for r in gets)


async def test_search_and_since_are_pushed_down(site: Site) -> None:
    since = START + timedelta(minutes=30)
    async with site.mail() as repo:
        found = [i.title async for i in repo.search("from:sender1@example.com", since=since)]
        words = [i.title async for i in repo.search("brûlée")]
    assert found == [f"Weekly update {n}" for n in (37, 33)]
    q = site.lists()[0].query["q"]
    assert q == f"(from:sender1@example.com) after:{int(since.timestamp()) - 1}"
    assert words == ["Café menu"]


async def test_since_keeps_the_boundary(site: Site) -> None:
    since = START + timedelta(minutes=30)
    async with site.mail() as repo:
        stamps = [i.created_at async for i in repo.list(since=since)]
    assert len(stamps) == 10 and min(stamps) == since  # type: ignore[type-var]
    assert site.lists()[0].query["q"] == f"after:{int(since.timestamp()) - 1}"


async def test_labels_are_repeated_parameters(site: Site) -> None:
    async with site.mail(labels=["INBOX", "UNREAD"]) as repo:
        titles = [i.title async for i in repo.list()]
        with pytest.raises(ItemNotFound, match="UNREAD"):
            await repo.get(
                next(m.id for m in site.state.messages.values() if m.labels == ["INBOX"])
            )
    assert titles == [f"Weekly update {n}" for n in range(35, -1, -5)]
    assert site.lists()[0].query["labelIds"] == "INBOX"  # the log keeps one; the fake reads all


async def test_metadata_format(site: Site) -> None:
    async with site.mail(format="metadata") as repo:
        items = [i async for i in repo.list(page_size=5)]
    assert items[0].title == "Weekly update 39" and items[0].text is None
    gets = [r for r in site.state.controls.requests if "/messages/" in r.path]
    assert gets[0].query["format"] == "metadata"


async def test_get_and_missing(site: Site) -> None:
    target = newest_first(site.state)[3]
    async with site.mail(user="me@example.com") as repo:
        item = await repo.get(target)
        assert item.identifier == target
        assert item.url == f"https://mail.google.com/mail/u/me@example.com/#all/{target}"
        with pytest.raises(ItemNotFound):
            await repo.get("ffff")


async def test_message_deleted_between_list_and_get_is_skipped(site: Site) -> None:
    gone = newest_first(site.state)[2]
    site.state.controls.inject(
        404,
        body={
            "error": {
                "code": 404,
                "message": "Requested entity was not found.",
                "errors": [{"reason": "notFound"}],
                "status": "NOT_FOUND",
            }
        },
        path_prefix=f"/gmail/v1/users/me/messages/{gone}",
    )
    async with site.mail() as repo:
        ids = [i.identifier async for i in repo.list()]
    assert gone not in ids and len(ids) == len(newest_first(site.state)) - 1


async def test_spam_and_scope(site: Site) -> None:
    async with site.mail(include_spam_trash=True) as repo:
        n = len([i async for i in repo.list()])
    assert n == len(newest_first(site.state, spam=True))
    from tests.fakes.google import DRIVE_READONLY, GMAIL_READONLY

    token = site.state.issue_token(frozenset({DRIVE_READONLY}))
    async with site.mail(token=token) as repo:
        with pytest.raises(AuthenticationError, match=GMAIL_READONLY):
            await repo.get("x")


async def test_rate_limit_retried(site: Site) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Too many concurrent requests for user",
            "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}],
            "status": "RESOURCE_EXHAUSTED",
        }
    }
    site.state.controls.inject(429, body=body, times=3, path_prefix="/gmail/v1/users/me/messages/")
    async with site.mail() as repo:
        ids = [i.identifier async for i in repo.list(page_size=50)]
    assert ids == newest_first(site.state)


async def test_hostile_list_bodies() -> None:
    bodies = iter([b'{"messages": [{"threadId": "t"}]}', b'{"messages": "x"}', b"nope"])

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=next(bodies), content_type="application/json")

    app = web.Application()
    app.router.add_get("/gmail/v1/users/me/messages", handler)
    async with serve(app) as base:
        for _ in range(3):
            async with Mail(token="t", base_url=base, retry=FAST) as repo:
                with pytest.raises(MalformedResponse):
                    [i async for i in repo.list()]


async def test_cyclic_tokens_end_in_our_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("pageToken")
        nxt = {None: "A", "A": "B", "B": "A"}[token]
        return web.json_response({"nextPageToken": nxt, "resultSizeEstimate": 1})

    app = web.Application()
    app.router.add_get("/gmail/v1/users/me/messages", handler)
    async with serve(app) as base, Mail(token="t", base_url=base, retry=FAST) as repo:
        with pytest.raises(MalformedResponse):
            [i async for i in repo.list()]


def test_uris_and_options() -> None:
    repo = asyncrepo.open("gmail://me?labels=INBOX,Label_7", token="t")
    assert isinstance(repo, Mail) and repo.labels == ("INBOX", "Label_7") and repo.user == "me"
    repo = asyncrepo.open("gmail://boss@example.com", token="t")
    assert isinstance(repo, Mail) and repo.user == "boss@example.com"
    with pytest.raises(ConfigurationError):
        Mail(token="t", format="raw")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("gmail://me?q=x", token="t")
    assert isinstance(plain(1), Message)
