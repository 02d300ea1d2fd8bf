"""The study's grid search (its table 1): 480 architectures scored by cross-validated MSE.

All models of one hidden shape (every activation, output, BN and input-mode variant, every fold)
form one stack for the compiled kernel; the shapes are fanned out with joblib.Parallel. The
kernel releases the GIL, so by default the shapes run on threads in this process (no worker
start-up); an enclosing `joblib.parallel_config(backend=...)` (loky, Dask) takes over instead.
The kernel (numba) and joblib are imported only when a grid is run, so listing the grid and
reading a cached table stay cheap.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnapp.engine.model import ACTIVATIONS, BN_DECAYS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec
from bnapp.engine.train import (
    Progress,
    Protocol,
    build_datasets,
    check_arrays,
    initial_stack,
    make_splits,
    padded_width,
)

GRID_DEPTHS = (1, 2, 3, 4)
GRID_WIDTHS = (2, 3, 4, 5, 6)
# the stability column: how far a training ends from one whose initial kernels differ by this
PERTURBATION = 1e-12
# an instability above this (1 % of the CV MSE from a 1e-12 start) is reported as chaotic
CHAOTIC_INSTABILITY = 0.01


def grid_specs(*, depths: Sequence[int] = GRID_DEPTHS, widths: Sequence[int] = GRID_WIDTHS,
               activations: Sequence[str] = ACTIVATIONS,
               output_activations: Sequence[str] = OUTPUT_ACTIVATIONS,
               bn: Sequence[bool] = (False, True),
               input_modes: Sequence[str] = INPUT_MODES) -> list[ArchSpec]:
    """The study's grid, or the part of it with these depths, widths, activations, BN choices
    (input and hidden BN together) and input modes, in the study grid's order."""
    return [
        ArchSpec(hidden=(width,) * depth, activation=act, output_activation=out, input_bn=b,
                 hidden_bn=b, input_mode=mode)
        for depth, width, act, out, b, mode in itertools.product(
            GRID_DEPTHS, GRID_WIDTHS, ACTIVATIONS, OUTPUT_ACTIVATIONS, (False, True), INPUT_MODES)
        if depth in depths and width in widths and act in activations
        and out in output_activations and b in bn and mode in input_modes
    ]


def study_grid() -> list[ArchSpec]:
    """1-4 hidden layers x 2-6 units (same in every layer) x activation x output activation x
    BN on/off (input and hidden together) x raw/z-scored input: 480 specs."""
    return grid_specs()


def perturb_kernels(P: np.ndarray, n_inputs: int, specs: Sequence[ArchSpec],
                    delta: float = PERTURBATION) -> np.ndarray:
    """The stack's initial parameters with every kernel weight moved by delta (padding and the
    BN parameters untouched)."""
    from bnapp.engine import kernel

    width = padded_width(specs, n_inputs)
    out = P.copy()
    block = out[:, : kernel.layout(width)["bias"]]
    block[block != 0.0] += delta
    return out


def run_grid(X, y, protocol: Protocol, specs: Sequence[ArchSpec] | None = None, *,
             features: Sequence[str], groups=None, progress: Progress | None = None,
             n_jobs: int = -1, stability: bool = True) -> pd.DataFrame:
    """Cross-validated test MSE (mean and SD over folds) of every spec, one row per spec.

    A configuration whose training diverges (NaN/inf loss in any fold) gets NaN scores and
    diverged=True rather than stopping the grid. stability: also train every model a second
    time from initial kernels moved by PERTURBATION, and report in `instability` how far the two
    CV MSEs end apart (|difference| / CV MSE): rounding-sized changes that grow to visible ones
    mark a chaotic training, whose rank in the grid is partly chance.
    """
    from joblib import Parallel, delayed

    from bnapp.engine import kernel

    X, y = check_arrays(X, y, features)
    specs = list(study_grid() if specs is None else specs)
    splits = make_splits(protocol, len(X), groups)
    data, index, _ = build_datasets(X, y, splits, protocol, sorted({s.input_mode for s in specs}))
    P, cfg = initial_stack(specs, splits, index, X.shape[1], protocol)
    n_folds = len(splits)
    # one task per hidden shape, the biggest first so the last tasks to start are short
    shapes = sorted({s.hidden for s in specs}, key=lambda h: -sum(h) * len(h))
    stacks = [P, perturb_kernels(P, X.shape[1], specs)] if stability else [P]
    tasks = []
    for shape in shapes:
        models = np.concatenate([np.arange(i * n_folds, (i + 1) * n_folds)
                                 for i, s in enumerate(specs) if s.hidden == shape])
        tasks += [(k, models) for k in range(len(stacks))]
    sets = data.without_data()  # x and y go as arguments of their own: see fan_out_data
    jobs = (delayed(kernel.score_stack)(stacks[k][models], cfg[models], data.x, data.y, sets,
                                        epochs=protocol.epochs, batch_size=protocol.batch_size,
                                        lr=protocol.lr, patience=protocol.patience or 0,
                                        bn_update=BN_DECAYS[protocol.bn_decay])
            for k, models in tasks)
    mse = np.empty((len(stacks), len(P)))
    parallel = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")
    tell = _Countdown(specs, [models for _, models in tasks], n_folds, len(stacks), progress)
    for (k, models), (scores, _) in zip(tasks, parallel(jobs), strict=True):
        mse[k, models] = scores
        tell(models)
    shape = (len(specs), n_folds)
    return _grid_frame(specs, mse[0].reshape(shape), X.shape[1],
                       mse[1].reshape(shape) if stability else None)


class _Countdown:
    """Progress as "n of N networks, about T left": a task's share of the work is its models'
    hidden nodes (a step costs about that), and the time left extrapolates the time so far."""

    def __init__(self, specs: Sequence[ArchSpec], task_models: list[np.ndarray], n_folds: int,
                 n_stacks: int, progress: Progress | None):
        self.progress = progress
        self.cost = np.array([sum(s.hidden) + 1 for s in specs for _ in range(n_folds)], float)
        self.total = sum(self.cost[m].sum() for m in task_models)
        self.n_trainings = sum(len(m) for m in task_models)
        self.trainings = n_folds * n_stacks  # a network is done after all of these
        self.n_specs, self.done_work, self.done_models = len(specs), 0.0, 0
        self.start = time.monotonic()

    def __call__(self, models: np.ndarray) -> None:
        self.done_work += self.cost[models].sum()
        self.done_models += len(models)
        if self.progress is None:
            return
        # exactly 1 at the end, whatever the rounding of the sums
        fraction = 1.0 if self.done_models == self.n_trainings else self.done_work / self.total
        networks = self.done_models // self.trainings
        left = (time.monotonic() - self.start) * (1 - fraction) / fraction
        self.progress(fraction, f"{networks} of {self.n_specs} networks, "
                      + (f"about {_duration(left)} left" if fraction < 1 else "done"))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _grid_frame(specs: list[ArchSpec], mse: np.ndarray, n_inputs: int,
                mse_perturbed: np.ndarray | None = None) -> pd.DataFrame:
    counts = [s.param_counts(n_inputs) for s in specs]
    diverged = np.isnan(mse).any(axis=1)
    k = mse.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):  # exploding relu runs: an SD of inf is the truth
        filled = np.where(diverged[:, None], 0.0, mse)
        mean, sd = filled.mean(axis=1), filled.std(axis=1)
        # standard error of the CV mean: the sample SD over folds / sqrt(k) = sd / sqrt(k - 1)
        se = sd / np.sqrt(k - 1) if k > 1 else np.full(len(specs), np.nan)
    frame = pd.DataFrame({
        "label": [s.label for s in specs],
        "hidden": [str(s.hidden) for s in specs],
        "n_layers": [len(s.hidden) for s in specs],
        "width": [max(s.hidden) for s in specs],
        "activation": [s.activation for s in specs],
        "output_activation": [s.output_activation for s in specs],
        "bn": [s.input_bn and s.hidden_bn for s in specs],
        "input_bn": [s.input_bn for s in specs],
        "hidden_bn": [s.hidden_bn for s in specs],
        "input_mode": [s.input_mode for s in specs],
        "trainable": [c.trainable for c in counts],
        "non_trainable": [c.non_trainable for c in counts],
        "total_params": [c.total for c in counts],
        # SD over folds with ddof=0, as numpy/sklearn's cross_val_score(...).std()
        "cv_mse_mean": np.where(diverged, np.nan, mean),
        "cv_mse_sd": np.where(diverged, np.nan, sd),
        "cv_mse_se": np.where(diverged, np.nan, se),
        "diverged": diverged,
    })
    if mse_perturbed is not None:
        frame.insert(frame.columns.get_loc("diverged"), "instability",
                     instability(mse, mse_perturbed))
    return frame


def instability(mse: np.ndarray, mse_perturbed: np.ndarray) -> np.ndarray:
    """|CV MSE of the perturbed trainings - CV MSE| / CV MSE, per configuration (rows of the
    (configs, folds) arrays); NaN where the unperturbed training diverged, inf where only the
    perturbed one did."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a, b = mse.mean(axis=1), mse_perturbed.mean(axis=1)
        out = np.abs(b - a) / a
    out[np.isnan(a)] = np.nan
    out[~np.isnan(a) & np.isnan(b)] = np.inf
    return out


def grid_spec(row) -> ArchSpec:
    """The ArchSpec of one row of a run_grid table (also after a CSV round trip)."""
    return ArchSpec(
        hidden=tuple(int(h) for h in re.findall(r"\d+", str(row["hidden"]))),
        activation=row["activation"],
        output_activation=row["output_activation"],
        input_bn=bool(row["input_bn"]),
        hidden_bn=bool(row["hidden_bn"]),
        input_mode=row["input_mode"],
    )


def best_per_mode(grid_df: pd.DataFrame) -> pd.DataFrame:
    """The lowest-CV-MSE configuration for each input mode (diverged ones never win)."""
    scored = grid_df.dropna(subset=["cv_mse_mean"])
    best = scored.loc[scored.groupby("input_mode")["cv_mse_mean"].idxmin()]
    return best.sort_values("input_mode").reset_index(drop=True)


def near_best(grid_df: pd.DataFrame) -> pd.Series:
    """Whether each configuration's CV MSE is within one standard error of the best of its input
    mode (the one-standard-error rule; Hastie, Tibshirani & Friedman, The Elements of
    Statistical Learning, 2nd ed., section 7.10): the folds cannot tell these apart from the
    best, so their order among themselves is noise. The best itself is True."""
    best = best_per_mode(grid_df).set_index("input_mode")
    bound = grid_df["input_mode"].map(best["cv_mse_mean"] + best["cv_mse_se"].fillna(0.0))
    return (grid_df["cv_mse_mean"] <= bound).rename("near_best")


def simplest_near_best(grid_df: pd.DataFrame) -> pd.DataFrame:
    """Per input mode, the network with the fewest parameters among those within one standard
    error of the best (ties: the lower CV MSE), which the one-standard-error rule picks."""
    close = grid_df[near_best(grid_df)].sort_values(["total_params", "cv_mse_mean"], kind="stable")
    return close.drop_duplicates("input_mode").sort_values("input_mode").reset_index(drop=True)
