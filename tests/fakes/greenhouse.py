"""A fake Greenhouse Job Board API (``https://boards-api.greenhouse.io/v1``) on 127.0.0.1.

Shapes follow Greenhouse's Job Board API documentation (``job-board/_boards.md``,
``_jobs.md``, ``_departments.md``, ``_offices.md`` of ``grnhse/greenhouse-api-docs``) and
responses observed from the live API:

* ``GET /v1/boards/{board_token}`` -> ``{"name", "content"}`` (board ``content`` is HTML,
  not entity-escaped, as in the docs' example).
* ``GET /v1/boards/{board_token}/jobs`` -> ``{"jobs": [...], "meta": {"total": N}}``; every
  post in one response, no pagination. ``content=true`` adds ``content``, ``departments``
  and ``offices`` to each post.
* ``GET /v1/boards/{board_token}/jobs/{job_id}`` -> one post, always with ``content``,
  ``departments`` and ``offices``; ``questions=true`` adds ``questions`` and, where the post
  has them, ``location_questions``, ``compliance`` and ``demographic_questions``;
  ``pay_transparency=true`` adds ``pay_input_ranges``.
* ``GET /v1/boards/{board_token}/departments[/{id}]`` and ``/offices[/{id}]`` with
  ``render_as=list`` (default: ``parent_id``/``child_ids``) or ``render_as=tree``
  (``children``).

Job ``content`` is the post's HTML escaped ONCE more the way the API (Rails'
``html_escape``) does it: ``&`` -> ``&amp;``, ``<`` -> ``&lt;``, ``>`` -> ``&gt;``,
``"`` -> ``&quot;``, ``'`` -> ``&#39;``. So the stored HTML
``<p>We are &quot;hiring&quot;&nbsp;now</p>`` is sent as
``&lt;p&gt;We are &amp;quot;hiring&amp;quot;&amp;nbsp;now&lt;/p&gt;``; a client must
``html.unescape`` once to get HTML back. (The docs' example shows ``&amp;lt;p&amp;gt;``,
an artefact of the docs' own rendering; the live API sends ``&lt;p&gt;``, and an older
docs revision shows ``&amp;nbsp;`` and ``they&#39;re`` the same way.)

Not-found answers (status 404, ``{"status": 404, "error": ...}``):

* unknown job id, non-numeric job id, and any ``/jobs`` path of an unknown board:
  ``"Job not found"`` (observed live);
* ``GET /v1/boards/{unknown}``: ``"Job board not found"`` (observed live);
* departments/offices of an unknown board: ``"Job board not found"`` -- not observed; the
  closest observed message for a missing board;
* an unknown department or office id: ``"Department not found"`` / ``"Office not found"``
  -- not observed; modelled on the observed ``"Job not found"``. Clients should key on the
  404 status, not the text.

The live API also sends ``company_name``, ``first_published`` and ``data_compliance`` on
list items; they are included. JSONP (``callback=``) and the application POST are not
modelled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from ._common import FakeControls, controls_middleware

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def html_escape(text: str) -> str:
    """Rails' ``ERB::Util.html_escape``: what the Job Board API applies to post content."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


@dataclass
class Department:
    id: int
    name: str
    parent_id: int | None = None


@dataclass
class Office:
    id: int
    name: str
    location: str | None = None
    parent_id: int | None = None


@dataclass
class Job:
    """One job post. ``content_html`` is the post's HTML as stored (not yet escaped)."""

    id: int
    internal_job_id: int | None
    title: str
    updated_at: str
    first_published: str
    requisition_id: str | None
    location: str
    absolute_url: str
    content_html: str
    company_name: str
    language: str = "en"
    metadata: list[dict[str, Any]] | None = None
    department_ids: list[int] = field(default_factory=list)
    office_ids: list[int] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    location_questions: list[dict[str, Any]] | None = None
    compliance: list[dict[str, Any]] | None = None
    demographic_questions: dict[str, Any] | None = None
    pay_input_ranges: list[dict[str, Any]] = field(default_factory=list)
    data_compliance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def content(self) -> str:
        """The ``content`` field exactly as the API sends it (entity-escaped HTML)."""
        return html_escape(self.content_html)


@dataclass
class Board:
    token: str
    name: str
    content: str
    jobs: list[Job] = field(default_factory=list)
    departments: list[Department] = field(default_factory=list)
    offices: list[Office] = field(default_factory=list)

    def job(self, job_id: int) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)


@dataclass
class GreenhouseState:
    boards: dict[str, Board] = field(default_factory=dict)
    controls: FakeControls = field(default_factory=FakeControls)


# --------------------------------------------------------------------------------------
# Data set
# --------------------------------------------------------------------------------------

_ROLES = (
    "Software Engineer",
    "Senior Software Engineer",
    "Staff Engineer, Platform",
    "Data Scientist",
    "Product Designer",
    "Account Executive",
    "Solutions Engineer",
    "Engineering Manager - Search",
    "Site Reliability Engineer",
    "Recruiter",
    "Technical Writer",
    "Security Engineer (AppSec)",
    "Mobile Engineer - iOS",
    "Financial Analyst",
    "Customer Success Manager",
)
_PARAGRAPHS = (
    "We are &quot;hiring&quot; people who love hard problems &amp; good coffee.",
    "You'll work with a small team on systems used by millions.",
    "Our stack: Python, Go &amp; PostgreSQL.&nbsp;No prior fintech experience needed.",
    "We value <em>kindness</em>, ownership and clear writing.",
    "Compensation: $120,000 &ndash; $180,000 + equity.",
)


def _offset_time(moment: datetime) -> str:
    """US Eastern wall-clock with its offset (-04:00 in summer, -05:00 otherwise)."""
    hours = -4 if 3 <= moment.month <= 10 else -5
    local = moment.astimezone(timezone(timedelta(hours=hours)))
    return local.isoformat(timespec="seconds")


def _standard_questions(rng: random.Random, job_index: int) -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = [
        {
            "required": True,
            "label": "First Name",
            "fields": [{"name": "first_name", "type": "input_text", "values": []}],
        },
        {
            "required": True,
            "label": "Last Name",
            "fields": [{"name": "last_name", "type": "input_text", "values": []}],
        },
        {
            "required": True,
            "label": "Email",
            "fields": [{"name": "email", "type": "input_text", "values": []}],
        },
        {
            "required": False,
            "label": "Phone",
            "fields": [{"name": "phone", "type": "input_text", "values": []}],
        },
        {
            "required": True,
            "label": "Resume/CV",
            "fields": [
                {"name": "resume", "type": "input_file", "values": []},
                {"name": "resume_text", "type": "textarea", "values": []},
            ],
        },
        {
            "required": False,
            "label": "Cover Letter",
            "fields": [
                {"name": "cover_letter", "type": "input_file", "values": []},
                {"name": "cover_letter_text", "type": "textarea", "values": []},
            ],
        },
    ]
    if rng.random() < 0.6:
        questions.append(
            {
                "required": False,
                "label": "Do you like apples?",
                "fields": [
                    {
                        "name": f"question_{3_000_000 + job_index * 10}",
                        "type": "multi_value_single_select",
                        "values": [{"value": 0, "label": "No"}, {"value": 1, "label": "Yes"}],
                    }
                ],
            }
        )
    return questions


_LOCATION_QUESTIONS = [
    {
        "label": "Location",
        "fields": [{"name": "location", "type": "input_text", "values": []}],
        "required": True,
    },
    {
        "label": "Latitude",
        "fields": [{"name": "latitude", "type": "input_hidden", "values": []}],
        "required": True,
    },
    {
        "label": "Longitude",
        "fields": [{"name": "longitude", "type": "input_hidden", "values": []}],
        "required": True,
    },
]

_COMPLIANCE = [
    {
        "type": "eeoc",
        "description": (
            "&lt;p&gt;Acme is an equal opportunity employer. Completion of this form is "
            "voluntary.&lt;/p&gt;"
        ),
        "questions": [
            {
                "required": False,
                "label": "Gender",
                "fields": [
                    {
                        "name": "gender",
                        "type": "multi_value_single_select",
                        "values": [
                            {"label": "Male", "value": 1},
                            {"label": "Female", "value": 2},
                            {"label": "Decline To Self Identify", "value": 3},
                        ],
                    }
                ],
            },
            {
                "required": False,
                "label": "Veteran Status",
                "fields": [
                    {
                        "name": "veteran_status",
                        "type": "multi_value_single_select",
                        "values": [
                            {"label": "I am not a protected veteran", "value": 1},
                            {
                                "label": (
                                    "I identify as one or more of the classifications "
                                    "of protected veteran"
                                ),
                                "value": 2,
                            },
                            {"label": "I don't wish to answer", "value": 3},
                        ],
                    }
                ],
            },
        ],
    }
]

_DEMOGRAPHIC = {
    "header": "Diversity and Inclusion at Acme Corp.",
    "description": "<p>Acme Corp. is dedicated to building a diverse team.</p>",
    "questions": [
        {
            "id": 1,
            "label": "Favorite Color",
            "required": False,
            "type": "multi_value_multi_select",
            "answer_options": [
                {"id": 100, "label": "Red", "free_form": False},
                {"id": 101, "label": "Green", "free_form": False},
                {"id": 102, "label": "Blue", "free_form": False},
                {"id": 103, "label": "Prefer to Type My Own", "free_form": True},
            ],
        }
    ],
}


def _make_board(token: str, name: str, n_jobs: int, rng: random.Random, id_base: int) -> Board:
    d = id_base // 1000
    departments = [
        Department(d + 1, "R & D"),
        Department(d + 2, "Engineering", d + 1),
        Department(d + 3, "Mobile Development", d + 2),
        Department(d + 4, "Data Science", d + 1),
        Department(d + 5, "Sales"),
        Department(d + 6, "Account Management"),
        Department(d + 7, "Operations"),
    ]
    offices = [
        Office(d + 11, "Americas", "United States"),
        Office(d + 12, "New York City", "New York, NY, United States", d + 11),
        Office(d + 13, "San Francisco", "San Francisco, CA, United States", d + 11),
        Office(d + 14, "EMEA", None),
        Office(d + 15, "London", "London, United Kingdom", d + 14),
        Office(d + 16, "Berlin", "Berlin, Germany", d + 14),
        Office(d + 17, "Remote", None),
    ]
    leaf_departments = [dep for dep in departments if dep.id != d + 1]
    leaf_offices = [o for o in offices if o.id not in (d + 11, d + 14)]
    board = Board(
        token,
        name,
        f"<p>Join {name}! We build tools people love.</p>",
        departments=departments,
        offices=offices,
    )
    start = datetime(2015, 1, 1, tzinfo=UTC)
    span = int((datetime(2025, 6, 1, tzinfo=UTC) - start).total_seconds())
    for i in range(n_jobs):
        job_id = id_base + i * 7 + rng.randint(0, 6)
        published = start + timedelta(seconds=rng.randrange(span))
        updated = published + timedelta(seconds=rng.randrange(0, 90 * 86400))
        office = rng.choice(leaf_offices)
        title = rng.choice(_ROLES)
        if rng.random() < 0.3:
            title = f"{title} ({office.name})"
        paragraphs = rng.sample(_PARAGRAPHS, 3)
        content_html = (
            f"<p><strong>{title}</strong> at {name}</p>"
            + "".join(f"<p>{p}</p>" for p in paragraphs)
            + '<ul><li>Apply via <a href="https://example.com/apply">our form</a></li></ul>'
        )
        metadata: list[dict[str, Any]] | None = None
        if rng.random() < 0.5:
            metadata = [
                {
                    "id": 2_000_000 + (i % 3),
                    "name": "Employment Type",
                    "value": rng.choice(("Full-time", "Part-time", "Contract")),
                    "value_type": "single_select",
                }
            ]
        absolute_url = (
            f"https://boards.greenhouse.io/{token}/jobs/{job_id}"
            if rng.random() < 0.8
            else f"https://{token}.example.com/careers?gh_jid={job_id}"
        )
        job = Job(
            id=job_id,
            internal_job_id=None if rng.random() < 0.03 else 1_000_000 + i * 3,
            title=title,
            updated_at=_offset_time(updated),
            first_published=_offset_time(published),
            requisition_id=None if rng.random() < 0.1 else str(100 + i),
            location=office.name if office.location is None else office.location.split(",")[0],
            absolute_url=absolute_url,
            content_html=content_html,
            company_name=name,
            language=rng.choice(("en",) * 8 + ("de", "fr")),
            metadata=metadata,
            department_ids=[rng.choice(leaf_departments).id],
            office_ids=[office.id],
            questions=_standard_questions(rng, i),
            location_questions=list(_LOCATION_QUESTIONS) if rng.random() < 0.5 else None,
            compliance=list(_COMPLIANCE) if rng.random() < 0.3 else None,
            demographic_questions=dict(_DEMOGRAPHIC) if rng.random() < 0.2 else None,
            pay_input_ranges=(
                [
                    {
                        "min_cents": 12_000_000,
                        "max_cents": 18_000_000,
                        "currency_type": "USD",
                        "title": f"{office.name} Salary Range",
                        "blurb": "In order to provide transparency...",
                    }
                ]
                if rng.random() < 0.5
                else []
            ),
            data_compliance=[
                {
                    "type": "gdpr",
                    "requires_consent": False,
                    "requires_processing_consent": False,
                    "requires_retention_consent": False,
                    "retention_period": None,
                }
            ],
        )
        board.jobs.append(job)
    return board


def make_dataset(board_token: str = "acme", n_jobs: int = 300, seed: int = 0) -> GreenhouseState:
    """Deterministic boards: ``board_token`` with ``n_jobs`` posts, plus a small second
    board ``globex`` (5 posts) whose posts must never show up on the first."""
    rng = random.Random(seed)
    boards = {board_token: _make_board(board_token, "Acme Corp", n_jobs, rng, 4_000_000_000)}
    if board_token != "globex":
        boards["globex"] = _make_board("globex", "Globex", 5, rng, 5_000_000_000)
    return GreenhouseState(boards=boards)


# --------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------


def _department_ref(board: Board, dep: Department) -> dict[str, Any]:
    return {
        "id": dep.id,
        "name": dep.name,
        "parent_id": dep.parent_id,
        "child_ids": [d.id for d in board.departments if d.parent_id == dep.id],
    }


def _office_ref(board: Board, office: Office) -> dict[str, Any]:
    return {
        "id": office.id,
        "name": office.name,
        "location": office.location,
        "parent_id": office.parent_id,
        "child_ids": [o.id for o in board.offices if o.parent_id == office.id],
    }


def _job_offices(board: Board, job: Job) -> list[Office]:
    """The post's offices with their ancestors, parents first (as in the docs' example)."""
    by_id = {o.id: o for o in board.offices}
    out: list[Office] = []
    for office_id in job.office_ids:
        chain = []
        office = by_id.get(office_id)
        while office is not None:
            chain.append(office)
            office = by_id.get(office.parent_id) if office.parent_id is not None else None
        for o in reversed(chain):
            if o not in out:
                out.append(o)
    return out


def list_job_json(board: Board, job: Job, *, content: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "absolute_url": job.absolute_url,
        "data_compliance": job.data_compliance,
        "internal_job_id": job.internal_job_id,
        "location": {"name": job.location},
        "metadata": job.metadata,
        "id": job.id,
        "updated_at": job.updated_at,
        "requisition_id": job.requisition_id,
        "title": job.title,
        "company_name": job.company_name,
        "first_published": job.first_published,
        "language": job.language,
    }
    if content:
        deps = {d.id: d for d in board.departments}
        data["content"] = job.content
        data["departments"] = [_department_ref(board, deps[i]) for i in job.department_ids]
        data["offices"] = [_office_ref(board, o) for o in _job_offices(board, job)]
    return data


def job_json(
    board: Board, job: Job, *, questions: bool = False, pay: bool = False
) -> dict[str, Any]:
    data = list_job_json(board, job, content=True)
    if questions:
        if job.location_questions is not None:
            data["location_questions"] = job.location_questions
        data["questions"] = job.questions
        if job.compliance is not None:
            data["compliance"] = job.compliance
        if job.demographic_questions is not None:
            data["demographic_questions"] = job.demographic_questions
    if pay:
        data["pay_input_ranges"] = job.pay_input_ranges
    return data


def _short_job(board: Board, job: Job) -> dict[str, Any]:
    return list_job_json(board, job)


def _department_json(
    board: Board, dep: Department, tree: bool, office: Office | None = None
) -> dict[str, Any]:
    jobs = [
        _short_job(board, j)
        for j in board.jobs
        if dep.id in j.department_ids and (office is None or office.id in j.office_ids)
    ]
    data: dict[str, Any] = {"id": dep.id, "name": dep.name, "jobs": jobs}
    if tree:
        data["children"] = [
            _department_json(board, child, True, office)
            for child in board.departments
            if child.parent_id == dep.id
        ]
    else:
        data["parent_id"] = dep.parent_id
        data["child_ids"] = [d.id for d in board.departments if d.parent_id == dep.id]
    return data


def _office_json(
    board: Board, office: Office, tree: bool, *, nested_refs: bool = True
) -> dict[str, Any]:
    if tree:
        roots = [d for d in board.departments if d.parent_id is None]
        departments = [_department_json(board, d, True, office) for d in roots]
    elif nested_refs:
        departments = [_department_json(board, d, False, office) for d in board.departments]
    else:
        departments = [
            {
                k: v
                for k, v in _department_json(board, d, False, office).items()
                if k in ("id", "name", "jobs")
            }
            for d in board.departments
        ]
    data: dict[str, Any] = {
        "id": office.id,
        "name": office.name,
        "location": office.location,
        "departments": departments,
    }
    if tree:
        data["children"] = [
            _office_json(board, child, True)
            for child in board.offices
            if child.parent_id == office.id
        ]
    else:
        data["parent_id"] = office.parent_id
        data["child_ids"] = [o.id for o in board.offices if o.parent_id == office.id]
    return data


# --------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------

STATE_KEY = web.AppKey("greenhouse_state", GreenhouseState)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, content_type="application/json")


def _not_found(message: str) -> web.Response:
    return _json({"status": 404, "error": message}, 404)


def _board(request: web.Request) -> Board | None:
    state = request.app[STATE_KEY]
    return state.boards.get(request.match_info["board_token"])


def _true(request: web.Request, name: str) -> bool:
    return request.query.get(name) == "true"


async def get_board(request: web.Request) -> web.Response:
    board = _board(request)
    if board is None:
        return _not_found("Job board not found")
    return _json({"name": board.name, "content": board.content})


async def list_jobs(request: web.Request) -> web.Response:
    board = _board(request)
    if board is None:
        return _not_found("Job not found")
    content = _true(request, "content")
    jobs = [list_job_json(board, j, content=content) for j in board.jobs]
    return _json({"jobs": jobs, "meta": {"total": len(jobs)}})


async def get_job(request: web.Request) -> web.Response:
    board = _board(request)
    raw_id = request.match_info["job_id"]
    job = board.job(int(raw_id)) if board is not None and raw_id.isdigit() else None
    if board is None or job is None:
        return _not_found("Job not found")
    return _json(
        job_json(
            board,
            job,
            questions=_true(request, "questions"),
            pay=_true(request, "pay_transparency"),
        )
    )


def _render_as_tree(request: web.Request) -> bool:
    return request.query.get("render_as") == "tree"


async def list_departments(request: web.Request) -> web.Response:
    board = _board(request)
    if board is None:
        return _not_found("Job board not found")
    tree = _render_as_tree(request)
    deps = [d for d in board.departments if d.parent_id is None] if tree else board.departments
    return _json({"departments": [_department_json(board, d, tree) for d in deps]})


async def get_department(request: web.Request) -> web.Response:
    board = _board(request)
    if board is None:
        return _not_found("Job board not found")
    raw_id = request.match_info["department_id"]
    dep = next((d for d in board.departments if str(d.id) == raw_id), None)
    if dep is None:
        return _not_found("Department not found")
    return _json(_department_json(board, dep, _render_as_tree(request)))


async def list_offices(request: web.Request) -> web.Response:
    board = _board(request)
    if board is None:
        return _not_found("Job board not found")
    tree = _render_as_tree(request)
    offices = [o for o in board.offices if o.parent_id is None] if tree else board.offices
    return _json({"offices": [_office_json(board, o, tree) for o in offices]})


async def get_office(request: web.Request) -> web.Response:
    board = _board(request)
    if board is None:
        return _not_found("Job board not found")
    raw_id = request.match_info["office_id"]
    office = next((o for o in board.offices if str(o.id) == raw_id), None)
    if office is None:
        return _not_found("Office not found")
    tree = _render_as_tree(request)
    return _json(_office_json(board, office, tree, nested_refs=False))


def make_app(state: GreenhouseState) -> web.Application:
    app = web.Application(middlewares=[controls_middleware(state.controls)])
    app[STATE_KEY] = state
    r = app.router
    r.add_get("/v1/boards/{board_token}", get_board)
    r.add_get("/v1/boards/{board_token}/jobs", list_jobs)
    r.add_get("/v1/boards/{board_token}/jobs/{job_id}", get_job)
    r.add_get("/v1/boards/{board_token}/departments", list_departments)
    r.add_get("/v1/boards/{board_token}/departments/{department_id}", get_department)
    r.add_get("/v1/boards/{board_token}/offices", list_offices)
    r.add_get("/v1/boards/{board_token}/offices/{office_id}", get_office)
    return app


__all__ = [
    "Board",
    "Department",
    "GreenhouseState",
    "Job",
    "Office",
    "html_escape",
    "job_json",
    "list_job_json",
    "make_app",
    "make_dataset",
]
