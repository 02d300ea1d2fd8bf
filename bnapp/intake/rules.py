"""The rules a table's cells and rows must pass before they become a Dataset's usable rows.

A cell that is missing, not a number, not positive (negative for UF) or outside the plausible
range of bnapp.intake.units, and a row breaking the study's rule Ueq >= Upos (within a tolerance;
see UeqRule), drop that row and are listed one line per problem (rows as a spreadsheet numbers
them, header = row 1); the Ueq rule may instead keep and flag its rows. Nothing is silently
repaired. A column with no usable value, or a training input with one value only,
refuse the whole file (DataError, one line naming the file, the column and the fix).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnapp.intake.reading import DataError, clean, quote
from bnapp.intake.units import (
    LIBRARY_UNITS,
    PLAUSIBLE_RANGES,
    STUDY_COLUMNS,
    STUDY_INPUTS,
    STUDY_TARGET,
    UNIT_LABELS,
    UREA_COLUMNS,
    UREA_FACTORS,
    column_unit,
)

# a number as people type it: sign, digits, one decimal point or comma, exponent
NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


@dataclass
class CheckedColumn:
    """One checked column's values in library units and the problem masks found in it."""

    canon: str
    header: str
    cells: pd.Series  # as read, for showing in the dropped list
    values: np.ndarray
    problems: dict[str, np.ndarray]  # reason -> mask, in the order they are listed

    @property
    def bad(self) -> np.ndarray:
        return np.logical_or.reduce(list(self.problems.values()))


def blank(col: pd.Series) -> np.ndarray:
    """Which cells of a column are empty: missing, or text of nothing but spaces."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col.isna().to_numpy()
    text = _text(col).str.strip()
    return (text.isna() | text.eq("")).to_numpy(dtype=bool, na_value=True)


def _text(col: pd.Series) -> pd.Series:
    """A column as pandas strings (missing cells stay missing), without copying if it is one."""
    return col if isinstance(col.dtype, pd.StringDtype) else col.astype("str")


def non_empty_rows(body: pd.DataFrame) -> np.ndarray:
    """Which rows hold something in some cell (a row of empty cells is no data row)."""
    if body.shape[1] == 0:
        return np.zeros(len(body), dtype=bool)
    blanks = np.column_stack([blank(body[c]) for c in body.columns])
    return ~blanks.all(axis=1)


def cell_numbers(cells: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float values, missing mask, not-a-number mask); one decimal comma and no point = '1,5'."""
    if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
        values = cells.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, ~missing & ~np.isfinite(values)
    text = _text(cells).str.strip()
    missing = (text.isna() | text.eq("")).to_numpy(dtype=bool, na_value=True)
    text = text.str.replace(r"^([^.,]*),([^.,]*)$", r"\1.\2", regex=True)
    values = np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)  # writable copy
    values[missing] = np.nan
    return values, missing, ~missing & ~np.isfinite(values)


def checked_column(canon: str, header: str, cells: pd.Series,
                   file_units: str) -> tuple[CheckedColumn, str | None]:
    """A column's values in library units and its problems, and a note on the unit read in.
    A study column is converted and range-checked; another column need only hold numbers."""
    values, missing, not_number = cell_numbers(cells)
    if canon not in STUDY_COLUMNS:
        return CheckedColumn(canon, header, cells, values,
                             {"missing": missing, "not a number": not_number}), None
    note = None
    if canon in UREA_COLUMNS:
        unit = column_unit(header, file_units)
        values = values * UREA_FACTORS[unit]
        if unit != "mg/dL":
            why = " (as its name says)" if unit != file_units else ""
            note = (f"{quote(header)} read as {UNIT_LABELS[unit]}{why}, "
                    f"x {UREA_FACTORS[unit]:.4g} -> urea mg/dL")
    low, high = PLAUSIBLE_RANGES[canon]
    unit_label = LIBRARY_UNITS[canon]
    known = ~missing & ~not_number
    with np.errstate(invalid="ignore"):
        sign = known & ((values < 0) if low == 0 else (values <= 0))
        outside = known & ~sign & ((values < low) | (values > high))
    problems = {
        "missing": missing,
        "not a number": not_number,
        ("negative" if low == 0 else "not positive"): sign,
        f"outside plausible range {low:g}-{high:g} {unit_label}": outside,
    }
    return CheckedColumn(canon, header, cells, values, problems), note


def require_some_value(col: CheckedColumn, name: str) -> None:
    """Refuse the file when a column has no usable cell at all, naming its commonest problem
    (a wrong mapping or unit more likely than a file of bad rows)."""
    if not col.bad.all():
        return
    reason, mask = max(col.problems.items(), key=lambda item: item[1].sum())
    example = ("" if reason == "missing" else
               f", e.g. {quote(_cells_text(col.cells, np.array([mask.argmax()]))[0])}")
    hint = ("check the units (mg/dL, mmol/L or BUN)" if reason.startswith("outside") else
            "check that the right column is mapped")
    raise DataError(f"{name}: column {quote(col.header)} ({col.canon}) has no usable value "
                    f"(all {len(mask)} cells {reason}{example}); {hint}")


@dataclass(frozen=True)
class UeqRule:
    """The study's rule Ueq >= Upos as a file is checked against it: a row breaks it when Ueq is
    below Upos by more than `tolerance` percent of Upos; such rows are dropped, or kept and
    flagged (`keep`)."""

    tolerance: float = 0.0
    keep: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.tolerance) and 0 <= self.tolerance < 100):
            raise DataError(f"Ueq < Upos tolerance: {self.tolerance} is not a percentage "
                            "from 0 to below 100")

    @classmethod
    def from_cv(cls, cv_percent: float, keep: bool = False) -> UeqRule:
        """The tolerance two measurements of an assay with this CV differ by at most 95 % of
        the time when nothing changed (the reference change value, 1.96 x sqrt(2) x CV)."""
        return cls(1.96 * math.sqrt(2.0) * cv_percent, keep)

    @property
    def reason(self) -> str:
        return ("Ueq < Upos" if self.tolerance == 0 else
                f"Ueq < Upos by more than {self.tolerance:.3g} %")


STUDY_RULE = UeqRule()  # the study's: every row with Ueq < Upos dropped


def ueq_rule(checked: list[CheckedColumn], rule: UeqRule = STUDY_RULE) -> CheckedColumn:
    """The study's rule: equilibrated urea is never below post-dialysis urea (beyond the rule's
    tolerance)."""
    by_name = {col.canon: col for col in checked}
    ueq, upos = by_name[STUDY_TARGET], by_name["Upos"]
    with np.errstate(invalid="ignore"):
        below = (~ueq.bad & ~upos.bad
                 & (ueq.values < upos.values * (1.0 - rule.tolerance / 100.0)))
    cells = pd.Series("", index=range(len(below)), dtype=object)  # text only where shown
    where = np.flatnonzero(below)
    cells.iloc[where] = [f"{ueq_text} (Upos {upos_text})" for ueq_text, upos_text in
                         zip(_cells_text(ueq.cells, where), _cells_text(upos.cells, where),
                             strict=True)]
    return CheckedColumn("Ueq", ueq.header, cells, ueq.values, {rule.reason: below})


def refuse_constant_inputs(frame: pd.DataFrame, found, headers, name: str) -> None:
    """Refuse a training file whose usable rows give a study input one value only."""
    if len(frame) < 2:
        return  # one row is refused later by require_rows, with a better message
    for canon in STUDY_INPUTS:
        values = frame[canon].to_numpy()
        if values.min() == values.max():
            raise DataError(f"{name}: input {canon} (column {quote(headers[found[canon]])}) has "
                            f"the same value {values[0]:g} in every usable row; a constant input "
                            "carries no information: check the mapping or fix the column")


def dropped_rows(columns: list[CheckedColumn], row_numbers: np.ndarray) -> pd.DataFrame:
    """Dataset.dropped: one line per problem (row, column, value as written, reason), by row and
    then in the order the columns were checked."""
    parts = []
    for order, col in enumerate(columns):
        for reason, mask in col.problems.items():
            where = np.flatnonzero(mask)
            if not len(where):
                continue
            parts.append(pd.DataFrame({
                "row": row_numbers[where].astype(np.int64), "order": order,
                "column": col.header, "value": _cells_text(col.cells, where),
                "reason": reason}))
    if not parts:
        return pd.DataFrame({"row": pd.Series(dtype=np.int64), "column": pd.Series(dtype=object),
                             "value": pd.Series(dtype=object), "reason": pd.Series(dtype=object)})
    out = pd.concat(parts, ignore_index=True).sort_values(["row", "order"], kind="stable")
    return out.drop(columns="order").reset_index(drop=True).astype(
        {"column": object, "value": object, "reason": object})


def _cells_text(cells: pd.Series, where: np.ndarray) -> list[str]:
    """Cells at the given positions as the user wrote them (floats without a trailing .0)."""
    return [_cell_str(v) for v in cells.iloc[where].tolist()]


def _cell_str(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.15g}"
    return clean(str(value))[:80]


def problem_counts(columns: list[CheckedColumn]) -> str:
    """The four commonest problems and their row counts, for a refusal's one line."""
    counts = [(f"{col.header}: {reason}", int(mask.sum())) for col in columns
              for reason, mask in col.problems.items() if mask.any()]
    counts.sort(key=lambda item: -item[1])
    return "; ".join(f"{label} in {n}" for label, n in counts[:4])
