"""Sensitivity by ablation: turn one input variable or one hidden-BN node off, measure the error.

Ablations (the tables' `mode` column)
- zero: the study's. Input: the value entering the network set to 0 (the raw value for a raw-input
  model; the z-score for a z-score model, as the study's norm file did). Hidden node: its Dense
  kernel column and bias zeroed (the node's BN then sees 0).
- mean: the unit held at its training mean, i.e. its BN output held at beta. Where the layer has
  a BN, the mean is the BN's moving mean, the one value whose BN output is exactly beta (the
  fold's scaler mean gives beta + gamma * (scaler mean - moving mean) / sqrt(moving var + eps),
  not beta, as the two means differ); where
  it has none, the training-row mean (input: the fold's scaler mean; hidden node: the mean of its
  Dense output on the training rows).
- permutation: the unit's values shuffled across the test rows, n seeded shuffles; the metrics
  are computed on the errors of all shuffles pooled.

zero and mean coincide when 0 is the unit's mean: a z-scored input without BN, and the nodes of
a hidden BN whose moving mean is 0. The latter is what training gives the first hidden layer
after an input BN: a hidden BN removes any constant shift of its batch, so neither the Dense
bias nor the input BN's beta receive a gradient; both stay at their initial 0, the Dense output
of every training batch has mean beta @ kernel + bias = 0, and so has the moving mean (up to
rounding: ~1e-16 in float64, ~1e-6 in the study's float32 checkpoints).

Errors are prediction - truth on each fold's test rows. "bias" is |mean error|, what the study
called "MSPE"; it is a bias, not a squared error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bnapp.analyses.settings import SETTINGS
from bnapp.engine.model import (
    ArchSpec,
    BNState,
    Trace,
    Weights,
    activate,
    bn_inference,
    forward,
    forward_from,
)
from bnapp.engine.results import FIRST_HIDDEN, INPUT, FoldResult, Layer, RunResult

ABLATIONS = ("zero", "mean", "permutation")
METRICS = ("mean_error", "std_error", "bias", "mse", "rmse", "delta_mse",
           "mean_percent_error", "std_percent_error")
SENSITIVITY_COLUMNS = ("layer", "unit", "fold", "mode", "gamma", "abs_gamma", *METRICS)


def error_metrics(errors: np.ndarray, truth: np.ndarray, intact_mse: float) -> dict[str, float]:
    """The study's error summary (population SD, percent of the true value) and squared errors."""
    errors = np.asarray(errors, dtype=np.float64)
    percent = 100.0 * errors / np.asarray(truth, dtype=np.float64)
    mean_error = float(errors.mean())
    mse = float(np.mean(errors**2))
    return {
        "mean_error": mean_error,
        "std_error": float(errors.std()),
        "bias": abs(mean_error),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "delta_mse": mse - intact_mse,
        "mean_percent_error": float(percent.mean()),
        "std_percent_error": float(percent.std()),
    }


def held_values(run: RunResult, fold: FoldResult, layer: Layer) -> np.ndarray:
    """Per unit, the value mode "mean" holds it at, where the ablation acts on it.

    Input layer: a network input (raw or z-scored as the model sees it): the input BN's moving
    mean, whose BN output is exactly beta, or without an input BN the fold's scaler mean.
    Hidden layer: the node's pre-activation: beta where the layer has a BN (the BN output of the
    moving mean), else the training-row mean of its Dense output.
    """
    bn = fold.bn(layer)
    if layer.kind == "input":
        return bn.moving_mean if bn is not None else fold.network_input(run.spec, fold.scaler_mean)
    return bn.beta if bn is not None else run.layer_scaler(fold, layer)[0]


def _unit_bn(bn: BNState | None, unit: int, values: float | np.ndarray) -> float | np.ndarray:
    """One unit's BN output for `values` (the values themselves where the layer has no BN): the
    same arithmetic as bn_inference on the whole layer."""
    if bn is None:
        return values
    return bn_inference(BNState(bn.gamma[unit], bn.beta[unit], bn.moving_mean[unit],
                                bn.moving_var[unit]), values)


def ablated_outputs(spec: ArchSpec, weights: Weights, trace: Trace, layer: Layer,
                    unit: int, mode: str, held: np.ndarray | None,
                    perms: np.ndarray) -> list[np.ndarray]:
    """The network's outputs on the trace's rows with `unit` of the layer turned off (see the
    module's ablations): one array, or one per permutation (perms: (n, rows) row orders).

    Resumed from the intact pass (forward_from): only the layers from the ablated one on are
    recomputed, from the values the unit's layer hands on (the input BN's output, or the hidden
    pre-activation), where turning the unit off changes one column. held: held_values(...)."""
    if layer.kind == "input":
        bn, start, resume = weights.input_bn, trace.dense_input(), 0
    else:
        bn, start, resume = (weights.hidden_bn[layer.index] if weights.hidden_bn else None,
                             trace.pre_activation(layer.index), layer.index + 1)
    if mode == "permutation":
        # the layer's BN is elementwise, so shuffling its output shuffles its input
        columns = [start[perm, unit] for perm in perms]
    elif mode == "zero":  # the input set to 0, or the node's Dense output zeroed: its BN sees 0
        columns = [_unit_bn(bn, unit, 0.0)]
    else:  # held: a network input, or already a hidden pre-activation
        columns = [_unit_bn(bn, unit, held[unit]) if layer.kind == "input" else held[unit]]
    outputs = []
    for column in columns:
        ablated = start.copy()
        ablated[:, unit] = column
        h = ablated if layer.kind == "input" else activate(spec.activation, ablated)
        outputs.append(forward_from(spec, weights, h, resume))
    return outputs


def sensitivity(
    run: RunResult,
    layer: Layer = INPUT,
    ablations: Iterable[str] = ABLATIONS,
    n_permutations: int = SETTINGS.n_permutations,
    seed: int = SETTINGS.seed,
) -> pd.DataFrame:
    """One row per fold x unit x mode: DataFrame[layer, unit, fold, mode, gamma, abs_gamma, metrics].

    gamma is the unit's BN scale (NaN where the layer has no BN).
    """
    run.check_layer(layer)
    ablations = tuple(ablations)
    unknown = set(ablations) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablation(s) {sorted(unknown)}; choose from {ABLATIONS}")
    if n_permutations < 1:
        raise ValueError("n_permutations must be at least 1")
    names = run.unit_names(layer)

    def fold_rows(k: int, fold: FoldResult) -> list[dict]:
        trace = forward(run.spec, fold.weights, fold.network_input(run.spec, run.X[fold.test_rows]))
        truth = run.y[fold.test_rows]
        intact_mse = float(np.mean((trace.output - truth) ** 2))
        rng = np.random.default_rng([seed, k])
        perms = np.stack([rng.permutation(len(truth)) for _ in range(n_permutations)])
        bn = fold.bn(layer)
        held = held_values(run, fold, layer) if "mean" in ablations else None
        rows = []
        for unit, name in enumerate(names):
            gamma = float(bn.gamma[unit]) if bn is not None else np.nan
            for mode in ablations:
                preds = ablated_outputs(run.spec, fold.weights, trace, layer, unit, mode, held,
                                        perms)
                errors = np.concatenate([p - truth for p in preds])
                metrics = error_metrics(errors, np.tile(truth, len(preds)), intact_mse)
                rows.append({"layer": layer.kind, "unit": name, "fold": fold.fold, "mode": mode,
                             "gamma": gamma, "abs_gamma": abs(gamma), **metrics})
        return rows

    # the folds on every core: numpy leaves the GIL on whole-array operations, which on large
    # test sets are nearly all the work (1.3e8 row passes for a million sessions). BLAS gets
    # one thread per fold: its own threads on these narrow products spin more than they work
    # (a million sessions: 19 s with BLAS on two threads, 10 s this way)
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(
            min(os.cpu_count() or 1, len(run.folds))) as pool:
        per_fold = list(pool.map(fold_rows, range(len(run.folds)), run.folds))
    return pd.DataFrame([row for rows in per_fold for row in rows],
                        columns=list(SENSITIVITY_COLUMNS))


def cumulative_hidden_zero(run: RunResult, layer: Layer = FIRST_HIDDEN) -> pd.DataFrame:
    """The study's published hidden-node ablation: node k's row has nodes 1..k all zeroed.

    Kept only to reproduce the published file; `sensitivity(run, Layer.hidden(0))` ablates one
    node at a time, which is what the study meant to measure.
    """
    if layer.kind != "hidden":
        raise ValueError(f"the cumulative ablation zeroes hidden nodes, not the {layer.label}")
    run.check_layer(layer)
    names = run.unit_names(layer)
    rows = []
    for fold in run.folds:
        x = fold.network_input(run.spec, run.X[fold.test_rows])
        truth = run.y[fold.test_rows]
        intact_mse = float(np.mean((forward(run.spec, fold.weights, x).output - truth) ** 2))
        w = fold.weights.copy()
        bn = fold.bn(layer)
        for unit, name in enumerate(names):
            w.kernels[layer.index][:, unit] = 0.0
            w.biases[layer.index][unit] = 0.0
            gamma = float(bn.gamma[unit]) if bn is not None else np.nan
            metrics = error_metrics(forward(run.spec, w, x).output - truth, truth, intact_mse)
            rows.append({"layer": "hidden", "unit": name, "fold": fold.fold, "mode": "zero_cumulative",
                         "gamma": gamma, "abs_gamma": abs(gamma), **metrics})
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))


def ablations_coincide(sens: pd.DataFrame, first: str = "zero", second: str = "mean",
                   rtol: float = 1e-5) -> bool:
    """Whether two ablations of `sens` give the same MSE (to rtol) in every fold and unit,
    as "zero" and "mean" do where 0 is each unit's mean (see the module's docstring)."""
    keys = ["layer", "unit", "fold"]
    a, b = (sens[sens["mode"] == m].set_index(keys)["mse"].sort_index() for m in (first, second))
    return bool(len(a)) and a.index.equals(b.index) and bool(np.allclose(a, b, rtol=rtol, atol=0))
