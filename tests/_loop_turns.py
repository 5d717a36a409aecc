"""A count of the event loop's turns while a block runs: a test that parsing on the loop's
thread hands the loop back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Turns:
    count = 0


@contextlib.asynccontextmanager
async def loop_turns() -> AsyncIterator[Turns]:
    """Counts how often another task got to run while the block ran."""
    turns = Turns()

    async def ticker() -> None:
        while True:
            turns.count += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        yield turns
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
