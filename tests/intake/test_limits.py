"""Issue 28: limits on what a file may make bnapp do. A workbook bomb (a small XLSX whose sheet
unpacks past the XLSX limit, or past Excel's row limit) and a CSV past the upload limit are
refused with one line naming the limit, before any parsing and within 200 MB."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile

import openpyxl
import pytest

from bnapp.cli import main
from bnapp.intake import reading
from bnapp.intake.data import DataError, load_dataset

SHEET = "xl/worksheets/sheet1.xml"
HEAD = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats'
        b'.org/spreadsheetml/2006/main"><sheetData>')
TAIL = b"</sheetData></worksheet>"
ROW = b"<row><c><v>1</v></c></row>"
PEAK_BYTES = 200 * 1024 * 1024


def workbook(sheet_rows) -> bytes:
    """A real workbook whose first sheet is HEAD + the byte blocks of sheet_rows + TAIL,
    written as a stream (a bomb never sits in memory whole)."""
    plain = io.BytesIO()
    openpyxl.Workbook().save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != SHEET:
                dst.writestr(item, src.read(item))
        with dst.open(SHEET, "w", force_zip64=True) as sheet:
            sheet.write(HEAD)
            for block in sheet_rows:
                sheet.write(block)
            sheet.write(TAIL)
    return out.getvalue()


def past_the_row_limit() -> bytes:
    """1,048,586 identical rows: 27 MB of XML in a zip of tens of kB."""
    block = ROW * 10_000
    return workbook(block for _ in range(reading.EXCEL_MAX_ROWS // 10_000 + 1))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return past_the_row_limit()


def refusal(data: bytes, name: str = "bomb.xlsx") -> str:
    """The one-line refusal of load_dataset, which must come before openpyxl parses anything,
    and within PEAK_BYTES of Python allocations."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataError) as err:
            load_dataset(data, name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"refused in {time.perf_counter() - started:.2f} s, peak {peak / 2**20:.0f} MB")
    assert peak < PEAK_BYTES
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{name}: ")
    return message


@pytest.fixture(autouse=True)
def _never_parsed(monkeypatch):
    """A refused workbook never reaches openpyxl's parser."""
    def refuse(*args, **kwargs):
        raise AssertionError("openpyxl parsed a workbook that should have been refused")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)


def test_a_bomb_past_the_row_limit_is_refused_before_parsing(bomb):
    assert len(bomb) < 1024 * 1024, "highly compressed"
    with zipfile.ZipFile(io.BytesIO(bomb)) as z:
        assert z.getinfo(SHEET).file_size > 25 * 1024 * 1024
    assert "more than 1,048,576 rows, Excel's limit" in refusal(bomb)


def test_a_row_numbered_past_the_limit_is_refused():
    """One row numbered 2,000,000: openpyxl would make the 1,999,999 empty rows before it."""
    data = workbook([b'<row r="2000000"><c r="A2000000"><v>1</v></c></row>'])
    assert "more than 1,048,576 rows" in refusal(data)


def test_a_sheet_spanning_too_many_cells_is_refused():
    """A cell in the last column, XFD: every row read would be 16,384 cells wide."""
    data = workbook([b"".join(b'<row r="%d"><c r="XFD%d"><v>1</v></c></row>' % (i, i)
                              for i in range(1, 2_000))])
    message = refusal(data)
    assert "more than 20,000,000 cells" in message and "16,384 columns" in message


def test_a_workbook_unpacking_past_the_limit_is_refused_by_its_directory(monkeypatch):
    monkeypatch.setenv(reading.XLSX_LIMIT_ENV, "2")  # MB: the limit is configurable
    data = workbook([ROW * 100_000])  # 2.6 MB of XML
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sum(i.file_size for i in z.infolist()) > 2 * 1024 * 1024
    scanned = []
    monkeypatch.setattr(reading, "_check_sheet", lambda *args: scanned.append(args))
    message = refusal(data)
    assert "unpacks to 2.5 MB, more than the limit of 2 MB (BNAPP_MAX_XLSX_MB)" in message
    assert scanned == [], "refused from the zip's directory, before reading a sheet"


def test_a_csv_past_the_upload_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv(reading.UPLOAD_LIMIT_ENV, "1")
    path = tmp_path / "big.csv"
    path.write_bytes(b"Upre,Ueq\n" + b"100,50\n" * 200_000)  # 1.3 MB
    message = refusal(path, "big.csv")
    assert "1.3 MB, more than the upload limit of 1 MB (BNAPP_MAX_UPLOAD_MB)" in message
    assert "upload limit" in refusal(path.read_bytes(), "big.csv")
    with path.open("rb") as handle:
        assert "upload limit" in refusal(handle, "big.csv")


def test_a_workbook_within_the_limits_is_read(monkeypatch):
    monkeypatch.undo()  # openpyxl parses this one
    header = b'<row><c t="inlineStr"><is><t>Upre</t></is></c></row>'
    data = workbook([header, *(b"<row><c><v>%d</v></c></row>" % i for i in range(5))])
    table = reading.read_file(data, "ok.xlsx")
    assert table.headers == ["Upre"] and len(table.body) == 5


def test_validate_refuses_the_bomb_in_one_line(bomb, tmp_path, capsys):
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(bomb)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bomb.xlsx: ") and err.count("\n") == 1
    assert "Excel's limit" in err
