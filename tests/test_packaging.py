"""The wheel ships the library and nothing else (no top-level ``benchmarks`` or ``tests``
that could shadow a user's own modules), with its type marker and its demo data."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_only_asyncrepo(tmp_path: Path) -> None:
    builder = WheelBuilder(str(ROOT))
    (wheel,) = list(builder.build(directory=str(tmp_path), versions=["standard"]))
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"asyncrepo"}
    assert "asyncrepo/py.typed" in names
    assert "asyncrepo/data/demo.csv.gz" in names
