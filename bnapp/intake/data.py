"""A user's hemodialysis file becomes a validated Dataset, or one clear refusal (DataError).

Reading the file is bnapp.intake.reading's; finding its columns (by name in any order and case,
through common aliases or a mapping the user gives) bnapp.intake.headers'; the rules its cells
and rows must pass bnapp.intake.rules'. Here they are put together: the usable rows in the
library's units, other columns kept as extras, the dropped rows listed with their reasons.

Entry points: load_dataset (a training file: all six study columns), load_sessions (sessions to
predict for: only a network's inputs, checked the same way), read_headers and detect_mapping (for
a column picker), parse_patient (one patient typed into a form); rows_needed and require_rows
(the rows a protocol needs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bnapp.intake.headers import candidates, canonical_name, clean_headers, resolve_columns
from bnapp.intake.reading import (
    DataError,
    Table,
    clean,
    names_text,
    quote,
    read_file,
    source_label,
)
from bnapp.intake.rules import (
    NUMBER,
    STUDY_RULE,
    CheckedColumn,
    UeqRule,
    blank,
    cell_numbers,
    checked_column,
    dropped_rows,
    non_empty_rows,
    problem_counts,
    refuse_constant_inputs,
    require_some_value,
    ueq_rule,
)
from bnapp.intake.units import (
    LIBRARY_UNITS,
    PLAUSIBLE_RANGES,
    STUDY_COLUMNS,
    STUDY_INPUTS,
    STUDY_TARGET,
    UNIT_LABELS,
    UREA_COLUMNS,
    UREA_FACTORS,
    UREA_UNITS,
    column_unit,
    normalize_units,
)

DEMO_PATH = Path(__file__).resolve().parents[2] / "data" / "demo_cohort.csv"


@dataclass
class Dataset:
    """Usable rows of a user's file in the library's columns and units, and what was dropped."""

    name: str
    frame: pd.DataFrame  # usable rows; study columns (urea mg/dL, kg, L) then extra columns
    row_numbers: np.ndarray  # spreadsheet row number of each usable row (header = row 1)
    dropped: pd.DataFrame  # row, column, value, reason: one line per problem
    mapping: dict[str, str]  # canonical name -> column header found in the file
    units: str  # urea units the user chose for the file
    extra_columns: list[str]
    n_read: int  # non-empty data rows in the file
    column_units: dict[str, str] = field(default_factory=dict)  # urea column -> unit read in
    notes: list[str] = field(default_factory=list)  # things the user should know (units, sheet)
    flagged: pd.DataFrame = field(  # rows kept though they break the Ueq rule, as `dropped`
        default_factory=lambda: dropped_rows([], np.zeros(0, dtype=np.int64)))

    @property
    def urea_units(self) -> str:
        """The unit the file gives urea in: its urea columns' own when they agree (headers such
        as 'Upre (mmol/L)' say it), else the unit chosen for the file."""
        read = set(self.column_units.values())
        return read.pop() if len(read) == 1 else self.units

    @property
    def n_usable(self) -> int:
        return len(self.frame)

    @property
    def n_dropped(self) -> int:
        return self.n_read - self.n_usable

    @property
    def optional_inputs(self) -> list[str]:
        """Extra columns that could be extra inputs: numeric, complete and not constant."""
        out = []
        for col in self.extra_columns:
            values = self.frame[col]
            if (pd.api.types.is_float_dtype(values) and values.notna().all()
                    and values.nunique() > 1):
                out.append(col)
        return out

    def X(self, features: list[str] | tuple[str, ...]) -> np.ndarray:
        """Inputs as an (n, p) float64 array, columns in the order given."""
        return np.column_stack([self._numeric_column(f) for f in features]).astype(np.float64)

    def y(self, target: str = STUDY_TARGET) -> np.ndarray:
        return self._numeric_column(target)

    def _numeric_column(self, column: str) -> np.ndarray:
        if column not in self.frame.columns:
            raise DataError(f"{self.name}: no column {quote(column)}; "
                            f"available: {names_text(self.frame.columns)}")
        values = self.frame[column]
        if not pd.api.types.is_float_dtype(values):
            raise DataError(f"{self.name}: column {quote(column)} holds text, not numbers; "
                            "pick a numeric column")
        self.require_filled(column, "fill them or do not use it as an input")
        return values.to_numpy(dtype=np.float64)

    def require_filled(self, column: str, fix: str, kind: str = "column") -> None:
        """DataError naming the rows (the first five) where `column` has an empty cell; `kind`
        and `fix` word it for what the caller uses the column for."""
        missing = np.flatnonzero(self.frame[column].isna().to_numpy())
        if len(missing):
            rows = ", ".join(str(r) for r in self.row_numbers[missing[:5]])
            raise DataError(f"{self.name}: {kind} {quote(column)} has {len(missing)} empty "
                            f"cell(s) (rows {rows}); {fix}")

    def fingerprint(self) -> str:
        """sha256 of the usable content, mapping and units: equal data gives an equal key."""
        h = hashlib.sha256(b"bnapp-dataset-v1\0")
        meta = {"columns": [str(c) for c in self.frame.columns], "mapping": self.mapping,
                "units": self.units, "column_units": self.column_units}
        h.update(json.dumps(meta, sort_keys=True, ensure_ascii=True).encode())
        h.update(np.asarray(self.row_numbers, dtype="<i8").tobytes())
        for col in self.frame.columns:
            values = self.frame[col]
            if pd.api.types.is_float_dtype(values):
                h.update(values.to_numpy(dtype="<f8").tobytes())
            else:
                cells = values.astype(object).where(values.notna(), "\x01missing")
                h.update("\0".join(map(str, cells)).encode("utf-8", "surrogatepass"))
            h.update(b"\0\0")
        return h.hexdigest()


# ----------------------------------------------------------------------------------- entry points

def load_dataset(source, name: str | None = None, *, mapping: Mapping[str, str] | None = None,
                 units: str = "mg/dL", ueq: UeqRule = STUDY_RULE) -> Dataset:
    """Read and check a CSV or XLSX file (path, bytes or binary file-like) for training: all six
    study columns are required and a constant input refuses the file; `ueq` says how rows with
    Ueq below Upos are treated."""
    name = source_label(source, name)
    file_units = urea_unit(units)
    return _check(read_file(source, name), name, mapping, file_units, STUDY_COLUMNS,
                  training=True, ueq=ueq)


def load_sessions(source, features: Sequence[str], name: str | None = None, *,
                  units: str = "mg/dL") -> Dataset:
    """Read and check a file of sessions to predict for: only `features` are required (no
    outcome). Columns are found and checked as load_dataset does (study columns by name or
    alias, converted and range-checked; other features by exact name, numbers only); a row with
    a bad value is dropped and listed. Other columns are kept as extras, unchecked."""
    name = source_label(source, name)
    file_units = urea_unit(units)
    wanted = list(dict.fromkeys(features))
    if not wanted or not all(isinstance(f, str) and f for f in wanted):
        raise DataError("the inputs to read must be a non-empty list of column names")
    return _check(read_file(source, name), name, None, file_units, wanted, training=False)


def read_headers(source, name: str | None = None) -> list[str]:
    """A CSV or XLSX file's column names, read and cleaned as load_dataset reads them."""
    name = source_label(source, name)
    return clean_headers(read_file(source, name), name)[0]


def detect_mapping(headers: Sequence[str]) -> dict[str, str | None]:
    """Study column -> the header load_dataset would pick for it (an exact name beats an alias);
    None when no header, or several, could be it."""
    everywhere = list(range(len(headers)))  # no header can be two study columns: aliases differ
    out: dict[str, str | None] = {}
    for canon in STUDY_COLUMNS:
        hits = candidates(headers, canon, everywhere)
        out[canon] = headers[hits[0]] if len(hits) == 1 else None
    return out


def urea_unit(units: object) -> str:
    """The canonical name of a urea unit choice ('mg/dL', 'mmol/L', 'BUN'), or DataError."""
    canon = normalize_units(units)
    if canon is None:
        raise DataError(f"unknown urea unit {quote(str(units))}; use one of "
                        f"{', '.join(UREA_UNITS)} (BUN = blood urea nitrogen in mg/dL)")
    return canon


def demo_dataset() -> Dataset:
    """The bundled synthetic cohort (data/demo_cohort.csv, written by `python -m bnapp synth`)."""
    if not DEMO_PATH.is_file():
        raise DataError(f"the demo cohort {DEMO_PATH} is missing; recreate it with "
                        "`python -m bnapp synth` (see README)")
    return load_dataset(DEMO_PATH)


def rows_needed(n_folds: int, protocol_kind: str = "kfold") -> int:
    """Fewest usable rows a protocol can work with: at least 2 test rows in every fold."""
    if protocol_kind == "study":  # random 80/20 splits with an inner 80/20 validation split
        return max(10, n_folds + 2)
    return max(2 * n_folds, n_folds + 2)


def require_rows(dataset: Dataset, n_folds: int, protocol_kind: str = "kfold") -> None:
    """Refuse a data set too small for the chosen cross-validation."""
    need = rows_needed(n_folds, protocol_kind)
    if dataset.n_usable < need:
        what = (f"{n_folds} random 80/20 splits" if protocol_kind == "study"
                else f"{n_folds}-fold cross-validation")
        raise DataError(f"{dataset.name}: {dataset.n_usable} usable rows are too few for {what}, "
                        f"which needs at least {need}; choose fewer folds or add rows "
                        f"({dataset.n_dropped} of {dataset.n_read} rows were dropped, see the "
                        "list)")


def parse_mapping(text: str) -> dict[str, str]:
    """'Upre=urea_pre,Ueq=urea eq' -> {'Upre': 'urea_pre', 'Ueq': 'urea eq'}."""
    if not isinstance(text, str):
        raise DataError("the column mapping must be text like Upre=urea_pre,Ueq=urea_eq")
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        canon, sep, header = item.partition("=")
        if not sep or not canon.strip() or not header.strip():
            raise DataError(f"mapping item {quote(item)} should look like Upre=<your column name>")
        mapping[canon.strip()] = header.strip()
    return mapping


def parse_patient(values: Mapping[str, str | float], units: str = "mg/dL", *,
                  required: Sequence[str] = STUDY_INPUTS) -> pd.DataFrame:
    """One patient's values from the Predict form as a one-row frame in the library's units.

    The `required` fields (by default the study inputs; pass a network's inputs) must be given;
    other fields are found by name or alias.
    Every study field given is converted and range-checked, Ueq >= Upos when both are given;
    other fields must be numbers. Text may use a decimal comma ("1,5") and surrounding spaces;
    an empty optional field is left out."""
    file_units = urea_unit(units)
    if not isinstance(values, Mapping):
        raise DataError("patient values must be given as field -> value pairs")
    needed = list(required)  # column names as in Dataset.frame, e.g. a run's features
    row: dict[str, float] = {}
    keys: dict[str, str] = {}
    for key, raw in values.items():
        if not isinstance(key, str) or not key.strip():
            raise DataError(f"field {quote(str(key))}: a field needs a name")
        field = key.strip() if key.strip() in needed else canonical_name(key) or clean(key.strip())
        if field in row:
            raise DataError(f"{field}: given twice")
        if field not in needed and (raw is None or isinstance(raw, str) and not raw.strip()):
            continue  # an optional field left empty
        row[field] = _form_number(field, raw)
        keys[field] = key
    for field in needed:
        if field not in row:
            unit = LIBRARY_UNITS.get(field)
            raise DataError(f"{field}: missing; enter a value in {unit}" if unit else
                            f"{field}: missing; enter a number")
    if not row:
        raise DataError("no values given; enter the patient's values")
    for field in STUDY_COLUMNS:
        if field in row:
            _check_form_value(field, row, column_unit(keys[field], file_units))
    if {STUDY_TARGET, "Upos"} <= set(row) and row[STUDY_TARGET] < row["Upos"]:
        raise DataError(f"Ueq: {row['Ueq']:g} mg/dL is below Upos ({row['Upos']:g}); "
                        "equilibrated urea cannot be lower than post-dialysis urea")
    ordered = [c for c in STUDY_COLUMNS if c in row] + [c for c in row if c not in STUDY_COLUMNS]
    return pd.DataFrame({c: [row[c]] for c in ordered}, dtype=np.float64)


def dropped_summary(ds: Dataset) -> pd.DataFrame:
    """Number of dropped rows per reason (a row with two problems counts under both)."""
    if ds.dropped.empty:
        return pd.DataFrame({"reason": pd.Series(dtype=object), "count": pd.Series(dtype=int)})
    counts = ds.dropped.drop_duplicates(["row", "reason"]).groupby("reason", sort=False).size()
    out = counts.rename("count").reset_index()
    return out.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def commonest_drop(ds: Dataset) -> str | None:
    """Which rule drops the most rows, in a sentence; None when no row was dropped."""
    summary = dropped_summary(ds)
    if summary.empty:
        return None
    reason, n = summary["reason"].iloc[0], int(summary["count"].iloc[0])
    return (f"The rule that drops the most rows: {reason} ({n} of the {ds.n_read} rows read, "
            f"{n / ds.n_read:.0%}).")


def report_text(ds: Dataset, max_rows: int = 10) -> str:
    """A short plain-text report of what was read, used and dropped."""
    lines = [f"{ds.name}: {ds.n_read} rows read, {ds.n_usable} usable, {ds.n_dropped} dropped"]
    summary = dropped_summary(ds)
    if len(summary):
        lines.append("dropped rows by reason:")
        lines += [f"  {reason}: {n}"
                  for reason, n in zip(summary.reason, summary["count"], strict=True)]
        first = ds.dropped.head(max_rows)
        lines.append(f"first dropped rows (of {len(ds.dropped)} problems):")
        lines += [f"  row {r.row}, {r.column} = {r.value or '(empty)'}: {r.reason}"
                  for r in first.itertuples()]
    if len(ds.flagged):
        lines.append(f"kept but flagged ({ds.flagged['reason'].iloc[0]}): rows "
                     + ", ".join(str(r) for r in ds.flagged["row"].head(max_rows))
                     + (" ..." if len(ds.flagged) > max_rows else ""))
    lines.append("columns mapped: " + ", ".join(
        f"{canon} <- {quote(header)}" for canon, header in ds.mapping.items()))
    lines.append(f"units: urea read as {UNIT_LABELS[ds.units]} unless noted; held as urea mg/dL, "
                 "weight kg, UF litres")
    lines += [f"note: {note}" for note in ds.notes]
    extras = ds.extra_columns
    lines.append(f"extra columns: {names_text(extras) if extras else 'none'}")
    if extras:
        optional = ds.optional_inputs
        lines.append(f"usable as optional inputs: {names_text(optional) if optional else 'none'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- checking

def _check(table: Table, name: str, mapping, file_units: str, wanted: list[str], *,
           training: bool, ueq: UeqRule = STUDY_RULE) -> Dataset:
    """Find the wanted columns, drop the rows with a bad value in any of them, keep the rest.

    For training (all study columns wanted) a constant input refuses the whole file; a file of
    sessions to predict for may hold one patient's visits with the same weight."""
    headers, body = clean_headers(table, name)
    keep = non_empty_rows(body)
    body = body.loc[keep].reset_index(drop=True)
    row_numbers = table.first_row + np.flatnonzero(keep)
    if body.empty:
        raise DataError(f"{name}: the file has a header row but no data rows; "
                        "export it again with the data")
    found = resolve_columns(headers, mapping, name, wanted, training)
    checked, notes = [], list(table.notes)
    for column in wanted:
        col, note = checked_column(column, headers[found[column]], body[found[column]],
                                   file_units)
        require_some_value(col, name)
        checked.append(col)
        notes += [note] if note else []
    rules = [ueq_rule(checked, ueq)] if {"Upos", STUDY_TARGET} <= set(wanted) else []
    flags = rules if ueq.keep else []
    columns = [*checked, *([] if ueq.keep else rules)]
    usable = ~np.logical_or.reduce([col.bad for col in columns])
    if not usable.any():
        raise DataError(f"{name}: none of the {len(body)} rows is usable "
                        f"({problem_counts(columns)}); check the column mapping and units")
    frame = _frame(checked, headers, body, found, usable)
    if training:
        refuse_constant_inputs(frame, found, headers, name)
    return Dataset(
        name=name, frame=frame, row_numbers=row_numbers[usable].astype(np.int64),
        dropped=dropped_rows(columns, row_numbers), n_read=len(body), units=file_units,
        flagged=dropped_rows([_usable_only(flag, usable) for flag in flags], row_numbers),
        mapping={column: headers[found[column]] for column in wanted},
        extra_columns=[c for c in frame.columns if c not in wanted], notes=notes,
        column_units={c.canon: column_unit(c.header, file_units) for c in checked
                      if c.canon in UREA_COLUMNS},
    )


def _usable_only(flag: CheckedColumn, usable: np.ndarray) -> CheckedColumn:
    """A flag's problems on the rows that stay (a dropped row is listed as dropped only)."""
    return CheckedColumn(flag.canon, flag.header, flag.cells, flag.values,
                         {reason: mask & usable for reason, mask in flag.problems.items()})


def _frame(checked: list[CheckedColumn], headers: list[str], body: pd.DataFrame,
           found: dict[str, int], usable: np.ndarray) -> pd.DataFrame:
    """The usable rows: the wanted columns in library units, then every other column (numbers
    where every cell is one, else the text as written)."""
    data = {col.canon: col.values[usable] for col in checked}
    mapped = set(found.values())
    taken = {c.casefold() for c in data} | {h.casefold() for h in headers}
    for pos, header in enumerate(headers):
        if pos in mapped:
            continue
        cells = body[pos][usable].reset_index(drop=True)
        values, _, not_number = cell_numbers(cells)
        label = header
        if label.casefold() in {c.casefold() for c in STUDY_COLUMNS}:
            while label.casefold() in taken:
                label += " (unused)"  # a study name the mapping gave to another column
            taken.add(label.casefold())
        data[label] = values if not not_number.any() else cells.astype(object).where(
            ~blank(cells), None)
    return pd.DataFrame(data)


# ------------------------------------------------------------------------------------ form values

def _form_number(field: str, raw) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float, np.integer, np.floating)):
        raise DataError(f"{field}: enter a number")
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise DataError(f"{field}: missing; enter a number")
        if not NUMBER.fullmatch(text) or text.count(",") + text.count(".") > 1:
            raise DataError(f"{field}: {quote(text)} is not a number (use digits and one "
                            "decimal point or comma)")
        value = float(text.replace(",", "."))
    else:
        value = float(raw)
    if not np.isfinite(value):
        raise DataError(f"{field}: {value} is not a finite number")
    return value


def _check_form_value(canon: str, row: dict[str, float], unit: str) -> None:
    """Convert a study field to library units in place and check its range."""
    entered = row[canon]
    shown = f"{entered:g} {LIBRARY_UNITS[canon]}"
    if canon in UREA_COLUMNS and unit != "mg/dL":
        row[canon] = entered * UREA_FACTORS[unit]
        shown = f"{entered:g} {UNIT_LABELS[unit]} (= {row[canon]:.4g} mg/dL urea)"
    low, high = PLAUSIBLE_RANGES[canon]
    if row[canon] < low or row[canon] > high:
        raise DataError(f"{canon}: {shown} is outside the plausible range {low:g}-{high:g} "
                        f"{LIBRARY_UNITS[canon]}; check the value and the units")
