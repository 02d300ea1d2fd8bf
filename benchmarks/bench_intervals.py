"""Do the |γ|-importance intervals describe cohorts like the user's? And what do they cost?

1. Coverage (issue 26's acceptance): independent simulated cohorts of 129 sessions
   (`synth --n 129 --seed S`, S = 101, 102, ...), each analysed as `explain --mode raw` does
   (the study's raw-input network, 10-fold CV, 200 epochs, seed 0; Shapley values over 100
   background rows, integrated gradients from the mean, the three ablations with 10 shuffles).
   Per definition of importance, Spearman(|γ|, importance) (the mean over folds): the SD of
   the estimate between cohorts, the mean 95% half-width of the cohort interval
   (bnapp.analyses.cohort_intervals) and of the old fold-bootstrap interval over 1.96 × that
   SD, and the share of cohorts whose interval holds the mean estimate.
2. Cost: the cohort intervals of every table that has them (concordance and association of the
   input and hidden layer) for a 10-fold run on Urea.csv and on 10,000 simulated sessions:
   the retraining, then the statistics through importance_tables and importance_report.

Run from the repository root: `.venv/bin/python benchmarks/bench_intervals.py [--cohorts 20]
[--replicates 100] [--skip-cost] [--skip-coverage]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bnapp.analyses import cohort_intervals, concordance  # noqa: E402
from bnapp.analyses.concordance import importance_report  # noqa: E402
from bnapp.analyses.layer_tables import importance_tables  # noqa: E402
from bnapp.engine.model import ArchSpec  # noqa: E402
from bnapp.engine.protocols import Protocol  # noqa: E402
from bnapp.engine.results import INPUT  # noqa: E402
from bnapp.engine.train import train_run  # noqa: E402
from bnapp.intake.data import load_dataset  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402
from bnapp.intake.units import STUDY_INPUTS, STUDY_TARGET  # noqa: E402

SEED_CSV = REPO.parent / "shared" / "seed" / "Urea.csv"
FIRST_SEED = 101
SESSIONS = 129


def synth(n: int, seed: int):
    """What `synth --n N --seed S` writes, read back as `explain --data` reads it."""
    text = simulate_cohort(n, seed).to_csv(index=False, float_format="%.1f",
                                           lineterminator="\n")
    return load_dataset(io.BytesIO(text.encode()), f"synth-{seed}.csv")


def input_importance(run) -> pd.DataFrame:
    """The input layer's importance table as `explain` computes it (every test row)."""
    explained = concordance.explanations(run, INPUT, n_background=100, n_orders=100,
                                         ig_baseline="mean", seed=0)
    return concordance.global_importance(run, explained, INPUT, n_permutations=10, seed=0)


def spearman_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["statistic"] == "spearman"].set_index("definition")


def one_cohort(seed: int, n_replicates: int) -> pd.DataFrame:
    """Per definition: the estimate, its cohort interval and the fold-bootstrap interval."""
    ds = synth(SESSIONS, seed)
    run = train_run(ds.X(STUDY_INPUTS), ds.y(STUDY_TARGET), ArchSpec.study_e2e(), Protocol(),
                    features=STUDY_INPUTS)
    table = input_importance(run)
    replicated = cohort_intervals.replicate_runs(cohort_intervals.Cohort.of_run(run),
                                                 n_replicates, seed=0).map(input_importance)
    cohort = spearman_rows(concordance.concordance(table, cohort=replicated))
    folds = spearman_rows(concordance.concordance(table))
    return pd.DataFrame({"cohort": seed, "rows": len(run.y), "estimate": cohort["estimate"],
                         "low": cohort["ci_low"], "high": cohort["ci_high"],
                         "fold_low": folds["ci_low"], "fold_high": folds["ci_high"]})


def coverage_summary(per_cohort: pd.DataFrame) -> pd.DataFrame:
    """Per definition: SD between cohorts, half-width ratios, coverage of the mean estimate."""
    def summary(g: pd.DataFrame) -> pd.Series:
        mean, sd = g["estimate"].mean(), g["estimate"].std(ddof=1)
        return pd.Series({
            "mean_estimate": mean, "sd_between": sd,
            "cohort_ratio": ((g["high"] - g["low"]) / 2).mean() / (1.96 * sd),
            "cohort_coverage": ((g["low"] <= mean) & (mean <= g["high"])).mean(),
            "fold_ratio": ((g["fold_high"] - g["fold_low"]) / 2).mean() / (1.96 * sd),
            "fold_coverage": ((g["fold_low"] <= mean) & (mean <= g["fold_high"])).mean()})

    return per_cohort.groupby(level="definition", sort=False).apply(summary)


def statistics(run, replicated) -> None:
    """Every layer's concordance and association with cohort intervals, as the library's
    entry points compute them."""
    tables = importance_tables(run, replicates=replicated)
    importance_report(run, sens=tables["sensitivity"], replicates=replicated)


def timed(fn, *args) -> tuple[float, float]:
    """(wall, CPU of this process) seconds of fn(*args)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - start, time.process_time() - cpu


def costs(n_replicates: int | None) -> None:
    ds = load_dataset(SEED_CSV)
    big = simulate_cohort(10_000, seed=0)
    cases = [("Urea.csv", ds.X(STUDY_INPUTS), ds.y(STUDY_TARGET)),
             ("10,000 simulated sessions", big[STUDY_INPUTS].to_numpy(float),
              big[STUDY_TARGET].to_numpy(float))]
    for name, X, y in cases:
        run = train_run(X, y, ArchSpec.study_e2e(), Protocol(), features=STUDY_INPUTS)
        replicates = n_replicates or cohort_intervals.default_replicates(len(y))
        cohort = cohort_intervals.Cohort.of_run(run)
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        replicated = cohort_intervals.replicate_runs(cohort, replicates)
        train = time.perf_counter() - start, time.process_time() - cpu
        took = timed(statistics, run, replicated)
        print(f"{name}, {replicates} replicates, load average {load:.1f}-"
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:\n"
              f"  retraining {train[0]:.1f} s wall ({train[1]:.1f} s CPU, both cores)\n"
              f"  every cohort interval's statistics: {took[0]:.1f} s wall, {took[1]:.1f} s CPU\n"
              f"  total: {train[0] + took[0]:.1f} s wall, {train[1] + took[1]:.1f} s CPU")


def coverage(cohorts: int, n_replicates: int) -> None:
    start = time.perf_counter()
    per_cohort = pd.concat([one_cohort(FIRST_SEED + i, n_replicates) for i in range(cohorts)])
    print(f"{cohorts} cohorts of {SESSIONS} simulated sessions "
          f"({per_cohort['rows'].min()}-{per_cohort['rows'].max()} usable rows), "
          f"{n_replicates} replicates each, {time.perf_counter() - start:.0f} s")
    with pd.option_context("display.width", 160, "display.max_columns", 12,
                           "display.precision", 3):
        print(coverage_summary(per_cohort))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=20)
    parser.add_argument("--replicates", type=int, default=cohort_intervals.N_REPLICATES)
    parser.add_argument("--cost-replicates", type=int, default=None,
                        help="replicates of the cost runs (default: default_replicates)")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-coverage", action="store_true")
    args = parser.parse_args()
    if not args.skip_coverage:
        coverage(args.cohorts, args.replicates)
    if not args.skip_cost:
        costs(args.cost_replicates)


if __name__ == "__main__":
    main()
