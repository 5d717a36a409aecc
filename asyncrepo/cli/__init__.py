"""The ``asyncrepo`` command: list, get and search any source from the shell.

Adding commands: every public module of this package (a name without a leading ``_``) is
a command module, imported when the CLI starts: ``items`` and ``sources`` first, then the
others by name. A command module registers on the shared application::

    # asyncrepo/cli/sync.py
    from typing import Annotated

    import typer

    from ._app import app, run, state

    @app.command("sync")
    def sync_command(uris: Annotated[list[str], typer.Argument()]) -> None:
        \"\"\"Copy sources into an index.\"\"\"

        async def job() -> None:
            from ..sync import sync  # heavy imports here, not at the top
            ...

        run(job)  # errors, Ctrl-C (exit 130), broken pipes, --debug: handled

A command module imports only typer and this package's helpers at its top: ``asyncrepo
--help`` imports every command module and must not load the transport (a test checks that
aiohttp stays unimported). Helpers: ``_app.run`` (run a coroutine with the CLI's error
handling), ``_app.state`` (``debug``, ``format``, ``progress``, ``config``),
``_app.resolved_format``, ``_output.make_output`` / ``_output.drain`` (streamed output
with progress), ``_sources.parse_target`` / ``_sources.open_target`` (``@name``,
``name=URI``, typed ``-o`` options).
"""

from __future__ import annotations

import importlib
import pkgutil

from . import items  # noqa: F401  (list, get and search come first in --help)
from ._app import app, main
from .sources import support_table

__all__ = ["app", "main", "support_table"]

_FIRST = ("items", "sources")


def _load_commands() -> None:
    found = sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )
    for name in (*_FIRST, *(n for n in found if n not in _FIRST)):
        importlib.import_module(f"{__name__}.{name}")


_load_commands()
