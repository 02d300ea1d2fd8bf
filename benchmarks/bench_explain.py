"""Time Shapley values, integrated gradients and the what-if view of the study's network.

1. The study's data (Urea.csv, 109 rows, 5 inputs): 10-fold CV (2 epochs: the weights do not
   matter for the timing), Shapley values of every test row against 100 background rows.
2. A simulated cohort of N rows (default 100000): the same on every test row of a 10-fold run.
Also times integrated gradients and one what-if update (one session, every fold).
Run from the repository root: `.venv/bin/python benchmarks/bench_explain.py [N ...]`.
Prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bnapp.analyses import explain  # noqa: E402
from bnapp.engine.model import ArchSpec  # noqa: E402
from bnapp.engine.protocols import Protocol  # noqa: E402
from bnapp.engine.train import train_run  # noqa: E402
from bnapp.intake.data import STUDY_INPUTS, STUDY_TARGET, load_dataset  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402

SEED_CSV = REPO.parent / "shared" / "seed" / "Urea.csv"


def timed(fn):
    """fn(), its wall time and its CPU time (on a shared machine the CPU time is the figure an
    idle core would give; the wall time includes waiting for a core)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - cpu


def report(run, name: str) -> None:
    n = sum(len(f.test_rows) for f in run.folds)
    (values, rows), took, cpu = timed(lambda: explain.shapley_values(run))
    total = values.groupby(["fold", "row"], sort=False)["value"].sum().to_numpy()
    gap = np.abs(rows["base_value"].to_numpy() + total - rows["prediction"].to_numpy()).max()
    print(f"{name}: Shapley of {n:,} test rows x {len(run.features)} inputs, 100 background, "
          f"exact (32 coalitions): {took:.2f} s wall, {cpu:.2f} s CPU "
          f"(max |base + sum - prediction| {gap:.1e})")
    (_, ig_rows), took, cpu = timed(lambda: explain.integrated_gradients(run))
    print(f"{name}: integrated gradients (64 steps) of {n:,} rows: {took:.2f} s wall, "
          f"{cpu:.2f} s CPU "
          f"(max completeness gap {ig_rows['completeness_gap'].abs().max():.1e})")
    times = [timed(lambda: explain.what_if(run, run.X[0]))[2] for _ in range(5)]
    print(f"{name}: one what-if update (prediction, Shapley, ICE over {len(run.folds)} folds): "
          f"median {np.median(times) * 1000:.0f} ms CPU")


def main(sizes: list[int]) -> None:
    ds = load_dataset(SEED_CSV)
    run = train_run(ds.X(STUDY_INPUTS), ds.y(STUDY_TARGET), ArchSpec.study_e2e(),
                    Protocol(folds=10, epochs=2), features=STUDY_INPUTS)
    report(run, "Urea.csv")
    for n in sizes:
        cohort = simulate_cohort(n, seed=0)
        run = train_run(cohort[STUDY_INPUTS].to_numpy(float), cohort[STUDY_TARGET].to_numpy(float),
                        ArchSpec.study_e2e(), Protocol(folds=10, epochs=1, batch_size=4096),
                        features=STUDY_INPUTS)
        report(run, f"{n:,} simulated rows")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000])
