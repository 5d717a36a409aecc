"""The command line: streamed output in constant memory, and a fast ``--help``.

* ``asyncrepo list big.csv -f jsonl | json | table`` over the CSV scenario's file
  (1,000,000 rows; 2,000 in smoke mode), in the worker process (``asyncrepo.cli.app``
  called with its arguments), its stdout a sink that counts lines. Baseline: the same
  listing with no output (``CSVRows.list()`` drained), so the ratios are what the CLI adds.
  Target: peak RSS within 1.2x of the bare listing in every format (nothing is collected:
  memory stays flat however many rows); wall and CPU ratios shown. A third comparison sets
  ``-f jsonl`` against a plain ``csv.DictReader`` loop writing ``orjson`` lines (shown only).
* ``asyncrepo --help`` and ``python -c "import asyncrepo"`` as fresh processes; baseline: a
  bare ``python -c pass``. Targets: ``--help`` under 150 ms, the import under 60 ms (the
  transport, aiohttp, is imported only when a source needs it).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..harness import Comparison, Metric, Target, Variant
from .csv_file import ensure_csv

HERE = "benchmarks.scenarios.cli"
CLI_MODULES = ["asyncrepo.cli", "asyncrepo.cli._output", "asyncrepo.repositories.file.csv_rows"]


class Sink:
    """A stdout that counts lines (and marks the first write as the first item)."""

    def __init__(self, probe: Any) -> None:
        self.lines = 0
        self.probe = probe
        self.buffer = self

    def write(self, data: bytes | str) -> int:
        if not self.lines:
            self.probe.first()
        self.lines += data.count(b"\n" if isinstance(data, bytes) else "\n")  # type: ignore[arg-type]
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def raw_jsonl(probe: Any, path: str) -> int:
    import orjson

    sink = Sink(probe)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            sink.write(orjson.dumps(row) + b"\n")
    return sink.lines


async def bare_listing(probe: Any, path: str) -> int:
    """``CSVRows.list()`` drained: the listing the CLI writes out, without output."""
    from asyncrepo.repositories.file.csv_rows import CSVRows

    count = 0
    async with CSVRows(path) as repo:
        async for _item in repo.list():
            if not count:
                probe.first()
            count += 1
    return count


def asyncrepo_cli(probe: Any, path: str, fmt: str) -> int:
    """``asyncrepo list PATH -f FMT``; returns the number of rows written."""
    from asyncrepo.cli import app

    sink = Sink(probe)
    stdout = sys.stdout
    sys.stdout = sink
    try:
        app(["list", path, "-f", fmt, "--no-progress"], standalone_mode=False)
    except SystemExit as exit:
        if exit.code:
            raise
    finally:
        sys.stdout = stdout
    # json: "[" and "]" lines; table: a header and a rule.
    return sink.lines - (2 if fmt in ("json", "table") else 0)


def process(probe: Any, args: list[str]) -> int:
    """A fresh ``python ARGS`` process, to its end."""
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    return 1


def help_args() -> list[str]:
    return [
        "-c",
        "import sys; sys.argv = ['asyncrepo', '--help']; import asyncrepo.cli as c; c.main()",
    ]


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    rows = 2_000 if smoke else 1_000_000
    path = str(ensure_csv(rows))
    size = f"{rows:,} rows, {Path(path).stat().st_size / 1e6:.3g} MB"
    raw = Variant("csv + orjson lines", f"{HERE}:raw_jsonl", {"path": path}, ["orjson"])
    bare = Variant(
        "CSVRows.list(), no output",
        f"{HERE}:bare_listing",
        {"path": path},
        CLI_MODULES,
        expect=rows,
    )
    rss = Target("rss", 1.2)

    def cli(fmt: str) -> Variant:
        return Variant(
            f"asyncrepo list -f {fmt}",
            f"{HERE}:asyncrepo_cli",
            {"path": path, "fmt": fmt},
            CLI_MODULES,
            expect=rows,
        )

    python = Variant("python -c pass", f"{HERE}:process", {"args": ["-c", "pass"]})
    shown: list[Metric] = ["wall", "cpu"]
    yield [
        Comparison(f"cli list -f jsonl ({size})", bare, cli("jsonl"), [rss], show=shown),
        Comparison(f"cli list -f json ({size})", bare, cli("json"), [rss], show=shown),
        Comparison(f"cli list -f table ({size})", bare, cli("table"), [rss], show=shown),
        Comparison("cli -f jsonl vs a raw loop", raw, cli("jsonl"), [], show=["wall", "rss"]),
        Comparison(
            "cli asyncrepo --help (process)",
            python,
            Variant("asyncrepo --help", f"{HERE}:process", {"args": help_args()}),
            [Target("wall", 0.15, absolute=True)],
        ),
        Comparison(
            "cli import asyncrepo (process)",
            python,
            Variant("import asyncrepo", f"{HERE}:process", {"args": ["-c", "import asyncrepo"]}),
            [Target("wall", 0.06, absolute=True)],
        ),
    ]
