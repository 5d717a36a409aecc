"""The ``asyncrepo`` command: list, get and search any source from the shell.

Output is JSON Lines when stdout is not a terminal and a table when it is (``--format``
overrides). Long listings show a counter on stderr when stderr is a terminal. Errors are
one line on stderr and a non-zero exit (1: the source failed; 2: bad input or
configuration); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from . import registry
from ._version import __version__
from .exceptions import (
    AsyncRepoError,
    ConfigurationError,
    InvalidQuery,
    UnsupportedOption,
)
from .repository import Item, Repository

app = typer.Typer(
    name="asyncrepo",
    help="One async interface over many data sources: list, get and search from the shell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


class Format(StrEnum):
    auto = "auto"
    json = "json"
    jsonl = "jsonl"
    table = "table"
    markdown = "markdown"  # the `sources` support table, as in the README


class _State:
    debug = False
    format = Format.auto


state = _State()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asyncrepo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    output_format: Annotated[
        Format, typer.Option("--format", "-f", help="Output format (auto: table on a terminal).")
    ] = Format.auto,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    state.debug = debug
    state.format = output_format


def _options(pairs: list[str] | None) -> dict[str, Any]:
    """``-o key=value`` pairs; values that parse as JSON (numbers, true, lists) are decoded."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"options are key=value, not {pair!r}")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"--since takes an ISO date or datetime, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run(job: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; turn asyncrepo errors into one line on stderr and an exit code."""
    try:
        return asyncio.run(job())  # type: ignore[arg-type]
    except AsyncRepoError as error:
        if state.debug:
            raise
        typer.echo(f"asyncrepo: error: {error}", err=True)
        usage = isinstance(error, ConfigurationError | InvalidQuery | UnsupportedOption)
        raise typer.Exit(2 if usage else 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


class _Output:
    """Writes items as they come (JSON Lines) or collects them (table, JSON array)."""

    def __init__(self, columns_source: bool = False) -> None:
        fmt = state.format
        if fmt is Format.auto:
            fmt = Format.table if sys.stdout.isatty() else Format.jsonl
        self.format = fmt
        self.with_source = columns_source
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self._progress = sys.stderr.isatty() and fmt is not Format.table
        self._err = Console(stderr=True)

    def add(self, item: Item, source: str | None = None) -> None:
        self.count += 1
        record = item.to_dict()
        if source is not None:
            record["federated_source"] = source
        if self.format is Format.jsonl:
            sys.stdout.buffer.write(orjson.dumps(record, default=str) + b"\n")
        else:
            self.rows.append(record)
        if self._progress and self.count % 500 == 0:
            self._err.print(f"\r{self.count} items…", end="")

    def close(self) -> None:
        if self._progress and self.count >= 500:
            self._err.print(f"\r{self.count} items.")
        if self.format is Format.jsonl:
            sys.stdout.flush()
        elif self.format is Format.json:
            sys.stdout.buffer.write(orjson.dumps(self.rows, default=str) + b"\n")
            sys.stdout.flush()
        else:
            self._table()

    def _table(self) -> None:
        table = Table(show_lines=False)
        if self.with_source:
            table.add_column("source", style="magenta", no_wrap=True)
        table.add_column("identifier", style="cyan", no_wrap=True)
        table.add_column("title")
        table.add_column("updated", no_wrap=True)
        table.add_column("url", style="blue", overflow="fold")
        for row in self.rows:
            cells = [
                str(row["identifier"]),
                str(row.get("title") or ""),
                str(row.get("updated_at") or row.get("created_at") or "")[:19],
                str(row.get("url") or ""),
            ]
            if self.with_source:
                cells.insert(0, str(row.get("federated_source") or row.get("source") or ""))
            table.add_row(*cells)
        console = Console()
        console.print(table)
        Console(stderr=True).print(f"{len(self.rows)} items")


async def _drain(stream: AsyncIterator[Item], output: _Output, limit: int | None) -> None:
    try:
        async for item in stream:
            output.add(item)
            if limit is not None and output.count >= limit:
                break
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    output.close()


OptionList = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="A repository option, key=value (repeatable)."),
]
Limit = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Stop after N items.")]
Since = Annotated[
    str | None,
    typer.Option("--since", help="Only items created or updated at or after this ISO date."),
]
PageSize = Annotated[int | None, typer.Option("--page-size", min=1, help="Page size.")]
Order = Annotated[str | None, typer.Option("--order", help="created, -updated...")]
FormatOption = Annotated[
    Format | None,
    typer.Option("--format", "-f", help="Output format (auto: table on a terminal)."),
]


def _use_format(output_format: Format | None) -> None:
    if output_format is not None:
        state.format = output_format


def _list_kwargs(since: str | None, page_size: int | None, order: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if since is not None:
        kwargs["since"] = _parse_since(since)
    if page_size is not None:
        kwargs["page_size"] = page_size
    if order is not None:
        kwargs["order"] = order
    return kwargs


@app.command("list")
def list_command(
    uri: Annotated[str, typer.Argument(help="What to list: ./data.csv, s3://bucket, ...")],
    limit: Limit = None,
    since: Since = None,
    page_size: PageSize = None,
    order: Order = None,
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """List the items of a source."""
    _use_format(output_format)

    async def job() -> None:
        async with registry.open(uri, **_options(option)) as repo:
            stream = repo.list(**_list_kwargs(since, page_size, order))
            await _drain(stream, _Output(), limit)

    _run(job)


@app.command("get")
def get_command(
    uri: Annotated[str, typer.Argument(help="The source.")],
    identifier: Annotated[str, typer.Argument(help="The item's identifier.")],
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """Get one item by identifier."""
    _use_format(output_format)

    async def job() -> None:
        async with registry.open(uri, **_options(option)) as repo:
            item = await repo.get(identifier)
        output = _Output()
        output.add(item)
        output.close()

    _run(job)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    uris: Annotated[
        list[str] | None,
        typer.Argument(help="Sources to search (several: a federated search). Default: demo."),
    ] = None,
    limit: Limit = None,
    since: Since = None,
    page_size: PageSize = None,
    order: Order = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Per-source deadline in seconds (federated search)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail when any source fails (federated search).")
    ] = False,
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """Search one or several sources (no source: the bundled demo dataset)."""
    _use_format(output_format)
    targets = uris or ["demo:"]

    async def job() -> None:
        options = _options(option)
        kwargs = _list_kwargs(since, page_size, order)
        if len(targets) == 1 and timeout is None and not strict:
            async with registry.open(targets[0], **options) as repo:
                await _drain(repo.search(query, **kwargs), _Output(), limit)
            return
        from .federation import Federated

        repositories: dict[str, Repository] = {}
        try:
            for target in targets:
                repositories[_unique(target, repositories)] = registry.open(target, **options)
            federated = Federated(repositories, timeout=timeout, strict=strict)
            async with federated:
                output = _Output(columns_source=True)
                stream = federated.search(query, **kwargs)
                try:
                    async for item in stream:
                        output.add(item, source=item.identifier.split(":", 1)[0])
                        if limit is not None and output.count >= limit:
                            break
                finally:
                    await stream.aclose()
                output.close()
                for name, error in federated.errors.items():
                    typer.echo(f"asyncrepo: warning: source {name} failed: {error}", err=True)
        finally:
            for repo in repositories.values():
                await repo.aclose()

    _run(job)


def _unique(target: str, taken: dict[str, Repository]) -> str:
    """A source name for a URI: the URI without ':' (which separates name and identifier)."""
    name = target.replace("://", "/").replace(":", "").rstrip("/") or "source"
    target = name
    n = 2
    while name in taken:
        name, n = f"{target}#{n}", n + 1
    return name


@app.command("sources")
def sources_command(output_format: FormatOption = None) -> None:
    """The registered repositories and what they do natively."""
    _use_format(output_format)
    rows = []
    for entry in registry.available():
        record: dict[str, Any] = {"name": entry.name, "summary": entry.summary}
        try:
            record.update(registry.get_class(entry.name).capabilities.describe())
            record["installed"] = True
        except ConfigurationError as error:
            record["installed"] = False
            record["note"] = str(error)
        rows.append(record)
    fmt = state.format
    if fmt is Format.auto:
        fmt = Format.table if sys.stdout.isatty() else Format.jsonl
    if fmt is Format.jsonl:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
    elif fmt is Format.markdown:
        typer.echo(support_table())
    elif fmt is Format.json:
        typer.echo(orjson.dumps(rows).decode())
    else:
        table = Table()
        for column in ("name", "get", "search", "since", "orders", "summary"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["name"],
                str(row.get("get", "")),
                str(row.get("search", "")),
                str(row.get("since", "")),
                ", ".join(row.get("orders", [])),
                row["summary"] if row["installed"] else row.get("note", ""),
            )
        Console().print(table)


def support_table() -> str:
    """The README's support table, from the registry and each class's ``capabilities``."""
    lines = [
        "| name | get | search | since | order | options | max page |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in registry.available():
        if not entry.target.startswith("asyncrepo."):
            continue
        caps = registry.get_class(entry.name).capabilities.describe()
        lines.append(
            f"| `{entry.name}` | {caps['get']} | {caps['search']} | {caps['since']} | "
            f"{', '.join(f'`{o}`' for o in caps['orders']) or '-'} | "
            f"{', '.join(f'`{o}`' for o in caps['options']) or '-'} | "
            f"{caps['max_page_size'] or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
