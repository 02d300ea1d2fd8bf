"""`bench`: how fast the batched trainer is, against a plain torch loop, on this machine."""

from __future__ import annotations

import argparse
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
    bench.add_argument("--scale", action="store_true",
                       help="instead: time and peak memory of the study network under 10-fold CV "
                            "x 200 epochs on 10k, 100k and 1M synthetic sessions, each in a "
                            "process of its own")
    bench.add_argument("--sizes", type=_sizes, default=None, metavar="N,N,...",
                       help="with --scale: the numbers of sessions (default 10000,100000,1000000)")
    bench.add_argument("--epochs", type=int, default=None, metavar="E",
                       help="with --scale: epochs per model (default 200); peak memory does not "
                            "depend on it, time grows in proportion")
    bench.set_defaults(handler=cmd_bench)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes takes whole numbers separated by commas, e.g. 10000,100000 (got {text!r})"
        ) from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(f"--sizes needs numbers of at least 100 (got {text!r})")
    return sizes


def cmd_bench(args) -> int:
    if args.scale:
        return _bench_scale(args)
    if args.sizes is not None or args.epochs is not None:
        raise UserError("--sizes and --epochs go with --scale")
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


def _bench_scale(args) -> int:
    from bnapp.cli import bench_scale

    if args.data is not None:
        raise UserError("--scale trains on synthetic sessions: leave out --data")
    epochs = bench_scale.EPOCHS if args.epochs is None else args.epochs
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1 (got {epochs})")
    results = bench_scale.scale_benchmark(args.sizes or bench_scale.SCALE_SIZES, epochs=epochs)
    if args.json:
        print(json.dumps({"scale": results}))
    return 0
