"""Coverage of the prediction intervals the `predict` command gives, against what it reports.

For each seed: simulate a training cohort (400 sessions) and 1,000 fresh sessions from another
seed, run `python -m bnapp predict` on them for every method (the run trained once, then reused
from the cache), and compare the coverage the command reports on the run's own rows (CV+,
nested; and the held-out split-conformal figure) with the share of the fresh sessions whose
measured Ueq lies inside their interval (issue 26: within 4 points).

Run from the repository root: `.venv/bin/python benchmarks/bench_coverage.py [--seeds 5]`.
Prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnapp.cli import main as cli  # noqa: E402
from bnapp.cli.predict import METHODS  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402

FRESH_SEED_OFFSET = 10_000  # fresh sessions come from seeds no training cohort uses
REPORTED = re.compile(r"^  (\w+) = (\d+\.\d)%", re.MULTILINE)


def cohort(n: int, seed: int) -> pd.DataFrame:
    """n sessions that pass the rule every data set is read with (Ueq >= Upos)."""
    frame = simulate_cohort(2 * n, seed)
    return frame[frame["Ueq"] >= frame["Upos"]].head(n).reset_index(drop=True)


def one_seed(seed: int, args, folder: Path) -> list[dict]:
    train, new = folder / f"train{seed}.csv", folder / f"new{seed}.csv"
    cohort(args.n, seed).to_csv(train, index=False)
    fresh = cohort(args.fresh, FRESH_SEED_OFFSET + seed)
    fresh.to_csv(new, index=False)
    rows = []
    for method in METHODS:
        out = folder / f"pred{seed}_{method}.csv"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            code = cli(["predict", "--data", str(train), "--new", str(new), "--method", method,
                        "--folds", str(args.folds), "--epochs", str(args.epochs), "--seed",
                        str(seed), "--interval", str(args.level), "--out", str(out)])
        if code:
            raise SystemExit(f"predict failed for seed {seed}, {method}")
        reported = {kind: float(share) / 100
                    for kind, share in REPORTED.findall(printed.getvalue())}
        table = pd.read_csv(out)
        ueq = fresh["Ueq"].to_numpy()[table["row"].to_numpy() - 2]  # header is file row 1
        inside = (table["pi_low"] <= ueq) & (ueq <= table["pi_high"])
        rows.append({"seed": seed, "method": method, "reported_cv_plus": reported["cv_plus"],
                     "reported_split_conformal": reported["split_conformal"],
                     "fresh": float(inside.mean()),
                     "fresh_width": float((table["pi_high"] - table["pi_low"]).mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=400, help="sessions per training cohort")
    parser.add_argument("--fresh", type=int, default=1000, help="fresh sessions per seed")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--level", type=float, default=0.9)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("BNAPP_CACHE_DIR", str(Path(tmp) / "cache"))
        for seed in range(args.seeds):
            rows += one_seed(seed, args, Path(tmp))
            net = rows[-len(METHODS)]
            print(f"seed {seed}: network reports {net['reported_cv_plus']:.3f} (CV+, nested), "
                  f"fresh sessions inside {net['fresh']:.3f}", flush=True)
    table = pd.DataFrame(rows)
    table["gap"] = table["reported_cv_plus"] - table["fresh"]
    summary = table.groupby("method", sort=False).agg(
        reported_cv_plus=("reported_cv_plus", "mean"),
        reported_split_conformal=("reported_split_conformal", "mean"),
        fresh=("fresh", "mean"), fresh_width=("fresh_width", "mean"),
        mean_gap=("gap", "mean"), largest_gap=("gap", lambda g: g.abs().max())).reset_index()
    summary["within_4_points"] = [bool((table.loc[table["method"] == m, "gap"].abs() <= 0.04)
                                       .all()) for m in summary["method"]]
    print(f"\nnominal {args.level:.0%}; {args.seeds} seeds x {args.n} training sessions, "
          f"{args.folds}-fold CV, {args.epochs} epochs; {args.fresh} fresh sessions per seed")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
