"""Sources on the command line: ``URI``, ``name=URI`` and ``@name`` (the sources file);
readable names for federated results; ``-o key=value`` decoded by the option's type.

``-o`` values are decoded by the annotation of the parameter of that name in the target
classes' constructors (the classes the URI's scheme can build): ``int``/``float``/``bool``
only where the annotation says so, a mapping or list from JSON (a list also as ``a,b,c``),
and everything else, notably every ``str`` (passwords, tokens) and every option no
constructor declares, stays the string that was typed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..item import Item
    from ..repository import Repository

_NAMED = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)=(.+)\Z", re.S)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass
class Target:
    """A source as given: its URI, the name it was given (``@name``, ``name=``), options
    from the sources file."""

    uri: str
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def parse_target(text: str, config_file: str | None = None) -> Target:
    """``@name`` (the sources file), ``name=URI``, or a URI."""
    if text.startswith("@"):
        from .. import config

        source = config.get(text[1:], config_file)
        return Target(source.uri, source.name, source.resolve())
    named = _NAMED.match(text)
    if named and "://" not in named.group(1) and not Path(text).exists():
        return Target(named.group(2), named.group(1))
    return Target(text)


def readable_name(uri: str) -> str:
    """A short, readable name for a source: ``host:port/path/space`` for a server, the file
    name for a file, ``scheme/...`` for a URI without a host, ``demo`` for the demo."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "demo":
        return "demo"
    if scheme in ("", "file") or len(scheme) == 1:
        return Path(unquote(parts.path) if scheme == "file" else uri).name or uri
    values = [value for _, value in parse_qsl(parts.query) if value]
    path = parts.path.strip("/")
    host = parts.netloc.rpartition("@")[2]  # never a user:password@
    hostlike = "." in host or ":" in host or host == "localhost"
    vendor = scheme.partition("+")[0]
    pieces = [host if hostlike else f"{vendor}/{host}" if host else vendor]
    pieces += [p for p in (path, *values) if p]
    return "/".join(pieces)


def unique_names(targets: Sequence[Target]) -> list[str]:
    """A display name for each target: the given name, else ``readable_name`` (``#2``,
    ``#3``... on a repeat)."""
    names: list[str] = []
    for target in targets:
        base = target.name or readable_name(target.uri)
        name, n = base, 2
        while name in names:
            name, n = f"{base}#{n}", n + 1
        names.append(name)
    return names


class Naming:
    """A federated search's items named for people: the source's display name, and the
    source's own identifier (what ``asyncrepo get URI ID`` takes)."""

    def __init__(self, display: dict[str, str]) -> None:
        self.display = display  # federated key -> display name

    def source_of(self, item: Item) -> str:
        key = item.identifier.partition(":")[0]
        return self.display.get(key, key)

    def identifier_of(self, item: Item) -> str:
        return item.identifier.partition(":")[2]


def federation_key(display: str, taken: Iterable[str]) -> str:
    """The key a display name has in ``Federated`` (which keeps ':' for its identifiers)."""
    key = display.replace(":", "_") or "source"
    base, n, used = key, 2, set(taken)
    while key in used:
        key, n = f"{base}#{n}", n + 1
    return key


# -- checks the CLI makes before opening --------------------------------------------------


def precheck(uri: str) -> None:
    """Clear messages for mistakes the sources would report obscurely."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "demo" and (parts.netloc or parts.path or parts.query or parts.fragment):
        raise ConfigurationError(
            f"{uri!r}: the demo dataset is 'demo:' with nothing after the colon"
        )
    if scheme in ("", "file"):
        local = Path(unquote(parts.path) if scheme == "file" else uri).expanduser()
        if local.is_dir():
            found = sorted(p.name for p in local.iterdir() if ".csv" in p.suffixes)[:3]
            hint = f" (CSV files there: {', '.join(found)})" if found else ""
            raise ConfigurationError(f"{uri} is a directory; give a file (.csv, .csv.gz){hint}")


def open_target(target: Target, pairs: Sequence[str] | None) -> Repository:
    """The repository for ``target``, ``-o`` options decoded by type over the file's."""
    from .. import registry

    precheck(target.uri)
    typed = parse_pairs(pairs)
    options = dict(target.options)
    if typed or any(isinstance(value, str) for value in options.values()):
        classes = target_classes(target.uri)  # imported only when there is text to decode
        options = decode_options(options, classes, typed_only=True)
        options.update(decode_options(typed, classes))
    return registry.open(target.uri, **options)


# -- option decoding ----------------------------------------------------------------------


def parse_pairs(pairs: Sequence[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"options are key=value, not {pair!r}")
        options[key.strip()] = value
    return options


def target_classes(uri: str) -> list[type]:
    """The repository classes ``uri``'s scheme can build (imported now); empty when
    unknown (options then stay strings)."""
    from .. import registry
    from ..repository import Repository

    scheme, _ = registry._scheme_of(uri.strip())
    factory = registry._schemes.get(scheme)
    classes: list[type] = []
    if factory is None:
        for entry in registry.available():
            try:
                cls = registry.get_class(entry.name)
            except ConfigurationError:
                continue
            if scheme in getattr(cls, "uri_schemes", ()):
                classes.append(cls)
        return classes
    package = factory.partition(":")[0]
    for entry in registry.available():
        module = entry.target.partition(":")[0]
        if module == package or module.startswith(package + "."):
            try:
                classes.append(registry.get_class(entry.name))
            except ConfigurationError:
                continue  # a missing extra: opening the URI will say so
    if not classes:  # a factory outside the registry's entries: its module's classes
        import importlib

        try:
            factory_module = importlib.import_module(package)
        except ImportError:
            return classes
        classes = [
            value
            for value in vars(factory_module).values()
            if isinstance(value, type) and issubclass(value, Repository) and value is not Repository
        ]
    return classes


def _annotations(cls: type, key: str) -> list[str]:
    """The annotations (as text) of constructor parameter ``key`` along ``cls``'s MRO."""
    found: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameter = inspect.signature(init).parameters.get(key)
        except (TypeError, ValueError):
            continue
        if parameter is not None and parameter.annotation is not inspect.Parameter.empty:
            annotation = parameter.annotation
            found.append(
                annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
            )
    return found


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def kinds(annotation: str) -> set[str]:
    """What an annotation admits: str, bool, int, float, mapping, sequence, any, other."""
    text = annotation.replace(" ", "").replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1]
    if text.startswith("Union[") and text.endswith("]"):
        text = text[len("Union[") : -1].replace(",", "|")
    found: set[str] = set()
    for part in _split_top(text):
        base = part.split("[", 1)[0].rsplit(".", 1)[-1].strip("'\"")
        if base in ("None", "NoneType", ""):
            continue
        if base in ("str", "Literal"):
            found.add("str")
        elif base in ("bool", "int", "float"):
            found.add(base)
        elif base in ("dict", "Mapping", "MutableMapping"):
            found.add("mapping")
        elif base in ("list", "Sequence", "tuple", "set", "frozenset", "Iterable", "Collection"):
            found.add("sequence")
        elif base in ("Any", "object"):
            found.add("any")
        else:
            found.add("other:" + base)
    return found


def decode(key: str, value: str, admitted: set[str]) -> Any:
    """``value`` (as typed) for an option that admits ``admitted``."""
    if not admitted or admitted & {"str", "any"}:
        return value  # never guess: a str option (a password, a token) stays a string
    try:
        return _decode(key, value, admitted)
    except ConfigurationError as error:
        from ..config import looks_secret

        if looks_secret(key):  # a secret typed into the wrong option is not repeated
            raise ConfigurationError(error.message.replace(repr(value), "the value")) from None
        raise


def _decode(key: str, value: str, admitted: set[str]) -> Any:
    plain = value.strip()
    if admitted == {"bool"}:
        if plain.lower() in _TRUE:
            return True
        if plain.lower() in _FALSE:
            return False
        raise ConfigurationError(f"option {key!r} is true or false, not {value!r}")
    if admitted & {"int", "float"}:
        if "int" in admitted:
            try:
                return int(plain)
            except ValueError:
                pass
        if "float" in admitted:
            try:
                return float(plain)
            except ValueError:
                pass
        if "bool" in admitted and plain.lower() in _TRUE | _FALSE:
            return plain.lower() in _TRUE
        wanted = "an integer" if "float" not in admitted else "a number"
        raise ConfigurationError(f"option {key!r} is {wanted}, not {value!r}")
    if "mapping" in admitted or "sequence" in admitted:
        if plain.startswith(("{", "[")):
            try:
                decoded = orjson.loads(plain)
            except orjson.JSONDecodeError as error:
                raise ConfigurationError(f"option {key!r}: invalid JSON ({error})") from None
            if isinstance(decoded, dict) and "mapping" in admitted:
                return decoded
            if isinstance(decoded, list) and "sequence" in admitted:
                return decoded
        if "sequence" in admitted:
            return [part.strip() for part in value.split(",") if part.strip()]
        raise ConfigurationError(f'option {key!r} is a JSON object, like {{"a": "b"}}')
    others = sorted(a.partition(":")[2] for a in admitted if a.startswith("other:"))
    raise ConfigurationError(
        f"option {key!r} takes a {' or '.join(others)}, which -o cannot give (use Python)"
    )


def decode_options(
    options: dict[str, Any], classes: Sequence[type], *, typed_only: bool = False
) -> dict[str, Any]:
    """Options decoded by their parameters' annotations. ``typed_only``: strings from a
    sources file reference are decoded, other values (TOML-typed already) kept."""
    decoded: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(value, str):
            decoded[key] = value
            continue
        admitted: set[str] = set()
        for cls in classes:
            for annotation in _annotations(cls, key):
                admitted |= kinds(annotation)
        if typed_only and not admitted & {"bool", "int", "float"}:
            decoded[key] = value
            continue
        decoded[key] = decode(key, value, admitted)
    return decoded
