"""``asyncrepo sync`` (copy sources into an index, incrementally) and ``asyncrepo serve``
(the search API and page over an index). The engine is ``asyncrepo.sync``; the indexes
``asyncrepo.index``; the server ``asyncrepo.serve``."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import Format, FormatOption, app, resolved_format, run, state, use_format

if TYPE_CHECKING:
    from ..index.base import Index
    from ..repository import Repository
    from ..sync import SyncReport

IndexOption = Annotated[
    str | None,
    typer.Option(
        "--index",
        "-i",
        metavar="URI",
        help="The index: sqlite:///path.db (default: $ASYNCREPO_INDEX, else "
        "sqlite:///asyncrepo.db) or osindex+http://host:9200/name.",
    ),
]
OptionList = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", metavar="KEY=VALUE", help="A source option (repeatable)."),
]
Every = Annotated[
    str | None,
    typer.Option(
        "--every",
        metavar="DURATION",
        help="Sync again every 15m, 1h, 1d... (runs until interrupted).",
    ),
]


def _open_sources(
    specs: list[str], pairs: list[str] | None
) -> tuple[dict[str, Repository], dict[str, str]]:
    """Sources as given (``URI``, ``name=URI``, ``@name``) keyed by a stable name: the given
    name, else the URI without credentials (``asyncrepo.sync.source_key``)."""
    from ..exceptions import ConfigurationError
    from ..sync import source_key
    from ._sources import open_target, parse_target

    repos: dict[str, Repository] = {}
    uris: dict[str, str] = {}
    for spec in specs:
        target = parse_target(spec, state.config)
        key = (target.name or source_key(target.uri)).replace(":", "_")
        if key in repos:
            raise ConfigurationError(f"two sources are named {key!r}: name one (name=URI)")
        repos[key] = open_target(target, pairs)
        uris[key] = source_key(target.uri)
    return repos, uris


async def _close_all(repos: dict[str, Repository]) -> None:
    for repo in repos.values():
        with contextlib.suppress(Exception):  # best effort; the run's outcome is reported
            await repo.aclose()


class _Display:
    """Per-source progress (items, rate, errors) on stderr when it is a terminal."""

    def __init__(self) -> None:
        self.live: Any = None
        self.reports: dict[str, SyncReport] = {}
        if state.progress and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=8, transient=False)

    def __enter__(self) -> _Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.live.__exit__(None, None, None)

    def update(self, report: SyncReport) -> None:
        self.reports[report.source] = report
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None)
        for column in ("source", "mode", "items", "rate", "status"):
            table.add_column(column)
        for key, r in sorted(self.reports.items()):
            status = "running" if r.ok is None else "ok" if r.ok else f"failed: {r.error}"
            table.add_row(key, r.mode, str(r.seen), f"{r.rate:,.0f}/s", status)
        return table


def _report_lines(reports: dict[str, SyncReport]) -> None:
    fmt = resolved_format()
    rows = [r.to_json() for _, r in sorted(reports.items())]
    _emit(rows, fmt, ("source", "mode", "seen", "deleted", "items", "ok", "error", "seconds"))


def _emit(rows: list[dict[str, Any]], fmt: Format, columns: tuple[str, ...]) -> None:
    import orjson

    if fmt in (Format.jsonl, Format.auto):
        for row in rows:
            sys.stdout.buffer.write(orjson.dumps(row, default=str) + b"\n")
        sys.stdout.flush()
    elif fmt is Format.json:
        sys.stdout.buffer.write(orjson.dumps(rows, default=str) + b"\n")
        sys.stdout.flush()
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table()
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        Console().print(table)


async def _status(index: Index) -> None:
    states = await index.states()
    rows = [s.public_json() for s in states.values()]
    columns = ("source", "status", "items", "last_run", "last_full", "high_water", "cursor")
    _emit(rows, resolved_format(), (*columns, "last_error"))


@app.command("sync")
def sync_command(
    uris: Annotated[
        list[str] | None,
        typer.Argument(help="Sources: URI, name=URI or @name (the name is the source key)."),
    ] = None,
    index: IndexOption = None,
    every: Every = None,
    status: Annotated[
        bool, typer.Option("--status", help="Show each source's sync state and exit.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="A full listing now (and the deletion sweep).")
    ] = False,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap",
            metavar="DURATION",
            help="since = high-water mark minus this (clock skew, vendor indexing lag).",
        ),
    ] = "10m",
    full_every: Annotated[
        str,
        typer.Option(
            "--full-every", metavar="DURATION", help="How often a full listing sweeps deletions."
        ),
    ] = "1d",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Sources synced at once.")
    ] = 4,
    page_size: Annotated[int | None, typer.Option("--page-size", min=1)] = None,
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """Copy sources into an index, incrementally (unified search). Exit 1 if a source
    failed (the others are synced all the same)."""
    use_format(output_format)
    failed = [False]

    async def job() -> None:
        from ..exceptions import ConfigurationError
        from ..index import open_index
        from ..sync import parse_duration, sync, sync_forever

        idx = open_index(index)
        try:
            if status:
                await _status(idx)
                return
            if not uris:
                raise ConfigurationError("sync needs at least one source (or --status)")
            repos, keys = _open_sources(uris, option)
            options: dict[str, Any] = {
                "overlap": parse_duration(overlap),
                "full_every": parse_duration(full_every),
                "concurrency": concurrency,
                "page_size": page_size,
                "uris": keys,
            }
            try:
                if every is not None:
                    interval = parse_duration(every)

                    def on_round(reports: dict[str, SyncReport]) -> None:
                        _report_lines(reports)

                    with _Display() as display:
                        await sync_forever(
                            repos,
                            idx,
                            interval,
                            on_round=on_round,
                            progress=display.update,
                            full=full,
                            **options,
                        )
                    return  # (sync_forever runs until interrupted)
                with _Display() as display:
                    reports = await sync(repos, idx, full=full, progress=display.update, **options)
                _report_lines(reports)
                for key, report in sorted(reports.items()):
                    if not report.ok:
                        failed[0] = True
                        typer.echo(f"asyncrepo: source {key} failed: {report.error}", err=True)
            finally:
                await _close_all(repos)
        finally:
            await idx.aclose()

    run(job)
    if failed[0]:
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    index: IndexOption = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            metavar="URI",
            help="Serve only these sources (repeatable), kept synced in the background.",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port.")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="ASYNCREPO_SERVE_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' (env: ASYNCREPO_SERVE_TOKEN).",
        ),
    ] = None,
    every: Annotated[
        str,
        typer.Option("--every", metavar="DURATION", help="Background sync interval for --source."),
    ] = "15m",
    option: OptionList = None,
) -> None:
    """Serve a search page and a JSON API (/search, /items, /sources, /openapi.json) over
    an index."""

    async def job() -> None:
        from ..index import open_index
        from ..serve import make_app, serve_forever
        from ..sync import parse_duration

        idx = open_index(index)
        repos: dict[str, Repository] = {}
        try:
            keys: dict[str, str] = {}
            if source:
                repos, keys = _open_sources(source, option)
            app_ = make_app(
                idx,
                token=token,
                sources=repos or None,
                every=parse_duration(every) if repos else None,
                sync_options={"uris": keys},
            )
            typer.echo(f"asyncrepo: serving on http://{host}:{port}/", err=True)
            await serve_forever(app_, host, port)
        finally:
            await _close_all(repos)
            await idx.aclose()

    run(job)
