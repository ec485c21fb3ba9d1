"""CSV exports: any value, once written and read back, is the same text, and no text cell a
spreadsheet opens starts a formula (OWASP "CSV Injection": =, +, -, @, tab, CR).

The CSV exports come with the reports (``marketing.reports.exports``); until that module is
in the tree there is nothing here to fuzz, and this module says so as a skip.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz import strategies as hs

exports = pytest.importorskip("marketing.reports.exports", reason="no CSV export in the tree yet")

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
cells = st.one_of(
    hs.hostile_text,
    st.sampled_from(["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")', "'=1"]),
    st.builds(lambda start, rest: start + rest, st.sampled_from(FORMULA_START), hs.nasty_text),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
)


def read_back(header: list[str], rows: list[list]) -> list[list[str]]:
    response = exports.csv_response("fuzz.csv", header, rows)
    text = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(text, newline="")))


def expected(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    return "'" + value if value.startswith(FORMULA_START) else value


@given(
    header=st.lists(hs.hostile_text, min_size=1, max_size=4),
    rows=st.lists(st.lists(cells, max_size=6), max_size=6),
)
@example(header=["name"], rows=[["=cmd|' /C calc'!A0"], ["@SUM(1+1)*cmd|' /C calc'!A0"], ["\r\n=1"]])
def test_every_cell_reads_back_as_written_and_no_text_cell_is_a_formula(header, rows):
    header = [h.replace("\x00", "") for h in header]
    rows = [[v.replace("\x00", "") if isinstance(v, str) else v for v in row] for row in rows]
    got = read_back(header, rows)
    assert got[0] == [expected(h) for h in header]
    assert got[1:] == [[expected(v) for v in row] for row in rows]
    for row, values in zip(got[1:], rows, strict=True):
        for cell, value in zip(row, values, strict=True):
            if isinstance(value, str):
                assert not cell.startswith(FORMULA_START)
