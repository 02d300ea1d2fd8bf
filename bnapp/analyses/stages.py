"""What the BN layers see and learn: test-set values at four stages, parameter tables, curves.

Units of the input layer are the run's features; units of hidden layer i are "node 1", "node 2",
... (the study's names), prefixed "layer i+1" beyond the first hidden layer.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bnapp.engine.model import BN_EPSILON
from bnapp.engine.results import INPUT, FoldResult, Layer, RunResult

STAGES = ("raw", "zscore", "bn_normalized", "bn_output")
PARAMETER_COLUMNS = ("moving_mean", "moving_std", "beta", "gamma", "scaler_mean", "scaler_std")
SUMMARY_COLUMNS = ("fold", "unit", "stage", "n", "min", "q1", "median", "q3", "max",
                   "whisker_low", "whisker_high")


def _raw_values(run: RunResult, fold: FoldResult, layer: Layer) -> np.ndarray:
    if layer.kind == "input":
        return run.X[fold.test_rows]
    return run.unit_values(fold, fold.test_rows, layer)


def _fold_stages(run: RunResult, fold: FoldResult,
                 layer: Layer) -> Iterator[tuple[str, np.ndarray]]:
    """(stage, values (test rows, units)) of one fold, stage by stage in STAGES order."""
    raw = _raw_values(run, fold, layer)
    yield "raw", raw
    mean, std = run.layer_scaler(fold, layer)
    yield "zscore", (raw - mean) / std
    bn = fold.bn(layer)
    if bn is not None:
        into_bn = fold.network_input(run.spec, raw) if layer.kind == "input" else raw
        normalized = (into_bn - bn.moving_mean) / np.sqrt(bn.moving_var + BN_EPSILON)
        yield "bn_normalized", normalized
        yield "bn_output", normalized * bn.gamma + bn.beta


def bn_stages(run: RunResult, layer: Layer = INPUT) -> pd.DataFrame:
    """Test-set values per fold and unit at each stage: DataFrame[fold, unit, stage, value].

    raw (input: raw data; hidden: Dense output), zscore (with the fold's training scaler),
    bn_normalized ((v - moving mean) / sqrt(moving var + eps), before gamma and beta) and
    bn_output. The two BN stages are left out where the layer has no BN.
    One row per value (folds x units x stages x test rows): for box plots use stage_summary.
    """
    run.check_layer(layer)
    names = np.asarray(run.unit_names(layer), dtype=object)
    parts = []
    for fold in run.folds:
        for stage, values in _fold_stages(run, fold, layer):
            parts.append(pd.DataFrame({
                "fold": fold.fold,
                "unit": np.tile(names, len(values)),
                "stage": stage,
                "value": values.reshape(-1),
            }))
    out = pd.concat(parts, ignore_index=True)
    out["stage"] = pd.Categorical(out["stage"], categories=STAGES, ordered=True)
    return out


def _box(values: np.ndarray) -> dict[str, float]:
    """Box-plot numbers of a 1-D float64 array, which is reordered in place (no copy)."""
    q1, median, q3 = np.percentile(values, [25, 50, 75], overwrite_input=True)
    fence = 1.5 * (q3 - q1)
    inside = values[(values >= q1 - fence) & (values <= q3 + fence)]
    if not inside.size:  # NaN values: the z-score of a unit constant on the training rows
        return {"n": len(values), **dict.fromkeys(SUMMARY_COLUMNS[4:], np.nan)}
    return {
        "n": len(values), "min": values.min(), "q1": q1, "median": median, "q3": q3,
        "max": values.max(),
        # as matplotlib: a whisker never ends inside the box (interpolated quartiles can exceed
        # the last value within the fence)
        "whisker_low": min(inside.min(), q1), "whisker_high": max(inside.max(), q3),
    }


def _summary_frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out["stage"] = pd.Categorical(out["stage"], categories=STAGES, ordered=True)
    out["n"] = out["n"].astype(int)
    return out


def stage_quantiles(stages: pd.DataFrame) -> pd.DataFrame:
    """Box-plot summary per fold, unit and stage, plus fold = -1 for all folds pooled.

    Whiskers follow Tukey: the most extreme values within 1.5 IQR of the quartiles (never
    inside the box). A few numbers
    per box, whatever the data set's size, so the browser never receives the raw values.
    Takes any long frame[fold, unit, stage, value]; stage_summary gives the same table of a run
    without building that frame (which is what large uploads need).
    """
    pooled = stages.assign(fold=-1)
    rows = []
    for (fold, unit, stage), group in pd.concat([stages, pooled]).groupby(
        ["fold", "unit", "stage"], sort=False, observed=True
    ):
        rows.append({"fold": fold, "unit": unit, "stage": stage,
                     **_box(group["value"].to_numpy(np.float64, copy=True))})
    return _summary_frame(rows)


def stage_summary(run: RunResult, layer: Layer = INPUT) -> pd.DataFrame:
    """stage_quantiles(bn_stages(run, layer)), the same rows in the same order.

    Works on each stage's (units, test rows) array instead of a long frame (one row per
    value): 8 bytes per value, and numpy's quantiles per unit instead of a pandas groupby. As
    bn_stages' frame, folds sharing a number make one box (a trained run numbers its
    models uniquely, repeats included).
    """
    run.check_layer(layer)
    names = run.unit_names(layer)
    groups: dict[int, list[FoldResult]] = {}
    for fold in run.folds:
        groups.setdefault(fold.fold, []).append(fold)
    # each stage's values, units x rows, with the rows of one fold number side by side
    sizes = np.array([sum(len(f.test_rows) for f in folds) for folds in groups.values()], int)
    ends = np.cumsum(sizes)
    buffers: dict[str, np.ndarray] = {}
    start = 0
    for folds in groups.values():
        for fold in folds:
            stop = start + len(fold.test_rows)
            for stage, values in _fold_stages(run, fold, layer):
                if stage not in buffers:
                    buffers[stage] = np.empty((len(names), ends[-1]))
                buffers[stage][:, start:stop] = values.T
            start = stop
    spans = [(number, a, b) for number, a, b in zip(groups, ends - sizes, ends, strict=True)
             if b > a]
    if spans:
        spans.append((-1, 0, ends[-1]))
    # the pooled boxes come last: each per-fold box reorders only its own span
    rows = [{"fold": number, "unit": unit, "stage": stage, **_box(buffer[u, a:b])}
            for number, a, b in spans
            for stage, buffer in buffers.items()
            for u, unit in enumerate(names)]
    return _summary_frame(rows)


# β adds to γ·x̂, whose spread is |γ|: a β this many times smaller than the largest |γ| shifts
# nothing (a network whose first Dense is followed by a BN trains β to ~1e-16, never away from 0)
BETA_ZERO_TOLERANCE = 1e-9


def beta_is_zero(per_fold: pd.DataFrame) -> bool:
    """Whether every β of bn_parameters' per_fold table is 0 up to rounding: |β| at most
    BETA_ZERO_TOLERANCE times the largest |γ|. False for a layer without BN."""
    beta, gamma = per_fold["beta"].abs(), per_fold["gamma"].abs()
    if beta.isna().all() or gamma.isna().all():
        return False
    return bool(beta.max() <= BETA_ZERO_TOLERANCE * gamma.max())


def bn_parameters(run: RunResult, layer: Layer = INPUT,
                  ddof: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per_fold, summary) of the layer's BN parameters and training scaler.

    per_fold[fold, unit, moving_mean, moving_std, beta, gamma, scaler_mean, scaler_std] (BN
    columns NaN without BN); summary: unit, <col>_mean, <col>_sd over folds. ddof=0 (population
    SD) is what the study's table 2 printed (Upos gamma 3.27 +- 0.57); pass 1 for the sample SD.
    """
    run.check_layer(layer)
    names = run.unit_names(layer)
    parts = []
    for fold in run.folds:
        bn = fold.bn(layer)
        nan = np.full(len(names), np.nan)
        mean, std = run.layer_scaler(fold, layer)
        parts.append(pd.DataFrame({
            "fold": fold.fold,
            "unit": names,
            **{col: nan if bn is None else getattr(bn, col)
               for col in ("moving_mean", "moving_std", "beta", "gamma")},
            "scaler_mean": mean,
            "scaler_std": std,
        }))
    per_fold = pd.concat(parts, ignore_index=True)
    grouped = per_fold.groupby("unit", sort=False)[list(PARAMETER_COLUMNS)]
    summary = pd.DataFrame({"unit": names})
    means, sds = grouped.mean(), grouped.std(ddof=ddof)
    for col in PARAMETER_COLUMNS:
        summary[f"{col}_mean"] = means.loc[names, col].to_numpy()
        summary[f"{col}_sd"] = sds.loc[names, col].to_numpy()
    return per_fold, summary


def training_curves(run: RunResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss[fold, epoch, loss, val_loss], gamma[fold, epoch, unit, gamma]); epochs count from 1.

    val_loss is NaN where the protocol had no validation rows; gamma is empty without input BN.
    Imported Keras runs have no history, so both frames are empty.
    """
    losses, gammas = [], []
    for fold in run.folds:
        h = fold.history
        if "loss" in h:
            epochs = np.arange(1, len(h["loss"]) + 1)
            val = h.get("val_loss")
            losses.append(pd.DataFrame({
                "fold": fold.fold, "epoch": epochs, "loss": h["loss"],
                "val_loss": val if val is not None and len(val) == len(epochs) else np.nan,
            }))
        if "input_gamma" in h and len(h["input_gamma"]):
            g = np.asarray(h["input_gamma"])
            gammas.append(pd.DataFrame({
                "fold": fold.fold,
                "epoch": np.repeat(np.arange(1, len(g) + 1), g.shape[1]),
                "unit": np.tile(np.asarray(run.features, dtype=object), len(g)),
                "gamma": g.reshape(-1),
            }))
    loss = pd.concat(losses, ignore_index=True) if losses else pd.DataFrame(
        columns=["fold", "epoch", "loss", "val_loss"])
    gamma = pd.concat(gammas, ignore_index=True) if gammas else pd.DataFrame(
        columns=["fold", "epoch", "unit", "gamma"])
    return loss, gamma


def held_out_errors(run: RunResult) -> pd.DataFrame:
    """[fold, epoch, mse]: each model's MSE on its test rows, at the epoch whose weights it kept
    (the last, or early stopping's best); only for folds with a training history, as the loss
    curves it is drawn beside."""
    rows = [{"fold": fold.fold, "epoch": _kept_epoch(fold),
             "mse": float(np.mean((run.y[fold.test_rows] - run.test_predictions(fold)) ** 2))}
            for fold in run.folds if len(fold.history.get("loss", ())) and len(fold.test_rows)]
    return pd.DataFrame(rows, columns=["fold", "epoch", "mse"])


def _kept_epoch(fold: FoldResult) -> int:
    """The epoch (from 1) whose weights the model kept; stopped_epoch counts from 0."""
    if fold.stopped_epoch is not None:
        return fold.stopped_epoch + 1
    return len(fold.history["loss"])
