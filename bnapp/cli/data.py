"""`validate`: check a hemodialysis file and report what would be used and what dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from bnapp.cli import UserError
from bnapp.cli.options import add_ueq_rule_options, ueq_rule_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate", help="check a CSV/XLSX file and report usable and dropped rows",
        description="Read a hemodialysis file as the app would and report rows read, usable "
                    "and dropped (with reasons), the columns used, and any input that looks "
                    "computed from the target Ueq.")
    parser.add_argument("file", type=Path, metavar="FILE", help="CSV or XLSX file")
    parser.add_argument("--mapping", default=None, metavar="Upre=COL,...",
                        help="columns to use for study names, e.g. Upre=urea_pre,Ueq=urea_eq")
    parser.add_argument("--units", default="mg/dL", metavar="mg/dL|mmol/L|BUN",
                        help="urea units of the file (default mg/dL; BUN = urea nitrogen mg/dL)")
    add_ueq_rule_options(parser)
    parser.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from bnapp.intake.columns import report_text
    from bnapp.intake.data import DataError, commonest_drop, load_dataset, parse_mapping
    from bnapp.intake.groups import likely_id_columns, row_checks

    try:
        mapping = parse_mapping(args.mapping) if args.mapping is not None else None
        dataset = load_dataset(args.file, mapping=mapping, units=args.units,
                               ueq=ueq_rule_from_args(args))
    except DataError as exc:
        raise UserError(str(exc)) from exc
    print(report_text(dataset))
    most = commonest_drop(dataset)
    if most:
        print(most)
    for row in likely_id_columns(dataset).itertuples():
        print(f"note: column {row.column!r} looks like a patient or unit identifier "
              f"({row.groups} values, up to {row.largest_group} rows each): validate with "
              f"--protocol group-kfold --group-by {row.column!r} (or leave-one-group-out) so "
              "no group is split between training and test rows")
    verdict, messages = row_checks(dataset)
    if verdict == "error":
        raise UserError(f"{dataset.name}: {messages[0]}")
    for message in messages:
        print(f"warning: {message}")
    return 0
