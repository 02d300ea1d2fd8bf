"""How long each session lasted, as the urea-kinetic formulas need it: a column of the file
(in hours or minutes, told by its name or, failing that, by its values) or one length for all
sessions (240 minutes unless the user says otherwise), and the vascular access the rate
equation's coefficients depend on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnapp.intake.data import Dataset
from bnapp.intake.kinetics import ACCESS_TYPES
from bnapp.intake.reading import DataError, quote

DEFAULT_MINUTES = 240.0  # the study's sessions, and most clinics' standard
# what the formulas and eKt/V assume unless told: the study's 4 h through an arterial access
STUDY_HOURS, STUDY_ACCESS = DEFAULT_MINUTES / 60, "arterial"
# names of a session-length column, compared as lower-case letters only ("Td", "Time (min)"),
# and words that mark one inside a longer name ("Session time", "Duration HD")
LENGTH_WORDS = ("duration", "time", "minutes", "td")
ALIASES = ("duration", "time", "minutes", "td", "tdialysis", "sessiontime", "sessionlength",
           "sessionduration", "dialysistime", "treatmenttime", "length", "hours", "hd", "tdmin",
           "durationmin", "durationh", "timemin", "timeh")
MINUTE_WORDS = ("min", "mins", "minute", "minutes")
HOUR_WORDS = ("h", "hr", "hrs", "hour", "hours")
# sessions last 1-12 h: a column whose median exceeds this many hours holds minutes
MINUTES_ABOVE = 24.0
PLAUSIBLE_HOURS = (0.5, 12.0)


@dataclass(frozen=True)
class SessionLength:
    """Where each session's length comes from: `column` of the data set (None: every session
    lasts `minutes`), and the vascular access ('arterial' or 'venous') for the rate equation."""

    column: str | None = None
    minutes: float = DEFAULT_MINUTES
    access: str = STUDY_ACCESS

    def __post_init__(self):
        if not (np.isfinite(self.minutes) and self.minutes > 0):
            raise DataError(f"session length: {self.minutes} is not a positive number of minutes")
        if self.access not in ACCESS_TYPES:
            raise DataError(f"access {quote(str(self.access))}: use one of "
                            f"{', '.join(ACCESS_TYPES)}")


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z]+", name.casefold())


def duration_columns(columns: Sequence[str]) -> list[str]:
    """The columns whose name says they hold a session's length."""
    return [c for c in columns if "".join(_words(c)) in ALIASES
            or any(w in LENGTH_WORDS for w in _words(c))]


def in_minutes(name: str, values: np.ndarray) -> bool:
    """Whether a length column holds minutes: as its name says ('Td (min)', 'hours'), else when
    its median is longer than any session in hours could be."""
    words = _words(name)
    if any(w in MINUTE_WORDS for w in words):
        return True
    if any(w in HOUR_WORDS for w in words):
        return False
    return bool(np.nanmedian(values) > MINUTES_ABOVE)


def session_hours(ds: Dataset, length: SessionLength = SessionLength()) -> np.ndarray:
    """Each usable row's session length in hours; DataError (naming rows) for a column that is
    not numeric, has empty cells or lengths outside 0.5-12 h."""
    if length.column is None:
        return np.full(ds.n_usable, length.minutes / 60.0)
    column = length.column
    if column not in ds.frame.columns or not pd.api.types.is_float_dtype(ds.frame[column]):
        raise DataError(f"{ds.name}: no numeric column {quote(column)} to read session "
                        "lengths from; choose another or give the length in minutes")
    ds.require_filled(column, "fill them or give one length in minutes", kind="session length")
    return column_hours(column, ds.frame[column].to_numpy(dtype=np.float64), ds.row_numbers,
                        ds.name)


def column_hours(column: str, values: np.ndarray, row_numbers: np.ndarray,
                 name: str) -> np.ndarray:
    """A length column's values in hours (minutes told by in_minutes); DataError naming the
    rows (row_numbers, the first five) outside 0.5-12 hours or empty."""
    hours = values / 60.0 if in_minutes(column, values) else values
    low, high = PLAUSIBLE_HOURS
    bad = np.flatnonzero(~((hours >= low) & (hours <= high)))
    if len(bad):
        rows = ", ".join(str(r) for r in np.asarray(row_numbers)[bad[:5]])
        raise DataError(f"{name}: session length {quote(column)} is outside {low:g}-{high:g} "
                        f"hours in {len(bad)} row(s) (rows {rows}); check the column and its "
                        "unit (hours or minutes)")
    return hours


def frame_hours(frame: pd.DataFrame, hours: float, name: str) -> tuple[float | np.ndarray, str | None]:
    """(each row's length in hours from the frame's first numeric length column, that column),
    or (`hours`, None) when it has none; frame's index holds the rows' numbers in file `name`."""
    found = duration_columns([c for c in frame.columns
                              if pd.api.types.is_float_dtype(frame[c])])
    if not found:
        return hours, None
    values = frame[found[0]].to_numpy(dtype=np.float64)
    return column_hours(found[0], values, frame.index.to_numpy(), name), found[0]
