"""The model card of a run (Markdown) and the agreement/interval tables it reports.

After Mitchell et al., "Model cards for model reporting" (FAT* 2019): what the model is for and
not for, the data it learned from, how it was validated, how well it did beside the formulas a
clinician already uses, how far to trust one prediction, and its known limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bnapp import __version__
from bnapp.analyses import agreement, conformal
from bnapp.analyses.baselines import fold_predictions, quality
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import RunResult
from bnapp.intake.data import Dataset, dropped_summary
from bnapp.intake.duration import STUDY_ACCESS, STUDY_HOURS
from bnapp.intake.units import (
    LIBRARY_DISPLAY,
    LIBRARY_UNITS,
    UNIT_LABELS,
    UREA_UNIT_NAMES,
    DisplayUnits,
)
from bnapp.report.agreement_charts import COVERAGE_LABELS, quantity_label
from bnapp.report.export import shown_tables
from bnapp.report.markup import escape_md, unit_md
from bnapp.report.page_tables import run_verdict_sentence
from bnapp.report.style import METHOD_LABELS

NOT_A_DEVICE = ("bnapp is a research tool, not a medical device: its predictions are not "
                "certified for, and must not by themselves drive, clinical decisions.")
# extra columns that name the dialysis unit of a session (the study's file has `centro`)
UNIT_COLUMN = re.compile(r"^(centro|center|centre|unit|site|hospital|unidad)$", re.IGNORECASE)
DATE_COLUMN = re.compile(r"date|fecha|datum", re.IGNORECASE)
KNOWN_LIMITS = (
    "The study's cohort is small (109 usable sessions) and from one country, with two dialysis "
    "units; a network trained on it, or on a file of similar size, may not transfer to other "
    "units, populations or laboratory methods. Validate on your own unit before relying on it.",
    "The rate equation used as a baseline (Daugirdas–Schneditz) and eKt/V take one vascular "
    "access for every session (the one named under Data); in a cohort mixing arterial and "
    "venous accesses the comparison is unfair to them in the sessions of the other access.",
    "Every formula takes the session lengths named under Data (the study's: 4 h) and a Ueq "
    "drawn 60 minutes after the session's end; other timings change what Ueq means.",
    "Inputs outside the range of the training data are an extrapolation (the Predict page "
    "flags them); the network has not seen such sessions.",
    "Cross-validation estimates come from the same file the network was trained on: sessions "
    "of one patient in both training and test rows make them optimistic unless a grouped "
    "protocol is used.",
)


def protocol_words(protocol: Mapping[str, object]) -> str:
    """How a run's rows were split and its models trained, in words (a Protocol's dict)."""
    p = Protocol.from_dict(dict(protocol))
    column = escape_md(p.group_by)
    split = {"kfold": f"{p.folds}-fold cross-validation",
             "repeated": f"{p.repeats} × {p.folds}-fold cross-validation",
             "study": f"{p.folds} random 80/20 splits, as the study's",
             "group-kfold": f"{p.folds}-fold cross-validation keeping each {column} together",
             "leave-one-group-out": f"one model per {column}, tested on that {column}"}[p.kind]
    held = (f"{p.val_fraction:.0%} of each training set held out for the validation curve"
            if p.val_fraction else "no validation rows")
    stop = f", stopping after {p.patience} epochs without improvement" if p.patience else ""
    keras = "Keras 2" if p.bn_decay == "keras2" else "Keras 3"
    seed = f" (seed {p.seed})" if "seed" in protocol else ""  # imported checkpoints have none
    return (f"{split}{seed}; {p.epochs} epochs of plain gradient descent (SGD), "
            f"batch size {p.batch_size}, learning rate {p.lr:g}; {held}{stop}; BN moving "
            f"statistics updated as {keras}")


def grouping_words(protocol: Mapping[str, object]) -> str:
    """Which column kept a patient's (or unit's) sessions together, or that none did."""
    column = protocol.get("group_by")
    if column:
        return (f"column {escape_md(column)}: its sessions are never split between training "
                "and test rows")
    return ("none: rows were split at random, so one patient's sessions can be in both "
            "training and test rows")


def session_words(t_hours=STUDY_HOURS, access: str = STUDY_ACCESS,
                  column: str | None = None) -> str:
    """The session lengths (hours: one, or one per row) and access the formulas and eKt/V
    used, in Markdown: '180 minutes for every session; arterial access'."""
    minutes = np.atleast_1d(np.asarray(t_hours, dtype=np.float64)) * 60
    low, high = minutes.min(), minutes.max()
    length = (f"{low:.4g} minutes for every session" if low == high else
              f"each session's own, {low:.4g}–{high:.4g} minutes (median "
              f"{np.median(minutes):.4g})")
    source = f", from column {escape_md(column)}" if column else ""
    return f"{length}{source}; {access} access"


def trust_tables(run: RunResult, level: float = conformal.DEFAULT_LEVEL,
                 preds: pd.DataFrame | None = None, t_hours=STUDY_HOURS,
                 access: str = STUDY_ACCESS) -> dict[str, pd.DataFrame]:
    """agreement, calibration, share_within (the sessions within the default acceptable
    differences), coverage (of the CV+ intervals, nested, and of the held-out
    split-conformal ones at `level`, per fold and pooled, every method) and predictions (the
    network's test rows with their held-out split-conformal interval).
    preds: fold_predictions(run, t_hours, access), when already computed; t_hours and access:
    the sessions' lengths (one, or one per row) and access, for the formulas and eKt/V."""
    preds = fold_predictions(run, t_hours, access) if preds is None else preds
    # one row-level frame alive at a time: each is ~0.5 GB for a million sessions
    points = agreement.agreement_points(run, preds, t_hours, access)
    tables = {"agreement": agreement.agreement(run, points=points),
              "calibration": agreement.calibration(run, points=points),
              "share_within": agreement.share_within(run, points=points)}
    del points
    tables["coverage"] = conformal.held_out_coverage(run, level, preds=preds, t_hours=t_hours,
                                                     access=access)
    tables["predictions"] = conformal.network_predictions(run, level, preds=preds)
    return tables


def _md_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; text cells and column names escaped (a file's column
    and group names reach them)."""
    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "" if pd.isna(v) else f"{v:.4g}"
        return escape_md(v)
    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _method(m: str) -> str:
    return METHOD_LABELS.get(m, m)


def _performance(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Pooled RMSE (with its interval over cohorts like this one, baselines.error_intervals)
    and MAE per method, and the paired difference to the network (Nadeau–Bengio corrected
    CI)."""
    base = tables["baselines"]
    paired = tables.get("paired_comparison", pd.DataFrame(columns=["baseline"])).set_index("baseline")
    spread = tables["error_intervals"].query("statistic == 'rmse'").set_index("method")
    rows = []
    for method, g in base.groupby("method", sort=False):
        pooled = g[g["fold"] == "pooled"].iloc[0]
        low, high = spread.loc[method, ["ci_low", "ci_high"]]
        row = {"method": _method(method), "test rows": int(pooled["n"]),
               "pooled RMSE [95% interval]": f"{pooled['rmse']:.3g} [{low:.3g}, {high:.3g}]",
               "pooled MAE": pooled["mae"], "mean error": pooled["mean_error"]}
        if method in paired.index:
            p = paired.loc[method]
            row["network − this RMSE [95% CI]"] = (f"{p['difference']:.3g} [{p['ci_low']:.3g}, "
                                                   f"{p['ci_high']:.3g}]")
        else:
            row["network − this RMSE [95% CI]"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def _agreement(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "method": table["method"].map(_method), "quantity": table["quantity"].map(quantity_label),
        "n": table["n"],
        "bias [95% CI]": [f"{r.bias:.3g} [{r.bias_ci_low:.3g}, {r.bias_ci_high:.3g}]"
                          for r in table.itertuples()],
        "lower limit [95% CI]": [f"{r.loa_low:.3g} [{r.loa_low_ci_low:.3g}, {r.loa_low_ci_high:.3g}]"
                                 for r in table.itertuples()],
        "upper limit [95% CI]": [f"{r.loa_high:.3g} [{r.loa_high_ci_low:.3g}, "
                                 f"{r.loa_high_ci_high:.3g}]" for r in table.itertuples()],
        "proportional bias slope [95% CI]": [
            f"{r.proportional_slope:.3g} [{r.proportional_slope_ci_low:.3g}, "
            f"{r.proportional_slope_ci_high:.3g}]" for r in table.itertuples()],
    })
    return out


def _share_within(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "method": table["method"].map(_method), "quantity": table["quantity"].map(quantity_label),
        "acceptable difference": [f"± {t:.3g}" for t in table["tolerance"]],
        "sessions within [95% CI]": [f"{r.within} of {r.n}: {r.share:.0%} [{r.ci_low:.0%}, "
                                     f"{r.ci_high:.0%}]" for r in table.itertuples()]})


def _coverage(table: pd.DataFrame) -> pd.DataFrame:
    pooled = table[table["fold"] == "pooled"]
    per_fold = table[table["fold"] != "pooled"].groupby(["interval", "method"],
                                                        sort=False)["coverage"]
    low, high = per_fold.min(), per_fold.max()
    keys = list(zip(pooled["interval"], pooled["method"], strict=True))
    return pd.DataFrame({
        "interval": pooled["interval"].map(COVERAGE_LABELS).to_numpy(),
        "method": pooled["method"].map(_method).to_numpy(), "test rows": pooled["n"].to_numpy(),
        "pooled coverage": [f"{c:.1%}" for c in pooled["coverage"]],
        "fold coverage, lowest–highest": [f"{low[k]:.0%}–{high[k]:.0%}" for k in keys],
        "mean interval width": pooled["mean_width"].to_numpy(),
    })


def unit_column(dataset: Dataset | None) -> str | None:
    """The extra column naming each session's dialysis unit, if the file has one."""
    if dataset is None:
        return None
    return next((c for c in dataset.extra_columns if UNIT_COLUMN.match(str(c))), None)


def _date_range(dataset: Dataset) -> str | None:
    for col in dataset.extra_columns:
        if DATE_COLUMN.search(str(col)):
            dates = pd.to_datetime(dataset.frame[col], errors="coerce", dayfirst=True)
            if dates.notna().any():
                return (f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d} "
                        f"(column {escape_md(col)})")
    return None


def subgroup_table(run: RunResult, dataset: Dataset | None, t_hours=STUDY_HOURS,
                   access: str = STUDY_ACCESS) -> pd.DataFrame | None:
    """Test-row RMSE, MAE and mean error (library units) of every method per dialysis unit,
    when the file names the unit and `dataset` is the run's own data (its rows are the run's
    rows); the formulas' sessions last t_hours through `access`."""
    col = unit_column(dataset)
    if col is None or run.row_ids is None or len(dataset.row_numbers) != len(run.y) or not (
            np.array_equal(dataset.row_numbers, run.row_ids)):
        return None
    preds = fold_predictions(run, t_hours, access)
    units = dataset.frame[col]
    if pd.api.types.is_float_dtype(units) and (units.dropna() % 1 == 0).all():
        units = units.astype("Int64")  # unit 1, not 1.0
    preds["unit"] = units.astype(str).to_numpy()[preds["row"].to_numpy()]
    rows = []
    for (unit, method), g in preds.dropna(subset=["prediction"]).groupby(["unit", "method"],
                                                                         sort=True):
        q = quality(g["truth"].to_numpy(), g["prediction"].to_numpy())
        rows.append({col: unit, "method": _method(method), "test rows": q["n"],
                     "RMSE": q["rmse"], "MAE": q["mae"], "mean error": q["mean_error"]})
    return pd.DataFrame(rows)


def _verdict_lines(verdicts: pd.DataFrame | None) -> list[str]:
    """The study's question answered per layer and definition, in the sentences every page
    prints (bnapp.analyses.verdict)."""
    if verdicts is None or verdicts.empty:
        return []
    lines = ["## Does |γ| tell which input matters?", ""]
    for (kind, number), rows in verdicts.groupby(["layer", "hidden_layer"], sort=False,
                                                 dropna=False):
        lines.append(f"{'Input BN' if kind == 'input' else f'Hidden BN {number}'}:")
        lines += [f"- {escape_md(r.sentence)}" + (f" {escape_md(r.sign_note)}" if r.sign_note
                                                  else "") for r in rows.itertuples()]
        lines.append("")
    intervals = verdicts["interval"].iloc[0]
    return lines + [f"Spearman ρ of |γ| against each importance within each fold, averaged over "
                    f"folds; 95% intervals describe {escape_md(intervals)}.", ""]


def model_card(run: RunResult, tables: Mapping[str, pd.DataFrame], *, data_name: str,
               dataset: Dataset | None = None, level: float | None = None,
               display: DisplayUnits = LIBRARY_DISPLAY, t_hours=STUDY_HOURS,
               access: str = STUDY_ACCESS, length_column: str | None = None) -> str:
    """The run's model card in Markdown. tables: run_tables' output (baselines,
    paired_comparison, agreement, coverage) in library units, computed for sessions of t_hours
    (one, or one per row; from `length_column` when named) through `access`; its numbers are
    shown in `display`'s units; dataset: the run's own data set, or None when it is not at hand
    (then what was dropped while reading is left out)."""
    spec, protocol = run.spec, run.protocol
    counts = spec.param_counts(len(run.features))
    unit = display.unit(run.target) if run.target in LIBRARY_UNITS else ""
    errors_in = unit_md(display, run.target)
    shown = shown_tables(tables, target=run.target, input_mode=spec.input_mode, display=display)
    cov = shown["coverage"]
    level = float(cov["level"].iloc[0]) if level is None and len(cov) else level
    target = escape_md(run.target)
    lines = [f"# Model card: {spec.label} predicting {target}", "",
             run_verdict_sentence(run, tables, display), "",
             f"Generated by bnapp {__version__}.", "",
             "## Intended use", "",
             f"Estimate the equilibrated post-dialysis urea ({target}) from values already "
             "taken during a session, and the dose (eKt/V) it implies, so that a research team "
             "can study how a BatchNormalization input layer weighs those values and how the "
             "network compares with the clinical formulas.", "", f"**{NOT_A_DEVICE}**", "",
             "## Data", ""]
    lines.append(f"- Data set: {escape_md(data_name)}")
    if dataset is not None:
        lines += [f"- Rows read: {dataset.n_read}; usable: {dataset.n_usable}; dropped: "
                  f"{dataset.n_dropped}",
                  f"- Urea units in the file: {UNIT_LABELS.get(dataset.units, dataset.units)}"]
        reasons = dropped_summary(dataset)
        if len(reasons):
            lines += ["- Dropped rows by reason:"] + [f"  - {escape_md(r)}: {n}" for r, n in zip(
                reasons["reason"], reasons["count"], strict=True)]
        dates = _date_range(dataset)
        lines.append(f"- Date range: {dates}" if dates else "- Date range: no date column")
    else:
        lines.append("- Rows read and dropped: not known here (the data set was not loaded)")
    lines += [f"- Rows used: {len(run.y)}",
              f"- Results shown in: {UREA_UNIT_NAMES[display.urea]} for urea",
              "- Session length used by the formulas and eKt/V: "
              f"{session_words(t_hours, access, length_column)}",
              "- Inputs: " + ", ".join(escape_md(f) + (f" ({display.unit(f)})" if f in
                                                       LIBRARY_UNITS else "")
                                       for f in run.features),
              f"- Target: {target}" + (f" ({unit})" if unit else ""), "",
              "## Architecture and validation", "",
              f"- Network: {spec.label}; {counts.trainable} trainable parameters and "
              f"{counts.non_trainable} BN moving statistics ({counts.total} in all)",
              f"- Validation: {protocol_words(protocol)}",
              f"- Sessions kept together by: {grouping_words(protocol)}",
              "- Every figure below is computed on test rows, each predicted by a model that did "
              "not train on it.", "",
              "## Performance beside the clinical formulas", "",
              _md_table(_performance(shown)), "",
              f"RMSE, MAE and mean errors in {errors_in}; "
              "RMSE intervals describe "
              f"{escape_md(shown['error_intervals']['interval'].iloc[0])}; the "
              "network − formula difference uses Nadeau and Bengio's corrected variance.", "",
              *_verdict_lines(tables.get("verdict")),
              "## Agreement with the measured value (Bland–Altman)", "",
              _md_table(_agreement(shown["agreement"])), "",
              f"Differences are method − measured ({target} in {errors_in}, eKt/V unitless); "
              "limits of agreement are bias ± 1.96 SD, their "
              "CIs " + ("exact (Carkeet 2015)" if (shown["agreement"]["ci_method"] == "exact").all()
                        else "approximate (Bland & Altman 1999)") + ". eKt/V is the dose each "
              "Ueq implies by Daugirdas' formula. The proportional-bias slope is the "
              "difference regressed on the method's own value (1 − the calibration slope), not "
              "on the pair's mean, on which every calibrated predictor would show a slope.", "",
              "Sessions whose method − measured is within a clinically acceptable difference "
              f"({escape_md(unit or run.target)} for {target}; eKt/V unitless), with Wilson "
              "95 % intervals:", "", _md_table(_share_within(shown["share_within"])), "",
              "## Prediction intervals and their coverage", ""]
    if len(cov):
        lines += [f"Coverage of {level:.0%} prediction intervals: the share of test rows "
                  f"inside an interval built without them (nominal: {level:.0%}). "
                  "**CV+, nested** is the interval a new session gets (CV+, Barber et al. "
                  "2021): each fold's rows get it from models trained again without them. "
                  "**Held-out split-conformal** is each row's own-fold prediction ± a quantile "
                  "of the other folds' residuals (the intervals of predictions.csv), near the "
                  "level by construction; it is not the interval a new session gets.", "",
                  _md_table(_coverage(cov)), ""]
    lines += ["## Subgroups and dialysis units", ""]
    groups = subgroup_table(run, dataset, t_hours, access)
    if groups is not None:
        groups = display.show(groups, run.target, ["RMSE", "MAE", "mean error"])
    if groups is None:
        lines.append("No column naming the dialysis unit was found with this run's data, so no "
                     "per-unit results are given; performance may differ between units.")
    else:
        lines += [_md_table(groups), "", "Per-unit results on the test rows of the same folds; "
                  "a leave-one-unit-out protocol tests transfer to an unseen unit."]
    lines += ["", "## Known limits", ""] + [f"- {text}" for text in KNOWN_LIMITS]
    return "\n".join(lines) + "\n"
