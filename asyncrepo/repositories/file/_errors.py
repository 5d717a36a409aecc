"""The CSV source's name and its one builder of malformed-data errors."""

from __future__ import annotations

from ...exceptions import MalformedResponse

#: The registry name of ``CSVRows``, for errors raised below the repository class.
SOURCE = "file.csv_rows"


def malformed(where: str, message: str) -> MalformedResponse:
    """Data that is not the CSV it should be, named by its file and (in ``message``) line."""
    return MalformedResponse(f"{where}: {message}", source=SOURCE)
