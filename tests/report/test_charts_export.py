"""Exports: formula injection neutralized for text only, sanitized names, a ZIP whose every member
is valid, and an HTML report that is self-contained and shows hostile text only as text."""

from __future__ import annotations

import base64
import csv
import io
import re
import string
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from html.parser import HTMLParser

import altair as alt
import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bnapp.report.cells import FORMULA_PREFIXES, safe_table, table_csv
from bnapp.report.export import (
    chart_png,
    chart_svg,
    export_zip,
    html_report,
    safe_filename,
    table_xlsx,
)

XSS = "<img src=x onerror=alert(1)>"
MD = "[x](javascript:alert(1))"
SCRIPT = "<script>alert(1)</script>"
PAYLOADS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1", "  =HYPERLINK(1)"]


def risky(s: str) -> bool:
    """The rule the exports promise, written independently of the implementation."""
    return s[:1] in ("=", "+", "-", "@", "\t", "\r") or s.lstrip()[:1] in ("=", "+", "-", "@")


def expected_cell(s: str) -> str:
    """What a text cell becomes: control characters (but tab, LF, CR) dropped, then a risky
    start neutralized unless the text is a plain number."""
    kept = "".join(ch for ch in s if ch in "\t\n\r" or not unicodedata.category(ch) == "Cc")
    return "'" + kept if risky(kept) and not plain_number(kept) else kept


def plain_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s == s.strip() and "_" not in s and not any(w in s.lower() for w in ("inf", "nan"))


def small_chart(title: str = "figure") -> alt.Chart:
    data = pd.DataFrame({"x": [1, 2, 3], "y": [2.0, 1.0, 3.0], "label": [XSS, MD, "ok"]})
    return alt.Chart(data, title=title).mark_point().encode(x="x:Q", y="y:Q", color="label:N")


def hostile_table() -> pd.DataFrame:
    return pd.DataFrame({
        XSS: PAYLOADS,
        "=cmd": [-1.5, 2.0, -3.0, 4.0, 5.0, -6.0, 7.0],
        "n": np.arange(-3, 4),
        "flag": [True, False] * 3 + [True],
        "unit": pd.Categorical(["=a", "b", "-c", "d", "e", "f", "g"]),
    })


text_cells = st.one_of(st.text(max_size=12), st.sampled_from(PAYLOADS), st.none())


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(text_cells, min_size=1, max_size=8),
       numbers=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
       name=st.text(max_size=10))
def test_safe_table_neutralizes_text_not_numbers(texts, numbers, name):
    n = min(len(texts), len(numbers))
    df = pd.DataFrame({"text": pd.Series(texts[:n], dtype=object), "number": numbers[:n],
                       name + "x": np.arange(n) - 2})
    out = safe_table(df)
    for before, after in zip(df["text"], out["text"], strict=True):
        if isinstance(before, str):
            assert after == expected_cell(before)
        elif before is None:
            assert pd.isna(after)  # a missing cell stays missing
        else:
            assert after == before
    pd.testing.assert_series_equal(out["number"], df["number"])  # negatives untouched
    assert out.iloc[:, 2].tolist() == (np.arange(n) - 2).tolist()
    assert list(out.columns)[:2] == ["text", "number"]
    col = name + "x"
    assert list(out.columns)[2] == expected_cell(col)
    assert df["text"].tolist() == texts[:n]  # the input is not modified


def test_csv_is_utf8_with_bom_and_neutralized():
    raw = table_csv(hostile_table())
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig", keep_default_na=False)
    assert back.columns[0] == XSS and back.columns[1] == "'=cmd"
    for cell in back.iloc[:, 0]:
        assert cell.startswith("'")  # every payload was risky
    assert back["'=cmd"].tolist() == [-1.5, 2.0, -3.0, 4.0, 5.0, -6.0, 7.0]  # still numbers
    assert back["unit"].tolist()[:3] == ["'=a", "b", "'-c"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=10), st.sampled_from(PAYLOADS)), min_size=1,
                max_size=6))
def test_csv_rows_never_split_and_no_cell_starts_a_formula(texts):
    raw = table_csv(pd.DataFrame({"text": texts, "n": range(len(texts))}))
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == len(texts) + 1 and all(len(r) == 2 for r in rows)
    for row, original in zip(rows[1:], texts, strict=True):
        assert not risky(row[0])
        assert row[0] == expected_cell(original)


def test_xlsx_has_text_not_formulas_and_numbers_stay_numbers():
    raw = table_xlsx({"results": hostile_table(), "a/b:c*?[d]" * 5: pd.DataFrame({"v": [1]}),
                      "RESULTS": pd.DataFrame({"w": [2]})})
    book = openpyxl.load_workbook(io.BytesIO(raw))
    assert book.sheetnames[0] == "results"
    for sheet_name in book.sheetnames:
        assert len(sheet_name) <= 31 and not set(sheet_name) & set("[]:*?/\\")
    assert len({s.lower() for s in book.sheetnames}) == 3
    sheet = book["results"]
    header = [c.value for c in sheet[1]]
    assert header[:2] == [XSS, "'=cmd"]
    for row in sheet.iter_rows(min_row=2):
        assert row[0].data_type == "s" and row[0].value.startswith("'")
        assert row[1].data_type == "n"
        assert row[2].data_type == "n"
    assert [r[1].value for r in sheet.iter_rows(min_row=2)][:3] == [-1.5, 2.0, -3.0]


def test_xlsx_survives_control_characters():
    raw = table_xlsx(pd.DataFrame({"a\x01": ["bell\x07", "ok"]}))
    sheet = openpyxl.load_workbook(io.BytesIO(raw)).active
    assert [c.value for c in sheet["A"]] == ["a", "bell", "ok"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_safe_filename(s):
    name = safe_filename(s)
    assert name and len(name) <= 80
    assert name.isascii()
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)
    assert not name.endswith(".")
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
    assert safe_filename(name) == name  # idempotent


@pytest.mark.parametrize("raw, expected", [
    ("../../etc/passwd", "etc_passwd"), (".hidden", "hidden"), ("CON", "file_CON"),
    ("Urée élevée.csv", "Uree_elevee.csv"), ("", "export"), ("///", "export"),
    ("a\\b/c", "a_b_c"), ("x" * 500, "x" * 80),
])
def test_safe_filename_examples(raw, expected):
    assert safe_filename(raw) == expected


def test_chart_png_and_svg_refuse_remote_data():
    remote = alt.Chart(alt.UrlData("https://example.com/data.csv")).mark_point().encode(x="a:Q")
    with pytest.raises(ValueError, match="not allowed"):
        chart_png(remote)
    with pytest.raises(ValueError, match="not allowed"):
        chart_svg(remote)


def test_export_zip_members_are_valid():
    figures = {"../evil/γ scatter": small_chart(), "γ scatter": small_chart("second")}
    tables = {"sensitivity": hostile_table(), "..\\params": pd.DataFrame({"a": [1.0]})}
    archive = zipfile.ZipFile(io.BytesIO(export_zip(figures, tables)))
    names = sorted(archive.namelist())
    assert names == sorted([
        "figures/evil_scatter.png", "figures/evil_scatter.svg",
        "figures/scatter.png", "figures/scatter.svg",
        "tables/sensitivity.csv", "tables/sensitivity.xlsx",
        "tables/params.csv", "tables/params.xlsx",
    ])
    assert archive.testzip() is None
    for name in names:
        data = archive.read(name)
        if name.endswith(".png"):
            Image.open(io.BytesIO(data)).verify()
        elif name.endswith(".svg"):
            assert ET.fromstring(data).tag.endswith("svg")
        elif name.endswith(".csv"):
            assert data.startswith(b"\xef\xbb\xbf") and len(pd.read_csv(io.BytesIO(data))) >= 1
        else:
            assert openpyxl.load_workbook(io.BytesIO(data)).active.max_row >= 2


def test_export_zip_deduplicates_names():
    archive = zipfile.ZipFile(io.BytesIO(export_zip({}, {"a/b": pd.DataFrame({"v": [1]}),
                                                          "a_b": pd.DataFrame({"v": [2]})})))
    assert sorted(archive.namelist()) == ["tables/a_b-2.csv", "tables/a_b-2.xlsx",
                                          "tables/a_b.csv", "tables/a_b.xlsx"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_self_contained_and_inert():
    table = hostile_table()
    table[SCRIPT] = [MD] * len(table)
    report = html_report(
        f"Run on {XSS}",
        summary={"data set": XSS, MD: "129 rows read, 109 usable", "file": SCRIPT},
        figures={XSS: small_chart(XSS), "architecture": small_chart()},
        tables={MD: table, "long": pd.DataFrame({"v": np.arange(1200.0)})},
        settings=pd.DataFrame({"setting": ["Validation", "Inputs", "note"],
                               "value": ["10-fold cross-validation (seed 3)", f"{XSS}, Upos",
                                         SCRIPT]}),
        max_rows=100,
    )
    parser = _Tags()
    parser.feed(report)
    tags = {t for t, _ in parser.tags}
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "dl",
                    "dt", "dd", "figure", "img", "figcaption", "div", "table", "thead", "tbody",
                    "tr", "th", "td"}
    assert [a for t, a in parser.tags if t == "img"] and all(
        a["src"].startswith("data:image/svg+xml;base64,") for t, a in parser.tags if t == "img")
    for _, attrs in parser.tags:
        assert not [k for k in attrs if k.startswith("on") or k in ("href", "action")]
    csp = next(a["content"] for t, a in parser.tags if t == "meta" and "content" in a
               and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    assert "<img src=x" not in report and "<script" not in report
    assert "&lt;img src=x onerror=alert(1)&gt;" in report
    text = "".join(parser.text)
    assert XSS in text and MD in text and SCRIPT in text  # shown, as text
    no_data_uris = re.sub(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+", "", report)
    for remote in ("http:", "https:", "//", "url(", "@import"):
        assert remote not in no_data_uris
    assert "First 100 of 1,200 rows" in report
    assert f"Inputs{XSS}, Upos" in text  # the settings as readable rows
    # the embedded figures are the charts' SVGs, valid, escaped inside
    for _, attrs in parser.tags:
        if "src" in attrs:
            svg = base64.b64decode(attrs["src"].split(",", 1)[1])
            root = ET.fromstring(svg)
            assert not {el.tag.split("}")[-1] for el in root.iter()} & {"script", "foreignObject"}


def test_formula_prefixes_cover_the_owasp_list():
    assert set("=+-@\t\r") <= set(FORMULA_PREFIXES)
    assert not set(FORMULA_PREFIXES) & set(string.ascii_letters + string.digits)
