"""Time `python -m bnapp synth --n 1000000`: simulation alone and simulation + CSV writing.

Run from the repository root: `.venv/bin/python benchmarks/bench_synth.py [N]`. Prints figures;
it asserts nothing about time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnapp.cli import main  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402


def bench(n: int) -> None:
    start = time.perf_counter()
    frame = simulate_cohort(n, seed=0)
    simulated = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        main(["synth", "--n", str(n), "--seed", "0", "--out", str(Path(tmp) / "cohort.csv")])
        total = time.perf_counter() - start
    print(f"n = {len(frame):,}: simulate_cohort {simulated:.2f} s; "
          f"synth command (simulate + write CSV) {total:.2f} s")


if __name__ == "__main__":
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
