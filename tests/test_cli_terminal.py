"""The CLI as a process, in pipes and in a pseudo-terminal: rows stream before the source
finishes, Ctrl-C exits 130 at once, a closed pipe ends the run quietly, progress shows on
a terminal's stderr only.

The source is ``gated:``, a repository defined here: its first page comes at once, the
following pages only once the test creates the gate file. A CLI that held rows back until
the source finished would never show the first row while the gate is shut (the reads below
would time out), so no test depends on timing.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl

import pytest

from asyncrepo import Batch, Item, Repository
from asyncrepo.repository import PageRequest

ROOT = Path(__file__).resolve().parent.parent
#: Generous: a wait that ends early is the normal case; this only bounds a broken CLI.
WAIT = 60.0
RUN_CLI = "from tests.test_cli_terminal import cli; cli()"


class Gated(Repository):
    """``per_page`` items a page, ``pages`` pages; pages after the first wait for ``gate``
    (a path) to exist. No gate: every page at once."""

    name = "test.gated"

    def __init__(self, gate: str, per_page: int = 3, pages: int = 3, stuck: int = 0) -> None:
        self.gate = gate
        self.per_page = per_page
        self.pages = pages
        self.stuck = stuck  # pages after the first block a worker thread for an hour

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        page = state or 0
        if page >= 1 and self.stuck:
            await asyncio.to_thread(time.sleep, 3600)
        if page >= 1 and self.gate:
            # Polls a file: the gate is opened by another process (the test).
            while not os.path.exists(self.gate):  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(0.02)
        first = page * self.per_page
        items = [
            Item(str(n), {"n": n, "word": f"row {n}"}, self, title=f"row {n}")
            for n in range(first, first + self.per_page)
        ]
        return Batch(items, page + 1 if page + 1 < self.pages else None)


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    query = {k: int(v) for k, v in parse_qsl(parts.query)}
    return Gated(parts.path, **query, **options)


def cli() -> None:
    """The asyncrepo command with the ``gated:`` scheme registered (run in a subprocess)."""
    from asyncrepo import registry
    from asyncrepo.cli import main

    registry.register_scheme("gated", "tests.test_cli_terminal:from_uri")
    main()


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", RUN_CLI, *args]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", **extra)
    return env


def read_until(fd: int, done: Callable[[bytes], bool], seen: bytearray) -> bytes:
    """Read ``fd`` into ``seen`` until ``done(seen)``; fails after ``WAIT`` seconds without
    it, or at end of file."""
    while not done(bytes(seen)):
        ready, _, _ = select.select([fd], [], [], WAIT)
        if not ready:
            pytest.fail(f"waited {WAIT}s; got so far: {bytes(seen)[-2000:]!r}")
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # a pty whose other side closed
            chunk = b""
        if not chunk:
            pytest.fail(f"end of output; got: {bytes(seen)[-2000:]!r}")
        seen += chunk
    return bytes(seen)


def read_rest(fd: int) -> bytes:
    out = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], WAIT)
        if not ready:
            pytest.fail("the command did not finish")
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk


def open_pty(columns: int = 120) -> tuple[int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return master, slave


@pytest.mark.parametrize("fmt", ["jsonl", "json", "table"])
def test_first_rows_come_before_the_source_finishes(tmp_path: Path, fmt: str) -> None:
    gate = tmp_path / "gate"
    proc = subprocess.Popen(
        command("list", f"gated://{gate}", "-f", fmt),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        seen = bytearray()
        read_until(proc.stdout.fileno(), lambda b: b"row 2" in b, seen)
        assert proc.poll() is None  # the source is still waiting for its second page
        assert b"row 3" not in seen
        gate.touch()
        rest = bytes(seen) + read_rest(proc.stdout.fileno())
        assert proc.wait(WAIT) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    text = rest.decode()
    if fmt == "json":
        import json

        assert [row["raw"]["n"] for row in json.loads(text)] == list(range(9))
    elif fmt == "jsonl":
        assert len(text.splitlines()) == 9
    else:
        lines = text.splitlines()
        assert lines[0].split() == ["identifier", "title"]
        assert lines[2].split() == ["0", "row", "0"] and len(lines) == 2 + 9


@pytest.mark.parametrize("stderr_terminal", [False, True])
def test_a_terminal_gets_a_table_streamed_and_no_progress_on_stdout(
    tmp_path: Path, stderr_terminal: bool
) -> None:
    gate = tmp_path / "gate"
    master, slave = open_pty()
    err_master, err_slave = open_pty() if stderr_terminal else (None, None)
    proc = subprocess.Popen(
        command("list", f"gated://{gate}"),
        stdout=slave,
        stderr=err_slave if err_slave is not None else subprocess.PIPE,
        env=environment(),
        cwd=ROOT,
    )
    os.close(slave)
    if err_slave is not None:
        os.close(err_slave)
    err = err_master if err_master is not None else proc.stderr.fileno()  # type: ignore[union-attr]
    try:
        seen = bytearray()
        read_until(master, lambda b: b"row 2" in b, seen)
        assert proc.poll() is None
        gate.touch()
        output = (bytes(seen) + read_rest(master)).decode()
        assert proc.wait(WAIT) == 0
        stderr = read_rest(err).decode()
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        if err_master is not None:
            os.close(err_master)
        if proc.stderr is not None:
            proc.stderr.close()
    lines = [line for line in output.replace("\r", "").splitlines() if line.strip()]
    assert "identifier" in lines[0] and "title" in lines[0]  # auto: a table on a terminal
    assert [line.split()[-1] for line in lines[2:]] == [str(n) for n in range(9)]
    assert "items" not in output  # no progress display on stdout
    assert "Traceback" not in stderr
    assert "\x1b[?25l" not in stderr  # no live display (it hides the cursor)
    if stderr_terminal:
        assert stderr.startswith("9 items in ")  # the table's footer
    else:
        assert stderr == ""


def test_progress_shows_on_a_terminal_stderr_while_stdout_is_a_pipe(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    master, slave = open_pty()
    with open(tmp_path / "out.jsonl", "wb") as out:  # a file: never full, unlike a pipe
        proc = subprocess.Popen(
            command("list", f"gated://{gate}?per_page=1000&pages=3", "--limit", "2500"),
            stdout=out,
            stderr=slave,
            env=environment(),
            cwd=ROOT,
        )
    os.close(slave)
    try:
        seen = bytearray()
        # A live display while the source waits: count, total (--limit: a bar) and rate.
        read_until(master, lambda b: b"1,000 / 2,500 items" in b and b"items/s" in b, seen)
        gate.touch()
        assert proc.wait(WAIT) == 0
        stderr = bytes(seen) + read_rest(master)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 2500
    assert b"Traceback" not in stderr


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    result = subprocess.run(
        command("list", "gated://?per_page=1000&pages=3"),
        capture_output=True,
        env=environment(),
        cwd=ROOT,
        timeout=WAIT,
    )
    assert result.returncode == 0
    assert result.stderr == b""
    assert len(result.stdout.splitlines()) == 3000


@pytest.mark.parametrize("terminal", [False, True])
def test_the_first_ctrl_c_stops_at_once_with_130(tmp_path: Path, terminal: bool) -> None:
    gate = tmp_path / "gate"  # never opened: without Ctrl-C the command would wait forever
    master, slave = open_pty() if terminal else (None, None)
    proc = subprocess.Popen(
        command("search", "row", f"gated://{gate}"),
        stdout=slave if slave is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        cwd=ROOT,
    )
    if slave is not None:
        os.close(slave)
    out = master if master is not None else proc.stdout.fileno()  # type: ignore[union-attr]
    try:
        read_until(out, lambda b: b"row 2" in b, bytearray())
        proc.send_signal(signal.SIGINT)
        code = proc.wait(WAIT)
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        if master is not None:
            os.close(master)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert code == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "CancelledError" not in stderr


def test_ctrl_c_ends_the_process_even_when_a_worker_thread_is_stuck() -> None:
    # The source's second page blocks a thread for an hour: the interpreter would wait for
    # it at exit; the CLI ends the process after its grace second instead.
    proc = subprocess.Popen(
        command("list", "gated://?stuck=1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        read_until(proc.stdout.fileno(), lambda b: b"row 2" in b, bytearray())
        proc.send_signal(signal.SIGINT)
        code = proc.wait(WAIT)
        stderr = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert code == 130 and b"Traceback" not in stderr


def test_a_closed_pipe_ends_the_run_quietly_with_0() -> None:
    # 50,000 rows (~4 MB): far more than a pipe holds, so the CLI writes into a closed pipe.
    proc = subprocess.Popen(
        command("list", "gated://?per_page=1000&pages=50", "-f", "jsonl"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # as `head -1` does
        code = proc.wait(WAIT)
        stderr = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert b'"identifier":"0"' in first
    assert (code, stderr) == (0, b"")


def test_head_in_a_shell_pipeline() -> None:
    cmd = " ".join(f"'{part}'" for part in command("list", "gated://?per_page=1000&pages=50"))
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {cmd} | head -1"],
        capture_output=True,
        env=environment(),
        cwd=ROOT,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert result.stdout.count(b"\n") == 1


def test_a_table_in_an_ascii_locale_uses_dashes() -> None:
    result = subprocess.run(
        command("list", "gated://?pages=1", "-f", "table"),
        capture_output=True,
        env=environment(PYTHONIOENCODING="ascii"),
        cwd=ROOT,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode("ascii").splitlines()
    assert lines[1] == "----------  -----"
    assert lines[2].split() == ["0", "row", "0"]
