"""A small fake Elasticsearch 8 for what osmem-server (OpenSearch-compatible) lacks:
Elasticsearch's point in time API (``POST /{index}/_pit?keep_alive=``, ``DELETE /_pit``),
the ``X-Elastic-Product: Elasticsearch`` header on every answer, ``search_after`` over
``_shard_doc``, API-key / basic / bearer authentication, and hostile behaviours.

Shapes follow Elastic's OpenAPI description (``open-point-in-time``: ``{"id", "_shards"}``;
``close-point-in-time``: body ``{"id"}``, answer ``{"succeeded", "num_freed"}``, 404 when
nothing was freed) and the error dialect ``{"error": {"type", "reason", "root_cause"},
"status"}``.

What it implements, on purpose small:

* ``GET /``: cluster info (``version.build_flavor: default``, no ``distribution``);
* ``GET /_cat/indices[/{pattern}]?format=json&h=&expand_wildcards=``: rows of strings;
  ``expand_wildcards`` defaults to ``all`` as in Elasticsearch (hidden ones included);
* ``GET /{index}``: aliases, mappings, settings; ``GET /{index}/_doc/{id}``;
* ``POST /{index}/_pit``, ``DELETE /_pit``; ``POST /_search`` with ``pit`` (a snapshot of
  the documents when the PIT opened), ``POST /{index}/_search`` without;
* queries: ``match_all``, ``simple_query_string`` / ``query_string`` (terms, ``-term``,
  ``"phrases"``, ``default_operator``), ``bool`` (``must``/``filter``), ``range`` (``gte``
  on ISO dates); ``sort`` on ``_shard_doc``, ``_score``, ``_id`` and source fields;
  ``search_after``; ``highlight`` (``<em>`` around matched terms); ``from`` + ``size`` past
  10,000 rejected as Elasticsearch does; ``scroll`` rejected (the client must not use it).

Every search body is logged in ``state.searches`` (path, params, body) for pushdown checks.
Hostile switches: ``stuck_sort`` (every hit's sort values are the same), ``expire_pits``
(the next PIT search answers 404 ``search_context_missing_exception``).
"""

from __future__ import annotations

import base64
import functools
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import web

from ._common import FakeControls, controls_middleware, parse_basic_auth

MAX_RESULT_WINDOW = 10_000
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class FakeIndex:
    name: str
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=lambda: {"properties": {}})
    hidden: bool = False
    created: int = 1_700_000_000_000
    aliases: list[str] = field(default_factory=list)


@dataclass
class ElasticState:
    indexes: dict[str, FakeIndex] = field(default_factory=dict)
    controls: FakeControls = field(default_factory=FakeControls)
    #: ``(path, query params, JSON body)`` of every search.
    searches: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    #: open PITs: id -> [(index name, shard ordinal, doc id, source)] snapshot. A search may
    #: answer with a new id for the same PIT (as Elasticsearch may); every id of a PIT names
    #: it, so closing any of them frees it (``pits`` loses all its ids).
    pits: dict[str, list[tuple[str, int, str, dict[str, Any]]]] = field(default_factory=dict)
    pits_opened: int = 0
    pits_closed: int = 0
    #: credentials; none set means an open cluster
    api_key: str | None = None  # the encoded value sent after "ApiKey "
    basic: tuple[str, str] | None = None
    bearer: str | None = None
    stuck_sort: bool = False
    expire_pits: int = 0  # the next N PIT searches fail as if the PIT had expired
    rotate_pit_ids: bool = True  # answer each PIT search with a new id, as ES may
    pit_api: bool = True  # False: an Elasticsearch before 7.10 (no _pit route)
    _pit_counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def open_pits(self) -> int:
        """How many points in time are open (a PIT with several ids counts once)."""
        return len({id(snapshot) for snapshot in self.pits.values()})

    def forget(self, snapshot: list[tuple[str, int, str, dict[str, Any]]]) -> None:
        for key in [k for k, v in self.pits.items() if v is snapshot]:
            del self.pits[key]

    def add_index(
        self, name: str, *, hidden: bool = False, properties: dict[str, Any] | None = None
    ) -> FakeIndex:
        index = FakeIndex(name, hidden=hidden)
        if properties:
            index.mappings = {"properties": properties}
        self.indexes[name] = index
        return index

    def add(self, index: str, doc_id: str, source: dict[str, Any]) -> None:
        if index not in self.indexes:
            self.add_index(index)
        self.indexes[index].docs[doc_id] = source

    def resolve(self, pattern: str, expand: str = "open") -> list[FakeIndex]:
        """Indexes matching a comma-separated pattern (aliases resolved); hidden ones only
        when named or with ``expand_wildcards=all``/``hidden``."""
        found: list[FakeIndex] = []
        for part in pattern.split(","):
            if not part or part.startswith("-"):
                continue
            for index in self.indexes.values():
                named = index.name == part or part in index.aliases
                wild = ("*" in part or "?" in part) and fnmatchcase(index.name, part)
                if wild and index.hidden and "all" not in expand and "hidden" not in expand:
                    continue
                if (named or wild or part in ("_all", "*")) and index not in found:
                    if part in ("_all", "*") and index.hidden and "all" not in expand:
                        continue
                    found.append(index)
        return found


def error(status: int, kind: str, reason: str, **extra: Any) -> web.Response:
    cause = {"type": kind, "reason": reason, **extra}
    return web.json_response(
        {"error": {"root_cause": [cause], **cause}, "status": status}, status=status
    )


def _not_found(index: str) -> web.Response:
    return error(
        404,
        "index_not_found_exception",
        f"no such index [{index}]",
        index=index,
        **{"resource.type": "index_or_alias", "resource.id": index, "index_uuid": "_na_"},
    )


# -- queries --------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _terms(query: str) -> tuple[list[str], list[str]]:
    """(required terms or phrases, excluded terms), lowercase."""
    wanted: list[str] = []
    excluded: list[str] = []
    for match in re.finditer(r'(-?)"([^"]*)"|(-?)(\S+)', query):
        neg = match.group(1) or match.group(3)
        text = (match.group(2) if match.group(2) is not None else match.group(4)).lower()
        text = text.strip("+|()")
        if not text or text in ("and", "or"):
            continue
        (excluded if neg else wanted).append(text)
    return wanted, excluded


def _text_match(spec: dict[str, Any], source: dict[str, Any]) -> tuple[bool, float, list[str]]:
    query = str(spec.get("query", ""))
    fields = spec.get("fields")
    values = (
        [s for f in fields for s in _strings(source.get(f.split("^")[0]))]
        if fields
        else _strings(source)
    )
    words = [w.lower() for v in values for w in _WORD.findall(v)]
    haystack = " ".join(words)
    wanted, excluded = _terms(query)
    if any(term in words for term in excluded):
        return False, 0.0, []
    hits = [t for t in wanted if (t in words if " " not in t else t in haystack)]
    operator = str(spec.get("default_operator", "or")).lower()
    ok = len(hits) == len(wanted) if operator == "and" else bool(hits) or not wanted
    score = float(sum(words.count(t) for t in hits)) / (1 + len(words))
    return ok, score, hits


def _date(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class QueryError(Exception):
    pass


def matches(query: dict[str, Any], source: dict[str, Any]) -> tuple[bool, float, list[str]]:
    """(matches, score, matched terms)."""
    if not query or "match_all" in query:
        return True, 1.0, []
    if "simple_query_string" in query or "query_string" in query:
        kind = "simple_query_string" if "simple_query_string" in query else "query_string"
        spec = query[kind]
        if kind == "query_string" and str(spec.get("query", "")).count("(") != str(
            spec.get("query", "")
        ).count(")"):
            raise QueryError(f"Failed to parse query [{spec.get('query')}]")
        return _text_match(spec, source)
    if "range" in query:
        ((name, bounds),) = query["range"].items()
        value = _date(source.get(name))
        low = _date(bounds.get("gte"))
        if value is None or low is None:
            return False, 0.0, []
        return value >= low, 0.0, []
    if "bool" in query:
        spec = query["bool"]
        score, terms = 0.0, []
        for clause in [*spec.get("must", []), *spec.get("filter", [])]:
            ok, s, t = matches(clause, source)
            if not ok:
                return False, 0.0, []
            score += s
            terms += t
        return True, score, terms
    raise QueryError(f"unknown query {sorted(query)}")


def _highlight(spec: dict[str, Any], source: dict[str, Any], terms: list[str]) -> dict[str, Any]:
    out: dict[str, list[str]] = {}
    names = list(spec.get("fields", {}))
    for name, value in source.items():
        if not isinstance(value, str) or not any(fnmatchcase(name, n) for n in names):
            continue
        marked = value
        for term in terms:
            marked = re.sub(rf"\b({re.escape(term)})\b", r"<em>\1</em>", marked, flags=re.I)
        if marked != value:
            out[name] = [marked]
    return out


def _sort_key(
    spec: list[Any], hit: dict[str, Any], shard_doc: int
) -> list[Any]:  # the sort values ES would return
    values: list[Any] = []
    for entry in spec:
        name = entry if isinstance(entry, str) else next(iter(entry))
        if name == "_shard_doc":
            values.append(shard_doc)
        elif name == "_score":
            values.append(hit["_score"])
        elif name == "_id":
            values.append(hit["_id"])
        else:
            raw = hit["_source"].get(name)
            when = _date(raw)
            if when is not None:
                values.append(int(when.timestamp() * 1000))
            elif raw is None:
                values.append(None)
            else:
                values.append(raw)
    return values


def _directions(spec: list[Any]) -> list[bool]:
    """True for descending."""
    out = []
    for entry in spec:
        if isinstance(entry, str):
            out.append(entry == "_score")
            continue
        ((_, how),) = entry.items()
        order = how if isinstance(how, str) else how.get("order", "asc")
        out.append(order == "desc")
    return out


def _compare(a: list[Any], b: list[Any], desc: list[bool]) -> int:
    for x, y, d in zip(a, b, desc, strict=False):
        if x == y:
            continue
        if x is None:
            return 1  # missing last
        if y is None:
            return -1
        less = x < y
        return (1 if less else -1) if d else (-1 if less else 1)
    return 0


# -- the app --------------------------------------------------------------------------------


def make_app(state: ElasticState) -> web.Application:
    @web.middleware
    async def product(request: web.Request, handler: Any) -> web.StreamResponse:
        if not _authorised(state, request):
            response: web.StreamResponse = error(
                401,
                "security_exception",
                "missing authentication credentials for REST request",
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="security", ApiKey'
        else:
            response = await handler(request)
        response.headers["X-Elastic-Product"] = "Elasticsearch"
        return response

    app = web.Application(middlewares=[controls_middleware(state.controls), product])

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "fake-node",
                "cluster_name": "fake",
                "cluster_uuid": "fake-uuid",
                "version": {
                    "number": "8.15.0",
                    "build_flavor": "default",
                    "build_type": "docker",
                    "lucene_version": "9.11.1",
                },
                "tagline": "You Know, for Search",
            }
        )

    async def cat_indices(request: web.Request) -> web.Response:
        pattern = request.match_info.get("pattern", "*")
        expand = request.query.get("expand_wildcards", "all")
        if request.query.get("format") != "json":
            return web.Response(text="\n".join(i.name for i in state.indexes.values()))
        columns = request.query.get("h", "health,status,index,uuid,docs.count").split(",")
        rows = []
        for index in state.resolve(pattern, expand):
            full = {
                "health": "green",
                "status": "open",
                "index": index.name,
                "uuid": f"uuid-{index.name}",
                "pri": "1",
                "rep": "0",
                "docs.count": str(len(index.docs)),
                "docs.deleted": "0",
                "store.size": str(100 * len(index.docs)),
                "creation.date": str(index.created),
            }
            rows.append({c: full.get(c) for c in columns})
        if request.query.get("s") == "index":
            rows.sort(key=lambda r: str(r.get("index")))
        return web.json_response(rows)

    async def get_index(request: web.Request) -> web.Response:
        name = request.match_info["index"]
        found = state.resolve(name)
        if not found:
            return _not_found(name)
        return web.json_response(
            {
                index.name: {
                    "aliases": {a: {} for a in index.aliases},
                    "mappings": index.mappings,
                    "settings": {
                        "index": {
                            "creation_date": str(index.created),
                            "number_of_shards": "1",
                            "hidden": str(index.hidden).lower(),
                            "provided_name": index.name,
                        }
                    },
                }
                for index in found
            }
        )

    async def get_doc(request: web.Request) -> web.Response:
        name, doc_id = request.match_info["index"], request.match_info["id"]
        found = state.resolve(name)
        if not found:
            return _not_found(name)
        index = found[0]
        source = index.docs.get(doc_id)
        if source is None:
            return web.json_response(
                {"_index": index.name, "_id": doc_id, "found": False}, status=404
            )
        return web.json_response(
            {
                "_index": index.name,
                "_id": doc_id,
                "_version": 1,
                "_seq_no": 0,
                "_primary_term": 1,
                "found": True,
                "_source": source,
            }
        )

    async def open_pit(request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if not state.pit_api:  # what Elasticsearch 7.9 answers for an unknown route
            return web.json_response(
                {
                    "error": f"no handler found for uri [{request.path}] and method [POST]",
                    "status": 400,
                },
                status=400,
            )
        if "keep_alive" not in request.query:
            return error(
                400, "action_request_validation_exception", "[keep_alive] is not specified"
            )
        found = state.resolve(name)
        if not found and "*" not in name:
            return _not_found(name)
        snapshot = [
            (index.name, shard, doc_id, dict(source))
            for shard, index in enumerate(found)
            for doc_id, source in index.docs.items()
        ]
        pit_id = _new_pit_id(state)
        state.pits[pit_id] = snapshot
        state.pits_opened += 1
        return web.json_response(
            {"id": pit_id, "_shards": {"total": len(found), "successful": len(found), "failed": 0}}
        )

    async def close_pit(request: web.Request) -> web.Response:
        body = await request.json()
        pit_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(pit_id, str):
            return error(400, "action_request_validation_exception", "[id] is required")
        snapshot = state.pits.get(pit_id)
        if snapshot is None:
            return web.json_response({"succeeded": True, "num_freed": 0}, status=404)
        state.forget(snapshot)
        state.pits_closed += 1
        return web.json_response({"succeeded": True, "num_freed": 1})

    async def search(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        path_index = request.match_info.get("index")
        state.searches.append((request.path, dict(request.query), body))
        if "scroll" in request.query:
            return error(400, "illegal_argument_exception", "this fake refuses scroll")
        size = int(body.get("size", 10))
        start = int(body.get("from", 0))
        if start + size > MAX_RESULT_WINDOW:
            return error(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{start + size}].",
            )
        pit = body.get("pit")
        if pit is not None:
            if path_index:
                return error(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [indices] cannot be used with point in time;",
                )
            pit_id = pit.get("id")
            if state.expire_pits > 0 or pit_id not in state.pits:
                state.expire_pits = max(0, state.expire_pits - 1)
                if pit_id in state.pits:
                    state.forget(state.pits[pit_id])
                return _context_missing()
            snapshot = state.pits[pit_id]
            pit_id = _new_pit_id(state) if state.rotate_pit_ids else pit_id
            state.pits[pit_id] = snapshot
        else:
            if not path_index:
                return error(400, "illegal_argument_exception", "this fake needs an index")
            found = state.resolve(path_index)
            if not found and "*" not in path_index:
                return _not_found(path_index)
            snapshot = [
                (index.name, shard, doc_id, source)
                for shard, index in enumerate(found)
                for doc_id, source in index.docs.items()
            ]
            pit_id = None
        sort = body.get("sort") or [{"_score": "desc"}]
        for entry in sort:
            name = entry if isinstance(entry, str) else next(iter(entry))
            if name == "_shard_doc" and pit is None:
                return error(
                    400,
                    "illegal_argument_exception",
                    "[_shard_doc] sort field cannot be used without [point in time]",
                )
        desc = _directions(sort)
        hits = []
        try:
            for position, (index_name, shard, doc_id, source) in enumerate(snapshot):
                ok, score, terms = matches(body.get("query") or {}, source)
                if not ok:
                    continue
                hit: dict[str, Any] = {
                    "_index": index_name,
                    "_id": doc_id,
                    "_score": score,
                    "_source": source,
                }
                hit["sort"] = _sort_key(sort, hit, (shard << 32) | position)
                if "highlight" in body:
                    highlighted = _highlight(body["highlight"], source, terms)
                    if highlighted:
                        hit["highlight"] = highlighted
                hits.append(hit)
        except QueryError as exc:
            return error(400, "query_shard_exception", str(exc))
        hits.sort(key=functools.cmp_to_key(lambda a, b: _compare(a["sort"], b["sort"], desc)))
        after = body.get("search_after")
        if after is not None:
            hits = [h for h in hits if _compare(h["sort"], after, desc) > 0]
        page = hits[start : start + size]
        if state.stuck_sort:
            for hit in page:
                hit["sort"] = [0]
        answer: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"max_score": None, "hits": page},
        }
        if body.get("track_total_hits") is not False:
            answer["hits"]["total"] = {"value": len(hits), "relation": "eq"}
        if pit_id is not None:
            answer["pit_id"] = pit_id
        return web.json_response(answer)

    app.router.add_get("/", info)
    app.router.add_get("/_cat/indices", cat_indices)
    app.router.add_get("/_cat/indices/{pattern}", cat_indices)
    app.router.add_post("/_search", search)
    app.router.add_delete("/_pit", close_pit)
    app.router.add_post("/{index}/_pit", open_pit)
    app.router.add_post("/{index}/_search", search)
    app.router.add_get("/{index}/_search", search)
    app.router.add_get("/{index}/_doc/{id}", get_doc)
    app.router.add_get("/{index}", get_index)
    return app


def _new_pit_id(state: ElasticState) -> str:
    return base64.urlsafe_b64encode(f"pit-{next(state._pit_counter)}".encode()).decode()


def _context_missing() -> web.Response:
    cause = {"type": "search_context_missing_exception", "reason": "No search context found"}
    return web.json_response(
        {
            "error": {
                "root_cause": [cause],
                "type": "search_phase_execution_exception",
                "reason": "all shards failed",
                "phase": "query",
                "grouped": True,
                "caused_by": cause,
            },
            "status": 404,
        },
        status=404,
    )


def _authorised(state: ElasticState, request: web.Request) -> bool:
    if state.api_key is None and state.basic is None and state.bearer is None:
        return True
    header = request.headers.get("Authorization", "")
    if state.api_key is not None and header == f"ApiKey {state.api_key}":
        return True
    if state.bearer is not None and header == f"Bearer {state.bearer}":
        return True
    return state.basic is not None and parse_basic_auth(request) == state.basic


def make_dataset(
    n_docs: int, *, index: str = "docs", start: datetime | None = None
) -> ElasticState:
    """One index of ``n_docs`` documents: ``title``, ``body``, ``@timestamp`` (an hour
    apart from ``start``), ``n``; every third about cats, the rest about dogs."""
    state = ElasticState()
    state.add_index(index, properties={"@timestamp": {"type": "date"}, "title": {"type": "text"}})
    base = (start or datetime(2024, 1, 1, tzinfo=UTC)).timestamp()
    for n in range(n_docs):
        animal = "cats" if n % 3 == 0 else "dogs"
        when = datetime.fromtimestamp(base + 3600 * n, UTC)
        state.add(
            index,
            f"doc-{n:05d}",
            {
                "title": f"Document {n} about {animal}",
                "body": f"A text on {animal}, number {n}.",
                "@timestamp": when.isoformat().replace("+00:00", "Z"),
                "n": n,
            },
        )
    return state
