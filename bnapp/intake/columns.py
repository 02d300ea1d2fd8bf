"""A data set's columns as the Data page and `validate` summarise them: a table in the units
shown, the unit each urea column is read in and why, a check for urea that was read in the wrong
unit, and a check for inputs that were probably computed from the target (target leakage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnapp.intake import data
from bnapp.intake.units import (
    DESCRIPTIONS,
    LIBRARY_DISPLAY,
    LIBRARY_UNITS,
    UNIT_LABELS,
    UREA_COLUMNS,
    UREA_FACTORS,
    UREA_UNIT_NAMES,
    DisplayUnits,
    column_unit,
    header_unit,
)

# Below this median pre-dialysis urea (read as mg/dL) a file is most likely in mmol/L: dialysis
# patients' pre-dialysis urea is rarely under 60 mg/dL, and 50 mg/dL is 8.3 mmol/L.
MMOL_HINT_MG_DL = 50.0


SUMMARY_VALUES = ("mean", "sd", "min", "q1", "median", "q3", "max")


def summary_table(frame: pd.DataFrame, columns: Sequence[str],
                  display: DisplayUnits = LIBRARY_DISPLAY) -> pd.DataFrame:
    """One row per column: what it is, its unit, n, mean, SD (n-1), min, quartiles, max; the
    study's columns in `display`'s units (frame holds library units)."""
    rows = []
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").dropna().to_numpy(np.float64)
        q = np.percentile(values, [0, 25, 50, 75, 100]) if len(values) else [np.nan] * 5
        rows.append({
            "variable": col,
            "description": DESCRIPTIONS.get(col, ""),
            "unit": display.unit(col) if col in LIBRARY_UNITS else "as in the file",
            "n": len(values),
            "mean": values.mean() if len(values) else np.nan,
            "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
            "min": q[0], "q1": q[1], "median": q[2], "q3": q[3], "max": q[4],
        })
    return display.show_by(pd.DataFrame(rows), "variable", SUMMARY_VALUES)


def urea_units_table(headers: Mapping[str, str | None], file_units: str) -> pd.DataFrame:
    """Per urea column mapped (`headers`: study column -> the file's header): the unit its
    header states, the file's units, the unit it is read in (units.column_unit) and why."""
    rows = []
    for canon in UREA_COLUMNS:
        header = headers.get(canon)
        if not header:
            continue
        stated, read = header_unit(header), column_unit(header, file_units)
        rows.append({"column": canon, "header": header,
                     "header states": UREA_UNIT_NAMES[stated] if stated else "no unit",
                     "file's units": UNIT_LABELS[file_units], "read in": UNIT_LABELS[read],
                     "why": _why(stated, file_units, read)})
    return pd.DataFrame(rows, columns=["column", "header", "header states", "file's units",
                                       "read in", "why"])


def _why(stated: str | None, file_units: str, read: str) -> str:
    """Why a urea column is read in `read`, following units.column_unit's rules."""
    if stated is None:
        return "its header states no unit, so the file's units"
    if stated == file_units:
        return "its header states the file's units"
    if stated == "BUN" and read == "mmol/L":
        return "BUN in mmol/L equals urea in mmol/L, so the file's mmol/L"
    if stated == "mg/dL" and read == "BUN":
        return "'mg/dL' does not say urea or BUN, so the file's choice, BUN, decides"
    return "its header states a unit, which wins over the file's units"


def urea_units_sentence(table: pd.DataFrame) -> str:
    """urea_units_table in one sentence: which unit each column is read in, and why."""
    if table.empty:
        return "No urea column is mapped yet."
    parts = [f"{' and '.join(group['column'])} in {read} ({why})"
             for (read, why), group in table.groupby(["read in", "why"], sort=False)]
    return "Read in: " + "; ".join(parts) + "."


def units_hint(ds: data.Dataset) -> str | None:
    """A warning when urea read as mg/dL looks like mmol/L (a silent 6-fold error), else None."""
    if ds.units != "mg/dL" or ds.column_units.get("Upre", "mg/dL") != "mg/dL":
        return None
    median = float(np.median(ds.frame["Upre"]))
    if median >= MMOL_HINT_MG_DL:
        return None
    return (f"Pre-dialysis urea has a median of {median:.3g}, read as mg/dL: that is low for "
            f"dialysis patients. If the file is in mmol/L, choose mmol/L as the urea unit "
            f"(values are then multiplied by {UREA_FACTORS['mmol/L']:.4g}).")


# --------------------------------------------------------------------------------- target leakage
#
# A column computed from the target (the study's file has Req = Ueq/Upre and Ktveq, a Kt/V from
# Ueq) lets a network read the answer. Such a column need not predict the target by itself (Req
# and Ktveq reach R^2 0.46 and 0.42 alone), but together with the inputs it determines the target:
# it explains nearly all of the variance the inputs leave unexplained. We measure that share, the
# partial R^2 = 1 - PRESS(inputs + column) / PRESS(inputs), with leave-one-out (PRESS) residuals
# of least-squares fits so that extra terms cannot buy a fit, on three scales: raw values, logs
# (ratios and products become sums) and ranks (any monotone transform of the target). On the
# study's file Req scores 1.000 and Ktveq 0.992 while its five inputs, each against the other
# four, score at most 0.43; on the synthetic demo cohort, whose Ueq the inputs fix to within its
# 1.1 % assay noise, the strongest real input (Upos) scores 0.81. 0.95 sits between.
LEAK_PARTIAL_R2 = 0.95
LEAK_MIN_ROWS = 20  # below this a leave-one-out fit says little
LEAK_MAX_ROWS = 10_000  # a fixed random subset of larger files: ample for a share near 1
_SCALES = ("raw", "log", "rank")


@dataclass(frozen=True)
class Leak:
    """An input that was probably computed from the target."""

    column: str
    partial_r2: float  # share of the target's variance left by `base` that the column explains
    scale: str  # "raw", "log" or "rank": the scale on which it explains most
    base: tuple[str, ...]  # the inputs it was judged together with

    def text(self, target: str) -> str:
        share = f"{100 * self.partial_r2:.1f} % of the {target} variance"
        how = (f"with {', '.join(self.base)} it explains {share} they leave unexplained"
               if self.base else f"it explains {share}")
        return (f"{self.column} is probably computed from the target {target}: {how} "
                f"(leave-one-out fit, {self.scale} scale)")


def report_text(ds: data.Dataset, leaks: list[Leak] | None = None) -> str:
    """data.report_text with a warning for each input computed from Ueq (`leaks`, if given,
    are those of leak_candidates(ds) against Ueq, already found)."""
    lines = [data.report_text(ds)]
    if ds.n_usable < LEAK_MIN_ROWS:
        return lines[0]
    if leaks is None:
        leaks = target_leaks(ds.frame, data.STUDY_TARGET, leak_candidates(ds))
    lines += [f"warning: {leak.text(data.STUDY_TARGET)}; leave it out of the inputs"
              for leak in leaks]
    if not leaks:
        lines.append(f"target leakage: no input looks computed from {data.STUDY_TARGET}")
    return "\n".join(lines)


def leak_candidates(ds: data.Dataset) -> list[str]:
    """The columns a user can pick as inputs: the study's and the optional ones."""
    return [*data.STUDY_INPUTS, *ds.optional_inputs]


def target_leaks(frame: pd.DataFrame, target: str, candidates: Sequence[str],
                 base: Sequence[str] = data.STUDY_INPUTS) -> list[Leak]:
    """The candidate input columns that, together with the `base` inputs (less the candidate
    itself), explain at least LEAK_PARTIAL_R2 of what those inputs leave unexplained of the
    target. Non-numeric columns, and files with fewer than LEAK_MIN_ROWS complete rows, are not
    judged."""
    numeric = [c for c in dict.fromkeys([target, *candidates, *base])
               if c in frame.columns and pd.api.types.is_numeric_dtype(frame[c])]
    if target not in numeric:
        return []
    rows = frame[numeric].dropna()
    if len(rows) > LEAK_MAX_ROWS:
        rows = rows.sample(LEAK_MAX_ROWS, random_state=0)
    if len(rows) < LEAK_MIN_ROWS:
        return []
    leaks = []
    for col in candidates:
        if col == target or col not in numeric:
            continue
        others = tuple(b for b in base if b in numeric and b not in (col, target))
        scores = {scale: _partial_r2(rows, target, col, others, scale) for scale in _SCALES}
        scale = max(scores, key=lambda s: np.nan_to_num(scores[s], nan=-np.inf))
        if scores[scale] >= LEAK_PARTIAL_R2:
            leaks.append(Leak(col, float(scores[scale]), scale, others))
    return leaks


def _partial_r2(rows: pd.DataFrame, target: str, col: str, others: tuple[str, ...],
                scale: str) -> float:
    """1 - PRESS with the column / PRESS without it; NaN when it cannot be judged (the target is
    not positive on the log scale, or the other inputs already fix it)."""
    y = rows[target].to_numpy(np.float64)
    if scale == "rank":
        y = rows[target].rank().to_numpy(np.float64)
    elif scale == "log":
        if (y <= 0).any():
            return np.nan
        y = np.log(y)
    without = _press(_basis(rows, others, scale), y)
    with_col = _press(_basis(rows, (*others, col), scale), y)
    total = float(((y - y.mean()) ** 2).sum())
    if not (np.isfinite(without) and np.isfinite(with_col)) or without <= 1e-12 * total:
        return np.nan
    return 1.0 - with_col / without


def _basis(rows: pd.DataFrame, cols: Sequence[str], scale: str) -> np.ndarray:
    """Intercept and, per column, its ranks, or its values and (when all positive) their logs."""
    parts = [np.ones(len(rows))]
    for col in cols:
        x = rows[col].to_numpy(np.float64)
        if scale == "rank":
            parts.append(rows[col].rank().to_numpy(np.float64))
            continue
        parts.append(x)
        if (x > 0).all():
            parts.append(np.log(x))
    return np.column_stack(parts)


def _press(X: np.ndarray, y: np.ndarray) -> float:
    """Sum of squared leave-one-out residuals of the least-squares fit (inf if a row decides
    its own fit alone): e_i / (1 - h_i), h the hat matrix diagonal from an orthonormal basis of
    X's columns. Written out because statsmodels' OLSInfluence, which gives the same (a test
    checks), costs the Data page and `validate` half a second of import."""
    u, sv, _ = np.linalg.svd(X, full_matrices=False)
    u = u[:, sv > sv.max() * max(X.shape) * np.finfo(float).eps]  # collinear columns, as pinv
    hat = (u * u).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        press = (y - u @ (u.T @ y)) / (1.0 - hat)
    return float((press ** 2).sum()) if np.isfinite(press).all() else np.inf
