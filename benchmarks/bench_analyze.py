"""Time `analyze`'s analyses on a large simulated run, step by step.

Trains the study network (10-fold CV) on N simulated sessions for a few epochs (the analyses'
cost does not depend on the epochs), then times `run_tables` and `run_figures` (what `analyze`
computes before writing files) and prints the totals and the process's peak RSS (Linux VmHWM).
With --profile they run under cProfile (slower), and each function they call directly is listed
with its cumulative wall time.
Run from the repository root:
`.venv/bin/python benchmarks/bench_analyze.py [N] [--epochs E] [--profile]`
(N defaults to 1,000,000). Prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bnapp.engine.model import ArchSpec  # noqa: E402
from bnapp.engine.protocols import Protocol  # noqa: E402
from bnapp.engine.train import train_run  # noqa: E402
from bnapp.intake.data import STUDY_INPUTS, STUDY_TARGET  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402
from bnapp.report import run_charts, run_report  # noqa: E402


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn):
    """fn(), its wall time and no breakdown."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start, []


def profiled(fn):
    """fn(), its wall time and the cumulative time of each function fn calls directly."""
    profile = cProfile.Profile(time.perf_counter)
    start = time.perf_counter()
    result = profile.runcall(fn)
    took = time.perf_counter() - start
    stats = pstats.Stats(profile).stats
    caller = next(key for key in stats if key[2] == fn.__name__)
    steps = sorted(((edge[3], key) for key, (*_, callers) in stats.items()
                    for who, edge in callers.items() if who == caller), reverse=True)
    return result, took, steps


def report(name: str, took: float, steps) -> None:
    print(f"{name}: {took:.1f} s")
    for seconds, (path, line, func) in steps:
        if seconds >= 0.05:
            print(f"  {seconds:7.2f} s  {func} ({Path(path).name}:{line})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sessions", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="list the time of each step")
    args = parser.parse_args()
    measure = profiled if args.profile else timed
    cohort = simulate_cohort(args.sessions, seed=0)
    start = time.perf_counter()
    run = train_run(cohort[STUDY_INPUTS].to_numpy(float), cohort[STUDY_TARGET].to_numpy(float),
                    ArchSpec.study_e2e(), Protocol(folds=10, epochs=args.epochs),
                    features=STUDY_INPUTS)
    print(f"{args.sessions:,} sessions, 10-fold x {args.epochs} epoch(s) trained in "
          f"{time.perf_counter() - start:.1f} s; peak RSS so far {peak_rss_mb():.0f} MB")

    def run_tables():
        return run_report.run_tables(run)

    tables, took, steps = measure(run_tables)
    report("run_tables", took, steps)

    def run_figures():
        return run_charts.run_figures(run, tables)

    _, fig_took, steps = measure(run_figures)
    report("run_figures", fig_took, steps)
    print(f"analyses in all: {took + fig_took:.1f} s; peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
