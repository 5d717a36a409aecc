"""Text and records pushed a piece at a time (``_incremental``): whatever the chunking, the
rows are those ``csv.reader`` gives for the whole text, and no row is handed out before its
record is known to be complete."""

from __future__ import annotations

import csv
import gzip
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncrepo.repositories.file._incremental import CompleteRecords, TextDecoder


class Malformed(Exception):
    pass


def error(exc: csv.Error, line: int) -> Exception:
    return Malformed(f"line {line}: {exc}")


def whole(text: str, **kwargs: Any) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text, newline=""), **kwargs) if row]


def pushed(text: str, size: int, count: int = 3, **kwargs: Any) -> list[list[str]]:
    """Push ``text`` in pieces of ``size``, taking up to ``count`` rows between pushes."""
    records = CompleteRecords(kwargs, error)
    out: list[list[str]] = []
    for at in range(0, len(text), size):
        records.push(text[at : at + size])
        while rows := records.rows(count):
            out += rows
    records.finish()
    while rows := records.rows(count):
        out += rows
    assert records.exhausted
    return out


_PARTS = ["a", "b", " ", ",", '"', "\n", "\r\n", "\r", "x", "é", "\ue000"]


@given(
    records=st.lists(
        st.lists(
            st.lists(st.sampled_from(_PARTS), max_size=6).map("".join), min_size=1, max_size=4
        ),
        min_size=0,
        max_size=30,
    ),
    terminator=st.sampled_from(["\n", "\r\n", "\r"]),
    size=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
    count=st.sampled_from([1, 2, 128]),
    strict=st.booleans(),
    raw_tail=st.sampled_from(["", '"open', 'a,"b\nc', "plain"]),
)
@settings(max_examples=300, deadline=None)
def test_rows_whatever_the_chunking(
    records: list[list[str]], terminator: str, size: int, count: int, strict: bool, raw_tail: str
) -> None:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=terminator).writerows(records)
    text = out.getvalue() + raw_tail  # sometimes a record cut short at the very end
    try:
        expected: list[list[str]] | type[csv.Error] = whole(text, strict=strict)
    except csv.Error:
        expected = csv.Error
    try:
        got: list[list[str]] | type[csv.Error] = pushed(text, size, count, strict=strict)
    except Malformed:
        got = csv.Error
    assert got == expected


def test_a_record_running_over_many_pieces_is_parsed_a_few_times() -> None:
    field = "line\n" * 20_000
    text = f'id,body\n1,"{field}"\n2,short\n'
    records = CompleteRecords({}, error)
    out: list[list[str]] = []
    stretches = 0
    original = records._next_stretch

    def counting() -> bool:
        nonlocal stretches
        started = original()
        stretches += started
        return started

    records._next_stretch = counting  # type: ignore[method-assign]
    for at in range(0, len(text), 1000):  # 100 pieces
        records.push(text[at : at + 1000])
        out += records.rows(10)
    records.finish()
    out += records.rows(10)
    assert out == [["id", "body"], ["1", field], ["2", "short"]]
    assert stretches < 20  # doubling, not one parse per piece


def test_no_row_before_its_record_is_complete() -> None:
    records = CompleteRecords({}, error)
    records.push('a,b\n1,"two\n')
    assert records.rows(10) == [["a", "b"]]
    records.push('lines"\n3,x')
    assert records.rows(10) == [["1", "two\nlines"]]
    records.finish()
    assert records.rows(10) == [["3", "x"]] and records.exhausted


def test_errors_name_the_line() -> None:
    records = CompleteRecords({"strict": True}, error)
    records.push('a,b\n1,2\n3,"x"y\n4,5\n')
    with pytest.raises(Malformed, match="line 3: ',' expected"):
        records.rows(10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"delimiter": ";"},
        {"quoting": csv.QUOTE_NONNUMERIC},
        {"quoting": csv.QUOTE_NONE, "escapechar": "\\"},
        {"delimiter": "\ue000"},
        {"quotechar": "'"},
    ],
)
def test_dialects_have_a_probe(kwargs: dict[str, Any]) -> None:
    assert CompleteRecords.usable(kwargs)
    text = "1,2\n3,4\n" if kwargs.get("quoting") == csv.QUOTE_NONNUMERIC else "a;b,c\n'd\ne'\n"
    assert pushed(text, 3, **kwargs) == whole(text, **kwargs)


# -- TextDecoder --------------------------------------------------------------------------


def decoded(data: bytes, size: int, encoding: str | None = None, charset: str | None = None) -> str:
    parts: list[str] = []
    decoder = TextDecoder(encoding, charset, Malformed, lambda: "".join(parts).count("\n"))
    for at in range(0, len(data), size):
        parts += decoder.push(data[at : at + size])
    parts += decoder.finish()
    return "".join(parts)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1 << 20])
def test_decoder_sniffs_gzip_and_boms_in_any_chunking(size: int) -> None:
    text = "id,name\n1,Zoë\n2,日本\n"
    assert decoded(text.encode(), size) == text
    assert decoded(b"\xef\xbb\xbf" + text.encode(), size) == text
    assert decoded(text.encode("utf-16"), size) == text
    assert decoded(text.encode("latin-1", "replace"), size, charset="latin-1") == text.replace(
        "日本", "??"
    )
    assert decoded(gzip.compress(text.encode()) + gzip.compress(b"3,x\n"), size) == text + "3,x\n"
    assert decoded(b"a", size) == "a" and decoded(b"", size) == ""


def test_decoder_errors() -> None:
    with pytest.raises(Malformed, match=r"line 3: bytes that are not valid utf-8"):
        decoded(b"a,b\n1,2\n3,\xff\n", 4)
    with pytest.raises(Malformed, match="truncated"):
        decoded(gzip.compress(b"a,b\n" * 100)[:-10], 7)
    with pytest.raises(Malformed, match="not valid gzip"):
        decoded(b"\x1f\x8b" + b"\x00" * 40, 7)
