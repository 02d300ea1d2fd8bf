"""Ueq for new sessions: the fold ensemble of a trained run beside the clinical formulas.

A run holds one model per fold; a new session gets every model's Ueq, reported as their mean
with the spread across folds (how much the answer depends on which rows trained the model).
Each Ueq estimate, the network's and the formulas' alike, is turned into the dose it implies:
Daugirdas' second-generation formula with Ueq in place of Upos gives eKt/V, the inverse of
`kinetics.ueq_from_ektv`.

A sessions file needs only the run's input columns; `data.load_dataset` insists on the outcome
(Ueq) a training file must have, so `read_sessions` reads the file with the same readers and
checks, column by column, for the inputs alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnapp import data, kinetics
from bnapp.baselines import KINETIC_INPUTS, KINETIC_METHODS
from bnapp.data import DataError
from bnapp.results import RunResult
from bnapp.units import LIBRARY_UNITS, UNIT_LABELS, UREA_COLUMNS, UREA_FACTORS

# What each output column holds, for tables a clinician reads ({urea}: the urea unit shown).
COLUMN_LABELS = {
    "ueq_network": "Ueq, network mean over folds ({urea})",
    "ueq_network_sd": "Ueq, SD across folds ({urea})",
    "ueq_network_min": "Ueq, lowest fold ({urea})",
    "ueq_network_max": "Ueq, highest fold ({urea})",
    "ektv_network": "eKt/V from the network's Ueq",
    "spktv": "spKt/V (Daugirdas, from Upos)",
    "ueq_rate_equation": "Ueq, rate equation ({urea})",
    "ektv_rate_equation": "eKt/V, rate equation",
    "ueq_tattersall": "Ueq, Tattersall ({urea})",
    "ektv_tattersall": "eKt/V, Tattersall",
    "outside_training_range": "inputs outside the training data's range",
}
UREA_OUTPUTS = ("ueq_network", "ueq_network_sd", "ueq_network_min", "ueq_network_max",
                "ueq_rate_equation", "ueq_tattersall")


def ektv_from_ueq(ueq, upre, uf, post_weight, t_hours=4.0) -> np.ndarray:
    """eKt/V implied by an equilibrated post-dialysis urea: Daugirdas' second-generation
    formula with Ueq in place of Upos, -ln(Ueq/Upre - 0.008 t) + (4 - 3.5 Ueq/Upre) UF/W.
    NaN where the logarithm is undefined or Upre, W <= 0."""
    return kinetics.sp_ktv(upre, ueq, uf, post_weight, t_hours)


def predict_sessions(run: RunResult, frame: pd.DataFrame, t_hours: float = 4.0) -> pd.DataFrame:
    """One row per session (frame's index kept): the run's inputs, the fold ensemble's Ueq (mean,
    SD with ddof=1, min, max), and, when Upre, Upos, PP and UF are given (and the run predicts
    Ueq), spKt/V, the eKt/V the network's Ueq implies and the rate-equation and Tattersall
    estimates of Ueq and eKt/V.

    `frame` holds the run's inputs in library units (urea mg/dL, weight kg, UF L), e.g. from
    `data.parse_patient` or `read_sessions`; t_hours is the session length the formulas use.
    """
    missing = [f for f in run.features if f not in frame.columns]
    if missing:
        raise DataError(f"input(s) {', '.join(missing)} missing; the network was trained on "
                        f"{', '.join(run.features)}")
    if not (np.isfinite(t_hours) and t_hours > 0):
        raise DataError(f"session time: {t_hours} h is not a positive number of hours")
    x = frame[run.features].to_numpy(dtype=np.float64)
    per_fold = run.ensemble_predictions(x)  # (folds, sessions)
    out = frame[list(run.features)].copy()
    out["ueq_network"] = per_fold.mean(axis=0)
    out["ueq_network_sd"] = per_fold.std(axis=0, ddof=1) if len(per_fold) > 1 else np.nan
    out["ueq_network_min"] = per_fold.min(axis=0)
    out["ueq_network_max"] = per_fold.max(axis=0)
    if run.target == data.STUDY_TARGET and set(KINETIC_INPUTS) <= set(frame.columns):
        upre, upos, pp, uf = (frame[c].to_numpy(dtype=np.float64) for c in KINETIC_INPUTS)
        weight = pp - uf
        out["ektv_network"] = ektv_from_ueq(out["ueq_network"], upre, uf, weight, t_hours)
        out["spktv"] = kinetics.sp_ktv(upre, upos, uf, weight, t_hours)
        for method in KINETIC_METHODS:
            ueq = kinetics.predict_ueq(frame, method, t_hours)
            out[f"ueq_{method}"] = ueq
            out[f"ektv_{method}"] = ektv_from_ueq(ueq, upre, uf, weight, t_hours)
    out["outside_training_range"] = _outside_range(x, run.X, run.features)
    return out


def _outside_range(x: np.ndarray, trained: np.ndarray, features: Sequence[str]) -> list[str]:
    """Per session, the inputs outside the range the network saw (where it extrapolates)."""
    outside = (x < trained.min(axis=0)) | (x > trained.max(axis=0))
    names = np.asarray(features, dtype=object)
    flagged = np.flatnonzero(outside.any(axis=1))
    text = [""] * len(x)
    for i in flagged:
        text[i] = ", ".join(names[outside[i]])
    return text


def in_units(table: pd.DataFrame, units: str = "mg/dL") -> tuple[pd.DataFrame, dict[str, str]]:
    """A predict_sessions table with every urea value (inputs and estimates, SDs alike: the
    conversion is a factor) in `units`, and a label with its unit for every column."""
    unit = data._file_units(units)
    factor = UREA_FACTORS[unit]
    urea = [c for c in table.columns if c in UREA_COLUMNS or c in UREA_OUTPUTS]
    converted = table.assign(**{c: table[c] / factor for c in urea})
    labels = {c: f"{c} ({UNIT_LABELS[unit] if c in UREA_COLUMNS else LIBRARY_UNITS[c]})"
              for c in table.columns if c in LIBRARY_UNITS}
    labels |= {c: COLUMN_LABELS[c].format(urea=UNIT_LABELS[unit]) for c in table.columns
               if c in COLUMN_LABELS}
    return converted, labels


# ---------------------------------------------------------------------------- sessions files

@dataclass
class Sessions:
    """The usable sessions of a file: inputs in library units, indexed by spreadsheet row."""

    name: str
    frame: pd.DataFrame  # the requested inputs; index "row" = row number as a spreadsheet shows it
    dropped: pd.DataFrame  # row, column, value, reason (as Dataset.dropped)
    n_read: int


def read_sessions(source, features: Sequence[str], name: str | None = None, *,
                  units: str = "mg/dL") -> Sessions:
    """Read a CSV or XLSX file of sessions that holds (at least) the given input columns.

    Columns are found as `data.load_dataset` finds them (study names and their aliases, in any
    case; other inputs by exact name) and checked the same way; a row with a missing, non-numeric
    or implausible input is dropped and listed. The outcome (Ueq) is not needed.
    """
    name = data._clean(name if isinstance(name, str) and name else data._source_name(source))
    file_units = data._file_units(units)
    raw = data._read_source(source, name)
    try:
        table = data._read_table(raw, name)
    except DataError:
        raise
    except Exception as exc:  # pandas, csv, openpyxl and zipfile each fail their own way
        raise DataError(f"{name}: could not be read as a CSV or XLSX table "
                        f"({type(exc).__name__}); save it again as CSV (UTF-8) or XLSX") from exc
    headers, body = data._clean_headers(table, name)
    keep = data._non_empty_rows(body)
    body = body.loc[keep].reset_index(drop=True)
    row_numbers = (table.first_row + np.flatnonzero(keep)).astype(np.int64)
    if body.empty:
        raise DataError(f"{name}: the file has a header row but no data rows; "
                        "export it again with the sessions")
    found = _find_inputs(headers, features, name)
    columns = [_input_column(f, headers[found[f]], body[found[f]], file_units) for f in features]
    usable = ~np.logical_or.reduce([col.bad for col in columns])
    if not usable.any():
        raise DataError(f"{name}: none of the {len(body)} rows has usable inputs "
                        f"({data._problem_counts(columns)}); check the columns and units")
    frame = pd.DataFrame({col.canon: col.values[usable] for col in columns},
                         index=pd.Index(row_numbers[usable], name="row"))
    return Sessions(name, frame, data._dropped(columns, row_numbers), len(body))


def _find_inputs(headers: list[str], features: Sequence[str], name: str) -> dict[str, int]:
    """feature -> header position; a study column also by its aliases."""
    found: dict[str, int] = {}
    for feature in features:
        study = feature in data.STUDY_COLUMNS
        hits = [i for i, h in enumerate(headers) if h.casefold() == feature.casefold()
                or (study and data._canonical_name(h) == feature)]
        if len(hits) > 1:
            both = " and ".join(data._quote(headers[i]) for i in hits[:3])
            raise DataError(f"{name}: columns {both} could each be {data._quote(feature)}; "
                            "keep one of them")
        if hits:
            found[feature] = hits[0]
    missing = [f for f in features if f not in found]
    if missing:
        raise DataError(f"{name}: input column(s) {data._names(missing)} not found; found "
                        f"{data._names(headers)}. The network needs {data._names(features)}: "
                        "rename the columns to match")
    return found


def _input_column(feature: str, header: str, cells: pd.Series, file_units: str):
    if feature in data.STUDY_COLUMNS:  # unit conversion and plausible range, as for training
        return data._study_column(feature, header, cells, file_units)[0]
    values, missing, not_number = data._numbers(cells)
    return data._Column(feature, header, cells, values,
                        {"missing": missing, "not a number": not_number})
