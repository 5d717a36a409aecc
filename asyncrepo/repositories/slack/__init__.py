"""Slack: channels (``slack.channels``), users (``slack.users``) and messages
(``slack.messages``), over Slack's Web API.

URIs (``asyncrepo.open``)::

    slack://channels                    Channels()
    slack://users                       Users()
    slack://messages                    Messages(): every channel the token reads
    slack://messages?channel=C123       Messages(channel="C123")

Query parameters: ``channel`` (messages only), ``threads`` (``true``/``false``, messages
only), ``types`` (channels and messages) and ``exclude_archived`` (channels). The token
comes from the ``token=`` option, else the ``SLACK_TOKEN`` environment variable, never from
the URI (URIs end up in logs). Other keyword options go to the class (``base_url``,
``team_url``, ``rate_limits``, ``retry``...).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["from_uri"]

_PARAMS = {
    "channels": ("types", "exclude_archived"),
    "users": (),
    "messages": ("channel", "threads", "types"),
}
_BOOLEAN = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """A Slack repository for a ``slack://`` URI (see the module)."""
    if parts.scheme.lower() != "slack":
        raise ConfigurationError(f"not a Slack URI scheme: {parts.scheme!r}", source="slack")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "put the Slack token in the token= option or in SLACK_TOKEN, not in the URI",
            source="slack",
        )
    resource = (parts.hostname or "").lower()
    if resource not in _PARAMS or parts.path.strip("/"):
        raise ConfigurationError(
            f"unrecognised Slack URI {parts.geturl()!r} (expected slack://channels, "
            "slack://users, slack://messages or slack://messages?channel=C123)",
            source="slack",
        )
    kwargs = dict(options)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _PARAMS[resource]:
            hint = " (pass the token as an option or in SLACK_TOKEN)" if key == "token" else ""
            accepted = ", ".join(_PARAMS[resource]) or "none"
            raise ConfigurationError(
                f"unknown slack://{resource} parameter {key!r}{hint} (accepted: {accepted})",
                source="slack",
            )
        parsed: Any = value
        if key in ("threads", "exclude_archived"):
            if value.lower() not in _BOOLEAN:
                raise ConfigurationError(
                    f"{key} must be true or false, not {value!r}", source="slack"
                )
            parsed = _BOOLEAN[value.lower()]
        if kwargs.setdefault(key, parsed) != parsed:
            raise ConfigurationError(f"{key} is given twice, differently", source="slack")
    if resource == "channels":
        from .channels import Channels

        return Channels(**kwargs)
    if resource == "users":
        from .users import Users

        return Users(**kwargs)
    from .messages import Messages

    return Messages(**kwargs)
