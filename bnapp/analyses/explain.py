"""Per-prediction explanations of a run: exact Shapley values, integrated gradients, ICE/PDP.

Every explanation works on engine.model's inference network written as ops
(bnapp.analyses.network_ops), so that the part of it after any layer is itself a network.
Shapley values use the linearity of the first Dense layer after the units (a coalition's
pre-activation is a sum of per-unit contributions, so 2^k coalitions x background rows cost one
small tensor add); integrated gradients the backward pass.

Shapley values are interventional: v(S) is the mean prediction over background rows (by default
100 of the fold's training rows, seeded) with the units in S taken from the explained row. Up to
EXACT_MAX_UNITS units every coalition is enumerated; above, antithetic permutation sampling
(n_orders sampled orders of the units and their reverses). Either way base value + sum =
prediction holds to rounding for every row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial

import numpy as np
import pandas as pd
from scipy import special

from bnapp.analyses.network_ops import Op, gradients, network_ops, run_ops, split_ops
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.model import activate
from bnapp.engine.results import FORWARD_BLOCK, INPUT, FoldResult, Layer, RunResult

EXACT_MAX_UNITS = 10
IG_STEPS = 64
IG_TOLERANCE = 1e-6  # completeness gap beyond which a row's path is cut finer
IG_MAX_PIECES = 64
IG_BASELINES = ("mean", "zero")
ICE_GRID = 30
ICE_ROWS = 50
BLOCK = 1 << 18  # float64 elements of one block of the coalition tensor (2 MB: in cache)


# ---------------------------------------------------------------------------- Shapley values

def _peel(tail: list[Op]) -> tuple[list[Op], Op, list[Op]]:
    """tail = per-unit ops, one Dense mixing the units linearly, the rest; the per-unit scales
    right after the Dense (a hidden BN) folded into it."""
    first = next(i for i, op in enumerate(tail) if op.kind == "dense")
    if any(op.kind != "scale" for op in tail[:first]):
        raise ValueError("the units must reach the first Dense layer through per-unit scales")
    dense, rest = tail[first], tail[first + 1:]
    while rest and rest[0].kind == "scale":
        dense = Op("dense", dense.a * rest[0].a, dense.b * rest[0].a + rest[0].b)
        rest = rest[1:]
    return tail[:first], dense, rest


def _mean_output(rest: list[Op], z: np.ndarray) -> np.ndarray:
    """The mean over axis 2 of rest's output on z (n, C, m, h), overwriting z.

    The hot loop of exact Shapley values (n x 2^k x m x h elements): activations in place, and
    a linear output's Dense applied after the mean over the background rather than before."""
    linear_end = len(rest) >= 2 and rest[-2].kind == "dense" and rest[-1].name == "linear"
    for op in rest[:-2] if linear_end else rest:
        if op.kind == "scale":
            z *= op.a
            z += op.b
        elif op.kind == "dense":
            z = z @ op.a + op.b
        elif op.name == "sigmoid":
            special.expit(z, out=z)
        elif op.name == "tanh":
            np.tanh(z, out=z)
        elif op.name == "relu":
            np.maximum(z, 0.0, out=z)
        else:  # engine.model's own (the three above are its hidden activations, in place)
            z = activate(op.name, z)
    if linear_end:
        return z.mean(2) @ rest[-2].a[:, 0] + rest[-2].b[0]
    return z[..., 0].mean(2)


def coalition_values(tail: list[Op], x: np.ndarray, background: np.ndarray,
                     masks: np.ndarray) -> np.ndarray:
    """v(S) for each row of x and each coalition (row of the boolean masks (C, p)): the mean
    output over background rows with the units in S taken from x. (n, C)."""
    scales, dense, rest = _peel(tail)
    u_x, u_b = run_ops(scales, x), run_ops(scales, background)
    masks = masks.astype(np.float64)
    c_x = u_x[:, :, None] * dense.a  # (n, p, h): each unit's share of the pre-activation
    c_b = u_b[:, :, None] * dense.a  # (m, p, h)
    base = (u_b @ dense.a + dense.b)[None] - np.einsum("cp,mph->cmh", masks, c_b)  # (C, m, h)
    n, (n_coal, m, h) = len(x), base.shape
    out = np.empty((n, n_coal))
    step = max(1, BLOCK // (n_coal * m * h))
    for start in range(0, n, step):
        mixed = np.einsum("cp,nph->nch", masks, c_x[start:start + step])
        out[start:start + step] = _mean_output(rest, mixed[:, :, None, :] + base[None])
    return out


def _exact_weights(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Every coalition as a mask (2^p, p), and W with phi = v @ W: W[S, j] is the Shapley weight
    |S|!(p-|S|-1)!/p! of S ∪ {j} (positive, j in S) or of S (negative, j not in S)."""
    masks = ((np.arange(2**p)[:, None] >> np.arange(p)) & 1).astype(bool)
    size = masks.sum(1)
    weight = np.array([factorial(s) * factorial(p - s - 1) / factorial(p) for s in range(p)])
    w = np.where(masks, weight[np.maximum(size - 1, 0)][:, None],
                 -weight[np.minimum(size, p - 1)][:, None])
    return masks, w


def _permutation_weights(p: int, n_orders: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions along sampled permutations and their reverses (antithetic), and W with
    phi = v @ W: the mean over permutations of each unit's marginal contribution."""
    perms = np.stack([rng.permutation(p) for _ in range(n_orders)])
    perms = np.concatenate([perms, perms[:, ::-1]])
    n_perm = len(perms)
    prefix = np.zeros((n_perm, p + 1, p), dtype=bool)
    for k in range(1, p + 1):
        prefix[np.arange(n_perm)[:, None], k, perms[:, :k]] = True
    masks = prefix.reshape(-1, p)
    w = np.zeros((n_perm, p + 1, p))
    for k in range(p):  # the unit added at position k gains v(prefix k+1) - v(prefix k)
        w[np.arange(n_perm), k + 1, perms[:, k]] += 1.0
        w[np.arange(n_perm), k, perms[:, k]] -= 1.0
    return masks, w.reshape(-1, p) / n_perm


def shapley_matrix(tail: list[Op], x: np.ndarray, background: np.ndarray, *,
                   n_orders: int = SETTINGS.n_orders,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(phi (n, p), base value (n,)) of the network `tail` at rows x against the background:
    exact up to EXACT_MAX_UNITS units, else permutation sampling. base + phi.sum(1) is the
    prediction at x."""
    x, background = np.atleast_2d(np.asarray(x, float)), np.asarray(background, float)
    p = x.shape[1]
    if p <= EXACT_MAX_UNITS:
        masks, w = _exact_weights(p)
    else:
        masks, w = _permutation_weights(p, n_orders, rng or np.random.default_rng(0))
    v = coalition_values(tail, x, background, masks)
    empty = np.flatnonzero(~masks.any(1))[0]
    return v @ w, v[:, empty]


# ------------------------------------------------------------------------ integrated gradients

KINK_SCAN = 256  # path points searched for a ReLU switching on or off
KINK_BISECTIONS = 52  # halvings of a bracketed switch: down to float64 resolution of [0, 1]


def _relu_inputs(ops: list[Op], h: np.ndarray) -> np.ndarray:
    """(n, units) the inputs of every ReLU of the network at rows h, side by side."""
    found = []
    for op in ops:
        if op.kind == "act" and op.name == "relu":
            found.append(h)
        h = run_ops([op], h)
    return np.concatenate(found, axis=1)


def _kinks(tail: list[Op], start: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """(n, K) the points alpha in (0, 1) where a ReLU of `tail` switches along each row's path
    start + alpha * delta, NaN-padded: scanned at KINK_SCAN points, then bisected. A unit that
    switches on and off again between two scan points is missed."""
    n, p = start.shape
    scan = np.linspace(0.0, 1.0, KINK_SCAN + 1)
    path = start[:, None, :] + scan[None, :, None] * delta[:, None, :]
    z = _relu_inputs(tail, path.reshape(-1, p)).reshape(n, len(scan), -1)
    row, step, unit = np.nonzero(np.signbit(z[:, :-1]) != np.signbit(z[:, 1:]))
    lo, hi = scan[step], scan[step + 1]
    sign_lo = np.signbit(z[row, step, unit])
    for _ in range(KINK_BISECTIONS):
        mid = (lo + hi) / 2
        z_mid = _relu_inputs(tail, start[row] + mid[:, None] * delta[row])[np.arange(len(row)), unit]
        same = np.signbit(z_mid) == sign_lo
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    counts = np.bincount(row, minlength=n)
    kinks = np.full((n, max(counts.max(initial=0), 1)), np.nan)
    order = np.argsort(row, kind="stable")
    slot = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    kinks[row[order], slot] = ((lo + hi) / 2)[order]
    return kinks


@functools.lru_cache(maxsize=8)
def _gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes on [0, 1] and weights on [-1, 1] (leggauss costs ~2 ms a call)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    nodes = (nodes + 1) / 2
    nodes.flags.writeable = weights.flags.writeable = False
    return nodes, weights


def _path_integral(tail: list[Op], start: np.ndarray, delta: np.ndarray, steps: int,
                   pieces: int) -> np.ndarray:
    """delta * the integral over alpha in [0, 1] of the gradient at start + alpha * delta: the
    path cut into `pieces` equal parts and at every ReLU switch, Gauss-Legendre on each part."""
    nodes, weights = _gauss_legendre(steps)
    n, p = start.shape
    has_relu = any(op.kind == "act" and op.name == "relu" for op in tail)
    cuts = [np.broadcast_to(np.linspace(0.0, 1.0, pieces + 1), (n, pieces + 1))]
    if has_relu:
        cuts.append(np.nan_to_num(_kinks(tail, start, delta), nan=1.0))
    bounds = np.sort(np.concatenate(cuts, axis=1), axis=1)
    width = np.diff(bounds, axis=1)  # (rows, parts); zero-width parts weigh nothing
    alphas = (bounds[:, :-1, None] + width[:, :, None] * nodes).reshape(n, -1)
    w = (width[:, :, None] * weights / 2).reshape(n, -1)
    path = start[:, None, :] + alphas[:, :, None] * delta[:, None, :]
    _, grad = gradients(tail, path.reshape(-1, p))
    return delta * np.einsum("nsp,ns->np", grad.reshape(n, -1, p), w)


def integrated_gradients_matrix(tail: list[Op], x: np.ndarray, baseline: np.ndarray,
                                steps: int = IG_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """(attributions (n, p), completeness gap (n,)) of the network `tail` from baseline to x:
    (x - baseline) times the path integral of the gradient, by Gauss-Legendre quadrature with
    `steps` nodes; the gap is sum(attributions) - (f(x) - f(baseline)), 0 when exact.

    The gradient of a ReLU network jumps where a ReLU switches, which no fixed quadrature
    integrates well: the path is cut at those points and each piece gets its own `steps` nodes
    (on a piece of a pure-ReLU network the gradient is constant, so the integral is exact).
    Rows whose gap exceeds IG_TOLERANCE (a very steep smooth network) are integrated again on
    twice as many pieces, up to IG_MAX_PIECES.
    """
    x = np.atleast_2d(np.asarray(x, float))
    baseline = np.broadcast_to(np.asarray(baseline, float), x.shape)
    n, p = x.shape
    delta = x - baseline
    change = run_ops(tail, x)[:, 0] - run_ops(tail, baseline)[:, 0]
    attributions = np.empty((n, p))
    block = max(1, BLOCK // (steps * p * 8))
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        pieces = 1
        while len(rows):
            attributions[rows] = _path_integral(tail, baseline[rows], delta[rows], steps, pieces)
            gap = np.abs(attributions[rows].sum(1) - change[rows])
            pieces *= 2
            rows = rows[gap > IG_TOLERANCE] if pieces <= IG_MAX_PIECES else rows[:0]
    return attributions, attributions.sum(1) - change


# ----------------------------------------------------------------------------- a run's folds

def _head_tail(run: RunResult, fold: FoldResult, layer: Layer) -> tuple[list[Op], list[Op]]:
    run.check_layer(layer)
    return split_ops(network_ops(run.spec, fold.weights), layer)


def background_rows(fold: FoldResult, n_background: int = SETTINGS.n_background,
                    seed: int = SETTINGS.seed) -> np.ndarray:
    """n_background of the fold's training rows (all when fewer), drawn with a seed per fold."""
    rng = np.random.default_rng([seed, fold.fold])
    n = min(n_background, len(fold.train_rows))
    return np.sort(rng.choice(fold.train_rows, size=n, replace=False))


def layer_units(run: RunResult, fold: FoldResult, head: list[Op], x_raw: np.ndarray) -> np.ndarray:
    """The layer's unit values (network input, or hidden activations) of raw rows x_raw."""
    return run_ops(head, fold.network_input(run.spec, x_raw))


def explained_rows(fold: FoldResult, max_rows: int | None = None,
                   seed: int = SETTINGS.seed) -> np.ndarray:
    """The fold's test rows, or a seeded sample of max_rows of them (for the dashboard and the
    export on large data sets, where mean |attribution| needs no million rows)."""
    rows = fold.test_rows
    if max_rows is None or len(rows) <= max_rows:
        return rows
    return np.sort(np.random.default_rng([seed, fold.fold, 1]).choice(rows, max_rows,
                                                                       replace=False))


def _row_ids(run: RunResult, rows: np.ndarray) -> np.ndarray:
    return run.row_ids[rows] if run.row_ids is not None else rows


def _tidy(run: RunResult, fold: FoldResult, rows: np.ndarray, names: list[str],
          values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"fold": fold.fold, "row": np.repeat(_row_ids(run, rows), len(names)),
                         "unit": np.tile(names, len(rows)), "value": values.ravel()})


def _explain_folds(run: RunResult, layer: Layer, max_rows: int | None, seed: int,
                   explain_fold: Callable) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-fold loop of every attribution: each fold's test rows (at most max_rows, seeded)
    as the layer's unit values x, explain_fold(fold, head, tail, x) -> (attributions (rows,
    units), {column: per-row values}); stacked as (values DataFrame[fold, row, unit, value],
    rows DataFrame[fold, row, *columns])."""
    names = run.unit_names(layer)
    values, per_row = [], []
    for fold in run.folds:
        head, tail = _head_tail(run, fold, layer)
        rows = explained_rows(fold, max_rows, seed)
        attributions, columns = explain_fold(fold, head, tail, layer_units(run, fold, head,
                                                                            run.X[rows]))
        values.append(_tidy(run, fold, rows, names, attributions))
        per_row.append(pd.DataFrame({"fold": fold.fold, "row": _row_ids(run, rows), **columns}))
    return pd.concat(values, ignore_index=True), pd.concat(per_row, ignore_index=True)


def shapley_values(run: RunResult, layer: Layer = INPUT, *,
                   n_background: int = SETTINGS.n_background, n_orders: int = SETTINGS.n_orders,
                   seed: int = SETTINGS.seed,
                   max_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shapley values of every fold's test rows (at most max_rows per fold) over the layer's
    units.

    (values DataFrame[fold, row, unit, value], rows DataFrame[fold, row, base_value,
    prediction]); row is the row number in the user's file where the run knows it.
    """
    def explain_fold(fold, head, tail, x):
        bg = layer_units(run, fold, head, run.X[background_rows(fold, n_background, seed)])
        phi, base = shapley_matrix(tail, x, bg, n_orders=n_orders,
                                   rng=np.random.default_rng([seed, fold.fold]))
        return phi, {"base_value": base, "prediction": base + phi.sum(1)}

    return _explain_folds(run, layer, max_rows, seed, explain_fold)


def ig_baseline(run: RunResult, fold: FoldResult, head: list[Op], baseline: str) -> np.ndarray:
    """The path's start: the layer's training-row mean ("mean"), or all units 0 ("zero", the
    study's ablation)."""
    if baseline not in IG_BASELINES:
        raise ValueError(f"baseline must be one of {IG_BASELINES}, not {baseline!r}")
    width = run_ops(head, fold.network_input(run.spec, run.X[:1])).shape[1]
    if baseline == "zero":
        return np.zeros(width)
    # in blocks of rows: on a million training rows, whole-array temporaries cost more in page
    # faults than the arithmetic
    rows, total = fold.train_rows, np.zeros(width)
    for start in range(0, len(rows), FORWARD_BLOCK):
        total += layer_units(run, fold, head, run.X[rows[start:start + FORWARD_BLOCK]]).sum(0)
    return total / len(rows)


def integrated_gradients(run: RunResult, layer: Layer = INPUT, *,
                         baseline: str = "mean", steps: int = IG_STEPS, seed: int = SETTINGS.seed,
                         max_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Integrated gradients of every fold's test rows (at most max_rows per fold, as
    shapley_values picks them) over the layer's units.

    (values DataFrame[fold, row, unit, value], rows DataFrame[fold, row, base_value,
    prediction, completeness_gap]): base_value is the prediction at the baseline.
    """
    def explain_fold(fold, head, tail, x):
        start = ig_baseline(run, fold, head, baseline)
        attr, gap = integrated_gradients_matrix(tail, x, start, steps)
        return attr, {"base_value": run_ops(tail, start[None])[0, 0],
                      "prediction": run_ops(tail, x)[:, 0], "completeness_gap": gap}

    return _explain_folds(run, layer, max_rows, seed, explain_fold)


def gradient_x_input(run: RunResult, layer: Layer = INPUT, *,
                     seed: int = SETTINGS.seed, max_rows: int | None = None) -> pd.DataFrame:
    """Gradient times input of every fold's test rows (at most max_rows per fold, as
    shapley_values picks them): DataFrame[fold, row, unit, value]."""
    return _explain_folds(run, layer, max_rows, seed,
                          lambda fold, head, tail, x: (x * gradients(tail, x)[1], {}))[0]


# --------------------------------------------------------------------------------- ICE and PDP

def ice_grid(run: RunResult, n_grid: int = ICE_GRID) -> np.ndarray:
    """(n_grid, p): per input, evenly spaced values over its observed 1st-99th percentile."""
    low, high = np.percentile(run.X, [1, 99], axis=0)
    return np.linspace(low, high, n_grid)


def _ice_predictions(run: RunResult, x_raw: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(folds, p, grid, rows): each fold's prediction with input j set to each grid value."""
    n, p = x_raw.shape
    g = len(grid)
    varied = np.broadcast_to(x_raw, (p, g, n, p)).copy()
    for j in range(p):
        varied[j, :, :, j] = grid[:, j, None]
    flat = varied.reshape(-1, p)
    return np.stack([run.fold_predictions(f, flat) for f in run.folds]).reshape(-1, p, g, n)


def ice_pdp(run: RunResult, n_rows: int = ICE_ROWS, n_grid: int = ICE_GRID,
            seed: int = SETTINGS.seed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ICE curves of the fold ensemble for a seeded sample of rows, and the partial dependence.

    (ice DataFrame[unit, value, row, prediction] (mean over folds), pdp DataFrame[unit, value,
    pdp, pdp_low, pdp_high, pdp_sd, in_training_range]): pdp is the mean over rows and folds;
    low/high/sd are the spread of the folds' own partial dependence; in_training_range is False
    where the value lies outside some fold's training rows, whose model extrapolates there.
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(run.X), size=min(n_rows, len(run.X)), replace=False))
    grid = ice_grid(run, n_grid)
    preds = _ice_predictions(run, run.X[rows], grid)  # (F, p, g, n)
    ensemble = preds.mean(0)
    p, g, n = ensemble.shape
    ice = pd.DataFrame({"unit": np.repeat(run.features, g * n),
                        "value": np.repeat(grid.T.ravel(), n),
                        "row": np.tile(_row_ids(run, rows), p * g),
                        "prediction": ensemble.ravel()})
    per_fold = preds.mean(-1)  # (F, p, g)
    pdp = pd.DataFrame({"unit": np.repeat(run.features, g), "value": grid.T.ravel(),
                        "pdp": per_fold.mean(0).ravel(), "pdp_low": per_fold.min(0).ravel(),
                        "pdp_high": per_fold.max(0).ravel(),
                        "pdp_sd": per_fold.std(0, ddof=1).ravel() if len(run.folds) > 1
                        else np.zeros(p * g),
                        "in_training_range": _in_training_range(run, grid).T.ravel()})
    return ice, pdp


def _in_training_range(run: RunResult, grid: np.ndarray) -> np.ndarray:
    """(grid, p): whether each grid value lies within every fold's training rows' range."""
    inside = np.ones(grid.shape, dtype=bool)
    for fold in run.folds:
        train = run.X[fold.train_rows]
        inside &= (grid >= train.min(0)) & (grid <= train.max(0))
    return inside


# ------------------------------------------------------------------------------------- what-if

@dataclass
class WhatIf:
    """One session explained by the fold ensemble."""

    predictions: np.ndarray  # (folds,) each fold's prediction
    base_value: float  # mean over folds of the folds' base values
    shapley: pd.DataFrame  # [unit, value, contribution, contribution_sd]: fold mean and SD
    ice: pd.DataFrame  # [unit, value, prediction, low, high]: ensemble curve and fold range

    @property
    def prediction(self) -> float:
        return float(self.predictions.mean())


def what_if(run: RunResult, session: np.ndarray, *, n_background: int = SETTINGS.n_background,
            n_grid: int = ICE_GRID, seed: int = SETTINGS.seed) -> WhatIf:
    """Prediction, Shapley values and ICE curves of one session (raw input values, (p,)).

    The ensemble's Shapley values are the mean of the folds' (Shapley values are linear in the
    model), so base value + their sum is the ensemble's prediction.
    """
    x = np.asarray(session, dtype=np.float64).reshape(1, -1)
    phis, bases = [], []
    for fold in run.folds:
        head, tail = _head_tail(run, fold, INPUT)
        bg = layer_units(run, fold, head, run.X[background_rows(fold, n_background, seed)])
        phi, base = shapley_matrix(tail, layer_units(run, fold, head, x), bg,
                                   rng=np.random.default_rng([seed, fold.fold]))
        phis.append(phi[0])
        bases.append(base[0])
    phis = np.array(phis)
    shapley = pd.DataFrame({"unit": run.features, "value": x[0], "contribution": phis.mean(0),
                            "contribution_sd": phis.std(0, ddof=1) if len(phis) > 1 else 0.0})
    grid = ice_grid(run, n_grid)
    preds = _ice_predictions(run, x, grid)[..., 0]  # (F, p, g)
    g = len(grid)
    ice = pd.DataFrame({"unit": np.repeat(run.features, g), "value": grid.T.ravel(),
                        "prediction": preds.mean(0).ravel(), "low": preds.min(0).ravel(),
                        "high": preds.max(0).ravel()})
    return WhatIf(run.ensemble_predictions(x)[:, 0], float(np.mean(bases)), shapley, ice)
