"""`bench`: how fast the batched trainer is, against a plain torch loop, on this machine."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bnapp.cli import UserError


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="time the study's protocol (batched vs plain torch) and the whole grid")
    bench.add_argument("--data", type=Path, default=None,
                       help="CSV with Upre, U120, Upos, PP, UF, Ueq (default: the study's "
                            "Urea.csv beside the repository, else the demo cohort)")
    bench.add_argument("--json", action="store_true",
                       help="end with one line of JSON holding every figure")
    bench.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    t = time.perf_counter()
    from bnapp.cli import bench
    from bnapp.intake.data import STUDY_INPUTS, DataError

    import_seconds = time.perf_counter() - t
    try:
        dataset = bench.bench_dataset(args.data)
    except DataError as exc:
        raise UserError(str(exc)) from exc
    X, y = dataset.X(STUDY_INPUTS), dataset.y()
    print(f"data: {dataset.name} ({len(X)} usable rows)")
    figures = bench.benchmark(X, y)
    figures["cli_import_seconds"] = import_seconds
    if args.json:
        print(json.dumps(figures))
    return 0
