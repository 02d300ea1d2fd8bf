"""What the study's columns are: the units the library holds them in, conversions into them,
plausible ranges, and the words and labels every page and table shows for them.

Urea is held as urea in mg/dL, weight in kg, ultrafiltration in litres. Urea (CH4N2O) has a molar
mass of 60.06 g/mol; blood urea nitrogen (BUN) counts only its two nitrogen atoms, 2 x 14.007 =
28.014 g/mol. Hence:
  1 mmol/L urea = 60.06 mg/L = 6.006 mg/dL urea
  1 mg/dL BUN   = 60.06 / 28.014 = 2.144 mg/dL urea
BUN in mmol/L equals urea in mmol/L (one urea molecule per two nitrogens), so it converts as mmol/L.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

# the study's inputs and target, in its order
STUDY_INPUTS = ["Upre", "U120", "Upos", "PP", "UF"]
STUDY_TARGET = "Ueq"
STUDY_COLUMNS = [*STUDY_INPUTS, STUDY_TARGET]

UREA_MOLAR_MASS = 60.06  # g/mol
UREA_NITROGEN_MASS = 28.014  # g/mol, 2 x 14.007

UREA_UNITS = ("mg/dL", "mmol/L", "BUN")
# multiply a value in the key's unit by this to get urea in mg/dL
UREA_FACTORS = {
    "mg/dL": 1.0,
    "mmol/L": UREA_MOLAR_MASS / 10.0,  # 6.006
    "BUN": UREA_MOLAR_MASS / UREA_NITROGEN_MASS,  # 2.144
}
UNIT_LABELS = {"mg/dL": "urea mg/dL", "mmol/L": "urea mmol/L", "BUN": "BUN mg/dL"}

# Plausible values in the library's units (inclusive). Wide on purpose: they catch unit mix-ups and
# typos (a weight of 7000, urea in mmol/L read as mg/dL), not unusual patients.
UREA_RANGE = (5.0, 400.0)  # mg/dL urea
WEIGHT_RANGE = (20.0, 250.0)  # kg
UF_RANGE = (0.0, 10.0)  # litres; 0 is a valid session without fluid removal
PLAUSIBLE_RANGES = {
    "Upre": UREA_RANGE,
    "U120": UREA_RANGE,
    "Upos": UREA_RANGE,
    "Ueq": UREA_RANGE,
    "PP": WEIGHT_RANGE,
    "UF": UF_RANGE,
}
LIBRARY_UNITS = {"Upre": "mg/dL", "U120": "mg/dL", "Upos": "mg/dL", "Ueq": "mg/dL", "PP": "kg",
                 "UF": "L"}
UREA_COLUMNS = ("Upre", "U120", "Upos", "Ueq")

# What each study column holds, in words a clinician reads on a form.
DESCRIPTIONS = {
    "Upre": "pre-dialysis urea",
    "U120": "urea at 120 minutes",
    "Upos": "post-dialysis urea",
    "PP": "pre-dialysis body weight",
    "UF": "ultrafiltration volume",
    "Ueq": "equilibrated urea",
}
# How each is measured: help text for the fields a user types them into.
DETAILS = {
    "Upre": "Urea drawn before the session starts",
    "U120": "Urea drawn 120 minutes into the session",
    "Upos": "Urea drawn at the end of the session (not equilibrated)",
    "PP": "Body weight before the session",
    "UF": "Fluid removed during the session (0 if none)",
    "Ueq": "Urea drawn 30-60 minutes after the session, once urea has rebounded",
}
# Columns of a prediction table (bnapp.analyses.predict); {urea} is the urea unit shown.
PREDICTION_LABELS = {
    "ueq_network": "Ueq, network mean over folds ({urea})",
    "ueq_network_sd": "Ueq, SD across folds ({urea})",
    "ueq_network_min": "Ueq, lowest fold ({urea})",
    "ueq_network_max": "Ueq, highest fold ({urea})",
    "ueq_network_pi_low": "Ueq, prediction interval low ({urea})",
    "ueq_network_pi_high": "Ueq, prediction interval high ({urea})",
    "ektv_network": "eKt/V from the network's Ueq",
    "ektv_network_pi_low": "eKt/V, prediction interval low",
    "ektv_network_pi_high": "eKt/V, prediction interval high",
    "spktv": "spKt/V (Daugirdas, from Upos)",
    "ueq_rate_equation": "Ueq, rate equation ({urea})",
    "ektv_rate_equation": "eKt/V, rate equation",
    "ueq_tattersall": "Ueq, Tattersall ({urea})",
    "ektv_tattersall": "eKt/V, Tattersall",
    "outside_training_range": "inputs outside the training data's range",
}

_UNIT_SPELLINGS = {
    "mgdl": "mg/dL", "mg": "mg/dL", "urea": "mg/dL", "ureamgdl": "mg/dL",
    "mmoll": "mmol/L", "mmol": "mmol/L", "ureammoll": "mmol/L",
    "bun": "BUN", "bunmgdl": "BUN", "mgdlbun": "BUN",
}


def unit_label(column: str, urea_units: str | None = None) -> str | None:
    """A study column's unit ('mg/dL', 'kg', 'L'); urea as entered in `urea_units` when given
    ('BUN mg/dL'); None for other columns."""
    if urea_units is not None and column in UREA_COLUMNS:
        return UNIT_LABELS[urea_units]
    return LIBRARY_UNITS.get(column)


def target_unit(column: str) -> str:
    """The unit a prediction of `column`, and its error, is in: the library unit of a study
    column (urea is held in mg/dL whatever the file's units), else 'units of <column>'."""
    return LIBRARY_UNITS.get(column) or f"units of {column}"


# a urea value's unit on an axis or in a table header ('BUN mg/dL' says what mg/dL counts)
UREA_UNIT_NAMES = {"mg/dL": "mg/dL", "mmol/L": "mmol/L", "BUN": "BUN mg/dL"}


@dataclass(frozen=True)
class DisplayUnits:
    """The units pages, tables, downloads and reports show values in: every urea column, and a
    prediction, error or difference of one, in `urea` (mg/dL, mmol/L or BUN mg/dL); weight in
    kg and ultrafiltration in litres as held. Only what is shown changes: every computation
    runs on library units (urea mg/dL), so results are the same numbers in another unit."""

    urea: str = "mg/dL"

    def __post_init__(self) -> None:
        if self.urea not in UREA_FACTORS:
            raise ValueError(f"urea unit {self.urea!r} is not one of {', '.join(UREA_UNITS)}")

    def factor(self, column: str) -> float:
        """Divide a library value of `column` (or of a prediction, error or difference of it)
        by this to show it: 6.006 for urea in mmol/L, 1 for weight."""
        return UREA_FACTORS[self.urea] if column in UREA_COLUMNS else 1.0

    def unit(self, column: str) -> str:
        """The unit `column`, a prediction of it and its error are shown in: 'mmol/L', 'kg',
        'units of <column>' for a column of the user's own."""
        return UREA_UNIT_NAMES[self.urea] if column in UREA_COLUMNS else target_unit(column)

    def label(self, column: str) -> str:
        """A column's name with its shown unit, 'Upre (mmol/L)'; other names as they are."""
        return f"{column} ({self.unit(column)})" if column in LIBRARY_UNITS else column

    def show(self, frame: pd.DataFrame, of: str, columns: Iterable[str],
             power: int = 1) -> pd.DataFrame:
        """`frame` with `columns`, values (power 1) or squared errors (power 2) of the column
        `of`, in the shown unit; the other columns as they are."""
        factor = self.factor(of) ** power
        if factor == 1.0:
            return frame
        return frame.assign(**{c: frame[c] / factor for c in columns if c in frame.columns})

    def show_by(self, frame: pd.DataFrame, names: str, columns: Iterable[str]) -> pd.DataFrame:
        """A long `frame` whose column `names` says which column each row measures, with
        `columns` in that column's shown unit (e.g. one row per input of a summary)."""
        factor = frame[names].astype(str).map(self.factor).to_numpy()
        return frame.assign(**{c: frame[c] / factor for c in columns if c in frame.columns})


LIBRARY_DISPLAY = DisplayUnits()  # as held: urea in mg/dL


def label(column: str, urea_units: str | None = None) -> str:
    """'equilibrated urea Ueq (mg/dL)' for a study column, for forms and pickers; other columns
    by name."""
    if column not in DESCRIPTIONS:
        return column
    return f"{DESCRIPTIONS[column]} {column} ({unit_label(column, urea_units)})"


def short_label(column: str, urea_units: str = "mg/dL") -> str:
    """A table header: 'Upre (BUN mg/dL)', a prediction column in words with its unit, other
    columns by name."""
    if column in PREDICTION_LABELS:
        return PREDICTION_LABELS[column].format(urea=UNIT_LABELS[urea_units])
    unit = unit_label(column, urea_units)
    return f"{column} ({unit})" if unit else column


def normalize_units(units: object) -> str | None:
    """The canonical name of a urea unit ('mg/dL', 'mmol/L', 'BUN'), or None if unknown."""
    if not isinstance(units, str):
        return None
    return _UNIT_SPELLINGS.get(re.sub(r"[^a-z]", "", units.casefold()))


def header_unit(header: str) -> str | None:
    """The urea unit a column name states ('BUN pre', 'Upre (mmol/L)'), or None."""
    words = re.findall(r"[a-z0-9]+", header.casefold())
    joined = "".join(words)
    if "mmol" in joined:
        return "mmol/L"
    if "bun" in joined:
        return "BUN"
    if "mgdl" in joined or ("mg" in words and "dl" in words):
        return "mg/dL"
    return None


def column_unit(header: str, file_units: str) -> str:
    """The unit a urea column is read in: what its name states, else the file's units."""
    stated = header_unit(header)
    if stated == "BUN" and file_units == "mmol/L":
        return "mmol/L"  # BUN and urea are equimolar
    if stated == "mg/dL" and file_units == "BUN":
        return "BUN"  # 'mg/dL' alone does not say urea or BUN: the user's choice decides
    return stated or file_units
