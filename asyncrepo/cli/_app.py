"""The Typer application every command module registers on, its global options, and
``run``: how a command's coroutine runs (errors, Ctrl-C, broken pipes, exit codes).

Kept light on purpose: this module and the command modules import only typer at the top
(the sources, the registry and the transport are imported when a command runs), so
``asyncrepo --help`` starts fast and never loads aiohttp.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from .._version import __version__

T = TypeVar("T")

#: Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Seconds a Ctrl-C gives the command to close its connections before the process ends.
INTERRUPT_GRACE = 1.0


class Format(StrEnum):
    auto = "auto"
    json = "json"
    jsonl = "jsonl"
    table = "table"
    markdown = "markdown"  # the `sources` support table, as in the README


class State:
    """Options that hold for the whole invocation (set by the global options)."""

    def __init__(self) -> None:
        self.debug = False
        self.format = Format.auto
        self.progress = True
        self.config: str | None = None


state = State()

#: Options that may appear anywhere on the command line (before or after the command):
#: name -> whether it takes a value. ``GlobalOptionsGroup`` moves them before the command.
GLOBAL_OPTIONS: dict[str, bool] = {"--debug": False, "--no-progress": False, "--config": True}


class GlobalOptionsGroup(TyperGroup):
    """Lets the global options appear anywhere: ``asyncrepo list x.csv --debug`` is
    ``asyncrepo --debug list x.csv``. Arguments after ``--`` are left alone."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        hoisted: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rest.extend(args[i:])
                break
            name = arg.split("=", 1)[0]
            if name in GLOBAL_OPTIONS:
                takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
                hoisted.extend(args[i : i + 2] if takes_value else [arg])
                i += 2 if takes_value else 1
                continue
            rest.append(arg)
            i += 1
        return super().parse_args(ctx, hoisted + rest)


app = typer.Typer(
    name="asyncrepo",
    cls=GlobalOptionsGroup,
    help=(
        "One async interface over many data sources: list, get and search from the shell.\n\n"
        "Global options (--debug, --config, --no-progress) work before or after the command."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help renderer imports much more
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asyncrepo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="Output format (auto: table on a terminal)."),
    ] = Format.auto,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks, and debug logs on stderr.")
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress display on stderr.")
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            metavar="PATH",
            help="The sources file (default: $ASYNCREPO_CONFIG, else "
            "$XDG_CONFIG_HOME/asyncrepo/sources.toml).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    state.debug = debug
    state.format = output_format
    state.progress = not no_progress
    state.config = config
    if debug:
        _debug_log()


def _debug_log() -> None:
    """The library's log (``asyncrepo.*`` loggers), debug level and up, on stderr."""
    import logging

    class ToStderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sys.stderr.write(self.format(record) + "\n")  # the stderr of the moment

    logger = logging.getLogger("asyncrepo")
    if not any(type(h).__name__ == "ToStderr" for h in logger.handlers):
        handler = ToStderr()
        handler.setFormatter(logging.Formatter("asyncrepo: %(levelname)s: %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


FormatOption = Annotated[
    Format | None,
    typer.Option("--format", "-f", help="Output format (auto: table on a terminal)."),
]


def use_format(output_format: Format | None) -> None:
    """A command's own ``--format`` wins over the global one."""
    if output_format is not None:
        state.format = output_format


def resolved_format(*, tty: bool | None = None) -> Format:
    """The output format, ``auto`` resolved: a table on a terminal, else JSON Lines."""
    if state.format is not Format.auto:
        return state.format
    if tty is None:
        tty = sys.stdout.isatty()
    return Format.table if tty else Format.jsonl


# -- running a command's coroutine ----------------------------------------------------------


def error_message(error: BaseException) -> str:
    """One line for an error, said once: ``source: message`` without the source twice."""
    text = str(error) or type(error).__name__
    source = getattr(error, "source", None)
    if source:
        doubled = f"{source}: {source} "
        if text.startswith(doubled):
            text = f"{source} " + text[len(doubled) :]
    return " ".join(text.split())  # one line, whatever the vendor sent


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"asyncrepo: error: {message}", err=True)
    return typer.Exit(code)


def _restore_terminal() -> None:
    if sys.stderr.isatty():
        with contextlib.suppress(OSError):
            os.write(sys.stderr.fileno(), b"\x1b[?25h\n")  # a live display hid the cursor


def _exit_now() -> None:
    _restore_terminal()
    os._exit(EXIT_INTERRUPTED)


def quiet_broken_pipe() -> typer.Exit:
    """The reader of our stdout has gone (``| head -1``): stop quietly with 0, as ``cat``
    does. stdout is pointed at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return typer.Exit(0)


def run(job: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine. asyncrepo errors become one line on stderr and exit 1
    (the source failed) or 2 (bad input or configuration); ``--debug`` raises them with
    their traceback. The first Ctrl-C cancels the coroutine (its streams and connections
    close) and exits 130 without a traceback; if closing takes longer than
    ``INTERRUPT_GRACE`` seconds, or on a second Ctrl-C, the process ends at once."""
    import asyncio

    from ..exceptions import AsyncRepoError, ConfigurationError, InvalidQuery, UnsupportedOption

    interrupted = threading.Event()
    loop_and_task: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop_and_task.append((asyncio.get_running_loop(), task))
        return await job()

    def on_sigint(signum: int, frame: object) -> None:
        if interrupted.is_set() or not loop_and_task:
            _exit_now()
        interrupted.set()
        loop, task = loop_and_task[0]
        watchdog = threading.Timer(INTERRUPT_GRACE, _exit_now)
        watchdog.daemon = True
        watchdog.start()
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # the loop has closed: nothing left to cancel
            _exit_now()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main_thread else None
    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if state.debug and not interrupted.is_set():
            raise
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        raise quiet_broken_pipe() from None
    except AsyncRepoError as error:
        if interrupted.is_set():
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if state.debug:
            raise
        usage = isinstance(error, ConfigurationError | InvalidQuery | UnsupportedOption)
        raise fail(error_message(error), 2 if usage else 1) from None
    except Exception as error:
        if interrupted.is_set():
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if state.debug:
            raise
        message = f"unexpected {type(error).__name__}: {error_message(error)}"
        raise fail(message + " (--debug shows the traceback)", 1) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def main() -> None:
    """The ``asyncrepo`` command (the console-script entry point)."""
    try:
        app()
    except KeyboardInterrupt:  # before or after the event loop ran
        _restore_terminal()
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        quiet_broken_pipe()
        sys.exit(0)
