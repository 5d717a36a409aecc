"""Confluence Cloud sources: pages (``confluence.pages``), blog posts (``confluence.blogs``)
and spaces (``confluence.spaces``).

URIs (``asyncrepo.open``)::

    confluence+https://example.atlassian.net/wiki                  all pages
    confluence+https://example.atlassian.net/wiki?space=ENG        pages of space ENG
    confluence+https://example.atlassian.net/wiki?space=ENG&type=blogpost   its blog posts
    confluence+https://example.atlassian.net/wiki?resource=spaces  spaces
    confluence+http://127.0.0.1:8080/wiki?space=ENG                a local (test) server

The path is the context path (``base_path``; ``/wiki`` when empty, ``/`` for a root
context). Credentials: the ``username`` (account e-mail) and ``password`` (alias
``api_token``) options, else the environment variables ``CONFLUENCE_USERNAME`` and
``CONFLUENCE_API_TOKEN``. Other options go to the repository (``retry=``, ``timeout=``...).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, parse_qsl

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["ENV_TOKEN", "ENV_USERNAME", "from_uri"]

ENV_USERNAME = "CONFLUENCE_USERNAME"
ENV_TOKEN = "CONFLUENCE_API_TOKEN"

_RESOURCES = {
    "pages": "pages",
    "page": "pages",
    "blogs": "blogs",
    "blogposts": "blogs",
    "blogpost": "blogs",
    "spaces": "spaces",
    "space": "spaces",
}
_TYPES = {"page": "pages", "blogpost": "blogs"}


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A Confluence repository for a ``confluence+https://`` / ``confluence+http://`` URI."""
    scheme = parts.scheme.lower()
    source = "confluence"
    if scheme not in ("confluence+https", "confluence+http"):
        raise ConfigurationError(f"not a Confluence URI scheme: {scheme!r}", source=source)
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "put the Confluence credentials in the username/password options or in "
            f"{ENV_USERNAME}/{ENV_TOKEN}, not in the URI",
            source=source,
        )
    if not parts.hostname:
        raise ConfigurationError("the Confluence URI needs a host", source=source)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    base_url = f"{scheme.split('+', 1)[1]}://{netloc}"
    base_path = "/wiki" if parts.path == "" else parts.path

    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in ("space", "type", "resource"):
            raise ConfigurationError(
                f"unknown Confluence URI parameter {key!r} (known: space, type, resource)",
                source=source,
            )
        if key in query and query[key] != value:
            raise ConfigurationError(f"the URI gives {key!r} twice", source=source)
        query[key] = value

    resource = "pages"
    if "resource" in query:
        resource_name = query["resource"].lower()
        if resource_name not in _RESOURCES:
            raise ConfigurationError(
                f"unknown resource {query['resource']!r} (pages, blogs, spaces)", source=source
            )
        resource = _RESOURCES[resource_name]
    if "type" in query:
        by_type = _TYPES.get(query["type"].lower())
        if by_type is None:
            raise ConfigurationError(
                f"unknown content type {query['type']!r} (page, blogpost)", source=source
            )
        if "resource" in query and by_type != resource:
            raise ConfigurationError(
                f"type={query['type']} contradicts resource={query['resource']}", source=source
            )
        resource = by_type

    options = dict(options)
    username = options.pop("username", None) or os.environ.get(ENV_USERNAME)
    password = options.pop("password", None)
    token = options.pop("api_token", None)
    if password and token and password != token:
        raise ConfigurationError("give password or api_token, not both", source=source)
    secret = password or token or os.environ.get(ENV_TOKEN)
    if not username or not secret:
        raise ConfigurationError(
            "Confluence needs credentials: the username and password (or api_token) options, "
            f"or the environment variables {ENV_USERNAME} and {ENV_TOKEN}",
            source=source,
        )

    if resource == "spaces":
        if query.get("space") or options.get("space"):
            raise ConfigurationError("resource=spaces takes no space", source=source)
        from .spaces import Spaces

        return Spaces(base_url, username, secret, base_path, **options)

    space = query.get("space") or None
    if space is not None and options.get("space") not in (None, space):
        raise ConfigurationError("the URI and the options name different spaces", source=source)
    if space is not None:
        options["space"] = space
    if resource == "blogs":
        from .blogs import Blogs

        return Blogs(base_url, username, secret, base_path, **options)
    from .pages import Pages

    return Pages(base_url, username, secret, base_path, **options)
