"""Elasticsearch and OpenSearch: ``elastic.documents`` (documents of an index, pattern or
alias) and ``elastic.indexes`` (the cluster's indexes), over plain JSON, so the same code
serves Elasticsearch 7/8/9, Elastic Cloud and OpenSearch.

URIs (``asyncrepo.open``)::

    es+https://HOST:9200/INDEX               documents of INDEX (a pattern: logs-*, a,b)
    es+https://HOST:9200                     the cluster's indexes
    es+https://HOST:9200/INDEX?resource=indexes   indexes matching INDEX
    es+https://HOST/PROXY/PATH/INDEX         a cluster behind a path: the last segment is
                                             the index
    elasticsearch+https://..., es+http://..., elasticsearch+http://...
    opensearch+https://HOST:9200/INDEX       the same, flavour OpenSearch (no GET / probe)

Query parameters: ``resource`` (``documents``, the default with an index, or ``indexes``),
``flavour`` (``auto``, ``elasticsearch``, ``opensearch``), ``include_hidden``
(indexes). Credentials never go in the URI: keyword options ``api_key=`` (the encoded
key, or ``"id:key"``), ``username=`` + ``password=``, or ``token=`` (bearer); else the
environment: ``ELASTIC_API_KEY``, or ``ELASTIC_USERNAME`` + ``ELASTIC_PASSWORD``, or
``ELASTIC_BEARER_TOKEN`` (for ``opensearch+`` URIs the ``OPENSEARCH_`` names are read
first). No credentials: an open cluster. Other keyword options go to the repository.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, unquote, urlunsplit

from ...exceptions import ConfigurationError
from ...repository import Repository
from .._uri import checked_http_uri

__all__ = ["SCHEMES", "from_uri"]

SCHEMES = (
    "es+https",
    "es+http",
    "elasticsearch+https",
    "elasticsearch+http",
    "opensearch+https",
    "opensearch+http",
)
_PARAMS = ("resource", "flavour", "include_hidden")
_RESOURCES = ("documents", "indexes")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_CREDENTIALS = {
    "api_key": "API_KEY",
    "username": "USERNAME",
    "password": "PASSWORD",
    "token": "BEARER_TOKEN",
}


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A repository for an ``es+https://`` / ``opensearch+https://``... URI (see the module)."""
    scheme, query = checked_http_uri(
        parts,
        vendor="Elasticsearch",
        source="elastic",
        schemes=SCHEMES,
        credentials="the api_key= / username= / password= / token= options or the ELASTIC_* "
        "environment variables",
        example="es+https://HOST[:PORT][/INDEX]",
        params=_PARAMS,
    )
    segments = [unquote(s) for s in parts.path.split("/") if s]
    index: str | None = segments[-1] if segments else None
    prefix = "/" + "/".join(segments[:-1]) if len(segments) > 1 else ""
    vendor, _, transport = scheme.partition("+")
    base_url = urlunsplit((transport, parts.netloc, prefix, "", ""))

    kwargs = dict(options)
    if "flavour" in query:
        kwargs.setdefault("flavour", query["flavour"])
    elif vendor == "opensearch":
        kwargs.setdefault("flavour", "opensearch")
    prefixes = ("OPENSEARCH_", "ELASTIC_") if vendor == "opensearch" else ("ELASTIC_",)
    if not any(kwargs.get(name) for name in _CREDENTIALS):
        for name, suffix in _CREDENTIALS.items():
            for env_prefix in prefixes:
                found = os.environ.get(env_prefix + suffix)
                if found:
                    kwargs[name] = found
                    break
        if kwargs.get("api_key") or kwargs.get("token"):  # one kind from the environment
            kwargs.pop("username", None)
            kwargs.pop("password", None)
            if kwargs.get("api_key"):
                kwargs.pop("token", None)

    resource = query.get("resource") or ("documents" if index else "indexes")
    if resource not in _RESOURCES:
        raise ConfigurationError(
            f"unknown resource {resource!r} (accepted: {', '.join(_RESOURCES)})",
            source="elastic",
        )
    if resource == "indexes":
        from .indexes import Indexes

        if "include_hidden" in query:
            flag = query["include_hidden"].lower()
            if flag not in _TRUE | _FALSE:
                raise ConfigurationError(
                    f"include_hidden must be true or false, not {flag!r}", source="elastic"
                )
            kwargs.setdefault("include_hidden", flag in _TRUE)
        return Indexes(base_url, index, **kwargs)
    if "include_hidden" in query:
        raise ConfigurationError("include_hidden applies to indexes only", source="elastic")
    if not index:
        raise ConfigurationError(
            "documents need an index: es+https://HOST/INDEX", source="elastic.documents"
        )
    from .documents import Documents

    return Documents(base_url, index, **kwargs)
