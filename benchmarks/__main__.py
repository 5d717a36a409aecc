"""``python -m benchmarks [--smoke] [--only csv,s3,github,jira,federation] [--runs N]``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .harness import ROOT, Outcome, compare, run_variant, table
from .scenarios import MODULES, SCENARIOS

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RUNS = 5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    try:
        from asyncrepo import __version__ as version
    except ImportError:
        version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "asyncrepo": version,
        "git_commit": commit or None,
        "load_average_at_start": list(os.getloadavg()),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each (CI)")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--runs", type=int, default=None, help="runs per variant")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run each asyncrepo variant once under pyinstrument (pip install "
        "pyinstrument); profiles go to benchmarks/results/profiles/",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; pick from {SCENARIOS}")
    args.only = chosen
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    outcomes: list[Outcome] = []
    crashed: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in args.only:
        module = importlib.import_module(MODULES[name])
        runs = 1 if args.smoke else args.runs or getattr(module, "RUNS", DEFAULT_RUNS)
        warmup = not args.smoke and getattr(module, "WARMUP", True)
        log(f"== {name}: {runs} run(s) per variant{', after a warm-up run' if warmup else ''}")
        started = time.perf_counter()
        try:
            with module.comparisons(args.smoke) as comparisons:
                for comparison in comparisons:
                    outcomes.append(compare(comparison, runs, warmup=warmup, progress=log))
                    if args.profile:
                        slug = _slug(f"{comparison.scenario} {comparison.subject.label}")
                        profile = RESULTS / "profiles" / f"{slug}.txt"
                        profile.parent.mkdir(parents=True, exist_ok=True)
                        run_variant(comparison.subject, profile=profile)
                        log(f"  profile of {comparison.subject.label}: {profile}")
        except Exception:
            crashed[name] = traceback.format_exc()
            log(f"!! {name} crashed:\n{crashed[name]}")
        timings[name] = time.perf_counter() - started
        log(f"== {name}: {timings[name]:.0f} s")

    print()
    print(table(outcomes))
    missed = [
        f"{o.comparison.scenario} / {o.comparison.subject.label}: {t.metric} "
        f"{o.value(t):.2f} (target {t.describe()})"
        for o in outcomes
        for t in o.missed()
    ]
    print()
    print(
        f"machine: {info['cores']} cores, {info['cpu_model']}, Python {info['python']}, "
        f"asyncrepo {info['asyncrepo']}, load average at start {info['load_average_at_start']}"
    )
    if missed:
        print("targets missed:" + "".join(f"\n  {m}" for m in missed))
    for name, error in crashed.items():
        print(f"CRASHED: {name}: {error.strip().splitlines()[-1]}")

    path = args.json or RESULTS / ("smoke.json" if args.smoke else "latest.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": info,
        "settings": {"smoke": args.smoke, "scenarios": args.only, "runs": args.runs},
        "seconds_per_scenario": {k: round(v, 1) for k, v in timings.items()},
        "results": [o.to_json() for o in outcomes],
        "missed": missed,
        "crashed": crashed,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {path}")
    # A missed target is a result, not a failure; only a crash fails the run.
    return 1 if crashed else 0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


if __name__ == "__main__":
    sys.exit(main())
