"""Greenhouse Job Board sources: ``greenhouse.jobs``, ``greenhouse.departments`` and
``greenhouse.offices`` (the public, read-only Job Board API; no credentials).

URIs (``asyncrepo.open``):

* ``greenhouse://BOARD`` (or ``greenhouse://BOARD/jobs``): ``Jobs(BOARD)``;
* ``greenhouse://BOARD/departments``: ``Departments(BOARD)``;
* ``greenhouse://BOARD/offices``: ``Offices(BOARD)``.

Keyword options go to the class (``base_url=``, ``retry=``, ``timeout=``; for jobs also
``questions=`` and ``pay_transparency=``). The jobs flags may also be given in the URI's
query: ``greenhouse://acme?questions=true``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["from_uri"]

_RESOURCES = ("jobs", "departments", "offices")
_JOB_FLAGS = ("questions", "pay_transparency")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A repository for ``greenhouse://BOARD[/jobs|/departments|/offices][?questions=true]``."""
    board = unquote(parts.netloc)
    if not board or any(c in board for c in "@:"):
        raise ConfigurationError(
            f"expected greenhouse://BOARD_TOKEN[/jobs|/departments|/offices], "
            f"not {parts.geturl()!r}",
            source="greenhouse",
        )
    resource = parts.path.strip("/") or "jobs"
    if resource not in _RESOURCES:
        raise ConfigurationError(
            f"unknown Greenhouse resource {resource!r} in {parts.geturl()!r} "
            f"(expected one of: {', '.join(_RESOURCES)})",
            source="greenhouse",
        )
    options = dict(options)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if resource != "jobs" or key not in _JOB_FLAGS:
            raise ConfigurationError(
                f"unknown option {key!r} in {parts.geturl()!r}", source=f"greenhouse.{resource}"
            )
        if value.lower() not in _TRUE | _FALSE:
            raise ConfigurationError(
                f"{key} must be true or false, not {value!r}", source="greenhouse.jobs"
            )
        options.setdefault(key, value.lower() in _TRUE)
    if resource == "departments":
        from .departments import Departments

        return Departments(board, **options)
    if resource == "offices":
        from .offices import Offices

        return Offices(board, **options)
    from .jobs import Jobs

    return Jobs(board, **options)
