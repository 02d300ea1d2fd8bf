"""Tables as spreadsheets open them safely: text cells that cannot run as formulas, and the CSV
bytes every writer of bnapp uses (the pages' downloads, the export ZIP, the command line's files).

pandas only: the command line writes its CSV files without loading the chart libraries.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# C0 and C1 controls and DEL, but tab, line feed and CR (a cell may hold lines; tab and CR are
# formula starts, neutralized instead): what XML cannot store and what a spreadsheet drops
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # what a spreadsheet reads as one


def safe_cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs: control characters stripped first (a
    spreadsheet or XML drops them, which would unmask a formula behind one), then text that
    starts like a formula (=, +, -, @, tab or CR; =, +, -, @ after leading spaces) prefixed with
    an apostrophe (OWASP's advice). Text that is a plain number ("-1.5") and values that are not
    text are returned as they are."""
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub("", value)
    if _NUMBER.fullmatch(text) or not (text.startswith(FORMULA_PREFIXES)
                                       or text.lstrip().startswith(FORMULA_PREFIXES[:4])):
        return text
    return "'" + text


def safe_table(df: pd.DataFrame) -> pd.DataFrame:
    """A copy safe to open in a spreadsheet: safe_cell on every text cell and column name.

    Numeric, boolean and date columns are untouched; a non-default index becomes columns.
    """
    out = df.copy() if isinstance(df.index, pd.RangeIndex) else df.reset_index()
    for col in out.columns:
        dtype = out[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
                or pd.api.types.is_datetime64_any_dtype(dtype)):
            out[col] = out[col].astype(object).map(safe_cell)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out


def table_csv(df: pd.DataFrame) -> bytes:
    """CSV as UTF-8 with a byte-order mark (so Excel reads accents and μ right), no index.

    CRLF line ends (RFC 4180) also make the csv module quote a cell holding a lone CR, which
    a spreadsheet would otherwise read as a new row starting with the rest of the cell.
    """
    return safe_table(df).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """table_csv(df) without its index (as DataFrame.to_csv(index=False) writes) in path: how
    the command line writes every CSV file."""
    path = Path(path)
    path.write_bytes(table_csv(df.reset_index(drop=True)))
    return path
