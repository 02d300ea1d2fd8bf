"""Display tables and texts of the analysis pages: mean ± SD tables, layer choices, the comparison
run, readable correlation tables and what they do (and do not) show. No streamlit here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from bnapp.analyses.baselines import Verdict, verdict
from bnapp.analyses.sensitivity import ablations_coincide
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import Layer, RunResult
from bnapp.intake.units import LIBRARY_DISPLAY, DisplayUnits
from bnapp.report.markup import escape_md, unit_md
from bnapp.report.style import METHOD_LABELS, interval_text

MISSING = "—"  # a cell the layer does not have (no BN there)
PARAMETER_TITLES = {
    "moving_mean": "BN moving mean",
    "moving_std": "BN moving std",
    "beta": "β (shift)",
    "gamma": "γ (scale)",
    "scaler_mean": "z-score scaler mean",
    "scaler_std": "z-score scaler std",
}
# a hidden layer has no scaler: the same statistics of its Dense output on the training rows
HIDDEN_SCALER_TITLES = {"scaler_mean": "Dense output mean (training rows)",
                        "scaler_std": "Dense output std (training rows)"}
STATISTIC_TITLES = {
    "pearson": "Pearson r (all points pooled)",
    "spearman": "Spearman ρ (all points pooled)",
    "kendall_tau": "Kendall τ (mean over folds)",
}


# ------------------------------------------------------------------------------- layers

def has_bn(spec: ArchSpec, layer: Layer) -> bool:
    return spec.input_bn if layer.kind == "input" else spec.hidden_bn


def layer_title(spec: ArchSpec, layer: Layer) -> str:
    """E.g. 'Input BN (5 inputs)', 'BN after hidden layer 1 (6 nodes)', 'Hidden layer 2 (no BN)'."""
    if layer.kind == "input":
        return "Input BN" if spec.input_bn else "Input (no BN)"
    width = spec.hidden[layer.index]
    nodes = f"{width} node{'s' if width != 1 else ''}"
    if spec.hidden_bn:
        return f"BN after {layer.label} ({nodes})"
    return f"{layer.label.capitalize()} ({nodes}, no BN)"


# ------------------------------------------------------------------------------- stages

def stage_view(quantiles: pd.DataFrame, folds: str | int) -> tuple[pd.DataFrame, bool]:
    """The box summaries to draw and whether one box per fold: folds is "pooled", "per_fold"
    or one fold's number."""
    if folds == "pooled":
        return quantiles[quantiles["fold"] == -1], False
    if folds == "per_fold":
        return quantiles[quantiles["fold"] != -1], True
    chosen = quantiles[quantiles["fold"] == folds]
    if chosen.empty:
        raise ValueError(f"fold {folds} is not in this run")
    return chosen, True


STAGE_VALUES = ("min", "q1", "median", "q3", "max", "whisker_low", "whisker_high")


def shown_stages(quantiles: pd.DataFrame, display: DisplayUnits) -> pd.DataFrame:
    """Box summaries (stage_quantiles' columns) with the raw stage, the recorded values the
    z-score scaler takes, in `display`'s unit of each input; the other stages are
    dimensionless and a hidden node's raw stage (a Dense output) is not a study column, so
    neither changes."""
    raw = (quantiles["stage"].astype(str) == "raw").to_numpy()
    factor = np.where(raw, quantiles["unit"].astype(str).map(display.factor), 1.0)
    return quantiles.assign(**{c: quantiles[c] / factor for c in STAGE_VALUES})


# ------------------------------------------------------------------------------- parameters

def _number(x: float) -> str:
    """Two decimals, or two significant digits in scientific notation for tiny values (the
    study's β of ~1e-7 would otherwise print as 0.00)."""
    if not math.isfinite(x):
        return MISSING
    if x != 0 and abs(x) < 0.01:
        return f"{x:.1e}"
    return f"{x:.2f}"


def mean_sd(mean: float, sd: float) -> str:
    """'148.89 ± 3.27' as the study's table 2; '—' where the layer has no such parameter."""
    if not math.isfinite(mean):
        return MISSING
    return _number(mean) if not math.isfinite(sd) else f"{_number(mean)} ± {_number(sd)}"


def parameter_titles(layer: Layer) -> dict[str, str]:
    return {**PARAMETER_TITLES, **(HIDDEN_SCALER_TITLES if layer.kind == "hidden" else {})}


# bn_parameters' columns in the data's units, by the run's input mode: the BN of a run on
# z-scored inputs learns the moving statistics of z-scores (dimensionless)
DATA_UNIT_PARAMETERS = {"raw": ("moving_mean", "moving_std", "scaler_mean", "scaler_std"),
                        "zscore": ("scaler_mean", "scaler_std")}


def shown_parameters(frame: pd.DataFrame, display: DisplayUnits,
                     input_mode: str = "raw") -> pd.DataFrame:
    """bn_parameters' per_fold or summary table (its <column>_mean, <column>_sd) with the
    statistics in data units divided by each input's factor; γ, β and hidden nodes' rows
    unchanged."""
    names = DATA_UNIT_PARAMETERS[input_mode]
    columns = [c for c in frame.columns if c in names or c.rsplit("_", 1)[0] in names]
    return display.show_by(frame, "unit", columns)


BETA_ZERO = "0 (up to rounding)"


def parameter_table(summary: pd.DataFrame, layer: Layer, *, beta_zero: bool = False,
                    display: DisplayUnits = LIBRARY_DISPLAY,
                    input_mode: str = "raw") -> pd.DataFrame:
    """Study table 2: one row per unit, each parameter as 'mean ± SD' over folds; β said to be
    0 when beta_zero (analyses.stages.beta_is_zero), not printed as 1e-16 ± 1e-16. Statistics
    in `display`'s units (shown_parameters, input_mode the run's), each row naming its unit."""
    titles = parameter_titles(layer)
    summary = shown_parameters(summary, display, input_mode)
    table = pd.DataFrame({"input" if layer.kind == "input" else "node":
                          [display.label(str(u)) for u in summary["unit"]]})
    for col, title in titles.items():
        table[title] = [mean_sd(m, s) for m, s in
                        zip(summary[f"{col}_mean"], summary[f"{col}_sd"], strict=True)]
    if beta_zero:
        table[titles["beta"]] = BETA_ZERO
    return table


def beta_zero_sentence(per_fold: pd.DataFrame) -> str:
    """Why β is not charted: it is 0 in every fold up to rounding (analyses.stages.beta_is_zero)."""
    largest = float(per_fold["beta"].abs().max())
    return (f"β is 0 in every fold up to rounding (largest |β| {largest:.0e}): this layer "
            "shifts nothing, so β is not charted. A network whose first Dense layer is followed "
            "by a BN cannot learn a shift here, as the study found.")


def per_fold_table(per_fold: pd.DataFrame, layer: Layer, *,
                   display: DisplayUnits = LIBRARY_DISPLAY,
                   input_mode: str = "raw") -> pd.DataFrame:
    """The per-fold parameters with readable column names (numbers kept numeric), in
    `display`'s units as parameter_table, each row naming its unit."""
    names = {"fold": "fold", "unit": "input" if layer.kind == "input" else "node",
             **parameter_titles(layer)}
    shown = shown_parameters(per_fold, display, input_mode)
    shown = shown.assign(unit=[display.label(str(u)) for u in shown["unit"]])
    return shown[list(names)].rename(columns=names)


# ------------------------------------------------------------------------------- comparison

def other_mode(spec: ArchSpec) -> str:
    return "zscore" if spec.input_mode == "raw" else "raw"


def other_mode_spec(spec: ArchSpec) -> ArchSpec:
    """The same network on the other input mode: the study's figure 4 comparison (its z-score
    model kept the input BN)."""
    return replace(spec, input_mode=other_mode(spec))


def _same_data(a: RunResult, b: RunResult) -> bool:
    return (list(a.features) == list(b.features) and a.target == b.target
            and a.X.shape == b.X.shape and np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y))


def comparison_key(run: RunResult, candidates: Mapping[str, RunResult]) -> str | None:
    """Among candidates, the run of the other input mode on the same data and columns, or None.

    Preferred: the same network (figure 4 of the study), then one with an input BN (it has γ to
    plot); ties go to the same protocol, then the most recently opened.
    """
    best, best_score = None, None
    for order, (key, other) in enumerate(candidates.items()):
        if other.spec.input_mode == run.spec.input_mode or not _same_data(run, other):
            continue
        score = (other.spec == other_mode_spec(run.spec), other.spec.input_bn,
                 other.protocol == run.protocol, order)
        if best_score is None or score > best_score:
            best, best_score = key, score
    return best


# ------------------------------------------------------------------------------- association

def association_table(assoc: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The correlations of one ablation mode as a readable table (estimate, 95% CI, counts)."""
    rows = assoc[assoc["mode"] == mode]
    return pd.DataFrame({
        "statistic": [STATISTIC_TITLES.get(s, s) for s in rows["statistic"]],
        "estimate": rows["estimate"].round(3).to_numpy(),
        "95% interval": [
            interval_text(lo, hi)
            for lo, hi in zip(rows["ci_low"], rows["ci_high"], strict=True)],
        "points": rows["n"].to_numpy(),
        "folds": rows["n_folds"].to_numpy(),
    })


def association_caveats(metric: str, mode: str, layer: Layer, input_mode: str = "raw",
                        display: DisplayUnits = LIBRARY_DISPLAY) -> str:
    """What to keep in mind reading |γ| against the error of one ablation and error measure (the
    answer itself is the verdict's, bnapp.analyses.verdict); urea named in `display`'s unit."""
    parts = ["Even a clear link only says that in this model units with larger |γ| tend to "
             "matter more; it does not make γ a measure of importance in general."]
    if metric == "bias":
        parts.append("The bias (|mean error|) lets errors of opposite sign cancel; ΔMSE or RMSE "
                     "count every error.")
    if mode == "zero" and input_mode == "raw" and layer.kind == "input":
        parts.append("Setting a raw input to 0 puts it far outside the data (a urea of 0 "
                     f"{display.unit('Upre')}); "
                     "the mean and permutation ablations are the fairer tests.")
    return " ".join(parts)


def zero_mean_note(sens: pd.DataFrame, per_fold: pd.DataFrame, spec: ArchSpec,
                   layer: Layer) -> str | None:
    """One sentence when the zero and mean ablations of a layer give the same errors (sens has
    both modes; per_fold: the layer's bn_parameters), saying why that is right; else None."""
    if not ablations_coincide(sens):
        return None
    same = "give the same errors here (MSE equal to 5 significant digits in every fold and unit)"
    if layer.kind == "input":
        return (f"Setting an input to 0 and holding it at its training mean {same}, as they "
                "should: 0 is each input's training mean as the network sees it.")
    if not has_bn(spec, layer):
        largest = float(per_fold["scaler_mean"].abs().max())
        return (f"Zeroing a node's weights and holding it at its training mean {same}, as they "
                f"should: each node's Dense output has a training mean of about 0 (largest "
                f"|mean| {largest:.1g}).")
    largest = float(per_fold["moving_mean"].abs().max())
    why = (", because a BN after the input BN's Dense layer cancels any constant shift in "
           "training, so the Dense bias and the input BN's β never move from their initial 0"
           if spec.input_bn and layer.index == 0 else "")
    return (f"Zeroing a node's weights and holding it at β {same}, as they should: this BN's "
            f"moving mean is 0 up to rounding (largest |value| {largest:.1g}){why}, so a Dense "
            "output of 0 is the node's mean and its BN output is β either way.")


# ------------------------------------------------------------------------------- baselines

def rank_summary_text(summary: pd.DataFrame) -> str:
    """groups.gamma_rank_summary in one sentence: how alike the |γ| orders are whichever group
    is held out, with what its intervals describe."""
    rows = summary.set_index("statistic")
    rho, same = rows.loc["mean_spearman"], rows.loc["share_same_order"]
    text = (f"On average over pairs of folds, Spearman ρ = {rho['estimate']:.2f}"
            + (f" (95% interval {interval_text(rho['ci_low'], rho['ci_high'])})"
               if math.isfinite(rho["ci_low"]) else "")
            + f"; the same order in {same['estimate']:.0%} of pairs"
            + (f" ({interval_text(same['ci_low'], same['ci_high'])})"
               if math.isfinite(same["ci_low"]) else "") + ".")
    return text + f" Intervals describe {rows['interval'].iloc[0]}."


def paired_reading(n_folds: int) -> str:
    """What the Baselines page's paired comparison shows and which of its two p-values to read
    (the corrected t), with the reason (docs/statistics.md, "Which p-value")."""
    return (
        "Differences are the network's RMSE minus the baseline's in the same fold (negative: "
        f"the network is better). **Read p (corrected t).** The {n_folds} folds are not "
        "independent samples: any two of them share most of their training rows, so their "
        "differences move together and a test that counts them as independent is too sure of "
        "itself. The t-test here uses Nadeau and Bengio's corrected variance, which accounts for "
        "that overlap and widens the interval. The Wilcoxon signed-rank p-value is shown only as "
        "a check that does not assume normal differences; it is not corrected for the overlap, "
        "so it is too small, and with "
        f"{n_folds} folds it cannot go below {2 / 2 ** n_folds:.3g} whatever the data. With this "
        "few folds, read the count of folds the network won and the interval beside the "
        "p-value.")


# ------------------------------------------------------------------------------- the result, said

# the paired comparison's and the held-out groups' columns in the target's unit (t, p as they are)
PAIRED_DIFFERENCES = ("network_rmse", "baseline_rmse", "difference", "ci_low", "ci_high")
GROUP_ERRORS = ("rmse", "mae", "mean_error", "rmse_minus_network")

BASELINE_NAMES = {"linear_regression": "linear regression",
                  "rate_equation": "the rate equation (Daugirdas–Schneditz)",
                  "tattersall": "Tattersall's formula"}


def result_table(table: pd.DataFrame) -> pd.DataFrame:
    """baselines' pooled rows as DataFrame[method, rmse, mae, r2], the methods named."""
    pooled = table[table["fold"] == "pooled"]
    return pooled.assign(method=pooled["method"].map(METHOD_LABELS).fillna(pooled["method"]))[
        ["method", "rmse", "mae", "r2"]].reset_index(drop=True)


def verdict_sentence(v: Verdict | None, target: str,
                     display: DisplayUnits = LIBRARY_DISPLAY) -> str:
    """One Markdown sentence (user text escaped, no other markup): is the network better than
    the strongest baseline, can the two not be told apart, or is it worse, with the numbers of
    the Nadeau–Bengio corrected t that decide it, in the shown unit of `target`."""
    if v is None:
        return "No baseline was scored on this run's folds, so there is nothing to compare."
    # a column's own name is escaped as the name, not inside "units of …" (its ends trimmed)
    unit = unit_md(display, target)
    factor = display.factor(target)  # errors and their difference scale alike; p does not
    v = replace(v, **{f: getattr(v, f) / factor for f in
                      ("network_rmse", "baseline_rmse", "difference", "ci_low", "ci_high")})
    name = BASELINE_NAMES.get(v.baseline, escape_md(v.baseline))
    rmse = (f"cross-validated RMSE {v.network_rmse:.2f} {unit} against {v.baseline_rmse:.2f} "
            f"(mean of {v.n_folds} folds)")
    p = f", corrected t p = {v.p_value:.2g}" if math.isfinite(v.p_value) else ""
    evidence = (f"network − baseline {v.difference:+.2f} {unit}, 95 % CI "
                f"{interval_text(v.ci_low, v.ci_high)}{p}")
    if v.word == "cannot be told apart":
        return (f"The network and the best baseline, {name}, cannot be told apart in predicting "
                f"{escape_md(target)}: {rmse}; {evidence}.")
    return (f"The network predicts {escape_md(target)} {v.word} than the best baseline, {name}: "
            f"{rmse}; {evidence}.")


def run_verdict_sentence(run: RunResult, tables: Mapping[str, pd.DataFrame],
                         display: DisplayUnits = LIBRARY_DISPLAY) -> str:
    """verdict_sentence of run_tables' paired comparison: how the model card and the HTML
    report open."""
    return verdict_sentence(verdict(tables["paired_comparison"]), run.target, display)
