"""GitHub: repositories (``github.repos``) and code search (``github.code``).

URIs (``asyncrepo.open``)::

    github://users/NAME           Repos(user=NAME)
    github://orgs/NAME            Repos(org=NAME)
    github://user                 Repos(): the token's own repositories
    github://code                 Code(): code search over everything the token can see
    github://code/users/NAME      Code(user=NAME)
    github://code/orgs/NAME       Code(org=NAME)
    github://code/repos/OWNER/NAME  Code(repo="OWNER/NAME")

``?base_url=https://HOST/api/v3`` (or the ``base_url=`` option) targets GitHub Enterprise
Server. The token comes from the ``token=`` option, else the ``GITHUB_TOKEN`` environment
variable (never from the URI: URIs end up in logs). Other options go to the class.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["from_uri"]

_EXAMPLES = (
    "github://users/NAME, github://orgs/NAME, github://user, github://code, "
    "github://code/users/NAME, github://code/orgs/NAME, github://code/repos/OWNER/NAME"
)


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    options = dict(options)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "base_url":
            hint = " (pass the token as an option or in GITHUB_TOKEN)" if key == "token" else ""
            raise ConfigurationError(f"unknown github:// URI parameter {key!r}{hint}")
        if options.setdefault("base_url", value) != value:
            raise ConfigurationError("base_url is given twice, with different values")
    if options.get("token") is None:
        options.pop("token", None)
        env = os.environ.get("GITHUB_TOKEN")
        if env:
            options["token"] = env
    kind = parts.netloc.lower()
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if kind == "code":
        from .code import Code

        if not segments:
            return Code(**options)
        if len(segments) == 2 and segments[0] == "users":
            return Code(user=segments[1], **options)
        if len(segments) == 2 and segments[0] == "orgs":
            return Code(org=segments[1], **options)
        if len(segments) == 3 and segments[0] == "repos":
            return Code(repo=f"{segments[1]}/{segments[2]}", **options)
    else:
        from .repos import Repos

        if kind == "users" and len(segments) == 1:
            return Repos(user=segments[0], **options)
        if kind == "orgs" and len(segments) == 1:
            return Repos(org=segments[0], **options)
        if kind == "user" and not segments:
            return Repos(**options)
    raise ConfigurationError(f"unrecognised GitHub URI {parts.geturl()!r} (expected {_EXAMPLES})")
