"""bnapp.intake.columns (summary table, units check) and the column words of bnapp.intake.units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.intake import columns, data, units
from bnapp.report import style


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
    assert units.label("Ueq") == "equilibrated urea Ueq (mg/dL)"
    assert units.label("PP") == "pre-dialysis body weight PP (kg)"
    assert units.label("Ktveq") == "Ktveq"
    # a form in the user's urea unit says which urea it means; weight stays in kg
    assert units.label("Upre", "BUN") == "pre-dialysis urea Upre (BUN mg/dL)"
    assert units.label("U120", "mmol/L") == "urea at 120 minutes U120 (urea mmol/L)"
    assert units.label("PP", "BUN") == "pre-dialysis body weight PP (kg)"


def test_every_study_column_has_one_description_unit_and_range():
    for table in (units.DESCRIPTIONS, units.DETAILS, units.LIBRARY_UNITS, units.PLAUSIBLE_RANGES):
        assert set(table) == set(data.STUDY_COLUMNS)
    # the charts' axis units are these, as the library holds them
    assert all(style.with_unit(c) == f"{c} ({u})" for c, u in units.LIBRARY_UNITS.items())


def test_short_labels_for_tables():
    assert units.short_label("Upos", "mmol/L") == "Upos (urea mmol/L)"
    assert units.short_label("UF", "mmol/L") == "UF (L)"
    assert units.short_label("ueq_tattersall", "BUN") == "Ueq, Tattersall (BUN mg/dL)"
    assert units.short_label("spktv") == "spKt/V (Daugirdas, from Upos)"
    assert units.short_label("Kt") == "Kt"


def test_units_hint_flags_urea_that_looks_like_mmol_per_litre(tmp_path):
    demo = pd.read_csv(data.DEMO_PATH)
    assert columns.units_hint(data.demo_dataset()) is None
    low = demo.assign(**{c: (demo[c] / 6.006).round(2) for c in ("Upre", "U120", "Upos", "Ueq")})
    path = tmp_path / "mmol.csv"
    low.to_csv(path, index=False)
    as_mg = data.load_dataset(path)  # within the plausible mg/dL range, so nothing is dropped
    assert "mmol/L" in columns.units_hint(as_mg)
    assert columns.units_hint(data.load_dataset(path, units="mmol/L")) is None
