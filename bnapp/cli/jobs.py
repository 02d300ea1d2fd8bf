"""`train`, `grid` and `cache`: trained results on disk, through the shared cache."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bnapp.cli import UserError
from bnapp.cli.options import (
    add_data_options,
    add_protocol_options,
    add_training_options,
    data_and_protocol,
    prepare_out,
    spec_from_args,
    trained_run,
)
from bnapp.jobs import cache


def register(sub) -> None:
    train = sub.add_parser("train", help="cross-validate one architecture on a data file")
    add_training_options(train)
    train.set_defaults(handler=cmd_train)

    grid = sub.add_parser("grid", help="the study's grid search (480 configurations)")
    add_data_options(grid)
    add_protocol_options(grid, kinds=("kfold",), folds=5, epochs=200)
    _add_subset_options(grid)
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


def cmd_train(args) -> int:
    run, _, _ = trained_run(args, spec_from_args(args))
    _write_run(run, args.out)
    return 0


def _write_run(run, out: Path) -> None:
    """results.npz (every fold result) and folds.csv (one summary row per model) in out."""
    from bnapp.engine.results import run_to_bytes
    from bnapp.report.cells import write_csv

    (out / "results.npz").write_bytes(run_to_bytes(run))
    summary = fold_summary(run)
    write_csv(summary, out / "folds.csv")
    print(f"{run.spec.label}: {len(run.folds)} models, test RMSE {summary.test_rmse.mean():.3f} "
          f"± {summary.test_rmse.std(ddof=1) if len(summary) > 1 else 0:.3f}; "
          f"wrote {out / 'results.npz'} and {out / 'folds.csv'}")


# the part of the grid to run: option, grid_specs() keyword, how a value is read
SUBSET_OPTIONS = (("--depths", "depths", int), ("--widths", "widths", int),
                  ("--activations", "activations", str),
                  ("--output-activations", "output_activations", str),
                  ("--input-modes", "input_modes", str), ("--bn", "bn", lambda v: v == "yes"))


def _add_subset_options(parser) -> None:
    part = parser.add_argument_group("the part of the grid to run (default: all 480 networks)")
    for flag, _, _ in SUBSET_OPTIONS:
        part.add_argument(flag, metavar="A,B", help="comma-separated; --bn takes yes,no")
    part.add_argument("--no-stability", action="store_true",
                      help="skip training every network a second time from a 1e-12 different "
                           "start (the instability column): about half the time")


def grid_subset(args) -> dict:
    """grid_specs() keywords from the subset options given, checked against the study grid's
    values."""
    from bnapp.engine import grid, model

    allowed = {"depths": grid.GRID_DEPTHS, "widths": grid.GRID_WIDTHS,
               "activations": model.ACTIVATIONS, "output_activations": model.OUTPUT_ACTIVATIONS,
               "input_modes": model.INPUT_MODES, "bn": (True, False)}
    chosen = {}
    for flag, name, read in SUBSET_OPTIONS:
        text = getattr(args, name)
        if text is None:
            continue
        try:
            values = tuple(read(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            values = ()
        if not values or not set(values) <= set(allowed[name]) or (
                name == "bn" and not set(text.replace(" ", "").split(",")) <= {"yes", "no"}):
            shown = "yes,no" if name == "bn" else ",".join(map(str, allowed[name]))
            raise UserError(f"{flag} {text!r}: give some of {shown}, separated by commas")
        chosen[name] = values
    return chosen


def cmd_grid(args) -> int:
    from bnapp.engine.grid import grid_specs
    from bnapp.intake.units import STUDY_INPUTS, STUDY_TARGET
    from bnapp.jobs.scheduler import job_manager

    dataset, protocol, groups = data_and_protocol(args)
    specs = grid_specs(**grid_subset(args))
    if not specs:
        raise UserError("no network of the grid has all the values chosen")
    job = job_manager().submit_grid(dataset.X(STUDY_INPUTS), dataset.y(STUDY_TARGET), protocol,
                                    specs, features=STUDY_INPUTS, target=STUDY_TARGET,
                                    data_key=dataset.fingerprint(), groups=groups,
                                    data_name=dataset.name, stability=not args.no_stability)
    grid = _follow(job, total=len(specs))
    _write_grid(grid, args.out)
    print(f"{len(grid)} configurations, {job.message} in {job.elapsed:.3g} s")
    return 0


def _write_grid(grid: pd.DataFrame, out: Path) -> None:
    """grid.csv (one row per configuration, near_best marking those within one standard error
    of their input mode's best, instability how far a training from a 1e-12 different start
    ends) and best.csv (the best per input mode) in out."""
    from bnapp.engine.grid import CHAOTIC_INSTABILITY, best_per_mode, near_best
    from bnapp.report.cells import write_csv

    grid = grid.assign(near_best=near_best(grid))
    write_csv(grid, out / "grid.csv")
    write_csv(best_per_mode(grid), out / "best.csv")
    close = grid[grid["near_best"]]["input_mode"].value_counts().sort_index()
    print("within one standard error of the best (not told apart by the folds): "
          + ", ".join(f"{n} on {mode} inputs" for mode, n in close.items()))
    if "instability" in grid:
        chaotic = int((grid["instability"] > CHAOTIC_INSTABILITY).sum())
        print(f"chaotic training (CV MSE moves > {CHAOTIC_INSTABILITY:.0%} from a 1e-12 different "
              f"start, column instability): {chaotic} of {len(grid)} configurations")
    print(f"wrote {out / 'grid.csv'} and {out / 'best.csv'}")


def _follow(job, total: int):
    """Show a job's progress on the terminal until it ends; Ctrl-C cancels it."""
    from tqdm import tqdm

    from bnapp.jobs.errors import JobFailed

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
    if not key_or_prefix.strip():  # a prefix of every key
        raise UserError("the key is empty: give a key `python -m bnapp cache list` shows (a "
                        "unique prefix is enough), or --all to clear every entry")
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
    prepare_out(args.out)
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
