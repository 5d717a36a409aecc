"""Named sources from a TOML file, so that URIs and credentials are not retyped.

The file is ``$ASYNCREPO_CONFIG`` if set, else ``$XDG_CONFIG_HOME/asyncrepo/sources.toml``
(``~/.config/asyncrepo/sources.toml`` when ``XDG_CONFIG_HOME`` is unset)::

    [sources.eng]
    uri = "confluence+https://acme.atlassian.net/wiki?space=ENG"
    username = { env = "ATLASSIAN_USER" }
    api_token = { env = "ATLASSIAN_TOKEN" }

    [sources.jira]
    uri = "jira+https://acme.atlassian.net?project=OPS"
    username = "me@acme.example"
    password = { keyring = "asyncrepo-jira", username = "me@acme.example" }

Every key but ``uri`` is an option of the repository (as ``-o key=value`` or a keyword of
``asyncrepo.open``). A value is a TOML value, or a reference read when the source is
opened: ``{ env = "NAME" }`` (an environment variable) or ``{ keyring = "SERVICE",
username = "NAME" }`` (the system keyring, through the optional ``keyring`` package).
Credentials are never required in the file: a source also reads its documented environment
variables. Plain secrets in a file that others may read draw a warning.

On the command line a configured source is ``@name``: ``asyncrepo search QUERY @eng @jira``;
``asyncrepo sources --configured`` lists them. In Python: ``asyncrepo.config.open("eng")``.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .repository import Repository

__all__ = ["Reference", "SourceConfig", "load", "open", "path"]

ENV_CONFIG = "ASYNCREPO_CONFIG"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_SECRET_WORDS = ("token", "password", "secret", "key")


def path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The sources file: ``explicit``, else ``$ASYNCREPO_CONFIG``, else
    ``$XDG_CONFIG_HOME/asyncrepo/sources.toml`` (``~/.config/...`` by default)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".config"
    return root / "asyncrepo" / "sources.toml"


@dataclass(frozen=True)
class Reference:
    """A value read when the source is opened: an environment variable or a keyring entry."""

    env: str | None = None
    keyring_service: str | None = None
    keyring_username: str | None = None

    def describe(self) -> str:
        if self.env is not None:
            return f"${self.env}"
        return f"keyring:{self.keyring_service}/{self.keyring_username}"

    def read(self, source: str, option: str) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigurationError(
                    f"source @{source}: option {option!r} reads ${self.env}, which is not set"
                )
            return value
        try:
            import keyring  # type: ignore[import-not-found,unused-ignore]  # optional
        except ImportError:
            raise ConfigurationError(
                f"source @{source}: option {option!r} is in the keyring; "
                "pip install keyring to read it"
            ) from None
        secret = keyring.get_password(self.keyring_service or "", self.keyring_username or "")
        if secret is None:
            raise ConfigurationError(
                f"source @{source}: the keyring has no entry {self.describe()} for {option!r}"
            )
        return str(secret)


@dataclass(frozen=True)
class SourceConfig:
    """One ``[sources.NAME]`` table: a URI and options, some of them references."""

    name: str
    uri: str
    options: Mapping[str, Any] = field(default_factory=dict)  # values or References
    file: Path | None = None

    def resolve(self) -> dict[str, Any]:
        """The options, references read now (environment, keyring). Values read from a
        reference are strings, for the caller to decode by the option's type."""
        return {
            key: value.read(self.name, key) if isinstance(value, Reference) else value
            for key, value in self.options.items()
        }

    def references(self) -> dict[str, str]:
        return {k: v.describe() for k, v in self.options.items() if isinstance(v, Reference)}

    def describe(self) -> dict[str, Any]:
        """What ``sources --configured`` shows: secrets never, references by name."""
        shown: dict[str, Any] = {}
        for key, value in self.options.items():
            if isinstance(value, Reference):
                shown[key] = value.describe()
            elif looks_secret(key):
                shown[key] = "***"
            else:
                shown[key] = value
        return {"name": self.name, "uri": self.uri, "options": shown}


def looks_secret(key: str) -> bool:
    """Whether an option's name says it holds a secret (token, password, secret, key)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _reference(name: str, key: str, value: Mapping[str, Any]) -> Reference:
    keys = set(value)
    if keys == {"env"} and isinstance(value["env"], str) and value["env"]:
        return Reference(env=value["env"])
    if keys <= {"keyring", "username"} and isinstance(value.get("keyring"), str):
        return Reference(
            keyring_service=value["keyring"], keyring_username=str(value.get("username", ""))
        )
    raise ConfigurationError(
        f'source @{name}: option {key!r} is a table; a reference is {{ env = "NAME" }} '
        'or { keyring = "SERVICE", username = "NAME" }'
    )


def parse(text: str, file: Path | None = None) -> tuple[dict[str, SourceConfig], list[str]]:
    """The sources of a file's text, and warnings (plain secrets in a shared file)."""
    where = str(file) if file else "the sources file"
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{where} is not valid TOML: {error}") from None
    tables = document.get("sources", {})
    if not isinstance(tables, dict):
        raise ConfigurationError(f"{where}: 'sources' must be a table of [sources.NAME] tables")
    shared = False
    if file is not None:
        try:
            shared = bool(file.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
        except OSError:
            shared = False
    sources: dict[str, SourceConfig] = {}
    warnings: list[str] = []
    for name, table in tables.items():
        if not NAME.match(name):
            raise ConfigurationError(
                f"{where}: source name {name!r} must be letters, digits, '_', '.' or '-'"
            )
        if not isinstance(table, dict) or not isinstance(table.get("uri"), str):
            raise ConfigurationError(f'{where}: [sources.{name}] needs uri = "..."')
        options: dict[str, Any] = {}
        for key, value in table.items():
            if key == "uri":
                continue
            if isinstance(value, dict) and ("env" in value or "keyring" in value):
                options[key] = _reference(name, key, value)
            else:
                options[key] = value
                if shared and looks_secret(key) and isinstance(value, str):
                    warnings.append(
                        f"{where} holds a plain {key!r} for @{name} and others can read the "
                        f'file: use {{ env = "NAME" }} or chmod 600 {where}'
                    )
        sources[name] = SourceConfig(name, table["uri"], options, file)
    return sources, warnings


def load(
    file: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, SourceConfig], list[str]]:
    """The configured sources (none when the file does not exist) and warnings."""
    where = path(file)
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        if file is not None or os.environ.get(ENV_CONFIG):
            raise ConfigurationError(f"no sources file at {where}") from None
        return {}, []
    except OSError as error:
        raise ConfigurationError(f"cannot read {where}: {error.strerror or error}") from None
    return parse(text, where)


def get(name: str, file: str | os.PathLike[str] | None = None) -> SourceConfig:
    """The configured source ``name`` (``@`` prefix allowed)."""
    name = name.removeprefix("@")
    sources, _ = load(file)
    if name not in sources:
        known = ", ".join(f"@{n}" for n in sources) or "none"
        raise ConfigurationError(f"no source @{name} in {path(file)} (configured: {known})")
    return sources[name]


def open(name: str, file: str | os.PathLike[str] | None = None, **options: Any) -> Repository:
    """The repository of configured source ``name``; ``options`` override the file's."""
    from .registry import open as open_uri

    source = get(name, file)
    return open_uri(source.uri, **{**source.resolve(), **options})
