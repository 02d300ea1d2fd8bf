"""`predict`: prediction intervals for a file of new sessions, from a trained (or cached) run.

The analyses (scipy, statsmodels) are imported by the handler, so registering the command costs
nothing to the other commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnapp.cli import UserError
from bnapp.cli.options import (
    add_arch_options,
    add_protocol_options,
    add_ueq_rule_options,
    spec_from_args,
    trained_run,
)

METHODS = ("network", "linear_regression", "rate_equation", "tattersall")
SHOWN_SKIPPED = 10  # skipped rows printed; the .skipped.csv beside the output holds them all


def register(sub) -> None:
    cmd = sub.add_parser(
        "predict", help="train (or reuse a cached run) and predict a file of new sessions, "
                        "with CV+ prediction intervals")
    cmd.add_argument("--data", required=True, type=Path,
                     help="CSV or XLSX data file the run is trained on")
    add_ueq_rule_options(cmd)
    add_arch_options(cmd)
    add_protocol_options(cmd)
    cmd.add_argument("--new", required=True, type=Path,
                     help="CSV or XLSX file of new sessions: the run's inputs, urea in --units "
                          "(no Ueq needed)")
    cmd.add_argument("--units", default="mg/dL", metavar="mg/dL|mmol/L|BUN",
                     help="urea units of NEW (default mg/dL; BUN = urea nitrogen mg/dL); a "
                          "column whose name states its unit, e.g. 'Upre (mmol/L)', is read in "
                          "that one")
    cmd.add_argument("--show-units", default=None, metavar="mg/dL|mmol/L|BUN",
                     help="urea units of OUT's prediction and interval (default: --units); "
                          "eKt/V has none")
    cmd.add_argument("--interval", type=float, default=0.9,
                     help="level of the CV+ prediction intervals (default 0.9)")
    cmd.add_argument("--method", choices=METHODS, default="network",
                     help="what predicts: the fold networks (default), linear regression refitted "
                          "on each fold, or a clinical formula")
    cmd.add_argument("--hours", type=float, default=4.0,
                     help="session length the formulas and eKt/V use (default 4), unless NEW "
                          "has a length column (e.g. 'Td (min)', hours or minutes)")
    cmd.add_argument("--access", choices=("arterial", "venous"), default="arterial",
                     help="vascular access, for the rate equation's coefficients (arterial: "
                          "fistula or graft, the default; venous: catheter)")
    cmd.add_argument("--out", required=True, type=Path,
                     help="CSV file to write: row (in NEW), prediction, pi_low, pi_high (urea "
                          "in --show-units), and eKt/V with its interval")
    cmd.set_defaults(handler=cmd_predict)


def cmd_predict(args) -> int:
    from bnapp.analyses import conformal, predict
    from bnapp.intake.data import DataError, load_sessions, urea_unit
    from bnapp.intake.duration import frame_hours
    from bnapp.intake.units import STUDY_INPUTS, DisplayUnits
    from bnapp.report.cells import write_csv

    try:
        level = conformal.check_level(args.interval)
    except ValueError as exc:
        raise UserError(f"--interval: {exc}") from exc
    if not args.new.is_file():
        raise UserError(f"{args.new}: no such file")
    try:  # before training: a file with no usable session is said at once
        display = DisplayUnits(urea_unit(args.show_units or args.units))
        sessions = load_sessions(args.new, STUDY_INPUTS, units=args.units)  # trained_run's
    except DataError as exc:
        raise UserError(str(exc)) from exc
    # the run's options check --out as a folder: this command's folder is the file's
    run, _, _ = trained_run(argparse.Namespace(**{**vars(args), "out": args.out.parent}),
                            spec_from_args(args))
    frame = predict.indexed_by_row(sessions)
    try:
        hours, column = frame_hours(frame, args.hours, sessions.name)
        table = predict.predict_method(run, frame, args.method, level, hours, args.access)
    except DataError as exc:
        raise UserError(str(exc)) from exc
    if column is not None:
        print(f"session lengths from the column {column!r} of {sessions.name}", file=sys.stderr)
    shown = display.show(table, run.target, ("prediction", "pi_low", "pi_high"))
    write_csv(shown.reset_index(), args.out)
    _report_skipped(sessions, args.out)
    coverage = conformal.held_out_coverage(run, level)
    pooled = coverage[(coverage["fold"] == "pooled") & (coverage["method"] == args.method)]
    reported = dict(zip(pooled["interval"], pooled["coverage"], strict=True))
    print(f"{len(table)} sessions of {sessions.n_read} predicted by {args.method} with "
          f"{level:.0%} CV+ intervals, in {display.unit(run.target)}; wrote {args.out}")
    print(f"coverage of {level:.0%} intervals on the run's own rows (the share inside an "
          "interval built without them):")
    for kind, share in reported.items():
        print(f"  {kind} = {share:.1%}  ({conformal.INTERVALS[kind]})")
    return 0


def _report_skipped(sessions, out: Path) -> None:
    """The rows of NEW that could not be used, with their reasons (as the Data page lists
    them): every one in OUT.skipped.csv, the first few on stderr."""
    if sessions.dropped.empty:
        return
    from bnapp.report.cells import write_csv

    path = out.with_suffix(".skipped.csv")
    write_csv(sessions.dropped, path)
    rows = sessions.dropped["row"].nunique()
    print(f"skipped {rows} of {sessions.n_read} rows of {sessions.name} (every one, with its "
          f"reason, in {path}):", file=sys.stderr)
    for r in sessions.dropped.head(SHOWN_SKIPPED).itertuples():
        print(f"  row {r.row}, {r.column} = {r.value or '(empty)'}: {r.reason}", file=sys.stderr)
