"""Jenkins: jobs (``jenkins.jobs``) and builds (``jenkins.builds``), over the JSON API.

URIs (``asyncrepo.open``)::

    jenkins+https://ci.example.com                      every job
    jenkins+https://ci.example.com/jenkins              Jenkins under a context path
    jenkins+https://ci.example.com?folder=team          the jobs of one folder
    jenkins+https://ci.example.com?resource=builds&job=team/lint   builds of one job
    jenkins+https://ci.example.com?resource=builds      builds of every job
    jenkins+http://127.0.0.1:8080                       plain HTTP (local or test servers)

Query parameters: ``resource`` (``jobs``, the default, or ``builds``), ``job`` (builds
only), ``folder``. Credentials never go in the URI: keyword options ``username`` and
``api_token`` (alias ``password``), else the environment variables ``JENKINS_USER`` and
``JENKINS_API_TOKEN``; without them requests are anonymous. Other keyword options go to
the repository.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, urlunsplit

from ...exceptions import ConfigurationError
from ...repository import Repository
from .._uri import checked_http_uri

__all__ = ["from_uri"]

_RESOURCES = ("jobs", "builds")
_QUERY_PARAMS = ("resource", "job", "folder")


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A Jenkins repository for a ``jenkins+https://`` / ``jenkins+http://`` URI."""
    scheme, query = checked_http_uri(
        parts,
        vendor="Jenkins",
        source="jenkins",
        schemes=("jenkins+https", "jenkins+http"),
        credentials="the username= / api_token= options or in JENKINS_USER / JENKINS_API_TOKEN",
        example="jenkins+https://HOST",
        params=_QUERY_PARAMS,
    )
    resource = query.pop("resource", "jobs")
    if resource not in _RESOURCES:
        raise ConfigurationError(
            f"unknown Jenkins resource {resource!r} (accepted: {', '.join(_RESOURCES)})",
            source="jenkins",
        )
    if resource == "jobs" and "job" in query:
        raise ConfigurationError("job= is for resource=builds", source="jenkins")
    base_url = urlunsplit((scheme.split("+", 1)[1], parts.netloc, parts.path.rstrip("/"), "", ""))
    kwargs = dict(options)
    username = kwargs.pop("username", None) or os.environ.get("JENKINS_USER")
    password = kwargs.pop("password", None)
    api_token = kwargs.pop("api_token", None)
    if password and api_token and password != api_token:
        raise ConfigurationError("give api_token= or password=, not both", source="jenkins")
    token = api_token or password or os.environ.get("JENKINS_API_TOKEN")
    for key, value in query.items():
        if kwargs.get(key, value) != value:
            raise ConfigurationError(f"{key} is given twice, differently", source="jenkins")
        kwargs[key] = value
    if resource == "builds":
        from .builds import Builds

        return Builds(base_url, username, token, **kwargs)
    from .jobs import Jobs

    return Jobs(base_url, username, token, **kwargs)
