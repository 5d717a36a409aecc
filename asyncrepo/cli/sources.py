"""``asyncrepo sources``: the registered repositories, or the configured sources."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ._app import Format, FormatOption, app, resolved_format, run, state, use_format


@app.command("sources")
def sources_command(
    configured: Annotated[
        bool,
        typer.Option(
            "--configured", help="List the named sources of the sources file (@name) instead."
        ),
    ] = False,
    output_format: FormatOption = None,
) -> None:
    """The registered repositories and what they do natively (--configured: your @names)."""
    use_format(output_format)

    async def job() -> None:
        rows = _configured_rows() if configured else _registry_rows()
        fmt = resolved_format()
        if fmt is Format.markdown and not configured:
            typer.echo(support_table())
        elif fmt is Format.jsonl:
            import orjson

            for row in rows:
                sys.stdout.buffer.write(orjson.dumps(row, default=str) + b"\n")
        elif fmt is Format.json:
            import orjson

            sys.stdout.buffer.write(orjson.dumps(rows, default=str) + b"\n")
        else:
            _print_table(rows, configured)
        sys.stdout.flush()

    run(job)


def _registry_rows() -> list[dict[str, Any]]:
    from .. import registry
    from ..exceptions import ConfigurationError

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
    return rows


def _configured_rows() -> list[dict[str, Any]]:
    from .. import config

    sources, warnings = config.load(state.config)
    for warning in warnings:
        typer.echo(f"asyncrepo: warning: {warning}", err=True)
    if not sources:
        typer.echo(f"asyncrepo: no sources configured in {config.path(state.config)}", err=True)
    return [source.describe() for source in sources.values()]


def _print_table(rows: list[dict[str, Any]], configured: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    if configured:
        for column in ("name", "uri", "options"):
            table.add_column(column)
        for row in rows:
            options = ", ".join(f"{k}={v}" for k, v in row["options"].items())
            table.add_row("@" + row["name"], row["uri"], options)
    else:
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
    from .. import registry

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
