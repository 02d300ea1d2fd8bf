"""Coverage of the CV+ prediction intervals on the synthetic cohort, over many seeds.

For each seed: simulate a cohort (the demo's size), train the study's network under k-fold CV,
and measure (1) the held-out coverage on the folds' test rows (what the Agreement page and
`analyze` report) and (2) the coverage of CV+ intervals for fresh sessions simulated with another
seed (what the Predict page promises), for the network and every baseline.

Run from the repository root: `.venv/bin/python benchmarks/bench_coverage.py [--seeds 20]`.
Prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnapp.analyses import conformal  # noqa: E402
from bnapp.analyses.baselines import METHODS, fold_predictions  # noqa: E402
from bnapp.engine.model import ArchSpec  # noqa: E402
from bnapp.engine.protocols import Protocol  # noqa: E402
from bnapp.engine.train import train_run  # noqa: E402
from bnapp.intake.data import STUDY_INPUTS, STUDY_TARGET  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402

FRESH_SEED_OFFSET = 10_000  # fresh sessions come from seeds no training cohort uses


def cohort(n: int, seed: int) -> pd.DataFrame:
    frame = simulate_cohort(n, seed)
    return frame[frame["Ueq"] >= frame["Upos"]]  # the rule every data set is read with


def one_seed(seed: int, args) -> list[dict]:
    train = cohort(args.n, seed)
    fresh = cohort(args.fresh, FRESH_SEED_OFFSET + seed)
    protocol = Protocol(folds=args.folds, epochs=args.epochs, seed=seed)
    run = train_run(train[STUDY_INPUTS].to_numpy(), train[STUDY_TARGET].to_numpy(),
                    ArchSpec.study_e2e(), protocol, features=STUDY_INPUTS, target=STUDY_TARGET)
    preds = fold_predictions(run)
    x_new, y_new = fresh[STUDY_INPUTS].to_numpy(), fresh[STUDY_TARGET].to_numpy()
    rows = []
    for normalized in (False, True):
        held = conformal.coverage(conformal.held_out_intervals(
            run, args.level, normalized=normalized, preds=preds), args.level)
        held = held[held["fold"] == "pooled"].set_index("method")
        for method in METHODS:
            low, high = conformal.new_intervals(run, x_new, method, args.level,
                                                normalized=normalized, preds=preds)
            ok = np.isfinite(low) & np.isfinite(high)
            inside = (y_new[ok] >= low[ok]) & (y_new[ok] <= high[ok])
            rows.append({"seed": seed, "method": method, "normalized": normalized,
                         "held_out": held.loc[method, "coverage"], "fresh": inside.mean(),
                         "fresh_width": float(np.mean(high[ok] - low[ok]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n", type=int, default=200, help="sessions per training cohort")
    parser.add_argument("--fresh", type=int, default=2000, help="fresh sessions per seed")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--level", type=float, default=conformal.DEFAULT_LEVEL)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for seed in range(args.seeds):
        rows += one_seed(seed, args)
        net = rows[-2 * len(METHODS)]
        print(f"seed {seed:2d}: network held-out {net['held_out']:.3f}, fresh {net['fresh']:.3f}",
              flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby(["normalized", "method"], sort=False).agg(
        held_out_mean=("held_out", "mean"), held_out_sd=("held_out", "std"),
        fresh_mean=("fresh", "mean"), fresh_sd=("fresh", "std"),
        fresh_width=("fresh_width", "mean")).reset_index()
    for which in ("held_out", "fresh"):
        summary[f"{which}_within_2pct"] = (summary[f"{which}_mean"] - args.level).abs() <= 0.02
    print(f"\nnominal {args.level:.0%}; {args.seeds} seeds x {args.n} sessions, "
          f"{args.folds}-fold CV, {args.epochs} epochs; {args.fresh} fresh sessions per seed")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
