"""Issue 26's acceptance: over independent simulated cohorts of 129 sessions, analysed as
`explain --mode raw` does, the cohort intervals of Spearman(|γ|, importance) are as wide as the
estimate varies between cohorts and hold the mean estimate. The cohorts and the summary are
benchmarks/bench_intervals.py's, which prints the same figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from bnapp.analyses.cohort_intervals import N_REPLICATES
from bnapp.analyses.concordance import DEFINITIONS

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_intervals.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_intervals", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cohort_intervals_are_as_wide_as_cohorts_differ_and_hold_the_mean():
    bench = _bench()
    per_cohort = pd.concat([bench.one_cohort(bench.FIRST_SEED + i, N_REPLICATES)
                            for i in range(20)])
    summary = bench.coverage_summary(per_cohort)
    assert list(summary.index) == list(DEFINITIONS)
    assert summary["cohort_ratio"].between(0.8, 1.5).all(), summary
    assert (summary["cohort_coverage"] >= 0.85).all(), summary
