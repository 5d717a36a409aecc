"""The native listing backend (``asyncrepo[fast]``, pyarrow) against the pure-Python path:
the same items, byte for byte (identifiers, raw dicts and their key order, common
fields), the same pages and cursors, on tricky files; and a fall back to the pure-Python
path, from the right row, where pyarrow would read a file differently."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrepo import ConfigurationError, MalformedResponse
from asyncrepo.repositories.file import _listing
from asyncrepo.repositories.file.csv_rows import BATCH_ROWS, CSVRows

pytest.importorskip("pyarrow")


class Fallbacks:
    """Counts the listings (or their rests) the pure-Python path read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.starts: list[int] = []
        python_batches = _listing.python_batches

        def counted(source: Any, start: int) -> Any:
            self.starts.append(start)
            return python_batches(source, start)

        monkeypatch.setattr(_listing, "python_batches", counted)


def shape(items: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (i.identifier, list(i.raw.items()), i.title, i.text, i.updated_at, i.author) for i in items
    ]


async def both(path: Path, **options: Any) -> tuple[list[Any], list[Any]]:
    python = [i async for i in CSVRows(path, backend="python", **options).list()]
    native = [i async for i in CSVRows(path, backend="arrow", **options).list()]
    return python, native


def write(path: Path, rows: list[list[str]], **writer: Any) -> Path:
    encoding = writer.pop("encoding", "utf-8")
    with path.open("w", newline="", encoding=encoding) as f:
        csv.writer(f, **writer).writerows(rows)
    return path


TRICKY = [
    ["id", "name", "note", "", "name"],  # an empty and a repeated name
    ["1", "Ada", "multi\nline\r\nfield", "x", "dup"],
    ["2", "", 'say "hi"', "", ""],
    ["3", "ünïcødé ✓ 𝄞", "comma, inside", "tab\there", "|pipe|"],
    ["4", " spaced ", '"', "\r", "end"],
] + [[str(k), f"n{k}", "alpha" * (k % 7), "", "z"] for k in range(5, 3000)]


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
async def test_tricky_files_list_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str, bom: bool
) -> None:
    path = write(
        tmp_path / "t.csv", TRICKY, lineterminator=ending, encoding="utf-8-sig" if bom else "utf-8"
    )
    python, native = await both(path)
    assert shape(native) == shape(python)
    assert len(native) >= len(TRICKY) - 1  # a bare "\r" value breaks a "\n" file's line


async def test_pyarrow_reads_an_ordinary_file_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [[str(k), f"name {k}", 'multi\nline, "quoted"', "ünï ✓"] for k in range(5000)]
    path = write(tmp_path / "t.csv", [["id", "name", "note", "more"], *rows])
    fallbacks = Fallbacks(monkeypatch)
    python, native = await both(path)
    assert fallbacks.starts == [0]  # the python one only: pyarrow read it all
    assert shape(native) == shape(python) and len(native) == 5000


async def test_options_list_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "t.csv", TRICKY, delimiter=";")
    options = {
        "identifier": ("id", "name"),
        "fields": {"title": "name", "text": ["note", "column_4"], "updated_at": "id"},
    }
    fallbacks = Fallbacks(monkeypatch)
    python, native = await both(path, **options)
    assert shape(native) == shape(python) and fallbacks.starts == [0]
    python, native = await both(path, fieldnames=["a", "b", "c", "d", "e"], delimiter=";")
    assert shape(native) == shape(python) and native[0].raw["a"] == "id"


async def test_pages_and_cursors_are_the_same(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", TRICKY)
    for page_size in (1, 7, BATCH_ROWS, 1000):
        pages = []
        for backend in ("python", "arrow"):
            repo = CSVRows(path, backend=backend)
            seen = [
                ([i.identifier for i in page.items], page.cursor)
                async for page in repo.list_pages(page_size=page_size)
            ]
            pages.append(seen)
        assert pages[0] == pages[1]
        # A cursor of one backend resumes in the other.
        cursor = pages[0][len(pages[0]) // 2][1]
        resumed = [
            [i.identifier async for i in CSVRows(path, backend=b).list(cursor=cursor)]
            for b in ("python", "arrow")
        ]
        assert resumed[0] == resumed[1] and resumed[0]


@pytest.mark.parametrize(
    ("name", "body", "fallback_at"),
    [
        # A ragged row: the pure-Python path reads on from the batch that holds it.
        ("ragged", "a,b\n" + "1,2\n" * 300 + "3\n4,5,6\n" + "7,8\n" * 10, 2 * BATCH_ROWS),
        ("spaces", "a,b\n1,2\n   \n3,4\n", 0),  # a line of spaces is a one-value row
        ("bad-utf-8", "a,b\n" + "1,2\n" * 10 + "\udcff,x\n", 0),
        ("lone-quote", 'a,b\n1,"open\n2,3\n', None),
        ("text-after-quote", 'a,b\n"x"y,2\n', None),
        ("blank-first", "\na,b\n1,2\n", None),  # the pure-Python path from the start
    ],
)
async def test_files_pyarrow_reads_otherwise_fall_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    body: str,
    fallback_at: int | None,
) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(body.encode("utf-8", "surrogateescape"))
    try:
        python = [i async for i in CSVRows(path, backend="python").list()]
    except MalformedResponse as exc:
        with pytest.raises(MalformedResponse) as raised:
            _ = [i async for i in CSVRows(path, backend="arrow").list()]
        assert str(raised.value) == str(exc)
        return
    fallbacks = Fallbacks(monkeypatch)
    native = [i async for i in CSVRows(path, backend="arrow").list()]
    assert shape(native) == shape(python)
    if fallback_at is not None:
        assert fallbacks.starts and fallbacks.starts[0] <= fallback_at


async def test_what_pyarrow_does_not_take_is_read_by_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "a,b\n" + "".join(f"{k},é{k}\n" for k in range(500))
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    latin = tmp_path / "l.csv"
    latin.write_bytes(text.encode("latin-1"))
    utf16 = tmp_path / "u.csv"
    utf16.write_text(text, encoding="utf-16")
    for path, options in (
        (gz, {}),
        (latin, {"encoding": "latin-1"}),
        (utf16, {}),
        (latin, {"encoding": "latin-1", "skipinitialspace": True}),
    ):
        fallbacks = Fallbacks(monkeypatch)
        python, native = await both(path, **options)
        assert shape(native) == shape(python) and len(native) == 500
        assert fallbacks.starts == [0, 0]
        monkeypatch.undo()


def test_the_backend_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        CSVRows(tmp_path / "x.csv", backend="polars")
    assert CSVRows(tmp_path / "x.csv")._native  # the default where pyarrow is installed
    assert not CSVRows(tmp_path / "x.csv", backend="python")._native
    assert not CSVRows("http://127.0.0.1:9/x.csv")._native  # URLs: the pure-Python path


values = st.text(alphabet=st.sampled_from(list("ab ,;\"'\n\r\t\\é✓")), max_size=6)


@st.composite
def tables(draw: Any) -> list[list[str]]:
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(values, min_size=1, max_size=width + 1), max_size=12))
    return [[f"h{k}" for k in range(width)], *rows]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=tables(), ending=st.sampled_from(["\r\n", "\n", "\r"]))
async def test_random_files_list_the_same(
    tmp_path: Path, rows: list[list[str]], ending: str
) -> None:
    """Whatever the values (quotes, line breaks, delimiters, ragged rows, blank rows)."""
    path = write(tmp_path / "r.csv", rows, lineterminator=ending)
    python, native = await both(path, delimiter=",")
    assert shape(native) == shape(python)
