"""Measuring: variants, comparisons, fresh-subprocess runs, statistics, the table.

A *variant* is one way of doing a scenario's work (the raw client, or asyncrepo), named by
the function that does it (``"module:function"``). Every run of a variant happens in a
fresh ``python -m benchmarks.worker`` process, which imports what the variant needs first
and then measures only the work: wall time, CPU time (user + system, every thread) and
peak RSS of that process (see ``worker``). A *comparison* puts a baseline and a subject
side by side: their runs are interleaved (baseline, subject, baseline, subject...) so that
noise from the rest of the machine hits both alike, and the ratio reported is the median of
the per-pair ratios subject / baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Metric = Literal["wall", "cpu", "first", "rss"]
METRIC_NAMES: dict[Metric, str] = {
    "wall": "wall",
    "cpu": "CPU",
    "first": "1st item",
    "rss": "peak RSS",
}
ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 600.0


class BenchmarkError(Exception):
    """A scenario crashed (a failed run, a count mismatch): not a result."""


@dataclass(frozen=True)
class Variant:
    """One way of doing the work: ``job`` is ``"module:function"``, called with
    ``(probe, **kwargs)``; sync or async; returns the item count, or ``(count, check)``."""

    label: str
    job: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Modules imported before the clock starts (so imports are not timed).
    imports: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: The count every run must give (default: the same count as the other variant).
    expect: int | None = None


@dataclass(frozen=True)
class Target:
    """``metric`` of the subject, as a ratio to the baseline (or, with ``absolute``, in its
    own unit: MB for ``rss``), must be at most ``limit`` (below it when ``strict``)."""

    metric: Metric
    limit: float
    strict: bool = False
    absolute: bool = False

    def describe(self) -> str:
        op = "<" if self.strict else "<="
        if self.absolute:
            unit = " MB" if self.metric == "rss" else " s"
            return f"{op} {self.limit:g}{unit}"
        return f"{op} {self.limit:.1f}x"

    def met(self, value: float) -> bool:
        return value < self.limit if self.strict else value <= self.limit


@dataclass(frozen=True)
class Comparison:
    scenario: str
    baseline: Variant
    subject: Variant
    targets: Sequence[Target] = (Target("wall", 1.0),)
    #: Metrics shown in the table besides the targets' (a ratio, without a target).
    show: Sequence[Metric] = ()
    #: Both variants give the same items (checked: same count and check value every run).
    same_work: bool = True


@dataclass
class Run:
    wall: float
    cpu: float
    rss: float  # MB
    rss_before: float  # MB, after imports, before the work
    count: int
    check: str | None = None
    first: float | None = None

    def get(self, metric: Metric) -> float:
        value = getattr(self, metric)
        if value is None:
            raise BenchmarkError(f"the job did not report {metric!r}")
        return float(value)


def python_path() -> str:
    """``PYTHONPATH`` for the child processes: the repository root first (``benchmarks``,
    ``tests.fakes``), then whatever the caller had."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def run_variant(variant: Variant, *, profile: Path | None = None) -> Run:
    """One run of ``variant`` in a fresh interpreter."""
    job = {
        "job": variant.job,
        "kwargs": dict(variant.kwargs),
        "imports": list(variant.imports),
        "profile": str(profile) if profile else None,
    }
    env = {**os.environ, **variant.env, "PYTHONPATH": python_path()}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{variant.label}: no answer in {RUN_TIMEOUT:g} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BenchmarkError(f"{variant.label}: worker exited {done.returncode}\n{tail}")
    result = json.loads(lines[-1][len("RESULT ") :])
    return Run(**result)


@dataclass
class Stats:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(statistics.median(values), min(values), max(values))


Side = Literal["baseline", "subject"]
SIDES: tuple[Side, Side] = ("baseline", "subject")


@dataclass
class Outcome:
    """The runs of one comparison and what they say."""

    comparison: Comparison
    runs: dict[Side, list[Run]] = field(default_factory=lambda: {s: [] for s in SIDES})
    warmup: bool = False

    def variant(self, side: Side) -> Variant:
        return self.comparison.baseline if side == "baseline" else self.comparison.subject

    def stats(self, side: Side, metric: Metric) -> Stats:
        return Stats.of([run.get(metric) for run in self.runs[side]])

    def ratio(self, metric: Metric) -> float:
        """The median of the per-pair ratios subject / baseline (pairs of interleaved runs)."""
        pairs = zip(self.runs["baseline"], self.runs["subject"], strict=True)
        return statistics.median(s.get(metric) / max(b.get(metric), 1e-9) for b, s in pairs)

    def value(self, target: Target) -> float:
        if target.absolute:
            return self.stats("subject", target.metric).median
        return self.ratio(target.metric)

    def metrics(self) -> list[Metric]:
        """The metrics the table shows as ratios: the targets', then ``show``."""
        c = self.comparison
        shown: list[Metric] = []
        for metric in (*(t.metric for t in c.targets if not t.absolute), *c.show):
            if metric not in shown:
                shown.append(metric)
        return shown

    def missed(self) -> list[Target]:
        return [t for t in self.comparison.targets if not t.met(self.value(t))]

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        measured = [m for m in METRIC_NAMES if self._has(m)]
        return {
            "scenario": c.scenario,
            "runs_per_variant": len(self.runs["subject"]),
            "warmup_round": self.warmup,
            **{side: self._variant_json(side, measured) for side in SIDES},
            "ratios": {m: round(self.ratio(m), 4) for m in measured},
            "targets": [
                {
                    "metric": t.metric,
                    "target": t.describe(),
                    "value": round(self.value(t), 4),
                    "met": t.met(self.value(t)),
                }
                for t in c.targets
            ],
        }

    def _has(self, metric: Metric) -> bool:
        return all(getattr(run, metric) is not None for side in SIDES for run in self.runs[side])

    def _variant_json(self, side: Side, measured: list[Metric]) -> dict[str, Any]:
        variant = self.variant(side)
        summary = {}
        for metric in measured:
            stats = self.stats(side, metric)
            summary[metric] = {k: round(v, 4) for k, v in stats.__dict__.items()}
        return {
            "label": variant.label,
            "job": variant.job,
            "kwargs": dict(variant.kwargs),
            "summary": summary,
            "runs": [run.__dict__ for run in self.runs[side]],
        }


def compare(
    comparison: Comparison,
    runs: int,
    *,
    warmup: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Interleaved runs of the baseline and the subject (after one unmeasured run of each
    with ``warmup``). Every run is checked: a wrong count is a crash."""
    outcome = Outcome(comparison, warmup=warmup)
    reference: tuple[int, str | None] | None = None
    if warmup:
        for side in SIDES:
            run_variant(outcome.variant(side))
    for index in range(runs):
        for side in SIDES:
            variant = outcome.variant(side)
            run = run_variant(variant)
            if variant.expect is not None and run.count != variant.expect:
                raise BenchmarkError(
                    f"{comparison.scenario}: {variant.label} gave {run.count} items, "
                    f"not {variant.expect}"
                )
            if comparison.same_work:
                reference = reference or (run.count, run.check)
                if (run.count, run.check) != reference:
                    raise BenchmarkError(
                        f"{comparison.scenario}: the variants did not do the same work: "
                        f"{variant.label} gave (count, check) {(run.count, run.check)}, "
                        f"the other {reference}"
                    )
            outcome.runs[side].append(run)
            if progress is not None:
                first = f", first item {run.first * 1000:.0f} ms" if run.first else ""
                progress(
                    f"  {comparison.scenario} | {variant.label} | run {index + 1}/{runs}: "
                    f"{run.wall:.3f} s wall, {run.cpu:.3f} s CPU, {run.rss:.0f} MB{first}, "
                    f"{run.count} items"
                )
    return outcome


# -- the table ----------------------------------------------------------------------------

HEADER = [
    "scenario",
    "variant",
    "metric",
    "median",
    "spread (min - max)",
    "peak RSS",
    "ratio",
    "target",
    "met",
]


def _fmt(metric: Metric, value: float) -> str:
    if metric == "rss":
        return f"{value:.0f} MB"
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def _rows(outcome: Outcome) -> list[list[str]]:
    c = outcome.comparison
    rows: list[list[str]] = []
    for metric in outcome.metrics():
        for side in SIDES:
            stats = outcome.stats(side, metric)
            ratio = target = met = ""
            if side == "subject":
                ratio = f"{outcome.ratio(metric):.2f}x"
                for t in c.targets:
                    if t.metric == metric and not t.absolute:
                        target = t.describe()
                        met = "yes" if t.met(outcome.value(t)) else "NO"
            rows.append(
                [
                    "",
                    outcome.variant(side).label,
                    METRIC_NAMES[metric],
                    _fmt(metric, stats.median),
                    f"{_fmt(metric, stats.low)} - {_fmt(metric, stats.high)}",
                    f"{outcome.stats(side, 'rss').median:.0f} MB",
                    ratio,
                    target,
                    met,
                ]
            )
    for t in c.targets:
        if t.absolute:
            stats = outcome.stats("subject", t.metric)
            rows.append(
                [
                    "",
                    c.subject.label,
                    METRIC_NAMES[t.metric],
                    _fmt(t.metric, stats.median),
                    f"{_fmt(t.metric, stats.low)} - {_fmt(t.metric, stats.high)}",
                    "",
                    "",
                    t.describe(),
                    "yes" if t.met(stats.median) else "NO",
                ]
            )
    rows[0][0] = c.scenario
    return rows


def table(outcomes: Sequence[Outcome]) -> str:
    """The results as a plain-text table, one block per comparison."""
    blocks = [_rows(outcome) for outcome in outcomes]
    every = [HEADER, *(row for block in blocks for row in block)]
    widths = [max(len(row[i]) for row in every) for i in range(len(HEADER))]

    def line(row: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    lines = [line(HEADER), line(["-" * w for w in widths])]
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        lines.extend(line(row) for row in block)
    return "\n".join(lines)
