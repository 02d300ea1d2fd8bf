"""Time `python -m bnapp grid` twice on one fresh cache directory: computed, then from the cache.

Run from the repository root: `.venv/bin/python benchmarks/bench_grid_cache.py [DATA] [REPEATS]`
(default: the study's Urea.csv beside the repository, 3 repeats). Each repeat starts from an
empty BNAPP_CACHE_DIR and times the whole command, interpreter start-up included, as a user's
shell sees it. Prints figures and whether the two grid.csv files are byte-identical; it asserts
nothing about time. The numba kernel is compiled once per machine (bnapp/__pycache__), so the
first repeat's computed run may include that compilation.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED_CSV = REPO.parent / "shared" / "seed" / "Urea.csv"


def timed_grid(data: Path, out: Path, cache: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "BNAPP_DASK_SCHEDULER"}
    env["BNAPP_CACHE_DIR"] = str(cache)
    args = [sys.executable, "-m", "bnapp", "grid", "--data", str(data), "--folds", "5",
            "--epochs", "200", "--seed", "0", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench(data: Path, repeats: int) -> None:
    computed, cached = [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            computed.append(timed_grid(data, tmp / "first", tmp / "cache"))
            cached.append(timed_grid(data, tmp / "second", tmp / "cache"))
            same = (tmp / "first" / "grid.csv").read_bytes() == (tmp / "second" / "grid.csv").read_bytes()
        print(f"repeat {i + 1}: computed {computed[-1]:.2f} s, from the cache {cached[-1]:.2f} s "
              f"({computed[-1] / cached[-1]:.0f}x); grid.csv identical: {same}")
    first, second = statistics.median(computed), statistics.median(cached)
    print(f"median of {repeats}: computed {first:.2f} s, from the cache {second:.2f} s "
          f"({first / second:.0f}x)")


if __name__ == "__main__":
    bench(Path(sys.argv[1]) if len(sys.argv) > 1 else SEED_CSV,
          int(sys.argv[2]) if len(sys.argv) > 2 else 3)
