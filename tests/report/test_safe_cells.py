"""Issue 28: hostile text (control characters, formula starts) through every spreadsheet writer
- the pages' CSV and XLSX downloads, the export ZIP, the command line's CSV files - never gives a
cell a spreadsheet would evaluate, and numbers stay numbers."""

from __future__ import annotations

import ast
import csv
import io
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnapp.report.cells import safe_cell, table_csv, write_csv
from bnapp.report.export import export_zip, table_xlsx
from tests.report.test_charts_export import expected_cell, plain_number, risky

REPO = Path(__file__).resolve().parents[2]
PIECES = ["=", "+", "-", "@", "\t", "\r", "\n", " ", "\x00", "\x01", "\x1b", "\x7f", "\x85",
          "\x9f", "1", ".5", "e3", "A", "HYPERLINK(\"http://x\")", "cmd|' /C calc'!A0", "SUM(A1)"]
hostile = st.one_of(st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
                    st.text(max_size=8))


def csv_cells(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def xlsx_cells(raw: bytes) -> list[list[openpyxl.cell.Cell]]:
    book = openpyxl.load_workbook(io.BytesIO(raw))
    return [list(row) for sheet in book.worksheets for row in sheet.iter_rows()]


def frame(texts: list[str], name: str) -> pd.DataFrame:
    return pd.DataFrame({name or "x": texts, "n": [-1.5 * i for i in range(len(texts))]})


def check_csv(raw: bytes, texts: list[str], name: str) -> None:
    rows = csv_cells(raw)
    assert len(rows) == len(texts) + 1 and all(len(r) == 2 for r in rows), "no row split"
    assert rows[0][0] == expected_cell(name or "x")
    for row, text in zip(rows[1:], texts, strict=True):
        assert row[0] == expected_cell(text)
        assert not (risky(row[0]) and not plain_number(row[0]))
        assert float(row[1]) <= 0  # negative numbers stay numbers, unquoted


def as_xml(text: str) -> str:
    """The text an XML reader gives back: line ends normalized to LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_xlsx(raw: bytes, texts: list[str], name: str) -> None:
    rows = xlsx_cells(raw)
    assert all(cell.data_type != "f" for row in rows for cell in row), "no formula cell"
    header, *body = rows
    assert (header[0].value or "") == as_xml(expected_cell(name or "x"))
    for row, text in zip(body, texts, strict=True):
        assert (row[0].value or "") == as_xml(expected_cell(text))  # "" reads back as None
        assert row[1].data_type == "n"


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(hostile, min_size=1, max_size=5), name=hostile)
def test_page_downloads_hold_no_live_formula(texts, name):
    check_csv(table_csv(frame(texts, name)), texts, name)
    check_xlsx(table_xlsx({"t": frame(texts, name)}), texts, name)


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(hostile, min_size=1, max_size=5), name=hostile)
def test_the_export_zip_holds_no_live_formula(texts, name):
    with zipfile.ZipFile(io.BytesIO(export_zip({}, {"groups": frame(texts, name)}))) as z:
        check_csv(z.read("tables/groups.csv"), texts, name)
        check_xlsx(z.read("tables/groups.xlsx"), texts, name)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(hostile, min_size=1, max_size=5), name=hostile)
def test_command_line_csv_files_hold_no_live_formula(texts, name, tmp_path):
    # a filtered table (index 1, 3, ...) is written without its index, as to_csv(index=False)
    table = frame(texts, name).set_axis(range(1, 2 * len(texts), 2))
    check_csv(write_csv(table, tmp_path / "groups.csv").read_bytes(), texts, name)


def test_the_reported_payload_is_text_in_every_writer(tmp_path):
    """Issue 28, item 1: a control character before the formula used to survive neutralizing
    and be dropped afterwards, leaving a live HYPERLINK in the XLSX."""
    payload = '\x01=HYPERLINK("http://evil.example","click")'
    assert safe_cell(payload) == "'" + payload[1:]
    table = pd.DataFrame({"unit": [payload, "-2", "-2+3"], "rmse": [1.0, -2.0, 3.0]})
    expected = ["'" + payload[1:], "-2", "'-2+3"]  # "-2" is a number, "-2+3" a formula
    assert [r[0].value for r in xlsx_cells(table_xlsx(table))[1:]] == expected
    assert [r[0] for r in csv_cells(write_csv(table, tmp_path / "t.csv").read_bytes())[1:]] == (
        expected)


def test_the_command_line_writes_csv_only_through_write_csv():
    """No DataFrame.to_csv in bnapp/cli: every CSV it writes goes through write_csv."""
    for path in sorted((REPO / "bnapp" / "cli").glob("*.py")):
        calls = [node.func.attr for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
        unsafe = set(calls) & {"to_csv", "to_excel"}
        assert path.name == "synth.py" or not unsafe, f"{path.name}: {unsafe}"
