"""``asyncrepo list``, ``get`` and ``search``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import FormatOption, app, resolved_format, run, state, use_format

if TYPE_CHECKING:
    from datetime import datetime

    from ..repository import Repository
    from ._sources import Target


def _complete_source(incomplete: str) -> list[str]:
    """Shell completion for a source: ``@names`` from the sources file, URI schemes."""
    try:
        if incomplete.startswith("@"):
            from .. import config

            sources, _ = config.load(state.config)
            return [f"@{name}" for name in sources if f"@{name}".startswith(incomplete)]
        from .. import registry

        schemes = [s + ("://" if s != "demo" else ":") for s in registry.known_schemes()]
        return [s for s in schemes if s.startswith(incomplete)]
    except Exception:
        return []


OptionList = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        metavar="KEY=VALUE",
        help="A repository option (repeatable). Decoded by the option's type: numbers and "
        "true/false only for numeric and boolean options, JSON for mappings; strings "
        "(passwords, tokens) stay strings.",
    ),
]
Limit = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Stop after N items.")]
Since = Annotated[
    str | None,
    typer.Option("--since", help="Only items created or updated at or after this ISO date."),
]
PageSize = Annotated[int | None, typer.Option("--page-size", min=1, help="Page size.")]
Order = Annotated[str | None, typer.Option("--order", help="created, -updated...")]
Columns = Annotated[
    str | None,
    typer.Option(
        "--columns",
        "-c",
        metavar="A,B,C",
        help="Fields to show: identifier, title, url, date, author... or raw fields "
        "(name, raw.a.b). Also narrows json/jsonl output.",
    ),
]
Source = Annotated[
    str,
    typer.Argument(
        help="A URI (./data.csv, s3://bucket, jira+https://host...), @name from the sources "
        "file, or name=URI.",
        autocompletion=_complete_source,
    ),
]


def _parse_since(value: str | None) -> datetime | None:
    from datetime import UTC, datetime

    from ..exceptions import InvalidQuery

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"--since takes an ISO date or datetime, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _list_kwargs(since: str | None, page_size: int | None, order: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if since is not None:
        kwargs["since"] = _parse_since(since)
    if page_size is not None:
        kwargs["page_size"] = page_size
    if order is not None:
        kwargs["order"] = order
    return kwargs


def _columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        from ..exceptions import ConfigurationError

        raise ConfigurationError("--columns takes field names, like identifier,title,url")
    return names


def _open(source: str, option: list[str] | None) -> Repository:
    from ._sources import open_target, parse_target

    return open_target(parse_target(source, state.config), option)


@app.command("list")
def list_command(
    source: Source,
    limit: Limit = None,
    since: Since = None,
    page_size: PageSize = None,
    order: Order = None,
    columns: Columns = None,
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """List the items of a source, streamed as they come."""
    use_format(output_format)

    async def job() -> None:
        from ._output import drain, make_output

        output = make_output(resolved_format(), columns=_columns(columns))
        async with _open(source, option) as repo:
            stream = repo.list(**_list_kwargs(since, page_size, order))
            await drain(stream, output, limit=limit, progress=state.progress)

    run(job)


@app.command("get")
def get_command(
    source: Source,
    identifier: Annotated[str, typer.Argument(help="The item's identifier.")],
    columns: Columns = None,
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """Get one item by identifier (on a terminal: every field, one per line)."""
    use_format(output_format)

    async def job() -> None:
        from ._output import make_output

        output = make_output(resolved_format(), columns=_columns(columns), single=True)
        async with _open(source, option) as repo:
            item = await repo.get(identifier)
        if output.needs_sample:
            output.start([item])
        output.write(item)
        output.finish()

    run(job)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="Sources to search: URIs, @names from the sources file, name=URI. Several: "
            "a federated search. Default: the bundled demo dataset.",
            autocompletion=_complete_source,
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            metavar="URI",
            help="Search an index (sqlite:///path.db, osindex+http://host:9200/name), "
            "opened as a source; with other sources, federated with them.",
        ),
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
    columns: Columns = None,
    option: OptionList = None,
    output_format: FormatOption = None,
) -> None:
    """Search one or several sources (none: the bundled demo dataset)."""
    use_format(output_format)
    given = list(sources or [])
    if index is not None:
        given.append(f"index={index}")
    if not given:
        given = ["demo:"]

    async def job() -> None:
        from ._output import drain, make_output
        from ._sources import parse_target

        targets = [parse_target(text, state.config) for text in given]
        kwargs = _list_kwargs(since, page_size, order)
        fmt = resolved_format()
        if len(targets) == 1 and timeout is None and not strict:
            output = make_output(fmt, columns=_columns(columns))
            async with _open_one(targets[0], option) as repo:
                stream = repo.search(query, **kwargs)
                await drain(stream, output, limit=limit, progress=state.progress)
            return
        await _federated_search(
            targets,
            query,
            kwargs,
            fmt,
            columns,
            option,
            limit=limit,
            deadline=timeout,
            strict=strict,
        )

    run(job)


def _open_one(target: Target, option: list[str] | None) -> Repository:
    from ._sources import open_target

    return open_target(target, option)


async def _federated_search(
    targets: list[Target],
    query: str,
    kwargs: dict[str, Any],
    fmt: Any,
    columns: str | None,
    option: list[str] | None,
    *,
    limit: int | None,
    deadline: float | None,
    strict: bool,
) -> None:
    from ..federation import Federated
    from ._output import drain, make_output
    from ._sources import Naming, federation_key, open_target, unique_names

    names = unique_names(targets)
    repositories: dict[str, Repository] = {}
    display: dict[str, str] = {}
    try:
        for target, name in zip(targets, names, strict=True):
            key = federation_key(name, repositories)
            repositories[key] = open_target(target, option)
            display[key] = name
        federated = Federated(repositories, timeout=deadline, strict=strict)
        async with federated:
            output = make_output(fmt, columns=_columns(columns), federation=Naming(display))
            stream = federated.search(query, **kwargs)
            await drain(stream, output, limit=limit, progress=state.progress)
            for key, error in federated.errors.items():
                from ._app import error_message

                name = display.get(key, key)
                message = error_message(error).removeprefix(f"{key}: ")
                message = message.replace(f"source {key} ", "").replace(key, name)
                typer.echo(f"asyncrepo: warning: source {name} failed: {message}", err=True)
    finally:
        for repo in repositories.values():
            await repo.aclose()
