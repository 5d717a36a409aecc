"""The fake index negotiates the Simple API's format as PEP 691 describes (q-values, the
``latest`` aliases, HTML by default, 406 for nothing it serves)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes._common import serve
from tests.fakes.pypi import HTML_V1, JSON_V1, make_app, make_dataset


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01", JSON_V1),
        (f"text/html;q=0.01, {JSON_V1};q=0.5", JSON_V1),
        (f"{HTML_V1}", HTML_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        (None, HTML_V1),
        ("*/*", HTML_V1),
        ("application/xml", None),
    ],
)
async def test_pypi_fake_negotiates_per_pep_691(accept, expected) -> None:
    headers = {"Accept": accept} if accept else {}
    async with (
        serve(make_app(make_dataset(5))) as url,
        aiohttp.ClientSession(skip_auto_headers=["Accept"]) as session,
        session.get(f"{url}/simple/", headers=headers) as response,
    ):
        if expected is None:
            assert response.status == 406
        else:
            assert response.status == 200 and response.content_type == expected
            assert response.headers["Vary"] == "Accept"
