"""The process the SIGKILL test kills: syncs a MemorySource read from a JSON file into a
SQLite index, printing ``PAGE n`` after each committed page and then waiting for a line on stdin.

``python -m tests.sync_child DATA.json INDEX.db PAGE_SIZE [full]``
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from asyncrepo.index.sqlite import SQLiteIndex
from asyncrepo.sync import SyncReport, sync
from tests.sync_sources import MemorySource


async def main(records: dict[str, Any], path: str, page_size: int, full: bool) -> int:
    source = MemorySource(records, delay=0.001, page_size=page_size)

    def progress(report: SyncReport) -> None:
        if report.ok is None and report.pages:
            sys.stdout.write(f"PAGE {report.pages}\n")
            sys.stdout.flush()
            # Wait for the test's go-ahead: this process never runs more than one page
            # ahead of the test that may kill it, however the machine schedules the two.
            sys.stdin.readline()

    async with SQLiteIndex(path) as index:
        reports = await sync({"mem": source}, index, full=full, progress=progress)
    report = reports["mem"]
    sys.stdout.write(f"DONE {report.mode} {report.seen} {report.deleted} {report.ok}\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    data = orjson.loads(Path(args[0]).read_bytes())
    full = len(args) > 3 and args[3] == "full"
    sys.exit(asyncio.run(main(data, args[1], int(args[2]), full)))
