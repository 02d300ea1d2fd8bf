"""Data intake: a corpus of awkward and broken files, each with its expected outcome, and the API."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from bnapp.intake import data
from bnapp.intake.data import (
    STUDY_COLUMNS,
    STUDY_INPUTS,
    DataError,
    Dataset,
    dropped_summary,
    load_dataset,
    parse_mapping,
    parse_patient,
    report_text,
    require_rows,
    rows_needed,
)
from bnapp.intake.units import UREA_FACTORS

# 12 valid sessions: Upre, U120, Upos, PP, UF, Ueq (Ueq > Upos, all inside the plausible ranges)
ROWS = [(150 + 5 * i, 80 + 3 * i, 50 + 2 * i, 60 + 1.5 * i, 1 + 0.25 * i, 55 + 2 * i)
        for i in range(12)]


def fmt(value, decimal: str = ".") -> str:
    return f"{value:g}".replace(".", decimal) if isinstance(value, float | int) else str(value)


def csv_bytes(rows=ROWS, header=STUDY_COLUMNS, *, sep=",", decimal=".", eol="\n",
              quote=False, encoding="utf-8", tail="") -> bytes:
    def line(cells):
        texts = [fmt(c, decimal) for c in cells]
        return sep.join(f'"{t}"' if quote else t for t in texts)

    text = eol.join([line(header)] + [line(r) for r in rows]) + eol + tail
    return text.encode(encoding)


def xlsx_bytes(rows=ROWS, header=STUDY_COLUMNS, *, empty_first_sheet=False, top_blank=0) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    if empty_first_sheet:
        sheet.title = "notes"
        sheet = book.create_sheet("sessions")
    for _ in range(top_blank):
        sheet.append([None])
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def with_cell(row: int, column: str, value, rows=ROWS) -> list[tuple]:
    out = [list(r) for r in rows]
    out[row][STUDY_COLUMNS.index(column)] = value
    return [tuple(r) for r in out]


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("Urea.csv", csv_bytes())
    return buf.getvalue()


REORDERED = ["Ueq", "UF", "Upre", "PP", "Upos", "U120"]
ALIASES = ["urea_pre", "urea 120", "post urea", "weight", "UF volume", "equilibrated urea"]
BUN = ["BUN pre", "BUN 120", "BUN post", "pre weight", "UF", "BUN eq"]
MMOL = ["Upre (mmol/L)", "U120 (mmol/L)", "Upos (mmol/L)", "PP (kg)", "UF (L)", "Ueq (mmol/L)"]
MGDL = ["Upre (mg/dL)", "U120 [mg/dL]", "Upos mg/dL", "Weight (kg)", "UF (L)", "Ueq (mg/dL)"]


def _scaled(factor: float) -> list[tuple]:
    """ROWS with urea columns divided by factor (so the file holds BUN or mmol/L)."""
    return [tuple(round(v / factor, 4) if STUDY_COLUMNS[j] in ("Upre", "U120", "Upos", "Ueq")
                  else v for j, v in enumerate(r)) for r in ROWS]


def _reorder(header):
    return [tuple(r[STUDY_COLUMNS.index(c)] for c in header) for r in ROWS]


# (name, file bytes, expected: number of usable rows, or a substring of the refusal)
CORPUS = [
    ("plain comma", csv_bytes(), 12),
    ("semicolon with decimal commas", csv_bytes(sep=";", decimal=","), 12),
    ("tab separated", csv_bytes(sep="\t"), 12),
    ("tab with decimal commas", csv_bytes(sep="\t", decimal=","), 12),
    ("utf-8 with BOM", b"\xef\xbb\xbf" + csv_bytes(), 12),
    ("utf-16 with BOM", csv_bytes(encoding="utf-16"), 12),
    ("latin-1 extra column", csv_bytes([r + ("Año",) for r in ROWS], [*STUDY_COLUMNS, "Código"],
                                       encoding="latin-1"), 12),
    ("CRLF line ends", csv_bytes(eol="\r\n"), 12),
    ("old Mac CR line ends", csv_bytes(eol="\r"), 12),
    ("every field quoted", csv_bytes(quote=True), 12),
    ("quoted decimal commas in a comma file", csv_bytes(quote=True, decimal=","), 12),
    ("trailing empty lines", csv_bytes(tail="\n\n\n"), 12),
    ("trailing separator-only rows", csv_bytes(tail=",,,,,\n,,,,,\n"), 12),
    ("whitespace-only trailing rows", csv_bytes(tail="   \n\t\n"), 12),
    ("blank line in the middle", csv_bytes(ROWS[:5]) + b"\n" + csv_bytes(ROWS[5:]).split(b"\n", 1)[1],
     12),
    ("leading blank lines", b"\n\n" + csv_bytes(), 12),
    ("columns in another order", csv_bytes(_reorder(REORDERED), REORDERED), 12),
    ("header with spaces and odd case", csv_bytes(header=["  upre ", "U120 ", "UPOS", " pp", "Uf",
                                                          "ueq"]), 12),
    ("aliases", csv_bytes(header=ALIASES), 12),
    ("BUN columns", csv_bytes(_scaled(UREA_FACTORS["BUN"]), BUN), 12),
    ("mmol/L named in the header", csv_bytes(_scaled(UREA_FACTORS["mmol/L"]), MMOL), 12),
    ("mg/dL, kg and L in the header", csv_bytes(header=MGDL), 12),
    ("extra columns", csv_bytes([r + (i, "note") for i, r in enumerate(ROWS)],
                                [*STUDY_COLUMNS, "centro", "comment"]), 12),
    ("trailing separator on every line", csv_bytes([(*r, "") for r in ROWS], [*STUDY_COLUMNS, ""]),
     12),
    ("spaces around numbers", csv_bytes([tuple(f" {fmt(v)} " for v in r) for r in ROWS]), 12),
    ("one empty cell", csv_bytes(with_cell(3, "U120", "")), 11),
    ("one text cell", csv_bytes(with_cell(3, "Upre", "abc")), 11),
    ("NA marker", csv_bytes(with_cell(3, "PP", "NA")), 11),
    ("infinity", csv_bytes(with_cell(3, "Ueq", "inf")), 11),
    ("negative UF", csv_bytes(with_cell(3, "UF", -0.5)), 11),
    ("zero weight", csv_bytes(with_cell(3, "PP", 0)), 11),
    ("implausible urea", csv_bytes(with_cell(3, "Upre", 4000)), 11),
    ("implausible weight", csv_bytes(with_cell(3, "PP", 700)), 11),
    ("UF in millilitres in one row", csv_bytes(with_cell(3, "UF", 2500)), 11),
    ("Ueq below Upos", csv_bytes(with_cell(3, "Ueq", 20)), 11),
    ("two problems in one row", csv_bytes(with_cell(3, "UF", "x", with_cell(3, "PP", ""))), 11),
    ("thousands separator is not guessed", csv_bytes(with_cell(3, "Upre", "1.234,5"), sep=";"), 11),
    ("short row", csv_bytes() + b"150,80,50\n", 12),
    ("xlsx", xlsx_bytes(), 12),
    ("xlsx, data on the second sheet", xlsx_bytes(empty_first_sheet=True), 12),
    ("xlsx with blank rows above the header", xlsx_bytes(top_blank=2), 12),
    ("xlsx with text cells", xlsx_bytes(with_cell(2, "UF", "2,5", with_cell(3, "Upre", "n/a"))),
     11),
    # whole-file refusals
    ("empty file", b"", "empty"),
    ("only whitespace", b" \n\r\n\t", "empty"),
    ("HTML page", b"<!DOCTYPE html><html><body><table><tr><td>1</td></tr></table></body></html>",
     "HTML"),
    ("JSON object", b'{"Upre": [1, 2], "Ueq": [3, 4]}', "JSON"),
    ("JSON array", b'[{"Upre": 1}, {"Upre": 2}]', "JSON"),
    ("PDF", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
    ("zip that is not xlsx", zip_bytes(), "not a readable .xlsx"),
    ("corrupt xlsx", xlsx_bytes()[:300], "xlsx"),
    ("old xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), ".xls"),
    ("gzip", b"\x1f\x8b\x08\x00" + bytes(50), "gzip"),
    ("PNG image", b"\x89PNG\r\n\x1a\n" + bytes(50), "image"),
    ("binary with NUL bytes", bytes(range(256)) * 4, "binary"),
    ("header only", csv_bytes([]), "no data rows"),
    ("header and empty rows", csv_bytes([], tail=",,,,,\n\n"), "no data rows"),
    ("xlsx header only", xlsx_bytes([]), "no data rows"),
    ("xlsx without cells", xlsx_bytes([], []), "no filled cells"),
    ("required column missing", csv_bytes([r[:5] for r in ROWS], STUDY_COLUMNS[:5]),
     "required column(s) Ueq not found"),
    ("duplicate column", csv_bytes([r + (1,) for r in ROWS], [*STUDY_COLUMNS, "Upre"]),
     "appears twice"),
    ("duplicate after case and spaces", csv_bytes([r + (1,) for r in ROWS],
                                                  [*STUDY_COLUMNS, " UPRE "]), "differ only in case"),
    ("two aliases for one column", csv_bytes([r + (1,) for r in ROWS],
                                             [*STUDY_COLUMNS[1:], "urea_pre", "pre urea"]),
     "could each be Upre"),
    ("a column of text", csv_bytes([with_cell(i, "PP", "seventy")[i] for i in range(12)]),
     "no usable value"),
    ("urea in umol/L", csv_bytes(_scaled(0.006006)), "check the units"),
    ("constant input", csv_bytes([with_cell(i, "PP", 70)[i] for i in range(12)]), "same value 70"),
    ("no header row", csv_bytes(ROWS[1:], ROWS[0]), "add a header row"),
    ("one column only", b"Upre\n150\n140\n", "not a table"),
    ("prose", b"Dear colleague, please find the data attached\nBest\n", "not found"),
    ("row longer than the header", csv_bytes(tail="150,80,50,70,2,55,9\n"), "row 14 has 7 fields"),
    ("first row longer than the header", csv_bytes([(*ROWS[0], 5), *ROWS[1:]]), "row 2 has more"),
    ("unquoted decimal commas in a comma file", csv_bytes(decimal=","), "decimal comma"),
    ("unterminated quote", csv_bytes(tail='"150,80\n'), "check quotes"),
    ("every row broken", csv_bytes([with_cell(i, "Ueq", 1)[i] for i in range(12)]),
     "no usable value"),
    ("every row breaks the Ueq rule", csv_bytes([with_cell(i, "Ueq", 20)[i] for i in range(12)]),
     "none of the 12 rows is usable"),
]


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 40
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "raw", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(name, raw, expected):
    if isinstance(expected, int):
        ds = load_dataset(raw, name)
        assert ds.n_usable == expected
        assert ds.n_read - ds.n_usable == ds.dropped.row.nunique()
        assert list(ds.frame.columns[:6]) == STUDY_COLUMNS
        if expected == len(ROWS):  # the values of ROWS (urea in mg/dL after any conversion)
            np.testing.assert_allclose(ds.X(STUDY_COLUMNS), np.array(ROWS), rtol=1e-4)
    else:
        with pytest.raises(DataError) as err:
            load_dataset(raw, name)
        message = str(err.value)
        assert expected in message
        assert "\n" not in message and message.startswith(name)


def test_dropped_rows_name_row_column_value_and_reason():
    rows = with_cell(0, "Upre", "abc", with_cell(2, "UF", -1, with_cell(4, "Ueq", 20)))
    rows = with_cell(6, "PP", "", with_cell(6, "U120", 999, rows))
    ds = load_dataset(csv_bytes(rows), "f.csv")
    assert ds.dropped.to_dict("records") == [
        {"row": 2, "column": "Upre", "value": "abc", "reason": "not a number"},
        {"row": 4, "column": "UF", "value": "-1", "reason": "negative"},
        {"row": 6, "column": "Ueq", "value": "20 (Upos 58)", "reason": "Ueq < Upos"},
        {"row": 8, "column": "U120", "value": "999", "reason": "outside plausible range 5-400 mg/dL"},
        {"row": 8, "column": "PP", "value": "", "reason": "missing"},
    ]
    assert ds.n_read == 12 and ds.n_usable == 8
    assert list(ds.row_numbers) == [3, 5, 7, 9, 10, 11, 12, 13]
    summary = dropped_summary(ds)
    assert dict(zip(summary.reason, summary["count"], strict=True)) == {
        "not a number": 1, "negative": 1, "Ueq < Upos": 1,
        "outside plausible range 5-400 mg/dL": 1, "missing": 1}


def test_uf_of_zero_is_a_valid_session():
    ds = load_dataset(csv_bytes(with_cell(0, "UF", 0)), "f.csv")
    assert ds.n_usable == 12 and ds.frame.UF[0] == 0 and ds.dropped.empty


def test_row_numbers_count_blank_lines_and_quoted_line_breaks():
    text = ("\n" + ",".join(STUDY_COLUMNS) + ",comment\n"
            + ",".join(map(fmt, ROWS[0])) + ',"two\nlines"\n'
            + "\n"
            + ",".join(map(fmt, with_cell(1, "Ueq", 1)[1])) + ",x\n"
            + ",".join(map(fmt, ROWS[2])) + ",y\n")
    ds = load_dataset(text.encode(), "f.csv")
    # header is row 2 (a blank line above it); the quoted line break stays inside row 3
    assert list(ds.row_numbers) == [3, 6]
    assert ds.dropped.row.tolist() == [5]
    assert ds.frame.comment.tolist() == ["two\nlines", "y"]


def test_xlsx_rows_are_numbered_as_the_sheet_shows_them():
    ds = load_dataset(xlsx_bytes(with_cell(1, "UF", "x"), top_blank=2), "f.xlsx")
    assert ds.dropped.row.tolist() == [5]  # header on row 3, bad row is the second data row
    assert ds.row_numbers[:2].tolist() == [4, 6]


def test_the_seed_file_keeps_the_studys_109_rows(urea_csv):
    ds = load_dataset(urea_csv)
    raw = pd.read_csv(urea_csv)
    bad = raw.Ueq < raw.Upos
    assert (ds.n_read, ds.n_dropped, ds.n_usable) == (129, 20, 109)
    assert set(ds.dropped.reason) == {"Ueq < Upos"}
    assert ds.dropped.row.tolist() == (raw.index[bad] + 2).tolist()
    assert ds.row_numbers.tolist() == (raw.index[~bad] + 2).tolist()
    np.testing.assert_array_equal(ds.X(STUDY_INPUTS), raw.loc[~bad, STUDY_INPUTS].to_numpy())
    np.testing.assert_array_equal(ds.y(), raw.Ueq[~bad].to_numpy())
    assert ds.extra_columns == ["Uann", "centro", "Req", "Uf/pp", "Ktveq"]
    assert ds.mapping == {c: c for c in STUDY_COLUMNS} and ds.units == "mg/dL"


def test_unit_factors_follow_from_the_molar_masses():
    assert UREA_FACTORS["mmol/L"] == pytest.approx(6.006)
    assert UREA_FACTORS["BUN"] == pytest.approx(2.144, abs=5e-4)
    # 10 mmol/L urea = 600.6 mg/L; 28.014 mg/dL BUN is 1 mmol/dL of urea = 60.06 mg/dL
    rows = [(10, 8, 5, 70, 2, 6), (20, 10, 6, 71, 2.5, 7)]
    ds = load_dataset(csv_bytes(rows), "f.csv", units="mmol/L")
    assert ds.frame.Upre.tolist() == pytest.approx([60.06, 120.12])
    assert ds.frame.PP.tolist() == [70, 71] and ds.column_units["Upre"] == "mmol/L"
    rows = [(28.014, 20, 14.007, 70, 2, 15), (40, 25, 20, 71, 3, 21)]
    ds = load_dataset(csv_bytes(rows), "f.csv", units="BUN")
    assert ds.frame.Upre[0] == pytest.approx(60.06) and ds.frame.Upos[0] == pytest.approx(30.03)


def test_a_bun_column_name_sets_its_unit_and_the_report_says_so():
    header = ["BUN pre", "U120", "Upos", "PP", "UF", "Ueq"]
    rows = [(70, 80, 50, 70, 2, 55), (65, 70, 45, 60, 3, 50)]
    ds = load_dataset(csv_bytes(rows, header), "f.csv")
    assert ds.frame.Upre.tolist() == pytest.approx([70 * 60.06 / 28.014, 65 * 60.06 / 28.014])
    assert ds.frame.U120.tolist() == [80, 70]
    assert ds.column_units == {"Upre": "BUN", "U120": "mg/dL", "Upos": "mg/dL", "Ueq": "mg/dL"}
    assert "'BUN pre' read as BUN mg/dL" in report_text(ds)


def test_an_explicit_mapping_wins_over_names():
    header = ["a", "b", "c", "d", "e", "Ueq", "Upre"]
    rows = [r + (1,) for r in ROWS]
    mapping = parse_mapping(" Upre = a, U120=b,Upos=c ,PP=d,UF=E")
    ds = load_dataset(csv_bytes(rows, header), "f.csv", mapping=mapping)
    assert ds.n_usable == 12 and ds.frame.Upre.tolist() == [r[0] for r in ROWS]
    assert ds.mapping == {"Upre": "a", "U120": "b", "Upos": "c", "PP": "d", "UF": "e", "Ueq": "Ueq"}
    assert ds.extra_columns == ["Upre (unused)"]


@pytest.mark.parametrize(("mapping", "message"), [
    ({"Uxx": "Upre"}, "not a study column"),
    ({"Upre": "nowhere"}, "no such column"),
    ({"Upre": "Upre", "U120": "Upre"}, "mapped twice"),
    ({"Upre": 3}, "pair names with names"),
])
def test_bad_mappings_are_refused(mapping, message):
    header = [*STUDY_COLUMNS, "urea 120"]
    with pytest.raises(DataError, match=message):
        load_dataset(csv_bytes([r + (1,) for r in ROWS], header), "f.csv", mapping=mapping)


@pytest.mark.parametrize("text", ["Upre", "Upre=", "=x", "Upre=a,b"])
def test_parse_mapping_refuses_malformed_items(text):
    with pytest.raises(DataError, match="should look like"):
        parse_mapping(text)


def test_unknown_units_are_refused():
    with pytest.raises(DataError, match="unknown urea unit 'g/L'"):
        load_dataset(csv_bytes(), "f.csv", units="g/L")


def test_sources_path_bytes_and_file_objects_agree(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_bytes(csv_bytes())
    from_path = load_dataset(path)
    assert from_path.name == "cohort.csv"
    assert load_dataset(str(path)).fingerprint() == from_path.fingerprint()
    assert load_dataset(io.BytesIO(csv_bytes())).fingerprint() == from_path.fingerprint()
    assert load_dataset(csv_bytes(), "x").fingerprint() == from_path.fingerprint()
    with pytest.raises(DataError, match="missing.csv: no such file"):
        load_dataset(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="cannot be opened"):
        load_dataset(tmp_path)


def test_fingerprint_follows_content_mapping_and_units():
    base = load_dataset(csv_bytes(), "a.csv")
    assert base.fingerprint() == load_dataset(xlsx_bytes(), "b.xlsx").fingerprint()
    changed = load_dataset(csv_bytes(with_cell(0, "UF", 1.01)), "a.csv")
    assert changed.fingerprint() != base.fingerprint()
    renamed = load_dataset(csv_bytes(header=ALIASES), "a.csv")
    assert renamed.fingerprint() != base.fingerprint()  # the mapping is part of the key
    small = [(v / 6.006 if j in (0, 1, 2, 5) else v for j, v in enumerate(r)) for r in ROWS]
    mmol = load_dataset(csv_bytes([tuple(r) for r in small]), "a.csv", units="mmol/L")
    assert mmol.fingerprint() != base.fingerprint()


def test_fingerprint_is_the_same_in_another_process(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(csv_bytes([r + ("é",) for r in ROWS], [*STUDY_COLUMNS, "text"]))
    code = ("import sys; from bnapp.intake.data import load_dataset; "
            "print(load_dataset(sys.argv[1]).fingerprint())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == load_dataset(path).fingerprint()


def test_extra_columns_are_kept_and_numeric_ones_offered():
    rows = [r + (i % 2, "x", 7, "1,5" if i else "") for i, r in enumerate(ROWS)]
    header = [*STUDY_COLUMNS, "centro", "note", "same", "partial"]
    ds = load_dataset(csv_bytes(rows, header, quote=True), "f")
    assert ds.extra_columns == ["centro", "note", "same", "partial"]
    assert ds.optional_inputs == ["centro"]
    assert ds.frame.note.tolist() == ["x"] * 12 and ds.frame.partial[1] == 1.5
    assert ds.X(["Upre", "centro"]).shape == (12, 2)
    with pytest.raises(DataError, match="holds text"):
        ds.X(["note"])
    with pytest.raises(DataError, match=r"1 empty cell\(s\) \(rows 2\)"):
        ds.X(["partial"])
    with pytest.raises(DataError, match="no column 'nothing'"):
        ds.y("nothing")


def test_require_rows():
    ds = load_dataset(csv_bytes(), "f.csv")
    require_rows(ds, 6)
    with pytest.raises(DataError, match="12 usable rows are too few for 7-fold cross-validation"):
        require_rows(ds, 7)
    assert rows_needed(10, "study") == 12 and rows_needed(5) == 10
    require_rows(ds, 10, "study")
    with pytest.raises(DataError, match="11 random 80/20 splits"):
        require_rows(ds, 11, "study")


def test_report_text_lists_counts_mapping_and_extras():
    rows = with_cell(0, "Upre", "abc", with_cell(1, "Upre", "", [r + (1,) for r in ROWS]))
    text = report_text(load_dataset(csv_bytes(rows, [*STUDY_COLUMNS, "centro"]), "f.csv"))
    assert text.splitlines()[0] == "f.csv: 12 rows read, 10 usable, 2 dropped"
    assert "  not a number: 1" in text and "  missing: 1" in text
    assert "row 3, Upre = (empty): missing" in text
    assert "columns mapped: Upre <- 'Upre'" in text and "extra columns: 'centro'" in text


def test_empty_dropped_summary_has_its_columns():
    summary = dropped_summary(load_dataset(csv_bytes(), "f.csv"))
    assert summary.empty and list(summary.columns) == ["reason", "count"]


@pytest.mark.parametrize(("values", "units", "expected"), [
    ({"Upre": "150", "U120": 80, "Upos": " 50 ", "PP": "70,5", "UF": "2.5"}, "mg/dL",
     [150, 80, 50, 70.5, 2.5]),
    ({"upre": 25, "u120": 13, "upos": "8,5", "weight": 70, "uf": 0, "Ueq": ""}, "mmol/L",
     [25 * 6.006, 13 * 6.006, 8.5 * 6.006, 70, 0]),
    ({"BUN pre": 70, "U120": 80, "Upos": 50, "PP": 70, "UF": 2, "Ueq": 55}, "mg/dL",
     [70 * 60.06 / 28.014, 80, 50, 70, 2, 55]),
])
def test_parse_patient_accepts_the_forms_values(values, units, expected):
    row = parse_patient(values, units)
    assert len(row) == 1 and list(row.columns[:5]) == STUDY_INPUTS
    np.testing.assert_allclose(row.iloc[0].to_numpy(), expected)


@pytest.mark.parametrize(("change", "message"), [
    ({"Upre": "abc"}, "Upre: 'abc' is not a number"),
    ({"Upre": "1.234,5"}, "Upre: '1.234,5' is not a number"),
    ({"U120": ""}, "U120: missing"),
    ({"Upos": 500}, "Upos: 500 mg/dL is outside the plausible range 5-400"),
    ({"PP": -70}, "PP: -70 kg is outside"),
    ({"UF": float("nan")}, "UF: nan is not a finite number"),
    ({"UF": True}, "UF: enter a number"),
    ({"Ueq": 40}, "Ueq: 40 mg/dL is below Upos"),
    ({"weight": 70}, "PP: given twice"),
])
def test_parse_patient_names_the_field(change, message):
    values = {"Upre": 150, "U120": 80, "Upos": 50, "PP": 70, "UF": 2}
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        parse_patient({**values, **change})


def test_parse_patient_requires_the_inputs():
    with pytest.raises(DataError, match="UF: missing; enter a value in L"):
        parse_patient({"Upre": 150, "U120": 80, "Upos": 50, "PP": 70})


def test_demo_dataset():
    ds = data.demo_dataset()
    assert isinstance(ds, Dataset) and ds.n_usable >= 100 and ds.name == "demo_cohort.csv"
    assert ds.mapping == {c: c for c in STUDY_COLUMNS}
    raw = pd.read_csv(data.DEMO_PATH)
    np.testing.assert_array_equal(ds.X(STUDY_COLUMNS),
                                  raw.loc[ds.row_numbers - 2, STUDY_COLUMNS].to_numpy())
    require_rows(ds, 10)


def test_a_missing_demo_file_says_how_to_recreate_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEMO_PATH", tmp_path / "demo_cohort.csv")
    with pytest.raises(DataError, match="bnapp synth"):
        data.demo_dataset()
