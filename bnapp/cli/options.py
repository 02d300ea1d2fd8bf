"""Command-line options shared by the commands that train one architecture."""

from __future__ import annotations

import dataclasses

from bnapp.cli import UserError
from bnapp.engine.model import ACTIVATIONS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec


def add_arch_options(parser) -> None:
    parser.add_argument("--mode", choices=INPUT_MODES, default="raw", help="network input")
    parser.add_argument("--arch", "--hidden", dest="arch", default="6",
                        help="hidden layer widths, e.g. 6 or 6,6")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid")
    parser.add_argument("--output-activation", choices=OUTPUT_ACTIVATIONS, default="linear")
    parser.add_argument("--no-input-bn", action="store_true", help="no BN layer on the inputs")
    parser.add_argument("--no-hidden-bn", action="store_true", help="no BN after hidden layers")


def spec_from_args(args) -> ArchSpec:
    """The ArchSpec the options of add_arch_options describe; a bad value is a UserError."""
    try:
        hidden = tuple(int(part) for part in args.arch.split(","))
        return ArchSpec(hidden=hidden, activation=args.activation,
                        output_activation=args.output_activation, input_bn=not args.no_input_bn,
                        hidden_bn=not args.no_hidden_bn, input_mode=args.mode)
    except ValueError as exc:
        raise UserError(f"--arch {args.arch!r}: {exc} (give widths like 6 or 6,6)") from exc


def add_group_option(parser) -> None:
    parser.add_argument("--group-by", default=None, metavar="COLUMN",
                        help="column whose rows stay together (a patient ID, a dialysis unit): "
                             "with --protocol group-kfold or leave-one-group-out no group is "
                             "split between training and test rows")


def grouping(args, dataset, protocol):
    """(protocol, group labels or None): a grouped --protocol over the --group-by column's labels;
    a missing or unusable column, or one option without the other, is a UserError."""
    from bnapp.engine.protocols import GROUPED_KINDS, grouped
    from bnapp.intake.groups import group_labels
    from bnapp.intake.reading import DataError

    kind, column = args.protocol, getattr(args, "group_by", None)
    if kind not in GROUPED_KINDS:
        if column is not None:
            raise UserError(f"--group-by {column}: needs --protocol group-kfold or "
                            "leave-one-group-out")
        return protocol, None
    if column is None:
        raise UserError(f"--protocol {kind} needs --group-by COLUMN (e.g. a patient ID column)")
    from bnapp.engine.train import make_splits

    try:
        labels = group_labels(dataset, column)
        protocol = grouped(protocol, kind, column, labels)
        make_splits(protocol, len(labels), labels)  # too few groups: say so before training
        return protocol, labels
    except DataError as exc:
        raise UserError(str(exc)) from exc
    except ValueError as exc:
        raise UserError(f"--group-by {column}: {exc}") from exc


def protocol_from_args(args):
    """The Protocol of --protocol and the protocol options a command has (those it lacks, or
    leaves unset, keep the protocol's defaults); a grouped kind is k-fold here until grouping()
    gives it its labels."""
    from bnapp.engine.protocols import GROUPED_KINDS
    from bnapp.engine.train import Protocol

    kind = args.protocol
    base = Protocol.study() if kind == "study" else Protocol(
        kind="kfold" if kind in GROUPED_KINDS else kind)
    names = ("folds", "repeats", "epochs", "batch_size", "lr", "seed", "val_fraction", "patience")
    given = {name: getattr(args, name, None) for name in names}
    try:
        return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid protocol options: {exc}") from exc
