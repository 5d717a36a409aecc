"""CSVRows over local files: identifiers, quoting, encodings, malformed input, pages and
cursors across the 4096-row internal batches, naive search and get, early abandonment,
``asyncrepo.open``. The URL and cache cases are in ``test_csv_url.py``."""

from __future__ import annotations

import csv
import gc
import gzip
import os
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncrepo
from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    Item,
    ItemNotFound,
    MalformedResponse,
    Page,
    UnsupportedOption,
)
from asyncrepo.repositories.file.csv_rows import BATCH_ROWS, INDEX, SLICE_ROWS, WINDOW_ROWS, CSVRows
from tests._loop_turns import loop_turns

N_BIG = 10_000  # more than two internal batches of 4096 rows


def write_csv(path: Path, header: list[str], rows: list[list[Any]], **kwargs: Any) -> Path:
    with path.open("w", newline="", encoding=kwargs.pop("encoding", "utf-8")) as f:
        writer = csv.writer(f, **kwargs)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def gzip_copy(source: Path, target: Path) -> Path:
    target.write_bytes(gzip.compress(source.read_bytes(), compresslevel=1))
    return target


def big_rows() -> list[list[str]]:
    return [
        [f"r{i:05d}", f"Name {i}", "Needle" if i % 1000 == 999 else "hay", str(i)]
        for i in range(N_BIG)
    ]


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    return write_csv(path, ["id", "name", "tag", "n"], big_rows())


@pytest.fixture
def people(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "people.csv",
        ["id", "first", "last", "city"],
        [
            ["a1", "Ada", "Lovelace", "London"],
            ["b2", "Alan", "Turing", "Wilmslow"],
            ["c3", "Grace", "Hopper", "New York"],
            ["d4", "", "Nobody", ""],
        ],
    )


async def collect(iterator: Any) -> list[Any]:
    return [x async for x in iterator]


async def all_pages(pages: Any) -> list[Page]:
    return [page async for page in pages]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- identifiers ------------------------------------------------------------------------------


async def test_default_identifier_is_the_row_index(people: Path) -> None:
    repo = CSVRows(people)
    items = await collect(repo.list())
    assert [i.identifier for i in items] == ["0", "1", "2", "3"]
    assert items[0].raw == {"id": "a1", "first": "Ada", "last": "Lovelace", "city": "London"}
    assert all(isinstance(i, Item) and i.source == "file.csv_rows" for i in items)
    assert (await repo.get("2")).raw["last"] == "Hopper"
    # An int identifier, against the str annotation: the runtime accepts it.
    assert (await repo.get(3)).raw["id"] == "d4"  # type: ignore[arg-type]


async def test_column_identifier(people: Path) -> None:
    repo = CSVRows(people, identifier="id")
    assert [i.identifier async for i in repo.list()] == ["a1", "b2", "c3", "d4"]
    item = await repo.get("c3")
    assert item.identifier == "c3" and item.raw["first"] == "Grace"


async def test_tuple_identifier(people: Path) -> None:
    repo = CSVRows(people, identifier=("first", "last"))
    ids = [i.identifier async for i in repo.list()]
    assert ids[0] == str(("Ada", "Lovelace")) == "('Ada', 'Lovelace')"
    item = await repo.get("('Alan', 'Turing')")
    assert item.raw["city"] == "Wilmslow"
    with pytest.raises(ItemNotFound):
        await repo.get("('Alan', 'Lovelace')")


@pytest.mark.parametrize("wanted", ["4", "400", "abc", "-1", "01", "1.0", " 1", "²", ""])
async def test_get_by_index_not_found(people: Path, wanted: str) -> None:
    with pytest.raises(ItemNotFound) as caught:
        await CSVRows(people).get(wanted)
    assert caught.value.identifier == wanted


async def test_get_by_column_not_found(people: Path) -> None:
    repo = CSVRows(people, identifier="id")
    with pytest.raises(ItemNotFound):
        await repo.get("zz9")
    with pytest.raises(ItemNotFound):
        await repo.get("")  # no row has an empty id


async def test_get_by_column_first_match_and_empty_values(people: Path) -> None:
    repo = CSVRows(people, identifier="city")
    assert (await repo.get("")).raw["id"] == "d4"  # an empty cell is a value like another
    dupes = write_csv(people.with_name("dupes.csv"), ["k", "v"], [["x", "1"], ["x", "2"]])
    assert (await CSVRows(dupes, identifier="k").get("x")).raw["v"] == "1"


async def test_identifier_column_missing_from_header(people: Path) -> None:
    repo = CSVRows(people, identifier="nope")
    with pytest.raises(ConfigurationError, match="no column 'nope'"):
        await collect(repo.list())
    with pytest.raises(ConfigurationError, match="no column 'nope'"):
        await repo.get("x")
    with pytest.raises(ConfigurationError, match="no column 'zz'"):
        await collect(CSVRows(people, identifier=("id", "zz")).list())


async def test_get_last_row_of_a_big_file(big_csv: Path) -> None:
    last = N_BIG - 1
    item = await CSVRows(big_csv).get(str(last))
    assert item.identifier == str(last) and item.raw["id"] == f"r{last:05d}"
    item = await CSVRows(big_csv, identifier="id").get(f"r{last:05d}")
    assert item.identifier == f"r{last:05d}" and item.raw["n"] == str(last)
    with pytest.raises(ItemNotFound):
        await CSVRows(big_csv).get(str(N_BIG))


# -- RFC 4180 and dialects --------------------------------------------------------------------


async def test_quoting_matches_dictreader(tmp_path: Path) -> None:
    text = (
        "id,text,other\r\n"
        '1,"hello, world","two\r\nlines"\r\n'
        '2,"say ""hi""",plain\r\n'
        '3,"multi\nline\n\nwith blank",""\r\n'
        '4,"",\r\n'
    )
    path = tmp_path / "quoted.csv"
    path.write_bytes(text.encode())
    with path.open(newline="") as f:
        expected = list(csv.DictReader(f))
    items = await collect(CSVRows(path).list())
    assert [i.raw for i in items] == expected
    assert items[1].raw["text"] == 'say "hi"'
    assert items[0].raw["other"] == "two\r\nlines"
    assert items[2].raw["text"] == "multi\nline\n\nwith blank"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
async def test_line_endings(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "endings.csv"
    path.write_bytes(newline.join(["a,b", "1,2", '3,"x' + newline + 'y"', "5,6", ""]).encode())
    with path.open(newline="") as f:
        expected = list(csv.DictReader(f))
    assert [i.raw for i in await collect(CSVRows(path).list())] == expected
    assert len(expected) == 3


async def test_crlf_split_across_read_chunks(tmp_path: Path) -> None:
    # The file is read in 1 MiB chunks: put a "\r\n" astride the first chunk boundary.
    first = "a,b\r\n" + "x" * 100 + ",y\r\n"
    filler = "z," + "q" * ((1 << 20) - len(first) - 4) + "\r\n"  # ends one byte past 1 MiB
    text = first + filler[:-1] + '\n"multi\r\nline",2\r\n'
    path = tmp_path / "astride.csv"
    path.write_bytes(text.encode())
    with path.open(newline="") as f:
        expected = list(csv.DictReader(f))
    assert [i.raw for i in await collect(CSVRows(path).list())] == expected


async def test_one_megabyte_field(tmp_path: Path) -> None:
    big = "x" * (1 << 20) + '"quoted"\nnewline'
    path = write_csv(tmp_path / "wide.csv", ["id", "blob"], [["1", big], ["2", "small"]])
    items = await collect(CSVRows(path).list())
    assert items[0].raw["blob"] == big
    assert items[1].raw == {"id": "2", "blob": "small"}
    assert [i.identifier async for i in CSVRows(path).search("small")] == ["1"]


async def test_dialect_options_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("id;name\n1;'Smith; John'\n2;plain\n")
    items = await collect(CSVRows(path, delimiter=";", quotechar="'").list())
    assert [i.raw for i in items] == [
        {"id": "1", "name": "Smith; John"},
        {"id": "2", "name": "plain"},
    ]
    tabbed = tmp_path / "t.tsv"
    tabbed.write_text("a\tb\n1\t2\n")
    assert (await CSVRows(tabbed, dialect="excel-tab").get("0")).raw == {"a": "1", "b": "2"}


async def test_fieldnames_option_reads_the_first_line_as_data(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text("1,Ada\n2,Alan\n")
    repo = CSVRows(path, identifier="id", fieldnames=["id", "name"])
    assert [i.raw async for i in repo.list()] == [
        {"id": "1", "name": "Ada"},
        {"id": "2", "name": "Alan"},
    ]


async def test_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "blanks.csv"
    # Leading blank lines before the header, and a run of blank lines longer than a slice.
    path.write_text("\n\nid,v\n1,a\n" + "\n" * (SLICE_ROWS * 2 + 5) + "2,b\n\n3,c\n")
    repo = CSVRows(path)
    items = await collect(repo.list())
    assert [(i.identifier, i.raw) for i in items] == [
        ("0", {"id": "1", "v": "a"}),
        ("1", {"id": "2", "v": "b"}),
        ("2", {"id": "3", "v": "c"}),
    ]
    assert (await repo.get("2")).raw["v"] == "c"


async def test_empty_and_header_only_files(tmp_path: Path) -> None:
    for name, text in (("empty.csv", ""), ("header.csv", "id,name\n")):
        path = tmp_path / name
        path.write_text(text)
        repo = CSVRows(path, identifier="id" if text else INDEX)
        assert await collect(repo.list()) == []
        pages = await all_pages(repo.list_pages())
        assert len(pages) == 1 and pages[0].items == [] and pages[0].cursor is None
        with pytest.raises(ItemNotFound):
            await repo.get("0")


# -- malformed files --------------------------------------------------------------------------


async def test_ragged_rows_follow_dictreader_with_restkey_extra(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9,10\n")
    items = await collect(CSVRows(path).list())
    assert [i.raw for i in items] == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "4", "b": "5", "c": None},
        {"a": "6", "b": "7", "c": "8", "_extra": ["9", "10"]},
    ]
    custom = await collect(CSVRows(path, restkey="more", restval="").list())
    assert custom[1].raw["c"] == "" and custom[2].raw["more"] == ["9", "10"]
    # A short row has no value for the identifier column: restval stands in, as in raw.
    by_c = CSVRows(path, identifier="c")
    assert [i.identifier async for i in by_c.list()] == ["3", "None", "8"]
    assert (await by_c.get("None")).raw["a"] == "4"


@pytest.mark.parametrize("width", [1, 3, 8, 300])
async def test_row_dicts_match_dictreader(tmp_path: Path, width: int) -> None:
    """Rows' dicts are built by generated code up to 256 columns (dict(zip()) beyond):
    ragged rows in some batches, not others, come out as csv.DictReader makes them; a
    repeated name keeps its column (renamed ``<name>_2``, where DictReader drops one)."""
    header = [f"c{k % max(width - 1, 1)}" for k in range(width)]  # the last name repeats
    unique = [f"{name}_2" if name in header[:k] else name for k, name in enumerate(header)]
    rows = [[f"{r}.{k}" for k in range(width)] for r in range(3 * BATCH_ROWS + 5)]
    rows[BATCH_ROWS + 3] = rows[BATCH_ROWS + 3][:-1] or [""]  # short (or blank-free)
    rows[2 * BATCH_ROWS + 9] = [*rows[2 * BATCH_ROWS + 9], "x", "y"]  # long
    path = write_csv(tmp_path / "w.csv", header, rows)
    with path.open(newline="") as f:
        next(f)
        expected = list(csv.DictReader(f, fieldnames=unique, restkey="_extra"))
    items = await collect(CSVRows(path).list())
    assert [i.raw for i in items] == expected
    assert [list(i.raw) for i in items] == [list(row) for row in expected]


@pytest.mark.parametrize("rows", [BATCH_ROWS, 2 * BATCH_ROWS, SLICE_ROWS, SLICE_ROWS + 1])
async def test_a_listing_ending_at_a_batch_or_slice_edge(tmp_path: Path, rows: int) -> None:
    path = write_csv(tmp_path / "e.csv", ["n"], [[str(k)] for k in range(rows)])
    repo = CSVRows(path)
    assert [i.raw["n"] for i in await collect(repo.list())] == [str(k) for k in range(rows)]
    pages = await all_pages(repo.list_pages(page_size=BATCH_ROWS))
    assert sum(len(p) for p in pages) == rows and pages[-1].cursor is None


async def test_binary_garbage_is_a_clear_malformed_response(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"a,b\n1,2\n3,4\n\xff\xfe\x00\x81binary\x9f\n")
    repo = CSVRows(path)
    with pytest.raises(MalformedResponse, match=r"garbage\.csv: line 4: .*not valid utf-8"):
        await collect(repo.list())
    with pytest.raises(MalformedResponse, match="line 4"):
        await collect(repo.search("x"))
    with pytest.raises(MalformedResponse, match="encoding="):
        await repo.get("5")
    # The same bytes read fine once the encoding is given.
    items = await collect(CSVRows(path, encoding="latin-1").list())
    assert len(items) == 3


async def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.csv"
    path.write_bytes(bytes(range(256)) * 40)  # "\n" at byte 10, "\x80" on line 2
    with pytest.raises(MalformedResponse, match=r"random.csv: line 2: .*utf-8"):
        await collect(CSVRows(path).list())


async def test_csv_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "strict.csv"
    path.write_text('a,b\n1,2\n3,"x"y\n')
    with pytest.raises(MalformedResponse, match=r"strict\.csv: line 3"):
        await collect(CSVRows(path, strict=True).list())


async def test_corrupt_and_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 5000)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedResponse, match="truncated"):
        await collect(CSVRows(truncated).list())
    corrupt = tmp_path / "bad.csv.gz"
    corrupt.write_bytes(data[:20] + b"\x00garbage" * 50)
    with pytest.raises(MalformedResponse, match="gzip"):
        await collect(CSVRows(corrupt).list())


# -- encodings and compression ----------------------------------------------------------------


async def test_gzip_local_file(tmp_path: Path, people: Path) -> None:
    path = gzip_copy(people, tmp_path / "people.csv.gz")
    plain = [i.raw async for i in CSVRows(people).list()]
    assert [i.raw async for i in CSVRows(path).list()] == plain
    # Two gzip members one after the other, as `cat a.gz b.gz` makes.
    two = tmp_path / "two.csv.gz"
    two.write_bytes(gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n"))
    assert [i.raw async for i in CSVRows(two).list()] == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": "4"},
    ]


async def test_big_gzip_file(tmp_path: Path, big_csv: Path) -> None:
    path = gzip_copy(big_csv, tmp_path / "big.csv.gz")
    repo = CSVRows(path, identifier="id")
    assert (await repo.get(f"r{N_BIG - 1:05d}")).raw["n"] == str(N_BIG - 1)
    assert len(await collect(repo.list())) == N_BIG


@pytest.mark.parametrize("encoding", [None, "utf-8", "UTF8"])
async def test_utf8_bom_is_dropped(tmp_path: Path, encoding: str | None) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,name\n1,caf\xc3\xa9\n")
    item = await CSVRows(path, identifier="id", encoding=encoding).get("1")
    assert item.raw == {"id": "1", "name": "café"}


async def test_utf16_with_bom_and_latin1(tmp_path: Path) -> None:
    u16 = tmp_path / "u16.csv"
    u16.write_bytes("id,name\n1,Zoë\n2,ĳ\n".encode("utf-16"))
    assert [i.raw["name"] async for i in CSVRows(u16).list()] == ["Zoë", "ĳ"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,name\n1,Müller\n".encode("latin-1"))
    assert (await CSVRows(latin, encoding="latin-1").get("0")).raw["name"] == "Müller"
    assert [i.identifier async for i in CSVRows(latin, encoding="latin-1").search("MÜLLER")] == [
        "0"
    ]


async def test_multibyte_characters_across_chunk_boundaries(tmp_path: Path) -> None:
    rows = [[str(i), "é€𝄞" * 50] for i in range(20_000)]  # ~4 MB: several 1 MiB chunks
    path = write_csv(tmp_path / "multi.csv", ["id", "s"], rows)
    items = await collect(CSVRows(path).list())
    assert len(items) == len(rows)
    assert all(i.raw["s"] == "é€𝄞" * 50 for i in items)


# -- fields, since ----------------------------------------------------------------------------


@pytest.fixture
def dated(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "dated.csv",
        ["id", "name", "first", "last", "modified"],
        [
            ["1", "Old", "Ada", "L", "2020-01-01T00:00:00Z"],
            ["2", "New", "Alan", "T", "2024-06-01T12:00:00+00:00"],
            ["3", "Messy", "Grace", "H", "not a date"],
            ["4", "Newer", "Linus", "T", "2025-01-01T00:00:00Z"],
        ],
    )


async def test_fields_mapping(dated: Path) -> None:
    repo = CSVRows(
        dated,
        identifier="id",
        fields={"title": "name", "author": ("first", "last"), "updated_at": "modified"},
    )
    items = await collect(repo.list())
    assert [i.title for i in items] == ["Old", "New", "Messy", "Newer"]
    assert items[0].author == "Ada L"
    assert items[1].updated_at == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert items[2].updated_at is None  # a cell that is not a date does not stop the listing
    assert (await repo.get("4")).title == "Newer"
    # since= keeps rows updated at or after it (rows without a date are kept).
    since = datetime(2024, 1, 1, tzinfo=UTC)
    assert [i.identifier async for i in repo.list(since=since)] == ["2", "3", "4"]
    pages = await all_pages(repo.list_pages(since=since, page_size=1))
    assert [[i.identifier for i in p] for p in pages] == [["2"], ["3"], ["4"]]
    assert [i.identifier async for i in repo.search("new", since=since)] == ["2", "4"]


async def test_since_needs_a_date_field(dated: Path) -> None:
    for repo in (CSVRows(dated), CSVRows(dated, fields={"title": "name"})):
        with pytest.raises(UnsupportedOption):
            repo.list(since=datetime(2024, 1, 1, tzinfo=UTC))
        with pytest.raises(UnsupportedOption):
            repo.search_pages("x", since=datetime(2024, 1, 1, tzinfo=UTC))
    # The capability is per instance: one repository's fields do not leak into another's.
    assert CSVRows(dated, fields={"created_at": "modified"}).capabilities.since == "client"
    assert CSVRows(dated).capabilities.since is None


async def test_fields_errors(dated: Path) -> None:
    with pytest.raises(ConfigurationError, match="fields="):
        CSVRows(dated, fields={"body": "name"})
    with pytest.raises(ConfigurationError, match="no column 'nmae'"):
        await collect(CSVRows(dated, fields={"title": "nmae"}).list())


# -- pages, cursors, search -------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_pages_lose_and_repeat_nothing_across_batches(big_csv: Path, page_size: int) -> None:
    repo = CSVRows(big_csv, page_size=page_size)
    pages = await all_pages(repo.list_pages())
    ids = [item.identifier for page in pages for item in page]
    assert ids == [str(i) for i in range(N_BIG)]
    assert all(len(p) == page_size for p in pages[:-1]) and 1 <= len(pages[-1]) <= page_size
    assert all(p.cursor for p in pages[:-1]) and pages[-1].cursor is None
    assert [i.raw["id"] for i in pages[-1]] == [f"r{n:05d}" for n in range(N_BIG)][
        -len(pages[-1]) :
    ]


@pytest.mark.parametrize("page_size", [7, BATCH_ROWS, 4095, 4097])
async def test_cursor_resumes_in_a_fresh_instance(big_csv: Path, page_size: int) -> None:
    repo = CSVRows(big_csv, identifier="id")
    stream = repo.list_pages(page_size=page_size)
    pages = [await anext(stream) for _ in range(3 if page_size < 1000 else 2)]
    await stream.aclose()
    seen = [i.identifier for p in pages for i in p]
    cursor = pages[-1].cursor
    assert cursor is not None
    fresh = CSVRows(str(big_csv), identifier="id")
    rest = [
        i.identifier
        for p in await all_pages(fresh.list_pages(cursor=cursor, page_size=1000))
        for i in p
    ]
    assert seen + rest == [f"r{n:05d}" for n in range(N_BIG)]
    # The same cursor also resumes list().
    assert [i.identifier async for i in fresh.list(cursor=cursor)] == rest


async def test_next_page_and_cursor_of_a_page_left_behind(big_csv: Path) -> None:
    repo = CSVRows(big_csv)
    stream = repo.list_pages(page_size=3000)
    first = await anext(stream)
    second = await first.next_page()
    assert second is not None and second[0].identifier == "3000"
    again = await first.next_page()  # the stream has moved on: resumes from the cursor
    assert again is not None and [i.identifier for i in again] == [i.identifier for i in second]
    await stream.aclose()


async def test_cursor_of_another_file_is_refused(big_csv: Path, people: Path) -> None:
    page = await anext(CSVRows(big_csv).list_pages(page_size=5))
    assert page.cursor is not None
    with pytest.raises(InvalidCursor):
        CSVRows(people).list_pages(cursor=page.cursor)
    with pytest.raises(InvalidCursor):
        CSVRows(big_csv).list_pages(cursor="garbage")


async def test_search_is_case_insensitive_over_values(big_csv: Path) -> None:
    repo = CSVRows(big_csv)
    found = [i.identifier async for i in repo.search("NEEDLE")]
    assert found == [str(i) for i in range(999, N_BIG, 1000)]
    # Every term must match; a quoted phrase is one term.
    assert [i.raw["id"] async for i in repo.search("needle 'name 1999'")] == ["r01999"]
    assert [i.identifier async for i in repo.search('"Name 5000"')] == ["5000"]
    assert await collect(repo.search("no such thing")) == []
    # Header names are not values.
    assert await collect(repo.search("tag")) == []


async def test_search_pages_and_cursor(big_csv: Path) -> None:
    repo = CSVRows(big_csv)
    pages = await all_pages(repo.search_pages("needle", page_size=3))
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [i.identifier for p in pages for i in p] == [str(i) for i in range(999, N_BIG, 1000)]
    cursor = pages[1].cursor
    assert cursor is not None
    fresh = CSVRows(big_csv)
    rest = await all_pages(fresh.search_pages("needle", cursor=cursor, page_size=2))
    assert [i.identifier for p in rest for i in p] == ["6999", "7999", "8999", "9999"]
    with pytest.raises(InvalidCursor):  # a cursor belongs to its query
        fresh.search_pages("hay", cursor=cursor)
    empty = await all_pages(repo.search_pages("zzz", page_size=3))
    assert len(empty) == 1 and empty[0].items == [] and empty[0].cursor is None


async def test_concurrent_listings_of_one_repository(big_csv: Path) -> None:
    import asyncio

    repo = CSVRows(big_csv)
    a, b = await asyncio.gather(collect(repo.list()), collect(repo.search("needle")))
    assert len(a) == N_BIG and len(b) == 10


# -- resources --------------------------------------------------------------------------------


async def test_abandoning_a_listing_closes_the_file(big_csv: Path) -> None:
    before = open_fds()
    stream = CSVRows(big_csv).list()
    async for _item in stream:
        assert open_fds() == before + 1
        break
    await stream.aclose()
    assert open_fds() == before
    pages = CSVRows(big_csv).list_pages(page_size=10)
    await anext(pages)
    await pages.aclose()
    assert open_fds() == before


async def test_abandoning_without_aclose_closes_the_file(big_csv: Path) -> None:
    import asyncio

    before = open_fds()

    async def first_row() -> Item:
        async for item in CSVRows(big_csv).search("needle"):
            return item  # the generator is dropped, not closed
        raise AssertionError

    assert (await first_row()).identifier == "999"
    gc.collect()
    for _ in range(5):  # the loop's async-generator finaliser closes it
        await asyncio.sleep(0)
    assert open_fds() == before


async def test_get_and_errors_close_the_file(big_csv: Path, tmp_path: Path) -> None:
    before = open_fds()
    await CSVRows(big_csv).get("5")
    await CSVRows(big_csv, identifier="id").get("r00005")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a\n" + b"x\n" * 10 + b"\xff\n")
    with pytest.raises(MalformedResponse):
        await collect(CSVRows(bad).list())
    assert open_fds() == before


# -- configuration and open() -----------------------------------------------------------------


async def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    repo = CSVRows(tmp_path / "missing.csv")
    with pytest.raises(ConfigurationError, match="no such file"):
        await collect(repo.list())
    with pytest.raises(ConfigurationError, match="no such file"):
        await repo.get("0")
    with pytest.raises(ConfigurationError):
        await collect(CSVRows(tmp_path).list())  # a directory


def test_bad_options(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    with pytest.raises(ConfigurationError, match="csv option"):
        CSVRows(path, delimter=";")
    with pytest.raises(ConfigurationError, match="encoding"):
        CSVRows(path, encoding="no-such-codec")
    with pytest.raises(ConfigurationError, match="page_size"):
        CSVRows(path, page_size=0)
    with pytest.raises(ConfigurationError, match="identifier"):
        CSVRows(path, identifier=3)
    with pytest.raises(ConfigurationError, match="identifier"):
        CSVRows(path, identifier=())
    with pytest.raises(ConfigurationError, match="cache"):
        CSVRows(path, cache=42)


async def test_default_page_size(big_csv: Path) -> None:
    assert len(await anext(CSVRows(big_csv).list_pages())) == 20
    assert len(await anext(CSVRows(big_csv, page_size=33).list_pages())) == 33


async def test_open_a_relative_path(people: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(people.parent)
    async with asyncrepo.open("./people.csv", identifier="id") as repo:
        assert isinstance(repo, CSVRows)
        assert (await repo.get("b2")).raw["last"] == "Turing"
    async with asyncrepo.open(f"file://{people}") as repo:
        assert len(await collect(repo.list())) == 4


async def test_open_demo() -> None:
    async with asyncrepo.open("demo:") as repo:
        items = await collect(repo.list())
        assert len(items) == 3000
        first = await repo.get("p00001")
        assert first.title == "pylintx" and first.author == "Tim Ahmed"
        assert first.url == "https://example.org/projects/pylintx"
        assert first.created_at == datetime(2020, 9, 15, 8, 32, 7, tzinfo=UTC)
        assert len({i.identifier for i in items}) == 3000
        found = await collect(repo.search("pylintx"))
        assert first.identifier in [i.identifier for i in found]
        recent = await collect(repo.list(since=datetime(2024, 1, 1, tzinfo=UTC)))
        assert 0 < len(recent) < 3000


# -- the naive search's text scan (rows parsed only where a term is found) ------------------


def reference_search(path: Path, query: str, **csv_kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    """What a search must find: every row parsed, values joined and casefolded; with the
    raw dict DictReader would make (restkey ``_extra``)."""
    from asyncrepo.repository import search_terms

    terms = search_terms(query)
    with path.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f, **csv_kwargs) if row]
    header = rows[0]
    found = []
    for index, row in enumerate(rows[1:]):
        if all(term in "\x00".join(row).casefold() for term in terms):
            raw: dict[str, Any] = dict(zip(header, row, strict=False))
            if len(row) > len(header):
                raw["_extra"] = row[len(header) :]
            for name in header[len(row) :]:
                raw[name] = None
            found.append((str(index), raw))
    return found


async def found_by_search(path: Path, query: str, **csv_kwargs: Any) -> list[tuple[str, Any]]:
    async with CSVRows(path, **csv_kwargs) as repo:
        return [(item.identifier, item.raw) async for item in repo.search(query)]


def small_chunks(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Read local files ``size`` bytes at a time: pieces of text end almost anywhere."""
    from asyncrepo.repositories.file import _cache

    monkeypatch.setattr(_cache, "_CHUNK", size)


@pytest.fixture(scope="module")
def tricky_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CRLF, blank lines, quoted multi-line fields across the first 1 MiB boundary and one
    longer than a whole chunk, casefolds that change lengths, delimiters next to terms."""
    path = tmp_path_factory.mktemp("tricky") / "tricky.csv"
    rows: list[list[str]] = []
    i = size = 0
    while size < (1 << 20) - 3000:
        rows.append([f"r{i}", f"plain {i} alpha", "beta" if i % 37 else "Needle here"])
        size += len(",".join(rows[-1])) + 2
        i += 1
    # Around the first chunk boundary: a multi-line quoted field that holds the needle.
    rows.append([f"r{i}", "span\n" * 400 + "NEEDLE in a long field", "x,y"])
    rows.append(["huge", "line\r\n" * 300_000 + "needle at the end", "q"])  # > 1 MiB
    rows += [[f"s{k}", "Straße İstanbul", f"alpha,{k}"] for k in range(50)]
    rows += [["ß", "ss", "needle"], ["İ", "i̇", "NEEDLE"], ["a", "b", 'quote " inside needle']]
    rows += [[f"t{k}", "alpha", "beta"] for k in range(3000)]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(["id", "text", "more"])
        for k, row in enumerate(rows):
            writer.writerow(row)
            if k % 501 == 3:
                f.write("\r\n" if k % 2 else "\n")  # blank lines
    return path


@pytest.mark.parametrize(
    "query",
    [
        "needle",
        "NEEDLE here",
        "alpha",
        "strasse",
        "STRASSE istanbul",
        "ß",
        "ss",
        "i̇",
        "İstanbul",
        "alpha\x00",  # a term may hold the join character
        "beta\x00r",
        "span\nspan",  # inside a quoted field only
        "alpha,1",  # a comma inside a value
        "beta,r1",  # across a delimiter: never a match
        '"quote " inside"',
        "line\r\nline",
        "zzz",
    ],
)
async def test_search_scan_matches_a_full_parse(tricky_csv: Path, query: str) -> None:
    expected = reference_search(tricky_csv, query)
    assert await found_by_search(tricky_csv, query) == expected
    if query == "beta,r1":
        assert expected == []


@pytest.mark.parametrize("size", [1, 7, 64, 1000])
async def test_search_scan_with_tiny_chunks(
    tricky_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    small = tmp_path / "small.csv"
    with tricky_csv.open(newline="", encoding="utf-8") as f:  # a smaller file, same kinds
        head = [line for _, line in zip(range(40), f, strict=False)]
        f.seek(0)
        text = f.read()
    tail = text[text.index("s0,") : text.index("t40,")]
    small.write_text("".join(head) + 'q,"multi\r\nline\r\n\r\nneedle",x\r\n' + tail, newline="")
    small_chunks(monkeypatch, size)
    for query in ["needle", "alpha", "strasse", "ß", "i̇", "multi\r\nline", "alpha,1", "beta,r"]:
        assert await found_by_search(small, query) == reference_search(small, query), query


async def test_search_scan_with_dialects_and_lone_carriage_returns(tmp_path: Path) -> None:
    rows = [
        [f"id{k}", "a;b" if k % 3 else "needle", "c|d needle" if k % 5 == 1 else "e"]
        for k in range(300)
    ]
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"lineterminator": "\r"}, {}),
        ({"delimiter": ";", "lineterminator": "\n"}, {"delimiter": ";"}),
        (
            {
                "delimiter": "|",
                "quoting": csv.QUOTE_NONE,
                "escapechar": "\\",
                "lineterminator": "\n",
            },
            {"delimiter": "|", "quoting": csv.QUOTE_NONE, "escapechar": "\\"},
        ),
        ({"quotechar": "'", "lineterminator": "\n"}, {"quotechar": "'"}),
        ({"lineterminator": "\n"}, {"skipinitialspace": True}),
    ]
    for number, (write, read) in enumerate(cases):
        path = write_csv(tmp_path / f"d{number}.csv", ["id", "x", "y"], rows, **write)
        for query in ["needle", "a;b", "c|d", "id1"]:
            expected = reference_search(path, query, **read)
            assert await found_by_search(path, query, **read) == expected, (write, query)


@pytest.mark.parametrize("page_size", [1, 2, 3, 5])
async def test_search_windows_pages_and_cursors(tmp_path: Path, page_size: int) -> None:
    """Matches at the edges of the WINDOW_ROWS windows, windows without any; every page's
    cursor resumes in a fresh repository (the windows do not depend on the chunking)."""
    hits = {0, 1, WINDOW_ROWS - 1, WINDOW_ROWS, WINDOW_ROWS + 1, 2 * WINDOW_ROWS - 1}
    hits |= {4 * WINDOW_ROWS, 4 * WINDOW_ROWS + 7, 5 * WINDOW_ROWS + 16}  # windows 2, 3: none
    total = 5 * WINDOW_ROWS + 17
    rows = [[str(k), "Needle" if k in hits else "hay", "x" * (k % 50)] for k in range(total)]
    rows[WINDOW_ROWS + 1][2] = '"quoted\nneedle"'
    path = write_csv(tmp_path / "w.csv", ["n", "tag", "pad"], rows)
    repo = CSVRows(path)
    pages = await all_pages(repo.search_pages("needle", page_size=page_size))
    found = [item.identifier for page in pages for item in page]
    assert found == [str(k) for k in sorted(hits)]
    for number, page in enumerate(pages[:-1]):
        assert page.cursor is not None
        async with CSVRows(path) as fresh:
            rest = await all_pages(fresh.search_pages("needle", cursor=page.cursor, page_size=2))
        after = [item.identifier for p in rest for item in p]
        assert after == found[(number + 1) * page_size :]


async def test_search_windows_do_not_depend_on_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [[str(k), "needle" if k % 997 == 3 else "hay"] for k in range(3 * WINDOW_ROWS)]
    path = write_csv(tmp_path / "c.csv", ["n", "tag"], rows)
    batches = []
    for size in (1 << 20, 333, 50_000):
        small_chunks(monkeypatch, size)
        repo = CSVRows(path)
        plan = repo._plan("search", "needle", None, None, None, None, {})
        batches.append(
            [
                (state, [i.identifier for i in batch.items], batch.next_state)
                async for state, batch in repo.stream(plan.request, None)
            ]
        )
    assert batches[0] == batches[1] == batches[2]
    assert [state for state, _, _ in batches[0]] == [0, WINDOW_ROWS, 2 * WINDOW_ROWS]


_PARTS = ["a", "b", "ß", "SS", "İ", "i", " ", ",", '"', "\n", "\r\n", "x", "é"]


@given(
    records=st.lists(
        st.lists(
            st.lists(st.sampled_from(_PARTS), max_size=6).map("".join), min_size=1, max_size=4
        ),
        min_size=1,
        max_size=40,
    ),
    blanks=st.sets(st.integers(0, 40), max_size=5),
    terminator=st.sampled_from(["\n", "\r\n", "\r"]),
    query=st.lists(
        st.sampled_from(["a", "ss", "ß", "i̇", "b,", "x", "a b", '"a\nb"', '"']),
        min_size=1,
        max_size=2,
    ).map(" ".join),
    size=st.sampled_from([1, 5, 16, 1 << 20]),
)
@settings(max_examples=200, deadline=None)
def test_search_scan_property(
    records: list[list[str]], blanks: set[int], terminator: str, query: str, size: int
) -> None:
    import asyncio
    import tempfile

    from asyncrepo.repositories.file import _cache

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "p.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator=terminator)
            writer.writerow(["h1", "h2"])
            for k, record in enumerate(records):
                writer.writerow(record)
                if k in blanks:
                    f.write(terminator)
        saved = _cache._CHUNK
        _cache._CHUNK = size
        try:
            found = asyncio.run(found_by_search(path, query))
        finally:
            _cache._CHUNK = saved
        assert found == reference_search(path, query)


async def test_search_scan_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "strict.csv"
    path.write_text('a,b\n1,2\n5,6\n3,"x"y\n7,8\n')
    for query in ["x", "7", "zzz"]:  # the bad line is parsed whatever the query
        with pytest.raises(MalformedResponse, match=r"strict\.csv: line 4"):
            await collect(CSVRows(path, strict=True).search(query))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b\n1,2\n3,4\n5,\xff\n")
    with pytest.raises(MalformedResponse, match=r"bad\.csv: line 4: .*utf-8"):
        await collect(CSVRows(bad).search("zzz"))


async def test_listing_batches_build_items_as_they_are_taken(big_csv: Path) -> None:
    repo = CSVRows(big_csv)
    plan = repo._plan("list", None, None, None, None, None, {})
    stream = repo.stream(plan.request, BATCH_ROWS)
    assert isinstance(stream, AsyncGenerator)  # typed AsyncIterator; CSVRows' is a generator
    state, batch = await anext(stream)
    await stream.aclose()
    items = batch.items
    assert state == BATCH_ROWS and batch.next_state == 2 * BATCH_ROWS
    assert len(items) == BATCH_ROWS
    assert all(isinstance(item, Item) for item in items)
    assert items[0].identifier == str(BATCH_ROWS) and items[0].raw["id"] == f"r{BATCH_ROWS:05d}"
    assert items[-1].identifier == str(2 * BATCH_ROWS - 1)
    assert [i.identifier for i in items[5:8]] == [str(BATCH_ROWS + k) for k in (5, 6, 7)]
    assert [i.identifier for i in items[5:8][1:]] == [str(BATCH_ROWS + k) for k in (6, 7)]
    assert [i.identifier for i in items[1:6:2]] == [str(BATCH_ROWS + k) for k in (1, 3, 5)]
    assert items[0].repository is repo
    with pytest.raises(IndexError):
        items[BATCH_ROWS]


@pytest.mark.parametrize("worker_thread", [True, False])
async def test_files_parse_the_same_in_a_thread_or_on_the_loop(
    tmp_path: Path, worker_thread: bool
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,name\n" + "".join(f"{i},name {i}\n" for i in range(10_000)))
    async with CSVRows(path, worker_thread=worker_thread) as repo:
        assert [i.identifier async for i in repo.list()] == [str(i) for i in range(10_000)]
        assert (await repo.get("9999")).raw == {"id": "9999", "name": "name 9999"}
        assert [i.identifier async for i in repo.search('"name 777"')] == [
            "777",
            *[str(i) for i in range(7770, 7780)],
        ]


async def test_parsing_on_the_loop_lets_other_tasks_run(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id\n" + "".join(f"{i}\n" for i in range(50_000)))
    async with loop_turns() as turns, CSVRows(path) as repo:
        assert not repo.worker_thread
        assert len(await collect(repo.list())) == 50_000
        listed = turns.count
        assert (await repo.get("49999")).raw == {"id": "49999"}
        got = turns.count
        assert [i.identifier async for i in repo.search("49998")] == ["49998"]
    # The loop was handed back after every slice of a listing, of a get's skipping (8,192
    # rows on the loop), and during a search.
    assert listed >= 50_000 // SLICE_ROWS
    assert got - listed >= 49_999 // 8192
    assert turns.count > got


@pytest.mark.parametrize("worker_thread", [True, False])
async def test_where_parsing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_thread: bool
) -> None:
    import asyncio

    hops = 0
    to_thread = asyncio.to_thread

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await to_thread(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    path = write_csv(tmp_path / "t.csv", ["n"], [[str(k)] for k in range(3 * SLICE_ROWS)])
    # The pure-Python path (pyarrow, where installed, parses in threads of its own).
    async with CSVRows(path, worker_thread=worker_thread, backend="python") as repo:
        assert len(await collect(repo.list())) == 3 * SLICE_ROWS
        assert (hops > 0) is worker_thread


async def test_a_directory_and_a_demo_with_a_path_are_told_apart(tmp_path: Path) -> None:
    import asyncrepo

    with pytest.raises(ConfigurationError, match="takes nothing after the colon"):
        asyncrepo.open("demo:x")
    repo = asyncrepo.open(str(tmp_path))
    with pytest.raises(ConfigurationError, match="is a directory"):
        _ = [item async for item in repo.list()]
    await repo.aclose()
