"""A Dataset's grouping columns (patient IDs, dialysis units) and whether its rows suffice."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bnapp.intake.data import Dataset, rows_needed
from bnapp.intake.duration import duration_columns
from bnapp.intake.reading import DataError, names_text, quote

# words in a column name that mark a patient or unit identifier (compared as whole words of the
# lower-cased name, so "pid" and "patient_id" match but "liquid" does not)
ID_WORDS = ("id", "pid", "patient", "patients", "paciente", "patientid", "subject", "nhc",
            "mrn", "nhs", "record", "historia", "centro", "center", "centre", "unit", "unidad",
            "hospital", "site")
DEFAULT_FOLDS = 10  # the default protocol: 10-fold cross-validation
SMALLEST_FOLDS = 2  # the smallest protocol: 2-fold cross-validation


def _whole_numbers(values: pd.Series) -> bool:
    return (pd.api.types.is_float_dtype(values)
            and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)))


def group_columns(ds: Dataset) -> list[str]:
    """Extra columns that can group rows: labels (text or whole numbers, not measurements),
    complete, with 2 or more distinct values and some value on more than one row."""
    out = []
    for col in ds.extra_columns:
        values = ds.frame[col]
        label_like = not pd.api.types.is_float_dtype(values) or _whole_numbers(values)
        if label_like and values.notna().all() and 2 <= values.nunique() < len(values):
            out.append(col)
    return out


def group_labels(ds: Dataset, column: str) -> np.ndarray:
    """The column's value on every usable row, for grouped validation; DataError when the column
    is missing, has empty cells or fewer than 2 groups."""
    if column not in ds.frame.columns:
        raise DataError(f"{ds.name}: no column {quote(column)} to group by; available: "
                        f"{names_text(ds.extra_columns)}")
    ds.require_filled(column, "fill them so every session has its group", kind="grouping column")
    values = ds.frame[column]
    if values.nunique() < 2:
        raise DataError(f"{ds.name}: grouping column {quote(column)} has a single value; "
                        "grouped validation needs at least 2 groups")
    if _whole_numbers(values):  # unit 1, not 1.0, in tables and messages
        values = values.astype(np.int64)
    return values.to_numpy(dtype=object)


def _looks_like_id_name(column: str) -> bool:
    words = re.findall(r"[a-z]+", column.casefold())
    return any(w in ID_WORDS for w in words) or "".join(words) in ID_WORDS


def likely_id_columns(ds: Dataset) -> pd.DataFrame:
    """Columns that look like a patient or unit identifier and repeat a value: by name (id,
    patient, nhc, centro, ...) or integer-valued with repeated values (not a session length).
    DataFrame[column, groups, largest_group, why]; sessions sharing a value should be kept
    together by grouped validation."""
    rows = []
    lengths = set(duration_columns(ds.extra_columns))  # whole minutes are measurements
    for col in group_columns(ds):
        if col in lengths:
            continue
        values = ds.frame[col]
        by_name = _looks_like_id_name(col)
        if by_name or _whole_numbers(values):
            rows.append({"column": col, "groups": int(values.nunique()),
                         "largest_group": int(values.value_counts().iloc[0]),
                         "why": "its name" if by_name else "whole numbers that repeat"})
    return pd.DataFrame(rows, columns=["column", "groups", "largest_group", "why"])


def row_checks(ds: Dataset, folds: int = DEFAULT_FOLDS) -> tuple[str, list[str]]:
    """('ok' | 'warn' | 'error', messages) on whether the usable rows can be cross-validated:
    error below what the smallest protocol (2-fold) needs, a warning below the default 10-fold's
    minimum."""
    n = ds.n_usable
    smallest, default = rows_needed(SMALLEST_FOLDS), rows_needed(folds)
    if n < smallest:
        return "error", [f"{n} usable row{'s' if n != 1 else ''}: too few to train anything; "
                         f"even {SMALLEST_FOLDS}-fold cross-validation needs at least {smallest} "
                         "usable rows"]
    if n < default:
        most = max(k for k in range(SMALLEST_FOLDS, folds) if rows_needed(k) <= n)
        return "warn", [f"{n} usable rows are too few for the default {folds}-fold "
                        f"cross-validation, which needs at least {default}; use at most "
                        f"{most} folds or add rows"]
    return "ok", []
