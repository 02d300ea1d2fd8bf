"""Time a small grid search as the Grid page runs it, on a quiet machine and while other
processes keep every core busy.

Run from the repository root: `.venv/bin/python benchmarks/bench_grid_load.py [--hogs N]
[--repeat R] [--folds F] [--epochs E]`. Each run submits the study's 480 networks (default 2 folds
x 20 epochs, with the stability check) to a JobManager, as the page's button does, with an empty
cache directory; "loaded" runs start N processes spinning on the CPU at normal priority first
(default: one per core). Prints each run's time, the medians and their ratio; asserts nothing
(tests/engine/test_grid.py checks the behaviour).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOG = "while True: pass"


def one_grid(folds: int, epochs: int) -> float:
    """Seconds from submitting the grid to its job's end, in a fresh process and cache."""
    code = f"""
import time
from bnapp.engine.protocols import Protocol
from bnapp.intake import data
from bnapp.intake.units import STUDY_INPUTS, STUDY_TARGET
from bnapp.jobs.scheduler import job_manager
ds = data.demo_dataset()
start = time.perf_counter()
job = job_manager().submit_grid(ds.X(STUDY_INPUTS), ds.y(STUDY_TARGET),
                                Protocol(folds={folds}, epochs={epochs}), features=STUDY_INPUTS,
                                target=STUDY_TARGET, data_key=ds.fingerprint())
job.result()
print(time.perf_counter() - start)
"""
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "BNAPP_CACHE_DIR": cache_dir}
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, text=True,
                             capture_output=True, cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def timed(repeat: int, folds: int, epochs: int, hogs: int) -> list[float]:
    spinning = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        time.sleep(0.5 if hogs else 0)
        return [one_grid(folds, epochs) for _ in range(repeat)]
    finally:
        for process in spinning:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    one_grid(args.folds, 1)  # numba's compiled kernel on disk before anything is timed
    quiet = timed(args.repeat, args.folds, args.epochs, 0)
    loaded = timed(args.repeat, args.folds, args.epochs, args.hogs)
    print(f"grid of 480 networks, {args.folds} folds x {args.epochs} epochs, "
          f"{os.cpu_count()} cores")
    print("quiet:  " + ", ".join(f"{t:.2f} s" for t in quiet))
    print(f"loaded ({args.hogs} busy processes): " + ", ".join(f"{t:.2f} s" for t in loaded))
    ratio = statistics.median(loaded) / statistics.median(quiet)
    print(f"median quiet {statistics.median(quiet):.2f} s, loaded "
          f"{statistics.median(loaded):.2f} s: {ratio:.2f} x")


if __name__ == "__main__":
    main()
