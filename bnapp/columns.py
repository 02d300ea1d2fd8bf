"""A data set's columns as the Data page summarises them: a table in the library's units and a
check for urea that was read in the wrong unit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnapp import data
from bnapp.units import DESCRIPTIONS, LIBRARY_UNITS, UREA_FACTORS

# Below this median pre-dialysis urea (read as mg/dL) a file is most likely in mmol/L: dialysis
# patients' pre-dialysis urea is rarely under 60 mg/dL, and 50 mg/dL is 8.3 mmol/L.
MMOL_HINT_MG_DL = 50.0


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
