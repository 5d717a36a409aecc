"""Regenerate asyncrepo/data/demo.csv.gz, the bundled demo dataset.

3,000 fictional software projects, generated deterministically (random.Random(2026)) so the
file is identical on every run: ``python scripts/make_demo_data.py``. Nothing in it is
real; names are built from word lists below.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROWS = 3000
OUT = Path(__file__).resolve().parent.parent / "asyncrepo" / "data" / "demo.csv.gz"

PREFIXES = [
    "async",
    "fast",
    "tiny",
    "py",
    "rust",
    "go",
    "open",
    "micro",
    "hyper",
    "smart",
    "lazy",
    "quick",
    "deep",
    "meta",
    "auto",
    "cloud",
    "edge",
    "flux",
    "nano",
    "zen",
]
STEMS = [
    "search",
    "index",
    "cache",
    "queue",
    "graph",
    "crawl",
    "parse",
    "store",
    "stream",
    "sync",
    "lint",
    "test",
    "log",
    "trace",
    "vector",
    "shard",
    "route",
    "feed",
    "mail",
    "sheet",
    "chart",
    "repo",
    "http",
    "grid",
    "lake",
]
SUFFIXES = ["", "er", "ly", "kit", "hub", "io", "db", "lib", "x", "flow"]
LANGUAGES = ["Python", "Rust", "Go", "TypeScript", "Java", "C++", "Kotlin", "Ruby", "Elixir", "Zig"]
TOPICS = [
    "search",
    "databases",
    "networking",
    "testing",
    "observability",
    "machine learning",
    "devops",
    "security",
    "data engineering",
    "web",
    "cli",
    "documentation",
]
ADJECTIVES = [
    "asynchronous",
    "fast",
    "embeddable",
    "minimal",
    "federated",
    "typed",
    "incremental",
    "distributed",
    "lightweight",
    "fault-tolerant",
    "streaming",
    "pluggable",
]
NOUNS = [
    "search engine",
    "task queue",
    "HTTP client",
    "key-value store",
    "web crawler",
    "log shipper",
    "CSV toolkit",
    "rate limiter",
    "job scheduler",
    "metrics exporter",
    "full-text index",
    "feature store",
    "API gateway",
    "retry library",
    "document parser",
]
PURPOSES = [
    "for data pipelines",
    "for unified search",
    "with zero dependencies",
    "for large files",
    "for teams that hate YAML",
    "built on asyncio",
    "with first-class typing",
    "for the command line",
    "that survives flaky networks",
    "for federated queries",
    "with pluggable storage",
    "for embedded devices",
]
FIRST = [
    "Ada",
    "Linus",
    "Grace",
    "Guido",
    "Barbara",
    "Ken",
    "Margaret",
    "Dennis",
    "Frances",
    "Alan",
    "Radia",
    "Donald",
    "Sophie",
    "Tim",
    "Anita",
    "Brian",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Nakamura",
    "Silva",
    "Novak",
    "Haddad",
    "Moreau",
    "Kowalski",
    "Fischer",
    "Mendes",
    "Ivanova",
    "Tanaka",
    "Osei",
    "Larsen",
    "Costa",
    "Ahmed",
]


def main() -> None:
    rnd = random.Random(2026)
    start = datetime(2012, 1, 1, tzinfo=UTC)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "id",
            "name",
            "language",
            "topic",
            "description",
            "maintainer",
            "homepage",
            "stars",
            "created_at",
            "updated_at",
        ]
    )
    names: set[str] = set()
    for index in range(1, ROWS + 1):
        while True:
            name = rnd.choice(PREFIXES) + rnd.choice(STEMS) + rnd.choice(SUFFIXES)
            if name not in names:
                break
            name += str(rnd.randint(2, 99))
            if name not in names:
                break
        names.add(name)
        created = start + timedelta(seconds=rnd.randint(0, 13 * 365 * 86400))
        updated = created + timedelta(seconds=rnd.randint(0, 3 * 365 * 86400))
        description = f"A {rnd.choice(ADJECTIVES)} {rnd.choice(NOUNS)} {rnd.choice(PURPOSES)}."
        writer.writerow(
            [
                f"p{index:05d}",
                name,
                rnd.choice(LANGUAGES),
                rnd.choice(TOPICS),
                description,
                f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                f"https://example.org/projects/{name}",
                int(rnd.paretovariate(1.2) * 10),
                created.isoformat(),
                updated.isoformat(),
            ]
        )
    # mtime=0 keeps the gzip bytes identical from run to run.
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buffer.getvalue().encode("utf-8"))
    print(f"wrote {ROWS} rows to {OUT}")


if __name__ == "__main__":
    main()
