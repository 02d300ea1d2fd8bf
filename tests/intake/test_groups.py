"""Grouping columns of a data set: which columns can group rows, their labels, the ID warning,
and whether the usable rows are enough to cross-validate."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.intake.data import DataError, load_dataset, rows_needed
from bnapp.intake.groups import group_columns, group_labels, likely_id_columns, row_checks


def _dataset(n: int, **extra):
    rng = np.random.default_rng(n)
    upre = rng.uniform(120, 200, n)
    upos = upre * rng.uniform(0.25, 0.4, n)
    cols = {"Upre": upre, "U120": (upre + upos) / 2 + rng.normal(0, 3, n), "Upos": upos,
            "PP": rng.uniform(50, 90, n), "UF": rng.uniform(1, 3.5, n),
            "Ueq": upos * rng.uniform(1.05, 1.2, n), **extra}
    lines = [",".join(cols)] + [",".join(str(cols[c][i]) for c in cols) for i in range(n)]
    return load_dataset(io.BytesIO("\n".join(lines).encode()), name="t.csv")


def test_the_study_file_is_grouped_by_its_centre(urea_csv):
    ds = load_dataset(urea_csv)
    assert group_columns(ds) == ["centro"]  # measurements (Uann, Req, ...) are not labels
    labels = group_labels(ds, "centro")
    assert sorted(set(labels)) == [0, 1] and len(labels) == ds.n_usable
    found = likely_id_columns(ds)
    assert found.to_dict("records") == [{"column": "centro", "groups": 2, "largest_group": 61,
                                         "why": "its name"}]


def test_id_columns_by_name_or_by_repeated_whole_numbers():
    n = 30
    patients = np.array([f"P{i // 3:02d}" for i in range(n)], dtype=object)
    ds = _dataset(n, nhc=patients, code=np.arange(n) // 5, visit=np.arange(n),
                  hb=np.round(np.linspace(9.5, 13.4, n), 2))
    found = likely_id_columns(ds).set_index("column")
    assert list(found.index) == ["nhc", "code"]
    assert found.loc["nhc"].tolist() == [10, 3, "its name"]
    assert found.loc["code"].tolist() == [6, 5, "whole numbers that repeat"]
    # 'visit' never repeats and 'hb' is a measurement: neither groups rows
    assert group_columns(ds) == ["nhc", "code"]
    assert list(group_labels(ds, "code")) == list(np.arange(n) // 5)


def test_group_labels_refuse_what_cannot_group(urea_csv):
    ds = _dataset(12, unit=np.array([1.0] * 11 + [np.nan]), one=np.ones(12))
    with pytest.raises(DataError, match="no column 'patient' to group by"):
        group_labels(ds, "patient")
    with pytest.raises(DataError, match=r"'unit' has 1 empty cell\(s\) \(rows 13\)"):
        group_labels(ds, "unit")
    with pytest.raises(DataError, match="'one' has a single value"):
        group_labels(ds, "one")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=4, max_size=30).filter(lambda e: any(e) and not all(e)))
def test_an_empty_cell_is_named_alike_as_an_input_and_as_a_group(empty):
    ds = _dataset(len(empty), unit=np.where(empty, np.nan, np.arange(len(empty)) % 3))
    rows = [i + 2 for i, e in enumerate(empty) if e]  # header = row 1, no blank rows
    said = f"has {len(rows)} empty cell(s) (rows {', '.join(map(str, rows[:5]))}); "
    with pytest.raises(DataError) as as_group:
        group_labels(ds, "unit")
    with pytest.raises(DataError) as as_input:
        ds.X(["Upre", "unit"])
    assert str(as_group.value) == f"t.csv: grouping column 'unit' {said}fill them so every " \
                                  "session has its group"
    assert str(as_input.value) == f"t.csv: column 'unit' {said}fill them or do not use it as " \
                                  "an input"


@pytest.mark.parametrize("n", [1, 3, 4, 15, 19, 20, 40])
def test_row_checks_name_the_minimum(n):
    verdict, messages = row_checks(_dataset(n))
    if n < rows_needed(2):
        assert verdict == "error" and "too few to train anything" in messages[0]
        assert f"needs at least {rows_needed(2)} usable rows" in messages[0]
    elif n < rows_needed(10):
        assert verdict == "warn"
        most = messages[0].split("use at most ")[1].split(" folds")[0]
        assert rows_needed(int(most)) <= n < rows_needed(int(most) + 1)
        assert f"needs at least {rows_needed(10)}" in messages[0]
    else:
        assert (verdict, messages) == ("ok", [])
