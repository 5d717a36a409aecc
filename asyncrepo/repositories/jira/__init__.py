"""Jira (Cloud and Data Center / Server): issues and projects.

URIs (``asyncrepo.open``)::

    jira+https://example.atlassian.net?project=AS       issues of project AS
    jira+https://example.atlassian.net                  every issue the account can see
    jira+https://example.atlassian.net?resource=projects
    jira+https://jira.example.com/jira?deployment=server   a context path; skip detection
    jira+http://127.0.0.1:8080?project=AS               plain HTTP (local or test servers)

Query parameters: ``project``, ``resource`` (``issues``, the default, or ``projects``),
``deployment`` (``auto``, ``cloud``, ``server``). Credentials never go in the URI: keyword
options ``username`` and ``password`` (alias ``api_token``), else the environment variables
``JIRA_USERNAME`` and ``JIRA_API_TOKEN``. Other keyword options go to the repository.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, urlunsplit

from ...exceptions import ConfigurationError
from ...repository import Repository
from .._uri import checked_http_uri

__all__ = ["from_uri"]

_RESOURCES = ("issues", "projects")
_QUERY_PARAMS = ("project", "resource", "deployment")


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A Jira repository for a ``jira+https://`` / ``jira+http://`` URI (see the module)."""
    scheme, query = checked_http_uri(
        parts,
        vendor="Jira",
        source="jira",
        schemes=("jira+https", "jira+http"),
        credentials="the username= / password= options or in JIRA_USERNAME / JIRA_API_TOKEN",
        example="jira+https://HOST",
        params=_QUERY_PARAMS,
    )
    resource = query.get("resource", "issues")
    if resource not in _RESOURCES:
        raise ConfigurationError(
            f"unknown Jira resource {resource!r} (accepted: {', '.join(_RESOURCES)})",
            source="jira",
        )
    base_url = urlunsplit((scheme.split("+", 1)[1], parts.netloc, parts.path.rstrip("/"), "", ""))

    kwargs = dict(options)
    username = kwargs.pop("username", None) or os.environ.get("JIRA_USERNAME")
    password = kwargs.pop("password", None)
    api_token = kwargs.pop("api_token", None)
    if password and api_token and password != api_token:
        raise ConfigurationError("give password= or api_token=, not both", source="jira")
    password = password or api_token or os.environ.get("JIRA_API_TOKEN")
    if not username or not password:
        raise ConfigurationError(
            "Jira needs credentials: pass username= and password= (or api_token=), or set the "
            "environment variables JIRA_USERNAME and JIRA_API_TOKEN",
            source="jira",
        )
    if "deployment" in query:
        if kwargs.get("deployment", query["deployment"]) != query["deployment"]:
            raise ConfigurationError("deployment is given twice, differently", source="jira")
        kwargs["deployment"] = query["deployment"]

    if resource == "projects":
        if "project" in query or "project" in kwargs:
            raise ConfigurationError("Jira projects take no project= scope", source="jira")
        from .projects import Projects

        return Projects(base_url, username, password, **kwargs)

    from .issues import Issues

    if "project" in query:
        if kwargs.get("project", query["project"]) != query["project"]:
            raise ConfigurationError("project is given twice, differently", source="jira")
        kwargs["project"] = query["project"] or None
    return Issues(base_url, username, password, **kwargs)
