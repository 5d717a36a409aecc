"""The delimiter of a CSV file given without one: semicolon, tab and pipe files read right
(quoted line breaks too), and an ordinary comma file is never taken for another."""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrepo.repositories.file._dialect import detect_delimiter
from asyncrepo.repositories.file.csv_rows import CSVRows
from tests.fakes._common import serve
from tests.test_csv_url import CSVServer, Served, make_app

ROWS = [
    ["id", "name", "price", "note"],
    ["1", "Ada; Countess", "3,50", "plain"],
    ["2", "Grace", "4,25", "two\nlines; with a | and a \t"],
    ["3", "", "0,99", 'say "hi"'],
]


def text_of(rows: list[list[str]], delimiter: str, lineterminator: str = "\r\n") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return out.getvalue()


def expected(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


async def collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


@pytest.fixture
async def server() -> AsyncIterator[CSVServer]:
    state = CSVServer()
    async with serve(make_app(state)) as base:
        state.base = base
        yield state


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
@pytest.mark.parametrize("gzipped", [False, True])
async def test_the_delimiter_is_detected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, delimiter: str, gzipped: bool
) -> None:
    data = text_of(ROWS, delimiter).encode()
    path = tmp_path / "d.csv"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    repo = CSVRows(path, identifier="id")
    with caplog.at_level(logging.DEBUG, logger="asyncrepo.file"):
        items = await collect(repo.list())
    assert [i.raw for i in items] == expected(ROWS)
    assert f"the delimiter is {delimiter!r} (detected)" in caplog.text
    assert (await repo.get("2")).raw["note"] == ROWS[2][3]
    assert [i.identifier async for i in repo.search("countess")] == ["1"]
    # The other paths read it alike.
    threaded = CSVRows(path, identifier="id", worker_thread=True)
    assert [i.raw for i in await collect(threaded.list())] == expected(ROWS)
    assert (await CSVRows(path, identifier="id").get("3")).raw["note"] == 'say "hi"'


async def test_a_semicolon_url(server: CSVServer, tmp_path: Path) -> None:
    server.files["/s.csv"] = Served(text_of(ROWS, ";").encode())
    async with CSVRows(server.url("/s.csv"), identifier="id", cache=tmp_path / "c") as repo:
        assert [i.raw for i in await collect(repo.list())] == expected(ROWS)
        assert (await repo.get("3")).raw["price"] == "0,99"


async def test_a_given_delimiter_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text_of(ROWS, ";"), newline="")
    items = await collect(CSVRows(path, delimiter=",").list())
    assert next(iter(items[0].raw)) == "id;name;price;note"  # as asked, if not as meant


async def test_a_long_header_and_a_ragged_comma_file_stay_comma(tmp_path: Path) -> None:
    header = [f"column;{k}" for k in range(200)]  # semicolons in names, 2 KiB of header
    path = tmp_path / "wide.csv"
    path.write_text(text_of([header, ["x"] * 200], ","))
    assert list((await collect(CSVRows(path).list()))[0].raw) == header
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c\n1;2,3\n4\n5,6,7,8\n")
    assert [i.raw["a"] for i in await collect(CSVRows(ragged).list())] == ["1;2", "4", "5"]


values = st.text(
    alphabet=st.sampled_from(list("ab ;|\t,\"'\n\r.:-0é")),
    max_size=8,
)


@st.composite
def tables(draw: Any, min_width: int = 2) -> list[list[str]]:
    width = draw(st.integers(min_width, 6))
    rows = draw(st.lists(st.lists(values, min_size=width, max_size=width), min_size=1))
    return [[f"h{k}" for k in range(width)], *rows]


@settings(max_examples=400, deadline=None)
@given(tables(), st.sampled_from(["\r\n", "\n"]), st.integers(0, 3000))
def test_an_ordinary_comma_file_is_never_taken_for_another(
    rows: list[list[str]], ending: str, cut: int
) -> None:
    """Any rectangular comma file of two or more columns, whatever its values hold, cut
    anywhere (the first bytes of a longer file) or whole."""
    text = text_of(rows, ",", ending)
    assert detect_delimiter(text, True) == ","
    assert detect_delimiter(text[:cut], False) == ","


@settings(max_examples=200, deadline=None)
@given(tables(), st.sampled_from([";", "\t", "|"]))
def test_a_file_without_commas_is_read_by_its_own_delimiter(
    rows: list[list[str]], delimiter: str
) -> None:
    rows = [[value.replace(",", ".") for value in row] for row in rows]
    assert detect_delimiter(text_of(rows, delimiter), True) == delimiter


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=tables())
async def test_comma_files_list_as_dictreader_reads_them(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(text_of(rows, ","), newline="", encoding="utf-8")
    with path.open(newline="", encoding="utf-8") as f:
        want = [row for row in csv.DictReader(f)]
    assert [i.raw for i in await collect(CSVRows(path).list())] == want


async def test_a_detected_delimiter_serves_the_offset_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file larger than what is read ahead: its gets seek through the index, which
    parses with the detected delimiter."""
    from asyncrepo.repositories.file import _get, _offsets

    builds = 0
    build = _offsets.build_index

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal builds
        builds += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(_get, "build_index", counted)
    rows = [["id", "text"]] + [[f"k{n}", f"line {n}; a, b\nand more"] for n in range(5000)]
    path = tmp_path / "big.csv"
    path.write_text(text_of(rows, ";"), newline="")
    repo = CSVRows(path, identifier="id")
    for n in (4999, 0, 2500):
        assert (await repo.get(f"k{n}")).raw == {"id": f"k{n}", "text": rows[n + 1][1]}
    assert builds == 1
