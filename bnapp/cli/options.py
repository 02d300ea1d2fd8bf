"""Command-line options shared by the commands that train one architecture, and their
progress bar."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bnapp.cli import UserError
from bnapp.engine.model import ACTIVATIONS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec


def add_training_options(parser, *, folds=None, epochs=None, **arch) -> None:
    """What every command that trains one network takes: --data and --out, the architecture
    options (`arch`: add_arch_options' keywords) and the protocol options with these defaults."""
    add_data_options(parser)
    add_arch_options(parser, **arch)
    add_protocol_options(parser, folds=folds, epochs=epochs)


def add_arch_options(parser, *, modes=INPUT_MODES, mode_help="network input") -> None:
    """The options spec_from_args reads; --mode takes one of `modes` (analyze adds "both")."""
    parser.add_argument("--mode", choices=modes, default="raw", help=mode_help)
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
    from bnapp.engine.protocols import GROUPED_KINDS, Protocol

    kind = args.protocol
    base = Protocol.study() if kind == "study" else Protocol(
        kind="kfold" if kind in GROUPED_KINDS else kind)
    names = ("folds", "repeats", "epochs", "batch_size", "lr", "seed", "val_fraction", "patience",
             "bn_decay")
    given = {name: getattr(args, name, None) for name in names}
    try:
        return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid protocol options: {exc}") from exc


@contextlib.contextmanager
def epoch_bar(label: str, protocol) -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr counting the run's epochs (every model's), with epochs/s and the
    time left; yields the (fraction, message) progress callback that drives it."""
    from tqdm import tqdm

    total = protocol.epochs * protocol.n_models
    with tqdm(total=total, desc=label, unit="epoch", file=sys.stderr, dynamic_ncols=True,
              smoothing=0.1) as bar:

        def report(fraction: float, message: str = "") -> None:
            bar.update(max(0, round(fraction * total) - bar.n))
            if message:
                bar.set_postfix_str(message[:40], refresh=False)

        yield report


def add_data_options(parser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="CSV or XLSX data file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    add_ueq_rule_options(parser)


def add_protocol_options(parser, *, kinds=("kfold", "repeated", "study"), folds=None,
                         epochs=None) -> None:
    """--protocol (one of kinds, or a grouped one with --group-by) and its settings; unset ones
    keep the Protocol's defaults."""
    from bnapp.engine.model import BN_DECAYS
    from bnapp.engine.protocols import GROUPED_KINDS

    parser.add_argument("--protocol", choices=(*kinds, *GROUPED_KINDS), default="kfold",
                        help="how the folds are made (a grouped protocol needs --group-by)")
    add_group_option(parser)
    parser.add_argument("--folds", type=int, default=folds)
    if "repeated" in kinds:
        parser.add_argument("--repeats", type=int, default=None,
                            help="repeats of --protocol repeated")
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
    parser.add_argument("--bn-decay", choices=tuple(BN_DECAYS), default=None,
                        help="BN moving-statistics update: as Keras 3 (default) or as Keras 2, "
                             "whose decay 1 - momentum is rounded to float32 (docs/keras.md)")


def add_ueq_rule_options(parser) -> None:
    """How rows with Ueq below Upos are treated: a tolerance (percent, or an assay's CV) and
    keeping them flagged instead of dropping them."""
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--ueq-tolerance", type=float, default=0.0, metavar="PERCENT",
                      help="drop a row only when Ueq is below Upos by more than this percent "
                           "of Upos (default 0: the study's rule Ueq >= Upos)")
    rule.add_argument("--assay-cv", type=float, default=None, metavar="PERCENT",
                      help="the urea assay's CV: the tolerance is its reference change value, "
                           "1.96 x sqrt(2) x CV")
    parser.add_argument("--keep-ueq-below-upos", action="store_true",
                        help="keep rows with Ueq below Upos and list them as flagged")


def ueq_rule_from_args(args):
    """The UeqRule of add_ueq_rule_options' options, or a UserError for a bad percentage."""
    from bnapp.intake.data import DataError
    from bnapp.intake.rules import UeqRule

    try:
        if args.assay_cv is not None:
            return UeqRule.from_cv(args.assay_cv, args.keep_ueq_below_upos)
        return UeqRule(args.ueq_tolerance, args.keep_ueq_below_upos)
    except DataError as exc:
        raise UserError(str(exc)) from exc


def load_data(path: Path, ueq):
    """The data set in path, its rows checked against the UeqRule `ueq`, or a UserError saying
    why not."""
    from bnapp.intake.data import DataError, load_dataset

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return load_dataset(path, ueq=ueq)
    except DataError as exc:
        raise UserError(str(exc)) from exc


def require_rows(dataset, protocol) -> None:
    from bnapp.intake.data import DataError
    from bnapp.intake.data import require_rows as check

    try:
        check(dataset, protocol.folds, protocol.kind)
    except DataError as exc:
        raise UserError(str(exc)) from exc


def prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the directory ({exc.strerror})") from exc


def data_and_protocol(args):
    """(data set, protocol, group labels or None) of a command's --data and protocol options,
    checked to be enough rows for the protocol; --out is made ready, so a bad folder is said
    before any training."""
    dataset = load_data(args.data, ueq_rule_from_args(args))
    protocol, groups = grouping(args, dataset, protocol_from_args(args))
    require_rows(dataset, protocol)
    prepare_out(args.out)
    return dataset, protocol, groups


def trained_run(args, spec: ArchSpec):
    """(run, group labels or None, data set): the study's inputs and target of --data trained
    under the command's protocol (or read from the cache), with a progress bar on stderr."""
    from bnapp.engine.train import TrainingDiverged
    from bnapp.intake.units import STUDY_INPUTS, STUDY_TARGET
    from bnapp.jobs.cached import cached_train

    dataset, protocol, groups = data_and_protocol(args)
    try:
        with epoch_bar(spec.label, protocol) as report:
            run = cached_train(dataset.X(STUDY_INPUTS), dataset.y(STUDY_TARGET), spec, protocol,
                               features=STUDY_INPUTS, target=STUDY_TARGET,
                               data_key=dataset.fingerprint(), row_ids=dataset.row_numbers,
                               groups=groups, progress=report, data_name=dataset.name)
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from exc
    return run, groups, dataset
