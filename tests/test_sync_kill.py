"""Nothing is lost: a sync process killed with SIGKILL at random points (after a random
number of committed pages, plus a random moment within the next page) is run again until it
completes, and the index then holds exactly the source's contents: after the first (full)
sync, after changes picked up by incremental runs, and after deletions swept by a full one.

The child is ``tests/sync_child.py`` (a MemorySource read from a JSON file). It reports each
committed page and waits for the test's go-ahead, so it never runs ahead of the test: the
kill lands after a random number of committed pages, at a random moment of the next page
(or just after it). Nothing depends on the machine's speed; each seed is bounded (a
handful of kills).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from asyncrepo.index.sqlite import SQLiteIndex
from tests.sync_sources import BASE, MemorySource, record

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = 7
N = 240


def _write(path: Path, records: dict[str, dict[str, Any]]) -> None:
    path.write_bytes(orjson.dumps(records))


def _run(data: Path, db: Path, *, kill_after: int | None, rng: random.Random, full: bool) -> str:
    """Run the child; with ``kill_after``, SIGKILL it once it has committed that many pages
    (after a random pause of up to one page's worth of work). Returns how it ended."""
    args = [sys.executable, "-m", "tests.sync_child", str(data), str(db), str(PAGE_SIZE)]
    if full:
        args.append("full")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        for line in child.stdout:
            if line.startswith("PAGE "):
                child.stdin.write("\n")  # go on with the next page
                child.stdin.flush()
            if (
                kill_after is not None
                and line.startswith("PAGE ")
                and (int(line.split()[1]) >= kill_after)
            ):
                # somewhere inside the next page (fetch, commit, between the two) or after
                time.sleep(rng.choice((0.0, 0.0002, 0.001, 0.002, 0.004, 0.01)))
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=60)
                return "killed"
            if line.startswith("DONE "):
                child.wait(timeout=60)
                assert child.returncode == 0, line
                return line.strip()
        child.wait(timeout=60)
        raise AssertionError(f"the child ended without DONE: exit {child.returncode}")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stdin.close()


def _converge(data: Path, db: Path, rng: random.Random, *, full: bool, kills: int) -> list[str]:
    """Kill the sync ``kills`` times at random committed-page counts, then let it finish."""
    pages = -(-N // PAGE_SIZE)
    outcomes = []
    for _ in range(kills):
        outcomes.append(_run(data, db, kill_after=rng.randrange(1, pages // 2), rng=rng, full=full))
        full = False  # a resumed run goes on with the listing the killed one began
    outcomes.append(_run(data, db, kill_after=None, rng=rng, full=full))
    return outcomes


async def _index_contents(db: Path) -> dict[str, tuple[Any, ...]]:
    async with SQLiteIndex(db) as index:
        out = {}
        async for item in index.list(page_size=1000):
            out[item.identifier.split(":", 1)[1]] = (item.title, item.text, item.updated_at)
        state = await index.state("mem")
        assert state is not None and state.status == "ok" and state.cursor is None
        assert state.items == len(out)
        await index._write(
            lambda conn: conn.execute(
                "INSERT INTO items_fts (items_fts) VALUES ('integrity-check')"
            )
        )
        return out


def _expected(records: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    source = MemorySource(records)
    return {
        k: (source.item(k).title, source.item(k).text, source.item(k).updated_at) for k in records
    }


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_points_then_converge(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data, db = tmp_path / "source.json", tmp_path / "index.db"
    records = {f"r{i:04d}": record(i) for i in range(N)}
    _write(data, records)

    # 1. The first, full, sync: killed twice, then completed.
    outcomes = _converge(data, db, rng, full=False, kills=2)
    assert outcomes[:2] == ["killed", "killed"]
    assert outcomes[-1].startswith("DONE full")  # resumed the full listing...
    assert int(outcomes[-1].split()[2]) < N  # ...where it stood, not from the start
    assert asyncio.run(_index_contents(db)) == _expected(records)

    # 2. Changes (updates and additions, dated after the high-water mark), picked up by an
    #    incremental sync that is killed once.
    for n in rng.sample(range(N), 15):
        records[f"r{n:04d}"] = record(n, title=f"changed {n}", updated=_later(N + n))
    for n in range(N, N + 10):
        records[f"r{n:04d}"] = record(n, updated=_later(2 * N + n))
    _write(data, records)
    outcomes = _converge(data, db, rng, full=False, kills=0)
    assert outcomes[-1].startswith("DONE incremental")
    assert asyncio.run(_index_contents(db)) == _expected(records)

    # 3. Deletions: swept by a full listing, which is killed twice first.
    for key in rng.sample(sorted(records), 20):
        del records[key]
    _write(data, records)
    outcomes = _converge(data, db, rng, full=True, kills=2)
    assert outcomes[-1].startswith("DONE full")
    assert asyncio.run(_index_contents(db)) == _expected(records)


def _later(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()
