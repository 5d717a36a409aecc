"""Google: Drive files (``google.drive``), Gmail messages (``google.mail``) and Calendar
events (``google.calendar``).

URIs (``asyncrepo.open``)::

    gdrive://                   every file of My Drive the credentials can see
    gdrive://?folder=ID         the direct children of folder ID
    gdrive://?drive=ID          a shared drive
    gmail://me                  the mailbox of the credentials' user
    gmail://USER@DOMAIN         another user's mailbox (domain-wide delegation: subject=)
    gmail://me?labels=INBOX     messages carrying all these labels (comma-separated ids)
    gcal://primary              events of the user's primary calendar
    gcal://ID@group.calendar.google.com   another calendar (?show_deleted=true keeps deleted)

Credentials never go in the URI: ``token=`` (an OAuth access token), ``credentials_file=``
(a service-account key), ``subject=`` (domain-wide delegation), else the file named by
``GOOGLE_APPLICATION_CREDENTIALS`` or application default credentials (these need
``pip install 'asyncrepo[google]'``). Other keyword options go to the repository.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["from_uri"]

_PARAMS = {
    "gdrive": ("folder", "drive", "mime_types"),
    "gmail": ("labels", "format"),
    "gcal": ("show_deleted",),
}


def _query(parts: SplitResult, scheme: str) -> dict[str, str]:
    accepted = _PARAMS[scheme]
    out: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in accepted:
            hint = " (pass credentials as options, never in the URI)" if "token" in key else ""
            raise ConfigurationError(
                f"unknown {scheme}:// URI parameter {key!r}{hint} "
                f"(accepted: {', '.join(accepted) or 'none'})",
                source=f"google.{scheme}",
            )
        out[key] = value
    return out


def _merge(kwargs: dict[str, Any], key: str, value: Any, source: str) -> None:
    if key in kwargs and kwargs[key] != value:
        raise ConfigurationError(f"{key} is given twice, differently", source=source)
    kwargs[key] = value


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A Google repository for a ``gdrive://``, ``gmail://`` or ``gcal://`` URI."""
    scheme = parts.scheme.lower()
    if scheme not in _PARAMS:
        raise ConfigurationError(f"not a Google URI scheme: {scheme!r}")
    # An address (gmail://USER@DOMAIN, gcal://ID@group.calendar.google.com) is not a credential,
    # but a password is never accepted.
    if parts.password is not None or (parts.username is not None and scheme == "gdrive"):
        raise ConfigurationError(
            "put Google credentials in the token= / credentials_file= options, not in the URI"
        )
    query = _query(parts, scheme)
    kwargs = dict(options)
    where = unquote(parts.netloc + parts.path).strip("/")
    if scheme == "gdrive":
        source = "google.drive"
        if where:
            raise ConfigurationError(
                "gdrive:// takes ?folder=ID or ?drive=ID, not a path", source=source
            )
        for key in ("folder", "drive"):
            if query.get(key):
                _merge(kwargs, key, query[key], source)
        if query.get("mime_types"):
            _merge(kwargs, "mime_types", query["mime_types"], source)
        from .drive import Files

        return Files(**kwargs)
    if scheme == "gmail":
        source = "google.mail"
        _merge(kwargs, "user", where or "me", source)
        if query.get("labels"):
            labels = [label.strip() for label in query["labels"].split(",") if label.strip()]
            _merge(kwargs, "labels", labels, source)
        if query.get("format"):
            _merge(kwargs, "format", query["format"], source)
        from .mail import Mail

        return Mail(**kwargs)
    source = "google.calendar"
    _merge(kwargs, "calendar", where or "primary", source)
    if "show_deleted" in query:
        flag = query["show_deleted"].lower()
        if flag not in ("true", "false", "1", "0"):
            raise ConfigurationError("show_deleted must be true or false", source=source)
        _merge(kwargs, "show_deleted", flag in ("true", "1"), source)
    from .calendar import Events

    return Events(**kwargs)
