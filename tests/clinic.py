"""A clinic's own export of the demo cohort, as issue 27's tester made one: urea in mmol/L,
`;` separators and decimal commas (Excel in a European locale), the clinic's column names,
3 to 5 sessions per patient, the dialysis unit of each patient, an eKt/V column computed from
Ueq (a leak, were it taken as an input) and three planted glitches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bnapp.intake import data

MMOL = 60.06 / 10  # urea mg/dL per mmol/L (molar mass 60.06 g/mol)
HEADERS = {"Upre": "Urea pre (mmol/L)", "U120": "Urea 120 min (mmol/L)",
           "Upos": "Urea post (mmol/L)", "PP": "Weight pre (kg)", "UF": "UF (L)",
           "Ueq": "Urea eq (mmol/L)"}
# spreadsheet row (header = 1) -> (column, what was typed): an empty Ueq, a weight in grams,
# a word where a number belongs
GLITCHES = {7: ("Urea eq (mmol/L)", ""), 19: ("Weight pre (kg)", "70500"),
            43: ("Urea pre (mmol/L)", "hemolysed")}


def _patients(n_rows: int, rng: np.random.Generator) -> np.ndarray:
    sizes = []
    while sum(sizes) < n_rows:
        sizes.append(int(rng.integers(3, 6)))
    ids = np.repeat([f"P{i + 1:03d}" for i in range(len(sizes))], sizes)
    return ids[:n_rows]


def _comma(values: pd.Series, decimals: int) -> pd.Series:
    return values.map(lambda v: f"{v:.{decimals}f}".replace(".", ","))


def clinic_frame() -> pd.DataFrame:
    """The file's cells as text, as the clinic's spreadsheet writes them."""
    demo = data.demo_dataset().frame[list(data.STUDY_COLUMNS)].reset_index(drop=True)
    rng = np.random.default_rng(27)
    patients = _patients(len(demo), rng)
    ratio = demo["Ueq"] / demo["Upre"]
    ektv = -np.log(ratio - 0.008 * 4) + (4 - 3.5 * ratio) * demo["UF"] / demo["PP"]
    cells = pd.DataFrame({"patient_id": patients})
    for column, header in HEADERS.items():
        urea = column in ("Upre", "U120", "Upos", "Ueq")
        cells[header] = _comma(demo[column] / MMOL if urea else demo[column], 2 if urea else 1)
    cells["Unit"] = np.where(pd.factorize(patients)[0] % 2 == 0, "HD Nord", "HD Süd")
    cells["eKtV"] = _comma(ektv, 2)
    for row, (header, typed) in GLITCHES.items():
        cells.loc[row - 2, header] = typed
    return cells


def clinic_csv(path: Path) -> Path:
    clinic_frame().to_csv(path, sep=";", index=False)
    return path
