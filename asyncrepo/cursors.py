"""Sealed cursors: a cursor is a signed record, so whoever holds one can resume a listing but
cannot widen what the repository reads.

A cursor carries vendor page states (next-page URLs, tokens, offsets). Unsigned, a client of
a search service could edit one to point the service's credentials at another space, org or
endpoint of the same host. So every cursor is ``base64(record) "." base64(HMAC-SHA256)``
under a key:

* ``repository.cursor_key = ...`` (or ``asyncrepo.open(uri, cursor_key=...)``) for one
  repository;
* else the environment variable ``ASYNCREPO_CURSOR_KEY``, the same in every process that
  should accept the others' cursors (a service's workers, a sync that resumes after a crash);
* else a random key made when the process starts: cursors then resume only in the process
  that made them.

Who may hold a cursor: anyone you would let read what the repository reads. A cursor is not
encrypted (its states are readable, as the vendor's own page tokens are); it is only
unforgeable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets

from .exceptions import ConfigurationError, InvalidCursor

__all__ = ["KEY_ENVIRONMENT_VARIABLE", "check_key", "default_key", "open_cursor", "seal"]

KEY_ENVIRONMENT_VARIABLE = "ASYNCREPO_CURSOR_KEY"
_PROCESS_KEY = secrets.token_bytes(32)
_MAC_BYTES = 16
#: Longest cursor accepted: a larger one is not ours, and decoding it would cost memory.
MAX_CURSOR_CHARS = 64 * 1024


def check_key(key: str | bytes) -> bytes:
    """A cursor key as bytes; at least 16 bytes, so it cannot be guessed."""
    raw = key.encode() if isinstance(key, str) else key
    if not isinstance(raw, bytes) or len(raw) < 16:
        raise ConfigurationError("a cursor key must be a string or bytes of 16 or more")
    return raw


def default_key() -> bytes:
    """``ASYNCREPO_CURSOR_KEY`` if set, else this process's random key."""
    configured = os.environ.get(KEY_ENVIRONMENT_VARIABLE)
    return check_key(configured) if configured else _PROCESS_KEY


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def seal(payload: bytes, key: bytes) -> str:
    """The cursor for ``payload`` under ``key``."""
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def open_cursor(cursor: object, key: bytes, *, source: str | None = None) -> bytes:
    """The payload of a cursor sealed under ``key``; ``InvalidCursor`` for anything else
    (edited, made under another key, truncated, not a cursor)."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor("not a cursor asyncrepo produced", source=source)
    body, dot, signature = cursor.partition(".")
    try:
        payload, mac = _unb64(body), _unb64(signature)
    except (ValueError, binascii.Error):
        raise InvalidCursor("not a cursor asyncrepo produced", source=source) from None
    if not dot or not hmac.compare_digest(
        mac, hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    ):
        raise InvalidCursor(
            "the cursor was not made by this repository with this cursor key (edited, from "
            f"another process without a shared {KEY_ENVIRONMENT_VARIABLE}, or not a cursor)",
            source=source,
        )
    return payload
