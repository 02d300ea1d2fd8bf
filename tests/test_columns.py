"""bnapp.columns: a file's headers, the detected mapping, the summary table, the units check."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp import columns, data


def test_file_headers_match_what_load_dataset_maps(urea_csv):
    headers = columns.file_headers(urea_csv.read_bytes(), "Urea.csv")
    assert headers == pd.read_csv(urea_csv, nrows=0).columns.tolist()
    ds = data.load_dataset(urea_csv)
    assert set(ds.mapping.values()) | set(ds.extra_columns) == set(headers)


def test_file_headers_of_a_workbook_and_a_semicolon_csv():
    frame = pd.DataFrame({" Urea pre ": [1.0], "peso": [70.0]})
    book = io.BytesIO()
    frame.to_excel(book, index=False)
    assert columns.file_headers(book.getvalue(), "s.xlsx") == ["Urea pre", "peso"]
    assert columns.file_headers(b"a;b;c\n1,5;2;3\n", "s.csv") == ["a", "b", "c"]


def test_file_headers_refuse_what_is_not_a_table():
    with pytest.raises(data.DataError, match="PDF"):
        columns.file_headers(b"%PDF-1.4 ...", "x.pdf")


def test_guess_mapping_agrees_with_load_dataset(urea_csv):
    headers = columns.file_headers(urea_csv.read_bytes(), "Urea.csv")
    assert columns.guess_mapping(headers) == data.load_dataset(urea_csv).mapping


def test_guess_mapping_uses_aliases_and_leaves_unknown_or_ambiguous_columns_open():
    headers = ["urea_pre", "Urea 120 min", "BUN post", "weight", "pre urea", "UF", "x"]
    guess = columns.guess_mapping(headers)
    assert guess["Upre"] is None  # "urea_pre" and "pre urea" could both be Upre
    assert guess["U120"] == "Urea 120 min" and guess["Upos"] == "BUN post"
    assert guess["PP"] == "weight" and guess["UF"] == "UF" and guess["Ueq"] is None


def test_an_exact_name_beats_an_alias():
    assert columns.guess_mapping(["weight", "PP"])["PP"] == "PP"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60))
def test_summary_table_matches_pandas_describe(values):
    frame = pd.DataFrame({"Upre": values, "extra": values[::-1]})
    table = columns.summary_table(frame, ["Upre", "extra"]).set_index("variable")
    for col in ("Upre", "extra"):
        ref = frame[col].describe()
        got = table.loc[col]
        assert got["n"] == ref["count"]
        for mine, theirs in (("mean", "mean"), ("sd", "std"), ("min", "min"), ("q1", "25%"),
                             ("median", "50%"), ("q3", "75%"), ("max", "max")):
            assert got[mine] == pytest.approx(ref[theirs], rel=1e-9, abs=1e-6)
    assert table.loc["Upre", "unit"] == "mg/dL" and table.loc["extra", "unit"] == "as in the file"
    assert table.loc["Upre", "description"] == "pre-dialysis urea"


def test_summary_table_skips_text_and_empty_cells():
    frame = pd.DataFrame({"site": ["a", "3", None, "5"]})
    row = columns.summary_table(frame, ["site"]).iloc[0]
    assert row["n"] == 2 and row["mean"] == 4.0 and row["sd"] == pytest.approx(np.sqrt(2))


def test_labels_name_the_variable_and_its_unit():
    assert columns.label("Ueq") == "equilibrated urea Ueq (mg/dL)"
    assert columns.label("PP") == "pre-dialysis body weight PP (kg)"
    assert columns.label("Ktveq") == "Ktveq"


def test_units_hint_flags_urea_that_looks_like_mmol_per_litre(tmp_path):
    demo = pd.read_csv(data.DEMO_PATH)
    assert columns.units_hint(data.demo_dataset()) is None
    low = demo.assign(**{c: (demo[c] / 6.006).round(2) for c in ("Upre", "U120", "Upos", "Ueq")})
    path = tmp_path / "mmol.csv"
    low.to_csv(path, index=False)
    as_mg = data.load_dataset(path)  # within the plausible mg/dL range, so nothing is dropped
    assert "mmol/L" in columns.units_hint(as_mg)
    assert columns.units_hint(data.load_dataset(path, units="mmol/L")) is None
