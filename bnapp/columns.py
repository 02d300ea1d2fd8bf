"""A file's columns as the Data page offers them: its headers, which one holds each study
variable, what each variable means, a summary table in the library's units, and a units check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnapp import data
from bnapp.units import LIBRARY_UNITS, UREA_FACTORS

# What each study column holds, in words a clinician reads on a form.
DESCRIPTIONS = {
    "Upre": "pre-dialysis urea",
    "U120": "urea at 120 minutes",
    "Upos": "post-dialysis urea",
    "PP": "pre-dialysis body weight",
    "UF": "ultrafiltration volume",
    "Ueq": "equilibrated urea",
}
# Below this median pre-dialysis urea (read as mg/dL) a file is most likely in mmol/L: dialysis
# patients' pre-dialysis urea is rarely under 60 mg/dL, and 50 mg/dL is 8.3 mmol/L.
MMOL_HINT_MG_DL = 50.0


def label(column: str) -> str:
    """'equilibrated urea Ueq (mg/dL)' for a study column; other columns by name."""
    if column not in DESCRIPTIONS:
        return column
    return f"{DESCRIPTIONS[column]} {column} ({LIBRARY_UNITS[column]})"


def file_headers(source, name: str) -> list[str]:
    """The column names of a CSV or XLSX file, read and cleaned as `data.load_dataset` does.

    Uses data's own readers (not public yet) so the names match what the mapping expects."""
    raw = data._read_source(source, name)
    try:
        table = data._read_table(raw, name)
    except data.DataError:
        raise
    except Exception as exc:  # pandas, csv, openpyxl and zipfile each fail their own way
        raise data.DataError(f"{name}: could not be read as a CSV or XLSX table "
                             f"({type(exc).__name__}); save it again as CSV (UTF-8) or XLSX") from exc
    return data._clean_headers(table, name)[0]


def guess_mapping(headers: Sequence[str]) -> dict[str, str | None]:
    """Study column -> the header `load_dataset` would pick for it, None when none or several
    could be it (an exact name beats an alias, as in load_dataset)."""
    taken: set[str] = set()
    out: dict[str, str | None] = {}
    for canon in data.STUDY_COLUMNS:
        free = [h for h in headers if h not in taken]
        candidates = ([h for h in free if h.casefold() == canon.casefold()]
                      or [h for h in free if data._canonical_name(h) == canon])
        out[canon] = candidates[0] if len(candidates) == 1 else None
        taken.update(candidates[:1])
    return out


def summary_table(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per column: what it is, its unit, n, mean, SD (n-1), min, quartiles, max."""
    rows = []
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").dropna().to_numpy(np.float64)
        q = np.percentile(values, [0, 25, 50, 75, 100]) if len(values) else [np.nan] * 5
        rows.append({
            "variable": col,
            "description": DESCRIPTIONS.get(col, ""),
            "unit": LIBRARY_UNITS.get(col, "as in the file"),
            "n": len(values),
            "mean": values.mean() if len(values) else np.nan,
            "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
            "min": q[0], "q1": q[1], "median": q[2], "q3": q[3], "max": q[4],
        })
    return pd.DataFrame(rows)


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
