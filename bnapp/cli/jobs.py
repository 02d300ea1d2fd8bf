"""`train`, `grid` and `cache`: trained results on disk, through the shared cache."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bnapp.cli import UserError
from bnapp.cli.options import add_arch_options, epoch_bar, spec_from_args
from bnapp.jobs import cache


def register(sub) -> None:
    train = sub.add_parser("train", help="cross-validate one architecture on a data file")
    _data_options(train)
    add_arch_options(train)
    train.add_argument("--protocol", choices=("kfold", "repeated", "study"), default="kfold")
    _protocol_options(train, folds=None, epochs=None)
    train.add_argument("--repeats", type=int, default=None)
    train.set_defaults(handler=cmd_train)

    grid = sub.add_parser("grid", help="the study's grid search (480 configurations)")
    _data_options(grid)
    _protocol_options(grid, folds=5, epochs=200)
    grid.set_defaults(handler=cmd_grid)

    cache_cmd = sub.add_parser("cache", help="list, reopen or clear cached results")
    actions = cache_cmd.add_subparsers(dest="cache_action", required=True, metavar="ACTION")
    actions.add_parser("list", help="cached runs and grids, newest first").set_defaults(
        handler=cmd_cache_list
    )
    reopen = actions.add_parser("open", help="write a cached result's files, as train or grid do")
    reopen.add_argument("key", metavar="KEY", help="the key `cache list` shows (a unique prefix "
                                                   "is enough)")
    reopen.add_argument("--out", required=True, type=Path, help="output directory")
    reopen.set_defaults(handler=cmd_cache_open)
    clear = actions.add_parser("clear", help="delete one cached result or all")
    which = clear.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", help="the entry's key (a unique prefix is enough)")
    which.add_argument("--all", action="store_true", help="every cached result")
    clear.set_defaults(handler=cmd_cache_clear)


def _data_options(parser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="CSV or XLSX data file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")


def _protocol_options(parser, *, folds, epochs) -> None:
    parser.add_argument("--folds", type=int, default=folds)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="share of each training set held out as validation rows, for the "
                             "validation curve and early stopping (default 0; the study's "
                             "protocol 0.2)")
    parser.add_argument("--patience", type=int, default=None,
                        help="early stopping: stop a model after this many epochs without a "
                             "lower validation loss and keep its best epoch (off by default; "
                             "needs --val-fraction)")


def _load(path: Path):
    from bnapp.intake.data import STUDY_INPUTS, STUDY_TARGET, DataError, load_dataset

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        dataset = load_dataset(path)
    except DataError as exc:
        raise UserError(str(exc)) from exc
    return dataset, STUDY_INPUTS, STUDY_TARGET


def _protocol(args, kind: str):
    from bnapp.engine.train import Protocol

    base = Protocol.study() if kind == "study" else Protocol(kind=kind)
    given = {
        "folds": args.folds, "repeats": getattr(args, "repeats", None), "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "val_fraction": args.val_fraction, "patience": args.patience,
    }
    try:
        return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid protocol options: {exc}") from exc


def _require_rows(dataset, protocol) -> None:
    from bnapp.intake.data import DataError, require_rows

    try:
        require_rows(dataset, protocol.folds, protocol.kind)
    except DataError as exc:
        raise UserError(str(exc)) from exc


def fold_summary(run) -> pd.DataFrame:
    """One row per trained model: its rows, test error and last losses."""
    rows = []
    for f in run.folds:
        err = run.test_predictions(f) - run.y[f.test_rows]
        loss, val = f.history.get("loss"), f.history.get("val_loss")
        rows.append({
            "fold": f.fold, "repeat": f.repeat, "n_train": len(f.train_rows),
            "n_val": len(f.val_rows), "n_test": len(f.test_rows),
            "test_mse": float(np.mean(err**2)), "test_rmse": float(np.sqrt(np.mean(err**2))),
            "test_bias": float(np.mean(err)),
            "final_loss": float(loss[-1]) if loss is not None and len(loss) else np.nan,
            "final_val_loss": float(val[-1]) if val is not None and len(val) else np.nan,
            "stopped_epoch": f.stopped_epoch,
        })
    return pd.DataFrame(rows)


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the directory ({exc.strerror})") from exc


def cmd_train(args) -> int:
    from bnapp.jobs.runner import cached_train

    dataset, features, target = _load(args.data)
    spec, protocol = spec_from_args(args), _protocol(args, args.protocol)
    _require_rows(dataset, protocol)
    _prepare_out(args.out)
    with epoch_bar(spec.label, protocol) as report:
        run = cached_train(dataset.X(features), dataset.y(target), spec, protocol,
                           features=features, target=target, data_key=dataset.fingerprint(),
                           row_ids=dataset.row_numbers, progress=report, data_name=dataset.name)
    _write_run(run, args.out)
    return 0


def _write_run(run, out: Path) -> None:
    """results.npz (every fold result) and folds.csv (one summary row per model) in out."""
    from bnapp.engine.results import run_to_bytes

    (out / "results.npz").write_bytes(run_to_bytes(run))
    summary = fold_summary(run)
    summary.to_csv(out / "folds.csv", index=False)
    print(f"{run.spec.label}: {len(run.folds)} models, test RMSE {summary.test_rmse.mean():.3f} "
          f"± {summary.test_rmse.std(ddof=1) if len(summary) > 1 else 0:.3f}; "
          f"wrote {out / 'results.npz'} and {out / 'folds.csv'}")


def cmd_grid(args) -> int:
    from bnapp.engine.grid import study_grid
    from bnapp.jobs.runner import job_manager

    dataset, features, target = _load(args.data)
    protocol = _protocol(args, "kfold")
    _require_rows(dataset, protocol)
    _prepare_out(args.out)
    specs = study_grid()
    job = job_manager().submit_grid(dataset.X(features), dataset.y(target), protocol, specs,
                                    features=features, target=target,
                                    data_key=dataset.fingerprint(), data_name=dataset.name)
    grid = _follow(job, total=len(specs))
    _write_grid(grid, args.out)
    print(f"{len(grid)} configurations, {job.message} in {job.elapsed:.3g} s")
    return 0


def _write_grid(grid: pd.DataFrame, out: Path) -> None:
    """grid.csv (one row per configuration, near_best marking those within one standard error
    of their input mode's best) and best.csv (the best per input mode) in out."""
    from bnapp.engine.grid import best_per_mode, near_best

    grid = grid.assign(near_best=near_best(grid))
    grid.to_csv(out / "grid.csv", index=False)
    best_per_mode(grid).to_csv(out / "best.csv", index=False)
    close = grid[grid["near_best"]]["input_mode"].value_counts().sort_index()
    print("within one standard error of the best (not told apart by the folds): "
          + ", ".join(f"{n} on {mode} inputs" for mode, n in close.items()))
    print(f"wrote {out / 'grid.csv'} and {out / 'best.csv'}")


def _follow(job, total: int):
    """Show a job's progress on the terminal until it ends; Ctrl-C cancels it."""
    from tqdm import tqdm

    from bnapp.jobs.runner import JobFailed

    with tqdm(total=total, unit="config", file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            while not job.wait(0.25):
                bar.n = round(job.progress * total)
                bar.set_postfix_str(job.message[:60], refresh=True)
        except KeyboardInterrupt:
            job.cancel()
            job.wait()
            raise
        bar.n = round(job.progress * total)
        bar.refresh()
    for message in job.warnings:
        print(f"warning: {message}", file=sys.stderr)
    try:
        return job.result()
    except JobFailed as exc:
        raise UserError(f"grid search failed: {exc}") from exc


def cmd_cache_list(args) -> int:
    table = cache.entries()
    print(f"cache directory: {cache.cache_dir()}")
    if table.empty:
        print("no cached results")
        return 0
    table = table.assign(key=table.key.str[:12], size_kB=(table.size_bytes / 1024).round(1))
    print(table.drop(columns="size_bytes").to_string(index=False))
    return 0


def _resolve(key_or_prefix: str) -> str:
    try:
        return cache.resolve(key_or_prefix)
    except KeyError as exc:
        raise UserError(f"{exc.args[0]}; `python -m bnapp cache list` shows the keys") from exc


def cmd_cache_open(args) -> int:
    key = _resolve(args.key)
    entry = cache.open_entry(key)
    if entry is None:
        raise UserError(f"cache entry {key[:12]} could not be read (damaged or deleted meanwhile) "
                        "and was discarded; train it again")
    _prepare_out(args.out)
    if isinstance(entry, pd.DataFrame):
        _write_grid(entry, args.out)
    else:
        _write_run(entry, args.out)
    return 0


def cmd_cache_clear(args) -> int:
    if args.all:
        n = cache.clear()
        print(f"removed {n} cached result{'s' if n != 1 else ''} from {cache.cache_dir()}")
        return 0
    key = _resolve(args.key)
    cache.remove(key)
    print(f"removed {key[:12]}")
    return 0
