"""CSV rows: ``CSVRows`` against the standard library, on disk and over HTTP.

The file (1,000,000 rows x 8 columns, ~110 MB; 2,000 rows in smoke mode) is generated
deterministically and cached under ``benchmarks/.data/``. One row in 100 holds the word
"Zanzibar" in its ``note`` column; nothing else does.

* list: ``CSVRows.list()`` vs a plain ``csv.DictReader`` loop.
* search: ``CSVRows.search("zanzibar")`` (naive search) vs a plain substring scan: every
  line casefolded and tested, a dict for each hit.
* get: ``CSVRows.get(<last row index>)`` vs a ``csv.DictReader`` scan to that row.
* http: ``CSVRows(url).list()`` vs aiohttp streaming + ``csv.DictReader`` on each chunk's
  complete lines, from a local static-file server (in its own process).
* native list (with ``asyncrepo[fast]``): ``CSVRows(backend="arrow").list()`` vs pyarrow's
  own streaming reader (``open_csv``) making the same dicts (``RecordBatch.to_pylist``,
  every column a string, empty cells ``""``), each taken as the items are; and against
  the least any async listing of ``Item``s costs over those dicts (an ``Item`` per dict
  from a plain async generator), which shows what the contract itself costs; and
  ``list_pages(page_size=1000)`` against pyarrow's dicts, its items taken page by page.
* repeated gets: 10,000 random ``CSVRows.get()`` (one repository: the first builds the
  offset index) vs one full ``CSVRows.list()`` of the same file (target: under 2x).

``CSVRows.list()`` in the first comparison is the pure-Python path (``backend="python"``),
so that its numbers do not depend on whether pyarrow is installed.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..harness import ROOT, Comparison, Target, Variant
from ..servers import serve

DATA = ROOT / "benchmarks" / ".data"
HEADER = ["id", "name", "email", "city", "country", "created", "amount", "note"]
TERM = "zanzibar"
_FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Edsger", "Margaret", "Dennis", "Ken"]
_LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Hamilton"]
_CITIES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Quito", "Perth", "Tallinn", "Lyon"]
_COUNTRIES = ["PT", "NO", "KE", "JP", "EC", "AU", "EE", "FR"]
_WORDS = ["alpha", "delta", "river", "stone", "cloud", "ember", "maple", "orbit", "quartz"]
CSV_MODULE = "asyncrepo.repositories.file.csv_rows"
#: Runs per variant (a full run of this scenario reads ~110 MB 16 times a round).
RUNS = 3
#: No warm-up round: the file is read once beforehand instead (into the page cache).
WARMUP = False


def ensure_csv(rows: int) -> Path:
    """The benchmark file with ``rows`` data rows (generated once, then cached)."""
    path = DATA / f"rows-v1-{rows}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20240601)
    partial = path.with_suffix(".partial")
    with open(partial, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(rows):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            c = rng.randrange(len(_CITIES))
            note = " ".join(rng.sample(_WORDS, 3))
            if i % 100 == 37:
                note = f"shipped to Zanzibar, {note}"
            writer.writerow(
                [
                    i + 1,
                    f"{first} {last}",
                    f"{first.lower()}.{last.lower()}{rng.randrange(1000)}@example.com",
                    _CITIES[c],
                    _COUNTRIES[c],
                    f"20{rng.randrange(15, 25)}-{rng.randrange(1, 13):02d}-"
                    f"{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
                    f"{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
                    f"{rng.randrange(100000) / 100:.2f}",
                    note,
                ]
            )
    os.replace(partial, path)
    return path


# -- the jobs (run in a fresh worker process) ---------------------------------------------


def raw_list(probe: Any, path: str) -> int:
    count = 0
    with open(path, newline="", encoding="utf-8") as f:
        for _row in csv.DictReader(f):
            count += 1
    return count


async def asyncrepo_list(probe: Any, path: str, backend: str = "python") -> int:
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count = 0
    async with CSVRows(path, backend=backend) as repo:
        async for _item in repo.list():
            count += 1
    return count


def _pyarrow_rows(path: str) -> Iterator[dict[str, Any]]:
    """pyarrow's streaming reader, the same dicts as CSVRows makes (strings, ``""``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    strings = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
    )
    for batch in pacsv.open_csv(path, convert_options=strings):
        yield from batch.to_pylist()


def pyarrow_list(probe: Any, path: str) -> tuple[int, str]:
    """pyarrow's own dicts, each taken as the asyncrepo variant takes its items."""
    count, last = 0, ""
    for row in _pyarrow_rows(path):
        count += 1
        last = row["id"]
    return count, last


async def item_floor_list(probe: Any, path: str) -> tuple[int, str]:
    """What any async listing of ``Item``s costs over pyarrow's dicts, written as plainly as
    it can be: an ``Item`` per dict (row index for identifier), handed out by an async
    generator. Not a client anyone would ship; the least ``list()``'s contract costs."""
    from asyncrepo.item import Item

    async def items() -> AsyncIterator[Item]:
        for index, row in enumerate(_pyarrow_rows(path)):
            yield Item(str(index), row)

    count, last = 0, ""
    async for item in items():
        count += 1
        last = item.raw["id"]
    return count, last


async def asyncrepo_native_list(probe: Any, path: str) -> tuple[int, str]:
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count, last = 0, ""
    async with CSVRows(path, backend="arrow") as repo:
        async for item in repo.list():
            count += 1
            last = item.raw["id"]
    return count, last


async def asyncrepo_native_pages(probe: Any, path: str) -> tuple[int, str]:
    """The same items a page of 1,000 at a time (``list_pages``: what sync and federation
    read), each page's items taken in a plain loop."""
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count, last = 0, ""
    async with CSVRows(path, backend="arrow") as repo:
        async for page in repo.list_pages(page_size=1000):
            for item in page:
                count += 1
                last = item.raw["id"]
    return count, last


async def asyncrepo_gets(probe: Any, path: str, rows: int, gets: int) -> tuple[int, str]:
    """``gets`` random gets by row index on one repository (the first builds the index)."""
    from asyncrepo.repositories.file.csv_rows import CSVRows

    rng = random.Random(7)
    wanted = [rng.randrange(rows) for _ in range(gets)]
    total = 0
    async with CSVRows(path) as repo:
        for index in wanted:
            item = await repo.get(str(index))
            total += int(item.raw["id"])
    return gets, str(total)


async def full_list_once(probe: Any, path: str, rows: int, gets: int) -> tuple[int, str]:
    """One full listing (the default backend), the baseline of the repeated gets."""
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count = 0
    async with CSVRows(path) as repo:
        async for _item in repo.list():
            count += 1
    rng = random.Random(7)
    total = sum(rng.randrange(rows) + 1 for _ in range(gets))  # the ids the gets return
    return (gets if count == rows else -1), str(total)


def raw_search(probe: Any, path: str, term: str) -> tuple[int, str]:
    """The plain substring scan the target is set against: each line casefolded and tested;
    a hit is parsed into a dict (the generated file has no quoted line breaks, so a line
    is a row, and the term never occurs in the header)."""
    wanted = term.casefold()
    hits: list[dict[str, str]] = []
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader([f.readline()]))
        for line in f:
            if wanted in line.casefold():
                hits.append(dict(zip(header, next(csv.reader([line])), strict=True)))
    return len(hits), hits[-1]["id"] if hits else ""


async def asyncrepo_search(probe: Any, path: str, term: str) -> tuple[int, str]:
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count, last = 0, ""
    async with CSVRows(path) as repo:
        async for item in repo.search(term):
            count += 1
            last = item.raw["id"]
    return count, last


def raw_get(probe: Any, path: str, index: int) -> tuple[int, str]:
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i == index:
                return 1, row["id"]
    return 0, ""


async def asyncrepo_get(probe: Any, path: str, index: int) -> tuple[int, str]:
    from asyncrepo.repositories.file.csv_rows import CSVRows

    async with CSVRows(path) as repo:
        item = await repo.get(str(index))
    return 1, item.raw["id"]


async def raw_http_list(probe: Any, url: str) -> int:
    import codecs

    import aiohttp

    count = 0
    header: list[str] | None = None
    decoder = codecs.getincrementaldecoder("utf-8")()
    rest = ""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_chunked(1 << 20):
            text = rest + decoder.decode(chunk)
            cut = text.rfind("\n") + 1
            rest = text[cut:]
            lines = text[:cut].splitlines()
            if header is None:
                header = next(csv.reader(lines[:1]))
                lines = lines[1:]
            for _row in csv.DictReader(lines, fieldnames=header):
                count += 1
        rest += decoder.decode(b"", final=True)
        if rest.strip() and header is not None:
            count += sum(1 for _ in csv.DictReader([rest], fieldnames=header))
    return count


async def asyncrepo_http_list(probe: Any, url: str) -> int:
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count = 0
    async with CSVRows(url) as repo:
        async for _item in repo.list():
            count += 1
    return count


# -- the scenario -------------------------------------------------------------------------


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    rows = 2_000 if smoke else 1_000_000
    path = ensure_csv(rows)
    with open(path, "rb") as f:  # into the page cache: no run pays for the disk
        while f.read(1 << 20):
            pass
    size = f"{rows:,} rows, {path.stat().st_size / 1e6:.3g} MB"
    here = "benchmarks.scenarios.csv_file"
    p = {"path": str(path)}
    rss_cap = Target("rss", 100, absolute=True)
    gets = 200 if smoke else 10_000
    native: list[Comparison] = []
    if importlib.util.find_spec("pyarrow") is not None:  # asyncrepo[fast] installed
        pyarrow_job = Variant("pyarrow open_csv dicts", f"{here}:pyarrow_list", p, ["pyarrow.csv"])
        native_job = Variant(
            "CSVRows(backend=arrow)",
            f"{here}:asyncrepo_native_list",
            p,
            [CSV_MODULE, "pyarrow.csv"],
            expect=rows,
        )
        native.append(
            Comparison(
                f"csv list, native backend ({size})",
                pyarrow_job,
                native_job,
                # pyarrow's own footprint (the library, its memory pool) is the baseline's
                # too: flat memory here means no more than pyarrow's streaming reader.
                [Target("wall", 1.0), Target("rss", 1.1)],
            )
        )
        native.append(
            Comparison(
                f"csv list_pages, native backend ({size})",
                pyarrow_job,
                Variant(
                    "CSVRows(backend=arrow).list_pages(page_size=1000)",
                    f"{here}:asyncrepo_native_pages",
                    p,
                    [CSV_MODULE, "pyarrow.csv"],
                    expect=rows,
                ),
                # No target: shown because pages are what sync and federation read, and a
                # page holds its items alive together (the collector tracks every one).
                [],
                show=["wall"],
            )
        )
        native.append(
            Comparison(
                f"csv list, native backend ({size}) against an Item per pyarrow dict",
                Variant(
                    "pyarrow dicts -> Item, async generator",
                    f"{here}:item_floor_list",
                    p,
                    ["pyarrow.csv", "asyncrepo.item"],
                ),
                native_job,
                [Target("wall", 1.0)],
            )
        )
    with serve("file", path=str(path)) as base:
        url = f"{base}/{path.name}"
        yield [
            Comparison(
                f"csv list ({size})",
                Variant("csv.DictReader loop", f"{here}:raw_list", p, expect=rows),
                Variant("CSVRows.list()", f"{here}:asyncrepo_list", p, [CSV_MODULE], expect=rows),
                [Target("wall", 1.0), rss_cap],
            ),
            Comparison(
                f"csv naive search ({rows // 100:,} hits)",
                Variant("substring scan", f"{here}:raw_search", {**p, "term": TERM}),
                Variant(
                    "CSVRows.search()",
                    f"{here}:asyncrepo_search",
                    {**p, "term": TERM},
                    [CSV_MODULE],
                ),
                [Target("wall", 1.4)],
            ),
            Comparison(
                "csv get last row",
                Variant("DictReader scan", f"{here}:raw_get", {**p, "index": rows - 1}),
                Variant(
                    "CSVRows.get()", f"{here}:asyncrepo_get", {**p, "index": rows - 1}, [CSV_MODULE]
                ),
                [Target("wall", 1.2)],
            ),
            Comparison(
                "csv over HTTP, list",
                Variant(
                    "aiohttp stream + csv",
                    f"{here}:raw_http_list",
                    {"url": url},
                    ["aiohttp"],
                    expect=rows,
                ),
                Variant(
                    "CSVRows(url).list()",
                    f"{here}:asyncrepo_http_list",
                    {"url": url},
                    [CSV_MODULE],
                    expect=rows,
                ),
                [Target("wall", 1.1), rss_cap],
            ),
            Comparison(
                f"csv 10,000 random gets vs one list ({size})"
                if not smoke
                else f"csv {gets:,} random gets vs one list ({size})",
                Variant(
                    "CSVRows.list() once",
                    f"{here}:full_list_once",
                    {**p, "rows": rows, "gets": gets},
                    [CSV_MODULE],
                ),
                Variant(
                    "CSVRows.get() x N",
                    f"{here}:asyncrepo_gets",
                    {**p, "rows": rows, "gets": gets},
                    [CSV_MODULE],
                ),
                [Target("wall", 2.0, strict=True)],
            ),
            *native,
        ]
