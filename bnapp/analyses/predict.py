"""Ueq for new sessions: the fold ensemble of a trained run beside the clinical formulas.

A run holds one model per fold; a new session gets every model's Ueq, reported as their mean
with the spread across folds (how much the answer depends on which rows trained the model).
Each Ueq estimate, the network's and the formulas' alike, is turned into the dose it implies:
Daugirdas' second-generation formula with Ueq in place of Upos gives eKt/V, the inverse of
`kinetics.ueq_from_ektv`.

The spread across folds is not a prediction interval: `ueq_network_pi_low/high` is, the CV+
interval of `bnapp.analyses.conformal` at the chosen level, and `ektv_network_pi_low/high` the
doses its ends imply (a higher Ueq means a lower dose, so the ends swap).

A file of sessions is read with `data.load_sessions`, which needs only the run's inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnapp.analyses import conformal
from bnapp.analyses.baselines import KINETIC_INPUTS, KINETIC_METHODS
from bnapp.engine.results import RunResult
from bnapp.intake import data, kinetics
from bnapp.intake.data import DataError
from bnapp.intake.units import LIBRARY_DISPLAY, LIBRARY_UNITS, PREDICTION_LABELS, DisplayUnits

NETWORK_OUTPUTS = ("ueq_network", "ueq_network_sd", "ueq_network_min", "ueq_network_max",
                   "ueq_network_pi_low", "ueq_network_pi_high")
UREA_OUTPUTS = (*NETWORK_OUTPUTS, "ueq_rate_equation", "ueq_tattersall")


def ektv_from_ueq(ueq, upre, uf, post_weight, t_hours=4.0) -> np.ndarray:
    """eKt/V implied by an equilibrated post-dialysis urea: Daugirdas' second-generation
    formula with Ueq in place of Upos, -ln(Ueq/Upre - 0.008 t) + (4 - 3.5 Ueq/Upre) UF/W.
    NaN where the logarithm is undefined or Upre, W <= 0."""
    return kinetics.sp_ktv(upre, ueq, uf, post_weight, t_hours)


def predict_sessions(run: RunResult, frame: pd.DataFrame, t_hours=4.0, *,
                     level: float | None = conformal.DEFAULT_LEVEL,
                     normalized: bool = False, access: str = "arterial") -> pd.DataFrame:
    """One row per session (frame's index kept): the run's inputs, the fold ensemble's Ueq (mean,
    SD with ddof=1, min, max), its CV+ prediction interval at `level` (None: no interval;
    normalized: scaled by the fold spread), and, when Upre, Upos, PP and UF are given (and the run predicts
    Ueq), spKt/V, the eKt/V the network's Ueq implies and the rate-equation and Tattersall
    estimates of Ueq and eKt/V.

    `frame` holds the run's inputs in library units (urea mg/dL, weight kg, UF L), e.g. from
    `data.parse_patient` or `indexed_by_row(data.load_sessions(...))`; t_hours is the session
    length the formulas use (one, or one per session), access the rate equation's.
    """
    x = _inputs(run, frame, t_hours)
    per_fold = run.ensemble_predictions(x)  # (folds, sessions)
    out = frame[list(run.features)].copy()
    out["ueq_network"] = per_fold.mean(axis=0)
    out["ueq_network_sd"] = per_fold.std(axis=0, ddof=1) if len(per_fold) > 1 else np.nan
    out["ueq_network_min"] = per_fold.min(axis=0)
    out["ueq_network_max"] = per_fold.max(axis=0)
    if level is not None:
        out["ueq_network_pi_low"], out["ueq_network_pi_high"] = conformal.new_intervals(
            run, x, "network", level, normalized=normalized)
    if run.target == data.STUDY_TARGET and set(KINETIC_INPUTS) <= set(frame.columns):
        upre, upos, pp, uf = (frame[c].to_numpy(dtype=np.float64) for c in KINETIC_INPUTS)
        weight = pp - uf
        out["ektv_network"] = ektv_from_ueq(out["ueq_network"], upre, uf, weight, t_hours)
        if level is not None:
            out["ektv_network_pi_low"] = ektv_from_ueq(out["ueq_network_pi_high"], upre, uf,
                                                       weight, t_hours)
            out["ektv_network_pi_high"] = ektv_from_ueq(out["ueq_network_pi_low"], upre, uf,
                                                        weight, t_hours)
        out["spktv"] = kinetics.sp_ktv(upre, upos, uf, weight, t_hours)
        for method in KINETIC_METHODS:
            ueq = kinetics.predict_ueq(frame, method, t_hours, access)
            out[f"ueq_{method}"] = ueq
            out[f"ektv_{method}"] = ektv_from_ueq(ueq, upre, uf, weight, t_hours)
    out["outside_training_range"] = _outside_range(x, run.X, run.features)
    return out


def predict_method(run: RunResult, frame: pd.DataFrame, method: str = "network",
                   level: float = conformal.DEFAULT_LEVEL, t_hours=4.0,
                   access: str = "arterial") -> pd.DataFrame:
    """One line per session of frame (index kept), the `predict` command's file: `method`'s
    prediction of the run's target (the mean of its fold models: the network's, OLS refitted
    per fold, or a formula), its CV+ interval pi_low, pi_high at `level`, and, when the run
    predicts Ueq from Upre, Upos, PP and UF, the eKt/V it implies with the doses of the
    interval's ends (ektv, ektv_pi_low, ektv_pi_high); outside_training_range as in
    predict_sessions. frame as predict_sessions takes it."""
    x = _inputs(run, frame, t_hours)
    out = pd.DataFrame(index=frame.index)
    out["prediction"] = conformal.method_models(run, method, x, t_hours, access).mean(axis=0)
    out["pi_low"], out["pi_high"] = conformal.new_intervals(run, x, method, level,
                                                            t_hours=t_hours, access=access)
    if run.target == data.STUDY_TARGET and set(KINETIC_INPUTS) <= set(frame.columns):
        upre, uf, pp = (frame[c].to_numpy(dtype=np.float64) for c in ("Upre", "UF", "PP"))
        for column, ueq in (("ektv", "prediction"), ("ektv_pi_low", "pi_high"),
                            ("ektv_pi_high", "pi_low")):  # a higher Ueq is a lower dose
            out[column] = ektv_from_ueq(out[ueq], upre, uf, pp - uf, t_hours)
    out["outside_training_range"] = _outside_range(x, run.X, run.features)
    return out


def _inputs(run: RunResult, frame: pd.DataFrame, t_hours) -> np.ndarray:
    """The run's inputs of frame as an array; a DataError naming what is missing or wrong."""
    missing = [f for f in run.features if f not in frame.columns]
    if missing:
        raise DataError(f"input(s) {', '.join(missing)} missing; the network was trained on "
                        f"{', '.join(run.features)}")
    hours = np.asarray(t_hours, dtype=np.float64)
    if not (np.isfinite(hours) & (hours > 0)).all():
        raise DataError(f"session time: {t_hours} h is not a positive number of hours")
    return frame[run.features].to_numpy(dtype=np.float64)


def _outside_range(x: np.ndarray, trained: np.ndarray, features: Sequence[str]) -> list[str]:
    """Per session, the inputs outside the range the network saw (where it extrapolates)."""
    outside = (x < trained.min(axis=0)) | (x > trained.max(axis=0))
    names = np.asarray(features, dtype=object)
    flagged = np.flatnonzero(outside.any(axis=1))
    text = [""] * len(x)
    for i in flagged:
        text[i] = ", ".join(names[outside[i]])
    return text


def in_units(table: pd.DataFrame, display: DisplayUnits = LIBRARY_DISPLAY,
             target: str = data.STUDY_TARGET) -> tuple[pd.DataFrame, dict[str, str]]:
    """A predict_sessions table in `display`'s units (every urea value, inputs and estimates,
    SDs alike: the conversion is a factor; doses and weights as they are), and a label with
    its unit for every column.

    The network's columns hold a prediction of the run's `target`: in that column's unit, and
    labelled with its name; the formulas' columns estimate Ueq."""
    measures = {c: _measured(c, target) for c in table.columns}
    converted = table.assign(**{c: table[c] / display.factor(of)
                                for c, of in measures.items() if display.factor(of) != 1.0})
    labels = {c: _label(c, of, display) for c, of in measures.items()
              if c in LIBRARY_UNITS or c in PREDICTION_LABELS}
    return converted, labels


def _measured(column: str, target: str) -> str:
    """The column a predict_sessions column is a value of: the network's, the run's target;
    the formulas', Ueq; an input or a dose, itself."""
    if column in NETWORK_OUTPUTS:
        return target
    return data.STUDY_TARGET if column in UREA_OUTPUTS else column


def _label(column: str, measured: str, display: DisplayUnits) -> str:
    if column not in PREDICTION_LABELS:
        return display.label(column)
    text = PREDICTION_LABELS[column].format(urea=display.unit(measured))
    return text.replace(data.STUDY_TARGET, measured) if column in NETWORK_OUTPUTS else text


def indexed_by_row(sessions: data.Dataset) -> pd.DataFrame:
    """A sessions file's usable rows (`data.load_sessions`) indexed by their row number in the
    file as a spreadsheet shows it, so predictions point back to the user's rows."""
    return sessions.frame.set_axis(pd.Index(sessions.row_numbers, name="row"))
