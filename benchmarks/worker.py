"""One measured run, in a fresh interpreter: ``python -m benchmarks.worker`` reads a job
(JSON) on stdin, imports what it needs, runs it once and prints ``RESULT {json}``.

Measured around the work only (not interpreter start-up or imports): wall time
(``perf_counter``), CPU time (``getrusage(RUSAGE_SELF)`` user + system, all threads), peak
RSS (the high-water mark of the whole process: ``VmHWM``, see ``_rss_mb``) and, when the job calls
``probe.first()``, the time to the first item.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import inspect
import json
import pstats
import resource
import sys
import threading
import time
from typing import Any


class Probe:
    """Handed to every job: ``first()`` marks the arrival of the first item."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_at: float | None = None

    def first(self) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter() - self.start


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    """Peak RSS of this process so far, in MB.

    Linux's ``ru_maxrss`` survives ``execve``: a fresh child starts with its *parent's* peak
    (the benchmark runner's). ``VmHWM`` in ``/proc/self/status`` is the high-water mark of
    this process image alone; ``ru_maxrss`` is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _profile_new_threads(profiles: list[cProfile.Profile]) -> Any:
    """A ``threading.setprofile`` hook that hands every new thread to a cProfile profiler
    (pyinstrument sees the main thread only; asyncio.to_thread work runs elsewhere)."""

    def hook(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    return hook


def main() -> None:
    spec = json.loads(sys.stdin.read())
    for name in spec["imports"]:
        importlib.import_module(name)
    module_name, _, function_name = spec["job"].partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    kwargs: dict[str, Any] = spec["kwargs"]
    profiler: Any = None
    thread_profiles: list[cProfile.Profile] = []
    if spec.get("profile"):
        from pyinstrument import Profiler  # optional: only for --profile

        profiler = Profiler(interval=0.0005)
        threading.setprofile(_profile_new_threads(thread_profiles))

    rss_before = _rss_mb()
    cpu0 = _cpu()
    probe = Probe()
    if profiler is not None:
        profiler.start()
    if inspect.iscoroutinefunction(function):
        result = asyncio.run(function(probe, **kwargs))
    else:
        result = function(probe, **kwargs)
    wall = time.perf_counter() - probe.start
    cpu = _cpu() - cpu0
    if profiler is not None:
        profiler.stop()
        threading.setprofile(None)
        with open(spec["profile"], "w") as report:
            report.write("Main thread (pyinstrument):\n")
            report.write(profiler.output_text(unicode=True, color=False, show_all=False))
            if thread_profiles:
                report.write("\nOther threads (cProfile, merged), by own time:\n")
                stats = pstats.Stats(*thread_profiles, stream=report)
                stats.sort_stats("tottime").print_stats(25)
    count, check = result if isinstance(result, tuple) else (result, None)
    out = {
        "wall": wall,
        "cpu": cpu,
        "rss": _rss_mb(),
        "rss_before": rss_before,
        "count": int(count),
        "check": None if check is None else str(check),
        "first": probe.first_at,
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
