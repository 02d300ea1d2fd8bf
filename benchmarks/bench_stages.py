"""Time the BN stages page's box summaries: the long-frame path against stage_summary.

Trains the study's DLNNe2e for one epoch (10-fold CV, large batches: the weights do not matter
for the timing) on a simulated cohort, then times, per layer, `stage_quantiles(bn_stages(...))`
(what the page did) and `stage_summary(...)` (what it does now), and checks they agree.
Run from the repository root: `.venv/bin/python benchmarks/bench_stages.py [N ...]`
(default 200000 1000000). Prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnapp.analyses.stages import bn_stages, stage_quantiles, stage_summary  # noqa: E402
from bnapp.engine.model import ArchSpec  # noqa: E402
from bnapp.engine.protocols import Protocol  # noqa: E402
from bnapp.engine.results import network_layers  # noqa: E402
from bnapp.engine.train import train_run  # noqa: E402
from bnapp.intake.data import STUDY_INPUTS, STUDY_TARGET  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def bench(n: int) -> None:
    cohort = simulate_cohort(n, seed=0)
    run, trained = timed(lambda: train_run(
        cohort[STUDY_INPUTS].to_numpy(float), cohort[STUDY_TARGET].to_numpy(float),
        ArchSpec.study_e2e(), Protocol(folds=10, epochs=1, batch_size=4096),
        features=STUDY_INPUTS))
    print(f"n = {n:,} rows (10 folds, training 1 epoch took {trained:.1f} s)")
    for layer in network_layers(run.spec):
        stages, t_frame = timed(bn_stages, run, layer)
        slow, t_boxes = timed(stage_quantiles, stages)
        del stages
        fast, t_fast = timed(stage_summary, run, layer)
        pd.testing.assert_frame_equal(fast, slow, check_exact=False, rtol=1e-12, atol=1e-12)
        print(f"  {layer.stem:7s}: long frame {t_frame + t_boxes:6.2f} s (bn_stages {t_frame:.2f} s "
              f"+ stage_quantiles {t_boxes:.2f} s); stage_summary {t_fast:5.2f} s "
              f"({(t_frame + t_boxes) / t_fast:.0f}x faster, {len(fast)} boxes, same numbers)")


if __name__ == "__main__":
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for n in [int(arg) for arg in sys.argv[1:]] or [200_000, 1_000_000]:
        bench(n)
