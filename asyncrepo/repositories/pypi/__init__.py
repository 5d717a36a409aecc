"""Python package indexes: packages (``pypi.packages``) of the public index or of any index
that speaks the Simple API (PEP 503 / PEP 691).

URIs (``asyncrepo.open``)::

    pypi://                                        the public index
    pypi+https://pypi.example.com/simple           a private index
    pypi+http://127.0.0.1:8080/simple              plain HTTP (local or test servers)

Query parameters: ``json_url`` (the index's JSON API, ``.../pypi``), ``rss_url`` (its
updates feed). Credentials never go in the URI: keyword options ``username`` and
``password``, else the environment variables ``PYPI_USERNAME`` and ``PYPI_PASSWORD``
(private indexes only); other keyword options go to ``Packages``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlunsplit

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["from_uri"]

_QUERY_PARAMS = ("json_url", "rss_url")


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A ``Packages`` repository for ``pypi://`` or ``pypi+https://HOST/PATH``."""
    scheme = parts.scheme.lower()
    if scheme not in ("pypi", "pypi+https", "pypi+http"):
        raise ConfigurationError(f"not a PyPI URI scheme: {scheme!r}", source="pypi")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "put index credentials in the username= / password= options or in PYPI_USERNAME / "
            "PYPI_PASSWORD, not in the URI",
            source="pypi",
        )
    kwargs = dict(options)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_PARAMS:
            raise ConfigurationError(
                f"unknown PyPI URI parameter {key!r} (accepted: {', '.join(_QUERY_PARAMS)})",
                source="pypi",
            )
        if kwargs.get(key, value) != value:
            raise ConfigurationError(f"{key} is given twice, differently", source="pypi")
        kwargs[key] = value or None
    from .packages import Packages

    if scheme == "pypi":
        if parts.netloc or parts.path.strip("/"):
            raise ConfigurationError(
                "pypi:// is the public index; a private index is pypi+https://HOST/simple",
                source="pypi",
            )
        return Packages(**kwargs)
    if not parts.hostname:
        raise ConfigurationError("expected pypi+https://HOST/PATH", source="pypi")
    index_url = urlunsplit((scheme.split("+", 1)[1], parts.netloc, parts.path.rstrip("/"), "", ""))
    username = kwargs.pop("username", None) or os.environ.get("PYPI_USERNAME")
    password = kwargs.pop("password", None) or os.environ.get("PYPI_PASSWORD")
    return Packages(index_url, username=username, password=password, **kwargs)
