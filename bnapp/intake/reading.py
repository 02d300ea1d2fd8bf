"""Reading a user's file into a header and a body of text cells, before any check.

CSV (separator , ; or tab, sniffed; UTF-8 with or without BOM, UTF-16 with BOM, Latin-1 as the
fallback) or XLSX (first non-empty sheet), recognised by content, not by file name. Also the
one-line refusal every intake step raises (DataError) and the helpers that keep user text in
such a line safe.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bnapp.intake.units import STUDY_COLUMNS

_SEPARATORS = ("\t", ";", ",")  # ties go to the rarer separator
_FIELD_HINT = ("check for a stray separator or an unquoted decimal comma (quote such values or "
               "use ; as the separator)")
_LIST_LIMIT = 12  # names shown in a message before "... (N more)"
MB = 1024 * 1024
# Limits on what a file may make bnapp do, so that a small hostile file cannot hold the server
# (every session's) for minutes or take its memory. Sizes in MB, from the environment.
UPLOAD_LIMIT_ENV, UPLOAD_LIMIT_MB = "BNAPP_MAX_UPLOAD_MB", 200  # = server.maxUploadSize
XLSX_LIMIT_ENV, XLSX_LIMIT_MB = "BNAPP_MAX_XLSX_MB", 500  # a workbook's parts, unpacked
EXCEL_MAX_ROWS = 1_048_576  # Excel's own limit
MAX_CELLS = 20_000_000  # rows x columns of a sheet read into memory
_CHUNK = MB
# in a sheet's XML: its namespace prefix, if any (<x:worksheet>); a row's number (r="12"); a
# cell's column (r="AB12"). Plain searches, not an XML parse: a bomb is refused in a second.
_PREFIX = re.compile(rb"<(\w+:)?worksheet\b")
_ROW_NUMBER = re.compile(rb'\sr="(\d+)"')
_CELL_COLUMN = re.compile(rb'\sr="([A-Z]{1,3})\d')


class DataError(ValueError):
    """A refused file or form: str(err) is the one-line message for the user."""


# ---------------------------------------------------------------------------------------- reading

@dataclass
class Table:
    """A file's header and body before any checks; body columns are positions 0..n-1."""

    headers: list[str]
    body: pd.DataFrame
    first_row: int  # spreadsheet row number of the first body row
    notes: list[str] = field(default_factory=list)


def source_label(source, name: str | None) -> str:
    """The name messages use: the one given, else the file's own name."""
    if isinstance(name, str) and name:
        return clean(name)
    if isinstance(source, (str, Path)):
        return clean(Path(source).name or str(source))
    named = getattr(source, "name", None)
    return clean(Path(named).name if isinstance(named, str) and named else "upload")


def read_file(source, name: str) -> Table:
    """The file as a header and body, or DataError."""
    data = _read_source(source, name)
    try:
        return _read_table(data, name)
    except DataError:
        raise
    except Exception as exc:  # pandas, csv, openpyxl and zipfile each fail their own way
        raise DataError(f"{name}: could not be read as a CSV or XLSX table "
                        f"({type(exc).__name__}); save it again as CSV (UTF-8) or XLSX") from exc


def limit_bytes(env: str, default_mb: float) -> int:
    """A size limit: the environment variable's MB if it is a positive number, else default."""
    try:
        mb = float(os.environ.get(env, default_mb))
    except ValueError:
        mb = default_mb
    return int((mb if mb > 0 else default_mb) * MB)


def _refuse_size(name: str, size: int) -> None:
    limit = limit_bytes(UPLOAD_LIMIT_ENV, UPLOAD_LIMIT_MB)
    if size > limit:
        raise DataError(f"{name}: {size / MB:,.1f} MB, more than the upload limit of "
                        f"{limit / MB:,.0f} MB ({UPLOAD_LIMIT_ENV}); split the file or keep "
                        "only the columns the study needs")


def _read_source(source, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        _refuse_size(name, len(source))
        return bytes(source)
    if isinstance(source, (str, Path)):
        try:
            _refuse_size(name, Path(source).stat().st_size)  # before reading it
            return Path(source).read_bytes()
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"{name}: no such file; check the path") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{name}: cannot be opened ({type(exc).__name__}); "
                            "check the path and permissions") from exc
    if hasattr(source, "read"):
        data = source.read(limit_bytes(UPLOAD_LIMIT_ENV, UPLOAD_LIMIT_MB) + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if isinstance(data, (bytes, bytearray, memoryview)):
            _refuse_size(name, len(data))
            return bytes(data)
    raise DataError(f"{name}: give a file path, bytes or an open binary file")


def _read_table(data: bytes, name: str) -> Table:
    if not data.strip():
        raise DataError(f"{name}: the file is empty; export the table again with its header row")
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data, name)
    _refuse_known_binary(data, name)
    return _read_csv(_decode(data, name), name)


def _refuse_known_binary(data: bytes, name: str) -> None:
    signatures = {
        b"\xd0\xcf\x11\xe0": "an old-style .xls workbook (or an encrypted one); save it as .xlsx "
                             "or CSV without a password",
        b"%PDF": "a PDF document; export the table as CSV or XLSX instead",
        b"PK": "a zip archive, not an .xlsx workbook; upload the table itself",
        b"\x1f\x8b": "a gzip archive; unpack it and upload the CSV or XLSX inside",
        b"\x89PNG": "an image; upload the table as CSV or XLSX",
        b"\xff\xd8\xff": "an image; upload the table as CSV or XLSX",
    }
    for magic, what in signatures.items():
        if data.startswith(magic):
            raise DataError(f"{name}: this is {what}")


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")  # never fails: every byte is a character
    sample = text[:8192]
    control = sum(ch < " " and ch not in "\t\r\n" for ch in sample)
    if "\x00" in sample or control > 0.01 * len(sample):
        raise DataError(f"{name}: this is a binary file, not a table; upload a CSV or XLSX file")
    return text


def _read_csv(text: str, name: str) -> Table:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    stripped = text.lstrip("\n")
    leading = len(text) - len(stripped)  # blank lines before the header are rows too
    head = stripped.lstrip()
    if head.startswith("<"):
        raise DataError(f"{name}: this is an HTML or XML page, not a table; "
                        "save the table as CSV or XLSX")
    if head.startswith("{") or (head.startswith("[") and _is_json(head)):
        raise DataError(f"{name}: this is JSON, not a table; save the table as CSV or XLSX")
    sep = _sniff(stripped, name)
    headers = next(csv.reader(io.StringIO(stripped), delimiter=sep))
    try:
        with warnings.catch_warnings():
            # pandas warns, and truncates, when the first data row is longer than the header
            warnings.simplefilter("error", pd.errors.ParserWarning)
            body = pd.read_csv(io.StringIO(stripped), sep=sep, header=0, index_col=False,
                               names=range(len(headers)), skip_blank_lines=False,
                               low_memory=False, quotechar='"')
    except pd.errors.ParserWarning as exc:
        raise DataError(f"{name}: row {leading + 2} has more fields than the header "
                        f"({len(headers)}); {_FIELD_HINT}") from exc
    except pd.errors.ParserError as exc:
        raise DataError(_parser_message(str(exc), name, len(headers), leading)) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: the file is empty; export the table again") from exc
    notes = [] if sep == "," else [f"columns separated by {'tab' if sep == chr(9) else sep}"]
    return Table(headers, body, first_row=leading + 2, notes=notes)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _sniff(text: str, name: str) -> str:
    """The separator that splits the header into most columns and the rows consistently."""
    lines = text[:65536].split("\n")[:50]
    best, best_score = None, (0.0, 1)
    for sep in _SEPARATORS:
        try:
            widths = [len(r) for r in csv.reader(lines, delimiter=sep) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = sep, score
    if best is None:
        raise DataError(f"{name}: not a table: the first line has no comma, semicolon or tab "
                        "between column names; the file needs a header row such as "
                        f"{','.join(STUDY_COLUMNS)}")
    return best


def _parser_message(message: str, name: str, n_headers: int, leading: int) -> str:
    found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", message)
    if found:
        line, saw = int(found.group(1)) + leading, int(found.group(2))
        return f"{name}: row {line} has {saw} fields but the header has {n_headers}; {_FIELD_HINT}"
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return f"{name}: not a readable CSV table ({clean(first)[:120]}); check quotes and separators"


def check_workbook(data: bytes, name: str) -> None:
    """Refuse a workbook before parsing it when it would unpack past the XLSX limit (the sizes
    its zip directory declares, which zipfile never reads past) or a sheet holds more rows than
    Excel's limit or more cells than MAX_CELLS (counted in its XML, streamed, up to the limit)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
            unpacked = sum(p.file_size for p in parts)
            limit = limit_bytes(XLSX_LIMIT_ENV, XLSX_LIMIT_MB)
            if unpacked > limit:
                raise DataError(f"{name}: the workbook unpacks to {unpacked / MB:,.1f} MB, more "
                                f"than the limit of {limit / MB:,.0f} MB ({XLSX_LIMIT_ENV}); "
                                "save the table as CSV")
            for part in parts:
                if part.filename.startswith("xl/worksheets/") and part.filename.endswith(".xml"):
                    with archive.open(part) as sheet:
                        _check_sheet(sheet, name)
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{name}: a zip archive but not a readable .xlsx workbook "
                        f"({type(exc).__name__}); open it in a spreadsheet and save as .xlsx "
                        "or CSV") from exc


def _check_sheet(sheet, name: str) -> None:
    """Count a sheet's rows (tags and their numbers) and columns chunk by chunk; refuse it as
    soon as it passes a limit."""
    from openpyxl.utils import column_index_from_string

    rows = last_row = width = 0
    tail, row_tag = b"", None
    while chunk := sheet.read(_CHUNK):
        text = tail + chunk
        cut = text.rfind(b"<")  # a tag split between chunks is read with the next one
        cut = cut if cut > text.rfind(b">") else len(text)
        text, tail = text[:cut], text[cut:]
        if row_tag is None:
            found = _PREFIX.search(text)
            row_tag = b"<" + (found.group(1) or b"" if found else b"") + b"row"
        rows += text.count(row_tag)
        last_row = max([last_row, *map(int, _ROW_NUMBER.findall(text))])
        width = max([width, *(column_index_from_string(c.decode())
                              for c in set(_CELL_COLUMN.findall(text)))])
        height = max(rows, last_row)
        if height > EXCEL_MAX_ROWS:
            raise DataError(f"{name}: a sheet has more than {EXCEL_MAX_ROWS:,} rows, Excel's "
                            "limit; save the table as CSV")
        if height * width > MAX_CELLS:
            raise DataError(f"{name}: a sheet spans more than {MAX_CELLS:,} cells ({height:,} "
                            f"rows by {width:,} columns); delete the unused columns and save "
                            "it again")


def _read_xlsx(data: bytes, name: str) -> Table:
    import openpyxl  # only needed for workbooks
    from openpyxl.utils.exceptions import InvalidFileException

    check_workbook(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about features it skips
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise DataError(f"{name}: a zip archive but not a readable .xlsx workbook "
                        f"({type(exc).__name__}); open it in a spreadsheet and save as .xlsx "
                        "or CSV") from exc
    try:
        for sheet in book.worksheets:
            sheet.reset_dimensions()  # stored sizes can claim 16384 columns: read cells as found
            rows = [tuple(_cell_text(v) for v in row) for row in sheet.iter_rows(values_only=True)]
            start = next((i for i, r in enumerate(rows) if any(v is not None for v in r)), None)
            if start is not None:
                break
        else:
            raise DataError(f"{name}: the workbook has no filled cells; "
                            "put the table with its header row in the first sheet")
    finally:
        book.close()
    width = max(len(r) for r in rows[start:])
    padded = [r + (None,) * (width - len(r)) for r in rows[start:]]
    headers = ["" if v is None else v for v in padded[0]]
    body = pd.DataFrame(padded[1:], columns=range(width), dtype=object)
    notes = [f"read sheet {quote(sheet.title)}"] if len(book.worksheets) > 1 else []
    return Table(headers, body, first_row=start + 2, notes=notes)


def _cell_text(value) -> str | None:
    """Workbook cells as the text a CSV would hold, so both go through the same checks."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ----------------------------------------------------------------------------------------- text

def clean(text: str) -> str:
    """User text made safe for a one-line message: control and line-break characters replaced."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", "?", text)


def quote(text: str, limit: int = 40) -> str:
    text = clean(str(text))
    return "'" + (text if len(text) <= limit else text[:limit - 1] + "…") + "'"


def names_text(names) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(quote(n) for n in names[:_LIST_LIMIT])
    more = len(names) - _LIST_LIMIT
    return shown + (f" … ({more} more)" if more > 0 else "") if names else "no columns"
